// finegpt plan: the best GPT for a GPU and a budget, the guide's table checked, and whether a
// config fits (with the smallest change that makes it fit).
#include "backend/cuda_ops.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "config/train_config.h"
#include "core/error.h"
#include "core/file.h"
#include "plan/planner.h"
#include "train/trainer.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace finegpt {

namespace {

// "10B", "2.5e9", "500M", "1T" -> tokens.
double parse_count(const std::string &flag, const std::string &text) {
  char *end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  std::string unit = end ? end : "";
  double mult = unit.empty()                 ? 1
                : unit == "K" || unit == "k" ? 1e3
                : unit == "M"                ? 1e6
                : unit == "B" || unit == "G" ? 1e9
                : unit == "T"                ? 1e12
                                             : 0;
  if (end == text.c_str() || mult == 0 || !(v > 0) || !std::isfinite(v * mult))
    fail(flag, ": expected a positive count like 10B, 500M or 2.5e9, got '", text, "'");
  return v * mult;
}

void print_header(const Device &dev, const PlanSettings &s) {
  std::printf("%s: %.2f GiB usable per GPU", dev.name.c_str(), dev.usable_gib);
  if (dev.known_peak)
    std::printf(", %.1f TFLOP/s dense %s", dev.peak_tflops, dev.bf16 ? "bf16" : "fp32");
  std::printf(", %d GPU%s, block_size %d, %ld tokens per step, recipe %s\n", s.gpus,
              s.gpus > 1 ? "s" : "", s.block_size, s.tokens_per_step, s.recipe.c_str());
  if (s.recipe == "modern")
    std::printf("recipe modern: rotary, RMSNorm, QK-norm, ReLU^2, untied head, zero-init, "
                "logit_softcap 15, Muon (its Newton-Schulz FLOPs counted per step, its workspace "
                "in the memory plan); the expected loss is still Chinchilla's law for GPT-2 and "
                "AdamW: the recipe's gain is measured in bench/RESULTS.md, not assumed here\n");
  if (s.tokens > 0)
    std::printf("budget: %.3g tokens (models up to tokens/20 parameters: compute-optimal)\n",
                s.tokens);
  else if (dev.known_peak)
    std::printf("budget: %.3g hours at MFU %.2f (default 0.40: llm.c reaches ~0.5 on A100/H100 "
                "for GPT-2 124M)\n",
                s.hours > 0 ? s.hours : 24.0, s.mfu);
  else
    std::printf("budget: no throughput known for a bare memory size: 20 tokens per parameter\n");
  std::printf("memory = the plan (parameters, gradients, AdamW, activations, workspaces) + "
              "%.2f GiB fixed (CUDA context)\n",
              s.overhead_gib);
  if (dev.known_peak && !dev.bf16)
    std::printf("note: the %s has no bfloat16 tensor cores (compute capability below 8.0) and "
                "finegpt's CUDA engine trains in bfloat16 only: train stops with an error on this "
                "card for now. The plan below is float32 training's.\n",
                dev.name.c_str());
}

void print_table(const std::vector<Candidate> &cs) {
  std::printf("  #  layers heads  embd   params  micro x accum  recomp zero  memory GiB  "
              "headroom  tokens/s    tokens  tok/param   hours  loss*\n");
  int i = 0;
  for (const Candidate &c : cs)
    std::printf("%3d  %6d %5d %5d  %6.1fM  %5d x %-5d  %6d %4d  %10.2f  %8.2f  %8.0f  %8.3g  "
                "%9.1f  %6.1f  %5.3f%s\n",
                ++i, c.model.n_layer, c.model.n_head, c.model.n_embd, c.params / 1e6, c.micro_batch,
                c.accum, c.recompute, c.zero_stage, c.need_gib, c.headroom_gib, c.tokens_per_s,
                c.train_tokens, c.train_tokens / c.params, c.hours, c.expected_loss,
                c.offload ? cat("  offload (", int(c.host_gib + 0.5), " GiB host)").c_str() : "");
  std::printf("  * Chinchilla's L(N, D) = 1.8172 + 482.01/N^0.3478 + 2085.43/D^0.3658 (Besiroglu "
              "et al. 2024 refit; compute-optimal at ~20 tokens per parameter): a ranking, not a "
              "FineWeb loss.\n");
}

GPTConfig model_of(const TrainConfig &cfg) {
  GPTConfig m;
  m.n_layer = int(cfg.n_layer), m.n_head = int(cfg.n_head), m.n_embd = int(cfg.n_embd);
  m.block_size = int(cfg.block_size), m.bias = cfg.bias;
  m.vocab_size = cfg.vocab_size ? int(cfg.vocab_size) : 50257;
  m.padded_vocab_size = pad_vocab(m.vocab_size);
  set_architecture(m, cfg);
  return m;
}

// What optimizer offload changes on `dev`: the largest GPT-2 that trains without and with it, and
// what it costs in tokens/s under the stated throughput model.
void print_offload(const Device &dev, const PlanSettings &s) {
  Candidate plain, off;
  const int a = largest_gpt2(dev, s, false, &plain), b = largest_gpt2(dev, s, true, &off);
  std::printf("offload = 'optimizer' (fp32 master weights and AdamW moments in pinned host "
              "memory, AdamW on the CPU): the GPU keeps 4 bytes per parameter instead of 16.\n");
  std::printf("  largest GPT-2 at %ld tokens per step: without offload %s", s.tokens_per_step,
              a < 0 ? "none" : kGpt2Sizes[a].name);
  if (a >= 0)
    std::printf(" (batch %d x %d, recompute %d, %.2f GiB, %.0f tokens/s)", plain.micro_batch,
                plain.accum, plain.recompute, plain.need_gib, plain.tokens_per_s);
  std::printf("; with offload %s", b < 0 ? "none" : kGpt2Sizes[b].name);
  if (b >= 0 && off.offload)
    std::printf(" (batch %d x %d, recompute %d, %.2f GiB on the GPU + %.1f GiB pinned host "
                "memory, %.0f tokens/s: %.1f%% of its %.0f without the offload's cost)",
                off.micro_batch, off.accum, off.recompute, off.need_gib, off.host_gib,
                off.tokens_per_s, 100.0 * off.tokens_per_s / off.compute_tokens_per_s,
                off.compute_tokens_per_s);
  std::printf("\n");
  if (b > a)
    std::printf("  offload makes %s fit %s.\n", kGpt2Sizes[b].name, dev.name.c_str());
  else
    std::printf("  offload makes no larger GPT-2 fit %s.\n", dev.name.c_str());
  std::printf(
      "  throughput model: per optimizer step, added to its compute: 2 x 2 bytes/param over "
      "the host link at %.1f GB/s (PCIe, %s) + AdamW's %.0f bytes/param over host memory "
      "at %.1f GB/s (--host_bw; bench/host_adamw_bench measures a machine's)\n",
      dev.pcie_gbs, "80% of the x16 nominal rate; --pcie", kOffloadHostBytes, s.host_gbs);
}

// The guide's per-VRAM table (what our users start from) beside finegpt's recommendation.
struct GuideRow {
  int vram;
  const char *card; // a catalog card of that size, for throughput
  int L, NH, C, B, accum;
  const char *claimed;
};
const GuideRow kGuide[] = {{80, "A100 80GB", 12, 12, 768, 64, 8, "350M"},
                           {48, "RTX A6000", 12, 12, 672, 32, 16, "not stated"},
                           {24, "RTX 4090", 10, 10, 640, 32, 16, "160M"},
                           {16, "RTX 4080", 8, 8, 512, 32, 12, "not stated"},
                           {12, "RTX 3060", 6, 6, 384, 32, 16, "not stated"}};

int run_table(PlanSettings s) {
  for (const GuideRow &g : kGuide) {
    Device dev = device_from_gpu(find_gpu(g.card));
    std::printf("== %d GB (%s) ==\n", g.vram, dev.name.c_str());
    GPTConfig m;
    m.n_layer = g.L, m.n_head = g.NH, m.n_embd = g.C, m.block_size = s.block_size;
    m.vocab_size = s.vocab_size, m.padded_vocab_size = pad_vocab(s.vocab_size), m.bias = false;
    PlanSettings gs = s;
    gs.tokens_per_step = long(g.B) * g.accum * s.block_size;
    bool fits = false;
    Candidate c = evaluate(dev, gs, m, g.B, g.accum, 0, 0, &fits);
    const double used = c.need_gib / dev.usable_gib;
    std::printf("guide:   %d layers, %d heads, %d channels, batch %d x %d: claimed %s, true "
                "%.1fM parameters; needs %.2f GiB of %.2f: %s\n",
                g.L, g.NH, g.C, g.B, g.accum, g.claimed, c.params / 1e6, c.need_gib, dev.usable_gib,
                !fits        ? "DOES NOT FIT"
                : used < 0.5 ? "fits but wastes the card (under half used)"
                             : "fits");
    auto best = search(dev, s, 1);
    const Candidate &b = best[0];
    std::printf("finegpt: %d layers, %d heads, %d channels, batch %d x %d, recompute %d: %.1fM "
                "parameters; needs %.2f GiB; %.0f tokens/s; %.3g tokens in %.3g h; loss* %.3f "
                "(guide's shape: %.3f)\n",
                b.model.n_layer, b.model.n_head, b.model.n_embd, b.micro_batch, b.accum,
                b.recompute, b.params / 1e6, b.need_gib, b.tokens_per_s, b.train_tokens, b.hours,
                b.expected_loss, c.expected_loss);
  }
  std::printf("* Chinchilla's L(N, D) over the same %.3g-hour budget; a ranking, not a FineWeb "
              "loss.\n",
              s.hours > 0 ? s.hours : 24.0);
  std::printf("\nlargest GPT-2 that trains (%ld tokens per step, T=%d), without and with offload "
              "= 'optimizer' (PCIe at 80%% of x16 nominal; host AdamW at %.0f GB/s):\n",
              s.tokens_per_step, s.block_size, s.host_gbs);
  std::printf("  %-4s %-14s %-12s %-12s %12s %10s %10s\n", "GB", "card", "plain", "offload",
              "GPU GiB", "host GiB", "tokens/s");
  for (const GuideRow &g : kGuide) {
    Device dev = device_from_gpu(find_gpu(g.card));
    Candidate plain, off;
    const int a = largest_gpt2(dev, s, false, &plain), b = largest_gpt2(dev, s, true, &off);
    std::printf("  %-4d %-14s %-12s %-12s %12.2f %10.1f %10.0f\n", g.vram, dev.name.c_str(),
                a < 0 ? "none" : kGpt2Sizes[a].name + 6, b < 0 ? "none" : kGpt2Sizes[b].name + 6,
                b < 0 ? 0.0 : off.need_gib, b < 0 ? 0.0 : off.host_gib,
                b < 0 ? 0.0 : off.tokens_per_s);
  }
  return 0;
}

int run_check(const std::string &config, const Device &dev, PlanSettings s) {
  std::vector<std::string> notes;
  TrainConfig cfg = load_train_config({config}, &notes);
  validate(cfg);
  GPTConfig m = model_of(cfg);
  s.block_size = int(cfg.block_size);
  const int accum = int(cfg.gradient_accumulation_steps);
  FINEGPT_CHECK(accum % s.gpus == 0, "gradient_accumulation_steps (", accum,
                ") must be divisible by --gpus (", s.gpus, ")");
  const bool offload = cfg.offload == "optimizer";
  s.muon = cfg.optimizer == "muon";
  int B = int(cfg.batch_size);
  if (B == 0) { // 'auto': the largest power of two that fits
    for (B = 64; B > 1; B /= 2) {
      bool fits = false;
      evaluate(dev, s, m, B, accum / s.gpus, int(cfg.recompute), int(cfg.zero_stage), &fits,
               offload);
      if (fits) break;
    }
  }
  bool fits = false;
  Candidate c = evaluate(dev, s, m, B, accum / s.gpus, int(cfg.recompute), int(cfg.zero_stage),
                         &fits, offload);
  std::printf("%s: %d layers, %d heads, %d channels (%.1fM parameters), batch %d x %d, "
              "recompute %ld, zero_stage %ld%s\n",
              config.c_str(), m.n_layer, m.n_head, m.n_embd, c.params / 1e6, B, accum,
              cfg.recompute, cfg.zero_stage, offload ? ", offload = 'optimizer'" : "");
  if (fits) {
    std::printf("fits %s: needs %.2f GiB of %.2f GiB (%.2f GiB headroom, %.0f%%)\n",
                dev.name.c_str(), c.need_gib, dev.usable_gib, c.headroom_gib,
                100.0 * c.headroom_gib / dev.usable_gib);
    if (offload)
      std::printf("offload: %.2f GiB of pinned host memory per GPU; adds %.3f s per optimizer "
                  "step (%.0f tokens/s against %.0f without it)\n",
                  c.host_gib, c.offload_s, c.tokens_per_s, c.compute_tokens_per_s);
    return 0;
  }
  std::printf("does not fit %s: needs %.2f GiB of %.2f GiB (%.2f GiB over)\n", dev.name.c_str(),
              c.need_gib, dev.usable_gib, -c.headroom_gib);
  auto fx = fixes(dev, s, c);
  if (fx.empty()) {
    std::printf("no change of micro-batch, recompute or ZeRO keeps these tokens per step and "
                "fits: choose a smaller model (finegpt plan --gpu ...)\n");
    return 1;
  }
  std::printf("changes that fit, same tokens per step (the first is the smallest):\n");
  for (const Fix &f : fx)
    std::printf("  %-62s needs %.2f GiB, %.2f GiB headroom\n", f.what.c_str(), f.result.need_gib,
                f.result.headroom_gib);
  return 1;
}

// The CUDA device in this machine: memory from the driver, throughput from the catalog when the
// driver's name is in it.
Device this_machines_gpu() {
  cuda::DeviceInfo info;
  if (!cuda::device_info(0, &info))
    fail("no CUDA device here (", cuda::device_summary(),
         "): give --gpu NAME (see finegpt plan "
         "--list) or --vram SIZE");
  Device dev;
  try {
    dev = device_from_gpu(find_gpu(info.name));
  } catch (const Error &) { // not in the catalog: memory only
    dev = device_from_vram(double(info.total_bytes) / (1024.0 * 1024.0 * 1024.0) / 0.98);
  }
  dev.name = info.name + " (this machine)";
  dev.usable_gib = double(info.total_bytes) / (1024.0 * 1024.0 * 1024.0);
  dev.bf16 = info.sm_major >= 8;
  return dev;
}

} // namespace

