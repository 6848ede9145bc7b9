// Timings of the CUDA ops (backend/cuda_ops.h) at GPT-2 124M's shapes (B=8, T=1024, C=768,
// NH=12, Vp=50304; AdamW over 124M parameters): median milliseconds of batches of launches, with
// the useful FLOP rate of the GEMM-like ops and the memory rate of the memory-bound ones (bytes
// each op must move at least once). A first look at speed, not a training benchmark: inputs are
// random bf16 values (never zeros), every op runs on its own. Attention is timed at T and 2T,
// ours beside cuDNN's fused attention (when the build has it). Usage: cuda_ops_bench [B T]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <utility>
#include <vector>

#include "backend/cuda_ops.h"
#include "core/error.h"

using namespace finegpt;
namespace cu = finegpt::cuda;
using cu::bf16;

namespace {

// Random bf16 in about [-1, 1) (xorshift; no zeros), uploaded.
cu::DeviceArray<bf16> random_bf16(size_t n, uint64_t seed, float scale = 1.0f) {
  std::vector<bf16> h(n);
  uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
  for (auto &e : h) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    const float u = (float(s >> 40) + 0.5f) / 16777216.0f * 2.0f - 1.0f;
    e = cu::to_bf16(u * scale);
  }
  cu::DeviceArray<bf16> d(n);
  cu::copy_to_device(d.data(), h.data(), n * sizeof(bf16));
  return d;
}
cu::DeviceArray<float> filled(size_t n, float v) {
  std::vector<float> h(n, v);
  cu::DeviceArray<float> d(n);
  cu::copy_to_device(d.data(), h.data(), n * sizeof(float));
  return d;
}

// Median over 7 batches of 10 launches, after 3 warm-up launches, in milliseconds per launch.
double time_ms(const std::function<void()> &f) {
  for (int i = 0; i < 3; i++)
    f();
  cu::synchronize();
  std::vector<double> ms;
  for (int b = 0; b < 7; b++) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 10; i++)
      f();
    cu::synchronize();
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
        10);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void row(const char *op, const char *shape, double ms, double flops, double bytes) {
  std::printf("%-22s %-26s %9.3f", op, shape, ms);
  if (flops > 0) std::printf(" %9.1f TFLOP/s", flops / ms / 1e9);
  if (bytes > 0) std::printf(" %9.0f GB/s", bytes / ms / 1e6);
  std::printf("\n");
}

// Our attention and cuDNN's at one shape, on buffers of their own, rows side by side; then one
// line with cuDNN's time over ours. cuDNN's failures (not in this build, unsupported here, a
// workspace larger than the backend's that cannot be allocated) are printed as its row. `ws` holds
// a workspace larger than the backend's when cuDNN needs one (lent with set_workspace; it must
// outlive the ops: release() before it is freed).
void attention_rows(int B, int T, int C, int NH, cu::DeviceArray<unsigned char> &ws) {
  const size_t N = size_t(B) * T;
  auto qkv = random_bf16(N * 3 * C, 21), out = random_bf16(N * C, 22);
  auto dout = random_bf16(N * C, 23), dqkv = random_bf16(N * 3 * C, 24);
  auto lse = filled(size_t(B) * NH * T, 0.0f);
  char shape[64];
  std::snprintf(shape, sizeof shape, "B%d T%d NH%d HS%d", B, T, NH, C / NH);
  const double af = 2.0 * 2.0 * double(B) * NH * T * T * (C / NH) / 2;
  const double fwd =
      time_ms([&] { cu::attention_forward(out.data(), lse.data(), qkv.data(), B, T, C, NH, {}); });
  row("attention_forward", shape, fwd, af, 0);
  const double bwd = time_ms([&] {
    cu::attention_backward(dqkv.data(), dout.data(), qkv.data(), out.data(), lse.data(), B, T, C,
                           NH, {});
  });
  row("attention_backward", shape, bwd, 2.5 * af, 0);
  try {
    // The backward's fp32 dQ accumulator may exceed the backend's 32 MiB at long T.
    const size_t need = cu::cudnn_attention_workspace_bytes(B, T, C, NH);
    if (need > cu::WORKSPACE_BYTES && need > ws.size()) {
      cu::synchronize();
      cu::DeviceArray<unsigned char> bigger(need);
      cu::set_workspace(bigger.data(), bigger.size());
      ws = std::move(bigger); // the old one (if any) is freed after the backend stopped using it
    }
    const double cf = time_ms(
        [&] { cu::attention_forward_cudnn(out.data(), lse.data(), qkv.data(), B, T, C, NH, {}); });
    row("attention_fwd_cudnn", shape, cf, af, 0);
    const double cb = time_ms([&] {
      cu::attention_backward_cudnn(dqkv.data(), dout.data(), qkv.data(), out.data(), lse.data(), B,
                                   T, C, NH, {});
    });
    row("attention_bwd_cudnn", shape, cb, 2.5 * af, 0);
    std::printf("%-22s %-26s fwd %.2fx, bwd %.2fx of ours (workspace %.1f MiB)\n",
                "attention cudnn/ours", shape, cf / fwd, cb / bwd, double(need) / (1 << 20));
  } catch (const std::exception &e) {
    std::printf("%-22s %-26s %s\n", "attention_cudnn", shape, e.what());
  }
}

} // namespace

