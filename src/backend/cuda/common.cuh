// Internal helpers of the CUDA bodies (backend/cuda/*.cu): the host part (status checks that
// throw finegpt::Error with file:line, the shared state: stream, cuBLASLt handle, workspace) in
// common_host.h, and here bf16 views of the seam's pointers, the launch helper, warp reductions,
// the tensor-core product and 16-byte vector access. Not part of the seam.
//
// The bodies are also compiled by the host compiler against tests/kernel_host/shim, whose
// cuda_runtime.h defines FINEGPT_KERNEL_HOST and runs each kernel with host threads; the only
// differences that makes in this folder are below: how a kernel is launched (launch), how
// dynamic shared memory is declared (FINEGPT_DYNAMIC_SMEM) and the mma.sync instruction.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "backend/cuda/common_host.h"
#include "core/rng.h"

namespace finegpt::cuda::detail {

using bf = __nv_bfloat16;
static_assert(sizeof(bf) == sizeof(bf16), "bf16 and __nv_bfloat16 differ in size");
inline bf *dev(bf16 *p) { return reinterpret_cast<bf *>(p); }
inline const bf *dev(const bf16 *p) { return reinterpret_cast<const bf *>(p); }

// A Dropout as kernels take it: the mask of element i is core/rng.h's dropout_keep (the CPU's
// masks bit for bit), and kept elements are scaled by `scale` = 1/(1-p), computed on the host
// with the CPU's expression (cpu::detail::dropout_scale) so both sides use the same float.
struct DropoutArgs {
  uint64_t key;
  float p, scale;
  __device__ __forceinline__ bool keep(uint64_t i) const { return dropout_keep(key, i, p); }
  // x * scale if element i is kept, else 0 (the CPU ops' expression).
  __device__ __forceinline__ float apply(float x, uint64_t i) const {
    return keep(i) ? x * scale : 0.0f;
  }
};
inline DropoutArgs dropout_args(const Dropout &d) { return {d.key, d.p, 1.0f / (1.0f - d.p)}; }

// Blocks of `threads` covering n items.
inline unsigned blocks_for(size_t n, int threads) { return unsigned((n + threads - 1) / threads); }

// kernel<<<grid, block, smem, stream()>>>(args...), then LAUNCH_CHECK. Ops return before calling
// it for empty work: CUDA rejects a grid with a zero dimension as an invalid configuration.
template <typename T> struct Ident { using type = T; };
template <typename... P>
void launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem,
            typename Ident<P>::type... args) {
#ifdef FINEGPT_KERNEL_HOST
  ::kernel_host::run(grid, block, smem, [&] { kernel(args...); });
#else
  kernel<<<grid, block, smem, stream()>>>(args...);
#endif
  LAUNCH_CHECK();
}

// The block's dynamic shared memory as `unsigned char name[]`, 16-byte aligned.
#ifndef FINEGPT_DYNAMIC_SMEM
#define FINEGPT_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
#endif

// Faults the kernel-host tests inject into a kernel to show that they catch them
// (tests/kernel_host/CMakeLists.txt); 0, no fault, in every other build.
#ifndef FINEGPT_KERNEL_FAULT
#define FINEGPT_KERNEL_FAULT 0
#endif

// Column sums (fp32, fixed order) of a row-major (N, C) matrix added into a bf16 vector:
// out[c] = bf16(out[c] + sum_n f(n, c)) with f one of the kinds below. The partial sums of
// row chunks go to the workspace; the chunking depends on N and C only, so results are
// bitwise reproducible on any GPU. Used for dbias of matmul and dweight/dbias of LayerNorm (and
// of RMSNorm: mean null, out2 null).
enum class ColumnSum { Plain, LayerNormWeight };
void column_sums_add(bf16 *out, bf16 *out2, ColumnSum kind, const bf16 *x, const bf16 *inp,
                     const float *mean, const float *rstd, int N, int C);

// ---------------------------------------------------------------- device helpers

constexpr unsigned FULL_MASK = 0xffffffffu;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(FULL_MASK, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
    v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
  return v;
}

// Sum over a block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// The order is fixed by the block size alone. `shared` holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float *shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads(); // shared may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < nwarps ? shared[lane] : 0.0f;
  return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float *shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < nwarps ? shared[lane] : -INFINITY;
  return warp_max(v);
}

// d += a b over one warp: mma.sync m16n8k16, bf16 inputs, fp32 accumulation. Fragments (PTX ISA,
// lane = 4 g + t): a = A (16x16 row-major) at rows g | g+8, cols 2t, 2t+1 | +8; b = B (16x8)
// at k 2t, 2t+1 | +8, col g; d = D (16x8) at rows g | g+8, cols 2t, 2t+1.
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4],
                                             const uint32_t (&b)[2]) {
#ifdef FINEGPT_KERNEL_HOST
  ::kernel_host::mma_m16n8k16_bf16(d, a, b);
#else
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
               "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// Four 8x8 bf16 matrices from shared memory in one instruction: ldmatrix.sync.aligned.m8n8.x4
// [.trans].shared.b16. Lane l gives the address of row l % 8 of matrix l / 8 (16-byte aligned);
// register i of lane 4g + t receives matrix i's (row g, cols 2t, 2t+1), the layout of an mma
// fragment, or with TRANS its (rows 2t, 2t+1, col g), i.e. the matrix transposed.
template <bool TRANS>
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const bf *row_address) {
#ifdef FINEGPT_KERNEL_HOST
  ::kernel_host::ldmatrix_x4(r, row_address, TRANS);
#else
  const unsigned a = unsigned(__cvta_generic_to_shared(row_address));
  if constexpr (TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
#endif
}

// Eight bf16 in one 16-byte access.
struct alignas(16) Pack8 {
  bf v[8];
};
__device__ __forceinline__ Pack8 load8(const bf *p) { return *reinterpret_cast<const Pack8 *>(p); }
__device__ __forceinline__ void store8(bf *p, const Pack8 &x) { *reinterpret_cast<Pack8 *>(p) = x; }
inline bool aligned16(const void *p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

} // namespace finegpt::cuda::detail
