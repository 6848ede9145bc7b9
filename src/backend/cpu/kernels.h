// Internal helpers shared by the CPU op bodies (backend/cpu/*.cpp): a vectorisable expf,
// fixed-lane reductions, dropout helpers. Not part of the op seam: only cpu/ includes it.
#pragma once
#include <bit>
#include <cstdint>
#include <limits>

#include "backend/ops.h"
#include "core/error.h"
#include "core/rng.h"

namespace finegpt::cpu::detail {

// exp(x) in float, to about 2 ulp, written so that GCC vectorises it inside `omp simd` loops
// (glibc's vector expf is only declared under -ffast-math). x = n ln2 + r with |r| <= ln2/2
// (ln2 split in two so n*LN2_HI is exact), exp(r) by its degree-7 Taylor polynomial (truncation
// error 5e-9), 2^n built in the exponent bits. Below -87.3 (near FLT_MIN) it returns 0; above
// 88, inf.
inline float exp_approx(float x) {
  constexpr float LOG2E = 1.44269504088896341f;
  constexpr float LN2_HI = 0.693359375f; // 8 significant bits
  constexpr float LN2_LO = -2.12194440e-4f;
  constexpr float ROUND = 12582912.0f; // 1.5 * 2^23: adding it rounds to an integer
  const float xc = x < -87.3f ? -87.3f : (x > 88.0f ? 88.0f : x);
  const float nr = xc * LOG2E + ROUND; // the integer n sits in the low mantissa bits
  const float n = nr - ROUND;
  const float r = (xc - n * LN2_HI) - n * LN2_LO;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t ni = std::bit_cast<int32_t>(nr) - std::bit_cast<int32_t>(ROUND);
  const float two_n = std::bit_cast<float>((ni + 127) << 23);
  float y = p * two_n;
  y = x < -87.3f ? 0.0f : y;
  y = x > 88.0f ? std::numeric_limits<float>::infinity() : y;
  return y;
}

// Sum of f(i) for i in [0, n) with L accumulators of type Acc, element i going to lane i % L and
// the lanes combined pairwise: the order is fixed by n alone (never by the data's alignment, as
// `omp simd reduction` may be), so results are bitwise reproducible.
template <typename Acc, int L, typename F> inline Acc lane_sum(long n, F f) {
  Acc acc[L] = {};
  long i = 0;
  for (; i + L <= n; i += L) {
#pragma omp simd
    for (int l = 0; l < L; l++)
      acc[l] += f(i + l);
  }
  for (int l = 0; i < n; i++, l++)
    acc[l] += f(i);
  for (int w = L / 2; w > 0; w /= 2)
    for (int l = 0; l < w; l++)
      acc[l] += acc[l + w];
  return acc[0];
}

// max of x[0..n), n >= 1 (max is exact, so any order gives the same bits).
inline float row_max(const float *x, long n) {
  float acc[16];
  for (int l = 0; l < 16; l++)
    acc[l] = -std::numeric_limits<float>::infinity();
  long i = 0;
  for (; i + 16 <= n; i += 16) {
#pragma omp simd
    for (int l = 0; l < 16; l++)
      acc[l] = x[i + l] > acc[l] ? x[i + l] : acc[l];
  }
  float m = -std::numeric_limits<float>::infinity();
  for (; i < n; i++)
    m = x[i] > m ? x[i] : m;
  for (int l = 0; l < 16; l++)
    m = acc[l] > m ? acc[l] : m;
  return m;
}

inline void check_dropout(const Dropout &d, const char *op) {
  FINEGPT_CHECK(d.p >= 0.0f && d.p < 1.0f, op, ": dropout probability ", d.p,
                " is outside [0, 1); set dropout to a value in [0, 1)");
}

// Kept elements are scaled by 1/(1-p) so the expectation is unchanged.
inline float dropout_scale(const Dropout &d) { return 1.0f / (1.0f - d.p); }

// Elements per block when an op partitions channels across threads (one block = 4 cache lines):
// each output element is then summed by one thread in row order, whatever the thread count.
constexpr int CHANNEL_BLOCK = 64;

} // namespace finegpt::cpu::detail
