// The planner (see planner.h).
#include "plan/planner.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <tuple>

namespace finegpt {

namespace {
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
constexpr double kDefaultHours = 24.0;
constexpr double kWarmupTokens = 375e6; // GPT-3's warmup (Brown et al. 2020)
constexpr double kMargin = 0.03;        // recommendations leave 3% of the card free (fragmentation)
} // namespace

double pcie_gbs_of(const std::string &name) {
  for (const char *gen5 : {"RTX 5090", "H100 PCIe", "H100 SXM", "H200", "B200"})
    if (name == gen5) return 50.4;
  for (const char *gen3 : {"T4", "V100 16GB", "V100 32GB", "RTX 4060 Ti 8GB", "RTX 4060 Ti 16GB"})
    if (name == gen3) return 12.6;
  return 25.2;
}

double offload_seconds(double params_per_gpu, double pcie_gbs, double host_gbs) {
  return 2.0 * 2.0 * params_per_gpu / (pcie_gbs * 1e9) +
         kOffloadHostBytes * params_per_gpu / (host_gbs * 1e9);
}

Device device_from_gpu(const GpuSpec &g) {
  return Device{g.name, g.usable_gib, g.bf16 ? g.bf16_tflops : g.fp32_tflops,
                g.bf16, true,         pcie_gbs_of(g.name)};
}

Device device_from_vram(double nominal_gib) {
  FINEGPT_CHECK(nominal_gib > 0, "--vram must be positive");
  char name[64];
  std::snprintf(name, sizeof name, "%.4g GiB GPU", nominal_gib);
  return Device{name, nominal_gib * 0.98, 0.0, true, false};
}

PlanOptions plan_options(const Device &dev, int recompute, int zero_stage, int gpus, bool offload,
                         bool muon) {
  PlanOptions o;
  o.offload = offload;
  o.muon = muon;
  o.backend = Backend::CUDA;
  o.precision = dev.bf16 ? Precision::BF16 : Precision::FP32;
  o.recompute = recompute;
  o.zero_stage = zero_stage;
  o.world = gpus;
  return o;
}

double flops_per_token(const GPTConfig &m, int T, int recompute) {
  const double N = double(num_parameters_unpadded(m)) - double(param_tensors(m)[WPE].count);
  const double f = 6.0 * N + 12.0 * m.n_layer * double(T) * m.n_embd;
  return recompute >= 3 ? f * 4.0 / 3.0 : f;
}

double muon_flops_per_step(const GPTConfig &m) {
  double f = 0;
  const auto tensors = param_tensors(m);
  for (int i = 0; i < kNumParamTensors; ++i)
    if (muon_matrix(i)) {
      const double r = double(tensors[i].shape[1]), c = double(tensors[i].shape[2]);
      const double lo = std::min(r, c), hi = std::max(r, c);
      f += double(tensors[i].shape[0]) * 5.0 * (4.0 * lo * lo * hi + 2.0 * lo * lo * lo);
    }
  return f;
}

double chinchilla_loss(double params, double tokens) {
  return 1.8172 + 482.01 / std::pow(params, 0.3478) + 2085.43 / std::pow(tokens, 0.3658);
}

double learning_rate_for(double params) {
  static const double table[][2] = {{125e6, 6e-4}, {350e6, 3e-4},   {760e6, 2.5e-4},
                                    {1.3e9, 2e-4}, {2.7e9, 1.6e-4}, {6.7e9, 1.2e-4}};
  const int n = sizeof table / sizeof table[0];
  if (params <= table[0][0]) return table[0][1];
  if (params >= table[n - 1][0]) return table[n - 1][1];
  for (int i = 1; i < n; ++i)
    if (params <= table[i][0]) {
      double t = std::log(params / table[i - 1][0]) / std::log(table[i][0] / table[i - 1][0]);
      return std::exp(std::log(table[i - 1][1]) + t * std::log(table[i][1] / table[i - 1][1]));
    }
  return table[n - 1][1];
}

Candidate evaluate(const Device &dev, const PlanSettings &s, const GPTConfig &m, int micro_batch,
                   int accum, int recompute, int zero_stage, bool *fits, bool offload) {
  Candidate c;
  c.offload = offload;
  c.model = m;
  c.micro_batch = micro_batch, c.accum = accum, c.recompute = recompute;
  c.zero_stage = zero_stage;
  c.params = num_parameters_unpadded(m);
  c.bf16 = dev.bf16;
  MemoryPlan plan = plan_memory(m, micro_batch, s.block_size,
                                plan_options(dev, recompute, zero_stage, s.gpus, offload, s.muon));
  c.plan_gib = double(plan.total_bytes()) / kGiB;
  c.host_gib = double(plan.host_bytes()) / kGiB;
  c.need_gib = c.plan_gib + s.overhead_gib;
  c.headroom_gib = dev.usable_gib - c.need_gib;
  if (fits) *fits = c.headroom_gib >= 0;
  c.flops_per_token = flops_per_token(m, s.block_size, recompute);
  // Muon's Newton-Schulz, once per optimizer step, its FLOPs spread over the step's tokens: on
  // every GPU for every matrix, or under ZeRO-1 for the matrices of each GPU's shard (once in
  // all, leaving out the few that straddle a shard boundary and run on two).
  if (s.muon)
    c.flops_per_token += muon_flops_per_step(m) * (zero_stage == 1 ? 1 : s.gpus) /
                         (double(micro_batch) * accum * s.block_size * s.gpus);
  if (dev.known_peak) c.tokens_per_s = s.gpus * dev.peak_tflops * 1e12 * s.mfu / c.flops_per_token;
  c.compute_tokens_per_s = c.tokens_per_s;
  if (offload) {
    const double shard = double(num_parameters(m)) / (zero_stage == 1 ? s.gpus : 1);
    c.offload_s = offload_seconds(shard, dev.pcie_gbs, s.host_gbs);
    const double step_tokens = double(micro_batch) * accum * s.block_size * s.gpus;
    if (c.tokens_per_s > 0)
      c.tokens_per_s = step_tokens / (step_tokens / c.tokens_per_s + c.offload_s);
  }
  if (s.tokens > 0) {
    c.train_tokens = s.tokens;
  } else if (dev.known_peak) {
    c.train_tokens = c.tokens_per_s * 3600.0 * (s.hours > 0 ? s.hours : kDefaultHours);
  } else {
    c.train_tokens = 20.0 * double(c.params); // no speed known: Chinchilla's 20 per parameter
  }
  const double step = double(micro_batch) * accum * s.block_size * s.gpus;
  c.max_iters = std::max(1L, long(std::llround(c.train_tokens / step)));
  c.train_tokens = double(c.max_iters) * step;
  c.hours = c.tokens_per_s > 0 ? c.train_tokens / c.tokens_per_s / 3600.0 : 0.0;
  c.expected_loss = chinchilla_loss(double(c.params), c.train_tokens);
  c.learning_rate = learning_rate_for(double(c.params));
  c.min_lr = c.learning_rate / 10.0;
  c.warmup_iters = std::min(long(std::llround(kWarmupTokens / step)), c.max_iters / 10);
  return c;
}

namespace {

GPTConfig shape(int L, int C, const PlanSettings &s) {
  GPTConfig m = s.options; // the recipe's architecture options
  m.n_layer = L, m.n_embd = C, m.n_head = C / 64, m.block_size = s.block_size;
  m.vocab_size = s.vocab_size, m.padded_vocab_size = pad_vocab(s.vocab_size), m.bias = false;
  return m;
}

} // namespace

bool best_run(const Device &dev, const PlanSettings &s, const GPTConfig &m, bool allow_offload,
              Candidate *out) {
  bool found = false;
  // Offload keeps fp32 master weights: bf16 mixed precision only.
  for (int off = 0; off <= (allow_offload && dev.bf16 ? 1 : 0) && !found; ++off)
    for (int zero = 0; zero <= (s.gpus > 1 ? 1 : 0); ++zero)
      for (int r = 0; r <= 3; ++r)
        for (int B = 64; B >= 1; B /= 2) {
          const long per = long(B) * s.block_size * s.gpus;
          if (s.tokens_per_step % per != 0) continue;
          Candidate c =
              evaluate(dev, s, m, B, int(s.tokens_per_step / per), r, zero, nullptr, off == 1);
          if (c.headroom_gib < kMargin * dev.usable_gib) continue;
          auto key = [](const Candidate &x) {
            return std::make_tuple(x.tokens_per_s, x.micro_batch, -x.recompute, -x.zero_stage);
          };
          if (!found || key(c) > key(*out)) *out = c, found = true;
          break; // smaller micro-batches at this level are no better
        }
  return found;
}

const Gpt2Size kGpt2Sizes[4] = {{"GPT-2 124M", 12, 12, 768},
                                {"GPT-2 350M", 24, 16, 1024},
                                {"GPT-2 774M", 36, 20, 1280},
                                {"GPT-2 1558M", 48, 25, 1600}};

GPTConfig gpt2_config(const Gpt2Size &g, int block_size) {
  GPTConfig m;
  m.n_layer = g.L, m.n_head = g.NH, m.n_embd = g.C, m.block_size = block_size;
  m.vocab_size = 50257, m.padded_vocab_size = pad_vocab(50257), m.bias = true;
  return m;
}

int largest_gpt2(const Device &dev, const PlanSettings &settings, bool allow_offload,
                 Candidate *out) {
  PlanSettings s = settings; // GPT-2 trains with AdamW
  s.muon = false;
  for (int i = 3; i >= 0; --i)
    if (best_run(dev, s, gpt2_config(kGpt2Sizes[i], s.block_size), allow_offload, out)) return i;
  return -1;
}

std::vector<Candidate> search(const Device &dev, const PlanSettings &s, int top) {
  FINEGPT_CHECK(s.gpus >= 1, "--gpus must be at least 1");
  FINEGPT_CHECK(s.tokens >= 0 && s.hours >= 0, "the budget must be positive");
  FINEGPT_CHECK(s.tokens == 0 || s.tokens >= double(s.tokens_per_step), "--tokens ", s.tokens,
                " is less than one optimizer step (", s.tokens_per_step, " tokens)");
  FINEGPT_CHECK(s.tokens_per_step % (long(s.block_size) * s.gpus) == 0, "tokens per step (",
                s.tokens_per_step, ") must be a multiple of block_size x gpus (",
                long(s.block_size) * s.gpus, ")");
  std::vector<Candidate> all;
  for (int C = 256; C <= 2048; C += 64)
    for (int L = 2; L <= 64; ++L) {
      if (C < 32 * L || C > 96 * L) continue; // around GPT-2's width-to-depth range (33..64)
      Candidate c;
      if (!best_run(dev, s, shape(L, C, s), s.offload, &c)) continue;
      // A token budget is data: past 20 tokens per parameter is not compute-optimal.
      if (s.tokens > 0 && double(c.params) * 20.0 > s.tokens) continue;
      all.push_back(c);
    }
  if (all.empty()) {
    if (s.tokens > 0)
      fail("no model of at least 256 channels is compute-optimal for ", s.tokens,
           " tokens and fits ", dev.name, " (", dev.usable_gib, " GiB usable)");
    fail(dev.name, ": ", dev.usable_gib, " GiB usable is too small for any GPT of 2 layers and ",
         "256 channels at block_size ", s.block_size, " (even with recompute, micro-batch 1)");
  }
  std::sort(all.begin(), all.end(), [](const Candidate &a, const Candidate &b) {
    return a.expected_loss < b.expected_loss;
  });
  if (int(all.size()) > top) all.resize(top);
  return all;
}

std::vector<Fix> fixes(const Device &dev, const PlanSettings &s, const Candidate &c) {
  std::vector<Fix> out;
  auto attempt = [&](const std::string &what, int B, int accum, int r, int zero, int gpus) {
    PlanSettings t = s;
    t.gpus = gpus;
    bool fits = false;
    Candidate x = evaluate(dev, t, c.model, B, accum, r, zero, &fits);
    if (fits) out.push_back({what, x});
    return fits;
  };
  for (int r = std::max(1, c.recompute + 1); r <= 2; ++r)
    if (attempt(cat("recompute = ", r, r == 1 ? " (GELU)" : " (GELU + LayerNorm)"), c.micro_batch,
                c.accum, r, c.zero_stage, s.gpus))
      break;
  for (int B = c.micro_batch / 2; B >= 1; B /= 2)
    if (c.micro_batch % B == 0 &&
        attempt(cat("batch_size = ", B,
                    ", gradient_accumulation_steps = ", c.accum * (c.micro_batch / B)),
                B, c.accum * (c.micro_batch / B), c.recompute, c.zero_stage, s.gpus))
      break;
  if (c.recompute < 3)
    attempt("recompute = 3 (whole block; about a third more compute)", c.micro_batch, c.accum, 3,
            c.zero_stage, s.gpus);
  if (!c.offload && dev.bf16) {
    PlanSettings t = s;
    bool fits = false;
    Candidate x =
        evaluate(dev, t, c.model, c.micro_batch, c.accum, c.recompute, c.zero_stage, &fits, true);
    for (int r = c.recompute + 1; !fits && r <= 3; ++r)
      x = evaluate(dev, t, c.model, c.micro_batch, c.accum, r, c.zero_stage, &fits, true);
    if (fits) {
      char what[160];
      std::snprintf(what, sizeof what,
                    "offload = 'optimizer'%s (%.1f GiB pinned host memory, %.0f%% of the tokens/s)",
                    x.recompute != c.recompute ? cat(", recompute = ", x.recompute).c_str() : "",
                    x.host_gib, 100.0 * x.tokens_per_s / std::max(1.0, x.compute_tokens_per_s));
      out.push_back({what, x});
    }
  }
  for (int g = s.gpus * 2; g <= s.gpus * 64; g *= 2)
    if ((c.accum * s.gpus) % g == 0 &&
        attempt(cat("zero_stage = 1 over ", g,
                    " GPUs (gradient_accumulation_steps = ", c.accum * s.gpus, " in total)"),
                c.micro_batch, c.accum * s.gpus / g, c.recompute, 1, g))
      break;
  return out;
}

std::string config_for(const Candidate &c, const PlanSettings &s, const std::string &gpu_name) {
  const GPTConfig &m = c.model;
  char buf[2048];
  std::snprintf(
      buf, sizeof buf,
      "# finegpt plan for %s x %d: %.1fM parameters, %.3g tokens (%.1f per parameter),\n"
      "# about %.1f hours at %.0f tokens/s (MFU %.2f); memory %.2f GiB of %.2f GiB per GPU.\n"
      "out_dir = 'out-fineweb-%dL-%dC'\n"
      "%s"
      "dataset = 'fineweb'\n"
      "eval_interval = 1000\neval_iters = 100\nlog_interval = 10\n"
      "always_save_checkpoint = True\n"
      "gradient_accumulation_steps = %d\n"
      "batch_size = %d\n"
      "block_size = %d\n"
      "n_layer = %d\nn_head = %d\nn_embd = %d\n"
      "dropout = 0.0\nbias = False\n"
      "learning_rate = %.3g\nmin_lr = %.3g\n"
      "max_iters = %ld\nlr_decay_iters = %ld\nwarmup_iters = %ld\n"
      "weight_decay = 0.1\nbeta1 = 0.9\nbeta2 = 0.95\ngrad_clip = 1.0\n"
      "device = 'cuda'\ndtype = '%s'\n"
      "recompute = %d\nzero_stage = %d\n%s",
      gpu_name.c_str(), s.gpus, c.params / 1e6, c.train_tokens, c.train_tokens / c.params, c.hours,
      c.tokens_per_s, s.mfu, c.need_gib, c.need_gib + c.headroom_gib, m.n_layer, m.n_embd,
      s.recipe == "nanogpt" ? "" : cat("recipe = '", s.recipe, "'\n").c_str(), c.accum,
      c.micro_batch, m.block_size, m.n_layer, m.n_head, m.n_embd, c.learning_rate, c.min_lr,
      c.max_iters, c.max_iters, c.warmup_iters, c.bf16 ? "bfloat16" : "float32", c.recompute,
      c.zero_stage, c.offload ? "offload = 'optimizer'\n" : "");
  return buf;
}

} // namespace finegpt
