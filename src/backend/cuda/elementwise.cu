// CUDA bodies of the elementwise ops: tanh-GELU and ReLU^2 forward and backward, logit
// soft-capping, residual add with dropout, and the backward of dropout. Memory-bound single passes
// with 16-byte accesses where the pointers allow; math in fp32. Dropout masks are dropout_keep(key,
// i) of the flat index i, as on the CPU.
#include "backend/cuda/common.cuh"

namespace finegpt::cuda {

using namespace detail;

namespace {

constexpr float GELU_K0 = 0.7978845608028654f; // sqrt(2/pi)
constexpr float GELU_K1 = 0.044715f;
constexpr float GELU_EXP_MAX = 80.0f;

// exp(-2u): gelu(x) = x * sigmoid(2u) = x / (1 + exp(-2u)), as the CPU body (no cancellation
// for u << 0); the argument is clamped so e * s stays finite.
__device__ __forceinline__ float gelu_exp(float x) {
  const float u = GELU_K0 * (x + GELU_K1 * x * x * x);
  return __expf(fminf(-2.0f * u, GELU_EXP_MAX));
}

struct GeluForward {
  __device__ float operator()(float x, float) const { return x / (1.0f + gelu_exp(x)); }
};
// gelu'(x) = s + x * 2 s (1 - s) u'(x), s = sigmoid(2u), 1 - s = e s.
struct GeluBackward {
  __device__ float operator()(float x, float g) const {
    const float e = gelu_exp(x);
    const float s = 1.0f / (1.0f + e);
    const float du = GELU_K0 * (1.0f + 3.0f * GELU_K1 * x * x);
    return (s + x * (2.0f * s * (e * s)) * du) * g;
  }
};
struct Relu2Forward {
  __device__ float operator()(float x, float) const {
    const float r = fmaxf(x, 0.0f);
    return r * r;
  }
};
struct Relu2Backward {
  __device__ float operator()(float x, float g) const { return 2.0f * fmaxf(x, 0.0f) * g; }
};
struct Softcap {
  float cap, inv;
  __device__ float operator()(float x, float) const { return cap * tanhf(x * inv); }
};
struct Add {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct Copy {
  __device__ float operator()(float a, float) const { return a; }
};

// out[i] = f(a[i], b[i]) (b may be null: f gets 0). VEC: 8 elements per thread.
template <bool VEC, typename F>
__global__ void binary_kernel(bf *out, const bf *a, const bf *b, size_t n, F f) {
  const size_t i0 = (size_t(blockIdx.x) * blockDim.x + threadIdx.x) * (VEC ? 8 : 1);
  if constexpr (VEC) {
    if (i0 >= n) return;
    const Pack8 pa = load8(a + i0);
    Pack8 pb;
    if (b) pb = load8(b + i0);
    Pack8 o;
#pragma unroll
    for (int k = 0; k < 8; k++)
      o.v[k] = __float2bfloat16(f(__bfloat162float(pa.v[k]), b ? __bfloat162float(pb.v[k]) : 0.0f));
    store8(out + i0, o);
  } else {
    if (i0 >= n) return;
    out[i0] = __float2bfloat16(f(__bfloat162float(a[i0]), b ? __bfloat162float(b[i0]) : 0.0f));
  }
}

template <typename F> void binary(bf16 *out, const bf16 *a, const bf16 *b, size_t n, F f) {
  if (n == 0) return;
  const int threads = 256;
  const bool vec = n % 8 == 0 && aligned16(out) && aligned16(a) && (b == nullptr || aligned16(b));
  if (vec)
    launch(binary_kernel<true, F>, blocks_for(n / 8, threads), threads, 0, dev(out), dev(a), dev(b),
           n, f);
  else
    launch(binary_kernel<false, F>, blocks_for(n, threads), threads, 0, dev(out), dev(a), dev(b), n,
           f);
}

// out[i] = a[i] + dropout(b[i]), or dropout(b[i]) alone when a is null (p > 0; the mask of
// element i is dropout_keep(key, i), kept elements scaled by 1/(1-p)). VEC: 8 per thread.
template <bool VEC>
__global__ void dropout_kernel(bf *out, const bf *a, const bf *b, size_t n, DropoutArgs drop) {
  const size_t i0 = (size_t(blockIdx.x) * blockDim.x + threadIdx.x) * (VEC ? 8 : 1);
  if (i0 >= n) return;
  if constexpr (VEC) {
    const Pack8 pb = load8(b + i0);
    Pack8 pa;
    if (a) pa = load8(a + i0);
    Pack8 o;
#pragma unroll
    for (int k = 0; k < 8; k++) {
      const float x = drop.apply(__bfloat162float(pb.v[k]), i0 + k);
      o.v[k] = __float2bfloat16(a ? __bfloat162float(pa.v[k]) + x : x);
    }
    store8(out + i0, o);
  } else {
    const float x = drop.apply(__bfloat162float(b[i0]), i0);
    out[i0] = __float2bfloat16(a ? __bfloat162float(a[i0]) + x : x);
  }
}

void dropout(bf16 *out, const bf16 *a, const bf16 *b, size_t n, const Dropout &drop) {
  if (n == 0) return;
  const int threads = 256;
  const bool vec = n % 8 == 0 && aligned16(out) && aligned16(b) && (a == nullptr || aligned16(a));
  launch(vec ? dropout_kernel<true> : dropout_kernel<false>, blocks_for(n / (vec ? 8 : 1), threads),
         threads, 0, dev(out), dev(a), dev(b), n, dropout_args(drop));
}

} // namespace

void gelu_forward(bf16 *out, const bf16 *inp, size_t N) {
  binary(out, inp, nullptr, N, GeluForward{});
}

void gelu_backward(bf16 *dinp, const bf16 *inp, const bf16 *dout, size_t N) {
  binary(dinp, inp, dout, N, GeluBackward{});
}

void relu2_forward(bf16 *out, const bf16 *inp, size_t N) {
  binary(out, inp, nullptr, N, Relu2Forward{});
}

void relu2_backward(bf16 *dinp, const bf16 *inp, const bf16 *dout, size_t N) {
  binary(dinp, inp, dout, N, Relu2Backward{});
}

void softcap_forward(bf16 *x, size_t N, float cap) {
  binary(x, x, nullptr, N, Softcap{cap, 1.0f / cap});
}

void residual_forward(bf16 *out, const bf16 *a, const bf16 *b, size_t N, Dropout drop) {
  check_dropout(drop, "residual_forward");
  if (drop.p > 0.0f)
    dropout(out, a, b, N, drop);
  else
    binary(out, a, b, N, Add{});
}

void dropout_backward(bf16 *dinp, const bf16 *dout, size_t N, Dropout drop) {
  check_dropout(drop, "dropout_backward");
  if (drop.p > 0.0f)
    dropout(dinp, nullptr, dout, N, drop);
  else if (dinp != dout)
    binary(dinp, dout, nullptr, N, Copy{});
}

} // namespace finegpt::cuda
