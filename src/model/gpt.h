// The GPT-2 model as nanoGPT builds it (learned positions, pre-LayerNorm blocks, causal
// attention, tanh-GELU MLP, head tied to the token embedding, vocabulary padded to a multiple
// of 64 and never predicted), with its parameter layout (llm.c's order, grouped by tensor type
// across layers) and its forward and backward written once against the op seam (backend/ops.h).
// Every buffer comes from the memory plan (model/plan.h); nothing here sizes memory itself.
#pragma once
#include "backend/ops.h"
#include "model/plan.h"

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace finegpt {

// Frees an arena's block and keeps Arena::live_bytes() current.
struct ArenaFree {
  size_t bytes = 0;
  void operator()(float *p) const;
};

// A contiguous float arena; memory is 64-byte aligned and owned.
class Arena {
public:
  Arena() = default;
  explicit Arena(size_t floats);
  float *data() { return ptr_.get(); }
  const float *data() const { return ptr_.get(); }
  size_t size() const { return n_; }
  // Bytes requested by all arenas alive now (each arena's block is rounded up to 64 bytes on
  // top): what tests compare with the memory plan.
  static size_t live_bytes();

private:
  std::unique_ptr<float, ArenaFree> ptr_;
  size_t n_ = 0;
};

class GPT {
public:
  // Allocates parameters and gradients, and activations for micro-batches up to (B, T)
  // with T <= block_size, from plan_memory(). Parameters are not initialised.
  GPT(const GPTConfig &cfg, int B, int T);

  const GPTConfig &config() const { return cfg_; }
  const MemoryPlan &plan() const { return plan_; }
  int max_batch() const { return B_; }
  int max_time() const { return T_; }

  // nanoGPT's initialisation: N(0, 0.02) for weights and embeddings, the two residual
  // projections N(0, 0.02/sqrt(2 n_layer)), biases 0, LayerNorm weights 1.
  void init_weights(uint64_t seed);

  // All parameters, flat, in param_tensors() order; gradients alongside.
  float *params() { return params_.data(); }
  const float *params() const { return params_.data(); }
  float *grads() { return grads_.data(); }
  size_t num_params() const { return params_.size(); }
  float *param(ParamId id) { return params_.data() + offsets_[id]; }
  const float *param(ParamId id) const { return params_.data() + offsets_[id]; }
  float *grad(ParamId id) { return grads_.data() + offsets_[id]; }
  size_t param_count(ParamId id) const { return counts_[id]; }
  size_t param_offset(ParamId id) const { return offsets_[id]; }
  void zero_grads();

  // Forward over inputs (B,T) (B <= max_batch, T <= max_time). With targets, returns the
  // mean loss over the B*T positions; without, returns 0 and leaves the logits (B,T,Vp).
  // `dropout_key` != 0 enables dropout (training); 0 is eval mode.
  float forward(const int32_t *inputs, const int32_t *targets, int B, int T,
                uint64_t dropout_key = 0);
  // forward with targets, then backward of (mean loss * loss_scale), accumulating into the
  // gradients (+=). Returns the unscaled mean loss.
  float forward_backward(const int32_t *inputs, const int32_t *targets, int B, int T,
                         float loss_scale, uint64_t dropout_key = 0);

  // Logits of the last forward (B,T,Vp) row-major; only meaningful after forward without
  // targets.
  const float *logits() const { return act("logits"); }
  const float *losses() const { return act("losses"); }
  // K and V of layer l from the last forward: qkv (B,T,3C), so k = qkv + C, v = qkv + 2C.
  const float *layer_qkv(int l) const;

private:
  float *act(const char *name);
  const float *act(const char *name) const;
  void backward(const int32_t *inputs, int B, int T, uint64_t dropout_key);

  GPTConfig cfg_;
  int B_, T_;
  MemoryPlan plan_;
  Arena params_, grads_, acts_;
  std::array<size_t, kNumParamTensors> offsets_{}, counts_{};
  std::vector<std::pair<std::string, float *>> act_ptrs_;
  int lastB_ = 0, lastT_ = 0;
};

// GPT::init_weights on a flat fp32 parameter array (num_parameters(cfg) floats, param_tensors
// order): the one initialisation every engine uses.
void init_gpt_weights(const GPTConfig &cfg, float *params, uint64_t seed);

// Where dropout applies (nanoGPT's sites): the embedding sum (layer -1), the attention
// probabilities, and each residual branch before its add.
enum DropSite { kDropEmbedding = 0, kDropAttention = 1, kDropResidAttn = 2, kDropResidMlp = 3 };
// Dropout key for site `site` of layer `layer` under a step's key (0 when `key` is 0). Every
// engine uses it, so the CPU and CUDA masks of one step are the same.
uint64_t dropout_site_key(uint64_t key, int layer, int site);

} // namespace finegpt
