// nanoGPT's optimisation, once for both engines: the learning-rate schedule (get_lr), global-norm
// gradient clipping (torch.nn.utils.clip_grad_norm_) and AdamW with weight decay on 2-D weights
// only, over the seam's sum_squares and adamw_update (model/backends.h). Across ranks it asks its
// GradExchange (core/exchange.h) for summed gradients before the update and hands back the
// parameters after; with ZeRO stage 1 each rank updates only the shard it owns, with its shard of
// the moments (and, where the backend keeps them, of the fp32 master weights).
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

struct AdamWConfig {
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f;
};

template <class Backend> class AdamW {
public:
  // State sized from the memory plan's optimizer group (plan_memory): every parameter, or under
  // ZeRO-1 this rank's shard. `exchange` (null: one rank) must outlive the optimizer.
  AdamW(Model<Backend> &model, AdamWConfig cfg, GradExchange *exchange = nullptr);
  // One update. The gradients must already be scaled so that their sum over ranks is the mean
  // gradient; they are summed over ranks, clipped to min(1, clip/(norm+1e-6)) (clip 0: none),
  // applied, and zeroed. Returns the global gradient norm before clipping.
  float step(float lr, float grad_clip);
  int steps_taken() const { return t_; }
  void set_steps_taken(int t) { t_ = t; }
  // Seconds the last step's host waited on collectives.
  double comm_seconds() const { return exchange_ ? exchange_->seconds() : 0.0; }
  size_t bytes() const { return bytes_; } // memory this optimizer allocated

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

  Model<Backend> &model_;
  AdamWConfig cfg_;
  GradExchange *exchange_;
  size_t P_ = 0, begin_ = 0, end_ = 0; // parameters; this rank's shard of them
  std::optional<typename Backend::Block> block_;
  float *master_ = nullptr, *m_ = nullptr, *v_ = nullptr;
  size_t bytes_ = 0;
  int t_ = 0;
};

extern template class AdamW<CpuBackend>;
extern template class AdamW<CudaBackend>;

} // namespace finegpt
