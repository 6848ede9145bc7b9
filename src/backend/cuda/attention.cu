// CUDA bodies of causal self-attention, flash style (Dao et al., FlashAttention-2): tiles of
// queries and keys in shared memory, bf16 tensor-core products (mma.sync m16n8k16, fp32
// accumulation), an online softmax in registers, and only the log-sum-exp (B,NH,T) kept for
// backward; no T x T matrix exists. Backward recomputes the probabilities from the log-sum-exp in
// two kernels, one owning query tiles (dq) and one owning key tiles (dk, dv), so that no output is
// written by two blocks: deterministic, without atomics or fp32 scratch, at the price of computing
// the scores twice; D = dout . out per row, which both need, is computed once before them into
// the op workspace. Head sizes 32, 64 and 128 (a template parameter).
//
// Fragment layouts (PTX ISA, mma.m16n8k16 with .bf16): lane = 4 g + t. A (16x16, row-major):
// registers hold (row g | g+8, cols 2t, 2t+1 | +8). B (16x8, k x n): (k 2t, 2t+1 | +8, col g).
// C (16x8): (row g | g+8, cols 2t, 2t+1). A C fragment of two adjacent n-tiles is therefore an A
// fragment once rounded to bf16: P goes from one product to the next without leaving registers.
// Q, K, V and dout tiles are held once in shared memory, row-major ([row][HS]); fragments are
// read with ldmatrix.x4, four registers an instruction, B fragments of a tile whose rows are the
// product's k (V in P V, K in dS K, Q and dout in dS^T Q and P^T dout) through its .trans form,
// so no transposed copy is made. The forward keeps its Q fragments in registers for all key
// tiles, and masks only the diagonal tile.
//
// Dropout (p > 0; the kernels are templated on DROP so p = 0 runs the code it always ran): as on
// the CPU, probability (query i, key j) of head bh = b*NH + h (= blockIdx.x) has the mask
// dropout_keep(key, (bh*T + i)*T + j), its flat index in (B,NH,T,T). The coordinates of a score
// come from the C layout: in a warp owning rows r0..r0+15 of a product, register e of n-tile nt
// (s[nt][e]) sits at row r0 + g + 8*(e >> 1) and column nt*8 + 2t + (e & 1). In the forward and
// dq kernels rows are queries (row_a = qt*TILE + r0 + g, row_b = row_a + 8) and columns keys
// (kt*TILE + nt*8 + 2t + (e & 1)); the dk/dv kernel computes the transposed product, so rows are
// keys (key_a, key_b) and columns queries (qi*QB + nt*8 + 2t + (e & 1)) and the index takes them
// the other way round. These are the same coordinates the causal mask tests; keep_bits hashes a
// tile's 4 * (columns / 8) mask entries per thread into one word before the products. The row sums
// l and the saved log-sum-exp stay those of the undropped P; out = (P o Z) V / (1-p) with Z the
// mask, the 1/(1-p) folded into the final 1/l. Backward (FlashAttention-2 with dropout), with Z' =
// Z/(1-p): dV = (P o Z')^T dO, dP' = dO V^T, dS = P o (Z' o dP' - D), D_i = dO_i . O_i (O the
// dropped output, so D is still rowsum(P o Z' o dP')).
#include "backend/cuda/common.cuh"

#include <cmath>
#include <type_traits>

namespace finegpt::cuda {

using namespace detail;

namespace {

constexpr int WARPS = 4; // 16 rows each
constexpr int THREADS = WARPS * 32;
constexpr int TILE = 64;     // queries per block (forward, dq) and keys per block (dk, dv)
constexpr int KV_QTILE = 32; // queries per step of the dk/dv kernel (fits 99 KB at HS 128)
constexpr int PAD = 8;       // bf16 of padding per shared row: ldmatrix's 8 rows hit distinct banks
constexpr float LOG2E = 1.4426950408889634f;
constexpr float LN2 = 0.6931471805599453f;

__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t *>(&v);
}

// Dropout keep bits of a warp's C fragments s[NT][4] (NT <= 8): bit 4 nt + e for s[nt][e], whose
// mask index is base_<e >> 1> + (nt*8 + (e & 1)) * stride (see the top of the file). Computed
// before the products so that the hashing's temporaries do not coexist with s and dp.
template <int NT>
__device__ __forceinline__ uint32_t keep_bits(const DropoutArgs &drop, uint64_t base_lo,
                                              uint64_t base_hi, uint64_t stride) {
  static_assert(NT <= 8, "32 bits");
  uint32_t bits = 0;
#pragma unroll 1 // four hashes in flight at a time: enough, and few registers
  for (int nt = 0; nt < NT; nt++)
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const uint64_t i = (e < 2 ? base_lo : base_hi) + uint64_t(nt * 8 + (e & 1)) * stride;
      bits |= uint32_t(drop.keep(i)) << (4 * nt + e);
    }
  return bits;
}
__device__ __forceinline__ bool bit(uint32_t bits, int k) { return (bits >> k) & 1u; }

