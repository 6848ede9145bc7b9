// CPU bodies of the per-head transforms of q and k before attention: rotary position embedding
// (half split, angles in double) and QK-norm (parameterless RMSNorm of each head's q and k).
// Both work in place on the (N, 3C) qkv rows (q | k | v, head h at columns h*HS of each third).
#include <cmath>
#include <vector>

#include "backend/cpu/kernels.h"

namespace finegpt::cpu {

using namespace detail;

namespace {

constexpr double ROTARY_BASE = 10000.0; // model/plan.h kRotaryBase
constexpr float QK_EPS = 1e-6f;         // model/plan.h kRmsNormEps

// Rotates the q and k pairs of every row (b, t) by sign * angle(pos0 + t).
void rotate(float *qkv, int B, int T, int C, int NH, int pos0, float sign) {
  const int HS = C / NH, half = HS / 2;
  FINEGPT_CHECK(HS % 2 == 0, "rotary: head size ", HS, " must be even");
  std::vector<double> inv_freq(half);
  for (int i = 0; i < half; i++)
    inv_freq[i] = std::pow(ROTARY_BASE, -2.0 * i / HS);
#pragma omp parallel
  {
    std::vector<float> cs(half), sn(half);
#pragma omp for schedule(static)
    for (int t = 0; t < T; t++) {
      for (int i = 0; i < half; i++) {
        const double a = double(pos0 + t) * inv_freq[i];
        cs[i] = float(std::cos(a));
        sn[i] = sign * float(std::sin(a));
      }
      for (int b = 0; b < B; b++) {
        float *row = qkv + (size_t(b) * T + t) * 3 * C;
        for (int h = 0; h < 2 * NH; h++) { // q heads, then k heads
          float *x = row + size_t(h) * HS;
#pragma omp simd
          for (int i = 0; i < half; i++) {
            const float x1 = x[i], x2 = x[i + half];
            x[i] = x1 * cs[i] - x2 * sn[i];
            x[i + half] = x1 * sn[i] + x2 * cs[i];
          }
        }
      }
    }
  }
}

} // namespace

void rotary_forward(float *qkv, int B, int T, int C, int NH, int pos0) {
  rotate(qkv, B, T, C, NH, pos0, 1.0f);
}

void rotary_backward(float *dqkv, int B, int T, int C, int NH) {
  rotate(dqkv, B, T, C, NH, 0, -1.0f);
}

void qk_norm_forward(float *qkv, float *rstd, int N, int C, int NH) {
  const int HS = C / NH;
#pragma omp parallel for schedule(static)
  for (long n = 0; n < N; n++)
    for (int h = 0; h < 2 * NH; h++) {
      float *x = qkv + n * 3 * C + size_t(h) * HS;
      const float ms = lane_sum<float, 16>(HS, [&](long i) { return x[i] * x[i]; }) / float(HS);
      const float rs = 1.0f / std::sqrt(ms + QK_EPS);
#pragma omp simd
      for (int i = 0; i < HS; i++)
        x[i] *= rs;
      rstd[n * 2 * NH + h] = rs;
    }
}

void qk_norm_backward(float *dqkv, const float *qkv, const float *rstd, int N, int C, int NH) {
  const int HS = C / NH;
#pragma omp parallel for schedule(static)
  for (long n = 0; n < N; n++)
    for (int h = 0; h < 2 * NH; h++) {
      const float *y = qkv + n * 3 * C + size_t(h) * HS;
      float *dy = dqkv + n * 3 * C + size_t(h) * HS;
      const float rs = rstd[n * 2 * NH + h];
      const float m = lane_sum<float, 16>(HS, [&](long i) { return dy[i] * y[i]; }) / float(HS);
#pragma omp simd
      for (int i = 0; i < HS; i++)
        dy[i] = rs * (dy[i] - y[i] * m);
    }
}

} // namespace finegpt::cpu
