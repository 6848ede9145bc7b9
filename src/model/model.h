// The GPT-2 model as nanoGPT builds it (learned positions, pre-LayerNorm blocks, causal
// attention, tanh-GELU MLP, head tied to the token embedding, vocabulary padded to a multiple of
// 64 and never predicted), with the architecture options of GPTConfig as branches of the same
// body (rotary, RMSNorm, QK-norm, ReLU^2, an untied head, logit soft-capping), written once for
// both engines: Model<CpuBackend> (fp32, the CPU) and
// Model<CudaBackend> (bf16 on a GPU). Forward, backward, recompute and the block that generation
// reuses are one body over the op seam; model/backends.h holds what differs. Parameters in
// llm.c's order (param_tensors), grouped by tensor type across layers. Every buffer comes from
// the memory plan (model/plan.h), resolved once into typed pointers; nothing here sizes memory.
//
// Activation recompute (CUDA; the plan refuses it on the CPU): level 1 keeps one layer's GELU
// output and recomputes it per layer in backward, level 2 also the LayerNorm outputs, level 3 the
// whole block from its input; the recomputed values equal the forward's bit for bit. Dropout at
// nanoGPT's sites, its masks pure functions of (step key, layer, site, element), so both engines
// drop the same elements.
#pragma once
#include "core/exchange.h"
#include "model/backends.h"
#include "model/plan.h"

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace finegpt {

// nanoGPT's initialisation on a flat fp32 parameter array (num_parameters(cfg) floats,
// param_tensors order): N(0, 0.02) for weights and embeddings (an untied lm_head too, drawn
// last), the two residual projections N(0, 0.02/sqrt(2 n_layer)), biases 0, LayerNorm (RMSNorm)
// weights 1; padding rows of wte and lm_head 0. zero_init_proj: the two residual projections and
// an untied lm_head 0 (modded-nanogpt's), every other tensor the same numbers as without it.
void init_gpt_weights(const GPTConfig &cfg, float *params, uint64_t seed);

// Where dropout applies (nanoGPT's sites): the embedding sum (layer -1), the attention
// probabilities, and each residual branch before its add.
enum DropSite { kDropEmbedding = 0, kDropAttention = 1, kDropResidAttn = 2, kDropResidMlp = 3 };
// Dropout key for site `site` of layer `layer` under a step's key (0 when `key` is 0).
uint64_t dropout_site_key(uint64_t key, int layer, int site);

// The seam's ops by storage type: float * selects the CPU body, cuda::bf16 * the CUDA one.
namespace ops {
using finegpt::cpu::attention_decode;
using finegpt::cpu::crossentropy_forward_backward;
using finegpt::cpu::dropout_backward;
using finegpt::cpu::encoder_backward;
using finegpt::cpu::encoder_forward;
using finegpt::cpu::gelu_backward;
using finegpt::cpu::gelu_forward;
using finegpt::cpu::kv_append;
using finegpt::cpu::layernorm_backward;
using finegpt::cpu::layernorm_forward;
using finegpt::cpu::matmul_backward;
using finegpt::cpu::matmul_forward;
using finegpt::cpu::qk_norm_backward;
using finegpt::cpu::qk_norm_forward;
using finegpt::cpu::relu2_backward;
using finegpt::cpu::relu2_forward;
using finegpt::cpu::residual_forward;
using finegpt::cpu::rmsnorm_backward;
using finegpt::cpu::rmsnorm_forward;
using finegpt::cpu::rotary_backward;
using finegpt::cpu::rotary_forward;
using finegpt::cpu::softcap_forward;
using finegpt::cuda::attention_decode;
using finegpt::cuda::crossentropy_forward_backward;
using finegpt::cuda::dropout_backward;
using finegpt::cuda::encoder_backward;
using finegpt::cuda::encoder_forward;
using finegpt::cuda::gelu_backward;
using finegpt::cuda::gelu_forward;
using finegpt::cuda::kv_append;
using finegpt::cuda::layernorm_backward;
using finegpt::cuda::layernorm_forward;
using finegpt::cuda::matmul_backward;
using finegpt::cuda::matmul_forward;
using finegpt::cuda::matmul_forward_gelu;
using finegpt::cuda::qk_norm_backward;
using finegpt::cuda::qk_norm_forward;
using finegpt::cuda::relu2_backward;
using finegpt::cuda::relu2_forward;
using finegpt::cuda::residual_forward;
using finegpt::cuda::rmsnorm_backward;
using finegpt::cuda::rmsnorm_forward;
using finegpt::cuda::rotary_backward;
using finegpt::cuda::rotary_forward;
using finegpt::cuda::softcap_forward;
// The CPU has no fused fc GEMM + GELU; the model never asks it for one (fused_gelu_ is off).
void matmul_forward_gelu(float *out, float *pre, const float *inp, const float *weight,
                         const float *bias, int N, int C, int OC);
} // namespace ops

template <class Backend> class Model {
public:
  using Real = typename Backend::Real;

  // One layer's activations for a call's (B, T): slices of the planned buffers (the slice of a
  // tensor the recompute level keeps for one layer only is that one slot).
  struct LayerActs {
    const Real *res_in;
    Real *ln1, *qkv, *atty, *res2, *ln2, *fch, *fch_gelu, *res3;
    Real *branch; // a branch's output before its residual add (working memory)
    // att: the backend's attention state; the means are null with RMSNorm, qk_rstd without
    // QK-norm.
    float *ln1_mean, *ln1_rstd, *att, *ln2_mean, *ln2_rstd, *qk_rstd;
  };

  // Allocates parameters, gradients, activations, scratch and workspaces for micro-batches up to
  // (B, T), T <= block_size, from plan_memory (without the optimizer's state: optim/optim.h).
  // Parameters are not initialised (init_weights or set_params).
  Model(const GPTConfig &cfg, int B, int T, ModelOptions opt = {});
  Model(const Model &) = delete;
  Model &operator=(const Model &) = delete;

  const GPTConfig &config() const { return cfg_; }
  const ModelOptions &options() const { return opt_; }
  const MemoryPlan &plan() const { return plan_; }
  int max_batch() const { return B_; }
  int max_time() const { return T_; }
  size_t bytes() const { return bytes_; } // memory this model allocated

  size_t num_params() const { return P_; }
  size_t param_offset(ParamId id) const { return offsets_[id]; }
  size_t param_count(ParamId id) const { return counts_[id]; }
  Real *params() const { return params_; }
  Real *grads() const { return grads_; }
  Real *param(ParamId id) const { return params_ + offsets_[id]; }
  Real *grad(ParamId id) const { return grads_ + offsets_[id]; }
  // The output head: wte, or lm_head when untied.
  const Real *head() const { return param(cfg_.tie_embeddings ? WTE : LMHEAD); }
  Real *head_grad() const { return grad(cfg_.tie_embeddings ? WTE : LMHEAD); }
  // Position embeddings (B,T rows from position 0), null with rotary.
  const Real *wpe() const { return counts_[WPE] ? param(WPE) : nullptr; }

  // init_gpt_weights (on the host), then set_params: every engine starts from the same numbers.
  void init_weights(uint64_t seed);
  // fp32 host values (num_params, param_tensors order) into the parameters (rounded to bf16 on
  // CUDA), and back; gradients to fp32 on the host.
  void set_params(const float *host);
  void get_params(float *host) const;
  void get_grads(float *host) const;
  void zero_grads();

  // Forward over inputs (B,T) (B <= max_batch, T <= max_time). With targets, the mean loss over
  // the B*T positions; without, 0, and the logits (B,T,Vp) are left in logits().
  // `dropout_key` != 0 enables dropout (training); 0 is eval mode.
  float forward(const int32_t *inputs, const int32_t *targets, int B, int T,
                uint64_t dropout_key = 0);
  // forward with targets, then backward of (mean loss * loss_scale), accumulating into the
  // gradients (+=). With an exchange (the micro-batch that ends a step), each layer's gradients
  // are handed to it as soon as they are final. Returns the unscaled mean loss.
  float forward_backward(const int32_t *inputs, const int32_t *targets, int B, int T,
                         float loss_scale, uint64_t dropout_key = 0,
                         GradExchange *exchange = nullptr);
  // The per-position losses (B*T fp32, row-major) of the last forward with targets or
  // forward_backward, on the host (mean_loss reads them all back).
  const float *host_losses() const { return host_losses_.data(); }
  // The logits (B,T,Vp) of the last forward without targets, in the backend's memory.
  const Real *logits() const { return acts_.logits; }
  // Lends the model's op workspace to the backend (before calling ops outside forward).
  void bind_workspace() const { ctx_.bind_workspace(acts_.workspace, acts_.workspace_bytes); }
  // Device scratch for reductions (the plan's reduce_scratch; null on the CPU).
  float *reduce_scratch() const { return acts_.reduce_scratch; }

  // The block, for callers that bring their own activations (generation, with its KV cache):
  // layer l over B x T rows from a.res_in, at positions pos0 + t (rotary); `attention(a, drop)`
  // fills a.atty from a.qkv. write_output = false stops before the MLP's output GEMM and
  // residual add (recompute).
  template <class Attention>
  void block_forward(int l, int B, int T, int pos0, const LayerActs &a, uint64_t key,
                     bool write_output, Attention &&attention) const;
  // LayerNorm or RMSNorm (mean unused), as the config says; the MLP's activation likewise.
  void norm_forward(Real *out, float *mean, float *rstd, const Real *inp, ParamId w, ParamId b,
                    size_t off, int N) const;
  void activation_forward(Real *out, const Real *inp, size_t n) const {
    if (cfg_.relu2)
      ops::relu2_forward(out, inp, n);
    else
      ops::gelu_forward(out, inp, n);
  }
  // The logits' soft cap in place (nothing when off).
  void softcap(Real *logits, size_t n) const {
    if (cfg_.logit_softcap > 0.0f) ops::softcap_forward(logits, n, cfg_.logit_softcap);
  }

private:
  // Base pointers of every planned activation and scratch buffer, resolved once.
  struct Acts {
    int32_t *inputs = nullptr, *targets = nullptr;
    Real *encoded, *ln1, *qkv, *atty, *res2, *ln2, *fch, *fch_gelu, *res3, *lnf, *logits;
    float *ln1_mean, *ln1_rstd, *att, *ln2_mean, *ln2_rstd, *lnf_mean, *lnf_rstd, *losses;
    float *qk_rstd = nullptr;
    Real *branch, *dresidual, *dbranch, *dbtc, *dqkv, *dfch;
    float *datt = nullptr, *reduce_scratch = nullptr;
    unsigned char *workspace = nullptr;
    size_t workspace_bytes = 0;
    // Layers held per tensor (1 where the recompute level keeps one layer's slot).
    int layers_ln = 0, layers_gelu = 0, layers_block = 0, layers_att = 0;
  };
  LayerActs layer(int l, int B, int T) const;
  Dropout drop(uint64_t key, int layer, int site) const {
    return Dropout{key ? cfg_.dropout : 0.0f, dropout_site_key(key, layer, site)};
  }
  void attention_forward(const LayerActs &a, int B, int T, Dropout d) const;
  void upload_tokens(int32_t *dst, const int32_t *host, int N, const char *what);
  void forward_logits(int B, int T, uint64_t key);
  void recompute_for_backward(int l, int B, int T, const LayerActs &a, uint64_t key);
  void norm_backward(Real *dinp, ParamId w, ParamId b, size_t off, const Real *dout,
                     const Real *inp, const float *mean, const float *rstd, int N);
  void backward(int B, int T, uint64_t key, GradExchange *exchange);
  float mean_loss(int N);
  std::vector<Range> layer_ranges(int l) const;
  const Real *bias(ParamId id, size_t off) const {
    return counts_[id] ? params_ + offsets_[id] + off : nullptr;
  }
  Real *bias_grad(ParamId id, size_t off) const {
    return counts_[id] ? grads_ + offsets_[id] + off : nullptr;
  }

  GPTConfig cfg_;
  int B_, T_;
  ModelOptions opt_;
  typename Backend::Context ctx_; // first in, last out: selects the device, releases handles
  bool fused_gelu_;
  MemoryPlan plan_;
  size_t P_ = 0, bytes_ = 0;
  std::array<size_t, kNumParamTensors> offsets_{}, counts_{};
  std::vector<typename Backend::Block> blocks_; // one per plan group
  Real *params_ = nullptr, *grads_ = nullptr;
  Acts acts_;
  std::vector<float> host_losses_;
};

template <class Backend>
template <class Attention>
void Model<Backend>::block_forward(int l, int B, int T, int pos0, const LayerActs &a, uint64_t key,
                                   bool write_output, Attention &&attention) const {
  const int C = cfg_.n_embd, NH = cfg_.n_head, N = B * T;
  const size_t NC = size_t(N) * C;
  Real *branch = a.branch;
  norm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, a.res_in, LN1W, LN1B, size_t(l) * C, N);
  ops::matmul_forward(a.qkv, a.ln1, param(QKVW) + size_t(l) * 3 * C * C,
                      bias(QKVB, size_t(l) * 3 * C), N, C, 3 * C);
  // Rotary, then QK-norm: the parameterless per-head RMS is invariant under the rotation, so this
  // equals modded-nanogpt's norm-then-rotary, and the backward needs only the final q and k.
  if (cfg_.rotary) ops::rotary_forward(a.qkv, B, T, C, NH, pos0);
  if (cfg_.qk_norm) ops::qk_norm_forward(a.qkv, a.qk_rstd, N, C, NH);
  attention(a, drop(key, l, kDropAttention));
  ops::matmul_forward(branch, a.atty, param(ATTPROJW) + size_t(l) * C * C, bias(ATTPROJB, l * C), N,
                      C, C);
  ops::residual_forward(a.res2, a.res_in, branch, NC, drop(key, l, kDropResidAttn));
  norm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.res2, LN2W, LN2B, size_t(l) * C, N);
  const Real *fcw = param(FCW) + size_t(l) * 4 * C * C, *fcb = bias(FCB, size_t(l) * 4 * C);
  if (fused_gelu_) {
    ops::matmul_forward_gelu(a.fch_gelu, a.fch, a.ln2, fcw, fcb, N, C, 4 * C);
  } else {
    ops::matmul_forward(a.fch, a.ln2, fcw, fcb, N, C, 4 * C);
    activation_forward(a.fch_gelu, a.fch, 4 * NC);
  }
  if (!write_output) return; // recomputing for backward: the block's output is kept already
  ops::matmul_forward(branch, a.fch_gelu, param(FCPROJW) + size_t(l) * C * 4 * C,
                      bias(FCPROJB, l * C), N, 4 * C, C);
  ops::residual_forward(a.res3, a.res2, branch, NC, drop(key, l, kDropResidMlp));
}

// The two engines' models.
using GPT = Model<CpuBackend>;
using CudaGPT = Model<CudaBackend>;
extern template class Model<CpuBackend>;
extern template class Model<CudaBackend>;

} // namespace finegpt
