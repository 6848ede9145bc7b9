// The memory plan and parameter layout against published GPT-2 sizes and against the model's
// own buffers.
#include "core/error.h"
#include "model/model.h"
#include "model/plan.h"
#include "optim/optim.h"

#include <gtest/gtest.h>

using namespace finegpt;

namespace {
GPTConfig gpt2(int L, int NH, int C, bool bias = true) {
  GPTConfig c;
  c.n_layer = L, c.n_head = NH, c.n_embd = C, c.bias = bias;
  c.vocab_size = 50257, c.padded_vocab_size = pad_vocab(50257), c.block_size = 1024;
  return c;
}
} // namespace

TEST(Plan, PadVocab) {
  EXPECT_EQ(pad_vocab(50257), 50304);
  EXPECT_EQ(pad_vocab(65), 128);
  EXPECT_EQ(pad_vocab(64), 64);
  EXPECT_EQ(pad_vocab(1), 64);
}

TEST(Plan, Gpt2ParameterCountsMatchPublishedSizes) {
  // OpenAI's GPT-2 sizes as Hugging Face reports them (unpadded vocabulary 50257).
  EXPECT_EQ(num_parameters_unpadded(gpt2(12, 12, 768)), 124439808u);
  EXPECT_EQ(num_parameters_unpadded(gpt2(24, 16, 1024)), 354823168u);
  EXPECT_EQ(num_parameters_unpadded(gpt2(36, 20, 1280)), 774030080u);
  EXPECT_EQ(num_parameters_unpadded(gpt2(48, 25, 1600)), 1557611200u);
  // llm.c's padded count for gpt2_124M.bin.
  EXPECT_EQ(num_parameters(gpt2(12, 12, 768)), 124475904u);
}

TEST(Plan, BiasFreeModelDropsExactlyTheBiases) {
  const GPTConfig with = gpt2(10, 10, 640, true), without = gpt2(10, 10, 640, false);
  // Per layer: LN biases 2C, qkv 3C, attn proj C, fc 4C, fc proj C; final LN bias C.
  const size_t C = 640, L = 10;
  EXPECT_EQ(num_parameters(with) - num_parameters(without), L * (2 + 3 + 1 + 4 + 1) * C + C);
  // The guide's "160M" 24 GB config is about 82M parameters.
  EXPECT_NEAR(double(num_parameters_unpadded(without)), 81.99e6, 0.01e6);
}

TEST(Plan, GroupsAgreeWithTheModelsBuffers) {
  GPTConfig c = gpt2(2, 4, 64);
  c.vocab_size = 101, c.padded_vocab_size = pad_vocab(101), c.block_size = 32;
  MemoryPlan plan = plan_memory(c, 3, 16);
  GPT model(c, 3, 16);
  EXPECT_EQ(plan.elems(MemGroup::Parameters), model.num_params());
  EXPECT_EQ(plan.elems(MemGroup::Gradients), model.num_params());
  EXPECT_EQ(plan.elems(MemGroup::Optimizer), 2 * model.num_params());
  size_t sum = 0;
  for (int i = 0; i < kNumParamTensors; ++i)
    sum += model.param_count(ParamId(i));
  EXPECT_EQ(sum, num_parameters(c));
  // Per-tensor activations are listed with their shapes: attention probabilities (L,B,NH,T,T).
  const Buffer *att = plan.find("att");
  ASSERT_NE(att, nullptr);
  EXPECT_EQ(att->elems, size_t(2 * 3 * 4 * 16 * 16));
  const Buffer *logits = plan.find("logits");
  ASSERT_NE(logits, nullptr);
  EXPECT_EQ(logits->bytes, size_t(3 * 16 * 128 * 4));
  EXPECT_EQ(plan.total_bytes(), plan.bytes(MemGroup::Parameters) + plan.bytes(MemGroup::Gradients) +
                                    plan.bytes(MemGroup::Optimizer) +
                                    plan.bytes(MemGroup::Activations) +
                                    plan.bytes(MemGroup::Scratch));
}

TEST(Plan, RejectsBadShapes) {
  GPTConfig c = gpt2(2, 5, 64); // 64 % 5 != 0
  EXPECT_THROW(plan_memory(c, 1, 8), Error);
  c = gpt2(2, 4, 64);
  EXPECT_THROW(plan_memory(c, 1, 2048), Error); // T > block_size
  EXPECT_THROW(plan_memory(c, 0, 8), Error);
}

TEST(Plan, CpuEngineAllocatesExactlyThePlan) {
  GPTConfig c = gpt2(3, 4, 64);
  c.vocab_size = 101, c.padded_vocab_size = pad_vocab(101), c.block_size = 32;
  const size_t before = Arena::live_bytes();
  {
    GPT model(c, 5, 24);
    Optimizer opt(model, OptimConfig{});
    EXPECT_EQ(Arena::live_bytes() - before, plan_memory(c, 5, 24).total_bytes());
  }
  EXPECT_EQ(Arena::live_bytes(), before);
}

