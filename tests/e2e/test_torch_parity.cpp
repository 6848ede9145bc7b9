// End to end against PyTorch: tests/e2e/torch_reference.py (our PyTorch GPT, run by Debian's
// python3-torch) writes initial weights, tokens, logits, loss, every gradient and ten AdamW
// steps of nanoGPT's loop; finegpt's model and optimizer must reproduce them within float32
// tolerance. The architecture options (rotary, RMSNorm, QK-norm, ReLU^2, untied head, zero-init,
// soft-capping) each against the reference's float64 run of them.
#include "core/error.h"
#include "core/file.h"
#include "model/model.h"
#include "optim/optim.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace finegpt;
using json = nlohmann::json;

namespace {

std::vector<float> read_f32(const std::string &path) {
  std::string s = read_file(path);
  std::vector<float> v(s.size() / 4);
  std::memcpy(v.data(), s.data(), v.size() * 4);
  return v;
}

// max |a-b| / max |b|: the error relative to the tensor's scale.
double rel_err(const float *a, const float *b, size_t n) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

struct Reference {
  json cfg, results;
  std::vector<float> params, logits, grads, final_params;
  std::vector<int32_t> tokens;
};

Reference run_reference(const std::string &args) {
  auto dir = std::filesystem::temp_directory_path() /
             ("finegpt_parity_" + std::to_string(::getpid()) + "_" +
              std::to_string(std::hash<std::string>{}(args)));
  std::filesystem::create_directories(dir);
  std::string cmd = std::string("/usr/bin/python3 ") + FINEGPT_SOURCE_DIR +
                    "/tests/e2e/torch_reference.py --out " + dir.string() + " " + args + " > " +
                    dir.string() + "/log.txt 2>&1";
  int rc = std::system(cmd.c_str());
  if (rc != 0) throw Error("torch_reference.py failed: " + read_file(dir.string() + "/log.txt"));
  Reference r;
  r.cfg = json::parse(read_file(dir / "config.json"));
  r.results = json::parse(read_file(dir / "results.json"));
  r.params = read_f32(dir / "params.bin");
  r.logits = read_f32(dir / "logits.bin");
  r.grads = read_f32(dir / "grads.bin");
  r.final_params = read_f32(dir / "final_params.bin");
  std::string t = read_file(dir / "tokens.bin");
  r.tokens.resize(t.size() / 4);
  std::memcpy(r.tokens.data(), t.data(), t.size());
  std::filesystem::remove_all(dir);
  return r;
}

void check_parity(const std::string &args) {
  Reference ref = run_reference(args);
  const json &c = ref.cfg;
  GPTConfig g;
  g.n_layer = c["L"], g.n_head = c["NH"], g.n_embd = c["C"], g.vocab_size = c["V"];
  g.padded_vocab_size = pad_vocab(g.vocab_size), g.block_size = c["T"], g.bias = c["bias"];
  g.rotary = c["rotary"], g.rmsnorm = c["rmsnorm"], g.qk_norm = c["qk_norm"], g.relu2 = c["relu2"];
  g.tie_embeddings = c["tie"], g.zero_init_proj = c["zero_init"];
  g.logit_softcap = float(c["softcap"]);
  ASSERT_EQ(int(c["Vp"]), g.padded_vocab_size);
  const int B = c["B"], T = c["T"], accum = c["accum"], steps = c["steps"];
  GPT model(g, B, T);
  ASSERT_EQ(model.num_params(), ref.params.size());
  std::copy(ref.params.begin(), ref.params.end(), model.params());

  // Batch k: x = tokens[k, :, :T], y = tokens[k, :, 1:].
  auto batch = [&](int k, std::vector<int32_t> &x, std::vector<int32_t> &y) {
    x.resize(size_t(B) * T), y.resize(size_t(B) * T);
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < T; ++t) {
        const int32_t *row = ref.tokens.data() + (size_t(k) * B + b) * (T + 1);
        x[size_t(b) * T + t] = row[t];
        y[size_t(b) * T + t] = row[t + 1];
      }
  };
  std::vector<int32_t> x, y;
  batch(0, x, y);
  model.forward(x.data(), nullptr, B, T);
  EXPECT_LT(rel_err(model.logits(), ref.logits.data(), ref.logits.size()), 1e-5) << "logits";

  model.zero_grads();
  float loss = model.forward_backward(x.data(), y.data(), B, T, 1.0f);
  EXPECT_NEAR(loss, double(ref.results["loss0"]), 1e-5 * std::fabs(double(ref.results["loss0"])));
  auto tensors = param_tensors(g);
  for (int i = 0; i < kNumParamTensors; ++i) {
    const size_t n = model.param_count(ParamId(i)), off = model.param_offset(ParamId(i));
    if (!n) continue;
    EXPECT_LT(rel_err(model.grads() + off, ref.grads.data() + off, n), 1e-5)
        << "gradient of " << tensors[i].name;
  }

