// nanoGPT's LR schedule, clipping and AdamW (see optim.h).
#include "optim/optim.h"

#include "backend/ops.h"
#include "core/error.h"

#include <cmath>
#include <cstring>

namespace finegpt {

double LrSchedule::at(long it) const {
  if (!decay_lr) return learning_rate;
  if (it < warmup_iters) return learning_rate * double(it + 1) / double(warmup_iters + 1);
  if (it > lr_decay_iters) return min_lr;
  if (lr_decay_iters == warmup_iters) return min_lr;
  double ratio = double(it - warmup_iters) / double(lr_decay_iters - warmup_iters);
  double coeff = 0.5 * (1.0 + std::cos(M_PI * ratio));
  return min_lr + coeff * (learning_rate - min_lr);
}

AdamW::AdamW(const GPT &model, AdamWConfig cfg) : cfg_(cfg) {
  const int B = model.max_batch(), T = model.max_time();
  MemoryPlan plan = plan_memory(model.config(), B, T);
  const Buffer *m = plan.find("adamw.m"), *v = plan.find("adamw.v");
  FINEGPT_CHECK(m && v && m->elems == model.num_params(), "internal: optimizer plan mismatch");
  m_ = Arena(m->elems);
  v_ = Arena(v->elems);
  std::memset(m_.data(), 0, m_.size() * sizeof(float));
  std::memset(v_.data(), 0, v_.size() * sizeof(float));
}

float grad_norm(const GPT &model) {
  // Per-tensor sums like torch's norm of norms; summed in double.
  double ss = 0.0;
  GPT &m = const_cast<GPT &>(model);
  for (int i = 0; i < kNumParamTensors; ++i) {
    auto id = ParamId(i);
    ss += cpu::sum_squares(m.grad(id), m.param_count(id));
  }
  return float(std::sqrt(ss));
}

float AdamW::step(GPT &model, float lr, float grad_clip) {
  float norm = grad_norm(model);
  float scale = 1.0f;
  if (grad_clip > 0.0f) {
    float coef = grad_clip / (norm + 1e-6f);
    if (coef < 1.0f) scale = coef;
  }
  ++t_;
  auto tensors = param_tensors(model.config());
  for (int i = 0; i < kNumParamTensors; ++i) {
    auto id = ParamId(i);
    size_t n = model.param_count(id), off = model.param_offset(id);
    if (!n) continue;
    cpu::adamw_update(model.param(id), model.grad(id), m_.data() + off, v_.data() + off, n, lr,
                      cfg_.beta1, cfg_.beta2, cfg_.eps, tensors[i].decay ? cfg_.weight_decay : 0.0f,
                      t_, scale, /*zero_grad=*/true);
  }
  return norm;
}

} // namespace finegpt
