// Text generation: nanoGPT's sampling over any source of next-token logits, and the model's KV
// cache on either engine, where each new token costs one position's forward (O(1) matrix work,
// O(t) attention), so n tokens cost O(n) forward work inside the block. Past block_size the context
// is the last block_size tokens, exactly as nanoGPT's generate() crops it; the positions then
// shift, so the cache is rebuilt for every further token (nanoGPT's cost).
#pragma once
#include "core/rng.h"
#include "model/model.h"

#include <cstdint>
#include <optional>
#include <vector>

namespace finegpt {

// Buffers of a generation run over S sequences (from the memory plan's rules), in the engine's
// precision (bf16: the cache and activations; fp32: LayerNorm statistics and attention scores).
MemoryPlan plan_generation(const GPTConfig &cfg, int S, Precision precision = Precision::FP32);

struct SampleOptions {
  int max_new_tokens = 500;
  float temperature = 0.8f;
  int top_k = 200; // 0: no top-k filter
};

// Next-token logits for S sequences of one length: what sampling needs of a model.
class LogitSource {
public:
  virtual ~LogitSource() = default;
  // Logits after each sequence (rows `row_stride()` floats apart; the first vocab_size count),
  // with nanoGPT's context: the last block_size tokens. Valid until the next call.
  virtual const float *next(const std::vector<std::vector<int32_t>> &seqs) = 0;
  virtual size_t row_stride() const = 0;
};

// nanoGPT's generate(): continues S copies of `prompt` (non-empty) by opt.max_new_tokens tokens
// each (logits / temperature, top-k, softmax, one draw per sequence); returns the S new-token
// sequences.
std::vector<std::vector<int32_t>> generate(LogitSource &model, int S, int vocab_size,
                                           const std::vector<int32_t> &prompt,
                                           const SampleOptions &opt, Rng &rng);

// A model with a KV cache: the model's own block (Model::block_forward) over one position of S
// sequences, attention against the cached keys and values (kv_append, attention_decode).
template <class Backend> class Generator final : public LogitSource {
public:
  using Real = typename Backend::Real;
  // Reads the parameters of `model` (which must outlive the generator).
  Generator(const Model<Backend> &model, int S);
  const float *next(const std::vector<std::vector<int32_t>> &seqs) override;
  size_t row_stride() const override { return size_t(model_.config().padded_vocab_size); }
  // generate() over this model.
  std::vector<std::vector<int32_t>> generate(const std::vector<int32_t> &prompt,
                                             const SampleOptions &opt, Rng &rng);
  // Logits (S,Vp) of the next token after feeding `tokens` (one per sequence) at position t, fp32
  // on the host.
  const float *step(const int32_t *tokens, int t);
  // Count of position-steps run so far (a cost measure for tests).
  long steps_run() const { return steps_; }

private:
  const Model<Backend> &model_;
  int S_;
  MemoryPlan plan_;
  std::optional<typename Backend::Block> block_;
  Real *kcache_, *vcache_, *x_, *ln_, *qkv_, *atty_, *branch_, *fch_, *fch_gelu_, *logits_;
  float *mean_, *rstd_, *scores_, *qk_rstd_;
  int32_t *tokens_;
  std::vector<float> host_logits_;
  long steps_ = 0;
  size_t cached_ = 0; // positions in the cache, all from position 0 of the sequences
  std::vector<int32_t> toks_;
};

extern template class Generator<CpuBackend>;
extern template class Generator<CudaBackend>;

} // namespace finegpt
