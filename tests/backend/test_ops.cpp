// Tests of the CPU op bodies (backend/cpu/*.cpp): every forward against a plain float64
// reference written here, every backward against central finite differences of the scalar loss
// sum(out * w) on that reference (or against an analytic float64 backward that is itself checked
// by finite differences). Odd sizes, random non-zero inputs, NaN-poisoned outputs where an op
// overwrites and random pre-filled ones where it accumulates.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "backend/cpu/kernels.h"
#include "backend/ops.h"
#include "core/rng.h"

using namespace finegpt;
using dvec = std::vector<double>;
using fvec = std::vector<float>;
using ivec = std::vector<int32_t>;

namespace {

const float NaN = std::numeric_limits<float>::quiet_NaN();

fvec randn(size_t n, Rng &rng, float scale = 1.0f, float offset = 0.0f) {
  fvec x(n);
  for (auto &e : x) {
    do
      e = offset + scale * rng.normal();
    while (e == 0.0f);
  }
  return x;
}
fvec poisoned(size_t n) { return fvec(n, NaN); }
dvec to_d(const fvec &x) { return dvec(x.begin(), x.end()); }
ivec tokens(size_t n, int V, Rng &rng) {
  ivec t(n);
  for (auto &e : t)
    e = int32_t(rng.below(V));
  return t;
}
double dkeep(Dropout d, uint64_t i) { // the mask times 1/(1-p), as the ops apply it
  if (d.p == 0.0f) return 1.0;
  return dropout_keep(d.key, i, d.p) ? 1.0 / (1.0 - double(d.p)) : 0.0;
}

// Every |got - ref| <= rtol * (|ref| + rms(ref)); NaN fails.
void expect_close(const float *got, const dvec &ref, double rtol, const char *what) {
  double ss = 0.0;
  for (double r : ref)
    ss += r * r;
  const double scale = ref.empty() ? 0.0 : std::sqrt(ss / double(ref.size()));
  int bad = 0;
  double worst = 0.0;
  for (size_t i = 0; i < ref.size(); i++) {
    const double err = std::fabs(double(got[i]) - ref[i]);
    const double tol = rtol * (std::fabs(ref[i]) + scale);
    if (!(err <= tol)) {
      if (bad++ < 5)
        ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << ref[i]
                      << " (tolerance " << tol << ")";
    }
    worst = std::max(worst, err / (std::fabs(ref[i]) + scale + 1e-300));
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << ref.size() << " elements off, worst "
                    << worst;
}
void expect_close(const fvec &got, const dvec &ref, double rtol, const char *what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  expect_close(got.data(), ref, rtol, what);
}
// got - before, against ref (for ops that accumulate with +=).
void expect_added(const fvec &got, const fvec &before, const dvec &ref, double rtol,
                  const char *what) {
  fvec delta(got.size());
  for (size_t i = 0; i < got.size(); i++)
    delta[i] = got[i] - before[i];
  expect_close(delta, ref, rtol, what);
}

// Central differences of f at x, step h (float64 throughout).
dvec fd_grad(const std::function<double(const dvec &)> &f, dvec x, double h = 1e-6) {
  dvec g(x.size());
  for (size_t i = 0; i < x.size(); i++) {
    const double xi = x[i];
    x[i] = xi + h;
    const double fp = f(x);
    x[i] = xi - h;
    const double fm = f(x);
    x[i] = xi;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}
double dot(const dvec &a, const fvec &w) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); i++)
    s += a[i] * double(w[i]);
  return s;
}

constexpr double FWD = 1e-5; // forward (worst seen: 6e-7)
constexpr double BWD =
    2e-5; // backward vs finite differences or analytic float64 (worst seen: 2e-6)

// ---------------------------------------------------------------- float64 references

dvec encoder_ref(const ivec &inp, const dvec &wte, const dvec &wpe, int B, int T, int C,
                 Dropout d) {
  dvec out(size_t(B) * T * C);
  for (int n = 0; n < B * T; n++)
    for (int c = 0; c < C; c++)
      out[size_t(n) * C + c] = (wte[size_t(inp[n]) * C + c] + wpe[size_t(n % T) * C + c]) *
                               dkeep(d, uint64_t(n) * C + c);
  return out;
}

