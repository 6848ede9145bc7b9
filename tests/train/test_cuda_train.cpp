// Training on the GPU (Model<CudaBackend>, the CUDA engine of train/train.cpp) against the CPU
// model from the same weights: one step's loss within 1e-2 and every gradient tensor's cosine
// similarity above 0.999; 20 AdamW steps whose losses track the CPU's within 2%; resume exact
// (10 steps + save/restore + 10 against 20, losses bitwise equal), at the model and through
// train() with a checkpoint file; recompute levels and dropout (the CPU's masks); the
// architecture options, each and all together (step, recompute, 10 steps, KV-cache generation).
// Without a CUDA device (or in a build without CUDA) the GPU tests skip.
#include "cuda_testing.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "backend/cuda_ops.h"
#include "config/train_config.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/tokens.h"
#include "dist/comm.h"
#include "dist/exchange.h"
#include "dist/nccl.h"
#include "model/generate.h"
#include "model/model.h"
#include "optim/optim.h"
#include "testing.h"
#include "train/trainer.h"

using namespace finegpt;
using finegpt::testutil::error_of;
using finegpt::testutil::TempDir;

namespace {

constexpr int B = 4, T = 64;

// L=2, C=128, NH=2 (head size 64), V=101.
GPTConfig small_config() {
  GPTConfig c;
  c.n_layer = 2, c.n_head = 2, c.n_embd = 128, c.block_size = T;
  c.vocab_size = 101, c.padded_vocab_size = pad_vocab(101);
  return c;
}

// A learnable task: y = (7 x + 3) mod V on random x, so that losses fall over 20 steps.
void make_batch(Rng &rng, int V, std::vector<int32_t> &x, std::vector<int32_t> &y) {
  x.resize(size_t(B) * T), y.resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = int32_t(rng.below(uint64_t(V)));
    y[i] = (7 * x[i] + 3) % V;
  }
}

// The CPU model's weights, rounded to bf16 so that both engines start from the same numbers.
std::vector<float> bf16_weights(const GPTConfig &cfg, uint64_t seed) {
  std::vector<float> w(num_parameters(cfg));
  init_gpt_weights(cfg, w.data(), seed);
  for (float &f : w)
    f = cuda::to_float(cuda::to_bf16(f));
  return w;
}

double cosine(const float *a, const float *b, size_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < n; ++i)
    ab += double(a[i]) * b[i], aa += double(a[i]) * a[i], bb += double(b[i]) * b[i];
  if (aa == 0 && bb == 0) return 1.0;
  return ab / std::sqrt(aa * bb);
}

constexpr float kLr = 1e-3f, kClip = 1.0f;
const OptimConfig kAdam{};
// optimizer = 'muon' at muon_lr 0.02 (20 x kLr).
OptimConfig muon_config() {
  OptimConfig o;
  o.muon = true, o.muon_lr_scale = 20.0f, o.muon_momentum = 0.95f;
  return o;
}
const OptimConfig kMuon = muon_config();

} // namespace

TEST(CudaTrain, BadOptionsOrNoDeviceIsAnError) {
  EXPECT_NE(error_of([&] { CudaGPT m(small_config(), B, T, {.recompute = 4}); }).find("recompute"),
            std::string::npos);
  GPTConfig c = small_config();
  c.dropout = 0.1f;
  if (cuda::cudnn_attention_compiled()) {
    EXPECT_NE(error_of([&] { CudaGPT m(c, B, T, {.cudnn_attention = true}); }).find("dropout"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                CudaGPT m(small_config(), 1, 63, {.cudnn_attention = true});
              }).find("multiple of 4"),
              std::string::npos);
  } else {
    EXPECT_NE(error_of([&] {
                CudaGPT m(small_config(), B, T, {.cudnn_attention = true});
              }).find("no cuDNN attention"),
              std::string::npos);
  }
  if (!::finegpt::testutil::have_cuda_device()) { // the constructor says why there is no GPU
    EXPECT_FALSE(error_of([&] { CudaGPT m(small_config(), B, T); }).empty());
  }
}

