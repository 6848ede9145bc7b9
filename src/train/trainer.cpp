// nanoGPT's train.py loop on finegpt's model (see trainer.h).
#include "train/trainer.h"

#include "core/error.h"
#include "core/file.h"
#include "core/rng.h"
#include "core/threads.h"
#include "data/prepare.h"
#include "data/tokens.h"
#include "io/checkpoint.h"
#include "model/gpt.h"
#include "optim/optim.h"

#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace finegpt {

namespace {

constexpr int kGpt2Vocab = 50257;

std::string ckpt_path(const TrainConfig &cfg) { return cfg.out_dir + "/ckpt.bin"; }

// nanoGPT's estimate_loss for one split: the mean of eval_iters batch losses.
float estimate_split(GPT &model, BatchLoader &loader, long iters, int B, int T,
                     std::vector<int32_t> &x, std::vector<int32_t> &y) {
  double sum = 0.0;
  for (long k = 0; k < iters; ++k) {
    loader.next(x.data(), y.data());
    sum += model.forward(x.data(), y.data(), B, T);
  }
  return float(sum / double(iters));
}

} // namespace

RunSetup resolve_run(const TrainConfig &cfg) {
  RunSetup s;
  s.data_dir = cfg.data_dir.empty() ? "data/" + cfg.dataset : cfg.data_dir;
  if (cfg.init_from == "resume") {
    s.resume = true;
    s.init_path = ckpt_path(cfg);
    if (!file_exists(s.init_path))
      fail("init_from='resume' but ", s.init_path, " does not exist (train once first)");
    CheckpointState st = read_checkpoint_state(s.init_path);
    s.model = st.model;
    s.model.dropout = float(cfg.dropout);
    if (cfg.n_layer != st.model.n_layer || cfg.n_embd != st.model.n_embd ||
        cfg.n_head != st.model.n_head || cfg.block_size != st.model.block_size)
      s.notes.push_back("init_from='resume': the model shape comes from the checkpoint");
    return s;
  }
  if (cfg.init_from != "scratch") { // an llm.c model file
    s.init_path = cfg.init_from;
    GPTConfig file = read_llmc_header(s.init_path);
    s.model = file;
    s.model.dropout = float(cfg.dropout);
    FINEGPT_CHECK(cfg.block_size <= file.block_size, "block_size ", cfg.block_size,
                  " is larger than the model file's ", file.block_size, " positions");
    s.model.block_size = int(cfg.block_size); // cropped as nanoGPT's crop_block_size
    s.notes.push_back(cat("init_from: model shape from ", s.init_path, " (", file.n_layer,
                          " layers, ", file.n_head, " heads, ", file.n_embd, " channels, bias)"));
    return s;
  }
  GPTConfig &m = s.model;
  m.n_layer = int(cfg.n_layer);
  m.n_head = int(cfg.n_head);
  m.n_embd = int(cfg.n_embd);
  m.block_size = int(cfg.block_size);
  m.bias = cfg.bias;
  m.dropout = float(cfg.dropout);
  if (cfg.vocab_size > 0) {
    m.vocab_size = int(cfg.vocab_size);
  } else if (file_exists(s.data_dir + "/meta.json")) {
    m.vocab_size = dataset_vocab_size(s.data_dir + "/meta.json");
  } else {
    m.vocab_size = kGpt2Vocab;
  }
  m.padded_vocab_size = pad_vocab(m.vocab_size);
  check_gpt_config(m);
  return s;
}

