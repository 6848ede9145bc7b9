// The GPT body for both engines (see model.h). Shapes: B batch, T time, C channels, NH heads,
// L layers, V vocab, Vp padded vocab, N = B*T rows; per-layer activation slices are laid out
// compactly for the (B,T) of the call.
#include "model/model.h"

#include "core/error.h"
#include "core/rng.h"

#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>

namespace finegpt {

void ops::matmul_forward_gelu(float *out, float *pre, const float *inp, const float *weight,
                              const float *bias, int N, int C, int OC) {
  cpu::matmul_forward(pre, inp, weight, bias, N, C, OC); // not fused on the CPU
  cpu::gelu_forward(out, pre, size_t(N) * OC);
}

uint64_t dropout_site_key(uint64_t key, int layer, int site) {
  return key ? mix64(key ^ mix64(uint64_t(layer + 1) * 16 + uint64_t(site))) : 0;
}

void init_gpt_weights(const GPTConfig &cfg, float *params, uint64_t seed) {
  Rng rng(seed);
  const float std_res = 0.02f / std::sqrt(2.0f * float(cfg.n_layer));
  const auto tensors = param_tensors(cfg);
  std::array<float *, kNumParamTensors> at{};
  size_t total = 0;
  for (int i = 0; i < kNumParamTensors; ++i)
    at[i] = params + total, total += tensors[i].count;
  std::memset(params, 0, total * sizeof(float));
  auto normal = [&](ParamId id, float std, size_t count) {
    float *p = at[id];
    for (size_t i = 0; i < count; ++i)
      p[i] = rng.normal() * std;
  };
  // The padding rows of wte stay zero (as llm.c): they are never predicted.
  normal(WTE, 0.02f, size_t(cfg.vocab_size) * cfg.n_embd);
  normal(WPE, 0.02f, tensors[WPE].count);
  normal(QKVW, 0.02f, tensors[QKVW].count);
  normal(ATTPROJW, std_res, tensors[ATTPROJW].count);
  normal(FCW, 0.02f, tensors[FCW].count);
  normal(FCPROJW, std_res, tensors[FCPROJW].count);
  if (tensors[LMHEAD].count) normal(LMHEAD, 0.02f, size_t(cfg.vocab_size) * cfg.n_embd);
  for (ParamId id : {LN1W, LN2W, LNFW})
    for (size_t i = 0; i < tensors[id].count; ++i)
      at[id][i] = 1.0f;
  if (cfg.zero_init_proj) // drawn above and cleared, so the other tensors keep their numbers
    for (ParamId id : {ATTPROJW, FCPROJW, LMHEAD})
      std::memset(at[id], 0, tensors[id].count * sizeof(float));
}

namespace {
constexpr bool fused_gelu(::finegpt::Backend kind, const GPTConfig &cfg, int recompute) {
  // The CUDA fc GEMM's GELU epilogue (needs 4C % 8 == 0) rounds GELU from the fp32 accumulator;
  // levels 1-2 recompute GELU from the stored bf16 pre-activation, so there the forward uses the
  // same separate GELU pass and backward sees the forward's values bit for bit.
  // ReLU^2 has no epilogue: it runs as its own pass.
  return kind == ::finegpt::Backend::CUDA && !cfg.relu2 && (4 * cfg.n_embd) % 8 == 0 &&
         recompute != 1 && recompute != 2;
}
} // namespace

template <class Backend>
Model<Backend>::Model(const GPTConfig &cfg, int B, int T, ModelOptions opt)
    : cfg_(cfg), B_(B), T_(T), opt_(opt), ctx_(cfg, B, T, opt),
      fused_gelu_(fused_gelu(Backend::kind, cfg, opt.recompute)) {
  PlanOptions o;
  o.backend = Backend::kind, o.precision = Backend::precision, o.recompute = opt.recompute;
  o.cudnn_attention = opt.cudnn_attention, o.optimizer = false;
  plan_ = plan_memory(cfg, B, T, o);
  const auto tensors = param_tensors(cfg_);
  for (int i = 0; i < kNumParamTensors; ++i) {
    offsets_[i] = P_;
    counts_[i] = tensors[i].count;
    P_ += tensors[i].count;
  }
  // One block per group. Parameters and gradients are packed tensor after tensor (the flat order,
  // so offsets are the same in both); every other buffer starts Backend::kAlign-aligned.
  std::vector<std::pair<const Buffer *, unsigned char *>> where;
  for (MemGroup g : {MemGroup::Parameters, MemGroup::Gradients, MemGroup::Activations,
                     MemGroup::Scratch, MemGroup::Workspace}) {
    const bool packed = g == MemGroup::Parameters || g == MemGroup::Gradients;
    std::vector<std::pair<const Buffer *, size_t>> at;
    size_t bytes = 0;
    for (const auto &b : plan_.buffers) {
      if (b.group != g) continue;
      if (!packed) bytes = (bytes + Backend::kAlign - 1) / Backend::kAlign * Backend::kAlign;
      at.emplace_back(&b, bytes);
      bytes += b.bytes;
    }
    if (at.empty()) continue;
    blocks_.emplace_back(bytes);
    bytes_ += bytes;
    for (auto [b, off] : at)
      where.emplace_back(b, blocks_.back().data() + off);
  }
  auto find = [&](const char *name, size_t elem_bytes) -> void * {
    for (auto [b, p] : where)
      if (b->name == name) {
        FINEGPT_CHECK(size_t(b->dtype_bytes) == elem_bytes || elem_bytes == 1, "internal: buffer '",
                      name, "' holds ", b->dtype_bytes, "-byte elements, not ", elem_bytes);
        return p;
      }
    return nullptr;
  };
  auto real = [&](const char *name) {
    void *p = find(name, sizeof(Real));
    FINEGPT_CHECK(p, "internal: buffer '", name, "' is not in the memory plan");
    return static_cast<Real *>(p);
  };
  auto fp32 = [&](const char *name) { return static_cast<float *>(find(name, 4)); };
  auto layers = [&](const char *name) { return int(plan_.find(name)->shape[0]); };
  params_ = real("wte");
  grads_ = real("grad.wte");
  FINEGPT_CHECK(real("lnfw") == params_ + offsets_[LNFW] &&
                    real("grad.lnfw") == grads_ + offsets_[LNFW],
                "internal: plan and parameter layout disagree");
  Acts &a = acts_;
  a.inputs = static_cast<int32_t *>(find("inputs", 4));
  a.targets = static_cast<int32_t *>(find("targets", 4));
  a.encoded = real("encoded"), a.ln1 = real("ln1"), a.qkv = real("qkv"), a.atty = real("atty");
  a.res2 = real("residual2"), a.ln2 = real("ln2"), a.fch = real("fch");
  a.fch_gelu = real("fch_gelu"), a.res3 = real("residual3"), a.lnf = real("lnf");
  a.logits = real("logits");
  a.ln1_mean = fp32("ln1_mean"), a.ln1_rstd = fp32("ln1_rstd"); // means: null with RMSNorm
  a.qk_rstd = fp32("qk_rstd");                                  // null without QK-norm
  a.ln2_mean = fp32("ln2_mean"), a.ln2_rstd = fp32("ln2_rstd");
  a.lnf_mean = fp32("lnf_mean"), a.lnf_rstd = fp32("lnf_rstd"), a.losses = fp32("losses");
  a.att = fp32(Backend::kAttentionState);
  a.branch = real("branch_out"), a.dresidual = real("dresidual"), a.dbranch = real("dbranch");
  a.dbtc = real("dbtc"), a.dqkv = real("dqkv"), a.dfch = real("dfch");
  a.datt = fp32("datt");                     // the CPU attention backward's scratch
  a.reduce_scratch = fp32("reduce_scratch"); // CUDA: the gradient norm's partial sums
  a.workspace = static_cast<unsigned char *>(find("cublaslt_workspace", 1));
  if (a.workspace) a.workspace_bytes = plan_.find("cublaslt_workspace")->bytes;
  FINEGPT_CHECK(a.inputs && a.targets && a.att && a.losses && (a.ln1_mean || cfg_.rmsnorm) &&
                    (a.qk_rstd || !cfg_.qk_norm),
                "internal: the plan lacks a buffer");
  a.layers_ln = layers("ln1"), a.layers_gelu = layers("fch_gelu"), a.layers_block = layers("qkv");
  a.layers_att = layers(Backend::kAttentionState);
  Backend::check_workspace(cfg_, B, T, opt_, a.workspace_bytes);
  Backend::zero(grads_, P_ * sizeof(Real));
  host_losses_.resize(size_t(B) * T);
}

template <class Backend> void Model<Backend>::init_weights(uint64_t seed) {
  if constexpr (std::is_same_v<Real, float> && Backend::kind == ::finegpt::Backend::CPU) {
    init_gpt_weights(cfg_, params_, seed); // in place: no second copy of the parameters
  } else {
    std::vector<float> host(P_);
    init_gpt_weights(cfg_, host.data(), seed);
    set_params(host.data());
  }
}

template <class Backend> void Model<Backend>::set_params(const float *host) {
  Backend::store(params_, host, P_);
}

template <class Backend> void Model<Backend>::get_params(float *host) const {
  Backend::load(host, params_, P_);
}

template <class Backend> void Model<Backend>::get_grads(float *host) const {
  Backend::load(host, grads_, P_);
}

template <class Backend> void Model<Backend>::zero_grads() {
  Backend::zero(grads_, P_ * sizeof(Real));
}

template <class Backend>
typename Model<Backend>::LayerActs Model<Backend>::layer(int l, int B, int T) const {
  const size_t C = cfg_.n_embd, BT = size_t(B) * T;
  // A buffer's slice for layer l: (L, B, T, ...) buffers hold every layer; those the recompute
  // level shrank to (1, B, T, ...) hold the layer being worked on.
  auto at = [&](auto *base, int layers, size_t per_token) {
    return base + (layers == 1 ? 0 : size_t(l)) * BT * per_token;
  };
  const Acts &s = acts_;
  LayerActs a;
  a.res_in = l == 0 ? s.encoded : s.res3 + size_t(l - 1) * BT * C;
  a.ln1 = at(s.ln1, s.layers_ln, C);
  a.ln1_mean = s.ln1_mean ? at(s.ln1_mean, s.layers_block, 1) : nullptr;
  a.ln1_rstd = at(s.ln1_rstd, s.layers_block, 1);
  a.qkv = at(s.qkv, s.layers_block, 3 * C);
  a.atty = at(s.atty, s.layers_block, C);
  a.att = at(s.att, s.layers_att, Backend::attention_state_per_token(cfg_.n_head, T));
  a.res2 = at(s.res2, s.layers_block, C);
  a.ln2 = at(s.ln2, s.layers_ln, C);
  a.ln2_mean = s.ln2_mean ? at(s.ln2_mean, s.layers_block, 1) : nullptr;
  a.qk_rstd = s.qk_rstd ? at(s.qk_rstd, s.layers_block, 2 * size_t(cfg_.n_head)) : nullptr;
  a.ln2_rstd = at(s.ln2_rstd, s.layers_block, 1);
  a.fch = at(s.fch, s.layers_block, 4 * C);
  a.fch_gelu = at(s.fch_gelu, s.layers_gelu, 4 * C);
  a.res3 = s.res3 + size_t(l) * BT * C; // each layer's output: kept at every level
  a.branch = s.branch;
  return a;
}

template <class Backend>
void Model<Backend>::norm_forward(Real *out, float *mean, float *rstd, const Real *inp, ParamId w,
                                  ParamId b, size_t off, int N) const {
  if (cfg_.rmsnorm)
    ops::rmsnorm_forward(out, rstd, inp, param(w) + off, N, cfg_.n_embd);
  else
    ops::layernorm_forward(out, mean, rstd, inp, param(w) + off, bias(b, off), N, cfg_.n_embd);
}

template <class Backend>
void Model<Backend>::norm_backward(Real *dinp, ParamId w, ParamId b, size_t off, const Real *dout,
                                   const Real *inp, const float *mean, const float *rstd, int N) {
  if (cfg_.rmsnorm)
    ops::rmsnorm_backward(dinp, grad(w) + off, dout, inp, param(w) + off, rstd, N, cfg_.n_embd);
  else
    ops::layernorm_backward(dinp, grad(w) + off, bias_grad(b, off), dout, inp, param(w) + off, mean,
                            rstd, N, cfg_.n_embd);
}

template <class Backend>
void Model<Backend>::attention_forward(const LayerActs &a, int B, int T, Dropout d) const {
  Backend::attention_forward(a.atty, a.att, a.qkv, B, T, cfg_.n_embd, cfg_.n_head, d,
                             opt_.cudnn_attention);
}

template <class Backend>
void Model<Backend>::upload_tokens(int32_t *dst, const int32_t *host, int N, const char *what) {
  const int V = cfg_.vocab_size;
  for (int i = 0; i < N; ++i)
    FINEGPT_CHECK(host[i] >= 0 && host[i] < V, what, " id ", host[i],
                  " is outside the vocabulary (", V, ")");
  Backend::upload(dst, host, sizeof(int32_t) * N);
}

template <class Backend> void Model<Backend>::forward_logits(int B, int T, uint64_t key) {
  const int C = cfg_.n_embd, L = cfg_.n_layer, Vp = cfg_.padded_vocab_size, N = B * T;
  ops::encoder_forward(acts_.encoded, acts_.inputs, param(WTE), wpe(), B, T, C,
                       drop(key, -1, kDropEmbedding));
  auto attention = [&](const LayerActs &a, Dropout d) { attention_forward(a, B, T, d); };
  for (int l = 0; l < L; ++l)
    block_forward(l, B, T, 0, layer(l, B, T), key, /*write_output=*/true, attention);
  const Real *last = acts_.res3 + size_t(L - 1) * N * C;
  norm_forward(acts_.lnf, acts_.lnf_mean, acts_.lnf_rstd, last, LNFW, LNFB, 0, N);
  ops::matmul_forward(acts_.logits, acts_.lnf, head(), static_cast<const Real *>(nullptr), N, C,
                      Vp);
  softcap(acts_.logits, size_t(N) * Vp);
}

template <class Backend>
float Model<Backend>::forward(const int32_t *inputs, const int32_t *targets, int B, int T,
                              uint64_t dropout_key) {
  FINEGPT_CHECK(B > 0 && B <= B_ && T > 0 && T <= T_, "internal: forward (", B, ",", T,
                ") exceeds the planned (", B_, ",", T_, ")");
  bind_workspace();
  const int N = B * T;
  upload_tokens(acts_.inputs, inputs, N, "token");
  forward_logits(B, T, dropout_key);
  if (!targets) return 0.0f;
  upload_tokens(acts_.targets, targets, N, "target");
  ops::crossentropy_forward_backward(acts_.losses, acts_.logits, acts_.targets, N, cfg_.vocab_size,
                                     cfg_.padded_vocab_size, 0.0f, cfg_.logit_softcap);
  return mean_loss(N);
}

template <class Backend>
float Model<Backend>::forward_backward(const int32_t *inputs, const int32_t *targets, int B, int T,
                                       float loss_scale, uint64_t dropout_key,
                                       GradExchange *exchange) {
  FINEGPT_CHECK(B > 0 && B <= B_ && T > 0 && T <= T_, "internal: forward (", B, ",", T,
                ") exceeds the planned (", B_, ",", T_, ")");
  bind_workspace();
  const int N = B * T;
  upload_tokens(acts_.inputs, inputs, N, "token");
  upload_tokens(acts_.targets, targets, N, "target");
  forward_logits(B, T, dropout_key);
  // The fused loss-and-gradient pass: the logits become their gradient.
  ops::crossentropy_forward_backward(acts_.losses, acts_.logits, acts_.targets, N, cfg_.vocab_size,
                                     cfg_.padded_vocab_size, loss_scale / float(N),
                                     cfg_.logit_softcap);
  backward(B, T, dropout_key, exchange);
  // The losses are read after the backward is queued: a GPU host does not wait for the forward.
  return mean_loss(N);
}

template <class Backend> float Model<Backend>::mean_loss(int N) {
  Backend::download(host_losses_.data(), acts_.losses, sizeof(float) * N);
  double sum = 0.0;
  for (int i = 0; i < N; ++i)
    sum += host_losses_[i];
  return float(sum / N);
}

template <class Backend>
void Model<Backend>::recompute_for_backward(int l, int B, int T, const LayerActs &a, uint64_t key) {
  const int C = cfg_.n_embd, N = B * T;
  switch (opt_.recompute) {
  case 0:
    return;
  case 3: // the whole block, from its kept input (dropout masks are pure functions of the key)
    block_forward(l, B, T, 0, a, key, /*write_output=*/false,
                  [&](const LayerActs &la, Dropout d) { attention_forward(la, B, T, d); });
    return;
  case 2: // the norms' outputs from their inputs (the statistics come out the same)
    norm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, a.res_in, LN1W, LN1B, size_t(l) * C, N);
    norm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.res2, LN2W, LN2B, size_t(l) * C, N);
    [[fallthrough]];
  case 1: // the activation from the kept pre-activation, by the forward's own op (not fused)
    activation_forward(a.fch_gelu, a.fch, 4 * size_t(N) * C);
    return;
  }
}

