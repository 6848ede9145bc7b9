// The two backends of the one GPT body (model/model.h): what differs between the CPU engine
// (fp32, host memory, attention keeping its softmax probabilities) and the CUDA engine (bf16
// storage on a GPU, flash attention keeping its log-sum-exp, cuDNN's attention as an option, fp32
// master weights for AdamW). Everything else, the op sequence of forward, backward and recompute,
// is written once in model.h against the op seam, whose CPU (backend/ops.h, float *) and CUDA
// (backend/cuda_ops.h, cuda::bf16 *) declarations share names and argument order and are told
// apart by the storage type. Host code only: in a build without CUDA the CUDA backend links
// against backend/cuda_stub.cpp, and constructing it throws.
#pragma once
#include "backend/cuda_ops.h"
#include "backend/ops.h"
#include "core/exchange.h"
#include "model/plan.h"

#include <cstring>
#include <memory>
#include <utility>
#include <vector>

namespace finegpt {

// Frees an arena's block and keeps Arena::live_bytes() current.
struct ArenaFree {
  size_t bytes = 0;
  void operator()(float *p) const;
};

// A contiguous host float arena; memory is 64-byte aligned and owned.
class Arena {
public:
  Arena() = default;
  explicit Arena(size_t floats);
  float *data() { return ptr_.get(); }
  const float *data() const { return ptr_.get(); }
  size_t size() const { return n_; }
  // Bytes requested by all arenas alive now (each arena's block is rounded up to 64 bytes on
  // top): what tests compare with the memory plan.
  static size_t live_bytes();

private:
  std::unique_ptr<float, ArenaFree> ptr_;
  size_t n_ = 0;
};

// Pinned host memory through the CUDA seam (cudaHostAlloc): the optimizer's state under
// offload = 'optimizer'. Owned; poisoned, not cleared, when allocated.
class PinnedBlock {
public:
  explicit PinnedBlock(size_t bytes)
      : p_(static_cast<unsigned char *>(cuda::host_alloc_pinned(bytes))) {}
  ~PinnedBlock() { cuda::host_free_pinned(p_); }
  PinnedBlock(const PinnedBlock &) = delete;
  PinnedBlock &operator=(const PinnedBlock &) = delete;
  unsigned char *data() { return p_; }

private:
  unsigned char *p_;
};

// How a model is built, beyond its shape. The CPU engine takes the defaults (recompute and cuDNN
// are the CUDA engine's; the plan refuses them on the CPU).
struct ModelOptions {
  int recompute = 0;            // activation recompute level, 0-3 (model/plan.h)
  bool cudnn_attention = false; // attention through cuDNN's fused SDPA instead of ours
  int device = 0;               // CUDA device index
};

struct CpuBackend {
  using Real = float; // parameters, gradients and activations
  static constexpr Backend kind = Backend::CPU;
  static constexpr Precision precision = Precision::FP32;
  static constexpr bool kMasterWeights = false; // AdamW updates the parameters themselves
  static constexpr size_t kAlign = 4;           // buffers packed in plan order
  // The attention's per-layer state: softmax probabilities (B, NH, T, T).
  static constexpr const char *kAttentionState = "att";
  static size_t attention_state_per_token(int NH, int T) { return size_t(NH) * T; }

  // An owned block of host memory (counted by Arena::live_bytes).
  class Block {
  public:
    explicit Block(size_t bytes) : a_((bytes + 3) / 4) {}
    unsigned char *data() { return reinterpret_cast<unsigned char *>(a_.data()); }

  private:
    Arena a_;
  };
  // Per-model state of the backend: nothing on the CPU.
  struct Context {
    Context(const GPTConfig &, int, int, const ModelOptions &opt);
    void bind_workspace(void *, size_t) const {}
  };
  static void check_workspace(const GPTConfig &, int, int, const ModelOptions &, size_t) {}

  static void upload(void *dst, const void *host, size_t bytes) { std::memcpy(dst, host, bytes); }
  static void download(void *host, const void *src, size_t bytes) { std::memcpy(host, src, bytes); }
  static void zero(void *p, size_t bytes) { std::memset(p, 0, bytes); }
  // Copies beside compute (the CUDA engine's copy stream): plain copies here.
  static void download_async(void *host, const void *src, size_t bytes) {
    std::memcpy(host, src, bytes);
  }
  static void upload_async(void *dst, const void *host, size_t bytes) {
    std::memcpy(dst, host, bytes);
  }
  static void copies_wait() {}
  static void compute_waits_for_copies() {}
  // n fp32 values (host) into storage, and back.
  static void store(float *dst, const float *host, size_t n) { upload(dst, host, n * 4); }
  static void load(float *host, const float *src, size_t n) { download(host, src, n * 4); }

