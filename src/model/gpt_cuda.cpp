// GPT forward, backward and AdamW on the GPU (see gpt_cuda.h). The forward and backward mirror
// model/gpt.cpp line for line (same buffer names, same op order); the differences are the
// seam's: attention keeps its log-sum-exp ("att_lse") instead of the probabilities, the fc layer
// fuses bias and GELU into its GEMM, and tokens and losses cross to and from the host. Shapes:
// B batch, T time, C channels, NH heads, L layers, V vocab, Vp padded vocab, N = B*T.
#include "model/gpt_cuda.h"

#include "core/error.h"
#include "dist/nccl.h"
#include "model/gpt.h"

#include <algorithm>
#include <cmath>
#include <tuple>

namespace finegpt {

namespace cu = cuda;
using cu::bf16;

namespace {
constexpr size_t kAlign = 256; // bytes: every activation, scratch and workspace buffer
} // namespace

CudaGPT::CudaGPT(const GPTConfig &cfg, int B, int T, CudaModelOptions opt)
    : cfg_(cfg), B_(B), T_(T), recompute_(opt.recompute), cudnn_attention_(opt.cudnn_attention),
      // The fc GEMM's GELU epilogue (needs 4C % 8 == 0) rounds GELU from the fp32 accumulator;
      // levels 1-2 recompute GELU from the stored bf16 pre-activation, so there the forward uses
      // the same separate GELU pass and backward sees the forward's values bit for bit.
      fused_gelu_((4 * cfg.n_embd) % 8 == 0 && opt.recompute != 1 && opt.recompute != 2),
      par_(opt.parallel), world_(opt.parallel.host ? opt.parallel.host->world() : 1) {
  const int recompute = opt.recompute;
  FINEGPT_CHECK(
      recompute >= 0 && recompute <= 3,
      "recompute must be 0 (none), 1 (GELU), 2 (GELU + LayerNorm) or 3 (whole block), got ",
      recompute);
  if (cudnn_attention_) {
    FINEGPT_CHECK(cu::cudnn_attention_compiled(),
                  "attention = 'cudnn': this build has no cuDNN attention (it needs cuDNN 9 and "
                  "the cudnn-frontend headers: scripts/setup.sh); use attention = 'finegpt'");
    FINEGPT_CHECK(cfg.dropout == 0.0f, "attention = 'cudnn' cannot apply dropout (cuDNN's masks "
                                       "are not finegpt's): set dropout = 0.0, or attention = "
                                       "'finegpt'");
    // cuDNN wants 16-byte aligned tensors: every layer's slice of att_lse (B NH T floats).
    FINEGPT_CHECK(size_t(B) * cfg.n_head * T % 4 == 0,
                  "attention = 'cudnn' needs batch_size x n_head x block_size to be a multiple of "
                  "4 (got ",
                  B, " x ", cfg.n_head, " x ", T, "); or use attention = 'finegpt'");
  }
  const int HS = cfg.n_embd / cfg.n_head;
  FINEGPT_CHECK(HS == 32 || HS == 64 || HS == 128, "head size n_embd / n_head = ", HS,
                " is not supported by the CUDA attention (32, 64 or 128), or use device = 'cpu'");
  cu::set_device(opt.device);
  PlanOptions o;
  FINEGPT_CHECK(world_ == 1 || par_.device, "internal: ", world_, " ranks without NCCL");
  if (!par_.device) par_.zero_stage = 0; // one rank without NCCL: nothing to shard, same plan
  FINEGPT_CHECK(par_.zero_stage == 0 || par_.zero_stage == 1, "zero_stage must be 0 or 1 (got ",
                par_.zero_stage, ")");
  o.backend = Backend::CUDA, o.precision = Precision::BF16, o.recompute = recompute;
  o.zero_stage = par_.zero_stage, o.world = world_;
  o.cudnn_attention = cudnn_attention_;
  plan_ = plan_memory(cfg, B, T, o);
  const auto tensors = param_tensors(cfg_);
  for (int i = 0; i < kNumParamTensors; ++i) {
    offsets_[i] = P_;
    counts_[i] = tensors[i].count;
    P_ += tensors[i].count;
  }
  shard_end_ = P_;
  if (par_.zero_stage == 1)
    std::tie(shard_begin_, shard_end_) = par_.host->shard_range(P_, par_.host->rank());
  // One arena per group. Parameters and gradients are packed tensor after tensor (the flat
  // order of the CPU model, so offsets are shared); every other buffer starts 256-byte aligned.
  for (MemGroup g : {MemGroup::Parameters, MemGroup::Gradients, MemGroup::Optimizer,
                     MemGroup::Activations, MemGroup::Scratch, MemGroup::Workspace}) {
    const bool packed = g == MemGroup::Parameters || g == MemGroup::Gradients;
    std::vector<std::pair<const Buffer *, size_t>> at;
    size_t bytes = 0;
    for (const auto &b : plan_.buffers) {
      if (b.group != g) continue;
      if (!packed) bytes = (bytes + kAlign - 1) / kAlign * kAlign;
      at.emplace_back(&b, bytes);
      bytes += b.bytes;
    }
    if (at.empty()) continue;
    arenas_.emplace_back(bytes);
    allocated_ += bytes;
    unsigned char *base = arenas_.back().data();
    for (auto [b, off] : at)
      named_.push_back({b->name, base + off, b->dtype_bytes});
  }
  params_ = buf<bf16>("wte");
  grads_ = buf<bf16>("grad.wte");
  FINEGPT_CHECK(buf<bf16>("lnfw") == params_ + offsets_[LNFW] &&
                    buf<bf16>("grad.lnfw") == grads_ + offsets_[LNFW],
                "internal: plan and parameter layout disagree");
  master_ = buf<float>("master");
  m_ = buf<float>("adamw.m");
  v_ = buf<float>("adamw.v");
  workspace_ = buf<unsigned char>("cublaslt_workspace");
  workspace_bytes_ = plan_.find("cublaslt_workspace")->bytes;
  if (cudnn_attention_) { // cuDNN's own figure (it builds the graphs) against the plan's
    const size_t need = cu::cudnn_attention_workspace_bytes(B, T, cfg.n_embd, cfg.n_head);
    FINEGPT_CHECK(need <= workspace_bytes_, "attention = 'cudnn' needs ",
                  format_bytes(double(need)), " of workspace at micro-batch ", B, " x ", T,
                  ", the plan has ", format_bytes(double(workspace_bytes_)),
                  " (the plan's estimate is low: please report it); use attention = 'finegpt'");
  }
  cu::device_memset(grads_, 0, P_ * sizeof(bf16));
  cu::device_memset(m_, 0, plan_.find("adamw.m")->bytes);
  cu::device_memset(v_, 0, plan_.find("adamw.v")->bytes);
  host_losses_.resize(size_t(B) * T);
}

CudaGPT::~CudaGPT() {
  // Collectives still running on our gradients finish (or time out and abort) before the arenas
  // go: after an error between the last backward and step(), for instance.
  if (par_.device) {
    try {
      par_.device->synchronize();
    } catch (const Error &) {
    }
  }
  // The backend must not keep lending our workspace once it is freed.
  cu::release();
}

void *CudaGPT::lookup(const char *name, size_t elem_bytes) const {
  for (const auto &n : named_)
    if (n.name == name) {
      FINEGPT_CHECK(elem_bytes == 1 || size_t(n.dtype_bytes) == elem_bytes, "internal: buffer '",
                    name, "' holds ", n.dtype_bytes, "-byte elements, not ", elem_bytes);
      return n.ptr;
    }
  fail("internal: buffer '", name, "' is not in the memory plan");
}

void CudaGPT::init_weights(uint64_t seed) {
  std::vector<float> host(P_);
  init_gpt_weights(cfg_, host.data(), seed);
  set_params(host.data());
}

void CudaGPT::set_params(const float *host) {
  cu::copy_to_device(master_, host + shard_begin_, (shard_end_ - shard_begin_) * sizeof(float));
  std::vector<bf16> h(P_);
  for (size_t i = 0; i < P_; ++i)
    h[i] = cu::to_bf16(host[i]);
  cu::copy_to_device(params_, h.data(), P_ * sizeof(bf16));
}

void CudaGPT::gather_shards(float *host, const float *device_shard) const {
  cu::copy_to_host(host + shard_begin_, device_shard, (shard_end_ - shard_begin_) * sizeof(float));
  if (par_.zero_stage == 1) par_.host->all_gather(host, P_);
}

void CudaGPT::get_params(float *host) const { gather_shards(host, master_); }

void CudaGPT::get_grads(float *host) const {
  std::vector<bf16> h(P_);
  cu::copy_to_host(h.data(), grads_, P_ * sizeof(bf16));
  for (size_t i = 0; i < P_; ++i)
    host[i] = cu::to_float(h[i]);
}

void CudaGPT::zero_grads() { cu::device_memset(grads_, 0, P_ * sizeof(bf16)); }

void CudaGPT::get_moments(float *m, float *v) const {
  gather_shards(m, m_);
  gather_shards(v, v_);
}

void CudaGPT::set_moments(const float *m, const float *v) {
  const size_t bytes = (shard_end_ - shard_begin_) * sizeof(float);
  cu::copy_to_device(m_, m + shard_begin_, bytes);
  cu::copy_to_device(v_, v + shard_begin_, bytes);
}

void CudaGPT::upload_tokens(const char *name, const int32_t *host, int N) {
  const int V = cfg_.vocab_size;
  for (int i = 0; i < N; ++i)
    FINEGPT_CHECK(host[i] >= 0 && host[i] < V, "token id ", host[i], " is outside the vocabulary (",
                  V, ")");
  cu::copy_to_device(buf<int32_t>(name), host, sizeof(int32_t) * N);
}

float CudaGPT::mean_loss(int N) {
  cu::copy_to_host(host_losses_.data(), buf<float>("losses"), sizeof(float) * N);
  double sum = 0.0;
  for (int i = 0; i < N; ++i)
    sum += host_losses_[i];
  return float(sum / N);
}

CudaGPT::LayerActs CudaGPT::layer_acts(int l, int B, int T) const {
  // A buffer's slice for layer l: (L, B, T, ...) buffers hold every layer; those the recompute
  // level shrank to (1, B, T, ...) hold the layer backward is working on.
  auto at = [&](const char *name, size_t per_token, auto *p) {
    const Buffer *b = plan_.find(name);
    const size_t layer = b->shape[0] == 1 ? 0 : size_t(l);
    return p + layer * size_t(B) * T * per_token;
  };
  const size_t C = cfg_.n_embd, NH = cfg_.n_head;
  LayerActs a;
  a.ln1 = at("ln1", C, buf<bf16>("ln1"));
  a.ln1_mean = at("ln1_mean", 1, buf<float>("ln1_mean"));
  a.ln1_rstd = at("ln1_rstd", 1, buf<float>("ln1_rstd"));
  a.qkv = at("qkv", 3 * C, buf<bf16>("qkv"));
  a.atty = at("atty", C, buf<bf16>("atty"));
  a.lse = at("att_lse", NH, buf<float>("att_lse"));
  a.res2 = at("residual2", C, buf<bf16>("residual2"));
  a.ln2 = at("ln2", C, buf<bf16>("ln2"));
  a.ln2_mean = at("ln2_mean", 1, buf<float>("ln2_mean"));
  a.ln2_rstd = at("ln2_rstd", 1, buf<float>("ln2_rstd"));
  a.fch = at("fch", 4 * C, buf<bf16>("fch"));
  a.fch_gelu = at("fch_gelu", 4 * C, buf<bf16>("fch_gelu"));
  a.res3 = at("residual3", C, buf<bf16>("residual3"));
  a.res_in = l == 0 ? buf<bf16>("encoded") : buf<bf16>("residual3") + size_t(l - 1) * B * T * C;
  return a;
}

void CudaGPT::attention_forward(const LayerActs &a, int B, int T, Dropout drop) {
  const int C = cfg_.n_embd, NH = cfg_.n_head;
  if (cudnn_attention_)
    cu::attention_forward_cudnn(a.atty, a.lse, a.qkv, B, T, C, NH, drop);
  else
    cu::attention_forward(a.atty, a.lse, a.qkv, B, T, C, NH, drop);
}

void CudaGPT::attention_backward(bf16 *dqkv, const bf16 *dout, const LayerActs &a, int B, int T,
                                 Dropout drop) {
  const int C = cfg_.n_embd, NH = cfg_.n_head;
  if (cudnn_attention_)
    cu::attention_backward_cudnn(dqkv, dout, a.qkv, a.atty, a.lse, B, T, C, NH, drop);
  else
    cu::attention_backward(dqkv, dout, a.qkv, a.atty, a.lse, B, T, C, NH, drop);
}

void CudaGPT::block_forward(int l, int B, int T, const LayerActs &a, uint64_t key,
                            bool write_output) {
  const int C = cfg_.n_embd, N = B * T;
  const size_t BTC = size_t(N) * C;
  const float p = key ? cfg_.dropout : 0.0f;
  auto drop = [&](int site) { return Dropout{p, dropout_site_key(key, l, site)}; };
  auto at = [](const bf16 *base, size_t off) { return base ? base + off : nullptr; };
  bf16 *branch = buf<bf16>("branch_out");
  cu::layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, a.res_in, param(LN1W) + l * C,
                        at(param_or_null(LN1B), l * C), N, C);
  cu::matmul_forward(a.qkv, a.ln1, param(QKVW) + size_t(l) * 3 * C * C,
                     at(param_or_null(QKVB), size_t(l) * 3 * C), N, C, 3 * C);
  attention_forward(a, B, T, drop(kDropAttention));
  cu::matmul_forward(branch, a.atty, param(ATTPROJW) + size_t(l) * C * C,
                     at(param_or_null(ATTPROJB), l * C), N, C, C);
  cu::residual_forward(a.res2, a.res_in, branch, BTC, drop(kDropResidAttn));
  cu::layernorm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.res2, param(LN2W) + l * C,
                        at(param_or_null(LN2B), l * C), N, C);
  const bf16 *fcw = param(FCW) + size_t(l) * 4 * C * C;
  const bf16 *fcb = at(param_or_null(FCB), size_t(l) * 4 * C);
  if (fused_gelu_) {
    cu::matmul_forward_gelu(a.fch_gelu, a.fch, a.ln2, fcw, fcb, N, C, 4 * C);
  } else {
    cu::matmul_forward(a.fch, a.ln2, fcw, fcb, N, C, 4 * C);
    cu::gelu_forward(a.fch_gelu, a.fch, 4 * BTC);
  }
  if (!write_output) return; // recomputing for backward: the block's output is kept already
  cu::matmul_forward(branch, a.fch_gelu, param(FCPROJW) + size_t(l) * C * 4 * C,
                     at(param_or_null(FCPROJB), l * C), N, 4 * C, C);
  cu::residual_forward(a.res3, a.res2, branch, BTC, drop(kDropResidMlp));
}