int main(int argc, char **argv) try {
  const int B = argc > 2 ? std::atoi(argv[1]) : 8, T = argc > 2 ? std::atoi(argv[2]) : 1024;
  const int C = 768, NH = 12, V = 50257, Vp = 50304;
  const size_t N = size_t(B) * T, P = 124475904;
  if (cu::device_count() == 0) {
    std::printf("no CUDA device: skipped (%s)\n", cu::device_summary().c_str());
    return 0;
  }
  cu::set_device(0);
  std::printf("%s\nB=%d T=%d C=%d NH=%d Vp=%d\n", cu::device_summary().c_str(), B, T, C, NH, Vp);
  std::printf("%-22s %-26s %9s\n", "op", "shape", "ms");
  char shape[64];

  auto x = random_bf16(N * 4 * C, 1), w = random_bf16(size_t(4) * C * C, 2, 0.05f);
  auto bias = random_bf16(4 * C, 3), out = random_bf16(N * 4 * C, 4),
       pre = random_bf16(N * 4 * C, 5);
  auto dout = random_bf16(N * 4 * C, 6), dx = random_bf16(N * 4 * C, 7);
  auto dw = random_bf16(size_t(4) * C * C, 8), db = random_bf16(4 * C, 9);
  for (int oc : {3 * C, 4 * C}) {
    std::snprintf(shape, sizeof shape, "%zux%dx%d", N, C, oc);
    const double f = 2.0 * double(N) * C * oc;
    row("matmul_forward", shape, time_ms([&] {
          cu::matmul_forward(out.data(), x.data(), w.data(), bias.data(), int(N), C, oc);
        }),
        f, 0);
    row("matmul_backward", shape, time_ms([&] {
          cu::matmul_backward(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(),
                              int(N), C, oc);
        }),
        2 * f, 0);
  }
  std::snprintf(shape, sizeof shape, "%zux%dx%d", N, C, 4 * C);
  row("matmul_forward_gelu", shape, time_ms([&] {
        cu::matmul_forward_gelu(out.data(), pre.data(), x.data(), w.data(), bias.data(), int(N), C,
                                4 * C);
      }),
      2.0 * double(N) * C * 4 * C, 0);

  // Attention, ours and cuDNN's (at T and at 2T): useful FLOPs of the causal half (forward 2
  // products, backward 5 as in FA2).
  cu::DeviceArray<unsigned char> cudnn_ws; // a larger workspace, if cuDNN needs one
  for (int t : {T, 2 * T})
    attention_rows(B, t, C, NH, cudnn_ws);

  auto mean = filled(N, 0.0f), rstd = filled(N, 1.0f);
  auto lnw = random_bf16(C, 10);
  std::snprintf(shape, sizeof shape, "%zux%d", N, C);
  const double btc = double(N) * C * 2;
  row("layernorm_forward", shape, time_ms([&] {
        cu::layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), lnw.data(),
                              bias.data(), int(N), C);
      }),
      0, 2 * btc);
  row("layernorm_backward", shape, time_ms([&] {
        cu::layernorm_backward(dx.data(), dw.data(), db.data(), dout.data(), x.data(), lnw.data(),
                               mean.data(), rstd.data(), int(N), C);
      }),
      0, 4 * btc);
  std::snprintf(shape, sizeof shape, "%zu", N * 4 * C);
  row("gelu_backward", shape,
      time_ms([&] { cu::gelu_backward(dx.data(), pre.data(), dout.data(), N * 4 * C); }), 0,
      3.0 * N * 4 * C * 2);
  std::snprintf(shape, sizeof shape, "%zu", N * C);
  row("residual_forward", shape,
      time_ms([&] { cu::residual_forward(out.data(), x.data(), dout.data(), N * C, {}); }), 0,
      3 * btc);

  std::vector<int32_t> tok(N);
  for (size_t i = 0; i < N; i++)
    tok[i] = int32_t((i * 2654435761u) % V);
  cu::DeviceArray<int32_t> d_tok(N);
  cu::copy_to_device(d_tok.data(), tok.data(), N * sizeof(int32_t));
  auto wte = random_bf16(size_t(Vp) * C, 11), wpe = random_bf16(size_t(T) * C, 12);
  std::snprintf(shape, sizeof shape, "%zux%d", N, C);
  row("encoder_backward", shape, time_ms([&] {
        cu::encoder_backward(wte.data(), wpe.data(), dout.data(), d_tok.data(), B, T, C, {});
      }),
      0, 3 * btc);

  auto logits = random_bf16(N * Vp, 13, 4.0f);
  auto losses = filled(N, 0.0f);
  std::snprintf(shape, sizeof shape, "%zux%d", N, Vp);
  // Forward only (dloss 0): repeatable on the same logits; a backward pass writes them once more.
  row("crossentropy (fwd)", shape, time_ms([&] {
        cu::crossentropy_forward_backward(losses.data(), logits.data(), d_tok.data(), int(N), V, Vp,
                                          0.0f);
      }),
      0, double(N) * Vp * 2);
  for (auto *a : {&logits, &x, &out, &pre, &dout, &dx}) // room for the optimizer's 2 GB
    *a = cu::DeviceArray<bf16>();

  auto params = random_bf16(P, 14, 0.02f), grads = random_bf16(P, 15, 1e-3f);
  auto master = filled(P, 0.01f), m = filled(P, 0.0f), v = filled(P, 0.0f);
  auto scratch = filled(cu::REDUCE_SCRATCH, 0.0f);
  std::snprintf(shape, sizeof shape, "%zu", P);
  row("sum_squares", shape, time_ms([&] {
        cu::sum_squares(scratch.data() + cu::SUM_SQUARES_PARTIALS, grads.data(), P, scratch.data());
      }),
      0, 2.0 * P);
  int t = 1;
  row("adamw_update", shape, time_ms([&] {
        cu::adamw_update(params.data(), grads.data(), master.data(), m.data(), v.data(), P, 6e-4f,
                         0.9f, 0.95f, 1e-8f, 0.1f, t++, 1.0f, false);
      }),
      0, double(P) * (2 + 2 + 3 * 4 * 2)); // read grads, write params, read+write master, m, v
  cu::release();
  return 0;
} catch (const std::exception &e) {
  std::fprintf(stderr, "cuda_ops_bench: %s\n", e.what());
  return 1;
}
