// nanoGPT's optimisation: the learning-rate schedule (get_lr), global-norm gradient clipping
// (torch.nn.utils.clip_grad_norm_) and AdamW with weight decay on 2-D weights only.
#pragma once
#include "model/gpt.h"

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
  // Moments sized from the memory plan's optimizer group (plan_memory).
  AdamW(const GPT &model, AdamWConfig cfg);
  // One update of every parameter with the gradients scaled by min(1, clip/(norm+1e-6))
  // (clip 0: no clipping), gradients zeroed in the same pass. Returns the gradient norm
  // before clipping.
  float step(GPT &model, float lr, float grad_clip);
  int steps_taken() const { return t_; }
  void set_steps_taken(int t) { t_ = t; }
  float *m() { return m_.data(); }
  float *v() { return v_.data(); }
  size_t size() const { return m_.size(); }

private:
  AdamWConfig cfg_;
  Arena m_, v_;
  int t_ = 0;
};

// The global L2 norm of all gradients.
float grad_norm(const GPT &model);

} // namespace finegpt