// One forward_backward from the same weights and batch at recompute `level`: the loss and the
// gradients (fp32 copies).
struct StepResult {
  float loss;
  std::vector<float> grads;
  size_t device_bytes;
};
StepResult one_step(const GPTConfig &cfg, int level, uint64_t dropout_key) {
  const std::vector<float> w = bf16_weights(cfg, 1337);
  CudaGPT gpu(cfg, B, T, {.recompute = level});
  gpu.set_params(w.data());
  Rng rng(7);
  std::vector<int32_t> x, y;
  make_batch(rng, cfg.vocab_size, x, y);
  StepResult r;
  r.loss = gpu.forward_backward(x.data(), y.data(), B, T, 1.0f, dropout_key);
  r.grads.resize(gpu.num_params());
  gpu.get_grads(r.grads.data());
  r.device_bytes = gpu.bytes();
  return r;
}

// Recompute changes memory, not numbers: the recomputed tensors equal the forward's, so level 3
// (whole blocks, through the forward's own fused fc + GELU GEMM) gives bitwise level 0's loss and
// gradients, and levels 1 and 2 (GELU recomputed from the stored pre-activation, so their forward
// runs GELU as a pass of its own) give bitwise each other's, within bf16 rounding of level 0's
// (the fused epilogue rounds GELU of the fp32 accumulator). Each level allocates less than the
// one before. With dropout too: the recomputed masks must be the forward's.
TEST(CudaTrain, RecomputeLevelsGiveTheSameGradients) {
  REQUIRE_DEVICE();
  for (float dropout : {0.0f, 0.1f}) {
    GPTConfig cfg = small_config();
    cfg.dropout = dropout;
    const uint64_t key = dropout > 0 ? 0x5eedULL : 0;
    const StepResult base = one_step(cfg, 0, key);
    StepResult prev = base;
    for (int level = 1; level <= 3; ++level) {
      const StepResult r = one_step(cfg, level, key);
      std::printf("recompute %d (dropout %.1f): loss %.6f, %zu bytes (level 0: %.6f, %zu)\n", level,
                  dropout, r.loss, r.device_bytes, base.loss, base.device_bytes);
      EXPECT_LT(r.device_bytes, prev.device_bytes) << "level " << level;
      EXPECT_NEAR(r.loss, base.loss, 1e-3) << "level " << level;
      EXPECT_GT(cosine(r.grads.data(), base.grads.data(), r.grads.size()), 0.9999)
          << "level " << level;
      if (level >= 2) {
        const StepResult &same = level == 2 ? prev : base;
        EXPECT_EQ(std::memcmp(&r.loss, &same.loss, sizeof(float)), 0) << "level " << level;
        EXPECT_EQ(std::memcmp(r.grads.data(), same.grads.data(), r.grads.size() * sizeof(float)), 0)
            << "level " << level << " against level " << (level == 2 ? 1 : 0);
      }
      prev = r;
    }
  }
}

// One step on the GPU against the CPU model from the same weights and batch (dropout under
// `key` when cfg.dropout > 0): loss within 1e-2, every gradient tensor's cosine above 0.999.
// With dropout this holds only if the GPU draws the CPU's masks (a different mask drives the
// cosines far below 0.999).
void expect_step_matches_cpu(const GPTConfig &cfg, uint64_t key, CudaGPT &gpu,
                             const std::vector<int32_t> &x, const std::vector<int32_t> &y) {
  const std::vector<float> w = bf16_weights(cfg, 1337);
  GPT cpu(cfg, B, T);
  std::memcpy(cpu.params(), w.data(), w.size() * sizeof(float));
  gpu.set_params(w.data());
  const float lc = cpu.forward_backward(x.data(), y.data(), B, T, 1.0f, key);
  const float lg = gpu.forward_backward(x.data(), y.data(), B, T, 1.0f, key);
  std::printf("loss (dropout %.1f): cpu %.6f gpu %.6f\n", cfg.dropout, lc, lg);
  EXPECT_NEAR(lg, lc, 1e-2);
  if (key == 0) { // forward alone has no dropout
    EXPECT_NEAR(gpu.forward(x.data(), y.data(), B, T), cpu.forward(x.data(), y.data(), B, T), 1e-2);
  }
  std::vector<float> g(gpu.num_params());
  gpu.get_grads(g.data());
  const auto tensors = param_tensors(cfg);
  for (int i = 0; i < kNumParamTensors; ++i) {
    const auto id = ParamId(i);
    if (!cpu.param_count(id)) continue;
    const size_t off = cpu.param_offset(id), n = cpu.param_count(id);
    const double cs = cosine(cpu.grads() + off, g.data() + off, n);
    std::printf("grad %-9s cosine %.6f (dropout %.1f)\n", tensors[i].name, cs, cfg.dropout);
    EXPECT_GT(cs, 0.999) << tensors[i].name << ", dropout " << cfg.dropout;
  }
}