// Fragments come from shared tiles through ldmatrix.x4 (common.cuh), one instruction for four
// registers; a lane's row address picks which 8x8 quarter it names (matrix l / 8, row l % 8).
// A fragment of rows r0.., columns k0.. of a row-major shared tile with row stride ld: matrices
// (r0, k0), (r0 + 8, k0), (r0, k0 + 8), (r0 + 8, k0 + 8) are registers 0-3.
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf *tile, int ld, int r0, int k0) {
  const int lane = threadIdx.x % 32;
  ldmatrix_x4<false>(a,
                     tile + (r0 + (lane & 7) + 8 * ((lane >> 3) & 1)) * ld + k0 + 8 * (lane >> 4));
  if (FINEGPT_KERNEL_FAULT == 1) { // fault 1: registers 1, 2 swapped
    const uint32_t x = a[1];
    a[1] = a[2], a[2] = x;
  }
}
// B fragments of n-tiles n0.. and n0 + 8.. (k0..k0 + 15) from a shared tile stored [n][k] with
// row stride ld: matrices (n0, k0), (n0, k0 + 8) are b0, (n0 + 8, k0), (n0 + 8, k0 + 8) are b1.
__device__ __forceinline__ void load_b2(uint32_t (&b0)[2], uint32_t (&b1)[2], const bf *tile,
                                        int ld, int n0, int k0) {
  const int lane = threadIdx.x % 32;
  uint32_t r[4];
  ldmatrix_x4<false>(r,
                     tile + (n0 + (lane & 7) + 8 * (lane >> 4)) * ld + k0 + 8 * ((lane >> 3) & 1));
  b0[0] = r[0], b0[1] = r[1], b1[0] = r[2], b1[1] = r[3];
}
// The same from a tile stored [k][n] (a row-major tile whose rows are the products' k), through
// ldmatrix's transpose: matrices (k0, n0), (k0 + 8, n0) are b0, (k0, n0 + 8), (k0 + 8, n0 + 8)
// b1. So V, K, Q and dout serve both products from one row-major copy.
__device__ __forceinline__ void load_bt2(uint32_t (&b0)[2], uint32_t (&b1)[2], const bf *tile,
                                         int ld, int n0, int k0) {
  const int lane = threadIdx.x % 32;
  uint32_t r[4];
  ldmatrix_x4<true>(r,
                    tile + (k0 + (lane & 7) + 8 * ((lane >> 3) & 1)) * ld + n0 + 8 * (lane >> 4));
  b0[0] = r[0], b0[1] = r[1], b1[0] = r[2], b1[1] = r[3];
}
// The A fragment of C-fragment n-tiles 2j and 2j+1 (rounded to bf16).
__device__ __forceinline__ void c_to_a(uint32_t (&a)[4], const float (&c0)[4],
                                       const float (&c1)[4]) {
  a[0] = pack2(c0[0], c0[1]);
  a[1] = pack2(c0[2], c0[3]);
  a[2] = pack2(c1[0], c1[1]);
  a[3] = pack2(c1[2], c1[3]);
}
// d += a b (common.cuh)
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  mma_m16n8k16(d, a, b);
}

