// KV-cache generation (see generate.h).
#include "model/generate.h"

#include "backend/ops.h"
#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace finegpt {

MemoryPlan plan_generation(const GPTConfig &c, int S, Precision precision) {
  check_gpt_config(c);
  FINEGPT_CHECK(S > 0, "num_samples must be positive");
  MemoryPlan plan;
  const int64_t L = c.n_layer, C = c.n_embd, T = c.block_size, NH = c.n_head;
  const int W = precision == Precision::FP32 ? 4 : 2;
  auto add = [&](std::string name, std::vector<int64_t> shape, int bytes) {
    size_t n = std::accumulate(shape.begin(), shape.end(), int64_t(1), std::multiplies<>());
    plan.buffers.push_back({std::move(name), MemGroup::Activations, std::move(shape), bytes, n,
                            n * bytes, Location::Engine});
  };
  add("kcache", {L, S, T, C}, W);
  add("vcache", {L, S, T, C}, W);
  add("x", {S, C}, W);
  add("ln", {S, C}, W);
  add("qkv", {S, 3 * C}, W);
  add("atty", {S, C}, W);
  add("branch", {S, C}, W);
  add("fch", {S, 4 * C}, W);
  add("fch_gelu", {S, 4 * C}, W);
  add("scores", {S, NH, T}, 4);
  add("logits", {S, c.padded_vocab_size}, W);
  if (!c.rmsnorm) add("ln_mean", {S}, 4);
  add("ln_rstd", {S}, 4);
  if (c.qk_norm) add("qk_rstd", {S, 2 * NH}, 4);
  add("tokens", {S}, 4);
  return plan;
}

template <class Backend>
Generator<Backend>::Generator(const Model<Backend> &model, int S)
    : model_(model), S_(S), plan_(plan_generation(model.config(), S, Backend::precision)) {
  std::vector<std::pair<std::string, size_t>> at;
  size_t bytes = 0;
  for (const auto &b : plan_.buffers) {
    bytes = (bytes + Backend::kAlign - 1) / Backend::kAlign * Backend::kAlign;
    at.emplace_back(b.name, bytes);
    bytes += b.bytes;
  }
  block_.emplace(bytes);
  auto buf = [&](const char *name) -> void * {
    for (const auto &[n, off] : at)
      if (n == name) return block_->data() + off;
    fail("internal: generation buffer '", name, "' is not planned");
  };
  auto real = [&](const char *name) { return static_cast<Real *>(buf(name)); };
  kcache_ = real("kcache"), vcache_ = real("vcache"), x_ = real("x"), ln_ = real("ln");
  qkv_ = real("qkv"), atty_ = real("atty"), branch_ = real("branch"), fch_ = real("fch");
  fch_gelu_ = real("fch_gelu"), logits_ = real("logits");
  const GPTConfig &c = model.config();
  mean_ = c.rmsnorm ? nullptr : static_cast<float *>(buf("ln_mean"));
  rstd_ = static_cast<float *>(buf("ln_rstd"));
  qk_rstd_ = c.qk_norm ? static_cast<float *>(buf("qk_rstd")) : nullptr;
  scores_ = static_cast<float *>(buf("scores"));
  tokens_ = static_cast<int32_t *>(buf("tokens"));
  host_logits_.resize(size_t(S) * model.config().padded_vocab_size);
}

template <class Backend> const float *Generator<Backend>::step(const int32_t *tokens, int t) {
  const GPTConfig &c = model_.config();
  const int C = c.n_embd, NH = c.n_head, Tm = c.block_size, S = S_, Vp = c.padded_vocab_size;
  FINEGPT_CHECK(t >= 0 && t < Tm, "internal: position ", t, " outside the block");
  for (int s = 0; s < S; ++s)
    FINEGPT_CHECK(tokens[s] >= 0 && tokens[s] < c.vocab_size, "token id ", tokens[s],
                  " is outside the vocabulary (", c.vocab_size, ")");
  model_.bind_workspace();
  Backend::upload(tokens_, tokens, sizeof(int32_t) * S);
  const Real *wpe = model_.wpe(); // null with rotary: positions enter in the block
  ops::encoder_forward(x_, tokens_, model_.param(WTE), wpe ? wpe + size_t(t) * C : nullptr, S, 1, C,
                       Dropout{});
  // The model's block over S rows of one position each: the residual stream x updated in place,
  // the LayerNorms sharing one buffer, and attention against the KV cache.
  typename Model<Backend>::LayerActs a{};
  a.res_in = a.res2 = a.res3 = x_;
  a.ln1 = a.ln2 = ln_;
  a.qkv = qkv_, a.atty = atty_, a.fch = fch_, a.fch_gelu = fch_gelu_, a.branch = branch_;
  a.ln1_mean = a.ln2_mean = mean_;
  a.ln1_rstd = a.ln2_rstd = rstd_;
  a.qk_rstd = qk_rstd_;
  for (int l = 0; l < c.n_layer; ++l) {
    Real *kc = kcache_ + size_t(l) * S * Tm * C, *vc = vcache_ + size_t(l) * S * Tm * C;
    // S sequences of one position each, at position t (rotary: k is cached rotated by its own t)
    model_.block_forward(l, S, 1, t, a, 0, /*write_output=*/true,
                         [&](const typename Model<Backend>::LayerActs &la, Dropout) {
                           // q packed (S,C) into ln1, which the block no longer needs
                           ops::kv_append(kc, vc, la.ln1, la.qkv, S, t, Tm, C);
                           ops::attention_decode(la.atty, scores_, la.ln1, kc, vc, S, t, Tm, C, NH);
                         });
  }
  model_.norm_forward(ln_, mean_, rstd_, x_, LNFW, LNFB, 0, S);
  ops::matmul_forward(logits_, ln_, model_.head(), static_cast<const Real *>(nullptr), S, C, Vp);
  model_.softcap(logits_, size_t(S) * Vp);
  Backend::load(host_logits_.data(), logits_, size_t(S) * Vp);
  ++steps_;
  return host_logits_.data();
}

