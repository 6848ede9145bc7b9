// CPU bodies of attention_decode and kv_append (ops.h): one new query per sequence against its
// KV cache.
#include "backend/ops.h"

#include <algorithm>
#include <cmath>

namespace finegpt::cpu {

void attention_decode(float *out, float *scores, const float *q, const float *kcache,
                      const float *vcache, int B, int t, int Tmax, int C, int NH) {
  const int HS = C / NH;
  const float scale = 1.0f / std::sqrt(float(HS));
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h) {
      const float *qh = q + size_t(b) * C + h * HS;
      float *s = scores + (size_t(b) * NH + h) * (t + 1);
      float maxv = -INFINITY;
      for (int j = 0; j <= t; ++j) {
        const float *k = kcache + (size_t(b) * Tmax + j) * C + h * HS;
        float dot = 0.0f;
        for (int i = 0; i < HS; ++i)
          dot += qh[i] * k[i];
        s[j] = dot * scale;
        maxv = std::max(maxv, s[j]);
      }
      float sum = 0.0f;
      for (int j = 0; j <= t; ++j) {
        s[j] = std::exp(s[j] - maxv);
        sum += s[j];
      }
      float *o = out + size_t(b) * C + h * HS;
      for (int i = 0; i < HS; ++i)
        o[i] = 0.0f;
      for (int j = 0; j <= t; ++j) {
        const float p = s[j] / sum;
        const float *v = vcache + (size_t(b) * Tmax + j) * C + h * HS;
        for (int i = 0; i < HS; ++i)
          o[i] += p * v[i];
      }
    }
}

void kv_append(float *kcache, float *vcache, float *q, const float *qkv, int B, int t, int Tmax,
               int C) {
  for (int b = 0; b < B; ++b) {
    const float *row = qkv + size_t(b) * 3 * C;
    std::copy_n(row, C, q + size_t(b) * C);
    std::copy_n(row + C, C, kcache + (size_t(b) * Tmax + t) * C);
    std::copy_n(row + 2 * C, C, vcache + (size_t(b) * Tmax + t) * C);
  }
}

} // namespace finegpt::cpu
