// CUDA bodies of the linear layer through cuBLASLt: bf16 operands, fp32 accumulation, bias and
// GELU fused into the GEMM's epilogue. Row-major (N, C) activations are column-major (C, N)
// matrices to cuBLAS, so out^T = W * inp^T with W (OC, C) row-major read transposed. The
// heuristic's choice is cached per shape and alignment; the bias gradient is a fixed-order column
// sum (cuBLASLt's BGRAD epilogue overwrites, and gradients accumulate). Split-K partial sums are
// reduced in fp32 only: the heuristic may otherwise reduce them in the output type (bf16) or in
// place in the output, which loses the low bits of long sums such as dweight's k = B*T.
#include "backend/cuda/common.cuh"

#include <array>
#include <map>
#include <mutex>

namespace finegpt::cuda {

using namespace detail;

namespace {

// Largest power of two (up to 256) dividing the address: what cuBLASLt may assume.
uint32_t alignment_of(const void *p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 2 && a % al)
    al /= 2;
  return al;
}

struct Gemm {
  // D (m, n) column-major = op(A) op(B) [+ beta D] [+ bias, GELU]; A, B, D bf16.
  bool transa = false, transb = false;
  int m = 0, n = 0, k = 0;
  int lda = 0, ldb = 0, ldd = 0;
  float alpha = 1.0f, beta = 0.0f;
  const bf *A = nullptr, *B = nullptr, *bias = nullptr;
  bf *D = nullptr, *aux = nullptr; // aux: GELU's input, (m, n) column-major with ld = m
  bool gelu = false;
};

cublasLtEpilogue_t epilogue_of(const Gemm &g) {
  if (g.gelu) return g.bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
  return g.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
}

// RAII holders of the cuBLASLt descriptors of one call.
struct Layout {
  cublasLtMatrixLayout_t h = nullptr;
  Layout(uint64_t rows, uint64_t cols, int64_t ld) {
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&h, CUDA_R_16BF, rows, cols, ld));
  }
  ~Layout() { cublasLtMatrixLayoutDestroy(h); }
};
struct Desc {
  cublasLtMatmulDesc_t h = nullptr;
  Desc() { CUBLAS_CHECK(cublasLtMatmulDescCreate(&h, CUBLAS_COMPUTE_32F, CUDA_R_32F)); }
  ~Desc() { cublasLtMatmulDescDestroy(h); }
  template <typename T> void set(cublasLtMatmulDescAttributes_t attr, const T &v) {
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(h, attr, &v, sizeof v));
  }
};
struct Pref {
  cublasLtMatmulPreference_t h = nullptr;
  Pref() { CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&h)); }
  ~Pref() { cublasLtMatmulPreferenceDestroy(h); }
  template <typename T> void set(cublasLtMatmulPreferenceAttributes_t attr, const T &v) {
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(h, attr, &v, sizeof v));
  }
};

// Split-K reductions allowed: none, or partial sums kept in the compute type (fp32).
constexpr uint32_t FP32_REDUCTIONS =
    CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;

using AlgoKey = std::array<int64_t, 14>;
std::mutex algo_mu;
std::map<AlgoKey, cublasLtMatmulAlgo_t> algo_cache;