namespace {

// nanoGPT's sampling: logits / temperature, keep the top k, softmax, draw one.
int32_t sample_token(const float *logits, int V, const SampleOptions &opt, Rng &rng,
                     std::vector<float> &work) {
  work.assign(logits, logits + V);
  const float temp = opt.temperature > 0 ? opt.temperature : 1e-6f;
  for (float &v : work)
    v /= temp;
  if (opt.top_k > 0 && opt.top_k < V) {
    std::vector<float> sorted(work);
    std::nth_element(sorted.begin(), sorted.begin() + (opt.top_k - 1), sorted.end(),
                     std::greater<float>());
    const float kth = sorted[opt.top_k - 1];
    for (float &v : work)
      if (v < kth) v = -INFINITY;
  }
  const float maxv = *std::max_element(work.begin(), work.end());
  double sum = 0.0;
  for (float &v : work)
    sum += (v = std::exp(v - maxv));
  double r = double(rng.uniform()) * sum, acc = 0.0;
  for (int i = 0; i < V; ++i) {
    acc += work[i];
    if (r < acc && work[i] > 0) return i;
  }
  for (int i = V - 1; i >= 0; --i) // rounding left r at the very end
    if (work[i] > 0) return i;
  return 0;
}

} // namespace

template <class Backend>
const float *Generator<Backend>::next(const std::vector<std::vector<int32_t>> &seqs) {
  FINEGPT_CHECK(seqs.size() == size_t(S_), "internal: ", seqs.size(), " sequences, planned ", S_);
  const size_t len = seqs[0].size(), Tm = size_t(model_.config().block_size);
  toks_.resize(S_);
  auto feed = [&](size_t i, size_t pos) {
    for (int s = 0; s < S_; ++s)
      toks_[s] = seqs[s][i];
    return step(toks_.data(), int(pos));
  };
  if (cached_ > 0 && len == cached_ + 1 && len <= Tm) return feed(len - 1, cached_++);
  // A new context, or one past the block: the cache from the last min(len, block) tokens.
  const size_t start = len > Tm ? len - Tm : 0;
  const float *logits = nullptr;
  for (size_t i = start; i < len; ++i)
    logits = feed(i, i - start);
  cached_ = start == 0 ? len : 0; // shifted positions are never extended
  return logits;
}

template <class Backend>
std::vector<std::vector<int32_t>> Generator<Backend>::generate(const std::vector<int32_t> &prompt,
                                                               const SampleOptions &opt, Rng &rng) {
  cached_ = 0;
  return finegpt::generate(*this, S_, model_.config().vocab_size, prompt, opt, rng);
}

std::vector<std::vector<int32_t>> generate(LogitSource &model, int S, int V,
                                           const std::vector<int32_t> &prompt,
                                           const SampleOptions &opt, Rng &rng) {
  FINEGPT_CHECK(!prompt.empty(), "the start text encodes to no tokens");
  std::vector<std::vector<int32_t>> seqs(S, prompt), out(S);
  std::vector<float> work;
  for (int n = 0; n < opt.max_new_tokens; ++n) {
    const float *logits = model.next(seqs);
    for (int s = 0; s < S; ++s) {
      const int32_t t = sample_token(logits + size_t(s) * model.row_stride(), V, opt, rng, work);
      seqs[s].push_back(t);
      out[s].push_back(t);
    }
  }
  return out;
}

template class Generator<CpuBackend>;
template class Generator<CudaBackend>;

} // namespace finegpt
