// The kernel-host shim's stand-in for <cuda_runtime.h>: what the CUDA bodies
// (src/backend/cuda/*.cu) use from CUDA, for the host compiler, so that their own source runs on
// the CPU with each CUDA thread a host thread (tests/kernel_host/kernel_host.cpp). Execution
// specifiers vanish, a static __shared__ variable is a function-local static (blocks run one at
// a time, so it is the running block's), the thread and block indices are thread-local, and
// __syncthreads and the warp collectives meet real barriers. Not a CUDA implementation: only
// what the kernels here need, each part checked by tests/kernel_host/test_kernels.cpp.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>

#define FINEGPT_KERNEL_HOST 1

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
// Dynamic shared memory: this launch's block buffer (common.cuh's FINEGPT_DYNAMIC_SMEM).
#define FINEGPT_DYNAMIC_SMEM(name) unsigned char *const name = ::kernel_host::dynamic_smem()

struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
namespace kernel_host {

// The built-in index variables, per host thread (function-local thread_locals: GCC's wrappers
// for an extern thread_local trip UBSan's null check).
inline uint3 &thread_idx() {
  static thread_local uint3 v;
  return v;
}
inline uint3 &block_idx() {
  static thread_local uint3 v;
  return v;
}
inline dim3 &block_dim() {
  static thread_local dim3 v;
  return v;
}
inline dim3 &grid_dim() {
  static thread_local dim3 v;
  return v;
}

// Runs body once per thread of each block of grid (blocks one after another, a block's threads
// concurrently as host threads), with smem bytes of dynamic shared memory per block (filled with
// a pattern: kernels must not read what they did not write).
void run(dim3 grid, dim3 block, size_t smem, const std::function<void()> &body);
unsigned char *dynamic_smem();
// __syncthreads: a barrier of the block's threads that have not returned.
void sync_block();
// A warp collective: every lane of the calling warp contributes `mine` (bytes), and each gets
// the contribution of lane src(its lane) back. Order and participation are checked.
uint64_t exchange(uint64_t mine, int src_lane);
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (PTX ISA 9.7.14.5.8), d = a b + d.
void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]);
// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16 (PTX ISA 9.7.14.5.15): `row` is this lane's
// row address (row l % 8 of matrix l / 8), which must be 16-byte aligned and in the block's
// dynamic shared memory.
void ldmatrix_x4(uint32_t (&r)[4], const void *row, bool trans);
// Launches since the last call, valid or not.
int take_launch_count();
// false: launches check their configuration and count, but run nothing (a grid too large to
// execute on the host can still be checked).
void set_execute(bool on);

} // namespace kernel_host

#define threadIdx (::kernel_host::thread_idx())
#define blockIdx (::kernel_host::block_idx())
#define blockDim (::kernel_host::block_dim())
#define gridDim (::kernel_host::grid_dim())

inline void __syncthreads() { kernel_host::sync_block(); }

template <typename T> T __shfl_xor_sync(unsigned mask, T v, int lane_mask) {
  static_assert(sizeof(T) <= 8, "shuffle of up to 8 bytes");
  if (mask != 0xffffffffu) std::abort(); // the kernels use full-warp shuffles only
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof v);
  const int lane = int(threadIdx.x % 32);
  bits = kernel_host::exchange(bits, lane ^ lane_mask);
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

// Device math with the host's functions (the fast-math intrinsics are less accurate on a GPU;
// the tests' tolerances cover that).
inline float __expf(float x) { return std::exp(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
template <typename T> inline T min(T a, T b) { return b < a ? b : a; }
template <typename T> inline T max(T a, T b) { return a < b ? b : a; }

// The runtime API the op bodies call around their launches.
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidConfiguration = 9 };
using cudaStream_t = struct CUstream_st *;
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize };
cudaError_t cudaGetLastError();
const char *cudaGetErrorName(cudaError_t);
const char *cudaGetErrorString(cudaError_t);
template <typename K> cudaError_t cudaFuncSetAttribute(K, cudaFuncAttribute, int) {
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind,
                                   cudaStream_t) {
  std::memcpy(dst, src, n);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
