// nanoGPT's LR schedule, clipping and AdamW (see optim.h).
#include "optim/optim.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>

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

template <class Backend>
AdamW<Backend>::AdamW(Model<Backend> &model, AdamWConfig cfg, GradExchange *exchange)
    : model_(model), cfg_(cfg), exchange_(exchange) {
  P_ = end_ = model.num_params();
  PlanOptions o;
  o.backend = Backend::kind, o.precision = Backend::precision;
  o.recompute = model.options().recompute, o.cudnn_attention = model.options().cudnn_attention;
  o.zero_stage = exchange ? exchange->zero_stage() : 0, o.world = exchange ? exchange->world() : 1;
  const MemoryPlan plan = plan_memory(model.config(), model.max_batch(), model.max_time(), o);
  if (sharded()) {
    std::tie(begin_, end_) = exchange->owned();
    // The plan's shard is ceil(P / world); the last rank's real shard may be shorter.
    FINEGPT_CHECK(end_ - begin_ <= plan.find("adamw.m")->elems,
                  "internal: optimizer shard exceeds the plan");
  }
  std::vector<std::pair<const Buffer *, size_t>> at;
  for (const auto &b : plan.buffers)
    if (b.group == MemGroup::Optimizer) at.emplace_back(&b, bytes_), bytes_ += b.bytes;
  FINEGPT_CHECK(!at.empty(), "internal: the plan has no optimizer state");
  block_.emplace(bytes_);
  for (auto [b, off] : at) {
    float *p = reinterpret_cast<float *>(block_->data() + off);
    if (b->name == "master") master_ = p;
    if (b->name == "adamw.m") m_ = p;
    if (b->name == "adamw.v") v_ = p;
  }
  FINEGPT_CHECK(m_ && v_ && (master_ || !Backend::kMasterWeights),
                "internal: the plan lacks AdamW's state");
  Backend::zero(block_->data(), bytes_);
}

template <class Backend> float AdamW<Backend>::step(float lr, float grad_clip) {
  using Real = typename Backend::Real;
  if (exchange_) exchange_->reduce();
  // This rank's part of each tensor, in tensor order: the norm sums them in that order in double
  // (torch sums norms of norms; at fp32 the order does not matter in double).
  const auto tensors = param_tensors(model_.config());
  std::vector<Range> ranges;
  std::vector<int> ids;
  for (int i = 0; i < kNumParamTensors; ++i) {
    const size_t off = model_.param_offset(ParamId(i)), n = model_.param_count(ParamId(i));
    const size_t lo = std::max(begin_, off), hi = std::min(end_, off + n);
    if (lo < hi) ranges.emplace_back(lo, hi), ids.push_back(i);
  }
  Real *params = model_.params(), *grads = model_.grads();
  std::vector<double> sums(ranges.size());
  Backend::sum_squares(sums.data(), grads, ranges, model_.reduce_scratch());
  double ss = 0.0;
  for (double s : sums)
    ss += s;
  if (sharded()) exchange_->sum(&ss);
  const float norm = float(std::sqrt(ss));
  float scale = 1.0f;
  if (grad_clip > 0.0f) {
    const float coef = grad_clip / (norm + 1e-6f);
    if (coef < 1.0f) scale = coef;
  }
  ++t_;
  for (size_t r = 0; r < ranges.size(); ++r) {
    const auto [lo, hi] = ranges[r];
    const size_t s = lo - begin_;
    Backend::adamw_update(params + lo, grads + lo, master_ ? master_ + s : nullptr, m_ + s, v_ + s,
                          hi - lo, lr, cfg_.beta1, cfg_.beta2, cfg_.eps,
                          tensors[ids[r]].decay ? cfg_.weight_decay : 0.0f, t_, scale,
                          /*zero_grad=*/true);
  }
  if (sharded()) { // the rest of the gradients held other ranks' partial sums
    Backend::zero(grads, begin_ * sizeof(Real));
    Backend::zero(grads + end_, (P_ - end_) * sizeof(Real));
  }
  if (exchange_) exchange_->share_params();
  return norm;
}

template <class Backend> void AdamW<Backend>::set_params(const float *host) {
  model_.set_params(host);
  if (master_) Backend::store(master_, host + begin_, end_ - begin_);
}

template <class Backend> void AdamW<Backend>::get_params(float *host) {
  if (!master_) { // the model's parameters are the fp32 values, complete on every rank
    model_.get_params(host);
    return;
  }
  Backend::load(host + begin_, master_, end_ - begin_);
  if (sharded()) exchange_->gather(host);
}

template <class Backend>
void AdamW<Backend>::gather_moments(std::vector<float> &m, std::vector<float> &v) {
  m.assign(P_, 0.0f);
  v.assign(P_, 0.0f);
  Backend::load(m.data() + begin_, m_, end_ - begin_);
  Backend::load(v.data() + begin_, v_, end_ - begin_);
  if (sharded()) {
    exchange_->gather(m.data());
    exchange_->gather(v.data());
  }
}

template <class Backend> void AdamW<Backend>::load_moments(const float *m, const float *v) {
  Backend::store(m_, m + begin_, end_ - begin_);
  Backend::store(v_, v + begin_, end_ - begin_);
}

template class AdamW<CpuBackend>;
template class AdamW<CudaBackend>;

} // namespace finegpt
