// The planner: FLOPs, the loss law's compute-optimal point, learning rates, the search's
// recommendations (they must fit) and the fixes for configurations that do not.
#include "core/error.h"
#include "plan/planner.h"

#include <cmath>
#include <gtest/gtest.h>

using namespace finegpt;

namespace {
GPTConfig gpt2_small() {
  GPTConfig m;
  m.n_layer = 12, m.n_head = 12, m.n_embd = 768, m.block_size = 1024;
  m.vocab_size = 50257, m.padded_vocab_size = 50304, m.bias = true;
  return m;
}
} // namespace

TEST(Planner, FlopsPerTokenIsNanoGptsEstimate) {
  // nanoGPT: N = parameters without wpe; 6N + 12 L H Q T with H Q = C.
  const double N = 124439808.0 - 1024.0 * 768.0;
  EXPECT_DOUBLE_EQ(flops_per_token(gpt2_small(), 1024, 0), 6 * N + 12.0 * 12 * 768 * 1024);
  EXPECT_DOUBLE_EQ(flops_per_token(gpt2_small(), 1024, 3),
                   (6 * N + 12.0 * 12 * 768 * 1024) * 4.0 / 3.0);
}

// The modern recipe's shapes: no wpe to leave out with rotary, an untied head counted, and
// Muon's Newton-Schulz per step: per layer, qkv (768 x 2304): 5 (4 768^2 2304 + 2 768^3), the
// projection (768^2): 5 (6 768^3), fc and its projection (768 x 3072): 5 (4 768^2 3072 + 2 768^3)
// each.
TEST(Planner, ModernRecipeFlops) {
  GPTConfig m = gpt2_small();
  m.rotary = true, m.tie_embeddings = false;
  const double N = 124439808.0 - 1024.0 * 768.0 + 50257.0 * 768.0; // no wpe, a second head
  EXPECT_DOUBLE_EQ(flops_per_token(m, 1024, 0), 6 * N + 12.0 * 12 * 768 * 1024);
  const double c = 768, per_layer = 5 * (4 * c * c * 3 * c + 2 * c * c * c) + 5 * 6 * c * c * c +
                                    2 * 5 * (4 * c * c * 4 * c + 2 * c * c * c);
  EXPECT_DOUBLE_EQ(muon_flops_per_step(m), 12 * per_layer);
  EXPECT_NEAR(muon_flops_per_step(m), 1.5e12, 0.1e12); // DESIGN.md's figure
  // In the search: the step's tokens share it, and the plan holds Muon's workspace.
  PlanSettings s;
  s.options = m, s.muon = true, s.recipe = "modern";
  const Device dev = device_from_gpu(find_gpu("RTX 4090"));
  bool fits = false;
  const Candidate with = evaluate(dev, s, m, 16, 32, 0, 0, &fits);
  s.muon = false;
  const Candidate without = evaluate(dev, s, m, 16, 32, 0, 0, &fits);
  EXPECT_DOUBLE_EQ(with.flops_per_token - without.flops_per_token,
                   muon_flops_per_step(m) / (16.0 * 32 * 1024));
  EXPECT_NEAR((with.plan_gib - without.plan_gib) * 1024 * 1024 * 1024, 2 * 10 * c * c, 1.0);
  // On 4 GPUs each runs every matrix's Newton-Schulz; under ZeRO-1 only its shard's.
  s.gpus = 4, s.muon = true;
  const Candidate four = evaluate(dev, s, m, 16, 8, 0, 0, &fits);
  const Candidate four_zero = evaluate(dev, s, m, 16, 8, 0, 1, &fits);
  s.muon = false;
  const Candidate four_adamw = evaluate(dev, s, m, 16, 8, 0, 0, &fits);
  EXPECT_DOUBLE_EQ(four.flops_per_token - four_adamw.flops_per_token,
                   muon_flops_per_step(m) / (16.0 * 8 * 1024));
  EXPECT_DOUBLE_EQ(four_zero.flops_per_token - four_adamw.flops_per_token,
                   muon_flops_per_step(m) / (16.0 * 8 * 1024 * 4));
  s.gpus = 1;
  s.muon = true;
  const std::vector<Candidate> best = search(dev, s, 1);
  EXPECT_FALSE(best[0].model.tie_embeddings);
  EXPECT_TRUE(best[0].model.rotary);
  const std::string cfg = config_for(best[0], s, dev.name);
  EXPECT_NE(cfg.find("recipe = 'modern'\n"), std::string::npos) << cfg;
}

