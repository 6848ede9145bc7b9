// Tests of the kernel-host harness itself (shim/cuda_runtime.h, kernel_host.cpp): it rejects the
// launch configurations CUDA rejects (so the op tests' empty-work cases mean something), its
// mma.sync and ldmatrix follow the PTX ISA's fragment maps, its shuffles and barriers; and checks
// of launch configurations too large to execute on the host (attention with more than 65535 heads).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/cuda/common.cuh"
#include "core/rng.h"

namespace fc = finegpt::cuda;
using namespace finegpt::cuda::detail;

namespace {

__global__ void empty_kernel() {}

TEST(KernelHost, RejectsWhatCudaRejects) {
  struct Case {
    dim3 grid, block;
    size_t smem;
    bool ok;
  };
  const Case cases[] = {
      {dim3(1), dim3(32), 0, true},         {dim3(0), dim3(32), 0, false},
      {dim3(4, 0), dim3(32), 0, false},     {dim3(1, 65535), dim3(32), 0, true},
      {dim3(1, 65536), dim3(32), 0, false}, {dim3(1, 1, 65536), dim3(32), 0, false},
      {dim3(1), dim3(1024), 0, true},       {dim3(1), dim3(1025), 0, false},
      {dim3(1), dim3(32), 99 * 1024, true}, {dim3(1), dim3(32), 99 * 1024 + 1, false}};
  kernel_host::set_execute(false);
  for (const Case &c : cases) {
    kernel_host::run(c.grid, c.block, c.smem, [] { empty_kernel(); });
    EXPECT_EQ(cudaGetLastError() == cudaSuccess, c.ok)
        << c.grid.x << "x" << c.grid.y << "x" << c.grid.z << " blocks of " << c.block.x;
  }
  kernel_host::set_execute(true);
  kernel_host::take_launch_count();
  EXPECT_THROW(launch(empty_kernel, dim3(0), 32, 0), finegpt::Error);
  EXPECT_EQ(kernel_host::take_launch_count(), 1);
}

// Block sums over shuffles and __syncthreads (block_sum, common.cuh), three calls in a row so
// the shared scratch is reused.
__global__ void block_sums_kernel(float *out, const float *in) {
  __shared__ float shared[32];
  const float v = in[blockIdx.x * blockDim.x + threadIdx.x];
  const float a = block_sum(v, shared), b = block_sum(2.0f * v, shared), c = block_max(v, shared);
  out[(blockIdx.x * blockDim.x + threadIdx.x) * 3 + 0] = a;
  out[(blockIdx.x * blockDim.x + threadIdx.x) * 3 + 1] = b;
  out[(blockIdx.x * blockDim.x + threadIdx.x) * 3 + 2] = c;
}

TEST(KernelHost, BlockReductions) {
  const int blocks = 3, threads = 96;
  std::vector<float> in(blocks * threads), out(in.size() * 3);
  for (size_t i = 0; i < in.size(); i++)
    in[i] = float(int(i * 7919 % 101) - 50);
  launch(block_sums_kernel, blocks, threads, 0, out.data(), in.data());
  for (int b = 0; b < blocks; b++) {
    float sum = 0.0f, mx = -INFINITY;
    for (int t = 0; t < threads; t++)
      sum += in[b * threads + t], mx = std::max(mx, in[b * threads + t]);
    for (int t = 0; t < threads; t++) {
      EXPECT_EQ(out[(b * threads + t) * 3 + 0], sum) << b << " " << t;
      EXPECT_EQ(out[(b * threads + t) * 3 + 1], 2.0f * sum) << b << " " << t;
      EXPECT_EQ(out[(b * threads + t) * 3 + 2], mx) << b << " " << t;
    }
  }
}

// One warp multiplies A (16x16, row-major) by B (16x8, k x n) with fragments gathered as the PTX
// ISA lists them (a_i: row g + 8 ((i / 2) & 1), col 2t + (i & 1) + 8 (i / 4); b_i: row
// 2t + (i & 1) + 8 (i / 2), col g; c_i: row g + 8 (i / 2), col 2t + (i & 1)).
__global__ void mma_kernel(float *D, const __nv_bfloat16 *A, const __nv_bfloat16 *B,
                           const float *C) {
  const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
  auto pack = [](__nv_bfloat16 lo, __nv_bfloat16 hi) {
    return uint32_t(lo.bits) | (uint32_t(hi.bits) << 16);
  };
  uint32_t a[4], b[2];
  for (int r = 0; r < 4; r++) {
    const int row = g + 8 * (r & 1), col = 2 * t + 8 * (r >> 1);
    a[r] = pack(A[row * 16 + col], A[row * 16 + col + 1]);
  }
  for (int r = 0; r < 2; r++) {
    const int k = 2 * t + 8 * r;
    b[r] = pack(B[k * 8 + g], B[(k + 1) * 8 + g]);
  }
  float d[4];
  for (int i = 0; i < 4; i++)
    d[i] = C[(g + 8 * (i / 2)) * 8 + 2 * t + (i & 1)];
  mma_m16n8k16(d, a, b);
  for (int i = 0; i < 4; i++)
    D[(g + 8 * (i / 2)) * 8 + 2 * t + (i & 1)] = d[i];
}

TEST(KernelHost, MmaFollowsThePtxFragmentMaps) {
  finegpt::Rng rng(5);
  std::vector<__nv_bfloat16> A(256), B(128);
  std::vector<float> C(128), D(128, NAN);
  for (auto &x : A)
    x = __float2bfloat16(rng.normal());
  for (auto &x : B)
    x = __float2bfloat16(rng.normal());
  for (auto &x : C)
    x = rng.normal();
  launch(mma_kernel, 1, 32, 0, D.data(), A.data(), B.data(), C.data());
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 8; j++) {
      double want = C[i * 8 + j];
      for (int k = 0; k < 16; k++)
        want += double(__bfloat162float(A[i * 16 + k])) * __bfloat162float(B[k * 8 + j]);
      EXPECT_NEAR(D[i * 8 + j], want, 1e-5 * (1.0 + std::fabs(want))) << i << "," << j;
    }
}

