// CUDA bodies of the optimizer ops: the gradient's sum of squares (fp32, a two-level order fixed
// by the size, so bitwise reproducible on any GPU; the result stays on the device) and AdamW on
// fp32 master weights writing the bf16 parameters, one fused memory-bound pass with the same float
// formula as the CPU body.
#include "backend/cuda/common.cuh"
#include "backend/ops.h"

#include <algorithm>
#include <cmath>

namespace finegpt::cuda {

using namespace detail;

namespace {

constexpr int SS_BLOCKS = int(SUM_SQUARES_PARTIALS); // at most, partial sums in the scratch
constexpr int SS_THREADS = 256;
constexpr size_t SS_MIN_CHUNK = 8 * SS_THREADS; // elements per block at least
static_assert(SUM_SQUARES_PARTIALS <= REDUCE_SCRATCH, "sum_squares scratch");

// Block b sums squares over its contiguous chunk [b * chunk, (b + 1) * chunk).
__global__ void sum_squares_partial_kernel(float *partial, const bf *g, size_t n, size_t chunk) {
  __shared__ float shared[32];
  const size_t lo = min(n, size_t(blockIdx.x) * chunk), hi = min(n, lo + chunk);
  float acc = 0.0f;
  for (size_t i = lo + threadIdx.x; i < hi; i += SS_THREADS) {
    const float x = __bfloat162float(g[i]);
    acc += x * x;
  }
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void sum_squares_final_kernel(float *out, const float *partial, int nblocks) {
  __shared__ float shared[32];
  float acc = 0.0f;
  for (int i = threadIdx.x; i < nblocks; i += SS_THREADS)
    acc += partial[i];
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) *out = acc;
}

template <bool ZERO_GRAD>
__global__ void adamw_kernel(bf *params, bf *grads, float *master, float *m, float *v, size_t n,
                             float beta1, float beta2, float eps, float grad_scale, float neg_step,
                             float bc2_sqrt, float decay, float a1, float a2) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = __bfloat162float(grads[i]) * grad_scale;
  const float mi = m[i] * beta1 + a1 * g;
  const float vi = v[i] * beta2 + a2 * g * g;
  const float denom = sqrtf(vi) / bc2_sqrt + eps;
  const float p = master[i] * decay + neg_step * mi / denom;
  master[i] = p;
  params[i] = __float2bfloat16(p);
  m[i] = mi;
  v[i] = vi;
  if (ZERO_GRAD) grads[i] = __float2bfloat16(0.0f);
}

// Muon's momentum (fp32) and the Nesterov mix, over the gradients (bf16).
__global__ void muon_momentum_kernel(bf *grads, float *mom, size_t n, float mu, float a1,
                                     float grad_scale) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = __bfloat162float(grads[i]) * grad_scale;
  const float b = mom[i] * mu + a1 * g;
  mom[i] = b;
  grads[i] = __float2bfloat16(a1 * g + mu * b);
}

// dst = src / (sqrt(*ss) + eps), transposed ((rows, cols) into (cols, rows)) when trans.
__global__ void muon_normalize_kernel(bf *dst, const bf *src, const float *ss, float eps, int rows,
                                      int cols, bool trans) {
  const size_t n = size_t(rows) * cols, i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float inv = 1.0f / (sqrtf(*ss) + eps);
  const size_t r = i / cols, c = i % cols;
  dst[trans ? c * rows + r : i] = __float2bfloat16(__bfloat162float(src[i]) * inv);
}

__global__ void copy_kernel(bf *dst, const bf *src, size_t n) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = src[i];
}

// For the matrix's elements lo + j, j < n: master -= step X (X transposed when trans),
// params = round(master); params and master point at element lo.
__global__ void muon_apply_kernel(bf *params, float *master, const bf *X, int rows, int cols,
                                  size_t lo, size_t n, bool trans, float step) {
  const size_t j = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= n) return;
  const size_t i = lo + j, r = i / cols, c = i % cols;
  const float p = master[j] - step * __bfloat162float(X[trans ? c * rows + r : i]);
  master[j] = p;
  params[j] = __float2bfloat16(p);
}

} // namespace

