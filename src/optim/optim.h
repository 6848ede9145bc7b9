// nanoGPT's optimisation: the learning-rate schedule (get_lr), global-norm gradient clipping
// (torch.nn.utils.clip_grad_norm_) and AdamW with weight decay on 2-D weights only; across
// ranks, gradients are averaged (all-reduce) or, with ZeRO stage 1, reduce-scattered so that
// each rank updates its shard of the parameters with its shard of the moments and then
// all-gathers the parameters.
#pragma once
#include "dist/comm.h"
#include "model/gpt.h"

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

class AdamW {
public:
  // Moments sized from the memory plan's optimizer group (plan_memory): every parameter, or
  // with zero_stage 1 this rank's shard (Communicator::shard_range) only.
  AdamW(const GPT &model, AdamWConfig cfg, Communicator *comm = nullptr, int zero_stage = 0);
  // One update. The gradients must already be scaled so that their sum over ranks is the
  // mean gradient; they are summed over ranks here, clipped to min(1, clip/(norm+1e-6))
  // (clip 0: none), applied, and zeroed. Returns the global gradient norm before clipping.
  float step(GPT &model, float lr, float grad_clip);
  int steps_taken() const { return t_; }
  // Seconds the last step spent in gradient and parameter collectives.
  double comm_seconds() const { return comm_seconds_; }
  void set_steps_taken(int t) { t_ = t; }
  // Moments of every parameter (gathered from all ranks under ZeRO-1: a collective).
  void gather_moments(std::vector<float> &m, std::vector<float> &v);
  // Restores from moments of every parameter (each rank keeps its shard).
  void load_moments(const float *m, const float *v);

private:
  AdamWConfig cfg_;
  Communicator *comm_;
  int zero_stage_;
  size_t P_ = 0;                // parameters
  size_t begin_ = 0, end_ = 0;  // this rank's shard of them
  Arena m_, v_;
  int t_ = 0;
  double comm_seconds_ = 0;
};

// The global L2 norm of the gradients in [begin, end) of the flat parameter order.
double grad_sum_squares(const GPT &model, size_t begin, size_t end);

} // namespace finegpt