// ldmatrix.x4 with and without .trans (PTX ISA: register i of lane 4g + t holds matrix i's row
// g, cols 2t, 2t+1; transposed, rows 2t, 2t+1 of col g) from a 16 x 24 shared tile whose element
// (row, col) holds the bits row * 100 + col; the four matrices sit at (0,0), (8,0), (0,8), (8,16).
__global__ void ldmatrix_kernel(uint32_t *plain, uint32_t *trans) {
  FINEGPT_DYNAMIC_SMEM(smem);
  bf *tile = reinterpret_cast<bf *>(smem);
  const int lane = threadIdx.x;
  for (int i = lane; i < 16 * 24; i += 32)
    tile[i].bits = uint16_t(i / 24 * 100 + i % 24);
  __syncthreads();
  const int m = lane / 8, r0[4] = {0, 8, 0, 8}, c0[4] = {0, 0, 8, 16};
  const bf *row = tile + (r0[m] + lane % 8) * 24 + c0[m];
  uint32_t r[4];
  ldmatrix_x4<false>(r, row);
  for (int i = 0; i < 4; i++)
    plain[lane * 4 + i] = r[i];
  ldmatrix_x4<true>(r, row);
  for (int i = 0; i < 4; i++)
    trans[lane * 4 + i] = r[i];
}

TEST(KernelHost, LdmatrixFollowsThePtxMaps) {
  std::vector<uint32_t> plain(128), trans(128);
  launch(ldmatrix_kernel, 1, 32, 16 * 24 * 2, plain.data(), trans.data());
  const int r0[4] = {0, 8, 0, 8}, c0[4] = {0, 0, 8, 16};
  auto bits = [&](int m, int row, int col) { return uint32_t((r0[m] + row) * 100 + c0[m] + col); };
  for (int lane = 0; lane < 32; lane++)
    for (int i = 0; i < 4; i++) {
      const int g = lane / 4, t = lane % 4;
      EXPECT_EQ(plain[lane * 4 + i], bits(i, g, 2 * t) | bits(i, g, 2 * t + 1) << 16)
          << "lane " << lane << " register " << i;
      EXPECT_EQ(trans[lane * 4 + i], bits(i, 2 * t, g) | bits(i, 2 * t + 1, g) << 16)
          << "lane " << lane << " register " << i << " (.trans)";
    }
}

// B * NH = 70000 heads: beyond grid.y's 65535, within grid.x's limit (the attention grid puts
// heads in x). Checked without executing (70000 blocks of 128 host threads would take minutes).
TEST(KernelHost, AttentionGridTakesManyHeads) {
  const int B = 70000, T = 3, NH = 1, C = 32;
  fc::bf16 *qkv = static_cast<fc::bf16 *>(fc::device_malloc(size_t(B) * T * 3 * C * 2));
  fc::bf16 *out = static_cast<fc::bf16 *>(fc::device_malloc(size_t(B) * T * C * 2));
  fc::bf16 *dqkv = static_cast<fc::bf16 *>(fc::device_malloc(size_t(B) * T * 3 * C * 2));
  float *lse = static_cast<float *>(fc::device_malloc(size_t(B) * NH * T * 4));
  kernel_host::set_execute(false);
  kernel_host::take_launch_count();
  EXPECT_NO_THROW(fc::attention_forward(out, lse, qkv, B, T, C, NH, {}));
  EXPECT_NO_THROW(fc::attention_backward(dqkv, out, qkv, out, lse, B, T, C, NH, {}));
  EXPECT_EQ(kernel_host::take_launch_count(), 4); // forward; D, dq, dk/dv
  kernel_host::set_execute(true);
  for (void *p : {static_cast<void *>(qkv), static_cast<void *>(out), static_cast<void *>(dqkv),
                  static_cast<void *>(lse)})
    fc::device_free(p);
}

} // namespace