void CudaGPT::recompute_for_backward(int l, int B, int T, const LayerActs &a, uint64_t key) {
  const int C = cfg_.n_embd, N = B * T;
  auto at = [](const bf16 *base, size_t off) { return base ? base + off : nullptr; };
  switch (recompute_) {
  case 0:
    return;
  case 3: // the whole block, from its kept input (dropout masks are pure functions of the key)
    block_forward(l, B, T, a, key, /*write_output=*/false);
    return;
  case 2: // the LayerNorm outputs from their inputs (the statistics come out the same)
    cu::layernorm_forward(a.ln1, a.ln1_mean, a.ln1_rstd, a.res_in, param(LN1W) + l * C,
                          at(param_or_null(LN1B), l * C), N, C);
    cu::layernorm_forward(a.ln2, a.ln2_mean, a.ln2_rstd, a.res2, param(LN2W) + l * C,
                          at(param_or_null(LN2B), l * C), N, C);
    [[fallthrough]];
  case 1: // GELU from the kept pre-activation, by the forward's own op (fused_gelu_ is off)
    cu::gelu_forward(a.fch_gelu, a.fch, 4 * size_t(N) * C);
    return;
  }
}

void CudaGPT::forward_logits(int B, int T, uint64_t key) {
  FINEGPT_CHECK(B > 0 && B <= B_ && T > 0 && T <= T_, "internal: forward (", B, ",", T,
                ") exceeds the planned (", B_, ",", T_, ")");
  cu::set_workspace(workspace_, workspace_bytes_);
  const int C = cfg_.n_embd, L = cfg_.n_layer, Vp = cfg_.padded_vocab_size;
  const int N = B * T;
  const float p = key ? cfg_.dropout : 0.0f;
  bf16 *residual = buf<bf16>("encoded");
  cu::encoder_forward(residual, buf<int32_t>("inputs"), param(WTE), param(WPE), B, T, C,
                      Dropout{p, dropout_site_key(key, -1, kDropEmbedding)});
  for (int l = 0; l < L; ++l)
    block_forward(l, B, T, layer_acts(l, B, T), key, /*write_output=*/true);
  const bf16 *last = L > 0 ? layer_acts(L - 1, B, T).res3 : residual;
  cu::layernorm_forward(buf<bf16>("lnf"), buf<float>("lnf_mean"), buf<float>("lnf_rstd"), last,
                        param(LNFW), param_or_null(LNFB), N, C);
  cu::matmul_forward(buf<bf16>("logits"), buf<bf16>("lnf"), param(WTE), nullptr, N, C, Vp);
}

