// The memory plan (see plan.h). Activation names are the ones the model resolves (model/model.cpp).
#include "model/plan.h"

#include "backend/ops.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace finegpt {

int pad_vocab(int vocab_size) { return (vocab_size + 63) / 64 * 64; }

namespace {
// Elements of a tensor of `shape`; Error when past 2^50 (a petabyte of floats: no machine holds
// it, and sums of byte counts stay far from overflowing).
size_t elements(const char *name, const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, d, &n) || n > (int64_t(1) << 50)) {
      std::string dims;
      for (int64_t e : shape)
        dims += cat(dims.empty() ? "" : "x", e);
      fail("the model is too large: its ", name, " tensor (", dims,
           ") would hold more than 2^50 elements");
    }
  return size_t(n);
}
} // namespace

void check_gpt_config(const GPTConfig &c) {
  FINEGPT_CHECK(c.n_layer > 0, "n_layer must be positive (got ", c.n_layer, ")");
  FINEGPT_CHECK(c.n_head > 0, "n_head must be positive (got ", c.n_head, ")");
  FINEGPT_CHECK(c.n_embd > 0, "n_embd must be positive (got ", c.n_embd, ")");
  FINEGPT_CHECK(c.n_embd % c.n_head == 0, "n_embd (", c.n_embd, ") must be divisible by n_head (",
                c.n_head, ")");
  FINEGPT_CHECK(c.block_size > 0, "block_size must be positive (got ", c.block_size, ")");
  FINEGPT_CHECK(c.vocab_size > 0 && c.vocab_size <= 65536,
                "vocab_size must be in 1..65536 (token files hold uint16), got ", c.vocab_size);
  FINEGPT_CHECK(c.padded_vocab_size >= c.vocab_size && c.padded_vocab_size % 64 == 0,
                "padded vocabulary ", c.padded_vocab_size,
                " must be a multiple of 64 >= ", c.vocab_size);
  // Sizes are computed in 64 bits (param_tensors, the plan): a shape past this bound, such as
  // a damaged file's header may give, would overflow them.
  using u128 = unsigned __int128;
  const u128 L = u128(c.n_layer), C = u128(c.n_embd);
  const u128 n = u128(c.padded_vocab_size) * C * (c.tie_embeddings ? 1 : 2) +
                 u128(c.block_size) * C + L * (12 * C * C + 13 * C) + 2 * C;
  FINEGPT_CHECK(n <= kMaxParameters, "the model is too large: the shape (n_layer ", c.n_layer,
                ", n_embd ", c.n_embd, ", block_size ", c.block_size, ", padded vocabulary ",
                c.padded_vocab_size, ") has ", double(n),
                " parameters, more than finegpt takes (2^40, a terabyte of bf16 weights)");
  FINEGPT_CHECK(std::isfinite(c.logit_softcap) && c.logit_softcap >= 0.0f,
                "logit_softcap must be 0 (off) or a positive number (got ", c.logit_softcap, ")");
  FINEGPT_CHECK(!c.rotary || (c.n_embd / c.n_head) % 2 == 0,
                "rotary = True needs an even head "
                "size (n_embd / n_head = ",
                c.n_embd / c.n_head, ")");
}

bool is_gpt2_architecture(const GPTConfig &c) {
  return !c.rotary && !c.rmsnorm && !c.qk_norm && !c.relu2 && c.tie_embeddings &&
         c.logit_softcap == 0.0f;
}

std::string architecture_options(const GPTConfig &c, bool with_init) {
  std::string s;
  auto add = [&](const std::string &x) { s += (s.empty() ? "" : ", ") + x; };
  if (c.rotary) add("rotary = True");
  if (c.rmsnorm) add("norm = 'rmsnorm'");
  if (c.qk_norm) add("qk_norm = True");
  if (c.relu2) add("mlp_activation = 'relu2'");
  if (!c.tie_embeddings) add("tie_embeddings = False");
  if (c.logit_softcap > 0.0f) add(cat("logit_softcap = ", c.logit_softcap));
  if (with_init && c.zero_init_proj) add("zero_init_proj = True");
  return s;
}

