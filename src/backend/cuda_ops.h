// The CUDA op seam: the ops of backend/ops.h with the same names and argument order, in
// finegpt::cuda, on device pointers. Parameters, activations and their gradients are bf16;
// LayerNorm statistics, attention log-sum-exp, losses, master weights and AdamW moments are
// fp32; every reduction accumulates in fp32. Bodies: backend/cuda/*.cu (built with
// -DFINEGPT_CUDA=ON); without CUDA, backend/cuda_stub.cpp throws from every function except the
// queries compiled(), device_count() and device_summary(). This header needs no CUDA header.
//
// Differences from the CPU seam, all forced by bf16 storage or flash attention:
// - attention keeps the log-sum-exp (B,NH,T) instead of the (B,NH,T,T) probabilities, and its
//   backward reads the forward output instead of a scratch matrix;
// - AdamW takes the fp32 master weights and writes the bf16 parameters from them;
// - sum_squares writes its fp32 result to device memory (no synchronisation: a caller reads
//   all tensors' sums with one copy) and takes a device scratch;
// - matmul_forward_gelu fuses the fc layer's bias and GELU into the GEMM (cuBLASLt epilogue).
// Dropout (p in [0, 1)) is as on the CPU: the masks are core/rng.h's dropout_keep of the same
// element indices, so the CUDA and CPU ops drop exactly the same elements.
// Ops run in order on one stream; a temporary they need comes from the workspace (set_workspace),
// so no op allocates memory after the first call.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "backend/ops.h"

