// CPU bodies of the elementwise ops: GELU (tanh approximation), ReLU^2, logit soft-capping,
// residual add with dropout, and the backward of dropout alone. All are memory-bound single passes,
// parallel and vectorised.
#include <cmath>
#include <cstring>

#include "backend/cpu/kernels.h"

namespace finegpt::cpu {

using namespace detail;

namespace {
constexpr float GELU_K0 = 0.7978845608028654f; // sqrt(2/pi)
constexpr float GELU_K1 = 0.044715f;
// exp(-2u) is clamped here so that e * s below stays finite (s >= 1.8e-35 is still normal).
constexpr float GELU_EXP_MAX = 80.0f;

// 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u)): the sigmoid form has no cancellation for u << 0.
inline float gelu_exp(float x) {
  const float u = GELU_K0 * (x + GELU_K1 * x * x * x);
  const float a = -2.0f * u;
  return exp_approx(a < GELU_EXP_MAX ? a : GELU_EXP_MAX);
}
} // namespace

void gelu_forward(float *out, const float *inp, size_t N) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < N; i++) {
    const float x = inp[i];
    out[i] = x / (1.0f + gelu_exp(x));
  }
}

// gelu(x) = x s with s = sigmoid(2u(x)):  gelu'(x) = s + x * 2 s (1 - s) u'(x),
// 1 - s = e s with e = exp(-2u), u'(x) = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t N) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < N; i++) {
    const float x = inp[i];
    const float e = gelu_exp(x);
    const float s = 1.0f / (1.0f + e);
    const float du = GELU_K0 * (1.0f + 3.0f * GELU_K1 * x * x);
    const float grad = s + x * (2.0f * s * (e * s)) * du;
    dinp[i] = grad * dout[i];
  }
}

void relu2_forward(float *out, const float *inp, size_t N) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < N; i++) {
    const float r = inp[i] > 0.0f ? inp[i] : 0.0f;
    out[i] = r * r;
  }
}

void relu2_backward(float *dinp, const float *inp, const float *dout, size_t N) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < N; i++) {
    const float r = inp[i] > 0.0f ? inp[i] : 0.0f;
    dinp[i] = 2.0f * r * dout[i];
  }
}

void softcap_forward(float *x, size_t N, float cap) {
  const float inv = 1.0f / cap;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < N; i++)
    x[i] = cap * std::tanh(x[i] * inv);
}

void residual_forward(float *out, const float *a, const float *b, size_t N, Dropout drop) {
  check_dropout(drop, "residual_forward");
  if (drop.p == 0.0f) {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < N; i++)
      out[i] = a[i] + b[i];
    return;
  }
  const float scale = dropout_scale(drop);
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < N; i++)
    out[i] = a[i] + (dropout_keep(drop.key, i, drop.p) ? b[i] * scale : 0.0f);
}

void dropout_backward(float *dinp, const float *dout, size_t N, Dropout drop) {
  check_dropout(drop, "dropout_backward");
  if (drop.p == 0.0f) {
    if (dinp != dout) {
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < N; i++)
        dinp[i] = dout[i];
    }
    return;
  }
  const float scale = dropout_scale(drop);
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < N; i++)
    dinp[i] = dropout_keep(drop.key, i, drop.p) ? dout[i] * scale : 0.0f;
}

} // namespace finegpt::cpu