void CudaGPT::forward_loss(const int32_t *inputs, const int32_t *targets, int B, int T, float dloss,
                           uint64_t key) {
  const int N = B * T;
  FINEGPT_CHECK(B > 0 && B <= B_ && T > 0 && T <= T_, "internal: forward (", B, ",", T,
                ") exceeds the planned (", B_, ",", T_, ")");
  upload_tokens("inputs", inputs, N);
  upload_tokens("targets", targets, N);
  forward_logits(B, T, key);
  cu::crossentropy_forward_backward(buf<float>("losses"), buf<bf16>("logits"),
                                    buf<int32_t>("targets"), N, cfg_.vocab_size,
                                    cfg_.padded_vocab_size, dloss);
}

float CudaGPT::forward(const int32_t *inputs, const int32_t *targets, int B, int T) {
  forward_loss(inputs, targets, B, T, 0.0f, 0);
  return mean_loss(B * T);
}

float CudaGPT::forward_backward(const int32_t *inputs, const int32_t *targets, int B, int T,
                                float loss_scale, uint64_t dropout_key, bool last_micro_step) {
  forward_loss(inputs, targets, B, T, loss_scale / float(B * T), dropout_key);
  // The losses are read after the backward is queued: the host does not wait for the forward.
  backward(B, T, dropout_key, last_micro_step && par_.device);
  return mean_loss(B * T);
}

