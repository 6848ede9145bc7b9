// CPU bodies of causal self-attention. Work items are (batch, head) pairs spread over threads;
// within one, the T x T products are single-threaded sgemm calls (OpenBLAS runs one thread when
// called inside a parallel region) over row blocks of ROW_BLOCK, so that the columns right of a
// block's last row (all zero by causality) are never multiplied.
#include <algorithm>
#include <cblas.h>
#include <cmath>
#include <vector>

#include "backend/cpu/kernels.h"

namespace finegpt::cpu {

using namespace detail;

namespace {
constexpr int ROW_BLOCK = 64;
}

void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH,
                       Dropout drop) {
  check_dropout(drop, "attention_forward");
  FINEGPT_CHECK(C % NH == 0, "attention_forward: C = ", C, " is not a multiple of NH = ", NH);
  const int HS = C / NH;
  const int ld = 3 * C;
  const float scale = 1.0f / std::sqrt(float(HS));
  const float dscale = dropout_scale(drop);
  const bool dropping = drop.p > 0.0f;
#pragma omp parallel
  {
    // Dropped probabilities of one row block (the stored att stays pre-dropout).
    std::vector<float> buf(dropping ? size_t(ROW_BLOCK) * T : 0);
#pragma omp for schedule(static)
    for (long bh = 0; bh < long(B) * NH; bh++) {
      const long b = bh / NH, h = bh % NH;
      const float *q = qkv + b * T * ld + h * HS;
      const float *k = q + C;
      const float *v = q + 2 * C;
      float *a = att + bh * T * T;
      float *o = out + b * T * C + h * HS;
      for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
        const int r1 = std::min(T, r0 + ROW_BLOCK);
        // scores a[r0:r1, 0:r1] = scale * q k^T
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, r1, HS, scale,
                    q + long(r0) * ld, ld, k, ld, 0.0f, a + long(r0) * T, T);
        for (int t = r0; t < r1; t++) {
          float *row = a + long(t) * T;
          const float mx = row_max(row, t + 1);
          const float sum = lane_sum<float, 16>(t + 1, [&](long j) {
            const float e = exp_approx(row[j] - mx);
            row[j] = e;
            return e;
          });
          const float inv = 1.0f / sum;
#pragma omp simd
          for (int j = 0; j <= t; j++)
            row[j] *= inv;
          std::fill(row + t + 1, row + T, 0.0f);
        }
        const float *pv = a + long(r0) * T; // probabilities used in out = p v
        long ldp = T;
        if (dropping) {
          for (int t = r0; t < r1; t++) {
            const float *row = a + long(t) * T;
            float *drow = buf.data() + long(t - r0) * r1;
            const uint64_t base = uint64_t(bh * T + t) * T;
#pragma omp simd
            for (int j = 0; j < r1; j++)
              drow[j] = dropout_keep(drop.key, base + j, drop.p) ? row[j] * dscale : 0.0f;
          }
          pv = buf.data();
          ldp = r1;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, HS, r1, 1.0f, pv, ldp, v,
                    ld, 0.0f, o + long(r0) * C, C);
      }
    }
  }
}

// With P = att, Pd = dropout(P), out = Pd v, S the scaled scores:
//   dv = Pd^T dout,  dPd = dout v^T,  dP = dropout(dPd),  dS = P * (dP - rowsum(P * dP)),
//   dq = scale dS k,  dk = scale dS^T q.
void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                        const float *att, int B, int T, int C, int NH, Dropout drop) {
  check_dropout(drop, "attention_backward");
  FINEGPT_CHECK(C % NH == 0, "attention_backward: C = ", C, " is not a multiple of NH = ", NH);
  const int HS = C / NH;
  const int ld = 3 * C;
  const float scale = 1.0f / std::sqrt(float(HS));
  const float dscale = dropout_scale(drop);
  const bool dropping = drop.p > 0.0f;
#pragma omp parallel for schedule(static)
  for (long bh = 0; bh < long(B) * NH; bh++) {
    const long b = bh / NH, h = bh % NH;
    const float *q = qkv + b * T * ld + h * HS;
    const float *k = q + C;
    const float *v = q + 2 * C;
    float *dq = dqkv + b * T * ld + h * HS;
    float *dk = dq + C;
    float *dv = dq + 2 * C;
    const float *p = att + bh * T * T;
    const float *dO = dout + b * T * C + h * HS;
    float *s = scratch + bh * T * T;

    // dv[c0:c1] = Pd[c0:T, c0:c1]^T dout[c0:T]   (Pd is zero above the diagonal)
    const float *pd = p;
    if (dropping) {
      for (int t = 0; t < T; t++) {
        const float *row = p + long(t) * T;
        float *drow = s + long(t) * T;
        const uint64_t base = uint64_t(bh * T + t) * T;
#pragma omp simd
        for (int j = 0; j < T; j++)
          drow[j] = dropout_keep(drop.key, base + j, drop.p) ? row[j] * dscale : 0.0f;
      }
      pd = s;
    }
    for (int c0 = 0; c0 < T; c0 += ROW_BLOCK) {
      const int c1 = std::min(T, c0 + ROW_BLOCK);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c1 - c0, HS, T - c0, 1.0f,
                  pd + long(c0) * T + c0, T, dO + long(c0) * C, C, 0.0f, dv + long(c0) * ld, ld);
    }

    // Row blocks: s[r0:r1, 0:r1] = dout v^T, turned into dS in place, then dq of the block.
    for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
      const int r1 = std::min(T, r0 + ROW_BLOCK);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r1 - r0, r1, HS, 1.0f, dO + long(r0) * C,
                  C, v, ld, 0.0f, s + long(r0) * T, T);
      for (int t = r0; t < r1; t++) {
        float *srow = s + long(t) * T;
        const float *prow = p + long(t) * T;
        if (dropping) {
          const uint64_t base = uint64_t(bh * T + t) * T;
#pragma omp simd
          for (int j = 0; j <= t; j++)
            srow[j] = dropout_keep(drop.key, base + j, drop.p) ? srow[j] * dscale : 0.0f;
        }
        const float dot = lane_sum<float, 16>(t + 1, [&](long j) { return prow[j] * srow[j]; });
#pragma omp simd
        for (int j = 0; j <= t; j++)
          srow[j] = prow[j] * (srow[j] - dot);
        // dk below reads the block's columns right of the diagonal: they must be zero.
        std::fill(srow + t + 1, srow + r1, 0.0f);
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, HS, r1, scale,
                  s + long(r0) * T, T, k, ld, 0.0f, dq + long(r0) * ld, ld);
    }

    // dk[c0:c1] = scale dS[c0:T, c0:c1]^T q[c0:T]
    for (int c0 = 0; c0 < T; c0 += ROW_BLOCK) {
      const int c1 = std::min(T, c0 + ROW_BLOCK);
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, c1 - c0, HS, T - c0, scale,
                  s + long(c0) * T + c0, T, q + long(c0) * ld, ld, 0.0f, dk + long(c0) * ld, ld);
    }
  }
}

} // namespace finegpt::cpu
