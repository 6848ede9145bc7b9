// KV-cache generation against the full forward: the same next-token logits at every step,
// inside the block and past it (where the context is the last block_size tokens, as nanoGPT),
// and a cost of one position-step per token inside the block; with the architecture options too
// (rotary at the cache's position, QK-norm, RMSNorm, ReLU^2, an untied head, soft-capped logits).
#include "core/rng.h"
#include "model/generate.h"

#include <cmath>
#include <gtest/gtest.h>

using namespace finegpt;

namespace {

GPTConfig small(bool bias) {
  GPTConfig c;
  c.n_layer = 2, c.n_head = 3, c.n_embd = 24, c.vocab_size = 37;
  c.padded_vocab_size = pad_vocab(37), c.block_size = 12, c.bias = bias;
  return c;
}
GPTConfig with_options(GPTConfig c) {
  c.rotary = c.rmsnorm = c.qk_norm = c.relu2 = true;
  c.tie_embeddings = false, c.logit_softcap = 2.0f;
  return c;
}

// Randomises every parameter (biases and LayerNorm too) so that nothing is trivially zero.
void randomise(GPT &m, uint64_t seed) {
  Rng rng(seed);
  for (size_t i = 0; i < m.num_params(); ++i)
    m.params()[i] = 0.3f * rng.normal();
}

// Logits of the last position from the full forward over `ctx`.
std::vector<float> full_forward_last(GPT &m, const std::vector<int32_t> &ctx) {
  const int T = int(ctx.size()), Vp = m.config().padded_vocab_size;
  m.forward(ctx.data(), nullptr, 1, T);
  const float *row = m.logits() + size_t(T - 1) * Vp;
  return std::vector<float>(row, row + m.config().vocab_size);
}

void check(bool bias, bool options = false) {
  GPTConfig c = options ? with_options(small(bias)) : small(bias);
  GPT model(c, 1, c.block_size);
  randomise(model, 7);
  Generator gen(model, 1);
  Rng rng(3);
  std::vector<int32_t> seq;
  for (int i = 0; i < 20; ++i)
    seq.push_back(int32_t(rng.below(c.vocab_size)));
  // Inside the block: feed positions one by one, compare with the full forward.
  for (int t = 0; t < c.block_size; ++t) {
    const float *logits = gen.step(&seq[t], t);
    std::vector<int32_t> ctx(seq.begin(), seq.begin() + t + 1);
    std::vector<float> want = full_forward_last(model, ctx);
    for (int v = 0; v < c.vocab_size; ++v)
      ASSERT_NEAR(logits[v], want[v], 1e-4 * (1 + std::fabs(want[v]))) << "t=" << t << " v=" << v;
  }
  EXPECT_EQ(gen.steps_run(), c.block_size);
}

} // namespace

TEST(Generate, KvCacheMatchesFullForward) {
  check(true);
  check(false);
}

TEST(Generate, KvCacheMatchesFullForwardWithArchitectureOptions) {
  check(true, true);
  check(false, true);
  GPTConfig c = small(true);
  c.rotary = true; // alone: a wrong position offset in the cache shows at every t > 0
  GPT model(c, 1, c.block_size);
  randomise(model, 9);
  Generator gen(model, 1);
  std::vector<int32_t> seq{1, 2, 3, 4, 5};
  const float *first = nullptr;
  for (int t = 0; t < 5; ++t)
    first = gen.step(&seq[t], t);
  const std::vector<float> want = full_forward_last(model, seq);
  for (int v = 0; v < c.vocab_size; ++v)
    ASSERT_NEAR(first[v], want[v], 1e-4 * (1 + std::fabs(want[v])));
}

TEST(Generate, PastTheBlockUsesTheLastBlockSizeTokens) {
  GPTConfig c = small(true);
  GPT model(c, 1, c.block_size);
  randomise(model, 11);
  // Greedy sampling (top_k 1) makes the continuation a function of the logits alone, so it
  // can be replayed with the full forward over nanoGPT's cropped context.
  SampleOptions opt{15, 1.0f, 1};
  std::vector<int32_t> prompt = {1, 2, 3, 4, 5};
  Generator gen(model, 2);
  Rng rng(5);
  auto outs = gen.generate(prompt, opt, rng);
  ASSERT_EQ(outs.size(), 2u);
  EXPECT_EQ(outs[0], outs[1]); // two copies of one prompt, greedy: identical
  std::vector<int32_t> seq = prompt;
  for (int n = 0; n < opt.max_new_tokens; ++n) {
    const size_t start = seq.size() > size_t(c.block_size) ? seq.size() - c.block_size : 0;
    std::vector<int32_t> ctx(seq.begin() + start, seq.end());
    std::vector<float> logits = full_forward_last(model, ctx);
    const int32_t best = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    ASSERT_EQ(outs[0][n], best) << "token " << n;
    seq.push_back(best);
  }
}

TEST(Generate, CostIsLinearInsideTheBlock) {
  GPTConfig c = small(false);
  c.block_size = 64;
  GPT model(c, 1, 1);
  randomise(model, 13);
  Generator gen(model, 1);
  Rng rng(1);
  std::vector<int32_t> prompt = {3, 1, 4};
  gen.generate(prompt, SampleOptions{40, 0.8f, 0}, rng);
  // prompt positions + one step per new token except the last (never fed back).
  EXPECT_EQ(gen.steps_run(), long(prompt.size() + 40 - 1));
}
