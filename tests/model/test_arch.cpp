// The architecture options at the model: the parameter layout (wpe, LayerNorm biases and lm_head
// present or absent, lm_head last), nanoGPT's init with zero_init_proj (exactly the projections
// and an untied head zero, every other tensor the same numbers), and the memory plan (the
// buffers the options add or drop, and the CPU model allocating exactly the plan).
#include "model/model.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

using namespace finegpt;

namespace {

GPTConfig small() {
  GPTConfig c;
  c.n_layer = 2, c.n_head = 2, c.n_embd = 16, c.vocab_size = 50, c.padded_vocab_size = 64;
  c.block_size = 8, c.bias = true;
  return c;
}

TEST(Arch, ParameterLayout) {
  const GPTConfig g = small();
  const size_t L = 2, C = 16, Vp = 64, T = 8, base = num_parameters(g);
  GPTConfig c = g;
  c.rotary = true;
  EXPECT_EQ(num_parameters(c), base - T * C);
  EXPECT_EQ(param_tensors(c)[WPE].count, 0u);
  c = g, c.rmsnorm = true; // the gain stays, the three LayerNorm biases go
  EXPECT_EQ(num_parameters(c), base - 2 * L * C - C);
  EXPECT_EQ(param_tensors(c)[LN1W].count, L * C);
  c = g, c.tie_embeddings = false;
  EXPECT_EQ(num_parameters(c), base + Vp * C);
  EXPECT_EQ(num_parameters_unpadded(c), num_parameters_unpadded(g) + 50 * C);
  EXPECT_EQ(std::string(param_tensors(c)[kNumParamTensors - 1].name), "lm_head");
  EXPECT_TRUE(param_tensors(c)[LMHEAD].decay);
  c = g, c.qk_norm = c.relu2 = true, c.logit_softcap = 30; // no parameters
  EXPECT_EQ(num_parameters(c), base);
  EXPECT_FALSE(is_gpt2_architecture(c));
  c = g, c.zero_init_proj = true; // an initialisation: still GPT-2
  EXPECT_TRUE(is_gpt2_architecture(c));
  EXPECT_EQ(architecture_options(c, true), "zero_init_proj = True");
}

TEST(Arch, ZeroInitClearsTheProjectionsAndTheUntiedHeadOnly) {
  GPTConfig c = small();
  c.tie_embeddings = false;
  std::vector<float> a(num_parameters(c)), b(a.size());
  init_gpt_weights(c, a.data(), 5);
  c.zero_init_proj = true;
  init_gpt_weights(c, b.data(), 5);
  const auto t = param_tensors(c);
  size_t off = 0;
  for (int i = 0; i < kNumParamTensors; ++i) {
    const bool zeroed = i == ATTPROJW || i == FCPROJW || i == LMHEAD;
    size_t nonzero = 0;
    for (size_t k = 0; k < t[i].count; ++k)
      nonzero += a[off + k] != 0.0f;
    if (zeroed) {
      EXPECT_GT(nonzero, t[i].count / 2) << t[i].name << " is drawn without zero_init_proj";
      for (size_t k = 0; k < t[i].count; ++k)
        ASSERT_EQ(b[off + k], 0.0f) << t[i].name;
    } else {
      EXPECT_EQ(std::memcmp(a.data() + off, b.data() + off, t[i].count * sizeof(float)), 0)
          << t[i].name;
    }
    if (i == LMHEAD) { // padding rows never predicted: zero, as wte's
      for (size_t k = 50 * 16; k < t[i].count; ++k)
        ASSERT_EQ(a[off + k], 0.0f);
    }
    off += t[i].count;
  }
}

TEST(Arch, PlanHasTheOptionsBuffersAndTheModelAllocatesExactlyIt) {
  GPTConfig c = small();
  c.rotary = c.rmsnorm = c.qk_norm = c.relu2 = true, c.tie_embeddings = false;
  const MemoryPlan p = plan_memory(c, 3, 8, {.optimizer = false});
  EXPECT_EQ(p.find("wpe"), nullptr);
  EXPECT_EQ(p.find("ln1b"), nullptr);
  EXPECT_EQ(p.find("ln1_mean"), nullptr);
  EXPECT_EQ(p.find("lnf_mean"), nullptr);
  ASSERT_NE(p.find("lm_head"), nullptr);
  ASSERT_NE(p.find("grad.lm_head"), nullptr);
  ASSERT_NE(p.find("qk_rstd"), nullptr);
  EXPECT_EQ(p.find("qk_rstd")->shape, (std::vector<int64_t>{2, 3, 8, 4}));
  const size_t before = Arena::live_bytes();
  GPT m(c, 3, 8);
  EXPECT_EQ(Arena::live_bytes() - before, p.total_bytes());
  EXPECT_EQ(m.bytes(), p.total_bytes());
  const MemoryPlan cuda = plan_memory(
      c, 3, 8, {.backend = Backend::CUDA, .precision = Precision::BF16, .recompute = 3});
  EXPECT_EQ(cuda.find("qk_rstd")->shape[0], 1); // one layer's slot at whole-block recompute
}

} // namespace