// Rows [row0, row0 + ROWS) of one head (HS columns from src, rows row_stride apart) into a
// shared tile [ROWS][HS + PAD]; rows at or past T are zero.
template <int ROWS, int HS>
__device__ void load_tile(bf *dst, const bf *src, size_t row_stride, int row0, int T) {
  constexpr int CH = HS / 8;
  for (int i = threadIdx.x; i < ROWS * CH; i += THREADS) {
    const int r = i / CH, c = (i % CH) * 8;
    Pack8 v;
    if (row0 + r < T) {
      v = load8(src + size_t(row0 + r) * row_stride + c);
    } else {
#pragma unroll
      for (int k = 0; k < 8; k++)
        v.v[k] = __float2bfloat16(0.0f);
    }
    store8(dst + r * (HS + PAD) + c, v);
  }
}
// D = dout . out per row of each head, dd (B,NH,T): computed once before the two backward
// kernels (both need it for every tile they visit). Grid (B*NH, tiles of T), a warp per row.
template <int HS>
__global__ void __launch_bounds__(THREADS)
    attention_backward_d_kernel(float *dd, const bf *dout, const bf *out, int T, int C, int NH) {
  const int bh = blockIdx.x, b = bh / NH, h = bh % NH;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const bf *dob = dout + size_t(b) * T * C + h * HS, *outb = out + size_t(b) * T * C + h * HS;
  for (int r = warp; r < TILE; r += WARPS) {
    const int row = blockIdx.y * TILE + r;
    if (row >= T) break; // the same for the whole warp
    float acc = 0.0f;
    for (int d = lane; d < HS; d += 32)
      acc +=
          __bfloat162float(dob[size_t(row) * C + d]) * __bfloat162float(outb[size_t(row) * C + d]);
    acc = warp_sum(acc);
    if (lane == 0) dd[size_t(bh) * T + row] = acc;
  }
}

// lse (log2 units) and D of `rows` rows of one head starting at row0 into shared Ls, Ds (0 past
// T).
__device__ void load_stats(float *Ls, float *Ds, const float *lse, const float *dd, int row0,
                           int rows, int T) {
  for (int r = threadIdx.x; r < rows; r += THREADS) {
    const int row = row0 + r;
    Ds[r] = row < T ? dd[row] : 0.0f;
    Ls[r] = row < T ? lse[row] * LOG2E : 0.0f;
  }
}

template <int HS> constexpr size_t forward_smem() { return sizeof(bf) * 3 * TILE * (HS + PAD); }
template <int HS> constexpr size_t dq_smem() {
  return sizeof(bf) * 4 * TILE * (HS + PAD) + 2 * TILE * sizeof(float);
}
template <int HS> constexpr size_t dkv_smem() {
  return sizeof(bf) * (2 * TILE + 2 * KV_QTILE) * (HS + PAD) + 2 * KV_QTILE * sizeof(float);
}