// With our attention, and with cuDNN's (attention = 'cudnn') where the build has it.
TEST(CudaTrain, StepMatchesCpu) {
  REQUIRE_DEVICE();
  const GPTConfig cfg = small_config();
  Rng rng(7);
  std::vector<int32_t> x, y;
  make_batch(rng, cfg.vocab_size, x, y);
  for (bool cudnn : {false, true}) {
    if (cudnn && !cuda::cudnn_attention_compiled()) continue;
    SCOPED_TRACE(cudnn ? "cudnn attention" : "finegpt attention");
    CudaGPT gpu(cfg, B, T, {.cudnn_attention = cudnn});
    expect_step_matches_cpu(cfg, 0, gpu, x, y);
  }
}

// Dropout on the GPU draws the CPU's masks; another key gives another loss.
TEST(CudaTrain, DropoutMatchesCpu) {
  REQUIRE_DEVICE();
  GPTConfig cfg = small_config();
  cfg.dropout = 0.2f;
  CudaGPT gpu(cfg, B, T);
  Rng rng(7);
  std::vector<int32_t> x, y;
  make_batch(rng, cfg.vocab_size, x, y);
  const uint64_t key = 0x1234abcdULL;
  expect_step_matches_cpu(cfg, key, gpu, x, y);
  gpu.zero_grads();
  const float same = gpu.forward_backward(x.data(), y.data(), B, T, 1.0f, key);
  gpu.zero_grads();
  const float other = gpu.forward_backward(x.data(), y.data(), B, T, 1.0f, key + 1);
  EXPECT_GT(std::fabs(other - same), 1e-4) << "the dropout key changes nothing";
}

// Both optimizers: AdamW, and Muon (its Newton-Schulz steps in bf16 on a GPU, fp32 on the CPU).
TEST(CudaTrain, TwentyStepsTrackCpu) {
  REQUIRE_DEVICE();
  const GPTConfig cfg = small_config();
  const std::vector<float> w = bf16_weights(cfg, 1337);
  for (const OptimConfig &oc : {kAdam, kMuon}) {
    SCOPED_TRACE(oc.muon ? "muon" : "adamw");
    GPT cpu(cfg, B, T);
    std::memcpy(cpu.params(), w.data(), w.size() * sizeof(float));
    Optimizer<CpuBackend> opt(cpu, oc);
    CudaGPT gpu(cfg, B, T);
    Optimizer<CudaBackend> gopt(gpu, oc);
    gopt.set_params(w.data());
    Rng rng(11);
    std::vector<int32_t> x, y;
    float first = 0, last = 0;
    for (int s = 0; s < 20; ++s) {
      make_batch(rng, cfg.vocab_size, x, y);
      const float lc = cpu.forward_backward(x.data(), y.data(), B, T, 1.0f);
      const float lg = gpu.forward_backward(x.data(), y.data(), B, T, 1.0f);
      const float nc = opt.step(kLr, kClip);
      const float ng = gopt.step(kLr, kClip);
      std::printf("%s step %2d: loss cpu %.5f gpu %.5f, norm cpu %.4f gpu %.4f\n",
                  oc.muon ? "muon" : "adamw", s, lc, lg, nc, ng);
      EXPECT_NEAR(lg, lc, 0.02 * lc) << "step " << s;
      (s == 0 ? first : last) = lg;
    }
    EXPECT_LT(last, 0.9f * first); // it learns
  }
}

