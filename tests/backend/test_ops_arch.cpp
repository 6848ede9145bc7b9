// Tests of the CPU bodies of the architecture options' ops (backend/ops.h): RMSNorm, QK-norm,
// rotary, ReLU^2, logit soft-capping (alone and through the cross-entropy's gradient) and the
// encoder without position embeddings. Forwards against float64 references written here from the
// definitions, backwards against central finite differences of sum(out * g) on those references.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "backend/ops.h"
#include "core/rng.h"

using namespace finegpt;
using dvec = std::vector<double>;
using fvec = std::vector<float>;
using ivec = std::vector<int32_t>;

namespace {

const float NaN = std::numeric_limits<float>::quiet_NaN();
constexpr double FWD = 1e-5, BWD = 2e-5;

fvec randn(size_t n, Rng &rng, float scale = 1.0f, float offset = 0.0f) {
  fvec x(n);
  for (auto &e : x)
    e = offset + scale * rng.normal();
  return x;
}
dvec to_d(const fvec &x) { return dvec(x.begin(), x.end()); }

// Every |got - ref| <= rtol * (|ref| + rms(ref)); NaN fails.
void expect_close(const float *got, const dvec &ref, double rtol, const char *what) {
  double ss = 0.0;
  for (double r : ref)
    ss += r * r;
  const double scale = std::sqrt(ss / double(ref.size()));
  int bad = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    const double err = std::fabs(double(got[i]) - ref[i]);
    if (!(err <= rtol * (std::fabs(ref[i]) + scale)) && bad++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << ref[i];
  }
  EXPECT_EQ(bad, 0) << what;
}
void expect_close(const fvec &got, const dvec &ref, double rtol, const char *what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  expect_close(got.data(), ref, rtol, what);
}
// got - before (an op that adds) against ref
void expect_added(const fvec &got, const fvec &before, const dvec &ref, double rtol,
                  const char *what) {
  fvec d(got.size());
  for (size_t i = 0; i < d.size(); i++)
    d[i] = got[i] - before[i];
  expect_close(d, ref, rtol, what);
}

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

// ---------------------------------------------------------------- float64 references

dvec rmsnorm_ref(const dvec &x, const dvec &w, int N, int C, dvec *rstd = nullptr) {
  dvec out(x.size());
  for (int n = 0; n < N; n++) {
    double ss = 0;
    for (int c = 0; c < C; c++)
      ss += x[size_t(n) * C + c] * x[size_t(n) * C + c];
    const double rs = 1.0 / std::sqrt(ss / C + 1e-6);
    for (int c = 0; c < C; c++)
      out[size_t(n) * C + c] = x[size_t(n) * C + c] * rs * w[c];
    if (rstd) rstd->push_back(rs);
  }
  return out;
}

// Per head of q and k (columns [0, 2C) of each 3C row): x / sqrt(mean(x^2) + 1e-6).
dvec qk_norm_ref(dvec qkv, int N, int C, int NH, dvec *rstd = nullptr) {
  const int HS = C / NH;
  for (int n = 0; n < N; n++)
    for (int h = 0; h < 2 * NH; h++) {
      double *x = qkv.data() + size_t(n) * 3 * C + size_t(h) * HS, ss = 0;
      for (int i = 0; i < HS; i++)
        ss += x[i] * x[i];
      const double rs = 1.0 / std::sqrt(ss / HS + 1e-6);
      for (int i = 0; i < HS; i++)
        x[i] *= rs;
      if (rstd) rstd->push_back(rs);
    }
  return qkv;
}

// Rotary from its definition: in each q and k head, the pair (i, i + HS/2) of row (b, t) is the
// complex number x_i + j x_{i+HS/2}, multiplied by exp(j (pos0 + t) 10000^(-2i/HS)).
dvec rotary_ref(dvec qkv, int B, int T, int C, int NH, int pos0) {
  const int HS = C / NH, half = HS / 2;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int h = 0; h < 2 * NH; h++) {
        double *x = qkv.data() + (size_t(b) * T + t) * 3 * C + size_t(h) * HS;
        for (int i = 0; i < half; i++) {
          const double a = (pos0 + t) * std::pow(10000.0, -2.0 * i / HS);
          const double re = x[i], im = x[i + half];
          x[i] = re * std::cos(a) - im * std::sin(a);
          x[i + half] = re * std::sin(a) + im * std::cos(a);
        }
      }
  return qkv;
}

dvec crossentropy_softcap_ref(const dvec &raw, const ivec &targets, int N, int V, int Vp,
                              double cap) {
  dvec losses(N);
  for (int n = 0; n < N; n++) {
    double m = -INFINITY;
    dvec y(V);
    for (int i = 0; i < V; i++)
      m = std::max(m, y[i] = cap * std::tanh(raw[size_t(n) * Vp + i] / cap));
    double s = 0;
    for (int i = 0; i < V; i++)
      s += std::exp(y[i] - m);
    losses[n] = m + std::log(s) - y[targets[n]];
  }
  return losses;
}