void CudaGPT::reduce_grads(size_t begin, size_t n) {
  if (par_.zero_stage == 0) {
    par_.device->allreduce_sum(grads_ + begin, n);
    return;
  }
  for (int r = 0; r < world_; ++r) {
    const auto [rb, re] = par_.host->shard_range(P_, r);
    const size_t lo = std::max(begin, rb), hi = std::min(begin + n, re);
    if (lo < hi) par_.device->reduce_sum(grads_ + lo, hi - lo, r);
  }
}

void CudaGPT::backward(int B, int T, uint64_t key, bool reduce) {
  const int C = cfg_.n_embd, L = cfg_.n_layer, Vp = cfg_.padded_vocab_size;
  const int N = B * T;
  const size_t BTC = size_t(N) * C;
  const float p = key ? cfg_.dropout : 0.0f;
  auto drop = [&](int l, int site) { return Dropout{p, dropout_site_key(key, l, site)}; };
  bf16 *dresidual = buf<bf16>("dresidual"), *dbtc = buf<bf16>("dbtc");
  bf16 *dqkv = buf<bf16>("dqkv"), *dfch = buf<bf16>("dfch"), *dbranch_buf = buf<bf16>("dbranch");
  // The gradient entering a residual branch: dresidual itself without dropout.
  auto branch_grad = [&](Dropout d) {
    if (d.p == 0.0f) return dresidual;
    cu::dropout_backward(dbranch_buf, dresidual, BTC, d);
    return dbranch_buf;
  };
  const bf16 *last = L > 0 ? layer_acts(L - 1, B, T).res3 : buf<bf16>("encoded");
  cu::matmul_backward(dbtc, grad(WTE), nullptr, buf<bf16>("logits"), buf<bf16>("lnf"), param(WTE),
                      N, C, Vp);
  cu::device_memset(dresidual, 0, BTC * sizeof(bf16));
  cu::layernorm_backward(dresidual, grad(LNFW), grad_or_null(LNFB), dbtc, last, param(LNFW),
                         buf<float>("lnf_mean"), buf<float>("lnf_rstd"), N, C);
  auto at = [](bf16 *base, size_t off) { return base ? base + off : nullptr; };
  for (int l = L - 1; l >= 0; --l) {
    const LayerActs a = layer_acts(l, B, T);
    recompute_for_backward(l, B, T, a, key);
    // MLP branch: res3 = res2 + drop(fcproj(gelu(fc(ln2(res2)))))
    const bf16 *dbranch = branch_grad(drop(l, kDropResidMlp));
    cu::matmul_backward(dfch, grad(FCPROJW) + size_t(l) * C * 4 * C,
                        at(grad_or_null(FCPROJB), l * C), dbranch, a.fch_gelu,
                        param(FCPROJW) + size_t(l) * C * 4 * C, N, 4 * C, C);
    cu::gelu_backward(dfch, a.fch, dfch, 4 * BTC);
    cu::matmul_backward(dbtc, grad(FCW) + size_t(l) * 4 * C * C,
                        at(grad_or_null(FCB), size_t(l) * 4 * C), dfch, a.ln2,
                        param(FCW) + size_t(l) * 4 * C * C, N, C, 4 * C);
    cu::layernorm_backward(dresidual, grad(LN2W) + l * C, at(grad_or_null(LN2B), l * C), dbtc,
                           a.res2, param(LN2W) + l * C, a.ln2_mean, a.ln2_rstd, N, C);
    // Attention branch: res2 = res_in + drop(attproj(attention(qkv(ln1(res_in)))))
    dbranch = branch_grad(drop(l, kDropResidAttn));
    cu::matmul_backward(dbtc, grad(ATTPROJW) + size_t(l) * C * C, at(grad_or_null(ATTPROJB), l * C),
                        dbranch, a.atty, param(ATTPROJW) + size_t(l) * C * C, N, C, C);
    attention_backward(dqkv, dbtc, a, B, T, drop(l, kDropAttention));
    cu::matmul_backward(dbtc, grad(QKVW) + size_t(l) * 3 * C * C,
                        at(grad_or_null(QKVB), size_t(l) * 3 * C), dqkv, a.ln1,
                        param(QKVW) + size_t(l) * 3 * C * C, N, C, 3 * C);
    cu::layernorm_backward(dresidual, grad(LN1W) + l * C, at(grad_or_null(LN1B), l * C), dbtc,
                           a.res_in, param(LN1W) + l * C, a.ln1_mean, a.ln1_rstd, N, C);
    if (reduce) { // layer l's gradients are final: sum them while the layers below run
      par_.device->after_compute();
      par_.device->group_start();
      for (int id = LN1W; id <= FCPROJB; ++id)
        if (counts_[id])
          reduce_grads(offsets_[id] + size_t(l) * (counts_[id] / L), counts_[id] / L);
      par_.device->group_end();
    }
  }
  cu::encoder_backward(grad(WTE), grad(WPE), dresidual, buf<int32_t>("inputs"), B, T, C,
                       drop(-1, kDropEmbedding));
  if (reduce) {
    par_.device->after_compute();
    par_.device->group_start();
    for (ParamId id : {WTE, WPE, LNFW, LNFB})
      if (counts_[id]) reduce_grads(offsets_[id], counts_[id]);
    par_.device->group_end();
  }
  grads_reduced_ = reduce;
}