std::array<ParamTensor, kNumParamTensors> param_tensors(const GPTConfig &c) {
  const int64_t L = c.n_layer, C = c.n_embd, Vp = c.padded_vocab_size, T = c.block_size;
  auto t = [](const char *name, std::vector<int64_t> shape, bool decay) {
    size_t n = elements(name, shape);
    return ParamTensor{name, std::move(shape), n, decay};
  };
  auto b = [&](const char *name, std::vector<int64_t> shape) {
    return c.bias ? t(name, std::move(shape), false) : ParamTensor{name, {}, 0, false};
  };
  auto if_ = [&](bool on, const char *name, std::vector<int64_t> shape, bool decay) {
    return on ? t(name, std::move(shape), decay) : ParamTensor{name, {}, 0, false};
  };
  const bool lnb = c.bias && !c.rmsnorm; // RMSNorm has a gain and no bias
  return {t("wte", {Vp, C}, true),
          if_(!c.rotary, "wpe", {T, C}, true),
          t("ln1w", {L, C}, false),
          if_(lnb, "ln1b", {L, C}, false),
          t("qkvw", {L, 3 * C, C}, true),
          b("qkvb", {L, 3 * C}),
          t("attprojw", {L, C, C}, true),
          b("attprojb", {L, C}),
          t("ln2w", {L, C}, false),
          if_(lnb, "ln2b", {L, C}, false),
          t("fcw", {L, 4 * C, C}, true),
          b("fcb", {L, 4 * C}),
          t("fcprojw", {L, C, 4 * C}, true),
          b("fcprojb", {L, C}),
          t("lnfw", {C}, false),
          if_(lnb, "lnfb", {C}, false),
          if_(!c.tie_embeddings, "lm_head", {Vp, C}, true)};
}

size_t num_parameters(const GPTConfig &c) {
  size_t n = 0;
  for (const auto &p : param_tensors(c))
    n += p.count;
  return n;
}

size_t num_parameters_unpadded(const GPTConfig &c) {
  const size_t heads = c.tie_embeddings ? 1 : 2; // padding rows of wte (and lm_head)
  return num_parameters(c) - heads * size_t(c.padded_vocab_size - c.vocab_size) * c.n_embd;
}

const char *mem_group_name(MemGroup g) {
  switch (g) {
  case MemGroup::Parameters:
    return "parameters";
  case MemGroup::Gradients:
    return "gradients";
  case MemGroup::Optimizer:
    return "optimizer";
  case MemGroup::Activations:
    return "activations";
  case MemGroup::Scratch:
    return "scratch";
  case MemGroup::Workspace:
    return "workspace";
  }
  return "?";
}

size_t MemoryPlan::bytes(MemGroup g) const {
  size_t n = 0;
  for (const auto &b : buffers)
    n += b.group == g && b.where == Location::Engine ? b.bytes : 0;
  return n;
}

size_t MemoryPlan::elems(MemGroup g) const {
  size_t n = 0;
  for (const auto &b : buffers)
    n += b.group == g && b.where == Location::Engine ? b.elems : 0;
  return n;
}

size_t MemoryPlan::total_bytes() const {
  size_t n = 0;
  for (const auto &b : buffers)
    n += b.where == Location::Engine ? b.bytes : 0;
  return n;
}

size_t MemoryPlan::host_bytes() const {
  size_t n = 0;
  for (const auto &b : buffers)
    n += b.where == Location::Host ? b.bytes : 0;
  return n;
}

size_t MemoryPlan::host_bytes(MemGroup g) const {
  size_t n = 0;
  for (const auto &b : buffers)
    n += b.group == g && b.where == Location::Host ? b.bytes : 0;
  return n;
}

const Buffer *MemoryPlan::find(const std::string &name) const {
  for (const auto &b : buffers)
    if (b.name == name) return &b;
  return nullptr;
}

const char *backend_name(Backend b) { return b == Backend::CPU ? "cpu" : "cuda"; }
const char *precision_name(Precision p) { return p == Precision::FP32 ? "float32" : "bfloat16"; }

