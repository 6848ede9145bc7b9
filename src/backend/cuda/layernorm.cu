// CUDA bodies of LayerNorm (eps 1e-5, biased variance) and RMSNorm (eps 1e-6, a gain, no bias):
// one warp per row, statistics in fp32 (LayerNorm: two passes, mean then centred squares),
// 16-byte accesses when C % 8 == 0 (LayerNorm). The parameter gradients are fixed-order column
// sums (detail::column_sums_add), not atomics.
#include "backend/cuda/common.cuh"

namespace finegpt::cuda {

using namespace detail;

namespace {

constexpr float LN_EPS = 1e-5f;
constexpr float RMS_EPS = 1e-6f; // model/plan.h kRmsNormEps
constexpr int LN_WARPS = 8;      // rows per block

// Calls f(c, x) for the row's channels owned by this lane, VEC: 8 at a time.
template <bool VEC, typename F>
__device__ __forceinline__ void for_row(const bf *row, int C, int lane, F &&f) {
  if constexpr (VEC) {
    for (int c = lane * 8; c < C; c += 32 * 8) {
      const Pack8 p = load8(row + c);
#pragma unroll
      for (int k = 0; k < 8; k++)
        f(c + k, __bfloat162float(p.v[k]));
    }
  } else {
    for (int c = lane; c < C; c += 32)
      f(c, __bfloat162float(row[c]));
  }
}

template <bool VEC>
__global__ void layernorm_forward_kernel(bf *out, float *mean, float *rstd, const bf *inp,
                                         const bf *weight, const bf *bias, int N, int C) {
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * LN_WARPS + threadIdx.x / 32;
  if (n >= N) return;
  const bf *x = inp + size_t(n) * C;
  float s = 0.0f;
  for_row<VEC>(x, C, lane, [&](int, float v) { s += v; });
  const float m = warp_sum(s) / float(C);
  float ss = 0.0f;
  for_row<VEC>(x, C, lane, [&](int, float v) { ss += (v - m) * (v - m); });
  const float rs = rsqrtf(warp_sum(ss) / float(C) + LN_EPS);
  bf *o = out + size_t(n) * C;
  if constexpr (VEC) {
    for (int c = lane * 8; c < C; c += 32 * 8) {
      const Pack8 p = load8(x + c), w = load8(weight + c);
      Pack8 r;
#pragma unroll
      for (int k = 0; k < 8; k++) {
        const float b = bias ? __bfloat162float(bias[c + k]) : 0.0f;
        r.v[k] =
            __float2bfloat16((__bfloat162float(p.v[k]) - m) * rs * __bfloat162float(w.v[k]) + b);
      }
      store8(o + c, r);
    }
  } else {
    for (int c = lane; c < C; c += 32) {
      const float b = bias ? __bfloat162float(bias[c]) : 0.0f;
      o[c] = __float2bfloat16((__bfloat162float(x[c]) - m) * rs * __bfloat162float(weight[c]) + b);
    }
  }
  if (lane == 0) mean[n] = m, rstd[n] = rs;
}

// dinp += rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dout * weight.
template <bool VEC>
__global__ void layernorm_backward_kernel(bf *dinp, const bf *dout, const bf *inp, const bf *weight,
                                          const float *mean, const float *rstd, int N, int C) {
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * LN_WARPS + threadIdx.x / 32;
  if (n >= N) return;
  const bf *x = inp + size_t(n) * C, *g = dout + size_t(n) * C;
  const float m = mean[n], rs = rstd[n];
  float sg = 0.0f, sgx = 0.0f;
  for_row<VEC>(g, C, lane, [&](int c, float gv) {
    const float gw = gv * __bfloat162float(weight[c]);
    sg += gw;
    sgx += gw * (__bfloat162float(x[c]) - m) * rs;
  });
  const float gmean = warp_sum(sg) / float(C), gxmean = warp_sum(sgx) / float(C);
  bf *dx = dinp + size_t(n) * C;
  for_row<VEC>(g, C, lane, [&](int c, float gv) {
    const float xhat = (__bfloat162float(x[c]) - m) * rs;
    const float d = (gv * __bfloat162float(weight[c]) - gmean - xhat * gxmean) * rs;
    dx[c] = __float2bfloat16(__bfloat162float(dx[c]) + d);
  });
}

__global__ void rmsnorm_forward_kernel(bf *out, float *rstd, const bf *inp, const bf *weight, int N,
                                       int C) {
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * LN_WARPS + threadIdx.x / 32;
  if (n >= N) return;
  const bf *x = inp + size_t(n) * C;
  float ss = 0.0f;
  for_row<false>(x, C, lane, [&](int, float v) { ss += v * v; });
  const float rs = rsqrtf(warp_sum(ss) / float(C) + RMS_EPS);
  bf *o = out + size_t(n) * C;
  for (int c = lane; c < C; c += 32)
    o[c] = __float2bfloat16(__bfloat162float(x[c]) * rs * __bfloat162float(weight[c]));
  if (lane == 0) rstd[n] = rs;
}

// dinp += rstd * (g - xhat * mean(g * xhat)) with g = dout * weight, xhat = x * rstd.
__global__ void rmsnorm_backward_kernel(bf *dinp, const bf *dout, const bf *inp, const bf *weight,
                                        const float *rstd, int N, int C) {
  const int lane = threadIdx.x % 32;
  const int n = blockIdx.x * LN_WARPS + threadIdx.x / 32;
  if (n >= N) return;
  const bf *x = inp + size_t(n) * C, *g = dout + size_t(n) * C;
  const float rs = rstd[n];
  float sgx = 0.0f;
  for_row<false>(g, C, lane, [&](int c, float gv) {
    sgx += gv * __bfloat162float(weight[c]) * __bfloat162float(x[c]) * rs;
  });
  const float gxmean = warp_sum(sgx) / float(C);
  bf *dx = dinp + size_t(n) * C;
  for_row<false>(g, C, lane, [&](int c, float gv) {
    const float xhat = __bfloat162float(x[c]) * rs;
    const float d = (gv * __bfloat162float(weight[c]) - xhat * gxmean) * rs;
    dx[c] = __float2bfloat16(__bfloat162float(dx[c]) + d);
  });
}

} // namespace

void rmsnorm_forward(bf16 *out, float *rstd, const bf16 *inp, const bf16 *weight, int N, int C) {
  if (N <= 0) return;
  launch(rmsnorm_forward_kernel, blocks_for(N, LN_WARPS), LN_WARPS * 32, 0, dev(out), rstd,
         dev(inp), dev(weight), N, C);
}

void rmsnorm_backward(bf16 *dinp, bf16 *dweight, const bf16 *dout, const bf16 *inp,
                      const bf16 *weight, const float *rstd, int N, int C) {
  if (N <= 0) return;
  launch(rmsnorm_backward_kernel, blocks_for(N, LN_WARPS), LN_WARPS * 32, 0, dev(dinp), dev(dout),
         dev(inp), dev(weight), rstd, N, C);
  // dweight = sum_n dout * x * rstd: LayerNorm's column sum with the mean taken as 0.
  column_sums_add(dweight, nullptr, ColumnSum::LayerNormWeight, dout, inp, nullptr, rstd, N, C);
}

void layernorm_forward(bf16 *out, float *mean, float *rstd, const bf16 *inp, const bf16 *weight,
                       const bf16 *bias, int N, int C) {
  if (N <= 0) return; // CUDA rejects an empty grid
  const bool vec = C % 8 == 0 && aligned16(out) && aligned16(inp) && aligned16(weight);
  const unsigned grid = blocks_for(N, LN_WARPS);
  launch(vec ? layernorm_forward_kernel<true> : layernorm_forward_kernel<false>, grid,
         LN_WARPS * 32, 0, dev(out), mean, rstd, dev(inp), dev(weight), dev(bias), N, C);
}

void layernorm_backward(bf16 *dinp, bf16 *dweight, bf16 *dbias, const bf16 *dout, const bf16 *inp,
                        const bf16 *weight, const float *mean, const float *rstd, int N, int C) {
  if (N <= 0) return;
  const bool vec = C % 8 == 0 && aligned16(dout);
  const unsigned grid = blocks_for(N, LN_WARPS);
  launch(vec ? layernorm_backward_kernel<true> : layernorm_backward_kernel<false>, grid,
         LN_WARPS * 32, 0, dev(dinp), dev(dout), dev(inp), dev(weight), mean, rstd, N, C);
  column_sums_add(dweight, dbias, ColumnSum::LayerNormWeight, dout, inp, mean, rstd, N, C);
}

} // namespace finegpt::cuda