// Grid (B*NH, query tiles); the last query tiles (most keys) are scheduled first.
template <int HS, bool DROP>
__global__ void __launch_bounds__(THREADS)
    attention_forward_kernel(bf *out, float *lse, const bf *qkv, int T, int C, int NH,
                             float scale_log2, DropoutArgs drop) {
  constexpr int LD = HS + PAD;
  FINEGPT_DYNAMIC_SMEM(smem);
  bf *Qs = reinterpret_cast<bf *>(smem), *Ks = Qs + TILE * LD, *Vs = Ks + TILE * LD;
  const int qt = gridDim.y - 1 - blockIdx.y, bh = blockIdx.x, b = bh / NH, h = bh % NH;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const size_t C3 = 3 * size_t(C);
  const bf *base = qkv + size_t(b) * T * C3 + h * HS;
  const int r0 = warp * 16, row_a = qt * TILE + r0 + g, row_b = row_a + 8;
  // Mask index of (row_a | row_b, key 0); unused without dropout.
  const uint64_t mrow[2] = {(uint64_t(bh) * T + row_a) * T, (uint64_t(bh) * T + row_b) * T};

  load_tile<TILE, HS>(Qs, base, C3, qt * TILE, T);
  __syncthreads();
  uint32_t qa[HS / 16][4]; // this warp's Q fragments, the same for every key tile
#pragma unroll
  for (int kk = 0; kk < HS / 16; kk++)
    load_a(qa[kk], Qs, LD, r0, kk * 16);
  float o[HS / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  for (int kt = 0; kt <= qt; kt++) {
    uint32_t kept = 0;
    if constexpr (DROP)
      kept = keep_bits<TILE / 8>(drop, mrow[0] + kt * TILE + 2 * t, mrow[1] + kt * TILE + 2 * t, 1);
    if (FINEGPT_KERNEL_FAULT != 2) __syncthreads(); // the previous tile is no longer read
    load_tile<TILE, HS>(Ks, base + C, C3, kt * TILE, T);
    load_tile<TILE, HS>(Vs, base + 2 * C, C3, kt * TILE, T);
    __syncthreads();
    float s[TILE / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < HS / 16; kk++)
#pragma unroll
      for (int nt = 0; nt < TILE / 8; nt += 2) {
        uint32_t b0[2], b1[2];
        load_b2(b0, b1, Ks, LD, nt * 8, kk * 16);
        mma(s[nt], qa[kk], b0);
        mma(s[nt + 1], qa[kk], b1);
      }
    // Only the diagonal tile has keys past a query or past T: every key of an earlier tile is
    // below qt * TILE <= every row of this one, and below T.
    const bool diagonal = kt == qt;
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nt = 0; nt < TILE / 8; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int key = kt * TILE + nt * 8 + 2 * t + (e & 1), row = e < 2 ? row_a : row_b;
        const bool visible = !diagonal || (key <= row && key < T);
        const float v = visible ? s[nt][e] * scale_log2 : -INFINITY;
        s[nt][e] = v;
        mx[e >> 1] = fmaxf(mx[e >> 1], v);
      }
    float mu[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(FULL_MASK, mx[i], 1));
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(FULL_MASK, mx[i], 2));
      const float mnew = fmaxf(m[i], mx[i]);
      mu[i] = mnew == -INFINITY ? 0.0f : mnew;
      const float corr = exp2f(m[i] - mu[i]);
      m[i] = mnew;
      l[i] *= corr;
#pragma unroll
      for (int dn = 0; dn < HS / 8; dn++)
        o[dn][2 * i] *= corr, o[dn][2 * i + 1] *= corr;
    }
#pragma unroll
    for (int nt = 0; nt < TILE / 8; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const float p = exp2f(s[nt][e] - mu[e >> 1]);
        l[e >> 1] += p; // the normaliser of the undropped probabilities
        if constexpr (DROP)
          s[nt][e] = bit(kept, 4 * nt + e) ? p : 0.0f; // 1/(1-p) goes into inv below
        else
          s[nt][e] = p;
      }
#pragma unroll
    for (int kk = 0; kk < TILE / 16; kk++) {
      uint32_t a[4];
      c_to_a(a, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int dn = 0; dn < HS / 8; dn += 2) {
        uint32_t b0[2], b1[2];
        load_bt2(b0, b1, Vs, LD, dn * 8, kk * 16);
        mma(o[dn], a, b0);
        mma(o[dn + 1], a, b1);
      }
    }
  }
  float inv[2];
#pragma unroll
  for (int i = 0; i < 2; i++) {
    l[i] += __shfl_xor_sync(FULL_MASK, l[i], 1);
    l[i] += __shfl_xor_sync(FULL_MASK, l[i], 2);
    inv[i] = DROP ? drop.scale / l[i] : 1.0f / l[i];
  }
  bf *ob = out + size_t(b) * T * C + h * HS;
#pragma unroll
  for (int dn = 0; dn < HS / 8; dn++) {
    const int d = dn * 8 + 2 * t;
    if (row_a < T)
      *reinterpret_cast<uint32_t *>(ob + size_t(row_a) * C + d) =
          pack2(o[dn][0] * inv[0], o[dn][1] * inv[0]);
    if (row_b < T)
      *reinterpret_cast<uint32_t *>(ob + size_t(row_b) * C + d) =
          pack2(o[dn][2] * inv[1], o[dn][3] * inv[1]);
  }
  if (t == 0) {
    if (row_a < T) lse[size_t(bh) * T + row_a] = (m[0] + log2f(l[0])) * LN2;
    if (row_b < T) lse[size_t(bh) * T + row_b] = (m[1] + log2f(l[1])) * LN2;
  }
}