TEST(Planner, LossLawIsComputeOptimalNearTwentyTokensPerParameter) {
  for (double C : {1e18, 1e20, 1e22}) {
    double best_n = 0, best = 1e9;
    for (double logn = 6; logn < 12; logn += 0.001) {
      const double n = std::pow(10.0, logn), l = chinchilla_loss(n, C / (6 * n));
      if (l < best) best = l, best_n = n;
    }
    const double ratio = C / (6 * best_n) / best_n;
    EXPECT_GT(ratio, 15.0) << C;
    EXPECT_LT(ratio, 30.0) << C;
  }
  EXPECT_LT(chinchilla_loss(2e8, 4e9), chinchilla_loss(1e8, 4e9)); // more parameters help
  EXPECT_LT(chinchilla_loss(1e8, 8e9), chinchilla_loss(1e8, 4e9)); // more tokens help
}

TEST(Planner, LearningRateFollowsGpt3Table) {
  EXPECT_DOUBLE_EQ(learning_rate_for(124e6), 6e-4);
  EXPECT_NEAR(learning_rate_for(350e6), 3e-4, 1e-12);
  EXPECT_NEAR(learning_rate_for(1.3e9), 2e-4, 1e-12);
  const double mid = learning_rate_for(500e6);
  EXPECT_LT(mid, 3e-4);
  EXPECT_GT(mid, 2.5e-4);
}

TEST(Planner, EveryCatalogGpuGetsRecommendationsThatFit) {
  for (const GpuSpec &g : gpu_catalog()) {
    Device dev = device_from_gpu(g);
    PlanSettings s;
    auto cs = search(dev, s, 3);
    ASSERT_FALSE(cs.empty()) << g.name;
    for (const Candidate &c : cs) {
      bool fits = false;
      Candidate again =
          evaluate(dev, s, c.model, c.micro_batch, c.accum, c.recompute, c.zero_stage, &fits);
      EXPECT_TRUE(fits) << g.name;
      EXPECT_LE(again.need_gib, dev.usable_gib) << g.name;
      EXPECT_EQ(long(c.micro_batch) * c.accum * s.block_size, s.tokens_per_step) << g.name;
      EXPECT_EQ(c.model.n_embd % 64, 0);
      EXPECT_EQ(c.model.n_embd / c.model.n_head, 64);
    }
    for (size_t i = 1; i < cs.size(); ++i)
      EXPECT_LE(cs[i - 1].expected_loss, cs[i].expected_loss);
  }
}

TEST(Planner, BiggerCardsAndLongerBudgetsGetBiggerModels) {
  PlanSettings s;
  const auto small = search(device_from_gpu(find_gpu("RTX 3060")), s, 1)[0];
  const auto big = search(device_from_gpu(find_gpu("H100 SXM")), s, 1)[0];
  EXPECT_LT(small.params, big.params);
  s.hours = 1;
  const auto hour = search(device_from_gpu(find_gpu("RTX 4090")), s, 1)[0];
  s.hours = 100;
  const auto week = search(device_from_gpu(find_gpu("RTX 4090")), s, 1)[0];
  EXPECT_LT(hour.params, week.params);
}

