// The memory plan: one pure function that lists every buffer the engine allocates for a model
// and micro-batch (name, group, shape, dtype, bytes), for a backend, precision, recompute
// level, ZeRO stage and world size. The CPU engine allocates from this list and from nothing
// else, so `finegpt train --dry_run` and `finegpt plan` cannot disagree with what training
// allocates. The CUDA plan is the layout the CUDA engine (issue 5) allocates from.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace finegpt {

struct GPTConfig {
  int block_size = 1024;
  int vocab_size = 50257;
  int padded_vocab_size = 50304; // vocab_size rounded up to a multiple of 64
  int n_layer = 12;
  int n_head = 12;
  int n_embd = 768;
  bool bias = true;
  float dropout = 0.0f;
  // Architecture options (config keys of the same meaning; all off: GPT-2). DESIGN.md section 5,
  // "Architecture options".
  bool rotary = false;        // rotary position embeddings on q and k (no wpe)
  bool rmsnorm = false;       // RMSNorm (gain in the LayerNorm weight slots, no bias) for LayerNorm
  bool qk_norm = false;       // parameterless RMSNorm of each head's q and k
  bool relu2 = false;         // MLP activation relu(x)^2 instead of tanh-GELU
  bool tie_embeddings = true; // false: a separate lm_head (Vp, C) at the end of the layout
  bool zero_init_proj = false; // init: both residual projections (and an untied lm_head) zero
  float logit_softcap = 0.0f;  // > 0: logits = cap * tanh(logits / cap) before the loss
};

// Rotary's base (theta_i = pos * base^(-2i/HS)) and the epsilon of RMSNorm and QK-norm.
constexpr double kRotaryBase = 10000.0;
constexpr float kRmsNormEps = 1e-6f;

// True when the model is GPT-2 as llm.c, Hugging Face's GPT2LMHeadModel and nanoGPT define it:
// no architecture option is on (zero_init_proj, an initialisation, does not count).
bool is_gpt2_architecture(const GPTConfig &cfg);
// The options that are on, as config keys ("rotary = True, norm = 'rmsnorm'"); "" for GPT-2.
std::string architecture_options(const GPTConfig &cfg, bool with_init = false);

int pad_vocab(int vocab_size); // round up to a multiple of 64
// The most parameters a shape may have (2^40, 4 TiB in fp32): past it the 64-bit size
// arithmetic of the plan could overflow.
constexpr uint64_t kMaxParameters = uint64_t(1) << 40;
// Checks the shape (positive sizes, n_embd % n_head, padded vocab, at most kMaxParameters);
// Error naming the field.
void check_gpt_config(const GPTConfig &cfg);

// Parameter tensors in llm.c's file order, then lm_head; a tensor the model lacks has 0 elements:
// the biases with bias off, the LayerNorm biases with RMSNorm, wpe with rotary, lm_head when tied.
enum ParamId {
  WTE,
  WPE,
  LN1W,
  LN1B,
  QKVW,
  QKVB,
  ATTPROJW,
  ATTPROJB,
  LN2W,
  LN2B,
  FCW,
  FCB,
  FCPROJW,
  FCPROJB,
  LNFW,
  LNFB,
  LMHEAD, // untied head only (tie_embeddings = False); absent from llm.c and GPT-2 files
  kNumParamTensors
};
struct ParamTensor {
  const char *name;
  std::vector<int64_t> shape; // empty when absent
  size_t count;
  bool decay; // nanoGPT's AdamW group: dim >= 2 gets weight decay
};
std::array<ParamTensor, kNumParamTensors> param_tensors(const GPTConfig &cfg);
// Total parameters as stored (padded vocabulary rows included).
size_t num_parameters(const GPTConfig &cfg);
// The true count: wte with vocab_size rows, not the padding.
size_t num_parameters_unpadded(const GPTConfig &cfg);

enum class MemGroup { Parameters, Gradients, Optimizer, Activations, Scratch, Workspace };
const char *mem_group_name(MemGroup g);

// Where a buffer lives: the engine's own memory (the GPU's for the CUDA engine, host memory for
// the CPU engine), or pinned host memory beside a GPU (the optimizer state under offload).
enum class Location { Engine, Host };

struct Buffer {
  std::string name;
  MemGroup group;
  std::vector<int64_t> shape;
  int dtype_bytes;
  size_t elems;
  size_t bytes;
  Location where = Location::Engine;
};

// Device and host memory are planned separately: bytes(), elems() and total_bytes() count the
// engine's memory (what is checked against the GPU, or the host for the CPU engine), host_bytes()
// the pinned host memory of an offloaded optimizer.
struct MemoryPlan {
  std::vector<Buffer> buffers;
  size_t bytes(MemGroup g) const;
  size_t elems(MemGroup g) const;
  size_t total_bytes() const;
  size_t host_bytes() const;
  size_t host_bytes(MemGroup g) const;
  const Buffer *find(const std::string &name) const;
};

enum class Backend { CPU, CUDA };
enum class Precision {
  FP32, // everything fp32 (the CPU engine)
  BF16  // mixed: bf16 parameters, gradients and activations; fp32 master weights, AdamW
        // moments, LayerNorm statistics, losses
};

struct PlanOptions {
  Backend backend = Backend::CPU;
  Precision precision = Precision::FP32;
  // Activation recompute: 0 none; 1 GELU output; 2 GELU + LayerNorm outputs; 3 the whole
  // block (only each layer's input is kept). Recomputed tensors are kept for one layer only.
  int recompute = 0;
  int zero_stage = 0; // 1: master weights and AdamW moments sharded over `world` ranks
  int world = 1;
  bool optimizer = true; // AdamW state (and master weights) at all
  // CUDA: attention through cuDNN (attention = 'cudnn') instead of ours; its backward needs a
  // larger op workspace.
  bool cudnn_attention = false;
  // CUDA: optimizer offload (offload = 'optimizer'): the fp32 master weights and AdamW moments
  // (this rank's shard) and a bf16 staging buffer of the same length (gradients down, new
  // parameters up) in pinned host memory; the GPU keeps bf16 parameters and gradients only.
  bool offload = false;
  // optimizer = 'muon': the hidden matrices' momentum in adamw.m (their adamw.v stays unused, so
  // the state keeps one layout for both optimizers) and a Newton-Schulz workspace ("muon.scratch",
  // muon_scratch_elems of the largest matrix, in the parameters' dtype).
  bool muon = false;
};
// Muon's matrices: each layer's qkvw, attprojw, fcw and fcprojw (2-D, not the embeddings or head).
inline bool muon_matrix(int id) {
  return id == QKVW || id == ATTPROJW || id == FCW || id == FCPROJW;
}
const char *backend_name(Backend b);
const char *precision_name(Precision p);

// Every buffer a training run of `cfg` at micro-batch (B, T) allocates per rank: parameters,
// gradients, master weights and AdamW moments, per-tensor activations kept for backward,
// logits, backward scratch and library workspaces. The CPU engine implements FP32 with
// recompute 0 (ZeRO-1 included); other combinations on CPU are an Error, as is offload there.
MemoryPlan plan_memory(const GPTConfig &cfg, int B, int T, const PlanOptions &opt = {});

// A human-readable table: groups with totals, activations per tensor.
std::string format_plan(const MemoryPlan &plan);
std::string format_bytes(double bytes); // "1.23 GiB"

} // namespace finegpt
