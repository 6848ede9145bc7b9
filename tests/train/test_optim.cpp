// nanoGPT's LR schedule: warmup, cosine, floor, and decay_lr off.
#include "optim/optim.h"

#include <cmath>
#include <gtest/gtest.h>

using namespace finegpt;

TEST(LrSchedule, MatchesNanoGptGetLr) {
  LrSchedule s{6e-4, 6e-5, 2000, 600000, true};
  EXPECT_DOUBLE_EQ(s.at(0), 6e-4 * 1.0 / 2001.0); // (it+1)/(warmup+1)
  EXPECT_DOUBLE_EQ(s.at(1999), 6e-4 * 2000.0 / 2001.0);
  EXPECT_DOUBLE_EQ(s.at(2000), 6e-4);                           // ratio 0: coeff 1
  EXPECT_NEAR(s.at(301000), 6e-5 + 0.5 * (6e-4 - 6e-5), 1e-15); // half way: coeff 0.5
  EXPECT_DOUBLE_EQ(s.at(600000), 6e-5);                         // ratio 1: coeff 0
  EXPECT_DOUBLE_EQ(s.at(600001), 6e-5);                         // past the decay: min_lr
  LrSchedule flat{1e-3, 1e-4, 100, 2000, false};
  EXPECT_DOUBLE_EQ(flat.at(0), 1e-3);
  EXPECT_DOUBLE_EQ(flat.at(5000), 1e-3);
}

TEST(AdamW, ClipsToTheGlobalNorm) {
  GPTConfig c;
  c.n_layer = 1, c.n_head = 2, c.n_embd = 8, c.vocab_size = 10, c.padded_vocab_size = 64;
  c.block_size = 4;
  GPT model(c, 1, 4);
  model.init_weights(1);
  for (size_t i = 0; i < model.num_params(); ++i)
    model.grads()[i] = 0.0f;
  model.grad(WPE)[0] = 3.0f, model.grad(LNFW)[1] = 4.0f; // norm 5
  std::vector<float> before(model.params(), model.params() + model.num_params());
  Optimizer opt(model, OptimConfig{0.9f, 0.95f, 1e-8f, 0.0f});
  EXPECT_FLOAT_EQ(opt.step(0.1f, 1.0f), 5.0f);
  // First Adam step: p -= lr * g / (|g| + eps) whatever the clip scale, so the clipped
  // parameters move by lr; the others do not move (no weight decay).
  EXPECT_NEAR(before[model.param_offset(WPE)] - model.param(WPE)[0], 0.1f, 1e-6);
  EXPECT_EQ(before[model.param_offset(QKVW)], model.param(QKVW)[0]);
  // Gradients are zeroed by the step.
  EXPECT_EQ(model.grad(WPE)[0], 0.0f);
}