TEST(CudaTrain, ResumeIsExact) {
  REQUIRE_DEVICE();
  const GPTConfig cfg = small_config();
  const std::vector<float> w = bf16_weights(cfg, 1337);
  for (const OptimConfig &oc : {kAdam, kMuon}) {
    SCOPED_TRACE(oc.muon ? "muon" : "adamw");
    auto run = [&](CudaGPT &m, Optimizer<CudaBackend> &o, Rng &rng, int steps,
                   std::vector<float> &losses) {
      std::vector<int32_t> x, y;
      for (int s = 0; s < steps; ++s) {
        make_batch(rng, cfg.vocab_size, x, y);
        losses.push_back(m.forward_backward(x.data(), y.data(), B, T, 1.0f));
        o.step(kLr, kClip);
      }
    };
    std::vector<float> straight, resumed;
    {
      CudaGPT m(cfg, B, T);
      Optimizer<CudaBackend> o(m, oc);
      o.set_params(w.data());
      Rng rng(5);
      run(m, o, rng, 20, straight);
    }
    Rng rng(5);
    std::vector<float> p(w.size()), mom, vel;
    int t = 0;
    {
      CudaGPT m(cfg, B, T);
      Optimizer<CudaBackend> o(m, oc);
      o.set_params(w.data());
      run(m, o, rng, 10, resumed);
      o.get_params(p.data());
      o.gather_moments(mom, vel);
      t = o.steps_taken();
    }
    CudaGPT m(cfg, B, T);
    Optimizer<CudaBackend> o(m, oc);
    o.set_params(p.data());
    o.load_moments(mom.data(), vel.data());
    o.set_steps_taken(t);
    run(m, o, rng, 10, resumed);
    ASSERT_EQ(resumed.size(), straight.size());
    for (size_t i = 0; i < straight.size(); ++i)
      EXPECT_EQ(std::memcmp(&resumed[i], &straight[i], sizeof(float)), 0)
          << "step " << i << ": " << resumed[i] << " vs " << straight[i];
  }
}

// The NCCL path on one rank: gradients summed over NCCL during the last micro-batch's backward
// (all-reduce; with ZeRO-1 reduce to the owner and parameters broadcast back) give bitwise the
// losses and final weights of the plain engine over 10 steps of 2 micro-batches (a one-rank sum
// is the identity).
TEST(CudaTrain, SingleRankNcclEqualsPlain) {
  REQUIRE_DEVICE();
  if (!nccl_compiled_in()) GTEST_SKIP() << "no NCCL in this build";
  const GPTConfig cfg = small_config();
  const std::vector<float> w = bf16_weights(cfg, 1337);
  auto host = make_single_communicator();
  auto nccl = make_nccl_comm(*host);
  auto losses = [&](DeviceComm *device, int zero, const OptimConfig &oc) {
    CudaGPT m(cfg, B, T);
    std::unique_ptr<GradExchange> ex =
        device ? make_nccl_exchange(*device, *host, zero, m.grads(), m.params(), m.num_params())
               : nullptr;
    Optimizer<CudaBackend> o(m, oc, ex.get());
    o.set_params(w.data());
    Rng rng(9);
    std::vector<int32_t> x, y;
    std::vector<float> out;
    for (int s = 0; s < 10; ++s) {
      for (int micro = 0; micro < 2; ++micro) {
        make_batch(rng, cfg.vocab_size, x, y);
        out.push_back(
            m.forward_backward(x.data(), y.data(), B, T, 0.5f, 0, micro == 1 ? ex.get() : nullptr));
      }
      o.step(kLr, kClip);
    }
    std::vector<float> p(m.num_params());
    o.get_params(p.data());
    out.insert(out.end(), p.begin(), p.end());
    return out;
  };
  // AdamW, and Muon (under ZeRO-1 its momentum mixes go through the exchange too).
  OptimConfig muon = kAdam;
  muon.muon = true, muon.muon_lr_scale = 20.0f;
  for (const OptimConfig &oc : {kAdam, muon}) {
    const std::vector<float> plain = losses(nullptr, 0, oc);
    for (int zero : {0, 1}) {
      const std::vector<float> got = losses(nccl.get(), zero, oc);
      ASSERT_EQ(got.size(), plain.size());
      EXPECT_EQ(std::memcmp(got.data(), plain.data(), got.size() * sizeof(float)), 0)
          << "zero_stage " << zero << (oc.muon ? ", Muon" : ", AdamW");
    }
  }
}