void print_run_summary(const TrainConfig &cfg, const RunSetup &s) {
  std::printf("# configuration\n%s", to_python(cfg).c_str());
  const GPTConfig &m = s.model;
  const size_t P = num_parameters_unpadded(m), Pp = num_parameters(m);
  const size_t wpe = size_t(m.block_size) * m.n_embd;
  std::printf("# model: %d layers, %d heads, %d channels, block %d, vocab %d (padded %d), "
              "bias %s\n",
              m.n_layer, m.n_head, m.n_embd, m.block_size, m.vocab_size, m.padded_vocab_size,
              m.bias ? "on" : "off");
  std::printf("# parameters: %zu (%.2fM; %.2fM without position embeddings; %zu stored with "
              "vocabulary padding)\n",
              P, P / 1e6, (P - wpe) / 1e6, Pp);
  const double tokens_per_step =
      double(cfg.gradient_accumulation_steps) * double(cfg.batch_size) * double(cfg.block_size);
  std::printf("# tokens per optimizer step: %.0f (%ld accumulation x %ld batch x %ld block); "
              "total over %ld iterations: %.3g\n",
              tokens_per_step, cfg.gradient_accumulation_steps, cfg.batch_size, cfg.block_size,
              cfg.max_iters, tokens_per_step * double(cfg.max_iters + 1));
  MemoryPlan plan = plan_memory(m, int(cfg.batch_size), int(cfg.block_size), true);
  std::printf("# memory plan (cpu, float32, micro-batch %ld x %ld):\n%s", cfg.batch_size,
              cfg.block_size, format_plan(plan).c_str());
  for (const auto &n : s.notes)
    std::printf("note: %s\n", n.c_str());
  std::fflush(stdout);
}

