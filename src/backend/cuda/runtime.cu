// CUDA runtime glue of the seam (backend/cuda_ops.h): device queries, memory, errors, the
// shared cuBLASLt handle and workspace.
#include "backend/cuda/common.cuh"
#include "backend/memory_ledger.h"

#include <algorithm>
#include <cstdio>
#include <mutex>

namespace finegpt::cuda {

namespace detail {

void cuda_fail(cudaError_t err, const char *expr, const char *file, int line) {
  fail("CUDA error at ", file, ":", line, ": ", cudaGetErrorName(err), " (",
       cudaGetErrorString(err), ") in ", expr);
}

void cublas_fail(cublasStatus_t st, const char *expr, const char *file, int line) {
  fail("cuBLASLt error at ", file, ":", line, ": ", cublasLtGetStatusName(st), " (",
       cublasLtGetStatusString(st), ") in ", expr);
}

namespace {
struct State {
  std::mutex mu;
  cublasLtHandle_t handle = nullptr;
  cudaStream_t copy = nullptr; // copy_to_*_async
  cudaEvent_t after_compute = nullptr, after_copies = nullptr;
  void *ws = nullptr;
  size_t ws_bytes = 0;
  bool ws_owned = false;
};
State &state() {
  static State s;
  return s;
}
} // namespace

cudaStream_t stream() { return nullptr; }

cublasLtHandle_t cublaslt() {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.handle) CUBLAS_CHECK(cublasLtCreate(&s.handle));
  return s.handle;
}

Workspace workspace() {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.ws) {
    CUDA_CHECK(cudaMalloc(&s.ws, WORKSPACE_BYTES));
    s.ws_bytes = WORKSPACE_BYTES;
    s.ws_owned = true;
  }
  return {s.ws, s.ws_bytes};
}

} // namespace detail

using namespace detail;

bool compiled() noexcept { return true; }

int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError(); // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

bool device_info(int index, DeviceInfo *out) noexcept {
  int n = device_count();
  if (index < 0 || index >= n) return false;
  cudaDeviceProp p{};
  int previous = 0;
  if (cudaGetDeviceProperties(&p, index) != cudaSuccess ||
      cudaGetDevice(&previous) != cudaSuccess || cudaSetDevice(index) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  size_t free_b = 0, total_b = 0;
  const bool ok = cudaMemGetInfo(&free_b, &total_b) == cudaSuccess;
  cudaSetDevice(previous);
  if (!ok) {
    cudaGetLastError();
    return false;
  }
  *out = DeviceInfo{p.name, p.major, p.minor, total_b, free_b};
  return true;
}

std::string device_summary() noexcept {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return cat("none (", cudaGetErrorString(err), ")");
  }
  if (n == 0) return "none";
  std::string out;
  for (int i = 0; i < n; i++) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
      cudaGetLastError();
      out += cat(i ? "\n" : "", i, ": (properties unavailable)");
      continue;
    }
    char mem[32];
    std::snprintf(mem, sizeof mem, "%.1f GiB", double(p.totalGlobalMem) / (1u << 30));
    out += cat(i ? "\n" : "", i, ": ", p.name, ", sm_", p.major, p.minor, ", ", mem, ", ",
               p.multiProcessorCount, " SMs", p.major < 8 ? " (no bf16: unsupported)" : "");
  }
  return out;
}

void set_device(int index) {
  const int n = device_count();
  FINEGPT_CHECK(n > 0, "no CUDA device: ", device_summary());
  FINEGPT_CHECK(index >= 0 && index < n, "CUDA device ", index, " does not exist (", n,
                " visible)");
  cudaDeviceProp p{};
  CUDA_CHECK(cudaGetDeviceProperties(&p, index));
  FINEGPT_CHECK(p.major >= 8, "CUDA device ", index, " (", p.name, ") has compute capability ",
                p.major, ".", p.minor,
                "; the CUDA backend needs 8.0 or newer (bf16 tensor cores): use device='cpu'");
  CUDA_CHECK(cudaSetDevice(index));
}