dvec layernorm_ref(const dvec &x, const dvec &w, const dvec *b, int N, int C, dvec *mean = nullptr,
                   dvec *rstd = nullptr) {
  dvec out(x.size());
  for (int n = 0; n < N; n++) {
    double m = 0, v = 0;
    for (int c = 0; c < C; c++)
      m += x[size_t(n) * C + c];
    m /= C;
    for (int c = 0; c < C; c++)
      v += (x[size_t(n) * C + c] - m) * (x[size_t(n) * C + c] - m);
    const double rs = 1.0 / std::sqrt(v / C + 1e-5);
    for (int c = 0; c < C; c++)
      out[size_t(n) * C + c] = (x[size_t(n) * C + c] - m) * rs * w[c] + (b ? (*b)[c] : 0.0);
    if (mean) mean->push_back(m);
    if (rstd) rstd->push_back(rs);
  }
  return out;
}

dvec matmul_ref(const dvec &x, const dvec &w, const dvec *b, int N, int C, int OC) {
  dvec out(size_t(N) * OC);
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double s = b ? (*b)[o] : 0.0;
      for (int c = 0; c < C; c++)
        s += x[size_t(n) * C + c] * w[size_t(o) * C + c];
      out[size_t(n) * OC + o] = s;
    }
  return out;
}

void attention_ref(dvec &out, dvec &att, const dvec &qkv, int B, int T, int C, int NH, Dropout d) {
  const int HS = C / NH;
  const double scale = 1.0 / std::sqrt(double(HS));
  out.assign(size_t(B) * T * C, 0.0);
  att.assign(size_t(B) * NH * T * T, 0.0);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int t = 0; t < T; t++) {
        const double *q = &qkv[(size_t(b) * T + t) * 3 * C + h * HS];
        double *a = &att[((size_t(b) * NH + h) * T + t) * T];
        double mx = -1e300, sum = 0;
        for (int j = 0; j <= t; j++) {
          const double *k = &qkv[(size_t(b) * T + j) * 3 * C + C + h * HS];
          double s = 0;
          for (int i = 0; i < HS; i++)
            s += q[i] * k[i];
          a[j] = s * scale;
          mx = std::max(mx, a[j]);
        }
        for (int j = 0; j <= t; j++)
          sum += (a[j] = std::exp(a[j] - mx));
        for (int j = 0; j <= t; j++)
          a[j] /= sum;
        for (int j = 0; j <= t; j++) {
          const double pd = a[j] * dkeep(d, ((uint64_t(b) * NH + h) * T + t) * T + j);
          const double *v = &qkv[(size_t(b) * T + j) * 3 * C + 2 * C + h * HS];
          for (int i = 0; i < HS; i++)
            out[(size_t(b) * T + t) * C + h * HS + i] += pd * v[i];
        }
      }
}

// Analytic float64 backward of attention_ref (checked against finite differences below).
dvec attention_backward_ref(const dvec &dout, const dvec &qkv, int B, int T, int C, int NH,
                            Dropout d) {
  const int HS = C / NH;
  const double scale = 1.0 / std::sqrt(double(HS));
  dvec out, att, dqkv(qkv.size(), 0.0);
  attention_ref(out, att, qkv, B, T, C, NH, d);
  auto at = [&](int b, int t, int part, int h) {
    return (size_t(b) * T + t) * 3 * C + part * C + h * HS;
  };
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int t = 0; t < T; t++) {
        const double *P = &att[((size_t(b) * NH + h) * T + t) * T];
        const double *g = &dout[(size_t(b) * T + t) * C + h * HS];
        dvec dP(t + 1);
        double dotp = 0;
        for (int j = 0; j <= t; j++) {
          const double m = dkeep(d, ((uint64_t(b) * NH + h) * T + t) * T + j);
          double s = 0;
          for (int i = 0; i < HS; i++) {
            s += g[i] * qkv[at(b, j, 2, h) + i];
            dqkv[at(b, j, 2, h) + i] += P[j] * m * g[i];
          }
          dP[j] = s * m;
          dotp += P[j] * dP[j];
        }
        for (int j = 0; j <= t; j++) {
          const double dS = P[j] * (dP[j] - dotp) * scale;
          for (int i = 0; i < HS; i++) {
            dqkv[at(b, t, 0, h) + i] += dS * qkv[at(b, j, 1, h) + i];
            dqkv[at(b, j, 1, h) + i] += dS * qkv[at(b, t, 0, h) + i];
          }
        }
      }
  return dqkv;
}