float CudaGPT::step(float lr, float grad_clip, float beta1, float beta2, float eps,
                    float weight_decay) {
  cu::set_workspace(workspace_, workspace_bytes_);
  FINEGPT_CHECK(!par_.device || grads_reduced_,
                "internal: step() after a backward that did not sum gradients over ranks");
  if (par_.device) { // the gradient sums: waited for here, where a dead rank's hang is caught
    par_.device->synchronize();
    par_.device->compute_waits();
  }
  float *scratch = buf<float>("reduce_scratch");
  // Per tensor (this rank's part of it under ZeRO-1) into the scratch after sum_squares'
  // partials, read back with one copy (one synchronisation per step), summed in double on the
  // host in tensor order (as optim.cpp's grad_sum_squares), then over ranks.
  static_assert(cu::SUM_SQUARES_PARTIALS + kNumParamTensors <= cu::REDUCE_SCRATCH,
                "reduce_scratch holds the per-tensor sums");
  float *sums = scratch + cu::SUM_SQUARES_PARTIALS;
  float host_sums[kNumParamTensors] = {};
  bool any = false;
  for (int i = 0; i < kNumParamTensors; ++i) {
    const auto [lo, hi] = owned(offsets_[i], offsets_[i] + counts_[i]);
    if (lo < hi) cu::sum_squares(sums + i, grads_ + lo, hi - lo, scratch), any = true;
  }
  if (any) cu::copy_to_host(host_sums, sums, sizeof host_sums);
  double ss = 0.0;
  for (int i = 0; i < kNumParamTensors; ++i) {
    const auto [lo, hi] = owned(offsets_[i], offsets_[i] + counts_[i]);
    if (lo < hi) ss += double(host_sums[i]);
  }
  if (par_.zero_stage == 1) par_.host->allreduce_sum(&ss, 1);
  const float norm = float(std::sqrt(ss));
  float scale = 1.0f;
  if (grad_clip > 0.0f) {
    const float coef = grad_clip / (norm + 1e-6f);
    if (coef < 1.0f) scale = coef;
  }
  ++t_;
  const auto tensors = param_tensors(cfg_);
  const bool sharded = par_.zero_stage == 1;
  for (int i = 0; i < kNumParamTensors; ++i) {
    const auto [lo, hi] = owned(offsets_[i], offsets_[i] + counts_[i]);
    if (lo >= hi) continue;
    const size_t s = lo - shard_begin_;
    cu::adamw_update(params_ + lo, grads_ + lo, master_ + s, m_ + s, v_ + s, hi - lo, lr, beta1,
                     beta2, eps, tensors[i].decay ? weight_decay : 0.0f, t_, scale,
                     /*zero_grad=*/!sharded);
  }
  if (sharded) { // every rank's parameters from their owners; gradients of all ranges zeroed
    cu::device_memset(grads_, 0, P_ * sizeof(bf16));
    par_.device->after_compute();
    par_.device->group_start();
    for (int r = 0; r < world_; ++r) {
      const auto [rb, re] = par_.host->shard_range(P_, r);
      if (rb < re) par_.device->broadcast(params_ + rb, re - rb, r);
    }
    par_.device->group_end();
    par_.device->compute_waits();
  }
  grads_reduced_ = false;
  return norm;
}

} // namespace finegpt
