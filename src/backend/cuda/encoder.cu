// CUDA bodies of the token + position embedding. The backward's scatter into dwte is made
// deterministic without atomics: a stable radix sort (CUB) groups positions by token in
// position order, and one block per token run sums its rows in fp32 and adds them once.
// Dropout (p > 0): the mask of out[n][c] is dropout_keep(key, n * C + c), the CPU's; backward
// regenerates it for each element of dout it reads.
#include "backend/cuda/common.cuh"

#include <cub/device/device_radix_sort.cuh>

namespace finegpt::cuda {

using namespace detail;

namespace {

// One thread per 8 channels (C % 8 == 0, 16-byte aligned rows) or per channel otherwise.
template <bool VEC, bool DROP>
__global__ void encoder_forward_kernel(bf *out, const int32_t *inp, const bf *wte, const bf *wpe,
                                       int N, int T, int C, DropoutArgs drop) {
  const int per = VEC ? 8 : 1;
  const size_t i = (size_t(blockIdx.x) * blockDim.x + threadIdx.x) * per;
  if (i >= size_t(N) * C) return;
  const int n = int(i / C), c = int(i % C);
  const bf *we = wte + size_t(inp[n]) * C + c;
  const bf *wp = wpe ? wpe + size_t(n % T) * C + c : nullptr; // null: rotary, no positions
  if constexpr (VEC) {
    const Pack8 a = load8(we);
    Pack8 b;
    if (wp) b = load8(wp);
    Pack8 o;
#pragma unroll
    for (int k = 0; k < 8; k++) {
      float x = __bfloat162float(a.v[k]) + (wp ? __bfloat162float(b.v[k]) : 0.0f);
      if constexpr (DROP) x = drop.apply(x, i + k);
      o.v[k] = __float2bfloat16(x);
    }
    store8(out + i, o);
  } else {
    float x = __bfloat162float(*we) + (wp ? __bfloat162float(*wp) : 0.0f);
    if constexpr (DROP) x = drop.apply(x, i);
    out[i] = __float2bfloat16(x);
  }
}

// The gradient entering the encoder at flat index i of (B,T,C): dout[i] through the mask.
template <bool DROP>
__device__ __forceinline__ float grad_at(const bf *dout, size_t i, const DropoutArgs &drop) {
  const float g = __bfloat162float(dout[i]);
  if constexpr (DROP)
    return drop.apply(g, i);
  else
    return g;
}

// dwpe[t][c] += sum_b dout[b][t][c], b in order.
template <bool DROP>
__global__ void encoder_backward_wpe_kernel(bf *dwpe, const bf *dout, int B, int T, int C,
                                            DropoutArgs drop) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size_t(T) * C) return;
  float acc = 0.0f;
  for (int b = 0; b < B; b++)
    acc += grad_at<DROP>(dout, size_t(b) * T * C + i, drop);
  dwpe[i] = __float2bfloat16(__bfloat162float(dwpe[i]) + acc);
}

__global__ void iota_kernel(int32_t *x, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] = i;
}

// Block k looks at sorted position k; if it starts a run of equal tokens, it sums the run's
// rows (ascending positions) per channel and adds the sums to that token's row of dwte.
// (A long run, such as a frequent token's, is summed by one block: correct, not yet fast.)
template <bool DROP>
__global__ void encoder_backward_wte_kernel(bf *dwte, const bf *dout, const uint32_t *tok_sorted,
                                            const int32_t *pos_sorted, int N, int C,
                                            DropoutArgs drop) {
  const int k = blockIdx.x;
  const uint32_t tok = tok_sorted[k];
  if (k > 0 && tok_sorted[k - 1] == tok) return;
  int end = k + 1;
  while (end < N && tok_sorted[end] == tok)
    end++;
  bf *row = dwte + size_t(tok) * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float acc = 0.0f;
    for (int j = k; j < end; j++)
      acc += grad_at<DROP>(dout, size_t(pos_sorted[j]) * C + c, drop);
    row[c] = __float2bfloat16(__bfloat162float(row[c]) + acc);
  }
}

} // namespace

void encoder_forward(bf16 *out, const int32_t *inp, const bf16 *wte, const bf16 *wpe, int B, int T,
                     int C, Dropout drop) {
  check_dropout(drop, "encoder_forward");
  const int N = B * T;
  if (N <= 0 || C <= 0) return; // CUDA rejects an empty grid
  const bool vec = C % 8 == 0 && aligned16(out) && aligned16(wte) && aligned16(wpe); // null passes
  const int threads = 256;
  const unsigned blocks = blocks_for(size_t(N) * C / (vec ? 8 : 1), threads);
  const auto kernel =
      drop.p > 0.0f
          ? (vec ? encoder_forward_kernel<true, true> : encoder_forward_kernel<false, true>)
          : (vec ? encoder_forward_kernel<true, false> : encoder_forward_kernel<false, false>);
  launch(kernel, blocks, threads, 0, dev(out), inp, dev(wte), dev(wpe), N, T, C,
         dropout_args(drop));
}

void encoder_backward(bf16 *dwte, bf16 *dwpe, const bf16 *dout, const int32_t *inp, int B, int T,
                      int C, Dropout drop) {
  check_dropout(drop, "encoder_backward");
  const int N = B * T;
  if (N <= 0 || C <= 0) return;
  const bool dropping = drop.p > 0.0f;
  const DropoutArgs d = dropout_args(drop);
  if (dwpe) // null: rotary, no position embedding
    launch(dropping ? encoder_backward_wpe_kernel<true> : encoder_backward_wpe_kernel<false>,
           blocks_for(size_t(T) * C, 256), 256, 0, dev(dwpe), dev(dout), B, T, C, d);

  // Workspace: sorted tokens, positions (in and out), then CUB's temporary storage. Token ids
  // are below 65536 (plan.cpp checks vocab_size), so 16 key bits suffice.
  const Workspace ws = workspace();
  auto *tokens = reinterpret_cast<const uint32_t *>(inp);
  auto *tok_sorted = static_cast<uint32_t *>(ws.ptr);
  auto *pos = reinterpret_cast<int32_t *>(tok_sorted + N);
  int32_t *pos_sorted = pos + N;
  void *temp = pos_sorted + N;
  size_t temp_bytes = 0;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, tokens, tok_sorted, pos,
                                             pos_sorted, N, 0, 16, stream()));
  FINEGPT_CHECK(size_t(3) * N * sizeof(int32_t) + temp_bytes + 256 <= ws.bytes,
                "encoder_backward: ", N, " positions need more than the ", ws.bytes,
                "-byte CUDA workspace");
  // CUB wants its temporary storage aligned; the offset above is a multiple of 4 bytes only.
  temp = reinterpret_cast<void *>((reinterpret_cast<uintptr_t>(temp) + 255) & ~uintptr_t(255));
  launch(iota_kernel, blocks_for(N, 256), 256, 0, pos, N);
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, tokens, tok_sorted, pos, pos_sorted,
                                             N, 0, 16, stream()));
  launch(dropping ? encoder_backward_wte_kernel<true> : encoder_backward_wte_kernel<false>,
         unsigned(N), 128, 0, dev(dwte), dev(dout), tok_sorted, pos_sorted, N, C, d);
}

} // namespace finegpt::cuda