TrainResult train(const TrainConfig &cfg, const RunSetup &s) {
  using clock = std::chrono::steady_clock;
  const int threads = set_threads(int(cfg.threads));
  const int B = int(cfg.batch_size), T = int(cfg.block_size);
  FINEGPT_CHECK(T <= s.model.block_size, "block_size ", T, " exceeds the model's ",
                s.model.block_size);
  make_dirs(cfg.out_dir);

  // Data first: a bad file fails before any work.
  TokenDataset train_data(find_split_files(s.data_dir, "train"));
  TokenDataset val_data(find_split_files(s.data_dir, "val"));
  for (const TokenDataset *d : {&train_data, &val_data})
    FINEGPT_CHECK(d->max_token() < s.model.vocab_size, d->file_path(0), ": token id ",
                  d->max_token(), " is outside the model's vocabulary (", s.model.vocab_size, ")");
  const DataOrder order = parse_data_order(cfg.data_order);
  BatchLoader loader(train_data, B, T, order, uint64_t(cfg.seed));
  BatchLoader eval_train(train_data, B, T, order, uint64_t(cfg.seed) + 1);
  BatchLoader eval_val(val_data, B, T, order, uint64_t(cfg.seed) + 2);

  GPT model(s.model, B, T);
  AdamW opt(model, AdamWConfig{float(cfg.beta1), float(cfg.beta2), 1e-8f, float(cfg.weight_decay)});
  long iter_num = 0;
  double best_val_loss = 1e9;
  uint64_t eval_rng = Rng(uint64_t(cfg.seed) + 3).state;
  if (s.resume) {
    CheckpointState st = read_checkpoint_state(s.init_path);
    load_checkpoint(s.init_path, model.params(), opt.m(), opt.v());
    opt.set_steps_taken(st.adam_steps);
    iter_num = st.iter_num;
    best_val_loss = st.best_val_loss;
    loader.restore({st.loader_rng, st.loader_shard, st.loader_position});
    eval_rng = st.eval_rng;
    std::printf("resuming from %s at iter %ld\n", s.init_path.c_str(), iter_num);
  } else if (!s.init_path.empty()) {
    GPTConfig file = read_llmc_header(s.init_path);
    if (file.block_size == s.model.block_size) {
      load_llmc_model(s.init_path, model.params());
    } else { // crop the position embeddings to block_size rows
      std::vector<float> full(num_parameters(file));
      load_llmc_model(s.init_path, full.data());
      auto src = param_tensors(file);
      size_t in = 0, out = 0;
      for (int i = 0; i < kNumParamTensors; ++i) {
        size_t n = model.param_count(ParamId(i));
        std::copy(full.begin() + in, full.begin() + in + n, model.params() + out);
        in += src[i].count;
        out += n;
      }
    }
  } else {
    model.init_weights(uint64_t(cfg.seed));
  }

  const LrSchedule sched{cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.lr_decay_iters,
                         cfg.decay_lr};
  const std::string metrics_path = cfg.out_dir + "/metrics.jsonl";
  FILE *metrics = std::fopen(metrics_path.c_str(), s.resume ? "a" : "w");
  if (!metrics) fail(metrics_path, ": cannot write");
  std::unique_ptr<FILE, int (*)(FILE *)> metrics_guard(metrics, std::fclose);
  auto log_json = [&](const nlohmann::json &j) {
    std::fprintf(metrics, "%s\n", j.dump().c_str());
    std::fflush(metrics);
  };
  std::printf("training on cpu with %d threads\n", threads);

  std::vector<int32_t> x(size_t(B) * T), y(size_t(B) * T), ex(x.size()), ey(y.size());
  TrainResult result;
  // `held` is the loader state before the batch now in x, y: what a checkpoint must restore.
  LoaderState held = loader.state();
  loader.next(x.data(), y.data());
  const long accum = cfg.gradient_accumulation_steps;
  auto t0 = clock::now();
  while (true) {
    const float lr = float(sched.at(iter_num));
    if (iter_num % cfg.eval_interval == 0) {
      const uint64_t eval_rng_before = eval_rng;
      if (order == DataOrder::Random) {
        eval_train.restore({eval_rng, 0, 0});
      } else {
        eval_train.reset();
        eval_val.reset();
      }
      float train_loss = estimate_split(model, eval_train, cfg.eval_iters, B, T, ex, ey);
      if (order == DataOrder::Random) eval_val.restore({eval_train.state().rng, 0, 0});
      float val_loss = estimate_split(model, eval_val, cfg.eval_iters, B, T, ex, ey);
      eval_rng = eval_val.state().rng;
      std::printf("step %ld: train loss %.4f, val loss %.4f\n", iter_num, train_loss, val_loss);
      std::fflush(stdout);
      log_json({{"iter", iter_num}, {"train_loss", train_loss}, {"val_loss", val_loss}});
      result.val_losses.push_back(val_loss);
      if (val_loss < best_val_loss || cfg.always_save_checkpoint) {
        best_val_loss = val_loss; // as nanoGPT: updated whenever it saves
        if (iter_num > 0) {
          CheckpointState st;
          st.model = s.model;
          st.iter_num = iter_num;
          st.best_val_loss = best_val_loss;
          st.adam_steps = opt.steps_taken();
          st.loader_rng = held.rng;
          st.loader_shard = held.shard;
          st.loader_position = held.position;
          st.eval_rng = eval_rng_before;
          st.config_py = to_python(cfg);
          st.data_dir = s.data_dir;
          std::printf("saving checkpoint to %s\n", cfg.out_dir.c_str());
          save_checkpoint(ckpt_path(cfg), st, model.params(), opt.m(), opt.v());
        }
      }
      t0 = clock::now();
    }
    if (iter_num == 0 && cfg.eval_only) break;
    float loss = 0.0f;
    for (long micro = 0; micro < accum; ++micro) {
      const uint64_t key =
          cfg.dropout > 0
              ? mix64(uint64_t(cfg.seed) ^ mix64(uint64_t(iter_num * accum + micro) + 1))
              : 0;
      loss = model.forward_backward(x.data(), y.data(), B, T, 1.0f / float(accum), key);
      FINEGPT_CHECK(std::isfinite(loss), "loss became ", loss, " at iter ", iter_num,
                    " (try a lower learning_rate)");
      held = loader.state();
      loader.next(x.data(), y.data());
    }
    const float norm = opt.step(model, lr, float(cfg.grad_clip));
    auto t1 = clock::now();
    const double dt = std::chrono::duration<double>(t1 - t0).count();
    t0 = t1;
    result.losses.push_back(loss);
    result.iters.push_back(iter_num);
    if (iter_num % cfg.log_interval == 0) {
      const double tok_s = double(accum) * B * T / dt;
      std::printf("iter %ld: loss %.4f, time %.2fms, tok/s %.0f, lr %.3e, norm %.4f\n", iter_num,
                  loss, dt * 1e3, tok_s, lr, norm);
      std::fflush(stdout);
      log_json({{"iter", iter_num},
                {"loss", loss},
                {"ms", dt * 1e3},
                {"tok_per_s", tok_s},
                {"lr", lr},
                {"grad_norm", norm}});
    }
    ++iter_num;
    if (iter_num > cfg.max_iters) break;
  }
  return result;
}

} // namespace finegpt
