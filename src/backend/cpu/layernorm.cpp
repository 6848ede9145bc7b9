// CPU bodies of LayerNorm (eps 1e-5, biased variance, as torch.nn.functional.layer_norm) and
// RMSNorm (eps 1e-6, a gain and no bias, as LLaMA's). Row statistics use fixed-lane float sums
// (LayerNorm: two passes, mean then centred squares).
#include <algorithm>
#include <cmath>

#include "backend/cpu/kernels.h"

namespace finegpt::cpu {

using namespace detail;

namespace {
constexpr float LN_EPS = 1e-5f;
constexpr float RMS_EPS = 1e-6f; // model/plan.h kRmsNormEps
} // namespace

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C) {
#pragma omp parallel for schedule(static)
  for (long n = 0; n < N; n++) {
    const float *x = inp + n * C;
    float *o = out + n * C;
    const float ms = lane_sum<float, 16>(C, [&](long i) { return x[i] * x[i]; }) / float(C);
    const float rs = 1.0f / std::sqrt(ms + RMS_EPS);
#pragma omp simd
    for (int c = 0; c < C; c++)
      o[c] = x[c] * rs * weight[c];
    rstd[n] = rs;
  }
}

void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                      const float *weight, const float *rstd, int N, int C) {
  const int nblocks = (C + CHANNEL_BLOCK - 1) / CHANNEL_BLOCK;
#pragma omp parallel
  {
#pragma omp for schedule(static) nowait
    for (long n = 0; n < N; n++) {
      const float *x = inp + n * C, *g = dout + n * C;
      float *dx = dinp + n * C;
      const float rs = rstd[n];
      const float gxmean =
          lane_sum<float, 16>(C, [&](long i) { return g[i] * weight[i] * (x[i] * rs); }) / float(C);
#pragma omp simd
      for (int c = 0; c < C; c++)
        dx[c] += (g[c] * weight[c] - x[c] * rs * gxmean) * rs;
    }
#pragma omp for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
      const int c0 = blk * CHANNEL_BLOCK;
      const int len = std::min(C, c0 + CHANNEL_BLOCK) - c0;
      float dw[CHANNEL_BLOCK] = {};
      for (long n = 0; n < N; n++) {
        const float *x = inp + n * C + c0, *g = dout + n * C + c0;
        const float rs = rstd[n];
#pragma omp simd
        for (int c = 0; c < len; c++)
          dw[c] += g[c] * (x[c] * rs);
      }
      for (int c = 0; c < len; c++)
        dweight[c0 + c] += dw[c];
    }
  }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                       const float *bias, int N, int C) {
#pragma omp parallel for schedule(static)
  for (long n = 0; n < N; n++) {
    const float *x = inp + n * C;
    float *o = out + n * C;
    const float m = lane_sum<float, 16>(C, [&](long i) { return x[i]; }) / float(C);
    const float var = lane_sum<float, 16>(C,
                                          [&](long i) {
                                            const float d = x[i] - m;
                                            return d * d;
                                          }) /
                      float(C);
    const float rs = 1.0f / std::sqrt(var + LN_EPS);
    if (bias) {
#pragma omp simd
      for (int c = 0; c < C; c++)
        o[c] = (x[c] - m) * rs * weight[c] + bias[c];
    } else {
#pragma omp simd
      for (int c = 0; c < C; c++)
        o[c] = (x[c] - m) * rs * weight[c];
    }
    mean[n] = m;
    rstd[n] = rs;
  }
}

// With xhat = (x - mean) * rstd and g = dout * weight:
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  dweight = sum_n dout * xhat,
//   dbias = sum_n dout.
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean, const float *rstd,
                        int N, int C) {
  const int nblocks = (C + CHANNEL_BLOCK - 1) / CHANNEL_BLOCK;
#pragma omp parallel
  {
#pragma omp for schedule(static) nowait
    for (long n = 0; n < N; n++) {
      const float *x = inp + n * C;
      const float *g = dout + n * C;
      float *dx = dinp + n * C;
      const float m = mean[n], rs = rstd[n];
      const float gmean =
          lane_sum<float, 16>(C, [&](long i) { return g[i] * weight[i]; }) / float(C);
      const float gxmean =
          lane_sum<float, 16>(C, [&](long i) { return g[i] * weight[i] * ((x[i] - m) * rs); }) /
          float(C);
#pragma omp simd
      for (int c = 0; c < C; c++) {
        const float xhat = (x[c] - m) * rs;
        dx[c] += (g[c] * weight[c] - gmean - xhat * gxmean) * rs;
      }
    }
    // Parameter gradients: each thread owns channel blocks and sums rows in order.
#pragma omp for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
      const int c0 = blk * CHANNEL_BLOCK;
      const int len = std::min(C, c0 + CHANNEL_BLOCK) - c0;
      float dw[CHANNEL_BLOCK] = {}, db[CHANNEL_BLOCK] = {};
      for (long n = 0; n < N; n++) {
        const float *x = inp + n * C + c0;
        const float *g = dout + n * C + c0;
        const float m = mean[n], rs = rstd[n];
#pragma omp simd
        for (int c = 0; c < len; c++) {
          dw[c] += g[c] * ((x[c] - m) * rs);
          db[c] += g[c];
        }
      }
      for (int c = 0; c < len; c++)
        dweight[c0 + c] += dw[c];
      if (dbias)
        for (int c = 0; c < len; c++)
          dbias[c0 + c] += db[c];
    }
  }
}

} // namespace finegpt::cpu