// Muon: the same allocation check, and the workspace is Newton-Schulz's for the largest matrix,
// fc or fc projection (4C x C): two 4C x C matrices and two C x C, in the parameters' dtype.
TEST(Plan, MuonWorkspaceIsAllocatedAsPlanned) {
  GPTConfig c = gpt2(3, 4, 64);
  c.vocab_size = 101, c.padded_vocab_size = pad_vocab(101), c.block_size = 32;
  PlanOptions po;
  po.muon = true;
  const MemoryPlan plan = plan_memory(c, 5, 24, po);
  const size_t C = 64;
  ASSERT_NE(plan.find("muon.scratch"), nullptr);
  EXPECT_EQ(plan.find("muon.scratch")->bytes, 4 * (2 * 4 * C * C + 2 * C * C));
  EXPECT_EQ(plan.total_bytes(), plan_memory(c, 5, 24).total_bytes() + 4 * 10 * C * C);
  po.backend = Backend::CUDA, po.precision = Precision::BF16;
  EXPECT_EQ(plan_memory(c, 5, 24, po).find("muon.scratch")->bytes, 2 * 10 * C * C);
  const size_t before = Arena::live_bytes();
  {
    GPT model(c, 5, 24);
    OptimConfig oc;
    oc.muon = true;
    Optimizer opt(model, oc);
    EXPECT_EQ(Arena::live_bytes() - before, plan.total_bytes());
  }
  // Under ZeRO-1 every rank holds the whole workspace (Newton-Schulz runs on whole matrices)
  // beside its shard of the state; offload is refused (the host update is AdamW's).
  PlanOptions z = po;
  z.zero_stage = 1, z.world = 2;
  EXPECT_EQ(plan_memory(c, 5, 24, z).find("muon.scratch")->bytes, 2 * 10 * C * C);
  EXPECT_LT(plan_memory(c, 5, 24, z).find("adamw.m")->elems,
            plan_memory(c, 5, 24, po).find("adamw.m")->elems);
  z = po;
  z.offload = true;
  EXPECT_THROW(plan_memory(c, 5, 24, z), Error);
}

namespace {
// cuDNN's attention widens the op workspace to its backward's fp32 dQ accumulator and softmax
// sums, 4 (B T C + B NH T) + 256 bytes (cuDNN's own figure on an H200), when that exceeds
// cuBLASLt's 32 MiB; ours needs none.
TEST(Plan, CudnnAttentionWorkspace) {
  GPTConfig c = gpt2(12, 12, 768);
  PlanOptions o;
  o.backend = Backend::CUDA, o.precision = Precision::BF16;
  EXPECT_EQ(plan_memory(c, 64, 1024, o).find("cublaslt_workspace")->bytes, size_t(32) << 20);
  o.cudnn_attention = true;
  EXPECT_EQ(plan_memory(c, 64, 1024, o).find("cublaslt_workspace")->bytes,
            size_t(4) * (64 * 1024 * 768 + 64 * 12 * 1024) + 256);
  EXPECT_EQ(plan_memory(c, 4, 1024, o).find("cublaslt_workspace")->bytes, size_t(32) << 20);
}

size_t activation_bytes(const GPTConfig &c, int B, int T, int recompute) {
  PlanOptions o;
  o.backend = Backend::CUDA, o.precision = Precision::BF16, o.recompute = recompute;
  return plan_memory(c, B, T, o).bytes(MemGroup::Activations);
}
} // namespace

TEST(Plan, CudaActivationsPerLayerFollowKorthikanti) {
  // Per layer in bf16 without recompute: 16 (B,T,C) tensors = 32 B T C bytes, plus fp32
  // LayerNorm statistics (4 x B T) and attention log-sum-exp (B NH T).
  const int B = 4, T = 256;
  GPTConfig one = gpt2(1, 12, 768), two = gpt2(2, 12, 768);
  const size_t BTC = size_t(B) * T * 768, BT = size_t(B) * T, stats = 4 * (4 * BT + 12 * BT);
  EXPECT_EQ(activation_bytes(two, B, T, 0) - activation_bytes(one, B, T, 0), 32 * BTC + stats);
  EXPECT_EQ(activation_bytes(two, B, T, 1) - activation_bytes(one, B, T, 1), 24 * BTC + stats);
  EXPECT_EQ(activation_bytes(two, B, T, 2) - activation_bytes(one, B, T, 2), 20 * BTC + stats);
  EXPECT_EQ(activation_bytes(two, B, T, 3) - activation_bytes(one, B, T, 3), 2 * BTC);
  // The logits (B,T,Vp) in bf16: 3.07 GiB at B=32, T=1024 (REFERENCE.md section 5).
  PlanOptions o;
  o.backend = Backend::CUDA, o.precision = Precision::BF16;
  EXPECT_EQ(plan_memory(gpt2(12, 12, 768), 32, 1024, o).find("logits")->bytes,
            size_t(32) * 1024 * 50304 * 2);
}