// ---------------------------------------------------------------- tests

TEST(RmsNorm, ForwardAndBackward) {
  for (int C : {20, 150}) {
    const int N = 13;
    Rng rng(11);
    const fvec x = randn(size_t(N) * C, rng, 2.0f, 0.5f), w = randn(C, rng, 0.5f, 1.0f);
    const dvec xd = to_d(x), wd = to_d(w);
    fvec out(x.size(), NaN), rstd(N, NaN);
    cpu::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C);
    dvec rref;
    expect_close(out, rmsnorm_ref(xd, wd, N, C, &rref), FWD, "out");
    expect_close(rstd, rref, FWD, "rstd");
    const fvec g = randn(out.size(), rng), dx0 = randn(x.size(), rng), dw0 = randn(C, rng);
    fvec dx = dx0, dw = dw0;
    cpu::rmsnorm_backward(dx.data(), dw.data(), g.data(), x.data(), w.data(), rstd.data(), N, C);
    auto loss = [&](const dvec &xx, const dvec &ww) { return dot(rmsnorm_ref(xx, ww, N, C), g); };
    expect_added(dx, dx0, fd_grad([&](const dvec &v) { return loss(v, wd); }, xd), BWD, "dinp");
    expect_added(dw, dw0, fd_grad([&](const dvec &v) { return loss(xd, v); }, wd), BWD, "dweight");
  }
}

TEST(QkNorm, ForwardAndBackward) {
  for (auto [C, NH] : {std::pair{24, 3}, std::pair{64, 2}}) {
    const int N = 7;
    Rng rng(12);
    const fvec x = randn(size_t(N) * 3 * C, rng, 1.5f, 0.3f);
    const dvec xd = to_d(x);
    fvec y = x, rstd(size_t(N) * 2 * NH, NaN);
    cpu::qk_norm_forward(y.data(), rstd.data(), N, C, NH);
    dvec rref;
    const dvec yref = qk_norm_ref(xd, N, C, NH, &rref);
    expect_close(y, yref, FWD, "qkv");
    expect_close(rstd, rref, FWD, "rstd");
    for (int n = 0; n < N; n++) // v untouched, bit for bit
      EXPECT_EQ(std::memcmp(y.data() + size_t(n) * 3 * C + 2 * C,
                            x.data() + size_t(n) * 3 * C + 2 * C, C * sizeof(float)),
                0);
    const fvec g = randn(x.size(), rng);
    fvec d = g;
    cpu::qk_norm_backward(d.data(), y.data(), rstd.data(), N, C, NH);
    expect_close(d, fd_grad([&](const dvec &v) { return dot(qk_norm_ref(v, N, C, NH), g); }, xd),
                 BWD, "dqkv");
  }
}

TEST(Rotary, ForwardFromItsDefinitionAndBackward) {
  for (auto [C, NH, pos0] : {std::tuple{24, 3, 0}, std::tuple{64, 2, 5}}) {
    const int B = 2, T = 9;
    Rng rng(13);
    const fvec x = randn(size_t(B) * T * 3 * C, rng);
    const dvec xd = to_d(x);
    fvec y = x;
    cpu::rotary_forward(y.data(), B, T, C, NH, pos0);
    expect_close(y, rotary_ref(xd, B, T, C, NH, pos0), FWD, "qkv");
    const fvec g = randn(x.size(), rng);
    fvec d = g;
    cpu::rotary_backward(d.data(), B, T, C, NH);
    expect_close(d,
                 fd_grad([&](const dvec &v) { return dot(rotary_ref(v, B, T, C, NH, 0), g); }, xd),
                 BWD, "dqkv");
  }
}

TEST(Rotary, OnePositionAtAnOffsetIsThatRowOfTheSequence) {
  // Generation rotates one position at pos0 = t: the same numbers as row t of the whole sequence.
  const int T = 12, C = 32, NH = 2;
  Rng rng(14);
  const fvec x = randn(size_t(T) * 3 * C, rng);
  fvec all = x;
  cpu::rotary_forward(all.data(), 1, T, C, NH, 0);
  for (int t = 0; t < T; t++) {
    fvec row(x.begin() + size_t(t) * 3 * C, x.begin() + size_t(t + 1) * 3 * C);
    cpu::rotary_forward(row.data(), 1, 1, C, NH, t);
    EXPECT_EQ(std::memcmp(row.data(), all.data() + size_t(t) * 3 * C, 3 * C * sizeof(float)), 0)
        << "position " << t;
  }
}

