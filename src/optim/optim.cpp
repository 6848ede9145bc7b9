// nanoGPT's LR schedule, clipping and AdamW, data-parallel (see optim.h).
#include "optim/optim.h"

#include "backend/ops.h"
#include "core/error.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <tuple>

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

AdamW::AdamW(const GPT &model, AdamWConfig cfg, Communicator *comm, int zero_stage)
    : cfg_(cfg), comm_(comm), zero_stage_(zero_stage) {
  const int world = comm ? comm->world() : 1;
  PlanOptions o;
  o.zero_stage = zero_stage, o.world = world;
  MemoryPlan plan = plan_memory(model.config(), model.max_batch(), model.max_time(), o);
  const Buffer *m = plan.find("adamw.m"), *v = plan.find("adamw.v");
  FINEGPT_CHECK(m && v, "internal: the plan has no optimizer state");
  FINEGPT_CHECK(zero_stage == 0 || comm, "internal: ZeRO-1 needs a communicator");
  P_ = end_ = model.num_params();
  if (zero_stage == 1) {
    auto [b, e] = comm->shard_range(model.num_params(), comm->rank());
    begin_ = b, end_ = e;
    // The plan's shard is ceil(P / world); the last rank's real shard may be shorter.
    FINEGPT_CHECK(e - b <= m->elems, "internal: optimizer shard exceeds the plan");
  }
  m_ = Arena(m->elems);
  v_ = Arena(v->elems);
  std::memset(m_.data(), 0, m_.size() * sizeof(float));
  std::memset(v_.data(), 0, v_.size() * sizeof(float));
}

double grad_sum_squares(const GPT &model, size_t begin, size_t end) {
  // Per tensor (torch sums norms of norms; in double the order does not matter at fp32 level).
  GPT &m = const_cast<GPT &>(model);
  double ss = 0.0;
  for (int i = 0; i < kNumParamTensors; ++i) {
    auto id = ParamId(i);
    const size_t off = m.param_offset(id), n = m.param_count(id);
    const size_t b = std::max(begin, off), e = std::min(end, off + n);
    if (b < e) ss += cpu::sum_squares(m.grads() + b, e - b);
  }
  return ss;
}

float AdamW::step(GPT &model, float lr, float grad_clip) {
  const size_t P = model.num_params();
  const bool multi = comm_ && comm_->world() > 1;
  size_t begin = 0, end = P;
  using clock = std::chrono::steady_clock;
  auto c0 = clock::now();
  if (multi && zero_stage_ == 1) {
    comm_->reduce_scatter_sum(model.grads(), P);
    std::tie(begin, end) = comm_->shard_range(P, comm_->rank());
  } else if (multi) {
    comm_->allreduce_sum(model.grads(), P);
  }
  comm_seconds_ = std::chrono::duration<double>(clock::now() - c0).count();
  double ss = grad_sum_squares(model, begin, end);
  if (multi && zero_stage_ == 1) comm_->allreduce_sum(&ss, 1);
  const float norm = float(std::sqrt(ss));
  float scale = 1.0f;
  if (grad_clip > 0.0f) {
    float coef = grad_clip / (norm + 1e-6f);
    if (coef < 1.0f) scale = coef;
  }
  ++t_;
  auto tensors = param_tensors(model.config());
  for (int i = 0; i < kNumParamTensors; ++i) {
    auto id = ParamId(i);
    const size_t off = model.param_offset(id), n = model.param_count(id);
    const size_t b = std::max(begin, off), e = std::min(end, off + n);
    if (b >= e) continue;
    cpu::adamw_update(model.params() + b, model.grads() + b, m_.data() + (b - begin_),
                      v_.data() + (b - begin_), e - b, lr, cfg_.beta1, cfg_.beta2, cfg_.eps,
                      tensors[i].decay ? cfg_.weight_decay : 0.0f, t_, scale,
                      /*zero_grad=*/true);
  }
  if (multi && zero_stage_ == 1) {
    // The rest of the gradients held this rank's unreduced partial sums.
    std::memset(model.grads(), 0, begin * sizeof(float));
    std::memset(model.grads() + end, 0, (P - end) * sizeof(float));
    auto g0 = clock::now();
    comm_->all_gather(model.params(), P);
    comm_seconds_ += std::chrono::duration<double>(clock::now() - g0).count();
  }
  return norm;
}

void AdamW::gather_moments(std::vector<float> &m, std::vector<float> &v) {
  m.assign(P_, 0.0f);
  v.assign(P_, 0.0f);
  std::copy(m_.data(), m_.data() + (end_ - begin_), m.begin() + begin_);
  std::copy(v_.data(), v_.data() + (end_ - begin_), v.begin() + begin_);
  if (zero_stage_ == 1 && comm_->world() > 1) {
    comm_->all_gather(m.data(), P_);
    comm_->all_gather(v.data(), P_);
  }
}

void AdamW::load_moments(const float *m, const float *v) {
  std::copy(m + begin_, m + end_, m_.data());
  std::copy(v + begin_, v + end_, v_.data());
}

} // namespace finegpt
