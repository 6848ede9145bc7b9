// GPT forward and backward against the op seam (see gpt.h). Shapes: B batch, T time,
// C channels, NH heads, L layers, V vocab, Vp padded vocab; per-layer activation slices are
// laid out compactly for the (B,T) of the call.
#include "model/gpt.h"

#include "core/error.h"
#include "core/rng.h"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace finegpt {

namespace {
std::atomic<size_t> g_arena_bytes{0};
}

Arena::Arena(size_t floats) : ptr_(nullptr, ArenaFree{floats * sizeof(float)}), n_(floats) {
  size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64;
  float *p = static_cast<float *>(std::aligned_alloc(64, bytes ? bytes : 64));
  if (!p) throw std::bad_alloc();
  ptr_.reset(p);
  g_arena_bytes += floats * sizeof(float);
}

void ArenaFree::operator()(float *p) const {
  std::free(p);
  g_arena_bytes -= bytes;
}

size_t Arena::live_bytes() { return g_arena_bytes.load(); }

uint64_t dropout_site_key(uint64_t key, int layer, int site) {
  return key ? mix64(key ^ mix64(uint64_t(layer + 1) * 16 + uint64_t(site))) : 0;
}

GPT::GPT(const GPTConfig &cfg, int B, int T)
    : cfg_(cfg), B_(B), T_(T), plan_(plan_memory(cfg, B, T, PlanOptions{.optimizer = false})) {
  params_ = Arena(plan_.elems(MemGroup::Parameters));
  grads_ = Arena(plan_.elems(MemGroup::Gradients));
  acts_ = Arena(plan_.elems(MemGroup::Activations) + plan_.elems(MemGroup::Scratch));
  auto tensors = param_tensors(cfg_);
  size_t off = 0;
  for (int i = 0; i < kNumParamTensors; ++i) {
    offsets_[i] = off;
    counts_[i] = tensors[i].count;
    off += tensors[i].count;
  }
  FINEGPT_CHECK(off == params_.size(), "internal: plan and parameter layout disagree");
  // Activations and scratch: carved from one arena in plan order. Integer token buffers are
  // int32, the same size as a float.
  float *p = acts_.data();
  for (const auto &b : plan_.buffers) {
    if (b.group != MemGroup::Activations && b.group != MemGroup::Scratch) continue;
    act_ptrs_.emplace_back(b.name, p);
    p += b.elems;
  }
  std::memset(grads_.data(), 0, grads_.size() * sizeof(float));
}

float *GPT::act(const char *name) {
  for (auto &[n, p] : act_ptrs_)
    if (n == name) return p;
  fail("internal: activation '", name, "' is not in the memory plan");
}

const float *GPT::act(const char *name) const { return const_cast<GPT *>(this)->act(name); }

const float *GPT::layer_qkv(int l) const {
  return act("qkv") + size_t(l) * lastB_ * lastT_ * 3 * cfg_.n_embd;
}

void GPT::zero_grads() { std::memset(grads_.data(), 0, grads_.size() * sizeof(float)); }

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
  for (ParamId id : {LN1W, LN2W, LNFW})
    for (size_t i = 0; i < tensors[id].count; ++i)
      at[id][i] = 1.0f;
}

void GPT::init_weights(uint64_t seed) { init_gpt_weights(cfg_, params_.data(), seed); }

