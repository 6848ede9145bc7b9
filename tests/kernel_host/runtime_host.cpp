// The CUDA seam's runtime (backend/cuda_ops.h; on a GPU backend/cuda/runtime.cu) for the
// kernel-host harness: one "device", the host, whose memory is host memory, so the CUDA op tests
// (tests/backend/test_cuda_ops.cpp) run unchanged against the kernels' own source executed by
// kernel_host.cpp. The GEMMs are cuBLASLt's (matmul.cu) and do not run here: they throw.
#include <cblas.h>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "backend/cuda/common_host.h"
#include "core/error.h"

namespace finegpt::cuda {

namespace detail {

void cuda_fail(cudaError_t err, const char *expr, const char *file, int line) {
  fail("CUDA error at ", file, ":", line, ": ", cudaGetErrorName(err), " (",
       cudaGetErrorString(err), ") in ", expr);
}
void cublas_fail(cublasStatus_t, const char *expr, const char *, int) {
  fail("cuBLASLt is not part of the kernel-host harness (", expr, ")");
}

namespace {
struct State {
  std::unique_ptr<unsigned char[]> owned;
  void *ws = nullptr;
  size_t ws_bytes = 0;
};
State &state() {
  static State s;
  return s;
}
} // namespace

cudaStream_t stream() { return nullptr; }
cublasLtHandle_t cublaslt() { fail("cuBLASLt is not part of the kernel-host harness"); }
Workspace workspace() {
  State &s = state();
  if (!s.ws) {
    s.owned.reset(new unsigned char[WORKSPACE_BYTES]);
    s.ws = s.owned.get(), s.ws_bytes = WORKSPACE_BYTES;
  }
  return {s.ws, s.ws_bytes};
}

} // namespace detail

bool compiled() noexcept { return true; }
int device_count() noexcept { return 1; }
std::string device_summary() noexcept { return "0: the host (kernel-host harness)"; }
bool device_info(int index, DeviceInfo *out) noexcept {
  if (index != 0) return false;
  *out = DeviceInfo{"kernel-host harness", 9, 0, size_t(1) << 34, size_t(1) << 34};
  return true;
}
void set_device(int index) { FINEGPT_CHECK(index == 0, "CUDA device ", index, " does not exist"); }

void *device_malloc(size_t bytes) {
  // 256-byte aligned as cudaMalloc; exact size, so AddressSanitizer sees one byte past the end.
  const size_t n = bytes ? bytes : 1;
  void *p = std::aligned_alloc(256, (n + 255) / 256 * 256);
  FINEGPT_CHECK(p, "kernel-host harness: out of memory for ", bytes, " bytes");
  return p;
}
void device_free(void *ptr) noexcept { std::free(ptr); }
void copy_to_device(void *dst, const void *src, size_t bytes) { std::memcpy(dst, src, bytes); }
void copy_to_host(void *dst, const void *src, size_t bytes) { std::memcpy(dst, src, bytes); }
void device_memset(void *ptr, int byte, size_t bytes) { std::memset(ptr, byte, bytes); }
void synchronize() { CUDA_CHECK(cudaGetLastError()); }

void set_workspace(void *ptr, size_t bytes) {
  FINEGPT_CHECK(ptr && bytes >= WORKSPACE_BYTES, "internal: the CUDA workspace needs ",
                WORKSPACE_BYTES, " bytes (got ", bytes, ")");
  detail::State &s = detail::state();
  s.owned.reset();
  s.ws = ptr, s.ws_bytes = bytes;
}
void release() noexcept {
  detail::State &s = detail::state();
  s.owned.reset();
  s.ws = nullptr, s.ws_bytes = 0;
}

namespace {
[[noreturn]] void no_gemm(const char *op) {
  fail(op, " runs on cuBLASLt, which is not part of the kernel-host harness");
}
} // namespace
void matmul_forward(bf16 *, const bf16 *, const bf16 *, const bf16 *, int, int, int) {
  no_gemm("matmul_forward");
}
void matmul_forward_gelu(bf16 *, bf16 *, const bf16 *, const bf16 *, const bf16 *, int, int, int) {
  no_gemm("matmul_forward_gelu");
}
void matmul_backward(bf16 *, bf16 *, bf16 *, const bf16 *, const bf16 *, const bf16 *, int, int,
                     int) {
  no_gemm("matmul_backward");
}
// The optimizer's GEMM (Muon) stands in as the host's: bf16 operands widened, fp32 accumulation
// (OpenBLAS), the result rounded, as cuBLASLt's contract is.
void gemm(bf16 *D, const bf16 *A, const bf16 *B, int m, int n, int k, bool transb, float alpha,
          float beta) {
  auto widen = [](const bf16 *p, size_t len) {
    std::vector<float> v(len);
    for (size_t i = 0; i < len; i++)
      v[i] = to_float(p[i]);
    return v;
  };
  const std::vector<float> a = widen(A, size_t(m) * k), b = widen(B, size_t(k) * n);
  std::vector<float> d = widen(D, size_t(m) * n);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, transb ? CblasTrans : CblasNoTrans, m, n, k, alpha,
              a.data(), k, b.data(), transb ? k : n, beta, d.data(), n);
  for (size_t i = 0; i < d.size(); i++)
    D[i] = to_bf16(d[i]);
}

} // namespace finegpt::cuda