  // Ten steps of nanoGPT's loop: accumulation, clipping, AdamW, the LR schedule.
  std::copy(ref.params.begin(), ref.params.end(), model.params());
  model.zero_grads();
  OptimConfig oc{float(c["beta1"]), float(c["beta2"]), 1e-8f, float(c["wd"])};
  oc.muon = c["muon"];
  oc.muon_lr_scale = float(double(c["muon_lr"]) / double(c["lr"]));
  oc.muon_momentum = float(c["muon_momentum"]);
  if (double(c["embedding_lr"]) > 0)
    oc.embedding_lr_scale = float(double(c["embedding_lr"]) / double(c["lr"]));
  if (double(c["head_lr"]) > 0) oc.head_lr_scale = float(double(c["head_lr"]) / double(c["lr"]));
  Optimizer opt(model, oc);
  LrSchedule sched{c["lr"], c["min_lr"], c["warmup"], c["decay_iters"], bool(c["decay_lr"])};
  int k = 0;
  for (int it = 0; it < steps; ++it) {
    const double lr = sched.at(it);
    EXPECT_NEAR(lr, double(ref.results["lrs"][it]), 1e-12);
    double sum = 0;
    float last = 0;
    for (int m = 0; m < accum; ++m, ++k) {
      batch(k, x, y);
      last = model.forward_backward(x.data(), y.data(), B, T, 1.0f / float(accum));
      sum += last;
    }
    const float norm = opt.step(float(lr), float(c["grad_clip"]));
    const double want_last = ref.results["step_losses_last"][it];
    const double want_mean = ref.results["step_losses_mean"][it];
    const double want_norm = ref.results["grad_norms"][it];
    EXPECT_NEAR(last, want_last, 1e-5 * want_last) << "step " << it;
    EXPECT_NEAR(sum / accum, want_mean, 1e-5 * want_mean) << "step " << it;
    EXPECT_NEAR(norm, want_norm, 1e-5 * want_norm) << "grad norm, step " << it;
  }
  // Adam turns rounding in near-zero gradients into O(lr) steps: absolute tolerance.
  double worst = 0;
  for (size_t i = 0; i < ref.final_params.size(); ++i)
    worst = std::max(worst, std::fabs(double(model.params()[i]) - ref.final_params[i]));
  EXPECT_LT(worst, 5e-5) << "final parameters";
}

const char *kCommon = "--L 2 --NH 4 --C 48 --V 101 --T 16 --B 3 --steps 10 --lr 1e-3 --wd 0.1 "
                      "--beta1 0.9 --beta2 0.95 --warmup 2 --decay_iters 10 "
                      "--min_lr 1e-4 --accum 2 --seed 0 --threads 2";

} // namespace

TEST(TorchParity, WithBias) { check_parity(std::string(kCommon) + " --bias 1 --grad_clip 1.0"); }

TEST(TorchParity, WithoutBiasClippingActive) {
  // A small clip threshold so that clipping is active on every step.
  check_parity(std::string(kCommon) + " --bias 0 --grad_clip 0.05");
}

TEST(TorchParity, NoClipping) { check_parity(std::string(kCommon) + " --bias 1 --grad_clip 0"); }

// Each architecture option alone, then all together, against the float64 reference.
const char *kArch = " --fp64 --grad_clip 1.0 --bias 1";
TEST(TorchParity, Rotary) { check_parity(std::string(kCommon) + kArch + " --rotary 1"); }
TEST(TorchParity, RmsNorm) { check_parity(std::string(kCommon) + kArch + " --rmsnorm 1"); }
TEST(TorchParity, QkNorm) { check_parity(std::string(kCommon) + kArch + " --qk_norm 1"); }
TEST(TorchParity, Relu2) { check_parity(std::string(kCommon) + kArch + " --relu2 1"); }
TEST(TorchParity, UntiedHead) { check_parity(std::string(kCommon) + kArch + " --tie 0"); }
TEST(TorchParity, ZeroInitUntied) {
  check_parity(std::string(kCommon) + kArch + " --zero_init 1 --tie 0");
}
TEST(TorchParity, Softcap) { check_parity(std::string(kCommon) + kArch + " --softcap 3"); }
// Muon for the hidden matrices, AdamW for the rest: with clipping active, a wide model (fc is
// 4C x C: Newton-Schulz on its transpose) and with all the architecture options.
TEST(TorchParity, Muon) { check_parity(std::string(kCommon) + kArch + " --muon 1"); }
TEST(TorchParity, MuonClippedMomentum09) {
  check_parity(std::string(kCommon) +
               " --fp64 --bias 0 --grad_clip 0.05 --muon 1 --muon_lr 0.05 --muon_momentum 0.9");
}
TEST(TorchParity, MuonAllOptions) {
  check_parity(std::string(kCommon) + kArch +
               " --rotary 1 --rmsnorm 1 --qk_norm 1 --relu2 1 --tie 0 --softcap 5 --muon 1");
}
// The embeddings' and the untied head's rates of their own (embedding_lr, head_lr), with AdamW
// alone (wpe present) and beside Muon under rotary (no wpe).
TEST(TorchParity, EmbeddingAndHeadRates) {
  check_parity(std::string(kCommon) + kArch + " --tie 0 --embedding_lr 8e-3 --head_lr 3e-3");
}
TEST(TorchParity, MuonEmbeddingAndHeadRates) {
  check_parity(std::string(kCommon) + kArch +
               " --rotary 1 --tie 0 --muon 1 --embedding_lr 2e-2 --head_lr 5e-3");
}
TEST(TorchParity, AllOptions) {
  check_parity(std::string(kCommon) + kArch +
               " --rotary 1 --rmsnorm 1 --qk_norm 1 --relu2 1 --tie 0 --softcap 5");
}
