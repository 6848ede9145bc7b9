// CPU bodies of the optimizer ops: the gradient's sum of squares (for global-norm clipping) and
// PyTorch 1.13's single-tensor AdamW in float32, one fused memory-bound pass.
#include <algorithm>
#include <cblas.h>
#include <cmath>
#include <cstring>
#include <omp.h>
#include <vector>

#include "backend/cpu/kernels.h"

namespace finegpt::cpu {

using namespace detail;

// Thread i sums the i-th contiguous chunk into a double; the partials are added in thread order,
// so the result depends only on the thread count.
double sum_squares(const float *g, size_t n) {
  std::vector<double> partial(omp_get_max_threads(), 0.0);
  int used = 1;
#pragma omp parallel
  {
    const int nth = omp_get_num_threads(), tid = omp_get_thread_num();
    const size_t chunk = (n + nth - 1) / nth;
    const size_t lo = std::min(n, chunk * tid), hi = std::min(n, lo + chunk);
    const float *x = g + lo;
    partial[tid] = lane_sum<double, 8>(long(hi - lo), [&](long i) {
      const double d = x[i];
      return d * d;
    });
#pragma omp single
    used = nth;
  }
  double total = 0.0;
  for (int i = 0; i < used; i++)
    total += partial[i];
  return total;
}

namespace {
template <bool ZERO_GRAD>
void adamw_pass(float *params, float *grads, float *m, float *v, size_t n, float beta1, float beta2,
                float eps, float grad_scale, float neg_step, float bc2_sqrt, float decay, float a1,
                float a2) {
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    const float g = grads[i] * grad_scale;
    const float mi = m[i] * beta1 + a1 * g;
    const float vi = v[i] * beta2 + a2 * g * g;
    const float denom = std::sqrt(vi) / bc2_sqrt + eps;
    params[i] = params[i] * decay + neg_step * mi / denom;
    m[i] = mi;
    v[i] = vi;
    if constexpr (ZERO_GRAD) grads[i] = 0.0f;
  }
}
} // namespace

// torch.optim.AdamW (1.13, foreach=False), in float32 with g = grad * grad_scale:
//   p *= 1 - lr wd;  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g g;
//   p += -(lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps),  bc_i = 1 - beta_i^t.
// Python computes the scalars in double; the tensor kernels then use them as float.
void adamw_update(float *params, float *grads, float *m, float *v, size_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int t, float grad_scale,
                  bool zero_grad) {
  FINEGPT_CHECK(t >= 1, "adamw_update: step t = ", t, " must count from 1");
  const double bc1 = 1.0 - std::pow(double(beta1), t);
  const double bc2 = 1.0 - std::pow(double(beta2), t);
  const float neg_step = float(-(double(lr) / bc1));
  const float bc2_sqrt = float(std::sqrt(bc2));
  const float decay = float(1.0 - double(lr) * double(weight_decay));
  const float a1 = float(1.0 - double(beta1));
  const float a2 = float(1.0 - double(beta2));
  if (zero_grad)
    adamw_pass<true>(params, grads, m, v, n, beta1, beta2, eps, grad_scale, neg_step, bc2_sqrt,
                     decay, a1, a2);
  else
    adamw_pass<false>(params, grads, m, v, n, beta1, beta2, eps, grad_scale, neg_step, bc2_sqrt,
                      decay, a1, a2);
}

// Muon (ops.h). The Newton-Schulz steps on the m x k matrix X (m <= k; the transpose when
// rows > cols), three GEMMs each: A = X X^T (m x m), B = b A + c A A, Y = a X + B X.
void muon_momentum(float *grads, float *mom, size_t n, float momentum, float grad_scale) {
  const float mu = momentum, a1 = float(1.0 - double(momentum));
#pragma omp parallel for simd schedule(static)
  for (size_t i = 0; i < n; i++) {
    const float g = grads[i] * grad_scale;
    const float b = mom[i] * mu + a1 * g;
    mom[i] = b;
    grads[i] = a1 * g + mu * b;
  }
}

void muon_orthogonal_update(float *w, const float *u, float *scratch, int rows, int cols, size_t lo,
                            size_t hi, float lr) {
  const size_t n = muon_check_window(rows, cols, lo, hi);
  if (lo == hi) return; // nothing of this matrix to update
  const bool trans = rows > cols;
  const int m = trans ? cols : rows, k = trans ? rows : cols;
  float *X = scratch, *Y = X + n, *A = Y + n, *B = A + size_t(m) * m;
  double ss = 0.0;
#pragma omp parallel for simd schedule(static) reduction(+ : ss)
  for (size_t i = 0; i < n; i++)
    ss += double(u[i]) * u[i];
  const float inv = float(1.0 / (std::sqrt(ss) + double(kMuonEps)));
  if (trans) { // U^T (cols x rows) into X, scaled
#pragma omp parallel for schedule(static)
    for (int c = 0; c < cols; c++)
      for (int r = 0; r < rows; r++)
        X[size_t(c) * rows + r] = u[size_t(r) * cols + c] * inv;
  } else {
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
      X[i] = u[i] * inv;
  }
  for (int s = 0; s < kMuonSteps; s++) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, m, k, 1.0f, X, k, X, k, 0.0f, A, m);
    std::memcpy(B, A, size_t(m) * m * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, m, m, kMuonC, A, m, A, m, kMuonB, B,
                m);
    std::memcpy(Y, X, n * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, m, 1.0f, B, m, X, k, kMuonA, Y, k);
    std::swap(X, Y);
  }
  // Element (r, c) of the update is X[r * cols + c], or X[c * rows + r] when X is the transpose;
  // the rows that [lo, hi) touches, each clipped to it.
  const float step = float(double(lr) * std::sqrt(std::max(1.0, double(rows) / double(cols))));
  const size_t R = size_t(rows), C = size_t(cols);
#pragma omp parallel for schedule(static)
  for (long r = long(lo / C); r < long((hi + C - 1) / C); r++) {
    const size_t row = size_t(r) * C, c0 = std::max(lo, row) - row,
                 c1 = std::min(hi, row + C) - row;
    for (size_t c = c0; c < c1; c++)
      w[row + c - lo] -= step * X[trans ? c * R + size_t(r) : row + c];
  }
}

} // namespace finegpt::cpu
