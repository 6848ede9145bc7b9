// CUDA bodies of the fixed-order column sums several ops share (detail::column_sums_add in
// common.cuh: dbias of the linear layer, dweight and dbias of LayerNorm): fp32 partial sums of
// row chunks into the workspace, then one pass adding them in chunk order.
#include "backend/cuda/common.cuh"

#include <algorithm>

namespace finegpt::cuda {

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
        const float mu = mean ? mean[r] : 0.0f; // RMSNorm: no mean
        const float xhat = (__bfloat162float(inp[size_t(r) * C + c]) - mu) * rstd[r];
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
    launch(column_partials_kernel<ColumnSum::LayerNormWeight>, grid, block, 0, partial, partial2,
           dev(x), dev(inp), mean, rstd, N, C, rows_per_chunk);
  else
    launch(column_partials_kernel<ColumnSum::Plain>, grid, block, 0, partial, nullptr, dev(x),
           nullptr, nullptr, nullptr, N, C, rows_per_chunk);
  launch(column_finish_kernel, blocks_for(C, 256), 256, 0, dev(out),
         kind == ColumnSum::LayerNormWeight ? dev(out2) : nullptr, partial, partial2, nchunks, C);
}

} // namespace detail

} // namespace finegpt::cuda