void run_gemm(const Gemm &g) {
  const cublasOperation_t ta = g.transa ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t tb = g.transb ? CUBLAS_OP_T : CUBLAS_OP_N;
  Desc desc;
  desc.set(CUBLASLT_MATMUL_DESC_TRANSA, ta);
  desc.set(CUBLASLT_MATMUL_DESC_TRANSB, tb);
  const cublasLtEpilogue_t epi = epilogue_of(g);
  desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE, epi);
  if (g.bias) {
    desc.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, static_cast<const void *>(g.bias));
    desc.set(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, int32_t(CUDA_R_16BF));
  }
  if (g.gelu) {
    desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, static_cast<void *>(g.aux));
    desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, int64_t(g.m));
    desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE, int32_t(CUDA_R_16BF));
  }
  // Stored shapes: op(A) is (m, k), op(B) is (k, n).
  Layout la(g.transa ? g.k : g.m, g.transa ? g.m : g.k, g.lda);
  Layout lb(g.transb ? g.n : g.k, g.transb ? g.k : g.n, g.ldb);
  Layout ld(g.m, g.n, g.ldd);
  const Workspace ws = workspace();
  const uint32_t alA = alignment_of(g.A), alB = alignment_of(g.B), alD = alignment_of(g.D);
  const uint32_t alBias = g.bias ? alignment_of(g.bias) : 256;
  const uint32_t alAux = g.aux ? alignment_of(g.aux) : 256;

  const AlgoKey key{g.transa,
                    g.transb,
                    g.m,
                    g.n,
                    g.k,
                    g.lda,
                    g.ldb,
                    g.ldd,
                    g.beta != 0.0f,
                    int64_t(epi),
                    alA,
                    alB,
                    alD,
                    int64_t(std::min(alBias, alAux)) * 4096 + int64_t(ws.bytes >> 20)};
  cublasLtMatmulAlgo_t algo;
  bool found = false;
  {
    std::lock_guard<std::mutex> lock(algo_mu);
    auto it = algo_cache.find(key);
    if (it != algo_cache.end()) algo = it->second, found = true;
  }
  if (!found) {
    Pref pref;
    pref.set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t(ws.bytes));
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, alA);
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, alB);
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, alD);
    pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, alD);
    pref.set(CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, FP32_REDUCTIONS);
    cublasLtMatmulHeuristicResult_t res{};
    int count = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(cublaslt(), desc.h, la.h, lb.h, ld.h, ld.h, pref.h,
                                                1, &res, &count));
    FINEGPT_CHECK(count > 0, "cuBLASLt has no algorithm for the GEMM m=", g.m, " n=", g.n,
                  " k=", g.k, " (transa ", g.transa, ", transb ", g.transb, ", epilogue ", int(epi),
                  ", alignments ", alA, "/", alB, "/", alD, ")");
    algo = res.algo;
    uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_NONE;
    size_t written = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoConfigGetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME,
                                                      &scheme, sizeof scheme, &written));
    FINEGPT_CHECK((scheme & ~FP32_REDUCTIONS) == 0, "internal: cuBLASLt chose split-K reduction ",
                  scheme, " for the GEMM m=", g.m, " n=", g.n, " k=", g.k,
                  " despite the fp32-only preference");
    std::lock_guard<std::mutex> lock(algo_mu);
    algo_cache.emplace(key, algo);
  }
  CUBLAS_CHECK(cublasLtMatmul(cublaslt(), desc.h, &g.alpha, g.A, la.h, g.B, lb.h, &g.beta, g.D,
                              ld.h, g.D, ld.h, &algo, ws.ptr, ws.bytes, stream()));
}

} // namespace

void matmul_forward(bf16 *out, const bf16 *inp, const bf16 *weight, const bf16 *bias, int N, int C,
                    int OC) {
  Gemm g;
  g.transa = true; // W (OC, C) row-major is (C, OC) column-major
  g.m = OC, g.n = N, g.k = C;
  g.lda = C, g.ldb = C, g.ldd = OC;
  g.A = dev(weight), g.B = dev(inp), g.D = dev(out), g.bias = dev(bias);
  run_gemm(g);
}

void matmul_forward_gelu(bf16 *out, bf16 *pre, const bf16 *inp, const bf16 *weight,
                         const bf16 *bias, int N, int C, int OC) {
  FINEGPT_CHECK(OC % 8 == 0, "matmul_forward_gelu: OC = ", OC,
                " must be a multiple of 8 (cuBLASLt's GELU input leading dimension)");
  Gemm g;
  g.transa = true;
  g.m = OC, g.n = N, g.k = C;
  g.lda = C, g.ldb = C, g.ldd = OC;
  g.A = dev(weight), g.B = dev(inp), g.D = dev(out), g.bias = dev(bias);
  g.gelu = true, g.aux = dev(pre);
  run_gemm(g);
}

void matmul_backward(bf16 *dinp, bf16 *dweight, bf16 *dbias, const bf16 *dout, const bf16 *inp,
                     const bf16 *weight, int N, int C, int OC) {
  if (dinp) { // dinp^T (C, N) = W^T-as-stored (C, OC) * dout^T (OC, N)
    Gemm g;
    g.m = C, g.n = N, g.k = OC;
    g.lda = C, g.ldb = OC, g.ldd = C;
    g.A = dev(weight), g.B = dev(dout), g.D = dev(dinp);
    run_gemm(g);
  }
  { // dweight^T (C, OC) += inp^T (C, N) * dout (N, OC)
    Gemm g;
    g.transb = true;
    g.m = C, g.n = OC, g.k = N;
    g.lda = C, g.ldb = OC, g.ldd = C;
    g.beta = 1.0f;
    g.A = dev(inp), g.B = dev(dout), g.D = dev(dweight);
    run_gemm(g);
  }
  if (dbias)
    column_sums_add(dbias, nullptr, ColumnSum::Plain, dout, nullptr, nullptr, nullptr, N, OC);
}

// Row-major D (m, n) is column-major D^T (n, m) = op(B)^T A^T: cuBLAS's A is our B.
void gemm(bf16 *D, const bf16 *A, const bf16 *B, int m, int n, int k, bool transb, float alpha,
          float beta) {
  Gemm g;
  g.transa = transb; // B (n, k) row-major is (k, n) column-major: transposed to (n, k)
  g.m = n, g.n = m, g.k = k;
  g.lda = transb ? k : n, g.ldb = k, g.ldd = n;
  g.alpha = alpha, g.beta = beta;
  g.A = dev(B), g.B = dev(A), g.D = dev(D);
  run_gemm(g);
}

} // namespace finegpt::cuda