  static void attention_forward(float *out, float *state, const float *qkv, int B, int T, int C,
                                int NH, Dropout drop, bool cudnn);
  static void attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                                 const float *out, const float *state, int B, int T, int C, int NH,
                                 Dropout drop, bool cudnn);
  // Sum of squares of grads over each range, into sums (double); scratch unused.
  static void sum_squares(double *sums, const float *grads, const std::vector<Range> &ranges,
                          float *scratch);
  static void adamw_update(float *params, float *grads, float *master, float *m, float *v, size_t n,
                           float lr, float beta1, float beta2, float eps, float weight_decay, int t,
                           float grad_scale, bool zero_grad);
  // Muon's two parts (backend/ops.h): the momentum and Nesterov mix over n gradients; the
  // update of elements [lo, hi) of a (rows, cols) matrix from its whole mix u (params at element
  // lo; master and reduce unused).
  static void muon_momentum(float *grads, float *mom, size_t n, float momentum, float grad_scale) {
    cpu::muon_momentum(grads, mom, n, momentum, grad_scale);
  }
  static void muon_orthogonal_update(float *params, float *, const float *u, float *scratch,
                                     float *, int rows, int cols, size_t lo, size_t hi, float lr) {
    cpu::muon_orthogonal_update(params, u, scratch, rows, cols, lo, hi, lr);
  }
};

struct CudaBackend {
  using Real = cuda::bf16;
  static constexpr Backend kind = Backend::CUDA;
  static constexpr Precision precision = Precision::BF16;
  static constexpr bool kMasterWeights = true; // fp32 master weights in the optimizer's memory
  static constexpr size_t kAlign = 256;        // every activation, scratch and workspace buffer
  // The attention's per-layer state: log-sum-exp (B, NH, T), fp32.
  static constexpr const char *kAttentionState = "att_lse";
  static size_t attention_state_per_token(int NH, int) { return size_t(NH); }

  class Block {
  public:
    explicit Block(size_t bytes) : a_(bytes) {}
    unsigned char *data() { return a_.data(); }

  private:
    cuda::DeviceArray<unsigned char> a_;
  };
  // Selects the device and checks what the CUDA kernels support (head size; cuDNN's limits);
  // frees the backend's handles when the model goes.
  struct Context {
    Context(const GPTConfig &cfg, int B, int T, const ModelOptions &opt);
    ~Context();
    Context(const Context &) = delete;
    Context &operator=(const Context &) = delete;
    void bind_workspace(void *p, size_t bytes) const { cuda::set_workspace(p, bytes); }
  };
  // cuDNN's attention: its own workspace figure (it builds the graphs) against the plan's.
  static void check_workspace(const GPTConfig &cfg, int B, int T, const ModelOptions &opt,
                              size_t plan_bytes);

  static void upload(void *dst, const void *host, size_t bytes) {
    cuda::copy_to_device(dst, host, bytes);
  }
  static void download(void *host, const void *src, size_t bytes) {
    cuda::copy_to_host(host, src, bytes);
  }
  static void zero(void *p, size_t bytes) { cuda::device_memset(p, 0, bytes); }
  // On the copy stream, after the compute queued so far (host memory pinned); see cuda_ops.h.
  static void download_async(void *host, const void *src, size_t bytes) {
    cuda::copy_to_host_async(host, src, bytes);
  }
  static void upload_async(void *dst, const void *host, size_t bytes) {
    cuda::copy_to_device_async(dst, host, bytes);
  }
  static void copies_wait() { cuda::copies_wait(); }
  static void compute_waits_for_copies() { cuda::compute_waits_for_copies(); }
  static void store(cuda::bf16 *dst, const float *host, size_t n);
  static void load(float *host, const cuda::bf16 *src, size_t n);
  static void store(float *dst, const float *host, size_t n) { upload(dst, host, n * 4); }
  static void load(float *host, const float *src, size_t n) { download(host, src, n * 4); }

  static void attention_forward(cuda::bf16 *out, float *state, const cuda::bf16 *qkv, int B, int T,
                                int C, int NH, Dropout drop, bool cudnn);
  static void attention_backward(cuda::bf16 *dqkv, float *scratch, const cuda::bf16 *dout,
                                 const cuda::bf16 *qkv, const cuda::bf16 *out, const float *state,
                                 int B, int T, int C, int NH, Dropout drop, bool cudnn);
  // Per range into device scratch after sum_squares' partials, read back with one copy (one
  // synchronisation per step), widened to double.
  static void sum_squares(double *sums, const cuda::bf16 *grads, const std::vector<Range> &ranges,
                          float *scratch);
  static void adamw_update(cuda::bf16 *params, cuda::bf16 *grads, float *master, float *m, float *v,
                           size_t n, float lr, float beta1, float beta2, float eps,
                           float weight_decay, int t, float grad_scale, bool zero_grad);
  static void muon_momentum(cuda::bf16 *grads, float *mom, size_t n, float momentum,
                            float grad_scale) {
    cuda::muon_momentum(grads, mom, n, momentum, grad_scale);
  }
  static void muon_orthogonal_update(cuda::bf16 *params, float *master, const cuda::bf16 *u,
                                     cuda::bf16 *scratch, float *reduce, int rows, int cols,
                                     size_t lo, size_t hi, float lr) {
    cuda::muon_orthogonal_update(params, master, u, scratch, reduce, rows, cols, lo, hi, lr);
  }
};

} // namespace finegpt