namespace finegpt::cuda {

// bfloat16 as stored: the upper 16 bits of an IEEE float. A plain struct so host code can hold
// and convert it without cuda_bf16.h; device code reinterprets it as __nv_bfloat16.
struct bf16 {
  uint16_t bits;
};

// Round to nearest even, as __float2bfloat16; NaN stays a (quiet) NaN.
inline bf16 to_bf16(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{uint16_t((u >> 16) | 0x40u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{uint16_t(u >> 16)};
}
inline float to_float(bf16 h) {
  const uint32_t u = uint32_t(h.bits) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

// ---------------------------------------------------------------- runtime

// True when this build has the CUDA backend (never throws).
bool compiled() noexcept;
// CUDA devices visible now; 0 without a driver or GPU, or in a build without CUDA (never throws).
int device_count() noexcept;
// One line per device ("0: NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB, 132 SMs"), or "none (why)".
std::string device_summary() noexcept;
// Device `index`'s name, compute capability and memory as the driver reports it (total from
// cudaMemGetInfo); false when there is no such device (never throws).
struct DeviceInfo {
  std::string name;
  int sm_major = 0, sm_minor = 0;
  size_t total_bytes = 0, free_bytes = 0;
};
bool device_info(int index, DeviceInfo *out) noexcept;
// Selects the device for this thread; Error if there is none or it lacks bf16 (sm < 8.0).
void set_device(int index);

// Device memory. FINEGPT_DEVICE_MEMORY_CAP (e.g. "24GiB"; read at the first allocation) caps
// what device_malloc may hold at once, as if the GPU were that small: an allocation past it is
// an Error naming the cap, the request and what is held. device_memory() reports what
// device_malloc holds now and its peak since the process started.
void *device_malloc(size_t bytes);
void device_free(void *ptr) noexcept;
struct DeviceMemory {
  size_t held = 0, peak = 0, cap = 0; // cap 0: none
};
DeviceMemory device_memory() noexcept;
// Page-locked (pinned) host memory, which the GPU's copy engines read and write directly
// (cudaHostAlloc / cudaFreeHost); an Error naming the size when the driver refuses.
// pinned_bytes(): what host_alloc_pinned holds now.
void *host_alloc_pinned(size_t bytes);
void host_free_pinned(void *ptr) noexcept;
size_t pinned_bytes() noexcept;
// Copies on a stream of their own (the copy engines), each ordered after the work queued on the
// compute stream when it is called: device to host (offloaded gradients, during backward) and
// host to device (parameters after the host update); the host memory must be pinned for them to
// run asynchronously. copies_wait(): the host waits for every copy queued; compute_waits_for_
// copies(): work queued on the compute stream from now on waits for them (the host does not).
void copy_to_host_async(void *dst, const void *src, size_t bytes);
void copy_to_device_async(void *dst, const void *src, size_t bytes);
void copies_wait();
void compute_waits_for_copies();
void copy_to_device(void *dst, const void *src, size_t bytes);
void copy_to_host(void *dst, const void *src, size_t bytes);
void device_memset(void *ptr, int byte, size_t bytes); // memset; 0xff poisons bf16 and fp32 (NaN)
void synchronize();                                    // waits, then reports any kernel error

// The op workspace: cuBLASLt's GEMM workspace, lent between GEMMs to ops that need a temporary
// (encoder_backward's sort, the column sums of dweight and dbias). The engine passes the
// plan's `cublaslt_workspace` buffer (WORKSPACE_BYTES); without a call, the first op allocates
// one of that size itself. release() frees what the backend allocated (handles, that block).
constexpr size_t WORKSPACE_BYTES = size_t(32) << 20;
void set_workspace(void *ptr, size_t bytes);
void release() noexcept;

// Floats of device scratch for reductions (the plan's `reduce_scratch`); sum_squares uses the
// first SUM_SQUARES_PARTIALS of them.
constexpr size_t REDUCE_SCRATCH = 1024;
constexpr size_t SUM_SQUARES_PARTIALS = 512;

// ---------------------------------------------------------------- ops (shapes as in ops.h)

// out (B,T,C) = wte[inp[b,t]] + wpe[t];  inp (B,T) int32 on the device; wpe (dwpe) may be null
void encoder_forward(bf16 *out, const int32_t *inp, const bf16 *wte, const bf16 *wpe, int B, int T,
                     int C, Dropout drop);
// dwte (Vp,C) +=, dwpe (T,C) += from dout (B,T,C); deterministic: positions are bucketed by
// token with a stable sort, and each row's contributions are summed in fp32 in position order.
void encoder_backward(bf16 *dwte, bf16 *dwpe, const bf16 *dout, const int32_t *inp, int B, int T,
                      int C, Dropout drop);

// out (N,C) =, mean, rstd (N) fp32 =;  bias may be null
void layernorm_forward(bf16 *out, float *mean, float *rstd, const bf16 *inp, const bf16 *weight,
                       const bf16 *bias, int N, int C);
// dinp (N,C) +=, dweight (C) +=, dbias (C) += (may be null)
void layernorm_backward(bf16 *dinp, bf16 *dweight, bf16 *dbias, const bf16 *dout, const bf16 *inp,
                        const bf16 *weight, const float *mean, const float *rstd, int N, int C);

// RMSNorm, QK-norm and rotary as ops.h: rstd fp32; one warp per row (RMSNorm) or per row and head
// (QK-norm); rotary's angles in fp32 (sincosf), one thread per rotated pair; dweight a fixed-order
// column sum.
void rmsnorm_forward(bf16 *out, float *rstd, const bf16 *inp, const bf16 *weight, int N, int C);
void rmsnorm_backward(bf16 *dinp, bf16 *dweight, const bf16 *dout, const bf16 *inp,
                      const bf16 *weight, const float *rstd, int N, int C);
void qk_norm_forward(bf16 *qkv, float *rstd, int N, int C, int NH);
void qk_norm_backward(bf16 *dqkv, const bf16 *qkv, const float *rstd, int N, int C, int NH);
void rotary_forward(bf16 *qkv, int B, int T, int C, int NH, int pos0);
void rotary_backward(bf16 *dqkv, int B, int T, int C, int NH);

// out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC);  bias may be null (cuBLASLt, bias in
// the epilogue)
void matmul_forward(bf16 *out, const bf16 *inp, const bf16 *weight, const bf16 *bias, int N, int C,
                    int OC);
// out (N,OC) = gelu(pre) and pre (N,OC) = inp @ weight^T + bias, in one GEMM (GELU_AUX_BIAS
// epilogue, tanh GELU); bias may be null. OC must be a multiple of 8.
void matmul_forward_gelu(bf16 *out, bf16 *pre, const bf16 *inp, const bf16 *weight,
                         const bf16 *bias, int N, int C, int OC);
// dinp (N,C) = dout @ weight (may be null);  dweight (OC,C) += dout^T @ inp;  dbias (OC) +=
// (may be null)
void matmul_backward(bf16 *dinp, bf16 *dweight, bf16 *dbias, const bf16 *dout, const bf16 *inp,
                     const bf16 *weight, int N, int C, int OC);

// Causal flash attention, scale 1/sqrt(HS), HS in {32, 64, 128}: qkv (B,T,3C) as in ops.h;
// out (B,T,C) =;  lse (B,NH,T) = log sum_j exp(scale q.k_j) (fp32), kept for backward.
void attention_forward(bf16 *out, float *lse, const bf16 *qkv, int B, int T, int C, int NH,
                       Dropout drop);
// dqkv (B,T,3C) = from dout (B,T,C), the forward's qkv, out and lse. Deterministic (no atomics).
void attention_backward(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const bf16 *out,
                        const float *lse, int B, int T, int C, int NH, Dropout drop);

// The same two ops through cuDNN's fused attention (cudnn-frontend SDPA graphs,
// backend/cuda/attention_cudnn.cpp), to compare with ours; the model uses ours. Same layouts,
// same arguments: cuDNN's softmax statistics are our lse (natural log), so the (out, lse) of
// either forward may go to either backward. Differences: dropout p > 0 is an Error (cuDNN's masks
// are not the CPU's); the backward is not bitwise repeatable (fp32 atomics on dQ); head sizes are
// multiples of 8 up to 128. One graph per shape and direction, built on first use (slow: seconds)
// and kept until release(); temporaries in the workspace, an Error naming the size if it is too
// small. Without cuDNN in the build (or without CUDA) they throw "this build has no cuDNN
// attention".
bool cudnn_attention_compiled() noexcept;
// The larger of the two graphs' workspace needs at this shape, in bytes (builds both graphs).
size_t cudnn_attention_workspace_bytes(int B, int T, int C, int NH);
void attention_forward_cudnn(bf16 *out, float *lse, const bf16 *qkv, int B, int T, int C, int NH,
                             Dropout drop);
void attention_backward_cudnn(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const bf16 *out,
                              const float *lse, int B, int T, int C, int NH, Dropout drop);

// One decoding step against a KV cache, as ops.h (generation): q (B,C), kcache, vcache (B,Tmax,C)
// bf16 holding positions 0..t; out (B,C) =; scores (B,NH,t+1) fp32 working memory. Scores,
// softmax and the weighted sum in fp32.
void attention_decode(bf16 *out, float *scores, const bf16 *q, const bf16 *kcache,
                      const bf16 *vcache, int B, int t, int Tmax, int C, int NH);
void kv_append(bf16 *kcache, bf16 *vcache, bf16 *q, const bf16 *qkv, int B, int t, int Tmax, int C);

void gelu_forward(bf16 *out, const bf16 *inp, size_t N);
void gelu_backward(bf16 *dinp, const bf16 *inp, const bf16 *dout, size_t N); // may alias
void relu2_forward(bf16 *out, const bf16 *inp, size_t N);
void relu2_backward(bf16 *dinp, const bf16 *inp, const bf16 *dout, size_t N); // may alias
void softcap_forward(bf16 *x, size_t N, float cap);                           // in place
void residual_forward(bf16 *out, const bf16 *a, const bf16 *b, size_t N, Dropout drop);
void dropout_backward(bf16 *dinp, const bf16 *dout, size_t N, Dropout drop);

// Fused softmax cross-entropy over the first V of Vp columns, one pass over the bf16 logits;
// losses (N) fp32 =;  when dloss != 0 the logits become their gradient in place (padding
// columns 0). A target outside [0, V) gives a NaN loss (the engine checks targets on the host).
// softcap > 0: the gradient through the cap, as ops.h.
void crossentropy_forward_backward(float *losses, bf16 *logits, const int32_t *targets, int N,
                                   int V, int Vp, float dloss, float softcap = 0.0f);

// *out (one device float) = sum of squares of g (n), fp32, in a fixed order (deterministic);
// does not synchronise. scratch: SUM_SQUARES_PARTIALS device floats, not overlapping out.
void sum_squares(float *out, const bf16 *g, size_t n, float *scratch);

// AdamW as ops.h on the fp32 master weights (n), then params (bf16) = round(master). grads are
// bf16; zero_grad sets them to 0 in the same pass.
void adamw_update(bf16 *params, bf16 *grads, float *master, float *m, float *v, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int t, float grad_scale,
                  bool zero_grad);

// Row-major bf16 GEMM with fp32 accumulation (cuBLASLt): D (m, n) = alpha A (m, k) op(B) + beta D,
// op(B) = B (k, n), or B^T for B (n, k) when transb. (The optimizer's; the layers use matmul_*.)
void gemm(bf16 *D, const bf16 *A, const bf16 *B, int m, int n, int k, bool transb, float alpha,
          float beta);

// Muon as ops.h, in its two parts: the momentum (fp32 mom) and the Nesterov mix over the
// gradients (bf16); then, on a whole matrix's mix u, the Newton-Schulz steps in bf16 with fp32
// accumulation (as modded-nanogpt runs them) and the update of its elements [lo, hi) in fp32
// (master; params = round(master); both point at element lo). scratch:
// cpu::muon_scratch_elems(rows, cols) bf16; reduce: REDUCE_SCRATCH device floats (sum_squares'
// partials, its last float the norm).
void muon_momentum(bf16 *grads, float *mom, size_t n, float momentum, float grad_scale);
void muon_orthogonal_update(bf16 *params, float *master, const bf16 *u, bf16 *scratch,
                            float *reduce, int rows, int cols, size_t lo, size_t hi, float lr);

// ---------------------------------------------------------------- device memory, owned

// A device allocation freed on destruction (move-only).
template <typename T> class DeviceArray {
public:
  DeviceArray() = default;
  explicit DeviceArray(size_t n) : p_(static_cast<T *>(device_malloc(n * sizeof(T)))), n_(n) {}
  DeviceArray(DeviceArray &&o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
  DeviceArray &operator=(DeviceArray &&o) noexcept {
    std::swap(p_, o.p_), std::swap(n_, o.n_);
    return *this;
  }
  DeviceArray(const DeviceArray &) = delete;
  DeviceArray &operator=(const DeviceArray &) = delete;
  ~DeviceArray() { device_free(p_); }
  T *data() const { return p_; }
  size_t size() const { return n_; }

private:
  T *p_ = nullptr;
  size_t n_ = 0;
};

} // namespace finegpt::cuda
