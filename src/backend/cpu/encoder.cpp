// CPU bodies of the token + position embedding (encoder_forward / encoder_backward).
// The backward's scatter into dwte is race-free by partitioning channels, not rows, across threads.
#include <algorithm>

#include "backend/cpu/kernels.h"

namespace finegpt::cpu {

using namespace detail;

void encoder_forward(float *out, const int32_t *inp, const float *wte, const float *wpe, int B,
                     int T, int C, Dropout drop) {
  check_dropout(drop, "encoder_forward");
  const long N = long(B) * T;
  const float scale = dropout_scale(drop);
#pragma omp parallel for schedule(static)
  for (long n = 0; n < N; n++) {
    float *o = out + n * C;
    const float *we = wte + long(inp[n]) * C;
    const float *wp = wpe ? wpe + (n % T) * C : nullptr;
    if (drop.p == 0.0f) {
      if (!wp) {
        std::copy(we, we + C, o);
        continue;
      }
#pragma omp simd
      for (int c = 0; c < C; c++)
        o[c] = we[c] + wp[c];
    } else {
      const uint64_t base = uint64_t(n) * C;
#pragma omp simd
      for (int c = 0; c < C; c++) {
        const float x = wp ? we[c] + wp[c] : we[c];
        o[c] = dropout_keep(drop.key, base + c, drop.p) ? x * scale : 0.0f;
      }
    }
  }
}

void encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *inp, int B, int T,
                      int C, Dropout drop) {
  check_dropout(drop, "encoder_backward");
  const long N = long(B) * T;
  const float scale = dropout_scale(drop);
  const int nblocks = (C + CHANNEL_BLOCK - 1) / CHANNEL_BLOCK;
  // Each thread owns whole channel blocks of dwte and dwpe, and adds rows in order n = 0..N-1.
#pragma omp parallel for schedule(static)
  for (int blk = 0; blk < nblocks; blk++) {
    const int c0 = blk * CHANNEL_BLOCK;
    const int c1 = std::min(C, c0 + CHANNEL_BLOCK);
    for (long n = 0; n < N; n++) {
      const float *g = dout + n * C;
      float *dwt = dwte + long(inp[n]) * C;
      float *dwp = dwpe ? dwpe + (n % T) * C : nullptr;
      if (drop.p == 0.0f) {
        if (!dwp) {
#pragma omp simd
          for (int c = c0; c < c1; c++)
            dwt[c] += g[c];
          continue;
        }
#pragma omp simd
        for (int c = c0; c < c1; c++) {
          dwt[c] += g[c];
          dwp[c] += g[c];
        }
      } else {
        const uint64_t base = uint64_t(n) * C;
#pragma omp simd
        for (int c = c0; c < c1; c++) {
          const float gc = dropout_keep(drop.key, base + c, drop.p) ? g[c] * scale : 0.0f;
          dwt[c] += gc;
          if (dwp) dwp[c] += gc;
        }
      }
    }
  }
}

} // namespace finegpt::cpu