TEST(Rotary, CommutesWithQkNorm) {
  // The model rotates, then normalises (modded-nanogpt: the reverse): the per-head RMS is
  // invariant under the rotation, so both orders agree to rounding.
  const int B = 2, T = 5, C = 32, NH = 4;
  Rng rng(15);
  const fvec x = randn(size_t(B) * T * 3 * C, rng, 2.0f);
  fvec a = x, b = x, ra(size_t(B) * T * 2 * NH), rb(ra.size());
  cpu::rotary_forward(a.data(), B, T, C, NH, 0);
  cpu::qk_norm_forward(a.data(), ra.data(), B * T, C, NH);
  cpu::qk_norm_forward(b.data(), rb.data(), B * T, C, NH);
  cpu::rotary_forward(b.data(), B, T, C, NH, 0);
  expect_close(a, to_d(b), 1e-6, "rotary then norm");
}

TEST(Relu2, ForwardAndBackward) {
  const size_t N = 1001;
  Rng rng(16);
  fvec x = randn(N, rng, 2.0f);
  x[0] = 0.0f, x[1] = -0.0f, x[2] = -1e30f;
  dvec ref(N), gref(N);
  const fvec g = randn(N, rng);
  for (size_t i = 0; i < N; i++) {
    const double r = x[i] > 0 ? double(x[i]) : 0.0;
    ref[i] = r * r;
    gref[i] = 2 * r * g[i]; // d/dx relu(x)^2 = 2 relu(x)
  }
  fvec out(N, NaN), dx(N, NaN);
  cpu::relu2_forward(out.data(), x.data(), N);
  expect_close(out, ref, FWD, "relu2");
  cpu::relu2_backward(dx.data(), x.data(), g.data(), N);
  expect_close(dx, gref, FWD, "dinp");
  fvec inplace = g;
  cpu::relu2_backward(inplace.data(), x.data(), inplace.data(), N);
  EXPECT_EQ(std::memcmp(inplace.data(), dx.data(), N * sizeof(float)), 0);
}

TEST(Softcap, ForwardAndCrossEntropyThroughIt) {
  const int N = 9, V = 37, Vp = 64;
  const float cap = 4.0f;
  Rng rng(17);
  fvec raw = randn(size_t(N) * Vp, rng, 5.0f);
  dvec capped(raw.size());
  for (size_t i = 0; i < raw.size(); i++)
    capped[i] = cap * std::tanh(double(raw[i]) / cap);
  fvec y = raw;
  cpu::softcap_forward(y.data(), y.size(), cap);
  expect_close(y, capped, FWD, "capped");
  ivec targets(N);
  for (auto &t : targets)
    t = int32_t(rng.below(V));
  const dvec ref = crossentropy_softcap_ref(to_d(raw), targets, N, V, Vp, cap);
  const float dloss = 1.0f / N;
  fvec losses(N, NaN), grad = y;
  cpu::crossentropy_forward_backward(losses.data(), grad.data(), targets.data(), N, V, Vp, dloss,
                                     cap);
  expect_close(losses, ref, FWD, "losses");
  // The gradient of the raw logits, one row at a time (row n feeds loss n only).
  dvec fd;
  fvec got;
  for (int n = 0; n < N; n++) {
    const dvec row(raw.begin() + size_t(n) * Vp, raw.begin() + size_t(n) * Vp + V);
    const ivec tgt{targets[n]};
    auto f = [&](const dvec &v) {
      return crossentropy_softcap_ref(v, tgt, 1, V, V, cap)[0] * dloss;
    };
    const dvec g = fd_grad(f, row);
    fd.insert(fd.end(), g.begin(), g.end());
    got.insert(got.end(), grad.begin() + size_t(n) * Vp, grad.begin() + size_t(n) * Vp + V);
    for (int i = V; i < Vp; i++)
      EXPECT_EQ(grad[size_t(n) * Vp + i], 0.0f);
  }
  expect_close(got, fd, BWD, "dlogits (raw)");
}

TEST(Encoder, WithoutPositionEmbedding) {
  const int B = 2, T = 5, C = 24, V = 11;
  Rng rng(18);
  const fvec wte = randn(size_t(V) * C, rng);
  ivec inp(size_t(B) * T);
  for (auto &t : inp)
    t = int32_t(rng.below(V));
  fvec out(size_t(B) * T * C, NaN);
  cpu::encoder_forward(out.data(), inp.data(), wte.data(), nullptr, B, T, C, Dropout{});
  for (int n = 0; n < B * T; n++)
    EXPECT_EQ(
        std::memcmp(out.data() + size_t(n) * C, wte.data() + size_t(inp[n]) * C, C * sizeof(float)),
        0);
  const fvec g = randn(out.size(), rng);
  fvec dwte(wte.size(), 0.0f);
  dvec want(wte.size(), 0.0);
  for (int n = 0; n < B * T; n++)
    for (int c = 0; c < C; c++)
      want[size_t(inp[n]) * C + c] += g[size_t(n) * C + c];
  cpu::encoder_backward(dwte.data(), nullptr, g.data(), inp.data(), B, T, C, Dropout{});
  expect_close(dwte, want, FWD, "dwte");
}

} // namespace