MemoryPlan plan_memory(const GPTConfig &c, int B, int T, const PlanOptions &opt) {
  check_gpt_config(c);
  FINEGPT_CHECK(B > 0, "batch_size must be positive (got ", B, ")");
  FINEGPT_CHECK(T > 0 && T <= c.block_size, "sequence length ", T, " must be in 1..block_size (",
                c.block_size, ")");
  FINEGPT_CHECK(opt.recompute >= 0 && opt.recompute <= 3, "recompute must be 0..3 (got ",
                opt.recompute, ")");
  FINEGPT_CHECK(opt.zero_stage == 0 || opt.zero_stage == 1, "zero_stage must be 0 or 1 (got ",
                opt.zero_stage, ")");
  FINEGPT_CHECK(opt.world >= 1, "world size must be positive (got ", opt.world, ")");
  const bool cpu = opt.backend == Backend::CPU;
  if (cpu) {
    FINEGPT_CHECK(opt.precision == Precision::FP32, "the CPU engine trains in float32 only");
    FINEGPT_CHECK(opt.recompute == 0, "recompute = ", opt.recompute,
                  " is for the CUDA engine; the CPU engine keeps every activation (set "
                  "recompute = 0)");
    FINEGPT_CHECK(!opt.offload, "offload = 'optimizer' is for the CUDA engine: the CPU engine's "
                                "optimizer state is in host memory already");
  }
  FINEGPT_CHECK(!opt.offload || opt.optimizer, "internal: offload without an optimizer");
  FINEGPT_CHECK(!opt.muon || !opt.offload,
                "optimizer = 'muon' does not combine with offload = 'optimizer' yet (the host "
                "update is AdamW's); use optimizer = 'adamw' or offload = 'none'");
  FINEGPT_CHECK(!opt.offload || opt.precision == Precision::BF16,
                "offload = 'optimizer' needs bfloat16 mixed precision (fp32 master weights)");
  MemoryPlan plan;
  auto add = [&](std::string name, MemGroup g, std::vector<int64_t> shape, int dtype_bytes,
                 Location where = Location::Engine) {
    size_t n = elements(name.c_str(), shape);
    plan.buffers.push_back(
        {std::move(name), g, std::move(shape), dtype_bytes, n, n * dtype_bytes, where});
  };
  const int W = opt.precision == Precision::FP32 ? 4 : 2; // parameter/activation dtype bytes
  for (const auto &p : param_tensors(c))
    if (p.count) add(p.name, MemGroup::Parameters, p.shape, W);
  for (const auto &p : param_tensors(c))
    if (p.count) add(std::string("grad.") + p.name, MemGroup::Gradients, p.shape, W);
  const int64_t P = int64_t(num_parameters(c));
  // ZeRO-1: each rank keeps ceil(P / world) of the fp32 optimizer state.
  const int64_t shard = opt.zero_stage == 1 ? (P + opt.world - 1) / opt.world : P;
  if (opt.optimizer) {
    // Under offload the state is pinned host memory, with a bf16 staging buffer: the gradients
    // are copied into it, and the host update writes the new bf16 parameters over them.
    const Location at = opt.offload ? Location::Host : Location::Engine;
    if (opt.precision == Precision::BF16) add("master", MemGroup::Optimizer, {shard}, 4, at);
    add("adamw.m", MemGroup::Optimizer, {shard}, 4, at);
    add("adamw.v", MemGroup::Optimizer, {shard}, 4, at);
    if (opt.offload) add("offload.staging", MemGroup::Optimizer, {shard}, W, at);
    if (opt.muon) {
      int64_t most = 0;
      const auto tensors = param_tensors(c);
      for (int i = 0; i < kNumParamTensors; ++i)
        if (muon_matrix(i))
          most = std::max<int64_t>(most, int64_t(cpu::muon_scratch_elems(
                                             int(tensors[i].shape[1]), int(tensors[i].shape[2]))));
      add("muon.scratch", MemGroup::Optimizer, {most}, W);
    }
  }
  // Activations kept for backward: (L, B, T, ...) per tensor, or one layer's worth (1, ...)
  // when the tensor is recomputed layer by layer in backward.
  const int64_t L = c.n_layer, C = c.n_embd, NH = c.n_head, Vp = c.padded_vocab_size;
  const int r = opt.recompute;
  const int64_t Lgelu = r >= 1 ? 1 : L, Lln = r >= 2 ? 1 : L, Lblock = r >= 3 ? 1 : L;
  const auto A = MemGroup::Activations;
  add("inputs", A, {B, T}, 4);
  add("targets", A, {B, T}, 4);
  add("encoded", A, {B, T, C}, W);
  add("ln1", A, {Lln, B, T, C}, W);
  if (!c.rmsnorm) add("ln1_mean", A, {Lblock, B, T}, 4); // RMSNorm keeps rstd only
  add("ln1_rstd", A, {Lblock, B, T}, 4);
  add("qkv", A, {Lblock, B, T, 3 * C}, W); // q and k after rotary and QK-norm
  if (c.qk_norm) add("qk_rstd", A, {Lblock, B, T, 2 * NH}, 4);
  add("atty", A, {Lblock, B, T, C}, W);
  if (cpu)
    add("att", A, {L, B, NH, T, T}, 4); // softmax probabilities
  else
    add("att_lse", A, {Lblock, B, NH, T}, 4); // flash attention keeps log-sum-exp only
  add("residual2", A, {Lblock, B, T, C}, W);
  add("ln2", A, {Lln, B, T, C}, W);
  if (!c.rmsnorm) add("ln2_mean", A, {Lblock, B, T}, 4);
  add("ln2_rstd", A, {Lblock, B, T}, 4);
  add("fch", A, {Lblock, B, T, 4 * C}, W);
  add("fch_gelu", A, {Lgelu, B, T, 4 * C}, W); // the activation's output (GELU or ReLU^2)
  add("residual3", A, {L, B, T, C}, W);        // each layer's output: kept at every level
  add("lnf", A, {B, T, C}, W);
  if (!c.rmsnorm) add("lnf_mean", A, {B, T}, 4);
  add("lnf_rstd", A, {B, T}, 4);
  add("logits", A, {B, T, Vp}, W); // overwritten in place by its gradient
  add("losses", A, {B, T}, 4);
  // Working memory: the branch output before its residual add, and backward's gradients of
  // one layer at a time.
  const auto S = MemGroup::Scratch;
  add("branch_out", S, {B, T, C}, W);
  add("dresidual", S, {B, T, C}, W);
  add("dbranch", S, {B, T, C}, W);
  add("dbtc", S, {B, T, C}, W);
  add("dqkv", S, {B, T, 3 * C}, W);
  add("dfch", S, {B, T, 4 * C}, W);
  if (cpu) {
    add("datt", S, {B, NH, T, T}, 4);
  } else {
    add("reduce_scratch", S, {1024}, 4); // partial sums for the gradient norm and loss
    // The op workspace: cuBLASLt's (32 MiB, as llm.c), lent between ops to the ones that need a
    // temporary. Our attention needs none; cuDNN's backward keeps an fp32 dQ accumulator and
    // softmax sums, 4 (B T C + B NH T) bytes, plus 256 (cuDNN 9.14 on an H200 asked exactly that
    // at B=8 T=1024 C=768 NH=12; the model checks cuDNN's own figure at start and stops if it is
    // larger).
    int64_t workspace = int64_t(32) << 20;
    if (opt.cudnn_attention) workspace = std::max(workspace, 4 * (B * T * C + B * NH * T) + 256);
    add("cublaslt_workspace", MemGroup::Workspace, {(workspace + 255) / 256 * 256}, 1);
  }
  return plan;
}

