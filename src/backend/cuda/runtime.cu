// CUDA runtime glue of the seam (backend/cuda_ops.h): device queries, memory, errors, the
// shared cuBLASLt handle and workspace, and the fixed-order column sums several ops share.
#include "backend/cuda/common.cuh"

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

void check_dropout(const Dropout &d, const char *op) {
  FINEGPT_CHECK(d.p >= 0.0f && d.p < 1.0f, op, ": dropout probability ", d.p,
                " is outside [0, 1); set dropout to a value in [0, 1)");
}

namespace {
struct State {
  std::mutex mu;
  cublasLtHandle_t handle = nullptr;
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
  void *p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes ? bytes : 1);
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    fail("out of GPU memory: asked for ", bytes, " bytes with ", free_b, " of ", total_b,
         " free; lower batch_size or raise recompute");
  }
  CUDA_CHECK(err);
  return p;
}

void device_free(void *ptr) noexcept {
  if (ptr) cudaFree(ptr);
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
}

// ---------------------------------------------------------------- column sums

namespace detail {

namespace {
constexpr int CS_COLS = 32; // columns per block: one per lane
constexpr int CS_WARPS = 8; // warps per block, striding over the chunk's rows

// partial[chunk][c] = sum over the chunk's rows; with LayerNormWeight, partial2 gets the plain
// sum and partial the sum of x * xhat.
template <ColumnSum KIND>
__global__ void column_partials_kernel(float *partial, float *partial2, const bf *x, const bf *inp,
                                       const float *mean, const float *rstd, int N, int C,
                                       int rows_per_chunk) {
  __shared__ float s1[CS_WARPS][CS_COLS], s2[CS_WARPS][CS_COLS];
  const int c = blockIdx.x * CS_COLS + threadIdx.x;
  const int chunk = blockIdx.y;
  const int r0 = chunk * rows_per_chunk, r1 = min(N, r0 + rows_per_chunk);
  float a1 = 0.0f, a2 = 0.0f;
  if (c < C) {
    for (int r = r0 + threadIdx.y; r < r1; r += CS_WARPS) {
      const float g = __bfloat162float(x[size_t(r) * C + c]);
      if constexpr (KIND == ColumnSum::LayerNormWeight) {
        const float xhat = (__bfloat162float(inp[size_t(r) * C + c]) - mean[r]) * rstd[r];
        a1 += g * xhat;
        a2 += g;
      } else {
        a1 += g;
      }
    }
  }
  s1[threadIdx.y][threadIdx.x] = a1;
  s2[threadIdx.y][threadIdx.x] = a2;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float t1 = 0.0f, t2 = 0.0f;
    for (int w = 0; w < CS_WARPS; w++)
      t1 += s1[w][threadIdx.x], t2 += s2[w][threadIdx.x];
    partial[size_t(chunk) * C + c] = t1;
    if (KIND == ColumnSum::LayerNormWeight) partial2[size_t(chunk) * C + c] = t2;
  }
}

__global__ void column_finish_kernel(bf *out, bf *out2, const float *partial, const float *partial2,
                                     int nchunks, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float t1 = 0.0f, t2 = 0.0f;
  for (int k = 0; k < nchunks; k++) {
    t1 += partial[size_t(k) * C + c];
    if (out2) t2 += partial2[size_t(k) * C + c];
  }
  out[c] = __float2bfloat16(__bfloat162float(out[c]) + t1);
  if (out2) out2[c] = __float2bfloat16(__bfloat162float(out2[c]) + t2);
}
} // namespace

void column_sums_add(bf16 *out, bf16 *out2, ColumnSum kind, const bf16 *x, const bf16 *inp,
                     const float *mean, const float *rstd, int N, int C) {
  if (N <= 0 || C <= 0) return;
  // At most 1024 chunks of at least 64 rows, and never more than the workspace holds.
  const size_t per_chunk_bytes = size_t(2) * C * sizeof(float);
  const int max_chunks = int(std::min<size_t>(1024, WORKSPACE_BYTES / per_chunk_bytes));
  FINEGPT_CHECK(max_chunks >= 1, "internal: column sums of ", C, " columns exceed the workspace");
  const int rows_per_chunk = std::max(64, (N + max_chunks - 1) / max_chunks);
  const int nchunks = (N + rows_per_chunk - 1) / rows_per_chunk;
  const Workspace ws = workspace();
  float *partial = static_cast<float *>(ws.ptr);
  float *partial2 = partial + size_t(nchunks) * C;
  const dim3 grid(blocks_for(C, CS_COLS), nchunks), block(CS_COLS, CS_WARPS);
  if (kind == ColumnSum::LayerNormWeight)
    column_partials_kernel<ColumnSum::LayerNormWeight><<<grid, block, 0, stream()>>>(
        partial, partial2, dev(x), dev(inp), mean, rstd, N, C, rows_per_chunk);
  else
    column_partials_kernel<ColumnSum::Plain><<<grid, block, 0, stream()>>>(
        partial, nullptr, dev(x), nullptr, nullptr, nullptr, N, C, rows_per_chunk);
  LAUNCH_CHECK();
  column_finish_kernel<<<blocks_for(C, 256), 256, 0, stream()>>>(
      dev(out), kind == ColumnSum::LayerNormWeight ? dev(out2) : nullptr, partial, partial2,
      nchunks, C);
  LAUNCH_CHECK();
}

} // namespace detail

} // namespace finegpt::cuda
