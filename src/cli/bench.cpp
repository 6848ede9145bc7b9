// finegpt bench: time full training steps (forward, backward, clip, AdamW) of a model shape on
// random tokens; one JSON line for scripts (bench/) and a human line.
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/threads.h"
#include "model/gpt.h"
#include "optim/optim.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace finegpt {

int cmd_bench(const Args &args) {
  Options o;
  if (!o.parse(args,
               {{"n_layer", "12", "layers"},
                {"n_head", "12", "heads"},
                {"n_embd", "768", "channels"},
                {"vocab_size", "50257", "vocabulary (padded to a multiple of 64)"},
                {"block_size", "1024", "position embeddings"},
                {"bias", "true", "biases in Linear and LayerNorm"},
                {"batch_size", "4", "B"},
                {"seq_len", "64", "T"},
                {"steps", "5", "timed steps (the median is reported)"},
                {"warmup", "1", "untimed steps first"},
                {"threads", "0", "CPU threads (0 = all cores)"}},
               "usage: finegpt bench [options]\n\nTimes training steps of a GPT shape "
               "(default: GPT-2 124M at B=4, T=64)."))
    return 0;
  GPTConfig c;
  c.n_layer = int(o.integer("n_layer"));
  c.n_head = int(o.integer("n_head"));
  c.n_embd = int(o.integer("n_embd"));
  c.vocab_size = int(o.integer("vocab_size"));
  c.padded_vocab_size = pad_vocab(c.vocab_size);
  c.block_size = int(o.integer("block_size"));
  c.bias = o.str("bias") == "true" || o.str("bias") == "True" || o.str("bias") == "1";
  const int B = int(o.integer("batch_size")), T = int(o.integer("seq_len"));
  const int steps = int(o.integer("steps")), warmup = int(o.integer("warmup"));
  FINEGPT_CHECK(steps > 0 && warmup >= 0, "--steps must be positive and --warmup >= 0");
  const int threads = set_threads(int(o.integer("threads")));
  GPT model(c, B, T);
  model.init_weights(1337);
  AdamW opt(model, AdamWConfig{});
  Rng rng(42);
  std::vector<int32_t> x(size_t(B) * T), y(x.size());
  std::vector<double> ms;
  for (int s = 0; s < warmup + steps; ++s) {
    for (auto &t : x)
      t = int32_t(rng.below(c.vocab_size));
    for (auto &t : y)
      t = int32_t(rng.below(c.vocab_size));
    auto t0 = std::chrono::steady_clock::now();
    model.forward_backward(x.data(), y.data(), B, T, 1.0f);
    opt.step(model, 1e-4f, 1.0f);
    auto t1 = std::chrono::steady_clock::now();
    if (s >= warmup) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted[sorted.size() / 2];
  std::printf("finegpt bench: %zu parameters, B=%d T=%d, %d threads: median step %.1f ms\n",
              num_parameters(c), B, T, threads, median);
  std::string list;
  for (double v : ms)
    list += (list.empty() ? "" : ", ") + std::to_string(v);
  std::printf("{\"impl\": \"finegpt\", \"threads\": %d, \"step_ms_median\": %.3f, \"step_ms\": "
              "[%s]}\n",
              threads, median, list.c_str());
  return 0;
}

} // namespace finegpt