TEST(Planner, FixesKeepTokensPerStepAndFit) {
  // The guide's 24 GB configuration (10/10/640, batch 32 x 16) on a 12 GB card.
  GPTConfig m = gpt2_small();
  m.n_layer = 10, m.n_head = 10, m.n_embd = 640, m.bias = false;
  Device dev = device_from_gpu(find_gpu("RTX 3060"));
  PlanSettings s;
  bool fits = true;
  Candidate c = evaluate(dev, s, m, 32, 16, 0, 0, &fits);
  EXPECT_FALSE(fits);
  auto fx = fixes(dev, s, c);
  ASSERT_FALSE(fx.empty());
  for (const Fix &f : fx) {
    EXPECT_LE(f.result.need_gib, dev.usable_gib) << f.what;
    // Tokens per step over all GPUs are unchanged.
    const int gpus = f.result.zero_stage ? int(std::lround(double(c.micro_batch) * c.accum /
                                                           (f.result.micro_batch * f.result.accum)))
                                         : 1;
    EXPECT_EQ(long(f.result.micro_batch) * f.result.accum * gpus, 32L * 16) << f.what;
  }
}

TEST(Planner, BadBudgetsAndTooSmallCards) {
  PlanSettings s;
  s.tokens = 1000; // less than one step of 524288
  EXPECT_THROW(search(device_from_gpu(find_gpu("RTX 4090")), s), Error);
  EXPECT_THROW(search(device_from_vram(1.0), PlanSettings{}), Error);
  EXPECT_THROW(device_from_vram(0.0), Error);
}

// Offload's throughput model, by hand: 1e9 parameters over a 25 GB/s link (2 bytes down, 2 up)
// and 28 bytes through a 25 GB/s host: 0.16 + 1.12 s per step. At 524,288 tokens per step and
// 10,000 tokens/s of compute (52.4288 s), offload gives 524288 / 53.7088 tokens/s.
TEST(Planner, OffloadCostsItsTransfersAndTheHostUpdatePerStep) {
  EXPECT_NEAR(offload_seconds(1e9, 25.0, 25.0), 1.28, 1e-12);
  EXPECT_DOUBLE_EQ(pcie_gbs_of("RTX 4090"), 25.2);
  EXPECT_DOUBLE_EQ(pcie_gbs_of("H200"), 50.4);
  EXPECT_DOUBLE_EQ(pcie_gbs_of("T4"), 12.6);
  // GPT-2 XL on a 24 GB RTX 4090: not the usual way (16 bytes per parameter
  // are 23.2 GiB before activations), yes with offload (4 bytes), and no faster than compute.
  const Device dev = device_from_gpu(find_gpu("RTX 4090"));
  PlanSettings s;
  Candidate c;
  GPTConfig xl = gpt2_config(kGpt2Sizes[3], 1024);
  EXPECT_EQ(xl.n_layer, 48);
  EXPECT_FALSE(best_run(dev, s, xl, false, &c));
  ASSERT_TRUE(best_run(dev, s, xl, true, &c));
  EXPECT_TRUE(c.offload);
  EXPECT_NEAR(c.host_gib, 14.0 * 1557686400.0 / (1 << 30), 1e-9); // padded vocabulary
  const double want = 524288.0 / (524288.0 / c.compute_tokens_per_s + 4.0 * 1557686400.0 / 25.2e9 +
                                  28.0 * 1557686400.0 / 25e9);
  EXPECT_NEAR(c.tokens_per_s, want, 1e-6 * want);
  EXPECT_LT(c.tokens_per_s, c.compute_tokens_per_s);
  // The largest GPT-2 that trains on it: 774M without, 1558M with.
  EXPECT_EQ(largest_gpt2(dev, s, false, &c), 2);
  EXPECT_EQ(largest_gpt2(dev, s, true, &c), 3);
  // A config that does not fit lists offload among its fixes.
  bool fits = true;
  const Candidate plain = evaluate(dev, s, xl, 8, 64, 3, 0, &fits);
  EXPECT_FALSE(fits);
  bool listed = false;
  for (const Fix &f : fixes(dev, s, plain))
    listed |= f.what.rfind("offload = 'optimizer'", 0) == 0 && f.result.offload;
  EXPECT_TRUE(listed);
}