std::string format_bytes(double b) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024.0 && u < 4)
    b /= 1024.0, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", b, units[u]);
  return buf;
}

std::string format_plan(const MemoryPlan &plan) {
  std::string out;
  char line[160];
  for (MemGroup g : {MemGroup::Parameters, MemGroup::Gradients, MemGroup::Optimizer,
                     MemGroup::Activations, MemGroup::Scratch, MemGroup::Workspace}) {
    size_t bytes = plan.bytes(g);
    if (!bytes) continue;
    std::snprintf(line, sizeof line, "  %-12s %12s\n", mem_group_name(g),
                  format_bytes(double(bytes)).c_str());
    out += line;
    if (g != MemGroup::Activations) continue;
    for (const auto &b : plan.buffers) {
      if (b.group != g) continue;
      std::string shape;
      for (size_t i = 0; i < b.shape.size(); ++i) {
        if (i) shape += 'x';
        shape += std::to_string(b.shape[i]);
      }
      std::snprintf(line, sizeof line, "    %-12s %-22s %12s\n", b.name.c_str(), shape.c_str(),
                    format_bytes(double(b.bytes)).c_str());
      out += line;
    }
  }
  std::snprintf(line, sizeof line, "  %-12s %12s\n", "total",
                format_bytes(double(plan.total_bytes())).c_str());
  out += line;
  if (plan.host_bytes()) {
    std::snprintf(line, sizeof line,
                  "  %-12s %12s  (pinned host memory: master, adamw.m, "
                  "adamw.v, offload.staging)\n",
                  "host", format_bytes(double(plan.host_bytes())).c_str());
    out += line;
  }
  return out;
}

} // namespace finegpt