// dq of one query tile: dq = scale * sum over key tiles of dS k, dS = P (dP - D), dP = dout v^T.
// With dropout, dP = Z' o (dout v^T) (see the top of the file).
template <int HS, bool DROP>
__global__ void __launch_bounds__(THREADS)
    attention_backward_dq_kernel(bf *dqkv, const bf *dout, const bf *qkv, const float *lse,
                                 const float *dd, int T, int C, int NH, float scale_log2,
                                 float scale, DropoutArgs drop) {
  constexpr int LD = HS + PAD;
  FINEGPT_DYNAMIC_SMEM(smem);
  bf *Qs = reinterpret_cast<bf *>(smem), *dOs = Qs + TILE * LD, *Ks = dOs + TILE * LD;
  bf *Vs = Ks + TILE * LD;
  float *Ls = reinterpret_cast<float *>(Vs + TILE * LD), *Ds = Ls + TILE;
  const int qt = gridDim.y - 1 - blockIdx.y, bh = blockIdx.x, b = bh / NH, h = bh % NH;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const size_t C3 = 3 * size_t(C);
  const bf *base = qkv + size_t(b) * T * C3 + h * HS;
  const bf *dob = dout + size_t(b) * T * C + h * HS;
  const int r0 = warp * 16, row_a = qt * TILE + r0 + g, row_b = row_a + 8;
  // Mask index of (row_a | row_b, key 0); unused without dropout.
  const uint64_t mrow[2] = {(uint64_t(bh) * T + row_a) * T, (uint64_t(bh) * T + row_b) * T};

  load_tile<TILE, HS>(Qs, base, C3, qt * TILE, T);
  load_tile<TILE, HS>(dOs, dob, C, qt * TILE, T);
  load_stats(Ls, Ds, lse + size_t(bh) * T, dd + size_t(bh) * T, qt * TILE, TILE, T);
  __syncthreads();
  const float L[2] = {Ls[r0 + g], Ls[r0 + g + 8]}, D[2] = {Ds[r0 + g], Ds[r0 + g + 8]};
  float dq[HS / 8][4] = {};
  for (int kt = 0; kt <= qt; kt++) {
    uint32_t kept = 0;
    if constexpr (DROP)
      kept = keep_bits<TILE / 8>(drop, mrow[0] + kt * TILE + 2 * t, mrow[1] + kt * TILE + 2 * t, 1);
    __syncthreads();
    load_tile<TILE, HS>(Ks, base + C, C3, kt * TILE, T);
    load_tile<TILE, HS>(Vs, base + 2 * C, C3, kt * TILE, T);
    __syncthreads();
    float s[TILE / 8][4] = {}, dp[TILE / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < HS / 16; kk++) {
      uint32_t aq[4], ad[4];
      load_a(aq, Qs, LD, r0, kk * 16);
      load_a(ad, dOs, LD, r0, kk * 16);
#pragma unroll
      for (int nt = 0; nt < TILE / 8; nt += 2) {
        uint32_t b0[2], b1[2];
        load_b2(b0, b1, Ks, LD, nt * 8, kk * 16);
        mma(s[nt], aq, b0);
        mma(s[nt + 1], aq, b1);
        load_b2(b0, b1, Vs, LD, nt * 8, kk * 16);
        mma(dp[nt], ad, b0);
        mma(dp[nt + 1], ad, b1);
      }
    }
#pragma unroll
    for (int nt = 0; nt < TILE / 8; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int key = kt * TILE + nt * 8 + 2 * t + (e & 1), row = e < 2 ? row_a : row_b;
        const bool valid = key <= row && key < T && row < T;
        const float p = valid ? exp2f(s[nt][e] * scale_log2 - L[e >> 1]) : 0.0f;
        float dpe = dp[nt][e];
        if constexpr (DROP) dpe = bit(kept, 4 * nt + e) ? dpe * drop.scale : 0.0f;
        s[nt][e] = p * (dpe - D[e >> 1]);
      }
#pragma unroll
    for (int kk = 0; kk < TILE / 16; kk++) {
      uint32_t a[4];
      c_to_a(a, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int dn = 0; dn < HS / 8; dn += 2) {
        uint32_t b0[2], b1[2];
        load_bt2(b0, b1, Ks, LD, dn * 8, kk * 16);
        mma(dq[dn], a, b0);
        mma(dq[dn + 1], a, b1);
      }
    }
  }
  bf *dqb = dqkv + size_t(b) * T * C3 + h * HS;
#pragma unroll
  for (int dn = 0; dn < HS / 8; dn++) {
    const int d = dn * 8 + 2 * t;
    if (row_a < T)
      *reinterpret_cast<uint32_t *>(dqb + size_t(row_a) * C3 + d) =
          pack2(dq[dn][0] * scale, dq[dn][1] * scale);
    if (row_b < T)
      *reinterpret_cast<uint32_t *>(dqb + size_t(row_b) * C3 + d) =
          pack2(dq[dn][2] * scale, dq[dn][3] * scale);
  }
}