// Generation with the KV cache on the GPU (kv_append, attention_decode, the model's block over one
// position) against the CPU generator from the same weights: the next-token logits at every
// position of the block, within bf16's error of the logits' spread.
TEST(CudaTrain, KvCacheGenerationMatchesCpu) {
  REQUIRE_DEVICE();
  const GPTConfig cfg = small_config();
  const std::vector<float> w = bf16_weights(cfg, 1337);
  GPT cpu(cfg, 1, 1);
  cpu.set_params(w.data());
  CudaGPT gpu(cfg, 1, 1);
  gpu.set_params(w.data());
  const int S = 3;
  Generator gc(cpu, S);
  Generator gg(gpu, S);
  Rng rng(4);
  std::vector<int32_t> toks(S);
  const int Vp = cfg.padded_vocab_size, V = cfg.vocab_size;
  for (int t = 0; t < 40; ++t) {
    for (auto &x : toks)
      x = int32_t(rng.below(uint64_t(V)));
    const float *a = gc.step(toks.data(), t);
    const float *b = gg.step(toks.data(), t);
    double err = 0, norm = 0;
    for (int s = 0; s < S; ++s)
      for (int v = 0; v < V; ++v) {
        const double d = double(a[s * Vp + v]) - b[s * Vp + v];
        err += d * d, norm += double(a[s * Vp + v]) * a[s * Vp + v];
      }
    EXPECT_LT(std::sqrt(err / norm), 2e-2) << "position " << t;
  }
}

// The architecture options on the CUDA body against the CPU's: each alone and all together, one
// step (loss and every gradient's cosine); all together also through the recompute levels, ten
// AdamW steps and the KV cache.
GPTConfig with_all_options() {
  GPTConfig c = small_config();
  c.rotary = c.rmsnorm = c.qk_norm = c.relu2 = true, c.tie_embeddings = false;
  c.logit_softcap = 5.0f;
  return c;
}

TEST(CudaTrain, ArchitectureOptionsStepMatchesCpu) {
  REQUIRE_DEVICE();
  Rng rng(7);
  std::vector<int32_t> x, y;
  make_batch(rng, small_config().vocab_size, x, y);
  std::vector<std::pair<const char *, GPTConfig>> cases;
  auto add = [&](const char *name, auto set) {
    GPTConfig c = small_config();
    set(c);
    cases.emplace_back(name, c);
  };
  add("rotary", [](GPTConfig &c) { c.rotary = true; });
  add("rmsnorm", [](GPTConfig &c) { c.rmsnorm = true; });
  add("qk_norm", [](GPTConfig &c) { c.qk_norm = true; });
  add("relu2", [](GPTConfig &c) { c.relu2 = true; });
  add("untied", [](GPTConfig &c) { c.tie_embeddings = false; });
  add("softcap", [](GPTConfig &c) { c.logit_softcap = 2.0f; });
  cases.emplace_back("all", with_all_options());
  for (auto &[name, cfg] : cases) {
    SCOPED_TRACE(name);
    CudaGPT gpu(cfg, B, T);
    expect_step_matches_cpu(cfg, 0, gpu, x, y);
  }
  const GPTConfig cfg = with_all_options();
  const StepResult base = one_step(cfg, 0, 0);
  for (int level = 1; level <= 3; ++level) {
    const StepResult r = one_step(cfg, level, 0);
    EXPECT_NEAR(r.loss, base.loss, 1e-3) << "level " << level;
    EXPECT_GT(cosine(r.grads.data(), base.grads.data(), r.grads.size()), 0.9999) << level;
    if (level == 3) { // the whole block again, by the same ops: bit for bit
      EXPECT_EQ(std::memcmp(r.grads.data(), base.grads.data(), r.grads.size() * 4), 0);
    }
  }
}