template <class Backend> std::vector<Range> Model<Backend>::layer_ranges(int l) const {
  std::vector<Range> r;
  const size_t L = size_t(cfg_.n_layer);
  for (int id = LN1W; id <= FCPROJB; ++id)
    if (counts_[id]) {
      const size_t per_layer = counts_[id] / L, begin = offsets_[id] + size_t(l) * per_layer;
      r.emplace_back(begin, begin + per_layer);
    }
  return r;
}

template <class Backend>
void Model<Backend>::backward(int B, int T, uint64_t key, GradExchange *exchange) {
  const int C = cfg_.n_embd, NH = cfg_.n_head, L = cfg_.n_layer, Vp = cfg_.padded_vocab_size;
  const int N = B * T;
  const size_t BTC = size_t(N) * C;
  Real *dresidual = acts_.dresidual, *dbtc = acts_.dbtc, *dqkv = acts_.dqkv, *dfch = acts_.dfch;
  // The gradient entering a residual branch: dresidual itself without dropout.
  auto branch_grad = [&](Dropout d) -> const Real * {
    if (d.p == 0.0f) return dresidual;
    ops::dropout_backward(acts_.dbranch, dresidual, BTC, d);
    return acts_.dbranch;
  };
  const Real *last = acts_.res3 + size_t(L - 1) * BTC;
  ops::matmul_backward(dbtc, head_grad(), static_cast<Real *>(nullptr), acts_.logits, acts_.lnf,
                       head(), N, C, Vp);
  Backend::zero(dresidual, BTC * sizeof(Real));
  norm_backward(dresidual, LNFW, LNFB, 0, dbtc, last, acts_.lnf_mean, acts_.lnf_rstd, N);
  for (int l = L - 1; l >= 0; --l) {
    const LayerActs a = layer(l, B, T);
    recompute_for_backward(l, B, T, a, key);
    // MLP branch: res3 = res2 + drop(fcproj(gelu(fc(ln2(res2)))))
    const Real *dbranch = branch_grad(drop(key, l, kDropResidMlp));
    ops::matmul_backward(dfch, grad(FCPROJW) + size_t(l) * C * 4 * C, bias_grad(FCPROJB, l * C),
                         dbranch, a.fch_gelu, param(FCPROJW) + size_t(l) * C * 4 * C, N, 4 * C, C);
    if (cfg_.relu2)
      ops::relu2_backward(dfch, a.fch, dfch, 4 * BTC);
    else
      ops::gelu_backward(dfch, a.fch, dfch, 4 * BTC);
    ops::matmul_backward(dbtc, grad(FCW) + size_t(l) * 4 * C * C, bias_grad(FCB, size_t(l) * 4 * C),
                         dfch, a.ln2, param(FCW) + size_t(l) * 4 * C * C, N, C, 4 * C);
    norm_backward(dresidual, LN2W, LN2B, size_t(l) * C, dbtc, a.res2, a.ln2_mean, a.ln2_rstd, N);
    // Attention branch: res2 = res_in + drop(attproj(attention(qkv(ln1(res_in)))))
    dbranch = branch_grad(drop(key, l, kDropResidAttn));
    ops::matmul_backward(dbtc, grad(ATTPROJW) + size_t(l) * C * C, bias_grad(ATTPROJB, l * C),
                         dbranch, a.atty, param(ATTPROJW) + size_t(l) * C * C, N, C, C);
    Backend::attention_backward(dqkv, acts_.datt, dbtc, a.qkv, a.atty, a.att, B, T, C, NH,
                                drop(key, l, kDropAttention), opt_.cudnn_attention);
    if (cfg_.qk_norm) ops::qk_norm_backward(dqkv, a.qkv, a.qk_rstd, N, C, NH);
    if (cfg_.rotary) ops::rotary_backward(dqkv, B, T, C, NH);
    ops::matmul_backward(dbtc, grad(QKVW) + size_t(l) * 3 * C * C,
                         bias_grad(QKVB, size_t(l) * 3 * C), dqkv, a.ln1,
                         param(QKVW) + size_t(l) * 3 * C * C, N, C, 3 * C);
    norm_backward(dresidual, LN1W, LN1B, size_t(l) * C, dbtc, a.res_in, a.ln1_mean, a.ln1_rstd, N);
    if (exchange) exchange->ready(layer_ranges(l)); // final: summed while the layers below run
  }
  ops::encoder_backward(grad(WTE), counts_[WPE] ? grad(WPE) : nullptr, dresidual, acts_.inputs, B,
                        T, C, drop(key, -1, kDropEmbedding));
  if (exchange) {
    std::vector<Range> rest;
    for (ParamId id : {WTE, WPE, LNFW, LNFB, LMHEAD})
      if (counts_[id]) rest.emplace_back(offsets_[id], offsets_[id] + counts_[id]);
    exchange->ready(rest);
  }
}

template class Model<CpuBackend>;
template class Model<CudaBackend>;

} // namespace finegpt
