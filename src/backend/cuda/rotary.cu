// CUDA bodies of the per-head transforms of q and k before attention (ops.h): rotary position
// embedding (half split; one thread per rotated pair, angle and sincos in fp32) and QK-norm
// (parameterless RMSNorm of each head's q and k; one warp per row and head, fp32 sums). Both in
// place on the bf16 (N, 3C) qkv rows; v columns untouched.
#include "backend/cuda/common.cuh"

namespace finegpt::cuda {

using namespace detail;

namespace {

constexpr float ROTARY_BASE = 10000.0f; // model/plan.h kRotaryBase
constexpr float QK_EPS = 1e-6f;         // model/plan.h kRmsNormEps
constexpr int QK_WARPS = 8;             // (row, head) pairs per block

// Thread i: row n = i / (NH2 * half), head h (q heads then k heads), pair p.
__global__ void rotary_kernel(bf *qkv, int N, int T, int C, int NH2, int half, int pos0,
                              float sign) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size_t(N) * NH2 * half) return;
  const int p = int(i % half);
  const size_t nh = i / half;
  const int h = int(nh % NH2), n = int(nh / NH2);
  const float inv = powf(ROTARY_BASE, -2.0f * float(p) / float(2 * half));
  const float a = float(pos0 + n % T) * inv;
  const float cs = cosf(a), sn = sign * sinf(a);
  bf *x = qkv + size_t(n) * 3 * C + size_t(h) * 2 * half;
  const float x1 = __bfloat162float(x[p]), x2 = __bfloat162float(x[p + half]);
  x[p] = __float2bfloat16(x1 * cs - x2 * sn);
  x[p + half] = __float2bfloat16(x1 * sn + x2 * cs);
}

void rotate(bf16 *qkv, int B, int T, int C, int NH, int pos0, float sign) {
  const int HS = C / NH, N = B * T;
  FINEGPT_CHECK(HS % 2 == 0, "rotary: head size ", HS, " must be even");
  const size_t n = size_t(N) * 2 * NH * (HS / 2);
  if (n == 0) return;
  launch(rotary_kernel, blocks_for(n, 256), 256, 0, dev(qkv), N, T, C, 2 * NH, HS / 2, pos0, sign);
}

// One warp per (row, head): y = x * rstd, rstd = 1/sqrt(mean(x^2) + eps).
__global__ void qk_norm_forward_kernel(bf *qkv, float *rstd, int N, int C, int NH2) {
  const int lane = threadIdx.x % 32;
  const size_t w = size_t(blockIdx.x) * QK_WARPS + threadIdx.x / 32;
  if (w >= size_t(N) * NH2) return;
  const int HS = 2 * C / NH2;
  const size_t n = w / NH2, h = w % NH2;
  bf *x = qkv + n * 3 * C + h * HS;
  float s = 0.0f;
  for (int i = lane; i < HS; i += 32) {
    const float v = __bfloat162float(x[i]);
    s += v * v;
  }
  const float rs = rsqrtf(warp_sum(s) / float(HS) + QK_EPS);
  for (int i = lane; i < HS; i += 32)
    x[i] = __float2bfloat16(__bfloat162float(x[i]) * rs);
  if (lane == 0) rstd[w] = rs;
}

// dx = rstd * (dy - y * mean(dy * y)), in place on dy.
__global__ void qk_norm_backward_kernel(bf *dqkv, const bf *qkv, const float *rstd, int N, int C,
                                        int NH2) {
  const int lane = threadIdx.x % 32;
  const size_t w = size_t(blockIdx.x) * QK_WARPS + threadIdx.x / 32;
  if (w >= size_t(N) * NH2) return;
  const int HS = 2 * C / NH2;
  const size_t n = w / NH2, h = w % NH2;
  const bf *y = qkv + n * 3 * C + h * HS;
  bf *dy = dqkv + n * 3 * C + h * HS;
  float s = 0.0f;
  for (int i = lane; i < HS; i += 32)
    s += __bfloat162float(dy[i]) * __bfloat162float(y[i]);
  const float m = warp_sum(s) / float(HS), rs = rstd[w];
  for (int i = lane; i < HS; i += 32)
    dy[i] = __float2bfloat16(rs * (__bfloat162float(dy[i]) - __bfloat162float(y[i]) * m));
}

} // namespace

void rotary_forward(bf16 *qkv, int B, int T, int C, int NH, int pos0) {
  rotate(qkv, B, T, C, NH, pos0, 1.0f);
}

void rotary_backward(bf16 *dqkv, int B, int T, int C, int NH) {
  rotate(dqkv, B, T, C, NH, 0, -1.0f);
}

void qk_norm_forward(bf16 *qkv, float *rstd, int N, int C, int NH) {
  if (N <= 0) return;
  launch(qk_norm_forward_kernel, blocks_for(size_t(N) * 2 * NH, QK_WARPS), QK_WARPS * 32, 0,
         dev(qkv), rstd, N, C, 2 * NH);
}

void qk_norm_backward(bf16 *dqkv, const bf16 *qkv, const float *rstd, int N, int C, int NH) {
  if (N <= 0) return;
  launch(qk_norm_backward_kernel, blocks_for(size_t(N) * 2 * NH, QK_WARPS), QK_WARPS * 32, 0,
         dev(dqkv), dev(qkv), rstd, N, C, 2 * NH);
}

} // namespace finegpt::cuda