TEST(CudaTrain, ArchitectureOptionsTrackCpuAndGenerate) {
  REQUIRE_DEVICE();
  const GPTConfig cfg = with_all_options();
  const std::vector<float> w = bf16_weights(cfg, 1337);
  GPT cpu(cfg, B, T);
  std::memcpy(cpu.params(), w.data(), w.size() * sizeof(float));
  Optimizer<CpuBackend> opt(cpu, kAdam);
  CudaGPT gpu(cfg, B, T);
  Optimizer<CudaBackend> gopt(gpu, kAdam);
  gopt.set_params(w.data());
  Rng rng(11);
  std::vector<int32_t> x, y;
  float first = 0, last = 0;
  for (int s = 0; s < 10; ++s) {
    make_batch(rng, cfg.vocab_size, x, y);
    const float lc = cpu.forward_backward(x.data(), y.data(), B, T, 1.0f);
    const float lg = gpu.forward_backward(x.data(), y.data(), B, T, 1.0f);
    opt.step(kLr, kClip), gopt.step(kLr, kClip);
    EXPECT_NEAR(lg, lc, 0.02 * lc) << "step " << s;
    (s == 0 ? first : last) = lg;
  }
  EXPECT_LT(last, first) << "the options' model does not learn";
  // KV-cache generation on both engines from the trained CPU weights.
  std::vector<float> trained(cpu.num_params());
  cpu.get_params(trained.data());
  for (float &f : trained)
    f = cuda::to_float(cuda::to_bf16(f));
  GPT c1(cfg, 1, 1);
  c1.set_params(trained.data());
  CudaGPT g1(cfg, 1, 1);
  g1.set_params(trained.data());
  const int S = 2, Vp = cfg.padded_vocab_size, V = cfg.vocab_size;
  Generator gc(c1, S);
  Generator gg(g1, S);
  std::vector<int32_t> toks(S);
  for (int t = 0; t < 20; ++t) {
    for (auto &e : toks)
      e = int32_t(rng.below(uint64_t(V)));
    const float *a = gc.step(toks.data(), t), *b = gg.step(toks.data(), t);
    double err = 0, norm = 0;
    for (int s = 0; s < S; ++s)
      for (int v = 0; v < V; ++v) {
        const double d = double(a[s * Vp + v]) - b[s * Vp + v];
        err += d * d, norm += double(a[s * Vp + v]) * a[s * Vp + v];
      }
    EXPECT_LT(std::sqrt(err / norm), 2e-2) << "position " << t;
  }
}

// Through train(): device='cuda', 20 iterations against 10, a checkpoint, and 10 more.
TEST(CudaTrain, TrainerResumeIsExact) {
  REQUIRE_DEVICE();
  TempDir dir;
  const GPTConfig model = small_config();
  Rng rng(3);
  std::vector<uint16_t> tokens(20000);
  for (auto &t : tokens)
    t = uint16_t(rng.below(uint64_t(model.vocab_size)));
  write_shard(dir.file("d_train_000001.bin"), tokens.data(), tokens.size());
  write_shard(dir.file("d_val_000000.bin"), tokens.data(), 4000);
  TrainConfig cfg;
  cfg.data_dir = dir.path.string();
  cfg.n_layer = model.n_layer, cfg.n_head = model.n_head, cfg.n_embd = model.n_embd;
  cfg.block_size = T, cfg.batch_size = B, cfg.gradient_accumulation_steps = 2;
  cfg.vocab_size = model.vocab_size, cfg.bias = true;
  cfg.max_iters = 20, cfg.eval_interval = 10, cfg.eval_iters = 2, cfg.log_interval = 100;
  cfg.learning_rate = 1e-3, cfg.warmup_iters = 2, cfg.lr_decay_iters = 20, cfg.min_lr = 1e-4;
  cfg.device = "cuda", cfg.threads = 2;
  auto run = [&](const std::string &out, long max_iters, bool resume) {
    TrainConfig c = cfg;
    c.out_dir = dir.file(out), c.max_iters = max_iters;
    c.init_from = resume ? "resume" : "scratch";
    RunSetup s = resolve_run(c);
    s.backend = Backend::CUDA;
    auto comm = make_single_communicator();
    return train(c, s, *comm);
  };
  const TrainResult straight = run("a", 20, false);
  run("b", 10, false);
  const TrainResult tail = run("b", 20, true);
  ASSERT_EQ(straight.losses.size(), 21u);
  ASSERT_EQ(tail.losses.size(), 11u);
  for (size_t i = 0; i < tail.losses.size(); ++i)
    EXPECT_EQ(std::memcmp(&tail.losses[i], &straight.losses[10 + i], sizeof(float)), 0)
        << "iter " << 10 + i << ": " << tail.losses[i] << " vs " << straight.losses[10 + i];
}

// ---------------------------------------------------------------- optimizer offload

