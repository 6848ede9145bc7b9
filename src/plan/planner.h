// `finegpt plan`: which GPT to train on a given GPU, from the memory plan (model/plan.h), a
// throughput model (FLOPs per token over the GPU's peak times an MFU) and a compute-optimal
// trade-off between parameters and tokens (Chinchilla). Pure functions; printing is in
// cli/plan.cpp.
#pragma once
#include "model/plan.h"
#include "plan/gpus.h"

#include <string>
#include <vector>

namespace finegpt {

// The card a plan is for: from the catalog, or only a memory size (--vram).
struct Device {
  std::string name;
  double usable_gib = 0;  // memory a run may use (before the fixed overhead)
  double peak_tflops = 0; // dense bf16 (fp32 on cards without bf16)
  bool bf16 = true;
  bool known_peak = false; // false for --vram: no throughput figure
  double pcie_gbs = 25.2;  // host link per direction, effective (pcie_gbs_of; optimizer offload)
};
// The card's host link per direction, effective GB/s: 80% of PCIe's nominal x16 rate (3.0 15.75,
// 4.0 31.5, 5.0 63 GB/s): 50.4 for PCIe 5.0 cards (RTX 5090, H100, H200, B200), 12.6 for PCIe
// 3.0 (T4, V100) and the x8 RTX 4060 Ti, 25.2 (PCIe 4.0 x16) for the others and unknown cards.
double pcie_gbs_of(const std::string &catalog_name);
Device device_from_gpu(const GpuSpec &g);
Device device_from_vram(double nominal_gib); // usable = nominal x 0.98 (the catalog's rule)

struct PlanSettings {
  int gpus = 1;
  int block_size = 1024;
  long tokens_per_step = 524288; // 512 x 1024, the guide's advice
  int vocab_size = 50257;
  double mfu = 0.40;          // of peak; llm.c reaches ~0.5 on A100/H100 for GPT-2 124M
  double overhead_gib = 0.75; // CUDA context and allocator slack, outside the plan
  double hours = 0;           // budget: wall-clock hours ...
  double tokens = 0;          // ... or training tokens (0 and 0: 24 hours)
  bool offload = false;       // the search may use optimizer offload (plan --offload)
  double host_gbs = 25.0;     // host memory bandwidth the offloaded AdamW streams at (GB/s)
  // The recipe family (config key `recipe`, plan --recipe): its name, the architecture options
  // of the searched shapes (GPTConfig's option fields; the shape fields are the search's), and
  // whether it trains with Muon (its workspace in the plan, its FLOPs in the throughput model).
  std::string recipe = "nanogpt";
  GPTConfig options;
  bool muon = false;
};

// Optimizer offload's throughput model, per GPU and optimizer step, added to the compute time (the
// host update runs between steps; conservatively, both copies are counted, though on one rank the
// gradients' copy hides behind backward): the owned bf16 gradients down and bf16
// parameters up over the host link (2 x 2 bytes per parameter at pcie_gbs), and the host AdamW
// streaming kOffloadHostBytes per parameter at host_gbs: read the bf16 gradient (2) and the fp32
// master weight and moments (12), write them (12) and the bf16 parameter (2).
constexpr double kOffloadHostBytes = 28.0;
double offload_seconds(double params_per_gpu, double pcie_gbs, double host_gbs);

// One configuration: a model shape and how it runs, with its memory and predicted outcome.
struct Candidate {
  GPTConfig model;
  int micro_batch = 0, accum = 0, recompute = 0, zero_stage = 0;
  double plan_gib = 0, need_gib = 0, headroom_gib = 0; // need = plan + overhead
  double flops_per_token = 0, tokens_per_s = 0;        // all GPUs together
  double train_tokens = 0, hours = 0, expected_loss = 0;
  double learning_rate = 0, min_lr = 0;
  long max_iters = 0, warmup_iters = 0;
  size_t params = 0;               // the true count (unpadded vocabulary)
  bool bf16 = true;                // mixed precision (else float32: cards without bf16)
  bool offload = false;            // optimizer offload (offload = 'optimizer')
  double host_gib = 0;             // pinned host memory per GPU (offload)
  double offload_s = 0;            // seconds per optimizer step the offload adds (offload_seconds)
  double compute_tokens_per_s = 0; // tokens_per_s without that cost
};

// The memory plan options a candidate runs with on `dev`.
PlanOptions plan_options(const Device &dev, int recompute, int zero_stage, int gpus,
                         bool offload = false, bool muon = false);

// 6N + 12 L T C FLOPs per token (nanoGPT's estimate; N without position embeddings, with an
// untied head), times 4/3 when whole blocks are recomputed (one more forward).
double flops_per_token(const GPTConfig &m, int T, int recompute);
// Muon's Newton-Schulz FLOPs per optimizer step on each GPU: per (r, c) matrix, m = min(r, c),
// n = max(r, c), five steps of X X^T (2 m^2 n), A A (2 m^3) and B X (2 m^2 n).
double muon_flops_per_step(const GPTConfig &m);
// Chinchilla's loss law L(N, D) = E + A / N^alpha + B / D^beta with the refitted constants of
// Besiroglu et al. 2024 ("Chinchilla scaling: a replication attempt"): E 1.8172, A 482.01,
// B 2085.43, alpha 0.3478, beta 0.3658. Its compute-optimal point is about 20-25 tokens per
// parameter, as Hoffmann et al. 2022 found. Used to rank candidates, not a FineWeb prediction.
double chinchilla_loss(double params, double tokens);
// Peak learning rate by model size, GPT-3's table (Brown et al. 2020, table 2.1) interpolated
// in log-parameters: 125M 6e-4, 350M 3e-4, 760M 2.5e-4, 1.3B 2e-4, 2.7B 1.6e-4, 6.7B 1.2e-4.
double learning_rate_for(double params);

// Fills memory, throughput and budget figures of a configuration. `fits` tells whether
// need <= usable.
Candidate evaluate(const Device &dev, const PlanSettings &s, const GPTConfig &m, int micro_batch,
                   int accum, int recompute, int zero_stage, bool *fits, bool offload = false);
// The fastest way to run `m` that fits with 3% to spare (largest micro-batch, least recompute,
// no offload unless only offload fits and `allow_offload`), or false.
bool best_run(const Device &dev, const PlanSettings &s, const GPTConfig &m, bool allow_offload,
              Candidate *out);
// GPT-2's four sizes (124M, 350M, 774M, 1558M: bias, vocabulary 50257).
struct Gpt2Size {
  const char *name;
  int L, NH, C;
};
extern const Gpt2Size kGpt2Sizes[4];
GPTConfig gpt2_config(const Gpt2Size &g, int block_size);
// The largest GPT-2 that trains on `dev` at s.tokens_per_step (best_run), with or without
// offload; -1 when none.
int largest_gpt2(const Device &dev, const PlanSettings &s, bool allow_offload, Candidate *out);

// The best `top` configurations for the budget, best first: for each shape (n_embd a
// multiple of 64, head size 64, 32..96 channels per layer), the fastest way to run it
// that fits with 3% of the card to spare (largest micro-batch, least recompute); ranked by
// expected loss. Error when
// nothing fits or the budget is less than one optimizer step.
std::vector<Candidate> search(const Device &dev, const PlanSettings &s, int top = 5);

// Changes that make a configuration fit without changing tokens per step, cheapest first:
// GELU/LayerNorm recompute, smaller micro-batches with more accumulation, whole-block
// recompute, ZeRO-1 over more GPUs. Empty when nothing helps.
struct Fix {
  std::string what; // e.g. "batch_size = 8, gradient_accumulation_steps = 64"
  Candidate result;
};
std::vector<Fix> fixes(const Device &dev, const PlanSettings &s, const Candidate &c);

// The nanoGPT config file that trains `c` (dataset 'fineweb').
std::string config_for(const Candidate &c, const PlanSettings &s, const std::string &gpu_name);

} // namespace finegpt
