// The CUDA bodies of the architecture options' ops (RMSNorm, QK-norm, rotary, ReLU^2, soft-cap,
// the cross-entropy through the cap, the encoder without wpe) against the CPU ops on the same
// bf16-representable inputs, as tests/backend/test_cuda_ops.cpp does for the rest (same
// tolerances: 2e-2 per element relative to |ref| + rms(ref), 1e-2 normwise). Skipped without a
// device; the kernel-host harness (tests/kernel_host) runs them on the host too.
#include "backend/cuda_ops.h"
#include "backend/ops.h"
#include "core/rng.h"
#include "cuda_testing.h"

#include <cmath>
#include <cstring>
#include <gtest/gtest.h>
#include <string>
#include <vector>

using namespace finegpt;
namespace cu = finegpt::cuda;
using cu::bf16;
using fvec = std::vector<float>;
using hvec = std::vector<bf16>;
using ivec = std::vector<int32_t>;

using namespace finegpt::testutil;

namespace {

fvec randn(size_t n, Rng &rng, float scale = 1.0f, float offset = 0.0f) {
  fvec x(n);
  for (auto &e : x)
    e = cu::to_float(cu::to_bf16(offset + scale * rng.normal()));
  return x;
}

void expect_close(const fvec &got, const fvec &ref, const std::string &what,
                  double elem_rtol = 2e-2, double norm_rtol = 1e-2) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  double ss = 0.0, err2 = 0.0;
  for (float r : ref)
    ss += double(r) * r;
  const double rms = std::sqrt(ss / double(ref.size()));
  int bad = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    const double err = std::fabs(double(got[i]) - double(ref[i]));
    if (!(err <= elem_rtol * (std::fabs(double(ref[i])) + rms)) && bad++ < 5)
      ADD_FAILURE() << what << "[" << i << "]: got " << got[i] << ", want " << ref[i];
    if (std::isfinite(err)) err2 += err * err;
  }
  EXPECT_EQ(bad, 0) << what;
  EXPECT_LE(std::sqrt(err2 / std::max(ss, 1e-300)), norm_rtol) << what << " normwise";
}

struct Shape {
  int B, T, C, NH;
};
const Shape SHAPES[] = {{3, 37, 96, 3}, {2, 70, 128, 1}, {2, 1, 64, 2}};

TEST(CudaOpsArch, RmsNorm) {
  REQUIRE_DEVICE();
  Rng rng(21);
  for (const Shape &s : SHAPES) {
    const int N = s.B * s.T, C = s.C;
    const std::string tag = cat("rmsnorm C=", C, " N=", N);
    const fvec x = randn(size_t(N) * C, rng, 2.0f, 0.5f), w = randn(C, rng, 0.5f, 1.0f);
    fvec out(size_t(N) * C), rstd(N);
    cpu::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C);
    auto d_x = upload_bf16(x), d_w = upload_bf16(w);
    auto d_out = poisoned<bf16>(out.size());
    auto d_rstd = poisoned<float>(N);
    cu::rmsnorm_forward(d_out.data(), d_rstd.data(), d_x.data(), d_w.data(), N, C);
    expect_close(download_f(d_out), out, tag + " out");
    expect_close(download(d_rstd), rstd, tag + " rstd", 1e-4, 1e-5);
    const fvec dout = randn(out.size(), rng), dx0 = randn(x.size(), rng, 0.3f);
    const fvec dw0 = randn(C, rng, 0.3f);
    fvec dx = dx0, dw = dw0;
    cpu::rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), N, C);
    auto d_dout = upload_bf16(dout), d_dx = upload_bf16(dx0), d_dw = upload_bf16(dw0);
    auto d_r = upload(rstd);
    cu::rmsnorm_backward(d_dx.data(), d_dw.data(), d_dout.data(), d_x.data(), d_w.data(),
                         d_r.data(), N, C);
    expect_close(download_f(d_dx), dx, tag + " dinp");
    expect_close(download_f(d_dw), dw, tag + " dweight");
  }
}

TEST(CudaOpsArch, QkNormAndRotary) {
  REQUIRE_DEVICE();
  Rng rng(22);
  for (const Shape &s : SHAPES)
    for (int pos0 : {0, 17}) {
      const int N = s.B * s.T, C = s.C, NH = s.NH;
      const std::string tag = cat("qk B=", s.B, " T=", s.T, " C=", C, " NH=", NH, " pos0=", pos0);
      const fvec x = randn(size_t(N) * 3 * C, rng, 1.5f);
      // Forward: rotary then QK-norm, as the model runs them, each from the same input.
      fvec y = x;
      cpu::rotary_forward(y.data(), s.B, s.T, C, NH, pos0);
      auto d_y = upload_bf16(x);
      cu::rotary_forward(d_y.data(), s.B, s.T, C, NH, pos0);
      expect_close(download_f(d_y), y, tag + " rotary_forward");
      const fvec rotated = download_f(d_y);
      fvec yq = rotated, rq(size_t(N) * 2 * NH);
      cpu::qk_norm_forward(yq.data(), rq.data(), N, C, NH);
      auto d_in = upload_bf16(rotated);
      auto d_rstd = poisoned<float>(rq.size());
      cu::qk_norm_forward(d_in.data(), d_rstd.data(), N, C, NH);
      expect_close(download_f(d_in), yq, tag + " qk_norm_forward");
      expect_close(download(d_rstd), rq, tag + " qk_norm rstd", 1e-4, 1e-5);
      // Backward: QK-norm's then rotary's, in place on dqkv.
      const fvec g = randn(x.size(), rng);
      fvec dg = g;
      const fvec yb = download_f(d_in);
      cpu::qk_norm_backward(dg.data(), yb.data(), rq.data(), N, C, NH);
      auto d_g = upload_bf16(g), d_yb = upload_bf16(yb);
      auto d_rq = upload(rq);
      cu::qk_norm_backward(d_g.data(), d_yb.data(), d_rq.data(), N, C, NH);
      expect_close(download_f(d_g), dg, tag + " qk_norm_backward");
      fvec dr = g;
      cpu::rotary_backward(dr.data(), s.B, s.T, C, NH);
      auto d_dr = upload_bf16(g);
      cu::rotary_backward(d_dr.data(), s.B, s.T, C, NH);
      expect_close(download_f(d_dr), dr, tag + " rotary_backward");
    }
}