float GPT::forward(const int32_t *inputs, const int32_t *targets, int B, int T,
                   uint64_t dropout_key) {
  FINEGPT_CHECK(B > 0 && B <= B_ && T > 0 && T <= T_, "internal: forward (", B, ",", T,
                ") exceeds the planned (", B_, ",", T_, ")");
  lastB_ = B, lastT_ = T;
  const int C = cfg_.n_embd, NH = cfg_.n_head, L = cfg_.n_layer;
  const int V = cfg_.vocab_size, Vp = cfg_.padded_vocab_size;
  const int N = B * T;
  const size_t BTC = size_t(N) * C;
  const float p = dropout_key ? cfg_.dropout : 0.0f;
  auto drop = [&](int layer, int site) {
    return Dropout{p, dropout_site_key(dropout_key, layer, site)};
  };
  auto *inp = reinterpret_cast<int32_t *>(act("inputs"));
  std::memcpy(inp, inputs, sizeof(int32_t) * N);
  for (int i = 0; i < N; ++i)
    FINEGPT_CHECK(inp[i] >= 0 && inp[i] < V, "token id ", inp[i], " is outside the vocabulary (", V,
                  ")");

  float *residual = act("encoded");
  cpu::encoder_forward(residual, inp, param(WTE), param(WPE), B, T, C, drop(-1, kDropEmbedding));
  const bool bias = cfg_.bias;
  float *branch = act("branch_out");
  for (int l = 0; l < L; ++l) {
    float *ln1 = act("ln1") + l * BTC, *ln1_mean = act("ln1_mean") + l * N;
    float *ln1_rstd = act("ln1_rstd") + l * N, *qkv = act("qkv") + l * 3 * BTC;
    float *atty = act("atty") + l * BTC;
    float *att = act("att") + size_t(l) * B * NH * T * T;
    float *res2 = act("residual2") + l * BTC, *ln2 = act("ln2") + l * BTC;
    float *ln2_mean = act("ln2_mean") + l * N, *ln2_rstd = act("ln2_rstd") + l * N;
    float *fch = act("fch") + l * 4 * BTC, *fch_gelu = act("fch_gelu") + l * 4 * BTC;
    float *res3 = act("residual3") + l * BTC;
    cpu::layernorm_forward(ln1, ln1_mean, ln1_rstd, residual, param(LN1W) + l * C,
                           bias ? param(LN1B) + l * C : nullptr, N, C);
    cpu::matmul_forward(qkv, ln1, param(QKVW) + size_t(l) * 3 * C * C,
                        bias ? param(QKVB) + l * 3 * C : nullptr, N, C, 3 * C);
    cpu::attention_forward(atty, att, qkv, B, T, C, NH, drop(l, kDropAttention));
    cpu::matmul_forward(branch, atty, param(ATTPROJW) + size_t(l) * C * C,
                        bias ? param(ATTPROJB) + l * C : nullptr, N, C, C);
    cpu::residual_forward(res2, residual, branch, BTC, drop(l, kDropResidAttn));
    cpu::layernorm_forward(ln2, ln2_mean, ln2_rstd, res2, param(LN2W) + l * C,
                           bias ? param(LN2B) + l * C : nullptr, N, C);
    cpu::matmul_forward(fch, ln2, param(FCW) + size_t(l) * 4 * C * C,
                        bias ? param(FCB) + l * 4 * C : nullptr, N, C, 4 * C);
    cpu::gelu_forward(fch_gelu, fch, 4 * BTC);
    cpu::matmul_forward(branch, fch_gelu, param(FCPROJW) + size_t(l) * C * 4 * C,
                        bias ? param(FCPROJB) + l * C : nullptr, N, 4 * C, C);
    cpu::residual_forward(res3, res2, branch, BTC, drop(l, kDropResidMlp));
    residual = res3;
  }
  cpu::layernorm_forward(act("lnf"), act("lnf_mean"), act("lnf_rstd"), residual, param(LNFW),
                         bias ? param(LNFB) : nullptr, N, C);
  cpu::matmul_forward(act("logits"), act("lnf"), param(WTE), nullptr, N, C, Vp);
  if (!targets) return 0.0f;
  auto *tgt = reinterpret_cast<int32_t *>(act("targets"));
  std::memcpy(tgt, targets, sizeof(int32_t) * N);
  for (int i = 0; i < N; ++i)
    FINEGPT_CHECK(tgt[i] >= 0 && tgt[i] < V, "target id ", tgt[i], " is outside the vocabulary (",
                  V, ")");
  float *losses = act("losses");
  cpu::crossentropy_forward_backward(losses, act("logits"), tgt, N, V, Vp, 0.0f);
  double sum = 0.0;
  for (int i = 0; i < N; ++i)
    sum += losses[i];
  return float(sum / N);
}

float GPT::forward_backward(const int32_t *inputs, const int32_t *targets, int B, int T,
                            float loss_scale, uint64_t dropout_key) {
  // The forward without its classifier pass, then the fused loss-and-gradient pass.
  forward(inputs, nullptr, B, T, dropout_key);
  const int N = B * T;
  auto *tgt = reinterpret_cast<int32_t *>(act("targets"));
  std::memcpy(tgt, targets, sizeof(int32_t) * N);
  for (int i = 0; i < N; ++i)
    FINEGPT_CHECK(tgt[i] >= 0 && tgt[i] < cfg_.vocab_size, "target id ", tgt[i],
                  " is outside the vocabulary (", cfg_.vocab_size, ")");
  float *losses = act("losses");
  cpu::crossentropy_forward_backward(losses, act("logits"), tgt, N, cfg_.vocab_size,
                                     cfg_.padded_vocab_size, loss_scale / float(N));
  double sum = 0.0;
  for (int i = 0; i < N; ++i)
    sum += losses[i];
  backward(reinterpret_cast<int32_t *>(act("inputs")), B, T, dropout_key);
  return float(sum / N);
}