double gelu_ref(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

dvec crossentropy_ref(const dvec &logits, const ivec &targets, int N, int V, int Vp) {
  dvec losses(N);
  for (int n = 0; n < N; n++) {
    const double *x = &logits[size_t(n) * Vp];
    double mx = -1e300, s = 0;
    for (int i = 0; i < V; i++)
      mx = std::max(mx, x[i]);
    for (int i = 0; i < V; i++)
      s += std::exp(x[i] - mx);
    losses[n] = std::log(s) + mx - x[targets[n]];
  }
  return losses;
}

// ---------------------------------------------------------------- tests

TEST(CpuKernels, ExpApproxIsAccurate) {
  double worst = 0;
  for (float x = -87.0f; x < 88.0f; x += 0.001237f) {
    const double ref = std::exp(double(x));
    worst = std::max(worst, std::fabs(cpu::detail::exp_approx(x) - ref) / ref);
  }
  EXPECT_LT(worst, 3e-7); // about 2.5 ulp
  EXPECT_EQ(cpu::detail::exp_approx(0.0f), 1.0f);
  EXPECT_EQ(cpu::detail::exp_approx(-100.0f), 0.0f);
  EXPECT_EQ(cpu::detail::exp_approx(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_TRUE(std::isinf(cpu::detail::exp_approx(100.0f)));
}

class EncoderTest : public ::testing::TestWithParam<std::tuple<int, float>> {};

TEST_P(EncoderTest, ForwardAndBackward) {
  const auto [C, p] = GetParam();
  const int B = 3, T = 7, V = 37, Vp = 64;
  const Dropout d{p, 0xabcdefULL};
  Rng rng(1);
  ivec inp = tokens(B * T, V, rng);
  inp[5] = inp[0], inp[13] = inp[0], inp[20] = inp[7]; // repeated tokens share dwte rows
  const fvec wte = randn(size_t(Vp) * C, rng), wpe = randn(size_t(T) * C, rng);
  fvec out = poisoned(size_t(B) * T * C);
  cpu::encoder_forward(out.data(), inp.data(), wte.data(), wpe.data(), B, T, C, d);
  expect_close(out, encoder_ref(inp, to_d(wte), to_d(wpe), B, T, C, d), FWD, "out");

  const fvec w = randn(out.size(), rng);
  const fvec dwte0 = randn(wte.size(), rng), dwpe0 = randn(wpe.size(), rng);
  fvec dwte = dwte0, dwpe = dwpe0;
  cpu::encoder_backward(dwte.data(), dwpe.data(), w.data(), inp.data(), B, T, C, d);
  const dvec wte_d = to_d(wte), wpe_d = to_d(wpe);
  const dvec gte =
      fd_grad([&](const dvec &x) { return dot(encoder_ref(inp, x, wpe_d, B, T, C, d), w); }, wte_d);
  const dvec gpe =
      fd_grad([&](const dvec &x) { return dot(encoder_ref(inp, wte_d, x, B, T, C, d), w); }, wpe_d);
  expect_added(dwte, dwte0, gte, BWD, "dwte");
  expect_added(dwpe, dwpe0, gpe, BWD, "dwpe");
}
INSTANTIATE_TEST_SUITE_P(Sizes, EncoderTest,
                         ::testing::Values(std::tuple{20, 0.0f}, std::tuple{150, 0.0f},
                                           std::tuple{20, 0.5f}, std::tuple{150, 0.5f}));

class LayerNormTest : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(LayerNormTest, ForwardAndBackward) {
  const auto [C, with_bias] = GetParam();
  const int N = 21;
  Rng rng(2);
  const fvec x = randn(size_t(N) * C, rng, 2.0f, 0.7f), w = randn(C, rng, 0.5f, 1.0f),
             b = randn(C, rng);
  const dvec xd = to_d(x), wd = to_d(w), bd = to_d(b);
  const dvec *bp = with_bias ? &bd : nullptr;
  fvec out = poisoned(x.size()), mean = poisoned(N), rstd = poisoned(N);
  cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(),
                         with_bias ? b.data() : nullptr, N, C);
  dvec mref, rref;
  expect_close(out, layernorm_ref(xd, wd, bp, N, C, &mref, &rref), FWD, "out");
  expect_close(mean, mref, FWD, "mean");
  expect_close(rstd, rref, FWD, "rstd");

  const fvec g = randn(out.size(), rng);
  const fvec dx0 = randn(x.size(), rng), dw0 = randn(C, rng), db0 = randn(C, rng);
  fvec dx = dx0, dw = dw0, db = db0;
  cpu::layernorm_backward(dx.data(), dw.data(), with_bias ? db.data() : nullptr, g.data(), x.data(),
                          w.data(), mean.data(), rstd.data(), N, C);
  auto loss = [&](const dvec &xx, const dvec &ww, const dvec &bb) {
    return dot(layernorm_ref(xx, ww, with_bias ? &bb : nullptr, N, C), g);
  };
  expect_added(dx, dx0, fd_grad([&](const dvec &v) { return loss(v, wd, bd); }, xd), BWD, "dinp");
  expect_added(dw, dw0, fd_grad([&](const dvec &v) { return loss(xd, v, bd); }, wd), BWD,
               "dweight");
  if (with_bias)
    expect_added(db, db0, fd_grad([&](const dvec &v) { return loss(xd, wd, v); }, bd), BWD,
                 "dbias");
  else
    EXPECT_EQ(std::memcmp(db.data(), db0.data(), C * sizeof(float)), 0);
}
INSTANTIATE_TEST_SUITE_P(Sizes, LayerNormTest,
                         ::testing::Values(std::tuple{20, true}, std::tuple{150, true},
                                           std::tuple{20, false}, std::tuple{150, false}));

class MatmulTest : public ::testing::TestWithParam<std::tuple<int, int, bool>> {};

TEST_P(MatmulTest, ForwardAndBackward) {
  const auto [C, OC, with_bias] = GetParam();
  const int N = 21;
  Rng rng(3);
  const fvec x = randn(size_t(N) * C, rng), w = randn(size_t(OC) * C, rng), b = randn(OC, rng);
  const dvec xd = to_d(x), wd = to_d(w), bd = to_d(b);
  fvec out = poisoned(size_t(N) * OC);
  cpu::matmul_forward(out.data(), x.data(), w.data(), with_bias ? b.data() : nullptr, N, C, OC);
  expect_close(out, matmul_ref(xd, wd, with_bias ? &bd : nullptr, N, C, OC), FWD, "out");

  const fvec g = randn(out.size(), rng);
  fvec dx = poisoned(x.size());
  const fvec dw0 = randn(w.size(), rng), db0 = randn(OC, rng);
  fvec dw = dw0, db = db0;
  cpu::matmul_backward(dx.data(), dw.data(), with_bias ? db.data() : nullptr, g.data(), x.data(),
                       w.data(), N, C, OC);
  auto loss = [&](const dvec &xx, const dvec &ww, const dvec &bb) {
    return dot(matmul_ref(xx, ww, &bb, N, C, OC), g);
  };
  expect_close(dx, fd_grad([&](const dvec &v) { return loss(v, wd, bd); }, xd), BWD, "dinp");
  expect_added(dw, dw0, fd_grad([&](const dvec &v) { return loss(xd, v, bd); }, wd), BWD,
               "dweight");
  if (with_bias)
    expect_added(db, db0, fd_grad([&](const dvec &v) { return loss(xd, wd, v); }, bd), BWD,
                 "dbias");

  // dinp == nullptr: the weight gradient alone, accumulated again.
  fvec dw2 = dw;
  cpu::matmul_backward(nullptr, dw2.data(), nullptr, g.data(), x.data(), w.data(), N, C, OC);
  expect_added(dw2, dw, fd_grad([&](const dvec &v) { return loss(xd, v, bd); }, wd), BWD,
               "dweight (no dinp)");
}
INSTANTIATE_TEST_SUITE_P(Sizes, MatmulTest,
                         ::testing::Values(std::tuple{20, 13, true}, std::tuple{20, 13, false},
                                           std::tuple{37, 70, true}));

class AttentionTest : public ::testing::TestWithParam<std::tuple<int, int, int, int, float>> {};

TEST_P(AttentionTest, ForwardAndBackward) {
  const auto [B, T, C, NH, p] = GetParam();
  const Dropout d{p, 0x5eedULL};
  Rng rng(4);
  const fvec qkv = randn(size_t(B) * T * 3 * C, rng);
  const dvec qkvd = to_d(qkv);
  fvec out = poisoned(size_t(B) * T * C), att = poisoned(size_t(B) * NH * T * T);
  cpu::attention_forward(out.data(), att.data(), qkv.data(), B, T, C, NH, d);
  dvec oref, aref;
  attention_ref(oref, aref, qkvd, B, T, C, NH, d);
  expect_close(out, oref, FWD, "out");
  expect_close(att, aref, FWD, "att");
  for (int bh = 0; bh < B * NH; bh++)
    for (int t = 0; t < T; t++)
      for (int j = t + 1; j < T; j++)
        ASSERT_EQ(att[(size_t(bh) * T + t) * T + j], 0.0f) << "above the diagonal";

  const fvec g = randn(out.size(), rng);
  fvec dqkv = poisoned(qkv.size()), scratch = poisoned(att.size());
  cpu::attention_backward(dqkv.data(), scratch.data(), g.data(), qkv.data(), att.data(), B, T, C,
                          NH, d);
  const dvec gref = attention_backward_ref(to_d(g), qkvd, B, T, C, NH, d);
  expect_close(dqkv, gref, BWD, "dqkv");
  if (T <= 16) { // the analytic reference itself against finite differences
    const dvec fd = fd_grad(
        [&](const dvec &x) {
          dvec o, a;
          attention_ref(o, a, x, B, T, C, NH, d);
          return dot(o, g);
        },
        qkvd);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < fd.size(); i++)
      scale = std::max(scale, std::fabs(fd[i]));
    for (size_t i = 0; i < fd.size(); i++)
      worst = std::max(worst, std::fabs(fd[i] - gref[i]) / scale);
    EXPECT_LT(worst, 1e-7) << "analytic attention backward vs finite differences";
  }
}
// T = 150 crosses two row-block boundaries (blocks of 64) of the CPU body.
INSTANTIATE_TEST_SUITE_P(Sizes, AttentionTest,
                         ::testing::Values(std::tuple{3, 7, 20, 4, 0.0f},
                                           std::tuple{3, 7, 20, 4, 0.5f},
                                           std::tuple{2, 150, 16, 2, 0.0f},
                                           std::tuple{2, 150, 16, 2, 0.2f}));

TEST(Gelu, ForwardAndBackward) {
  const size_t N = 1001;
  Rng rng(5);
  fvec x = randn(N, rng, 3.0f);
  x[0] = -12.0f, x[1] = 12.0f, x[2] = -60.0f, x[3] = 1e-6f;
  dvec ref(N);
  for (size_t i = 0; i < N; i++)
    ref[i] = gelu_ref(x[i]);
  fvec out = poisoned(N);
  cpu::gelu_forward(out.data(), x.data(), N);
  expect_close(out, ref, FWD, "gelu");

  const fvec g = randn(N, rng);
  dvec gref(N);
  for (size_t i = 0; i < N; i++) {
    const double h = 1e-6;
    gref[i] = (gelu_ref(double(x[i]) + h) - gelu_ref(double(x[i]) - h)) / (2 * h) * g[i];
  }
  fvec dx = poisoned(N);
  cpu::gelu_backward(dx.data(), x.data(), g.data(), N);
  expect_close(dx, gref, BWD, "dinp");
  fvec inplace = g; // dinp aliasing dout
  cpu::gelu_backward(inplace.data(), x.data(), inplace.data(), N);
  EXPECT_EQ(std::memcmp(inplace.data(), dx.data(), N * sizeof(float)), 0);
}

TEST(Residual, ForwardWithDropoutAndItsBackward) {
  const size_t N = 100003;
  Rng rng(6);
  const fvec a = randn(N, rng), b = randn(N, rng);
  for (float p : {0.0f, 0.5f}) {
    const Dropout d{p, 77};
    dvec ref(N);
    size_t kept = 0;
    for (size_t i = 0; i < N; i++) {
      ref[i] = double(a[i]) + double(b[i]) * dkeep(d, i);
      kept += dkeep(d, i) != 0.0;
    }
    if (p > 0) {
      EXPECT_GT(kept, N * 0.49);
      EXPECT_LT(kept, N * 0.51);
    }
    fvec out = poisoned(N);
    cpu::residual_forward(out.data(), a.data(), b.data(), N, d);
    expect_close(out, ref, FWD, "out");
    fvec inplace = a; // out aliasing a
    cpu::residual_forward(inplace.data(), inplace.data(), b.data(), N, d);
    EXPECT_EQ(std::memcmp(inplace.data(), out.data(), N * sizeof(float)), 0);

    // dropout_backward is the vector-Jacobian product of residual_forward with respect to b.
    const size_t n = 257;
    const fvec g = randn(n, rng);
    const dvec ad = to_d(fvec(a.begin(), a.begin() + n)), bd = to_d(fvec(b.begin(), b.begin() + n));
    const dvec fd = fd_grad(
        [&](const dvec &x) {
          double s = 0;
          for (size_t i = 0; i < n; i++)
            s += (ad[i] + x[i] * dkeep(d, i)) * g[i];
          return s;
        },
        bd);
    fvec db = poisoned(n);
    cpu::dropout_backward(db.data(), g.data(), n, d);
    expect_close(db, fd, BWD, "dropout_backward");
    fvec db2 = g;
    cpu::dropout_backward(db2.data(), db2.data(), n, d);
    EXPECT_EQ(std::memcmp(db2.data(), db.data(), n * sizeof(float)), 0);
  }
}

class CrossEntropyTest : public ::testing::TestWithParam<std::tuple<int, int, float>> {};

TEST_P(CrossEntropyTest, LossAndGradient) {
  const auto [V, Vp, offset] = GetParam();
  const int N = 21;
  Rng rng(7);
  fvec logits = randn(size_t(N) * Vp, rng, 3.0f, offset);
  for (int n = 0; n < N; n++) // padding columns: never read
    for (int i = V; i < Vp; i++)
      logits[size_t(n) * Vp + i] = (n % 2) ? NaN : 1e30f;
  const ivec targets = tokens(N, V, rng);
  const dvec ld = to_d(logits);
  const dvec ref = crossentropy_ref(ld, targets, N, V, Vp);

  // dloss == 0: losses only, logits untouched.
  fvec copy = logits, losses = poisoned(N);
  cpu::crossentropy_forward_backward(losses.data(), copy.data(), targets.data(), N, V, Vp, 0.0f);
  expect_close(losses, ref, FWD, "losses (no grad)");
  EXPECT_EQ(std::memcmp(copy.data(), logits.data(), logits.size() * sizeof(float)), 0);

  const float dloss = 1.0f / N;
  losses = poisoned(N);
  copy = logits;
  cpu::crossentropy_forward_backward(losses.data(), copy.data(), targets.data(), N, V, Vp, dloss);
  expect_close(losses, ref, FWD, "losses");
  // Row n's logits affect only loss n: differences one row at a time, first V columns only.
  dvec fd;
  fvec grad;
  for (int n = 0; n < N; n++) {
    const dvec row(ld.begin() + size_t(n) * Vp, ld.begin() + size_t(n) * Vp + V);
    const ivec tgt{targets[n]};
    const dvec fdn =
        fd_grad([&](const dvec &x) { return crossentropy_ref(x, tgt, 1, V, V)[0] * dloss; }, row);
    fd.insert(fd.end(), fdn.begin(), fdn.end());
    grad.insert(grad.end(), copy.begin() + size_t(n) * Vp, copy.begin() + size_t(n) * Vp + V);
  }
  expect_close(grad, fd, BWD, "dlogits");
  for (int n = 0; n < N; n++)
    for (int i = V; i < Vp; i++)
      ASSERT_EQ(copy[size_t(n) * Vp + i], 0.0f) << "padding gradient must be exactly 0";
}
INSTANTIATE_TEST_SUITE_P(Sizes, CrossEntropyTest,
                         ::testing::Values(std::tuple{37, 64, 0.0f}, std::tuple{1000, 1031, 0.0f},
                                           std::tuple{37, 64, 200.0f}));

TEST(AdamW, ThreeStepsMatchFloat64Formula) {
  const size_t n = 1001;
  const float lr = 1e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, gs = 0.7f;
  Rng rng(8);
  fvec p = randn(n, rng), m(n, 0.0f), v(n, 0.0f);
  dvec pr = to_d(p), mr(n, 0.0), vr(n, 0.0);
  for (int t = 1; t <= 3; t++) {
    const fvec g = randn(n, rng, 0.1f);
    for (size_t i = 0; i < n; i++) {
      const double gi = double(g[i]) * gs;
      pr[i] *= 1.0 - double(lr) * wd;
      mr[i] = b1 * mr[i] + (1.0 - b1) * gi;
      vr[i] = b2 * vr[i] + (1.0 - b2) * gi * gi;
      const double bc1 = 1.0 - std::pow(double(b1), t), bc2 = 1.0 - std::pow(double(b2), t);
      pr[i] -= double(lr) / bc1 * mr[i] / (std::sqrt(vr[i]) / std::sqrt(bc2) + eps);
    }
    fvec gg = g;
    const bool zero = t != 2;
    cpu::adamw_update(p.data(), gg.data(), m.data(), v.data(), n, lr, b1, b2, eps, wd, t, gs, zero);
    for (size_t i = 0; i < n; i++)
      ASSERT_EQ(gg[i], zero ? 0.0f : g[i]) << "grad " << i << " at step " << t;
    expect_close(p, pr, FWD, "params");
    expect_close(m, mr, FWD, "m");
    expect_close(v, vr, FWD, "v");
  }
}

// Muon's second part on a window of a matrix (a ZeRO-1 shard's part) writes exactly the window's
// slice of the whole matrix's update, for a wide and a tall (transposed) matrix, with windows that
// start and end inside rows, and touches nothing else.
TEST(Muon, WindowIsTheSliceOfTheWholeUpdate) {
  Rng rng(10);
  for (auto [rows, cols] : {std::pair{12, 40}, std::pair{40, 12}}) {
    const size_t n = size_t(rows) * cols;
    const fvec w0 = randn(n, rng, 0.05f), u = randn(n, rng, 0.01f);
    fvec whole = w0, work(cpu::muon_scratch_elems(rows, cols));
    cpu::muon_orthogonal_update(whole.data(), u.data(), work.data(), rows, cols, 0, n, 0.02f);
    for (auto [lo, hi] : {std::pair{size_t(0), size_t(7)}, std::pair{size_t(13), n / 2 + 3},
                          std::pair{n - 29, n}, std::pair{size_t(5), size_t(5)}}) {
      fvec w(hi - lo + 2, -7.0f); // one guard element on each side
      std::copy(w0.begin() + long(lo), w0.begin() + long(hi), w.begin() + 1);
      cpu::muon_orthogonal_update(w.data() + 1, u.data(), work.data(), rows, cols, lo, hi, 0.02f);
      EXPECT_EQ(w.front(), -7.0f);
      EXPECT_EQ(w.back(), -7.0f);
      for (size_t i = lo; i < hi; i++)
        ASSERT_EQ(w[i - lo + 1], whole[i])
            << rows << "x" << cols << " [" << lo << ", " << hi << ") element " << i;
    }
  }
}

TEST(SumSquares, MatchesFloat64) {
  Rng rng(9);
  for (size_t n : {size_t(0), size_t(1), size_t(7), size_t(100003)}) {
    const fvec g = randn(n, rng);
    double ref = 0;
    for (float x : g)
      ref += double(x) * x;
    EXPECT_NEAR(cpu::sum_squares(g.data(), n), ref, 1e-12 * ref) << "n = " << n;
  }
}

TEST(Ops, BitwiseReproducible) {
  auto run = [] {
    const int B = 2, T = 150, C = 96, NH = 3, V = 301, Vp = 320;
    const Dropout d{0.1f, 99};
    Rng rng(10);
    const ivec inp = tokens(B * T, V, rng), tg = tokens(B * T, V, rng);
    const fvec wte = randn(size_t(Vp) * C, rng), wpe = randn(size_t(T) * C, rng);
    const fvec lw = randn(C, rng), lb = randn(C, rng), w = randn(size_t(3) * C * C, rng, 0.1f),
               bias = randn(3 * C, rng);
    const size_t NC = size_t(B) * T * C;
    fvec x(NC), ln(NC), mean(B * T), rstd(B * T), qkv(3 * NC), att(size_t(B) * NH * T * T), y(NC),
        ge(NC), logits = randn(size_t(B) * T * Vp, rng), losses(B * T);
    cpu::encoder_forward(x.data(), inp.data(), wte.data(), wpe.data(), B, T, C, d);
    cpu::layernorm_forward(ln.data(), mean.data(), rstd.data(), x.data(), lw.data(), lb.data(),
                           B * T, C);
    cpu::matmul_forward(qkv.data(), ln.data(), w.data(), bias.data(), B * T, C, 3 * C);
    cpu::attention_forward(y.data(), att.data(), qkv.data(), B, T, C, NH, d);
    cpu::gelu_forward(ge.data(), y.data(), NC);
    cpu::residual_forward(x.data(), x.data(), ge.data(), NC, d);
    cpu::crossentropy_forward_backward(losses.data(), logits.data(), tg.data(), B * T, V, Vp,
                                       0.01f);
    fvec dqkv(qkv.size()), scratch(att.size()), dln(NC, 0.0f), dw(w.size(), 0.0f), db(3 * C, 0.0f),
        dlw(C, 0.0f), dlb(C, 0.0f), dwte(wte.size(), 0.0f), dwpe(wpe.size(), 0.0f), dx(NC, 0.0f),
        m(w.size(), 0.0f), v(w.size(), 0.0f);
    fvec dy = randn(NC, rng);
    cpu::gelu_backward(dy.data(), y.data(), dy.data(), NC);
    cpu::dropout_backward(dy.data(), dy.data(), NC, d);
    cpu::attention_backward(dqkv.data(), scratch.data(), dy.data(), qkv.data(), att.data(), B, T, C,
                            NH, d);
    cpu::matmul_backward(dln.data(), dw.data(), db.data(), dqkv.data(), ln.data(), w.data(), B * T,
                         C, 3 * C);
    cpu::layernorm_backward(dx.data(), dlw.data(), dlb.data(), dln.data(), x.data(), lw.data(),
                            mean.data(), rstd.data(), B * T, C);
    cpu::encoder_backward(dwte.data(), dwpe.data(), dx.data(), inp.data(), B, T, C, d);
    fvec p = w;
    const double ss = cpu::sum_squares(dw.data(), dw.size());
    cpu::adamw_update(p.data(), dw.data(), m.data(), v.data(), p.size(), 1e-3f, 0.9f, 0.95f, 1e-8f,
                      0.1f, 1, float(1.0 / std::sqrt(ss)), false);
    fvec all;
    for (const fvec *f : {&x,   &ln, &mean, &rstd, &qkv, &att,  &y,    &ge, &logits, &losses, &dqkv,
                          &dln, &dw, &db,   &dlw,  &dlb, &dwte, &dwpe, &dx, &p,      &m,      &v})
      all.insert(all.end(), f->begin(), f->end());
    all.push_back(float(ss));
    return all;
  };
  const fvec first = run(), second = run();
  ASSERT_EQ(first.size(), second.size());
  EXPECT_EQ(std::memcmp(first.data(), second.data(), first.size() * sizeof(float)), 0);
}

TEST(Ops, RejectBadArguments) {
  float x = 1.0f, out = 0.0f;
  EXPECT_THROW(cpu::residual_forward(&out, &x, &x, 1, Dropout{1.0f, 0}), Error);
  int32_t bad_target = 5;
  float losses = 0.0f, logits[8] = {};
  EXPECT_THROW(cpu::crossentropy_forward_backward(&losses, logits, &bad_target, 1, 5, 8, 1.0f),
               Error);
}

} // namespace