namespace {

// The emulated CUDA seam (tests/emulation/) runs the CUDA AdamW as the CPU's on the widened
// gradients, so there the offloaded update is the same arithmetic and must be bitwise equal; a
// GPU's AdamW kernel computes the same fp32 formula, but nvcc may contract other products into
// FMAs than g++, which moves a master weight by an ulp now and then and its bf16 copy rarely.
bool emulated() { return cuda::device_summary().find("emulation") != std::string::npos; }

// 10 optimizer steps of 2 micro-batches with clipping (clip 0.5: active in the first steps), the
// embeddings and an untied head at rates of their own; the losses, norms, then the final fp32
// parameters and moments. With `hook` the last micro-batch's
// backward gets the optimizer's backward_hook() (under offload: each layer's gradients copied down
// as backward finishes them), as the engine passes it.
std::vector<float> offload_run(const GPTConfig &cfg, bool offload, bool hook = false,
                               int steps = 10) {
  const std::vector<float> w = bf16_weights(cfg, 1337);
  CudaGPT m(cfg, B, T);
  OptimConfig a = kAdam;
  a.offload = offload;
  a.embedding_lr_scale = 4.0f, a.head_lr_scale = 2.0f;
  Optimizer<CudaBackend> o(m, a);
  EXPECT_EQ(o.offloaded(), offload);
  o.set_params(w.data());
  Rng rng(9);
  std::vector<int32_t> x, y;
  std::vector<float> out;
  for (int s = 0; s < steps; ++s) {
    for (int micro = 0; micro < 2; ++micro) {
      make_batch(rng, cfg.vocab_size, x, y);
      GradExchange *ex = hook && micro == 1 ? o.backward_hook() : nullptr;
      out.push_back(m.forward_backward(x.data(), y.data(), B, T, 0.5f, 0, ex));
    }
    out.push_back(o.step(kLr, 0.5f));
  }
  std::vector<float> p(m.num_params()), mom, vel;
  o.get_params(p.data());
  o.gather_moments(mom, vel);
  out.insert(out.end(), p.begin(), p.end());
  out.insert(out.end(), mom.begin(), mom.end());
  out.insert(out.end(), vel.begin(), vel.end());
  return out;
}

} // namespace

// With the architecture options too: an untied head (its own tensor, last in the layout, its
// gradient finished first in backward) and no wpe change which tensors each layer's copy holds.
TEST(CudaTrain, OffloadEqualsPlain) {
  REQUIRE_DEVICE();
  for (const GPTConfig &cfg : {small_config(), with_all_options()}) {
    SCOPED_TRACE(cfg.tie_embeddings ? "GPT-2" : "all architecture options");
    const std::vector<float> plain = offload_run(cfg, false), off = offload_run(cfg, true);
    ASSERT_EQ(off.size(), plain.size());
    // The gradients copied down during backward are the final ones: the same numbers (bitwise on
    // any device: the same host arithmetic on the same gradients).
    const std::vector<float> hooked = offload_run(cfg, true, true);
    ASSERT_EQ(hooked.size(), off.size());
    EXPECT_EQ(std::memcmp(hooked.data(), off.data(), off.size() * sizeof(float)), 0);
    const size_t n_log = 30; // 20 losses and 10 norms
    for (size_t i = 0; i < n_log; ++i)
      std::printf("offload %2zu: %.7f plain %.7f\n", i, off[i], plain[i]);
    if (emulated()) {
      EXPECT_EQ(std::memcmp(off.data(), plain.data(), off.size() * sizeof(float)), 0);
    } else {
      for (size_t i = 0; i < n_log; ++i)
        EXPECT_NEAR(off[i], plain[i], 1e-3 * std::fabs(plain[i]) + 1e-6) << "entry " << i;
    }
    // And it is training: the last micro-batch's loss below the first's.
    EXPECT_LT(off[n_log - 3], off[0]);
  }
}

// What is allocated on each side is the plan's: the pinned host memory exactly, the device's
// optimizer block gone (the model's blocks, with their 256-byte alignment, unchanged). (ZeRO-1's
// shards: tests/dist/test_mpi.py, through train on 2 ranks.)
TEST(CudaTrain, OffloadAllocatesThePlanOnEachSide) {
  REQUIRE_DEVICE();
  const GPTConfig cfg = small_config();
  {
    PlanOptions po;
    po.backend = Backend::CUDA, po.precision = Precision::BF16, po.offload = true;
    const MemoryPlan plan = plan_memory(cfg, B, T, po);
    po.offload = false;
    const MemoryPlan plain = plan_memory(cfg, B, T, po);
    const size_t pinned0 = cuda::pinned_bytes(), held0 = cuda::device_memory().held;
    size_t held_plain = 0;
    {
      CudaGPT m(cfg, B, T);
      Optimizer<CudaBackend> o(m, kAdam);
      held_plain = cuda::device_memory().held - held0;
      EXPECT_EQ(cuda::pinned_bytes(), pinned0);
    }
    {
      CudaGPT m(cfg, B, T);
      OptimConfig a = kAdam;
      a.offload = true;
      Optimizer<CudaBackend> o(m, a);
      const size_t held = cuda::device_memory().held - held0;
      EXPECT_EQ(cuda::pinned_bytes() - pinned0, plan.host_bytes());
      EXPECT_EQ(o.host_bytes(), plan.host_bytes());
      EXPECT_EQ(o.bytes(), 0u);
      EXPECT_EQ(held_plain - held, plain.bytes(MemGroup::Optimizer));
      // The model's blocks: the plan's bytes plus at most 255 bytes of alignment per buffer.
      EXPECT_GE(held, plan.total_bytes());
      EXPECT_LT(held - plan.total_bytes(), 256 * plan.buffers.size());
    }
    EXPECT_EQ(cuda::pinned_bytes(), pinned0);
    EXPECT_EQ(cuda::device_memory().held, held0);
  }
}

