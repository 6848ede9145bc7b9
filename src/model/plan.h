// The memory plan: one pure function that lists every buffer the engine allocates for a model
// and micro-batch (name, group, shape, bytes). The model allocates from this list and from
// nothing else, so `finegpt train --dry_run` (and later `finegpt plan`) cannot disagree with
// what training allocates. Today: the CPU fp32 backend; issue 4 adds precision, recompute, ZeRO.
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
};

int pad_vocab(int vocab_size); // round up to a multiple of 64
// Checks the shape (positive sizes, n_embd % n_head, padded vocab); Error naming the field.
void check_gpt_config(const GPTConfig &cfg);

// Parameter tensors in llm.c's file order; with bias off the bias tensors have 0 elements.
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

enum class MemGroup { Parameters, Gradients, Optimizer, Activations, Scratch };
const char *mem_group_name(MemGroup g);

struct Buffer {
  std::string name;
  MemGroup group;
  std::vector<int64_t> shape;
  int dtype_bytes;
  size_t elems;
  size_t bytes;
};

struct MemoryPlan {
  std::vector<Buffer> buffers;
  size_t bytes(MemGroup g) const;
  size_t elems(MemGroup g) const;
  size_t total_bytes() const;
  const Buffer *find(const std::string &name) const;
};

// Every buffer a CPU fp32 training run of `cfg` at micro-batch (B, T) allocates: parameters,
// gradients, AdamW moments (when `optimizer`), per-tensor activations kept for backward,
// logits, and backward scratch.
MemoryPlan plan_memory(const GPTConfig &cfg, int B, int T, bool optimizer = true);

// A human-readable table: groups with totals, activations per tensor.
std::string format_plan(const MemoryPlan &plan);
std::string format_bytes(double bytes); // "1.23 GiB"

} // namespace finegpt