void sum_squares(float *out, const bf16 *g, size_t n, float *scratch) {
  // Blocks and chunks depend on n only (the order is fixed), and a small tensor (a LayerNorm
  // weight) takes a few blocks, not 512 nearly empty ones.
  const int nblocks = int(std::clamp<size_t>((n + SS_MIN_CHUNK - 1) / SS_MIN_CHUNK, 1, SS_BLOCKS));
  const size_t chunk = std::max<size_t>(1, (n + nblocks - 1) / nblocks);
  launch(sum_squares_partial_kernel, unsigned(nblocks), SS_THREADS, 0, scratch, dev(g), n, chunk);
  launch(sum_squares_final_kernel, 1, SS_THREADS, 0, out, scratch, nblocks);
}

// The CPU body's formula (ops.h: torch.optim.AdamW in float32, scalars prepared in double).
void adamw_update(bf16 *params, bf16 *grads, float *master, float *m, float *v, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int t, float grad_scale,
                  bool zero_grad) {
  FINEGPT_CHECK(t >= 1, "adamw_update: step t = ", t, " must count from 1");
  if (n == 0) return;
  const double bc1 = 1.0 - std::pow(double(beta1), t);
  const double bc2 = 1.0 - std::pow(double(beta2), t);
  const float neg_step = float(-(double(lr) / bc1));
  const float bc2_sqrt = float(std::sqrt(bc2));
  const float decay = float(1.0 - double(lr) * double(weight_decay));
  const float a1 = float(1.0 - double(beta1));
  const float a2 = float(1.0 - double(beta2));
  const unsigned grid = blocks_for(n, 256);
  launch(zero_grad ? adamw_kernel<true> : adamw_kernel<false>, grid, 256, 0, dev(params),
         dev(grads), master, m, v, n, beta1, beta2, eps, grad_scale, neg_step, bc2_sqrt, decay, a1,
         a2);
}

void muon_momentum(bf16 *grads, float *mom, size_t n, float momentum, float grad_scale) {
  if (n == 0) return;
  launch(muon_momentum_kernel, blocks_for(n, 256), 256, 0, dev(grads), mom, n, momentum,
         float(1.0 - double(momentum)), grad_scale);
}

// Muon's second part (cuda_ops.h): the CPU body's steps, the GEMMs in bf16 through gemm().
void muon_orthogonal_update(bf16 *params, float *master, const bf16 *u, bf16 *scratch,
                            float *reduce, int rows, int cols, size_t lo, size_t hi, float lr) {
  const size_t n = cpu::muon_check_window(rows, cols, lo, hi);
  if (lo == hi) return; // nothing of this matrix to update
  const bool trans = rows > cols;
  const int m = trans ? cols : rows, k = trans ? rows : cols;
  bf16 *X = scratch, *Y = X + n, *A = Y + n, *B = A + size_t(m) * m;
  float *ss = reduce + REDUCE_SCRATCH - 1;
  const unsigned grid = blocks_for(n, 256), grid_mm = blocks_for(size_t(m) * m, 256);
  sum_squares(ss, u, n, reduce);
  launch(muon_normalize_kernel, grid, 256, 0, dev(X), dev(u), ss, cpu::kMuonEps, rows, cols, trans);
  for (int s = 0; s < cpu::kMuonSteps; s++) {
    gemm(A, X, X, m, m, k, /*transb=*/true, 1.0f, 0.0f);
    launch(copy_kernel, grid_mm, 256, 0, dev(B), dev(A), size_t(m) * m);
    gemm(B, A, A, m, m, m, false, cpu::kMuonC, cpu::kMuonB);
    launch(copy_kernel, grid, 256, 0, dev(Y), dev(X), n);
    gemm(Y, B, X, m, k, m, false, 1.0f, cpu::kMuonA);
    std::swap(X, Y);
  }
  const float step = float(double(lr) * std::sqrt(std::max(1.0, double(rows) / double(cols))));
  launch(muon_apply_kernel, blocks_for(hi - lo, 256), 256, 0, dev(params), master, dev(X), rows,
         cols, lo, hi - lo, trans, step);
}

} // namespace finegpt::cuda