// Resume with offload: 10 steps, the checkpoint's fp32 state out and into a fresh optimizer, 10
// more, bitwise the 20 straight; and the same state resumed without offload continues the same
// (checkpoints do not record where the state lived; bitwise in emulation, see above).
TEST(CudaTrain, OffloadResumeIsExact) {
  REQUIRE_DEVICE();
  const GPTConfig cfg = small_config();
  const std::vector<float> w = bf16_weights(cfg, 1337);
  auto run = [&](CudaGPT &m, Optimizer<CudaBackend> &o, Rng &rng, int steps,
                 std::vector<float> &losses) {
    std::vector<int32_t> x, y;
    for (int s = 0; s < steps; ++s) {
      make_batch(rng, cfg.vocab_size, x, y);
      losses.push_back(m.forward_backward(x.data(), y.data(), B, T, 1.0f));
      o.step(kLr, kClip);
    }
  };
  OptimConfig off = kAdam;
  off.offload = true;
  std::vector<float> straight;
  {
    CudaGPT m(cfg, B, T);
    Optimizer<CudaBackend> o(m, off);
    o.set_params(w.data());
    Rng rng(5);
    run(m, o, rng, 20, straight);
  }
  std::vector<float> first, p(w.size()), mom, vel;
  int t = 0;
  Rng rng(5);
  {
    CudaGPT m(cfg, B, T);
    Optimizer<CudaBackend> o(m, off);
    o.set_params(w.data());
    run(m, o, rng, 10, first);
    o.get_params(p.data());
    o.gather_moments(mom, vel);
    t = o.steps_taken();
  }
  for (bool offload : {true, false}) {
    SCOPED_TRACE(offload ? "resumed with offload" : "resumed without offload");
    OptimConfig a = kAdam;
    a.offload = offload;
    CudaGPT m(cfg, B, T);
    Optimizer<CudaBackend> o(m, a);
    o.set_params(p.data());
    o.load_moments(mom.data(), vel.data());
    o.set_steps_taken(t);
    Rng r = rng;
    std::vector<float> resumed = first;
    run(m, o, r, 10, resumed);
    ASSERT_EQ(resumed.size(), straight.size());
    for (size_t i = 0; i < straight.size(); ++i) {
      if (offload || emulated())
        EXPECT_EQ(std::memcmp(&resumed[i], &straight[i], sizeof(float)), 0)
            << "step " << i << ": " << resumed[i] << " vs " << straight[i];
      else
        EXPECT_NEAR(resumed[i], straight[i], 1e-3 * std::fabs(straight[i])) << "step " << i;
    }
  }
}

// The allocator's cap (FINEGPT_DEVICE_MEMORY_CAP, read once per process) is exercised by
// tests/cli/test_offload.py in processes of their own; here: the ledger counts what is held.
TEST(CudaTrain, DeviceLedgerCountsHeldAndPeak) {
  REQUIRE_DEVICE();
  const cuda::DeviceMemory before = cuda::device_memory();
  {
    cuda::DeviceArray<unsigned char> a(1000), b(5000);
    const cuda::DeviceMemory mid = cuda::device_memory();
    EXPECT_EQ(mid.held - before.held, 6000u);
    EXPECT_GE(mid.peak, mid.held);
  }
  EXPECT_EQ(cuda::device_memory().held, before.held);
}
