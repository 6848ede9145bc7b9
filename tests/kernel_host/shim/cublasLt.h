// The kernel-host shim's stand-in for <cublasLt.h>: only the names common_host.h declares with
// (the GEMMs, matmul.cu, are cuBLASLt's and do not run on the host).
#pragma once
using cublasLtHandle_t = struct cublasLtContext *;
enum cublasStatus_t { CUBLAS_STATUS_SUCCESS = 0 };