int cmd_plan(const Args &args) {
  Options o;
  if (!o.parse(args,
               {{"gpu", "", "GPU name from the catalog (forgiving: 4090, rtx4090, \"RTX 4090\")"},
                {"vram", "", "memory of a GPU not in the catalog, e.g. 24GB"},
                {"gpus", "1", "GPUs (data parallel)"},
                {"hours", "", "budget in hours (default 24)"},
                {"tokens", "", "budget in training tokens, e.g. 10B"},
                {"top", "5", "candidates to show"},
                {"mfu", "0.40", "model FLOPs utilisation assumed"},
                {"overhead", "0.75", "GiB outside the plan (CUDA context)"},
                {"block_size", "1024", "sequence length"},
                {"tokens_per_step", "524288", "tokens per optimizer step"},
                {"write", "", "write the best candidate as a nanoGPT config file"},
                {"force", "false", "--write may replace an existing file", true},
                {"check", "", "a config file: does it fit?"},
                {"table", "false", "the guide's per-VRAM table beside finegpt's choices", true},
                {"offload", "false", "the search may use optimizer offload", true},
                {"recipe", "nanogpt",
                 "the recipe family searched: nanogpt (GPT-2, AdamW) or modern (rotary, RMSNorm, "
                 "QK-norm, ReLU^2, untied head, soft-cap, Muon)"},
                {"pcie", "", "host link GB/s per direction (default: by card, see --help)"},
                {"host_bw", "25", "host memory GB/s for the offloaded AdamW"},
                {"list", "false", "list the GPU catalog", true}},
               "usage: finegpt plan --gpu NAME [--gpus N] [--hours H | --tokens N] [--write F.py]\n"
               "       finegpt plan --check CONFIG.py --gpu NAME\n"
               "       finegpt plan --table | --list\n\n"
               "Finds the GPT that trains best on a GPU within a budget, from the exact memory "
               "plan."))
    return 0;
  if (!o.positional().empty()) fail("unexpected argument '", o.positional()[0], "'");
  // Before any work: a config someone wrote is not replaced by accident.
  if (!o.str("write").empty()) {
    FINEGPT_CHECK(o.str("check").empty(),
                  "--write and --check: --check reads a config, --write writes one; give one");
    FINEGPT_CHECK(o.flag("force") || !file_exists(o.str("write")), "--write ", o.str("write"),
                  ": the file exists; add --force to replace it");
  }
  PlanSettings s;
  s.gpus = int(o.integer("gpus"));
  FINEGPT_CHECK(s.gpus >= 1 && s.gpus <= 65536, "--gpus must be in 1..65536");
  s.mfu = o.real("mfu");
  FINEGPT_CHECK(s.mfu > 0 && s.mfu <= 1, "--mfu must be in (0, 1]");
  s.overhead_gib = o.real("overhead");
  FINEGPT_CHECK(s.overhead_gib >= 0, "--overhead must be >= 0");
  s.block_size = int(o.integer("block_size"));
  FINEGPT_CHECK(s.block_size >= 1 && s.block_size <= 1 << 20, "--block_size must be positive");
  s.tokens_per_step = o.integer64("tokens_per_step");
  FINEGPT_CHECK(s.tokens_per_step >= 1, "--tokens_per_step must be positive");
  if (!o.str("hours").empty()) {
    s.hours = o.real("hours");
    FINEGPT_CHECK(s.hours > 0 && s.hours < 1e6, "--hours must be positive");
  }
  if (!o.str("tokens").empty()) s.tokens = parse_count("--tokens", o.str("tokens"));
  FINEGPT_CHECK(!(s.hours > 0 && s.tokens > 0), "give --hours or --tokens, not both");
  s.offload = o.flag("offload");
  {
    TrainConfig r;
    r.recipe = o.str("recipe");
    apply_recipe(r, "--recipe");
    s.recipe = r.recipe;
    set_architecture(s.options, r);
    s.muon = r.optimizer == "muon";
    FINEGPT_CHECK(!(s.muon && s.offload), "--recipe ", s.recipe,
                  " trains with Muon, which does not combine with --offload yet");
  }
  s.host_gbs = o.real("host_bw");
  FINEGPT_CHECK(s.host_gbs > 0 && s.host_gbs < 1e5, "--host_bw must be a positive GB/s");
  double pcie = 0;
  if (!o.str("pcie").empty()) {
    pcie = o.real("pcie");
    FINEGPT_CHECK(pcie > 0 && pcie < 1e5, "--pcie must be a positive GB/s");
  }

  if (o.flag("list")) {
    std::printf("%-16s %5s %8s %8s %11s %11s %8s\n", "GPU", "sm", "VRAM", "usable", "bf16 TFLOPs",
                "fp32 TFLOPs", "GB/s");
    for (const GpuSpec &g : gpu_catalog())
      std::printf("%-16s %5.1f %8.0f %8.2f %11.1f %11.1f %8.0f%s\n", g.name.c_str(), g.sm,
                  g.vram_gib, g.usable_gib, g.bf16_tflops, g.fp32_tflops, g.bandwidth_gbs,
                  g.bf16 ? "" : "  (no bf16: fp16 tensor figure)");
    return 0;
  }
  if (o.flag("table")) return run_table(s);

  FINEGPT_CHECK(o.str("gpu").empty() || o.str("vram").empty(), "give --gpu or --vram, not both");
  Device dev;
  if (!o.str("gpu").empty()) {
    std::string note;
    dev = device_from_gpu(find_gpu(o.str("gpu"), &note));
    if (!note.empty()) std::printf("note: %s\n", note.c_str());
  } else if (!o.str("vram").empty()) {
    dev = device_from_vram(parse_vram_gib(o.str("vram")));
  } else {
    dev = this_machines_gpu();
  }
  if (pcie > 0) dev.pcie_gbs = pcie;
  if (!o.str("check").empty()) return run_check(o.str("check"), dev, s);

  const long top = o.integer("top");
  FINEGPT_CHECK(top >= 1 && top <= 100, "--top must be in 1..100");
  auto cs = search(dev, s, int(top));
  print_header(dev, s);
  print_table(cs);
  const Candidate &best = cs[0];
  MemoryPlan mp =
      plan_memory(best.model, best.micro_batch, s.block_size,
                  plan_options(dev, best.recompute, best.zero_stage, s.gpus, best.offload, s.muon));
  std::printf("memory of candidate 1 per GPU:");
  for (MemGroup g : {MemGroup::Parameters, MemGroup::Gradients, MemGroup::Optimizer,
                     MemGroup::Activations, MemGroup::Scratch, MemGroup::Workspace})
    std::printf(" %s %s,", mem_group_name(g), format_bytes(double(mp.bytes(g))).c_str());
  std::printf(" fixed %.2f GiB", s.overhead_gib);
  if (best.offload)
    std::printf("; pinned host memory %s", format_bytes(double(mp.host_bytes())).c_str());
  std::printf("\n");
  print_offload(dev, s);
  if (!o.str("write").empty()) {
    const std::string text = config_for(cs[0], s, dev.name);
    write_file_atomic(o.str("write"), text);
    std::printf("wrote %s (candidate 1)\n", o.str("write").c_str());
  }
  return 0;
}

} // namespace finegpt
