// Text generation with a KV cache: each new token costs one position's forward (O(1) matrix
// work, O(t) attention), so n tokens cost O(n) forward work inside the block. Past block_size
// the context is the last block_size tokens, exactly as nanoGPT's generate() crops it; the
// positions then shift, so the cache is rebuilt for every further token (nanoGPT's cost).
#pragma once
#include "core/rng.h"
#include "model/model.h"

#include <cstdint>
#include <vector>

namespace finegpt {

// Buffers of a generation run over S sequences (from the memory plan's rules).
MemoryPlan plan_generation(const GPTConfig &cfg, int S);

struct SampleOptions {
  int max_new_tokens = 500;
  float temperature = 0.8f;
  int top_k = 200; // 0: no top-k filter
};

class Generator {
public:
  // Reads the parameters of `model` (which must outlive the generator).
  Generator(const GPT &model, int S);
  // Continues S copies of `prompt` (non-empty) by opt.max_new_tokens tokens each; returns the
  // S new-token sequences.
  std::vector<std::vector<int32_t>> generate(const std::vector<int32_t> &prompt,
                                             const SampleOptions &opt, Rng &rng);
  // Logits (S,Vp) of the next token after feeding `tokens` (one per sequence) at position t.
  const float *step(const int32_t *tokens, int t);
  // Count of position-steps run so far (a cost measure for tests).
  long steps_run() const { return steps_; }

private:
  float *buf(const char *name);
  const GPT &model_;
  int S_;
  MemoryPlan plan_;
  Arena arena_;
  std::vector<std::pair<std::string, float *>> ptrs_;
  long steps_ = 0;
};

} // namespace finegpt
