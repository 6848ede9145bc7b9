// nanoGPT's LR schedule, clipping and AdamW (see optim.h).
#include "optim/optim.h"

#include "core/error.h"

#include <algorithm>
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

float OptimConfig::lr_for(int id, float lr) const {
  if (muon && muon_matrix(id)) return lr * muon_lr_scale;
  if (id == WTE || id == WPE) return lr * embedding_lr_scale;
  if (id == LMHEAD) return lr * head_lr_scale;
  return lr;
}

void host_adamw(cuda::bf16 *staging, float *master, float *m, float *v,
                const std::vector<HostChunk> &chunks, const OptimConfig &cfg, int t,
                float grad_scale) {
#pragma omp parallel
  {
    std::vector<float> g(kHostAdamWChunk);
#pragma omp for schedule(static)
    for (long c = 0; c < long(chunks.size()); ++c) {
      const HostChunk &k = chunks[size_t(c)];
      cuda::bf16 *st = staging + k.off;
      for (size_t i = 0; i < k.n; ++i)
        g[i] = cuda::to_float(st[i]);
      CpuBackend::adamw_update(master + k.off, g.data(), nullptr, m + k.off, v + k.off, k.n, k.lr,
                               cfg.beta1, cfg.beta2, cfg.eps, k.decay, t, grad_scale,
                               /*zero_grad=*/false);
      const float *w = master + k.off;
      for (size_t i = 0; i < k.n; ++i)
        st[i] = cuda::to_bf16(w[i]);
    }
  }
}

template <class Backend>
Optimizer<Backend>::Optimizer(Model<Backend> &model, OptimConfig cfg, GradExchange *exchange)
    : model_(model), cfg_(cfg), exchange_(exchange), offload_(cfg.offload) {
  FINEGPT_CHECK(!offload_ || Backend::kMasterWeights,
                "offload = 'optimizer' is for the CUDA engine: the CPU engine's optimizer state is "
                "in host memory already");
  P_ = end_ = model.num_params();
  PlanOptions o;
  o.backend = Backend::kind, o.precision = Backend::precision;
  o.recompute = model.options().recompute, o.cudnn_attention = model.options().cudnn_attention;
  o.zero_stage = exchange ? exchange->zero_stage() : 0, o.world = exchange ? exchange->world() : 1;
  o.offload = offload_;
  o.muon = cfg.muon;
  const MemoryPlan plan = plan_memory(model.config(), model.max_batch(), model.max_time(), o);
  if (sharded()) {
    std::tie(begin_, end_) = exchange->owned();
    // The plan's shard is ceil(P / world); the last rank's real shard may be shorter.
    FINEGPT_CHECK(end_ - begin_ <= plan.find("adamw.m")->elems,
                  "internal: optimizer shard exceeds the plan");
  }
  // The engine's buffers in one block, the pinned host ones (offload) in another.
  std::vector<std::tuple<const Buffer *, size_t, bool>> at;
  for (const auto &b : plan.buffers) {
    if (b.group != MemGroup::Optimizer) continue;
    const bool host = b.where == Location::Host;
    size_t &n = host ? host_bytes_ : bytes_;
    at.emplace_back(&b, n, host);
    n += b.bytes;
  }
  FINEGPT_CHECK(!at.empty(), "internal: the plan has no optimizer state");
  if (bytes_) block_.emplace(bytes_);
  if (host_bytes_) pinned_.emplace(host_bytes_);
  for (auto [b, off, host] : at) {
    unsigned char *base = (host ? pinned_->data() : block_->data()) + off;
    float *p = reinterpret_cast<float *>(base);
    if (b->name == "master") master_ = p;
    if (b->name == "adamw.m") m_ = p;
    if (b->name == "adamw.v") v_ = p;
    if (b->name == "offload.staging") staging_ = reinterpret_cast<typename Backend::Real *>(base);
    if (b->name == "muon.scratch") muon_scratch_ = reinterpret_cast<typename Backend::Real *>(base);
  }
  FINEGPT_CHECK(m_ && v_ && (master_ || !Backend::kMasterWeights) && (staging_ || !offload_) &&
                    (muon_scratch_ || !cfg.muon),
                "internal: the plan lacks the optimizer's state");
  if (bytes_) Backend::zero(block_->data(), bytes_);
  if (host_bytes_) std::memset(pinned_->data(), 0, host_bytes_);
}

template <class Backend> Optimizer<Backend>::~Optimizer() {
  if (!offload_) return;
  try {
    Backend::copies_wait();
  } catch (...) { // a device error: the process reports it elsewhere; nothing to free into
  }
}

template <class Backend>
void Optimizer<Backend>::Prefetch::ready(const std::vector<Range> &ranges) {
  using Real = typename Backend::Real;
  Real *grads = o_.model_.grads();
  for (const auto &[a, b] : ranges) {
    const size_t lo = std::max(a, o_.begin_), hi = std::min(b, o_.end_);
    if (lo >= hi) continue;
    Backend::download_async(o_.staging_ + (lo - o_.begin_), grads + lo, (hi - lo) * sizeof(Real));
    o_.prefetched_ += hi - lo;
  }
}

template <class Backend> void Optimizer<Backend>::put(float *state, const float *host, size_t n) {
  if (offload_)
    std::memcpy(state, host, n * sizeof(float));
  else
    Backend::store(state, host, n);
}

template <class Backend> void Optimizer<Backend>::get(float *host, const float *state, size_t n) {
  if (offload_)
    std::memcpy(host, state, n * sizeof(float));
  else
    Backend::load(host, state, n);
}