TEST(Plan, ModelStatesAre16BytesPerParameterAndZeroShardsTwelve) {
  const GPTConfig c = gpt2(12, 12, 768);
  const size_t P = num_parameters(c);
  PlanOptions o;
  o.backend = Backend::CUDA, o.precision = Precision::BF16;
  MemoryPlan p = plan_memory(c, 1, 64, o);
  EXPECT_EQ(p.bytes(MemGroup::Parameters) + p.bytes(MemGroup::Gradients), 4 * P);
  EXPECT_EQ(p.bytes(MemGroup::Optimizer), 12 * P);
  o.zero_stage = 1, o.world = 8;
  p = plan_memory(c, 1, 64, o);
  EXPECT_EQ(p.bytes(MemGroup::Optimizer), 12 * ((P + 7) / 8));
  EXPECT_EQ(p.bytes(MemGroup::Parameters) + p.bytes(MemGroup::Gradients), 4 * P);
}

TEST(Plan, CpuRejectsWhatTheCpuEngineDoesNotDo) {
  PlanOptions o;
  o.recompute = 1;
  EXPECT_THROW(plan_memory(gpt2(2, 4, 64), 1, 8, o), Error);
  o.recompute = 0, o.precision = Precision::BF16;
  EXPECT_THROW(plan_memory(gpt2(2, 4, 64), 1, 8, o), Error);
  o.precision = Precision::FP32, o.offload = true; // nothing to offload on the CPU
  EXPECT_THROW(plan_memory(gpt2(2, 4, 64), 1, 8, o), Error);
}

// Optimizer offload: the GPU keeps 4 bytes per parameter (bf16 parameters and gradients); the
// host 14 (fp32 master, m, v and the bf16 staging buffer), of this rank's shard under ZeRO-1.
// Activations do not move. GPT-2 XL at T=1024, micro-batch 8, recompute 3 then needs under 9 GiB
// of GPU memory (the "about 8 GB").
TEST(Plan, OffloadMovesTheOptimizerStateToPinnedHostMemory) {
  const GPTConfig c = gpt2(12, 12, 768);
  const size_t P = num_parameters(c);
  PlanOptions o;
  o.backend = Backend::CUDA, o.precision = Precision::BF16;
  const MemoryPlan plain = plan_memory(c, 2, 64, o);
  o.offload = true;
  MemoryPlan p = plan_memory(c, 2, 64, o);
  EXPECT_EQ(p.bytes(MemGroup::Optimizer), 0u);
  EXPECT_EQ(p.total_bytes(), plain.total_bytes() - 12 * P);
  EXPECT_EQ(p.bytes(MemGroup::Activations), plain.bytes(MemGroup::Activations));
  EXPECT_EQ(p.host_bytes(), 14 * P);
  EXPECT_EQ(p.host_bytes(MemGroup::Optimizer), 14 * P);
  EXPECT_EQ(plain.host_bytes(), 0u);
  for (const char *name : {"master", "adamw.m", "adamw.v", "offload.staging"}) {
    ASSERT_NE(p.find(name), nullptr) << name;
    EXPECT_EQ(p.find(name)->where, Location::Host) << name;
  }
  EXPECT_EQ(p.find("offload.staging")->bytes, 2 * P);
  EXPECT_EQ(p.find("qkvw")->where, Location::Engine);
  o.zero_stage = 1, o.world = 4;
  p = plan_memory(c, 2, 64, o);
  EXPECT_EQ(p.host_bytes(), 14 * ((P + 3) / 4));
  EXPECT_EQ(p.total_bytes(), plain.total_bytes() - 12 * P);
  // GPT-2 XL (1.56B parameters: 4 bytes each on the GPU).
  const GPTConfig xl = gpt2(48, 25, 1600);
  o.zero_stage = 0, o.world = 1, o.recompute = 3;
  p = plan_memory(xl, 8, 1024, o);
  EXPECT_EQ(p.bytes(MemGroup::Parameters) + p.bytes(MemGroup::Gradients), 4 * num_parameters(xl));
  EXPECT_LT(double(p.total_bytes()), 9.0 * (1 << 30));
  EXPECT_EQ(p.host_bytes(), 14 * num_parameters(xl));
  o.offload = false; // the usual way: 16 bytes per parameter, 24.9 GB before any activation
  p = plan_memory(xl, 1, 1024, o);
  EXPECT_EQ(p.bytes(MemGroup::Parameters) + p.bytes(MemGroup::Gradients) +
                p.bytes(MemGroup::Optimizer),
            16 * num_parameters(xl));
  EXPECT_GT(16.0 * double(num_parameters(xl)), 24e9);
}