TEST(CudaOpsArch, Relu2AndSoftcap) {
  REQUIRE_DEVICE();
  Rng rng(23);
  for (size_t n : {size_t(3 * 37 * 384), size_t(1001)}) {
    const fvec x = randn(n, rng, 2.0f), g = randn(n, rng);
    fvec ref(n);
    auto d_x = upload_bf16(x), d_g = upload_bf16(g);
    auto d_out = poisoned<bf16>(n);
    cpu::relu2_forward(ref.data(), x.data(), n);
    cu::relu2_forward(d_out.data(), d_x.data(), n);
    expect_close(download_f(d_out), ref, cat("relu2_forward n=", n));
    cpu::relu2_backward(ref.data(), x.data(), g.data(), n);
    cu::relu2_backward(d_g.data(), d_x.data(), d_g.data(), n); // in place, as the model calls it
    expect_close(download_f(d_g), ref, cat("relu2_backward n=", n));
    fvec c = x;
    cpu::softcap_forward(c.data(), n, 1.5f);
    cu::softcap_forward(d_x.data(), n, 1.5f);
    expect_close(download_f(d_x), c, cat("softcap_forward n=", n));
  }
}

TEST(CudaOpsArch, CrossentropyThroughSoftcap) {
  REQUIRE_DEVICE();
  Rng rng(24);
  for (auto [V, Vp] : {std::pair{1000, 1024}, std::pair{37, 61}}) {
    const int N = 33;
    const float cap = 5.0f;
    fvec y = randn(size_t(N) * Vp, rng, 6.0f);
    cpu::softcap_forward(y.data(), y.size(), cap);
    y = [&] { // bf16-representable capped logits, as the GPU holds them
      fvec r(y.size());
      for (size_t i = 0; i < y.size(); i++)
        r[i] = cu::to_float(cu::to_bf16(y[i]));
      return r;
    }();
    ivec t(N);
    for (auto &e : t)
      e = int32_t(rng.below(V));
    // Logits masked after the cap (-inf, as eval's masks are): gradient 0, not 0 * inf.
    for (int j = 0; j < V; j += 3)
      if (j != t[0]) y[j] = -INFINITY;
    fvec losses(N), grad = y;
    cpu::crossentropy_forward_backward(losses.data(), grad.data(), t.data(), N, V, Vp, 1.0f / N,
                                       cap);
    for (int j = 0; j < V; j += 3) {
      if (j != t[0]) {
        ASSERT_EQ(grad[j], 0.0f) << "cpu masked dlogit " << j;
      }
    }
    auto d_l = poisoned<float>(N);
    auto d_y = upload_bf16(y);
    auto d_t = upload(t);
    cu::crossentropy_forward_backward(d_l.data(), d_y.data(), d_t.data(), N, V, Vp, 1.0f / N, cap);
    const std::string tag = cat("crossentropy_softcap V=", V, " Vp=", Vp);
    expect_close(download(d_l), losses, tag + " losses", 1e-3, 1e-4);
    expect_close(download_f(d_y), grad, tag + " dlogits");
  }
}

TEST(CudaOpsArch, EncoderWithoutPositions) {
  REQUIRE_DEVICE();
  Rng rng(25);
  const int B = 3, T = 37, C = 96, V = 50;
  const fvec wte = randn(size_t(V) * C, rng);
  ivec inp(size_t(B) * T);
  for (auto &e : inp)
    e = int32_t(rng.below(V));
  fvec out(size_t(B) * T * C);
  cpu::encoder_forward(out.data(), inp.data(), wte.data(), nullptr, B, T, C, Dropout{});
  auto d_wte = upload_bf16(wte);
  auto d_inp = upload(inp);
  auto d_out = poisoned<bf16>(out.size());
  cu::encoder_forward(d_out.data(), d_inp.data(), d_wte.data(), nullptr, B, T, C, Dropout{});
  expect_close(download_f(d_out), out, "encoder_nowpe out", 0.0, 0.0);
  const fvec g = randn(out.size(), rng);
  fvec dwte(wte.size(), 0.0f);
  cpu::encoder_backward(dwte.data(), nullptr, g.data(), inp.data(), B, T, C, Dropout{});
  auto d_g = upload_bf16(g), d_dwte = upload_bf16(fvec(wte.size(), 0.0f));
  cu::encoder_backward(d_dwte.data(), nullptr, d_g.data(), d_inp.data(), B, T, C, Dropout{});
  expect_close(download_f(d_dwte), dwte, "encoder_nowpe dwte");
}

} // namespace
