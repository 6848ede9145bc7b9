// CPU bodies of the linear layer: GEMMs through OpenBLAS's cblas_sgemm (OpenMP build, so it
// shares our thread pool), bias handling and the bias gradient's column sums here.
#include <algorithm>
#include <cblas.h>

#include "backend/cpu/kernels.h"

namespace finegpt::cpu {

using namespace detail;

void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                    int C, int OC) {
  // OpenBLAS clears C in a separate pass when beta == 0, so broadcasting the bias first and
  // using beta = 1 costs no extra pass over out.
  float beta = 0.0f;
  if (bias) {
#pragma omp parallel for schedule(static)
    for (long n = 0; n < N; n++) {
      float *o = out + n * OC;
#pragma omp simd
      for (int j = 0; j < OC; j++)
        o[j] = bias[j];
    }
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, beta, out,
              OC);
}

void matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC) {
  if (dinp)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C,
                0.0f, dinp, C);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f,
              dweight, C);
  if (dbias) {
    // Column sums; each thread owns blocks of columns and sums rows in order.
    const int nblocks = (OC + CHANNEL_BLOCK - 1) / CHANNEL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblocks; blk++) {
      const int j0 = blk * CHANNEL_BLOCK;
      const int len = std::min(OC, j0 + CHANNEL_BLOCK) - j0;
      float acc[CHANNEL_BLOCK] = {};
      for (long n = 0; n < N; n++) {
        const float *g = dout + n * OC + j0;
#pragma omp simd
        for (int j = 0; j < len; j++)
          acc[j] += g[j];
      }
      for (int j = 0; j < len; j++)
        dbias[j0 + j] += acc[j];
    }
  }
}

} // namespace finegpt::cpu
