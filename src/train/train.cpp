// The training loop (nanoGPT's train.py), data-parallel over a Communicator: each rank runs
// gradient_accumulation_steps / world micro-steps on its own batches, gradients are summed
// over ranks by the optimizer (all-reduce, or ZeRO-1's reduce-scatter), only rank 0 prints,
// logs and writes checkpoints, and every rank resumes from the same checkpoint. The model and
// optimizer are an Engine (train/engine.h): the CPU's, or on device='cuda' the GPU's.
#include "core/error.h"
#include "core/file.h"
#include "core/interrupt.h"
#include "core/rng.h"
#include "core/threads.h"
#include "data/tokens.h"
#include "io/checkpoint.h"
#include "model/model.h"
#include "optim/optim.h"
#include "plan/planner.h"
#include "train/engine.h"
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <nlohmann/json.hpp>

namespace finegpt {

namespace {

// nanoGPT's estimate_loss for one split: the mean loss of eval_iters batches. Every rank draws
// every batch (so the batches do not depend on the number of ranks) and evaluates its share.
float estimate_split(Engine &model, BatchLoader &loader, long iters, int B, int T,
                     std::vector<int32_t> &x, std::vector<int32_t> &y, Communicator &comm) {
  double sum = 0.0;
  for (long k = 0; k < iters; ++k) {
    loader.next(x.data(), y.data());
    if (k % comm.world() == comm.rank()) sum += model.forward(x.data(), y.data(), B, T);
  }
  comm.allreduce_sum(&sum, 1);
  return float(sum / double(iters));
}

// Parameters from an llm.c model file, its position embeddings cropped to block_size rows.
void load_llmc_into(Engine &model, const GPTConfig &cfg, const std::string &path) {
  GPTConfig file = read_llmc_header(path);
  std::vector<float> full(num_parameters(file));
  load_llmc_model(path, full.data());
  if (file.block_size == cfg.block_size) return model.set_params(full.data());
  std::vector<float> params(num_parameters(cfg));
  auto src = param_tensors(file), dst = param_tensors(cfg);
  size_t in = 0, out = 0;
  for (int i = 0; i < kNumParamTensors; ++i) {
    const size_t n = dst[i].count;
    std::copy(full.begin() + in, full.begin() + in + n, params.begin() + out);
    in += src[i].count;
    out += n;
  }
  model.set_params(params.data());
}

// The same configuration on every rank, or an Error (identical on all ranks).
void check_same_config(const TrainConfig &cfg, Communicator &comm) {
  if (comm.world() == 1) return;
  const std::string text = to_python(cfg);
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text)
    h = (h ^ c) * 0x100000001b3ULL; // FNV-1a
  std::vector<uint8_t> all = comm.all_gather_bytes(&h, sizeof h);
  for (int r = 1; r < comm.world(); ++r)
    if (std::memcmp(all.data() + r * sizeof h, all.data(), sizeof h) != 0)
      fail("rank ", r,
           "'s configuration differs from rank 0's (every rank must be given the "
           "same config file and flags)");
}

} // namespace

