// The host-only part of the CUDA bodies' internal helpers (common.cuh includes it): status
// checks that throw finegpt::Error with file:line and the shared state (stream, cuBLASLt handle,
// workspace). Needs no device code, so .cpp files compiled by the host compiler (the cuDNN
// attention, whose frontend headers are plain C++) can include it. Not part of the seam.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "backend/cuda_ops.h"
#include "core/error.h"

namespace finegpt::cuda::detail {

[[noreturn]] void cuda_fail(cudaError_t err, const char *expr, const char *file, int line);
[[noreturn]] void cublas_fail(cublasStatus_t st, const char *expr, const char *file, int line);

// Every CUDA runtime call goes through CUDA_CHECK, every cuBLASLt call through CUBLAS_CHECK,
// and every launch is followed by LAUNCH_CHECK() (launch errors; asynchronous faults surface
// at the next checked call or synchronize()).
#define CUDA_CHECK(expr)                                                                           \
  do {                                                                                             \
    const cudaError_t err_ = (expr);                                                               \
    if (err_ != cudaSuccess) ::finegpt::cuda::detail::cuda_fail(err_, #expr, __FILE__, __LINE__);  \
  } while (0)
#define CUBLAS_CHECK(expr)                                                                         \
  do {                                                                                             \
    const cublasStatus_t st_ = (expr);                                                             \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                              \
      ::finegpt::cuda::detail::cublas_fail(st_, #expr, __FILE__, __LINE__);                        \
  } while (0)
#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

// Shared state: the stream every op runs on (the legacy default stream for now), the
// cuBLASLt handle and the workspace (created on first use).
cudaStream_t stream();
cublasLtHandle_t cublaslt();
struct Workspace {
  void *ptr;
  size_t bytes;
};
Workspace workspace();

// Frees the cuDNN attention's graphs and handle (attention_cudnn.cpp, or a no-op in a build
// without cuDNN); called by release() before the workspace goes.
void release_cudnn() noexcept;

// Dropout probability in [0, 1), as the CPU ops check it.
inline void check_dropout(const Dropout &d, const char *op) {
  FINEGPT_CHECK(d.p >= 0.0f && d.p < 1.0f, op, ": dropout probability ", d.p,
                " is outside [0, 1); set dropout to a value in [0, 1)");
}

} // namespace finegpt::cuda::detail