template <class Backend>
void Optimizer<Backend>::host_update(const std::vector<Range> &ranges,
                                     const std::vector<float> &lrs, const std::vector<float> &decay,
                                     float scale) {
  if constexpr (Backend::kMasterWeights) {
    using Real = typename Backend::Real;
    Real *params = model_.params(), *grads = model_.grads();
    // Gradients down, per tensor range (pinned memory: the copy engine writes it directly),
    // unless backward's hook copied them all as it finished them.
    if (prefetched_ != end_ - begin_)
      for (const auto &[lo, hi] : ranges)
        Backend::download_async(staging_ + (lo - begin_), grads + lo, (hi - lo) * sizeof(Real));
    prefetched_ = 0;
    Backend::copies_wait();
    std::vector<HostChunk> chunks;
    for (size_t r = 0; r < ranges.size(); ++r)
      for (size_t o = ranges[r].first; o < ranges[r].second; o += kHostAdamWChunk)
        chunks.push_back(
            {o - begin_, std::min(kHostAdamWChunk, ranges[r].second - o), lrs[r], decay[r]});
    host_adamw(staging_, master_, m_, v_, chunks, cfg_, t_, scale);
    // The new bf16 parameters up on the copy stream; the compute stream waits for them all
    // before the next step's forward (the host does not; the staging buffer is next written by
    // copies queued after these on the same stream).
    for (const auto &[lo, hi] : ranges)
      Backend::upload_async(params + lo, staging_ + (lo - begin_), (hi - lo) * sizeof(Real));
    Backend::compute_waits_for_copies();
  } else {
    (void)ranges, (void)lrs, (void)decay, (void)scale;
    fail("internal: offload on a backend without master weights");
  }
}

template <class Backend> float Optimizer<Backend>::step(float lr, float grad_clip) {
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
  std::vector<float> lrs(ranges.size()), decay(ranges.size());
  for (size_t r = 0; r < ranges.size(); ++r) {
    lrs[r] = cfg_.lr_for(ids[r], lr);
    decay[r] = tensors[ids[r]].decay ? cfg_.weight_decay : 0.0f;
  }
  if (offload_) {
    host_update(ranges, lrs, decay, scale);
    Backend::zero(grads, P_ * sizeof(Real)); // the copies down are done (copies_wait)
  } else {
    // Muon, first part: the owned momentum and the Nesterov mix written over the gradients; under
    // ZeRO-1 the owners' mixes then go to every rank, which needs whole matrices for the second.
    if (cfg_.muon) {
      for (size_t r = 0; r < ranges.size(); ++r)
        if (muon_matrix(ids[r]))
          Backend::muon_momentum(grads + ranges[r].first, m_ + (ranges[r].first - begin_),
                                 ranges[r].second - ranges[r].first, cfg_.muon_momentum, scale);
      if (sharded()) exchange_->share_grads();
    }
    for (size_t r = 0; r < ranges.size(); ++r) {
      const auto [lo, hi] = ranges[r];
      const size_t s = lo - begin_;
      if (cfg_.muon && muon_matrix(ids[r])) {
        // Second part, per matrix (L of them, (rows, cols) each) that the owned range touches:
        // Newton-Schulz on its whole mix, the owned elements updated.
        const auto &shape = tensors[ids[r]].shape;
        const int rows = int(shape[1]), cols = int(shape[2]);
        const size_t rc = size_t(rows) * cols, off = model_.param_offset(ParamId(ids[r]));
        for (size_t l = (lo - off) / rc; l < size_t(shape[0]) && off + l * rc < hi; ++l) {
          const size_t mat = off + l * rc, a = std::max(lo, mat), b = std::min(hi, mat + rc);
          Backend::muon_orthogonal_update(params + a, master_ ? master_ + (a - begin_) : nullptr,
                                          grads + mat, muon_scratch_, model_.reduce_scratch(), rows,
                                          cols, a - mat, b - mat, lrs[r]);
        }
        Backend::zero(grads + lo, (hi - lo) * sizeof(Real));
        continue;
      }
      Backend::adamw_update(params + lo, grads + lo, master_ ? master_ + s : nullptr, m_ + s,
                            v_ + s, hi - lo, lrs[r], cfg_.beta1, cfg_.beta2, cfg_.eps, decay[r], t_,
                            scale, /*zero_grad=*/true);
    }
    if (sharded()) { // the rest of the gradients held other ranks' partial sums (or mixes)
      Backend::zero(grads, begin_ * sizeof(Real));
      Backend::zero(grads + end_, (P_ - end_) * sizeof(Real));
    }
  }
  if (exchange_) exchange_->share_params();
  return norm;
}

template <class Backend> void Optimizer<Backend>::set_params(const float *host) {
  model_.set_params(host);
  if (master_) put(master_, host + begin_, end_ - begin_);
}

template <class Backend> void Optimizer<Backend>::get_params(float *host) {
  if (!master_) { // the model's parameters are the fp32 values, complete on every rank
    model_.get_params(host);
    return;
  }
  get(host + begin_, master_, end_ - begin_);
  if (sharded()) exchange_->gather(host);
}

template <class Backend>
void Optimizer<Backend>::gather_moments(std::vector<float> &m, std::vector<float> &v) {
  m.assign(P_, 0.0f);
  v.assign(P_, 0.0f);
  get(m.data() + begin_, m_, end_ - begin_);
  get(v.data() + begin_, v_, end_ - begin_);
  if (sharded()) {
    exchange_->gather(m.data());
    exchange_->gather(v.data());
  }
}

template <class Backend> void Optimizer<Backend>::load_moments(const float *m, const float *v) {
  put(m_, m + begin_, end_ - begin_);
  put(v_, v + begin_, end_ - begin_);
}

template class Optimizer<CpuBackend>;
template class Optimizer<CudaBackend>;

} // namespace finegpt
