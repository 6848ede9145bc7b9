// CUDA body of the fused softmax cross-entropy: one block per row reads the bf16 logits once for
// an online max and sum (fp32), then, for training, overwrites them with the gradient
// (softmax - onehot) * dloss in a second pass that the row's first pass left in L2. No fp32 copy
// of the (N, Vp) logits ever exists. Padding columns [V, Vp) are never read; their gradient is 0.
#include "backend/cuda/common.cuh"

namespace finegpt::cuda {

using namespace detail;

namespace {

constexpr int CE_THREADS = 512;

// (m, s) represents s * exp(m); adding x keeps s * exp(m) = sum exp(x_i). A -inf logit (a
// masked token) adds exp(-inf) = 0: skipped, since with m = -inf exp(x - m) would be NaN.
__device__ __forceinline__ void online_add(float &m, float &s, float x) {
  if (x == -INFINITY) return;
  if (x > m) {
    s = s * __expf(m - x) + 1.0f;
    m = x;
  } else {
    s += __expf(x - m);
  }
}

template <bool VEC>
__global__ void crossentropy_kernel(float *losses, bf *logits, const int32_t *targets, int V,
                                    int Vp, float dloss, float softcap) {
  __shared__ float shared[32];
  const int n = blockIdx.x;
  bf *x = logits + size_t(n) * Vp;
  const int tgt = targets[n];
  const bool valid = tgt >= 0 && tgt < V;
  float m = -INFINITY, s = 0.0f;
  if constexpr (VEC) {
    for (int i = threadIdx.x * 8; i < V; i += CE_THREADS * 8) {
      const Pack8 p = load8(x + i);
#pragma unroll
      for (int k = 0; k < 8; k++)
        if (i + k < V) online_add(m, s, __bfloat162float(p.v[k]));
    }
  } else {
    for (int i = threadIdx.x; i < V; i += CE_THREADS)
      online_add(m, s, __bfloat162float(x[i]));
  }
  const float M = block_max(m, shared);
  const float S = block_sum(m == -INFINITY ? 0.0f : s * __expf(m - M), shared);
  const float lse = M + logf(S);
  const float xt = valid ? __bfloat162float(x[tgt]) : 0.0f;
  if (threadIdx.x == 0) losses[n] = valid ? lse - xt : NAN;
  if (dloss == 0.0f) return;
  __syncthreads(); // every thread has read x[tgt] before anyone overwrites it
  // Through the cap y = cap tanh(raw / cap) (the logits hold y): d/draw = 1 - (y / cap)^2. A
  // masked logit (-inf) has gradient 0 with or without the cap (not 0 * inf).
  const float inv_cap = softcap > 0.0f ? 1.0f / softcap : 0.0f;
  auto grad = [&](float y, int j) {
    const float g = (__expf(y - lse) - (j == tgt)) * dloss;
    return softcap > 0.0f && g != 0.0f ? g * (1.0f - (y * inv_cap) * (y * inv_cap)) : g;
  };
  if constexpr (VEC) {
    for (int i = threadIdx.x * 8; i < Vp; i += CE_THREADS * 8) {
      Pack8 p = load8(x + i);
#pragma unroll
      for (int k = 0; k < 8; k++) {
        const int j = i + k;
        p.v[k] = __float2bfloat16(j < V ? grad(__bfloat162float(p.v[k]), j) : 0.0f);
      }
      store8(x + i, p);
    }
  } else {
    for (int j = threadIdx.x; j < Vp; j += CE_THREADS) {
      x[j] = __float2bfloat16(j < V ? grad(__bfloat162float(x[j]), j) : 0.0f);
    }
  }
}

} // namespace

void crossentropy_forward_backward(float *losses, bf16 *logits, const int32_t *targets, int N,
                                   int V, int Vp, float dloss, float softcap) {
  FINEGPT_CHECK(V >= 1 && V <= Vp, "crossentropy: V = ", V, " must be in [1, Vp = ", Vp, "]");
  if (N <= 0) return;
  const bool vec = Vp % 8 == 0 && aligned16(logits);
  launch(vec ? crossentropy_kernel<true> : crossentropy_kernel<false>, unsigned(N), CE_THREADS, 0,
         losses, dev(logits), targets, V, Vp, dloss, softcap);
}

} // namespace finegpt::cuda
