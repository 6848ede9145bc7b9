// CPU body of the fused softmax cross-entropy over the first V of Vp logit columns (the padding
// columns are never read; their gradient is 0). One row per work item; a row (V floats) stays in
// L2 across the three passes (max, exp and sum, scale).
#include <algorithm>
#include <cmath>

#include "backend/cpu/kernels.h"

namespace finegpt::cpu {

using namespace detail;

namespace {
constexpr long SUM_BLOCK = 1024;
}

void crossentropy_forward_backward(float *losses, float *logits, const int32_t *targets, int N,
                                   int V, int Vp, float dloss, float softcap) {
  FINEGPT_CHECK(V >= 1 && V <= Vp, "crossentropy: V = ", V, " must be in [1, Vp = ", Vp, "]");
  for (int n = 0; n < N; n++)
    FINEGPT_CHECK(targets[n] >= 0 && targets[n] < V, "crossentropy: target ", targets[n],
                  " at row ", n, " is outside the vocabulary [0, ", V, ")");
  const bool backward = dloss != 0.0f;
  // Through the cap the gradient pass needs the capped logits y, so the exp pass keeps them and
  // the gradient pass recomputes exp(y - max).
  const bool capped = softcap > 0.0f;
  const float inv_cap = capped ? 1.0f / softcap : 0.0f;
#pragma omp parallel for schedule(static)
  for (long n = 0; n < N; n++) {
    float *x = logits + n * Vp;
    const int tgt = targets[n];
    const float mx = row_max(x, V);
    const float xt = x[tgt];
    // Float partial sums over short blocks (16 lanes of at most 64 terms), added in double.
    double sum = 0.0;
    for (long i0 = 0; i0 < V; i0 += SUM_BLOCK) {
      float *xb = x + i0;
      const long len = std::min<long>(SUM_BLOCK, V - i0);
      if (backward && !capped) // keep exp(x - max) in place for the gradient pass
        sum += lane_sum<float, 16>(len, [&](long i) {
          const float e = exp_approx(xb[i] - mx);
          xb[i] = e;
          return e;
        });
      else
        sum += lane_sum<float, 16>(len, [&](long i) { return exp_approx(xb[i] - mx); });
    }
    losses[n] = float(std::log(sum) - (double(xt) - double(mx)));
    if (backward && capped) {
      const float coef = float(double(dloss) / sum);
#pragma omp simd
      for (int i = 0; i < V; i++) {
        const float y = x[i], d = 1.0f - (y * inv_cap) * (y * inv_cap), e = exp_approx(y - mx);
        x[i] = e == 0.0f ? 0.0f : e * coef * d; // a masked logit (-inf): 0, not 0 * inf
      }
      const float dt = 1.0f - (xt * inv_cap) * (xt * inv_cap);
      x[tgt] = float((double(exp_approx(xt - mx)) / sum - 1.0) * double(dloss)) * dt;
      for (int i = V; i < Vp; i++)
        x[i] = 0.0f;
    } else if (backward) {
      const float coef = float(double(dloss) / sum);
      const float et = x[tgt];
#pragma omp simd
      for (int i = 0; i < V; i++)
        x[i] *= coef;
      // p_t - 1 in double: p_t may be close to 1.
      x[tgt] = float((double(et) / sum - 1.0) * double(dloss));
      for (int i = V; i < Vp; i++)
        x[i] = 0.0f;
    }
  }
}

} // namespace finegpt::cpu