// dk, dv of one key tile, over the query tiles at or after it (transposed products: rows are
// keys). dv = sum P^T dout, dk = scale * sum dS^T q. With dropout, dv = 1/(1-p) sum (P o Z)^T
// dout (the 1/(1-p) applied at the store) and dS as in the dq kernel.
template <int HS, bool DROP>
__global__ void __launch_bounds__(THREADS)
    attention_backward_dkv_kernel(bf *dqkv, const bf *dout, const bf *qkv, const float *lse,
                                  const float *dd, int T, int C, int NH, float scale_log2,
                                  float scale, DropoutArgs drop) {
  constexpr int QB = KV_QTILE, LD = HS + PAD;
  FINEGPT_DYNAMIC_SMEM(smem);
  bf *Ks = reinterpret_cast<bf *>(smem), *Vs = Ks + TILE * LD, *Qs = Vs + TILE * LD;
  bf *dOs = Qs + QB * LD;
  float *Ls = reinterpret_cast<float *>(dOs + QB * LD), *Ds = Ls + QB;
  const int kt = blockIdx.y, bh = blockIdx.x, b = bh / NH, h = bh % NH; // kt 0 has most work
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const size_t C3 = 3 * size_t(C);
  const bf *base = qkv + size_t(b) * T * C3 + h * HS;
  const bf *dob = dout + size_t(b) * T * C + h * HS;
  const int k0 = warp * 16, key_a = kt * TILE + k0 + g, key_b = key_a + 8;

  load_tile<TILE, HS>(Ks, base + C, C3, kt * TILE, T);
  load_tile<TILE, HS>(Vs, base + 2 * C, C3, kt * TILE, T);
  float dk[HS / 8][4] = {}, dv[HS / 8][4] = {};
  const int nq = (T + QB - 1) / QB;
  for (int qi = kt * TILE / QB; qi < nq; qi++) {
    __syncthreads();
    load_tile<QB, HS>(Qs, base, C3, qi * QB, T);
    load_tile<QB, HS>(dOs, dob, C, qi * QB, T);
    load_stats(Ls, Ds, lse + size_t(bh) * T, dd + size_t(bh) * T, qi * QB, QB, T);
    __syncthreads();
    if (kt * TILE + k0 > qi * QB + QB - 1) continue; // this warp's keys are all in the future
    uint32_t kept = 0;
    if constexpr (DROP) { // transposed: the query (column) is the mask's row, the key its column
      const uint64_t q0 = uint64_t(bh) * T + qi * QB + 2 * t;
      kept = keep_bits<QB / 8>(drop, q0 * T + key_a, q0 * T + key_b, uint64_t(T));
    }
    float s[QB / 8][4] = {}, dp[QB / 8][4] = {};
#pragma unroll
    for (int kk = 0; kk < HS / 16; kk++) {
      uint32_t ak[4], av[4];
      load_a(ak, Ks, LD, k0, kk * 16);
      load_a(av, Vs, LD, k0, kk * 16);
#pragma unroll
      for (int nt = 0; nt < QB / 8; nt += 2) {
        uint32_t b0[2], b1[2];
        load_b2(b0, b1, Qs, LD, nt * 8, kk * 16);
        mma(s[nt], ak, b0);
        mma(s[nt + 1], ak, b1);
        load_b2(b0, b1, dOs, LD, nt * 8, kk * 16);
        mma(dp[nt], av, b0);
        mma(dp[nt + 1], av, b1);
      }
    }
#pragma unroll
    for (int nt = 0; nt < QB / 8; nt++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int ql = nt * 8 + 2 * t + (e & 1), q = qi * QB + ql;
        const int key = e < 2 ? key_a : key_b;
        const bool valid = q >= key && q < T && key < T;
        const float p = valid ? exp2f(s[nt][e] * scale_log2 - Ls[ql]) : 0.0f;
        if constexpr (DROP) {
          const bool keep = bit(kept, 4 * nt + e);
          s[nt][e] = keep ? p : 0.0f; // 1/(1-p) goes into dv at the store
          dp[nt][e] = p * ((keep ? dp[nt][e] * drop.scale : 0.0f) - Ds[ql]);
        } else {
          s[nt][e] = p;
          dp[nt][e] = p * (dp[nt][e] - Ds[ql]);
        }
      }
#pragma unroll
    for (int kk = 0; kk < QB / 16; kk++) {
      uint32_t ap[4], ads[4];
      c_to_a(ap, s[2 * kk], s[2 * kk + 1]);
      c_to_a(ads, dp[2 * kk], dp[2 * kk + 1]);
#pragma unroll
      for (int dn = 0; dn < HS / 8; dn += 2) {
        uint32_t b0[2], b1[2];
        load_bt2(b0, b1, dOs, LD, dn * 8, kk * 16);
        mma(dv[dn], ap, b0);
        mma(dv[dn + 1], ap, b1);
        load_bt2(b0, b1, Qs, LD, dn * 8, kk * 16);
        mma(dk[dn], ads, b0);
        mma(dk[dn + 1], ads, b1);
      }
    }
  }
  bf *dkb = dqkv + size_t(b) * T * C3 + C + h * HS, *dvb = dkb + C;
  if constexpr (DROP) {
#pragma unroll
    for (int dn = 0; dn < HS / 8; dn++)
#pragma unroll
      for (int e = 0; e < 4; e++)
        dv[dn][e] *= drop.scale;
  }
#pragma unroll
  for (int dn = 0; dn < HS / 8; dn++) {
    const int d = dn * 8 + 2 * t;
    if (key_a < T) {
      *reinterpret_cast<uint32_t *>(dkb + size_t(key_a) * C3 + d) =
          pack2(dk[dn][0] * scale, dk[dn][1] * scale);
      *reinterpret_cast<uint32_t *>(dvb + size_t(key_a) * C3 + d) = pack2(dv[dn][0], dv[dn][1]);
    }
    if (key_b < T) {
      *reinterpret_cast<uint32_t *>(dkb + size_t(key_b) * C3 + d) =
          pack2(dk[dn][2] * scale, dk[dn][3] * scale);
      *reinterpret_cast<uint32_t *>(dvb + size_t(key_b) * C3 + d) = pack2(dv[dn][2], dv[dn][3]);
    }
  }
}

