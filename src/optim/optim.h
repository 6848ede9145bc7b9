// nanoGPT's optimisation, once for both engines: the learning-rate schedule (get_lr), global-norm
// gradient clipping (torch.nn.utils.clip_grad_norm_) and AdamW with weight decay on 2-D weights
// only, over the seam's sum_squares and adamw_update (model/backends.h); or, with
// OptimConfig::muon, Muon (muon_update) for the hidden matrices and AdamW for the rest. Across
// ranks it asks its GradExchange (core/exchange.h) for summed gradients before the update and hands
// back the parameters after; with ZeRO stage 1 each rank updates only the shard it owns, with its
// shard of the moments (and, where the backend keeps them, of the fp32 master weights).
//
// Offload (OptimConfig::offload, config offload = 'optimizer'; CUDA only) is a storage choice of
// the same optimizer: the master weights, moments and a bf16 staging buffer live in pinned host
// memory (the plan's Location::Host buffers); each step copies the owned gradients down into the
// staging buffer, runs the CPU engine's AdamW (CpuBackend::adamw_update, OpenMP) on the fp32
// state with the gradients widened chunk by chunk, writes the rounded bf16 parameters over the
// staged gradients and copies them up. The norm for clipping is the device's per-range sums of
// squares, as without offload.
#pragma once
#include "core/exchange.h"
#include "model/model.h"

#include <optional>
#include <vector>

namespace finegpt {

struct LrSchedule {
  double learning_rate, min_lr;
  long warmup_iters, lr_decay_iters;
  bool decay_lr;
  double at(long it) const; // nanoGPT's get_lr (Dec 2024): warmup (it+1)/(warmup+1), cosine
};

struct OptimConfig {
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f;
  bool offload = false; // state in pinned host memory, updated on the CPU (CUDA engine only)
  // optimizer = 'muon': Muon (backend/ops.h) for the hidden matrices (model/plan.h muon_matrix),
  // at muon_lr_scale times the scheduled learning rate (config muon_lr / learning_rate, so the
  // schedule scales both), with momentum muon_momentum and no weight decay; AdamW for the rest.
  bool muon = false;
  float muon_lr_scale = 1.0f, muon_momentum = 0.95f;
  // The embeddings' (wte, wpe) and the untied head's rates as multiples of the scheduled one
  // (config embedding_lr, head_lr over learning_rate).
  float embedding_lr_scale = 1.0f, head_lr_scale = 1.0f;
  // The scheduled rate times parameter tensor `id`'s multiple (Muon's for its matrices).
  float lr_for(int id, float lr) const;
};

// The offloaded update's host part: AdamW over [off, off + n) of the pinned state for each
// chunk, at rate `lr` with `decay` its weight decay; the gradients are read as bf16 from `staging`,
// widened chunk by chunk, and the rounded bf16 parameters written over them. One OpenMP loop over
// the chunks, each running the CPU engine's AdamW (CpuBackend::adamw_update) on its thread alone;
// AdamW is elementwise, so the result does not depend on the chunking or the threads. Chunks of
// kHostAdamWChunk keep the widened gradients in cache. (bench/host_adamw_bench.cpp times it.)
struct HostChunk {
  size_t off, n;
  float lr, decay;
};
constexpr size_t kHostAdamWChunk = size_t(1) << 14;
void host_adamw(cuda::bf16 *staging, float *master, float *m, float *v,
                const std::vector<HostChunk> &chunks, const OptimConfig &cfg, int t,
                float grad_scale);

template <class Backend> class Optimizer {
public:
  // State sized from the memory plan's optimizer group (plan_memory): every parameter, or under
  // ZeRO-1 this rank's shard. `exchange` (null: one rank) must outlive the optimizer.
  Optimizer(Model<Backend> &model, OptimConfig cfg, GradExchange *exchange = nullptr);
  ~Optimizer(); // waits for copies in flight into the pinned state (offload)
  Optimizer(const Optimizer &) = delete;
  Optimizer &operator=(const Optimizer &) = delete;
  // The exchange to hand the model for the micro-batch that ends a step: this optimizer's own
  // (offload on one rank: each layer's gradients are copied down as backward finishes them), else
  // the gradient exchange (null on one rank).
  GradExchange *backward_hook() { return offload_ && !exchange_ ? &prefetch_ : exchange_; }
  // One update. The gradients must already be scaled so that their sum over ranks is the mean
  // gradient; they are summed over ranks, clipped to min(1, clip/(norm+1e-6)) (clip 0: none),
  // applied, and zeroed. Returns the global gradient norm before clipping.
  float step(float lr, float grad_clip);
  int steps_taken() const { return t_; }
  void set_steps_taken(int t) { t_ = t; }
  // Seconds the last step's host waited on collectives.
  double comm_seconds() const { return exchange_ ? exchange_->seconds() : 0.0; }
  size_t bytes() const { return bytes_; }           // engine memory this optimizer allocated
  size_t host_bytes() const { return host_bytes_; } // pinned host memory (offload)
  bool offloaded() const { return offload_; }

  // fp32 values of every parameter into the model (and the master weights where the backend
  // keeps them); out again from the master weights (a collective under ZeRO-1).
  void set_params(const float *host);
  void get_params(float *host);
  // Moments of every parameter (gathered from all ranks under ZeRO-1: a collective).
  void gather_moments(std::vector<float> &m, std::vector<float> &v);
  // Restores from moments of every parameter (each rank keeps its shard).
  void load_moments(const float *m, const float *v);

private:
  bool sharded() const { return exchange_ && exchange_->zero_stage() == 1; }
  // Offload on one rank: ready() copies the ranges' gradients down to the staging buffer on the
  // copy stream while backward goes on; step() then copies only if that did not cover them all.
  class Prefetch final : public GradExchange {
  public:
    explicit Prefetch(Optimizer &o) : o_(o) {}
    int world() const override { return 1; }
    int zero_stage() const override { return 0; }
    Range owned() const override { return {o_.begin_, o_.end_}; }
    void ready(const std::vector<Range> &ranges) override;
    void reduce() override {}
    void sum(double *) override {}
    void share_params() override {}
    void share_grads() override {}
    void gather(float *) override {}
    double seconds() const override { return 0.0; }

  private:
    Optimizer &o_;
  };
  // The offloaded update of the owned `ranges` (rate and weight decay per range): gradients
  // down, the CPU's AdamW, parameters up.
  void host_update(const std::vector<Range> &ranges, const std::vector<float> &lrs,
                   const std::vector<float> &decay, float scale);
  // n fp32 values into / out of the optimizer's state (device or pinned host memory).
  void put(float *state, const float *host, size_t n);
  void get(float *host, const float *state, size_t n);

  Model<Backend> &model_;
  OptimConfig cfg_;
  GradExchange *exchange_;
  size_t P_ = 0, begin_ = 0, end_ = 0; // parameters; this rank's shard of them
  std::optional<typename Backend::Block> block_;
  std::optional<PinnedBlock> pinned_;
  float *master_ = nullptr, *m_ = nullptr, *v_ = nullptr;
  typename Backend::Real *staging_ = nullptr;      // offload: gradients down, parameters up
  typename Backend::Real *muon_scratch_ = nullptr; // Muon's Newton-Schulz workspace
  bool offload_ = false;
  Prefetch prefetch_{*this};
  size_t prefetched_ = 0; // elements of the owned gradients copied down by prefetch_ this step
  size_t bytes_ = 0, host_bytes_ = 0;
  int t_ = 0;
};

extern template class Optimizer<CpuBackend>;
extern template class Optimizer<CudaBackend>;

} // namespace finegpt
