// CUDA bodies of the generation ops (cuda_ops.h): appending a position to the KV cache, and one
// query per sequence attending over the cache. Small work per call (B sequences, one position):
// one block per (sequence, head), scores in fp32 working memory, block reductions in a fixed
// order.
#include "backend/cuda/common.cuh"

namespace finegpt::cuda {

using namespace detail;

namespace {

// Grid (B, 3): part 0 copies q, 1 k, 2 v of sequence b.
__global__ void kv_append_kernel(bf *kcache, bf *vcache, bf *q, const bf *qkv, int t, int Tmax,
                                 int C) {
  const int b = blockIdx.x, part = blockIdx.y;
  const bf *src = qkv + (size_t(b) * 3 + part) * C;
  bf *dst = part == 0   ? q + size_t(b) * C
            : part == 1 ? kcache + (size_t(b) * Tmax + t) * C
                        : vcache + (size_t(b) * Tmax + t) * C;
  for (int i = threadIdx.x; i < C; i += blockDim.x)
    dst[i] = src[i];
}

constexpr int DECODE_THREADS = 128;

// Grid (NH, B): scores of positions 0..t, their softmax, then out = sum_j p_j v_j for the head.
__global__ void attention_decode_kernel(bf *out, float *scores, const bf *q, const bf *kcache,
                                        const bf *vcache, int t, int Tmax, int C, int NH,
                                        float scale) {
  __shared__ float shared[32];
  const int h = blockIdx.x, b = blockIdx.y, HS = C / NH, n = t + 1;
  const bf *qh = q + size_t(b) * C + size_t(h) * HS;
  float *s = scores + (size_t(b) * NH + h) * n;
  float maxv = -INFINITY;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    const bf *k = kcache + (size_t(b) * Tmax + j) * C + size_t(h) * HS;
    float dot = 0.0f;
    for (int i = 0; i < HS; ++i)
      dot += __bfloat162float(qh[i]) * __bfloat162float(k[i]);
    s[j] = dot * scale;
    maxv = fmaxf(maxv, s[j]);
  }
  maxv = block_max(maxv, shared);
  float sum = 0.0f;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    s[j] = __expf(s[j] - maxv);
    sum += s[j];
  }
  sum = block_sum(sum, shared); // its barriers also order the writes of s above
  const float inv = 1.0f / sum;
  for (int i = threadIdx.x; i < HS; i += blockDim.x) {
    float acc = 0.0f;
    for (int j = 0; j < n; ++j)
      acc += s[j] * __bfloat162float(vcache[(size_t(b) * Tmax + j) * C + size_t(h) * HS + i]);
    out[size_t(b) * C + size_t(h) * HS + i] = __float2bfloat16(acc * inv);
  }
}

} // namespace

void kv_append(bf16 *kcache, bf16 *vcache, bf16 *q, const bf16 *qkv, int B, int t, int Tmax,
               int C) {
  if (B == 0 || C == 0) return;
  launch(kv_append_kernel, dim3(unsigned(B), 3), 128, 0, dev(kcache), dev(vcache), dev(q), dev(qkv),
         t, Tmax, C);
}

void attention_decode(bf16 *out, float *scores, const bf16 *q, const bf16 *kcache,
                      const bf16 *vcache, int B, int t, int Tmax, int C, int NH) {
  if (B == 0) return;
  const float scale = 1.0f / sqrtf(float(C / NH));
  launch(attention_decode_kernel, dim3(unsigned(NH), unsigned(B)), DECODE_THREADS, 0, dev(out),
         scores, dev(q), dev(kcache), dev(vcache), t, Tmax, C, NH, scale);
}

} // namespace finegpt::cuda