template <typename K> void allow_smem(K kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

void check_shapes(const char *op, const void *a, const void *b, const void *c, int C, int NH) {
  FINEGPT_CHECK(NH > 0 && C % NH == 0, op, ": C = ", C, " is not a multiple of NH = ", NH);
  const int HS = C / NH;
  FINEGPT_CHECK(HS == 32 || HS == 64 || HS == 128, op, ": head size ", HS,
                " (n_embd / n_head) is not supported by the CUDA attention; use 32, 64 or 128");
  FINEGPT_CHECK(aligned16(a) && aligned16(b) && aligned16(c), op,
                ": internal: attention buffers must be 16-byte aligned");
}

// Grid (B*NH, tiles of T): heads in x (up to 2^31 - 1 blocks), tiles in y (at most 65535, so
// T up to 4 million).
dim3 attention_grid(const char *op, int B, int T, int NH) {
  const int64_t heads = int64_t(B) * NH, tiles = (int64_t(T) + TILE - 1) / TILE;
  FINEGPT_CHECK(heads <= 0x7fffffff, op, ": B * NH = ", heads, " exceeds a CUDA grid (2^31 - 1)");
  FINEGPT_CHECK(tiles <= 65535, op, ": T = ", T, " exceeds 65535 tiles of ", TILE,
                " (a CUDA grid's y limit); use block_size <= ", 65535 * TILE);
  return dim3(unsigned(heads), unsigned(tiles));
}

template <int HS, bool DROP>
void forward_hs(bf16 *out, float *lse, const bf16 *qkv, int B, int T, int C, int NH, Dropout drop) {
  const dim3 grid = attention_grid("attention_forward", B, T, NH);
  const float scale_log2 = LOG2E / std::sqrt(float(HS));
  allow_smem(attention_forward_kernel<HS, DROP>, forward_smem<HS>());
  launch(attention_forward_kernel<HS, DROP>, grid, THREADS, forward_smem<HS>(), dev(out), lse,
         dev(qkv), T, C, NH, scale_log2, dropout_args(drop));
}

template <int HS, bool DROP>
void backward_hs(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const bf16 *out, const float *lse,
                 int B, int T, int C, int NH, Dropout drop) {
  const dim3 grid = attention_grid("attention_backward", B, T, NH);
  const float scale = 1.0f / std::sqrt(float(HS)), scale_log2 = LOG2E * scale;
  const DropoutArgs d = dropout_args(drop);
  // D (B,NH,T) in the op workspace, lent between ops (no other op runs meanwhile).
  const Workspace ws = workspace();
  const size_t rows = size_t(B) * NH * T;
  FINEGPT_CHECK(rows * sizeof(float) <= ws.bytes, "attention_backward: B*NH*T = ", rows,
                " rows need more than the ", ws.bytes, "-byte CUDA workspace");
  float *dd = static_cast<float *>(ws.ptr);
  launch(attention_backward_d_kernel<HS>, grid, THREADS, 0, dd, dev(dout), dev(out), T, C, NH);
  allow_smem(attention_backward_dq_kernel<HS, DROP>, dq_smem<HS>());
  launch(attention_backward_dq_kernel<HS, DROP>, grid, THREADS, dq_smem<HS>(), dev(dqkv), dev(dout),
         dev(qkv), lse, dd, T, C, NH, scale_log2, scale, d);
  allow_smem(attention_backward_dkv_kernel<HS, DROP>, dkv_smem<HS>());
  launch(attention_backward_dkv_kernel<HS, DROP>, grid, THREADS, dkv_smem<HS>(), dev(dqkv),
         dev(dout), dev(qkv), lse, dd, T, C, NH, scale_log2, scale, d);
}

// The head size and whether dropout is on, as template arguments of f.
template <typename F> void dispatch(int HS, bool dropping, F f) {
  auto with_hs = [&](auto drop) {
    switch (HS) {
    case 32:
      return f(std::integral_constant<int, 32>{}, drop);
    case 64:
      return f(std::integral_constant<int, 64>{}, drop);
    default:
      return f(std::integral_constant<int, 128>{}, drop);
    }
  };
  if (dropping)
    with_hs(std::true_type{});
  else
    with_hs(std::false_type{});
}

} // namespace

void attention_forward(bf16 *out, float *lse, const bf16 *qkv, int B, int T, int C, int NH,
                       Dropout drop) {
  check_dropout(drop, "attention_forward");
  check_shapes("attention_forward", out, qkv, qkv, C, NH);
  if (B <= 0 || T <= 0) return; // CUDA rejects an empty grid
  dispatch(C / NH, drop.p > 0.0f, [&](auto hs, auto dropping) {
    forward_hs<decltype(hs)::value, decltype(dropping)::value>(out, lse, qkv, B, T, C, NH, drop);
  });
}

void attention_backward(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const bf16 *out,
                        const float *lse, int B, int T, int C, int NH, Dropout drop) {
  check_dropout(drop, "attention_backward");
  check_shapes("attention_backward", dqkv, dout, qkv, C, NH);
  FINEGPT_CHECK(aligned16(out), "attention_backward: internal: out must be 16-byte aligned");
  if (B <= 0 || T <= 0) return;
  dispatch(C / NH, drop.p > 0.0f, [&](auto hs, auto dropping) {
    backward_hs<decltype(hs)::value, decltype(dropping)::value>(dqkv, dout, qkv, out, lse, B, T, C,
                                                                NH, drop);
  });
}

} // namespace finegpt::cuda