TrainResult train(const TrainConfig &cfg, const RunSetup &s, Communicator &comm, bool *started) {
  using clock = std::chrono::steady_clock;
  const int rank = comm.rank(), world = comm.world();
  const bool root = rank == 0;
  const int threads = set_threads(int(cfg.threads));
  const int B = int(cfg.batch_size), T = int(cfg.block_size);
  FINEGPT_CHECK(T <= s.model.block_size, "block_size ", T, " exceeds the model's ",
                s.model.block_size);
  FINEGPT_CHECK(cfg.gradient_accumulation_steps % world == 0, "gradient_accumulation_steps (",
                cfg.gradient_accumulation_steps, ") must be divisible by the number of ranks (",
                world, ")");
  check_same_config(cfg, comm);
  const long accum = cfg.gradient_accumulation_steps / world; // per rank, as nanoGPT's DDP
  if (root) make_dirs(cfg.out_dir);

  // Data first: a bad file fails before any work.
  TokenDataset train_data(find_split_files(s.data_dir, "train"));
  TokenDataset val_data(find_split_files(s.data_dir, "val"));
  for (const TokenDataset *d : {&train_data, &val_data})
    FINEGPT_CHECK(d->max_token() < s.model.vocab_size, d->file_path(0), ": token id ",
                  d->max_token(), " is outside the model's vocabulary (", s.model.vocab_size, ")");
  const DataOrder order = parse_data_order(cfg.data_order);
  BatchLoader loader(train_data, B, T, order, uint64_t(cfg.seed), rank, world);
  BatchLoader eval_train(train_data, B, T, order, uint64_t(cfg.seed) + 1);
  BatchLoader eval_val(val_data, B, T, order, uint64_t(cfg.seed) + 2);

  // The process before the model exists (program, libraries, data index): the part of the
  // peak that the plan does not cover, reported at the end.
  const double resident_before_model = resident_bytes();
  const AdamWConfig adam{float(cfg.beta1), float(cfg.beta2), 1e-8f, float(cfg.weight_decay)};
  EngineOptions eo;
  eo.backend = s.backend;
  eo.model.recompute = int(cfg.recompute);
  eo.model.cudnn_attention = s.backend == Backend::CUDA && cfg.attention == "cudnn";
  eo.adam = adam, eo.zero_stage = int(cfg.zero_stage), eo.threads = threads;
  eo.timeout_s = cfg.dist_timeout;
  std::unique_ptr<Engine> engine = make_engine(s.model, B, T, comm, eo);
  Engine &model = *engine, &opt = *engine;
  const double peak = model.peak_flops();
  long iter_num = 0;
  double best_val_loss = 1e9;
  uint64_t eval_rng = Rng(uint64_t(cfg.seed) + 3).state;
  long last_saved_iter = -1; // the iteration of the checkpoint on disk, for the divergence message
  if (s.resume) {
    CheckpointState st = read_checkpoint_state(s.init_path);
    if (int(st.loaders.size()) != world && order == DataOrder::Random)
      fail(s.init_path, ": written by ", st.loaders.size(),
           " rank(s); resuming random batches "
           "exactly needs as many ranks (or data_order = 'sequential')");
    std::vector<float> p(model.num_params()), m(p.size()), v(p.size());
    load_checkpoint(s.init_path, p.data(), m.data(), v.data());
    model.set_params(p.data());
    opt.load_moments(m.data(), v.data());
    opt.set_steps_taken(st.adam_steps);
    iter_num = st.iter_num;
    last_saved_iter = st.iter_num;
    best_val_loss = st.best_val_loss;
    const auto &l = st.loaders[size_t(rank) < st.loaders.size() ? rank : 0];
    loader.restore({l[0], l[1], l[2]});
    eval_rng = st.eval_rng;
    if (root) std::printf("resuming from %s at iter %ld\n", s.init_path.c_str(), iter_num);
  } else if (!s.init_path.empty()) {
    load_llmc_into(model, s.model, s.init_path);
  } else {
    model.init_weights(uint64_t(cfg.seed));
  }

  const LrSchedule sched{cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.lr_decay_iters,
                         cfg.decay_lr};
  const std::string metrics_path = cfg.out_dir + "/metrics.jsonl";
  std::unique_ptr<FILE, int (*)(FILE *)> metrics(nullptr, std::fclose);
  if (root) {
    metrics.reset(std::fopen(metrics_path.c_str(), s.resume ? "a" : "w"));
    if (!metrics) fail(metrics_path, ": cannot write");
  }
  auto log_json = [&](const nlohmann::json &j) {
    if (!root) return;
    std::fprintf(metrics.get(), "%s\n", j.dump().c_str());
    std::fflush(metrics.get());
  };
  if (root)
    std::printf("training on %s%s\n", model.describe().c_str(),
                world > 1 ? cat(" per rank, ", world, " ranks (", comm.name(), ")",
                                cfg.zero_stage ? ", ZeRO-1" : "")
                                .c_str()
                          : "");

  // A checkpoint of the state before iteration `iter` runs: `state` is this rank's loader before
  // the batch now in x, y, `eval_rng_at` the evaluation RNG before that iteration's evaluation.
  // Collectives first (every rank), then rank 0 writes ckpt.bin, keeping the one before as
  // ckpt.prev.bin. save_checkpoint refuses non-finite values and verifies the file before it
  // replaces the old one, so a failed save leaves the last good checkpoint as it was.
  const std::string ckpt_path = cfg.out_dir + "/ckpt.bin";
  auto save = [&](long iter, const LoaderState &state, uint64_t eval_rng_at) {
    std::array<uint64_t, 3> mine = {state.rng, state.shard, state.position};
    std::vector<uint8_t> all = comm.all_gather_bytes(&mine, sizeof mine);
    std::vector<float> m, v;
    opt.gather_moments(m, v);
    if (root) {
      CheckpointState st;
      st.model = s.model;
      st.iter_num = iter;
      st.best_val_loss = best_val_loss;
      st.adam_steps = opt.steps_taken();
      st.loaders.resize(world);
      std::memcpy(st.loaders.data(), all.data(), all.size());
      st.eval_rng = eval_rng_at;
      st.config_py = to_python(cfg);
      st.data_dir = s.data_dir;
      std::printf("saving checkpoint to %s\n", cfg.out_dir.c_str());
      std::fflush(stdout);
      save_checkpoint(ckpt_path, st, model.params_for_save(), m.data(), v.data(),
                      cfg.out_dir + "/ckpt.prev.bin");
    }
    last_saved_iter = iter;
  };
  // A divergence stops the run before anything of it is saved, saying where, what led there
  // and what to change.
  std::deque<std::pair<long, float>> recent; // the last few step losses
  auto diverged = [&](long iter, const std::string &what, double value) {
    std::string history;
    for (const auto &[i, l] : recent)
      history += cat(history.empty() ? "" : ", ", i, ": ", l);
    fail("training diverged at iter ", iter, ": ", what, " is ", value,
         history.empty() ? "" : cat(" (losses of the iters before: ", history, ")"), "; ",
         last_saved_iter >= 0 ? cat(ckpt_path, " (iter ", last_saved_iter, ") is untouched")
                              : std::string("no checkpoint was written"),
         "; try a lower learning_rate (now ", cfg.learning_rate, ")",
         cfg.grad_clip > 0 ? "" : " or grad_clip = 1.0 (now 0: off)");
  };
  InterruptGuard interrupts; // SIGINT / SIGTERM: finish the step, save, stop

  std::vector<int32_t> x(size_t(B) * T), y(size_t(B) * T), ex(x.size()), ey(y.size());
  TrainResult result;
  // `held` is the loader state before the batch now in x, y: what a checkpoint must restore.
  LoaderState held = loader.state();
  loader.next(x.data(), y.data());
  auto t0 = clock::now();
  if (started) *started = true;
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
      float train_loss = estimate_split(model, eval_train, cfg.eval_iters, B, T, ex, ey, comm);
      if (order == DataOrder::Random) eval_val.restore({eval_train.state().rng, 0, 0});
      float val_loss = estimate_split(model, eval_val, cfg.eval_iters, B, T, ex, ey, comm);
      eval_rng = eval_val.state().rng;
      if (root) {
        std::printf("step %ld: train loss %.4f, val loss %.4f\n", iter_num, train_loss, val_loss);
        std::fflush(stdout);
      }
      log_json({{"iter", iter_num}, {"train_loss", train_loss}, {"val_loss", val_loss}});
      result.val_losses.push_back(val_loss);
      if (!std::isfinite(train_loss)) diverged(iter_num, "the train loss", train_loss);
      if (!std::isfinite(val_loss)) diverged(iter_num, "the val loss", val_loss);
      if (val_loss < best_val_loss || cfg.always_save_checkpoint) {
        best_val_loss = val_loss; // as nanoGPT: updated whenever it saves
        if (iter_num > 0) save(iter_num, held, eval_rng_before);
      }
      t0 = clock::now();
    }
    if (iter_num == 0 && cfg.eval_only) break;
    float loss = 0.0f;
    double loss_sum = 0.0;
    for (long micro = 0; micro < accum; ++micro) {
      // Keyed by the global micro-batch index, as the sequential loader numbers batches.
      const uint64_t global =
          uint64_t(iter_num * cfg.gradient_accumulation_steps + micro * world + rank);
      const uint64_t key = cfg.dropout > 0 ? mix64(uint64_t(cfg.seed) ^ mix64(global + 1)) : 0;
      loss = model.forward_backward(x.data(), y.data(), B, T,
                                    1.0f / float(cfg.gradient_accumulation_steps), key,
                                    micro == accum - 1);
      if (!std::isfinite(loss)) diverged(iter_num, "the loss", loss);
      loss_sum += loss;
      held = loader.state();
      loader.next(x.data(), y.data());
    }
    const float norm = opt.step(lr, float(cfg.grad_clip));
    if (!std::isfinite(norm)) diverged(iter_num, "the gradient norm", norm);
    comm.allreduce_sum(&loss_sum, 1);
    const double loss_mean = loss_sum / double(cfg.gradient_accumulation_steps);
    auto t1 = clock::now();
    const double dt = std::chrono::duration<double>(t1 - t0).count();
    t0 = t1;
    result.losses.push_back(loss);
    result.iters.push_back(iter_num);
    recent.emplace_back(iter_num, loss);
    if (recent.size() > 6) recent.pop_front();
    if (iter_num % cfg.log_interval == 0 && root) {
      const double tok_s = double(cfg.gradient_accumulation_steps) * B * T / dt;
      // MFU as nanoGPT's estimate_mfu (model flops only, recompute not counted) over every
      // rank's peak; on a GPU the catalog knows (none on the CPU).
      const double mfu = peak > 0 ? flops_per_token(s.model, T, 0) * tok_s / (peak * world) : 0;
      char mfu_text[32] = "";
      if (peak > 0) std::snprintf(mfu_text, sizeof mfu_text, ", mfu %.2f%%", 100.0 * mfu);
      std::printf("iter %ld: loss %.4f, time %.2fms, tok/s %.0f, lr %.3e, norm %.4f%s\n", iter_num,
                  loss, dt * 1e3, tok_s, lr, norm, mfu_text);
      std::fflush(stdout);
      log_json({{"iter", iter_num},
                {"loss", loss},
                {"loss_mean", loss_mean},
                {"ms", dt * 1e3},
                {"tok_per_s", tok_s},
                {"mfu", mfu},
                {"lr", lr},
                {"grad_norm", norm},
                {"comm_ms", opt.comm_seconds() * 1e3}});
    }
    ++iter_num;
    if (iter_num > cfg.max_iters) break;
    // Stop cleanly when any rank was asked to (every rank takes part in the decision).
    double stop = interrupt_signal();
    if (world > 1) comm.allreduce_sum(&stop, 1);
    if (stop != 0) {
      const int sig = interrupt_signal() != 0 ? interrupt_signal() : SIGTERM;
      save(iter_num, held, eval_rng);
      if (root) {
        std::printf("stopped by %s after iter %ld: %s holds the run; continue it with the same "
                    "config and flags plus --init_from=resume\n",
                    sig == SIGINT ? "SIGINT" : "SIGTERM", iter_num - 1, ckpt_path.c_str());
        std::fflush(stdout);
      }
      // No rank exits (which may make the launcher stop the others) before rank 0 has saved.
      comm.barrier();
      result.stopped_by_signal = sig;
      break;
    }
  }
  if (root) {
    // The peak split into what the plan covers and what it does not: the process as it was
    // before the model was built, and the rest (thread stacks and BLAS buffers, data pages
    // read, host copies for checkpoints and evaluation).
    const double peak_rss = peak_resident_bytes();
    const double planned =
        s.backend == Backend::CPU ? double(run_plan(cfg, s, B).total_bytes()) : 0;
    const double rest = peak_rss - planned - resident_before_model;
    std::printf("memory: peak resident %s = %s planned (%s) + %s before the model was built "
                "(program, libraries) + %s%s other (threads, BLAS buffers, data pages, "
                "checkpoint copies)\n",
                format_bytes(peak_rss).c_str(), format_bytes(planned).c_str(),
                s.backend == Backend::CPU ? "parameters, gradients, AdamW moments, activations"
                                          : "on the GPU, below",
                format_bytes(resident_before_model).c_str(), rest < 0 ? "-" : "",
                format_bytes(std::fabs(rest)).c_str());
    const std::string dev = model.memory_report();
    if (!dev.empty()) std::printf("%s\n", dev.c_str());
  }
  return result;
}

} // namespace finegpt