void GPT::backward(const int32_t *inputs, int B, int T, uint64_t dropout_key) {
  const int C = cfg_.n_embd, NH = cfg_.n_head, L = cfg_.n_layer, Vp = cfg_.padded_vocab_size;
  const int N = B * T;
  const size_t BTC = size_t(N) * C;
  const bool bias = cfg_.bias;
  const float p = dropout_key ? cfg_.dropout : 0.0f;
  auto drop = [&](int layer, int site) {
    return Dropout{p, dropout_site_key(dropout_key, layer, site)};
  };
  float *dresidual = act("dresidual"), *dbtc = act("dbtc"), *dbranch_buf = act("dbranch");
  float *dqkv = act("dqkv"), *dfch = act("dfch"), *datt = act("datt");
  // The gradient entering a residual branch: dresidual itself without dropout.
  auto branch_grad = [&](Dropout d) {
    if (d.p == 0.0f) return dresidual;
    cpu::dropout_backward(dbranch_buf, dresidual, BTC, d);
    return dbranch_buf;
  };
  const float *last = L > 0 ? act("residual3") + (L - 1) * BTC : act("encoded");
  cpu::matmul_backward(dbtc, grad(WTE), nullptr, act("logits"), act("lnf"), param(WTE), N, C, Vp);
  std::memset(dresidual, 0, BTC * sizeof(float));
  cpu::layernorm_backward(dresidual, grad(LNFW), bias ? grad(LNFB) : nullptr, dbtc, last,
                          param(LNFW), act("lnf_mean"), act("lnf_rstd"), N, C);
  for (int l = L - 1; l >= 0; --l) {
    const float *res_in = l == 0 ? act("encoded") : act("residual3") + (l - 1) * BTC;
    const float *ln1 = act("ln1") + l * BTC, *ln1_mean = act("ln1_mean") + l * N;
    const float *ln1_rstd = act("ln1_rstd") + l * N, *qkv = act("qkv") + l * 3 * BTC;
    const float *atty = act("atty") + l * BTC;
    const float *att = act("att") + size_t(l) * B * NH * T * T;
    const float *res2 = act("residual2") + l * BTC, *ln2 = act("ln2") + l * BTC;
    const float *ln2_mean = act("ln2_mean") + l * N, *ln2_rstd = act("ln2_rstd") + l * N;
    const float *fch = act("fch") + l * 4 * BTC, *fch_gelu = act("fch_gelu") + l * 4 * BTC;
    // MLP branch: res3 = res2 + drop(fcproj(gelu(fc(ln2(res2)))))
    float *dbranch = branch_grad(drop(l, kDropResidMlp));
    cpu::matmul_backward(dfch, grad(FCPROJW) + size_t(l) * C * 4 * C,
                         bias ? grad(FCPROJB) + l * C : nullptr, dbranch, fch_gelu,
                         param(FCPROJW) + size_t(l) * C * 4 * C, N, 4 * C, C);
    cpu::gelu_backward(dfch, fch, dfch, 4 * BTC);
    cpu::matmul_backward(dbtc, grad(FCW) + size_t(l) * 4 * C * C,
                         bias ? grad(FCB) + l * 4 * C : nullptr, dfch, ln2,
                         param(FCW) + size_t(l) * 4 * C * C, N, C, 4 * C);
    cpu::layernorm_backward(dresidual, grad(LN2W) + l * C, bias ? grad(LN2B) + l * C : nullptr,
                            dbtc, res2, param(LN2W) + l * C, ln2_mean, ln2_rstd, N, C);
    // Attention branch: res2 = res_in + drop(attproj(attention(qkv(ln1(res_in)))))
    dbranch = branch_grad(drop(l, kDropResidAttn));
    cpu::matmul_backward(dbtc, grad(ATTPROJW) + size_t(l) * C * C,
                         bias ? grad(ATTPROJB) + l * C : nullptr, dbranch, atty,
                         param(ATTPROJW) + size_t(l) * C * C, N, C, C);
    cpu::attention_backward(dqkv, datt, dbtc, qkv, att, B, T, C, NH, drop(l, kDropAttention));
    cpu::matmul_backward(dbtc, grad(QKVW) + size_t(l) * 3 * C * C,
                         bias ? grad(QKVB) + l * 3 * C : nullptr, dqkv, ln1,
                         param(QKVW) + size_t(l) * 3 * C * C, N, C, 3 * C);
    cpu::layernorm_backward(dresidual, grad(LN1W) + l * C, bias ? grad(LN1B) + l * C : nullptr,
                            dbtc, res_in, param(LN1W) + l * C, ln1_mean, ln1_rstd, N, C);
  }
  cpu::encoder_backward(grad(WTE), grad(WPE), dresidual, inputs, B, T, C, drop(-1, kDropEmbedding));
}

} // namespace finegpt
