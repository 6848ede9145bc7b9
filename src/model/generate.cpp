// KV-cache generation (see generate.h).
#include "model/generate.h"

#include "backend/ops.h"
#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace finegpt {

MemoryPlan plan_generation(const GPTConfig &c, int S) {
  check_gpt_config(c);
  FINEGPT_CHECK(S > 0, "num_samples must be positive");
  MemoryPlan plan;
  const int64_t L = c.n_layer, C = c.n_embd, T = c.block_size, NH = c.n_head;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    size_t n = std::accumulate(shape.begin(), shape.end(), int64_t(1), std::multiplies<>());
    plan.buffers.push_back({std::move(name), MemGroup::Activations, std::move(shape), 4, n, n * 4});
  };
  add("kcache", {L, S, T, C});
  add("vcache", {L, S, T, C});
  add("x", {S, C});
  add("ln", {S, C});
  add("qkv", {S, 3 * C});
  add("atty", {S, C});
  add("branch", {S, C});
  add("fch", {S, 4 * C});
  add("fch_gelu", {S, 4 * C});
  add("scores", {S, NH, T});
  add("logits", {S, c.padded_vocab_size});
  add("ln_mean", {S});
  add("ln_rstd", {S});
  return plan;
}

Generator::Generator(const GPT &model, int S)
    : model_(model), S_(S), plan_(plan_generation(model.config(), S)) {
  arena_ = Arena(plan_.elems(MemGroup::Activations));
  float *p = arena_.data();
  for (const auto &b : plan_.buffers) {
    ptrs_.emplace_back(b.name, p);
    p += b.elems;
  }
}

float *Generator::buf(const char *name) {
  for (auto &[n, p] : ptrs_)
    if (n == name) return p;
  fail("internal: generation buffer '", name, "' is not planned");
}

const float *Generator::step(const int32_t *tokens, int t) {
  const GPTConfig &c = model_.config();
  const int C = c.n_embd, NH = c.n_head, Tm = c.block_size, S = S_;
  FINEGPT_CHECK(t >= 0 && t < Tm, "internal: position ", t, " outside the block");
  float *x = buf("x"), *ln = buf("ln"), *qkv = buf("qkv"), *scores = buf("scores");
  cpu::encoder_forward(x, tokens, model_.param(WTE), model_.param(WPE) + size_t(t) * C, S, 1, C,
                       Dropout{});
  // The model's block over S rows of one position each: the residual stream x updated in place,
  // the LayerNorms sharing one buffer, and attention against the KV cache.
  GPT::LayerActs a{};
  a.res_in = a.res2 = a.res3 = x;
  a.ln1 = a.ln2 = ln;
  a.qkv = qkv, a.atty = buf("atty"), a.fch = buf("fch"), a.fch_gelu = buf("fch_gelu");
  a.branch = buf("branch");
  a.ln1_mean = a.ln2_mean = buf("ln_mean");
  a.ln1_rstd = a.ln2_rstd = buf("ln_rstd");
  for (int l = 0; l < c.n_layer; ++l) {
    float *kc = buf("kcache") + size_t(l) * S * Tm * C;
    float *vc = buf("vcache") + size_t(l) * S * Tm * C;
    model_.block_forward(l, S, a, 0, /*write_output=*/true, [&](const GPT::LayerActs &la, Dropout) {
      for (int s = 0; s < S; ++s) {
        std::copy_n(la.qkv + size_t(s) * 3 * C + C, C, kc + (size_t(s) * Tm + t) * C);
        std::copy_n(la.qkv + size_t(s) * 3 * C + 2 * C, C, vc + (size_t(s) * Tm + t) * C);
        std::copy_n(la.qkv + size_t(s) * 3 * C, C, la.ln1 + size_t(s) * C); // q, packed (S,C)
      }
      cpu::attention_decode(la.atty, scores, la.ln1, kc, vc, S, t, Tm, C, NH);
    });
  }
  cpu::layernorm_forward(ln, buf("ln_mean"), buf("ln_rstd"), x, model_.param(LNFW),
                         c.bias ? model_.param(LNFB) : nullptr, S, C);
  cpu::matmul_forward(buf("logits"), ln, model_.param(WTE), nullptr, S, C, c.padded_vocab_size);
  ++steps_;
  return buf("logits");
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

const float *Generator::next(const std::vector<std::vector<int32_t>> &seqs) {
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

std::vector<std::vector<int32_t>> Generator::generate(const std::vector<int32_t> &prompt,
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

} // namespace finegpt