void *device_malloc(size_t bytes) {
  ledger::check_cap(bytes);
  void *p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes ? bytes : 1);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail("out of GPU memory: asked for ", bytes, " bytes with ", free_b, " of ", total_b,
         " free; lower batch_size, raise recompute, or set offload = 'optimizer'");
  }
  CUDA_CHECK(err);
  ledger::on_device_alloc(p, bytes);
  return p;
}

void device_free(void *ptr) noexcept {
  if (!ptr) return;
  ledger::on_device_free(ptr);
  cudaFree(ptr);
}

DeviceMemory device_memory() noexcept { return ledger::device(); }

void *host_alloc_pinned(size_t bytes) {
  void *p = nullptr;
  const cudaError_t err = cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault);
  if (err != cudaSuccess) {
    cudaGetLastError();
    fail("could not pin ", bytes, " bytes of host memory (cudaHostAlloc: ", cudaGetErrorString(err),
         "); the host needs that much free for offload = 'optimizer'");
  }
  ledger::on_pinned_alloc(p, bytes);
  return p;
}

void host_free_pinned(void *ptr) noexcept {
  if (!ptr) return;
  ledger::on_pinned_free(ptr);
  cudaFreeHost(ptr);
}

size_t pinned_bytes() noexcept { return ledger::pinned(); }

namespace {
// The copy stream (non-blocking: the legacy default stream does not wait for it implicitly) and
// its two events, made on first use.
cudaStream_t copy_stream() {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.copy) {
    CUDA_CHECK(cudaStreamCreateWithFlags(&s.copy, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&s.after_compute, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&s.after_copies, cudaEventDisableTiming));
  }
  return s.copy;
}
// The copy stream waits for what the compute stream has queued so far.
cudaStream_t copy_after_compute() {
  cudaStream_t c = copy_stream();
  CUDA_CHECK(cudaEventRecord(state().after_compute, stream()));
  CUDA_CHECK(cudaStreamWaitEvent(c, state().after_compute, 0));
  return c;
}
} // namespace

void copy_to_host_async(void *dst, const void *src, size_t bytes) {
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, copy_after_compute()));
}
void copy_to_device_async(void *dst, const void *src, size_t bytes) {
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, copy_after_compute()));
}
void copies_wait() { CUDA_CHECK(cudaStreamSynchronize(copy_stream())); }
void compute_waits_for_copies() {
  cudaStream_t c = copy_stream();
  CUDA_CHECK(cudaEventRecord(state().after_copies, c));
  CUDA_CHECK(cudaStreamWaitEvent(stream(), state().after_copies, 0));
}

void copy_to_device(void *dst, const void *src, size_t bytes) {
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}
void copy_to_host(void *dst, const void *src, size_t bytes) {
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}
void device_memset(void *ptr, int byte, size_t bytes) {
  CUDA_CHECK(cudaMemsetAsync(ptr, byte, bytes, stream()));
}
void synchronize() {
  CUDA_CHECK(cudaStreamSynchronize(stream()));
  CUDA_CHECK(cudaGetLastError());
}

void set_workspace(void *ptr, size_t bytes) {
  FINEGPT_CHECK(ptr && bytes >= WORKSPACE_BYTES, "internal: the CUDA workspace needs ",
                WORKSPACE_BYTES, " bytes (got ", bytes, ")");
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.ws_owned) {
    cudaStreamSynchronize(stream());
    cudaFree(s.ws);
  }
  s.ws = ptr, s.ws_bytes = bytes, s.ws_owned = false;
}

void release() noexcept {
  release_cudnn(); // its graphs and handle first: they run in the workspace freed below
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  cudaStreamSynchronize(stream());
  if (s.ws_owned) cudaFree(s.ws);
  s.ws = nullptr, s.ws_bytes = 0, s.ws_owned = false;
  if (s.handle) cublasLtDestroy(s.handle);
  s.handle = nullptr;
  if (s.copy) {
    cudaStreamSynchronize(s.copy);
    cudaEventDestroy(s.after_compute);
    cudaEventDestroy(s.after_copies);
    cudaStreamDestroy(s.copy);
  }
  s.copy = nullptr, s.after_compute = s.after_copies = nullptr;
}

} // namespace finegpt::cuda
