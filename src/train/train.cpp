// train(): nanoGPT's train.py, data-parallel over a Communicator: each rank runs
// gradient_accumulation_steps / world micro-steps on its own batches, gradients are summed over
// ranks by the engine's exchange (all-reduce, or ZeRO-1's reduce-to-owner), only rank 0 prints,
// logs and writes checkpoints, and every rank resumes from the same checkpoint. The model and
// optimizer are an Engine (train/engine.h): the CPU's, or on device='cuda' the GPU's.
#include "backend/cuda_ops.h"
#include "core/error.h"
#include "core/file.h"
#include "core/interrupt.h"
#include "core/rng.h"
#include "core/threads.h"
#include "data/tokens.h"
#include "dist/nccl.h"
#include "io/checkpoint.h"
#include "io/model_load.h"
#include "model/model.h"
#include "optim/optim.h"
#include "plan/planner.h"
#include "train/engine.h"
#include "train/metrics.h"
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>

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

// Parameters from an llm.c model file or a Hugging Face folder (io/model_load.h), its position
// embeddings cropped to block_size rows.
void load_pretrained_into(Engine &model, const GPTConfig &cfg, const std::string &path) {
  LoadedModel lm = load_model(path);
  const GPTConfig &file = lm.config;
  const std::vector<float> &full = lm.params;
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

// The run's shape against the model and the ranks, the same config on every rank; the
// accumulation steps per rank (nanoGPT's DDP divides them).
long checked_accumulation(const TrainConfig &cfg, const RunSetup &s, Communicator &comm) {
  FINEGPT_CHECK(cfg.block_size <= s.model.block_size, "block_size ", cfg.block_size,
                " exceeds the model's ", s.model.block_size);
  FINEGPT_CHECK(cfg.gradient_accumulation_steps % comm.world() == 0,
                "gradient_accumulation_steps (", cfg.gradient_accumulation_steps,
                ") must be divisible by the number of ranks (", comm.world(), ")");
  check_same_config(cfg, comm);
  return cfg.gradient_accumulation_steps / comm.world();
}

// One training run on this rank: set-up (data, engine, starting weights), then nanoGPT's loop of
// evaluation, checkpoint and optimizer steps.
class Run {
public:
  Run(const TrainConfig &cfg, const RunSetup &s, Communicator &comm);
  TrainResult loop(bool *started);

private:
  void start_weights();
  // nanoGPT's estimate_loss on both splits at iteration `iter`; a checkpoint when val improves
  // (or always). Errors if a loss is not finite.
  void evaluate(const LoaderState &held, TrainResult &result);
  // Gradient accumulation over this rank's micro-batches, then the optimizer step; the logged
  // loss (the last micro-batch's), the mean over all ranks' micro-batches and the norm.
  struct Step {
    float loss, norm;
    double loss_mean;
  };
  Step step(float lr, LoaderState &held);
  // A checkpoint of the state before iteration `iter` runs (see the body).
  void save(long iter, const LoaderState &state, uint64_t eval_rng_at);
  [[noreturn]] void diverged(long iter, const std::string &what, double value) const;
  // The one place metrics are recorded (rank 0): metrics.jsonl and the TensorBoard event file.
  void record(long iter, long long tokens, const MetricFields &fields);
  // run.json: the configuration and memory plan, for finegpt report (rank 0).
  void write_run_info() const;
  // Bytes in use now: the process's resident set (CPU), the device's memory in use (CUDA).
  double memory_in_use() const;
  void report_memory() const;

  const TrainConfig &cfg_;
  const RunSetup &s_;
  Communicator &comm_;
  const int rank_, world_;
  const bool root_;
  const int B_, T_;
  const long accum_; // micro-steps per rank, as nanoGPT's DDP
  const long long tokens_per_step_;
  TokenDataset train_data_, val_data_;
  const DataOrder order_;
  BatchLoader loader_, eval_train_, eval_val_;
  const double resident_before_model_; // the part of the peak the plan does not cover
  std::unique_ptr<Engine> engine_;
  const std::string ckpt_path_;
  std::unique_ptr<MetricsLog> metrics_; // rank 0's
  long iter_num_ = 0;
  double best_val_loss_ = 1e9;
  uint64_t eval_rng_;
  long last_saved_iter_ = -1;                 // the iteration of the checkpoint on disk
  std::deque<std::pair<long, float>> recent_; // the last few step losses
  std::vector<int32_t> x_, y_, ex_, ey_;
};

Run::Run(const TrainConfig &cfg, const RunSetup &s, Communicator &comm)
    : cfg_(cfg), s_(s), comm_(comm), rank_(comm.rank()), world_(comm.world()), root_(rank_ == 0),
      B_(int(cfg.batch_size)), T_(int(cfg.block_size)), accum_(checked_accumulation(cfg, s, comm)),
      tokens_per_step_(cfg.gradient_accumulation_steps * cfg.batch_size * cfg.block_size),
      // Data first: a bad file fails before any work.
      train_data_(find_split_files(s.data_dir, "train")),
      val_data_(find_split_files(s.data_dir, "val")), order_(parse_data_order(cfg.data_order)),
      loader_(train_data_, B_, T_, order_, uint64_t(cfg.seed), rank_, world_),
      eval_train_(train_data_, B_, T_, order_, uint64_t(cfg.seed) + 1),
      eval_val_(val_data_, B_, T_, order_, uint64_t(cfg.seed) + 2),
      resident_before_model_(resident_bytes()), ckpt_path_(cfg.out_dir + "/ckpt.bin"),
      eval_rng_(Rng(uint64_t(cfg.seed) + 3).state) {
  for (const TokenDataset *d : {&train_data_, &val_data_})
    FINEGPT_CHECK(d->max_token() < s.model.vocab_size, d->file_path(0), ": token id ",
                  d->max_token(), " is outside the model's vocabulary (", s.model.vocab_size, ")");
  if (root_) make_dirs(cfg.out_dir);
  // The engine, chosen here and nowhere else in a run.
  EngineOptions eo;
  eo.backend = s.backend;
  eo.model.recompute = int(cfg.recompute);
  eo.model.cudnn_attention = s.backend == Backend::CUDA && cfg.attention == "cudnn";
  eo.adam = OptimConfig{float(cfg.beta1), float(cfg.beta2), 1e-8f, float(cfg.weight_decay)};
  eo.adam.offload = s.backend == Backend::CUDA && cfg.offload == "optimizer";
  eo.adam.muon = cfg.optimizer == "muon";
  eo.adam.muon_lr_scale = float(cfg.muon_lr / cfg.learning_rate);
  eo.adam.muon_momentum = float(cfg.muon_momentum);
  if (cfg.embedding_lr > 0)
    eo.adam.embedding_lr_scale = float(cfg.embedding_lr / cfg.learning_rate);
  if (cfg.head_lr > 0) eo.adam.head_lr_scale = float(cfg.head_lr / cfg.learning_rate);
  eo.zero_stage = int(cfg.zero_stage), eo.threads = set_threads(int(cfg.threads));
  eo.timeout_s = cfg.dist_timeout;
  engine_ = make_engine(s.model, B_, T_, comm, eo);
  start_weights();
  if (root_) {
    metrics_ = std::make_unique<MetricsLog>(cfg.out_dir, s.resume ? iter_num_ : -1);
    write_run_info();
    std::printf("training on %s%s\n", engine_->describe().c_str(),
                world_ > 1 ? cat(" per rank, ", world_, " ranks (", comm.name(), ")",
                                 cfg.zero_stage ? ", ZeRO-1" : "")
                                 .c_str()
                           : "");
    std::printf("logging to %s/metrics.jsonl and %s (TensorBoard); finegpt report %s draws them\n",
                cfg.out_dir.c_str(), metrics_->event_path().c_str(), cfg.out_dir.c_str());
  }
  x_.resize(size_t(B_) * T_), y_.resize(x_.size()), ex_.resize(x_.size()), ey_.resize(x_.size());
}

// A checkpoint (resume), an llm.c model file, or nanoGPT's initialisation.
void Run::start_weights() {
  Engine &e = *engine_;
  if (!s_.resume) {
    if (!s_.init_path.empty())
      load_pretrained_into(e, s_.model, s_.init_path);
    else
      e.init_weights(uint64_t(cfg_.seed));
    return;
  }
  CheckpointState st = read_checkpoint_state(s_.init_path);
  if (int(st.loaders.size()) != world_ && order_ == DataOrder::Random)
    fail(s_.init_path, ": written by ", st.loaders.size(),
         " rank(s); resuming random batches "
         "exactly needs as many ranks (or data_order = 'sequential')");
  std::vector<float> p(e.num_params()), m(p.size()), v(p.size());
  load_checkpoint(s_.init_path, p.data(), m.data(), v.data());
  e.set_params(p.data());
  e.load_moments(m.data(), v.data());
  e.set_steps_taken(st.adam_steps);
  iter_num_ = st.iter_num;
  last_saved_iter_ = st.iter_num;
  best_val_loss_ = st.best_val_loss;
  const auto &l = st.loaders[size_t(rank_) < st.loaders.size() ? rank_ : 0];
  loader_.restore({l[0], l[1], l[2]});
  eval_rng_ = st.eval_rng;
  if (root_) std::printf("resuming from %s at iter %ld\n", s_.init_path.c_str(), iter_num_);
}

void Run::record(long iter, long long tokens, const MetricFields &fields) {
  if (root_) metrics_->record(iter, tokens, fields);
}

void Run::write_run_info() const {
  RunInfo info;
  info.config = config_items(cfg_);
  info.engine = engine_->describe();
  info.ranks = world_;
  info.parameters = (long long)num_parameters_unpadded(s_.model);
  info.tokens_per_step = tokens_per_step_;
  info.max_iters = cfg_.max_iters;
  for (const Buffer &b : engine_->plan().buffers) {
    std::string shape;
    for (int64_t d : b.shape)
      shape += cat(shape.empty() ? "" : "x", d);
    info.plan.push_back({b.where == Location::Host ? cat(mem_group_name(b.group), " (pinned host)")
                                                   : std::string(mem_group_name(b.group)),
                         b.name, shape, double(b.bytes)});
  }
  char started[32];
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  std::strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &utc));
  info.started = started;
  finegpt::write_run_info(cfg_.out_dir + "/run.json", info);
}

double Run::memory_in_use() const {
  if (s_.backend == Backend::CPU) return resident_bytes();
  cuda::DeviceInfo d;
  return cuda::device_info(local_device_index(), &d) ? double(d.total_bytes - d.free_bytes) : 0.0;
}

// `state` is this rank's loader before the batch now in x, y, `eval_rng_at` the evaluation RNG
// before that iteration's evaluation. Collectives first (every rank), then rank 0 writes
// ckpt.bin, keeping the one before as ckpt.prev.bin. save_checkpoint refuses non-finite values
// and verifies the file before it replaces the old one, so a failed save leaves the last good
// checkpoint as it was.
void Run::save(long iter, const LoaderState &state, uint64_t eval_rng_at) {
  std::array<uint64_t, 3> mine = {state.rng, state.shard, state.position};
  std::vector<uint8_t> all = comm_.all_gather_bytes(&mine, sizeof mine);
  std::vector<float> m, v;
  engine_->gather_moments(m, v);
  if (root_) {
    CheckpointState st;
    st.model = s_.model;
    st.iter_num = iter;
    st.best_val_loss = best_val_loss_;
    st.adam_steps = engine_->steps_taken();
    st.loaders.resize(world_);
    std::memcpy(st.loaders.data(), all.data(), all.size());
    st.eval_rng = eval_rng_at;
    st.config_py = to_python(cfg_);
    st.data_dir = s_.data_dir;
    st.optimizer = cfg_.optimizer;
    std::printf("saving checkpoint to %s\n", cfg_.out_dir.c_str());
    std::fflush(stdout);
    save_checkpoint(ckpt_path_, st, engine_->params_for_save(), m.data(), v.data(),
                    cfg_.out_dir + "/ckpt.prev.bin");
  }
  last_saved_iter_ = iter;
}

// A divergence stops the run before anything of it is saved, saying where, what led there and
// what to change.
void Run::diverged(long iter, const std::string &what, double value) const {
  std::string history;
  for (const auto &[i, l] : recent_)
    history += cat(history.empty() ? "" : ", ", i, ": ", l);
  fail("training diverged at iter ", iter, ": ", what, " is ", value,
       history.empty() ? "" : cat(" (losses of the iters before: ", history, ")"), "; ",
       last_saved_iter_ >= 0 ? cat(ckpt_path_, " (iter ", last_saved_iter_, ") is untouched")
                             : std::string("no checkpoint was written"),
       "; try a lower learning_rate (now ", cfg_.learning_rate, ")",
       cfg_.grad_clip > 0 ? "" : " or grad_clip = 1.0 (now 0: off)");
}

void Run::evaluate(const LoaderState &held, TrainResult &result) {
  const uint64_t eval_rng_before = eval_rng_;
  if (order_ == DataOrder::Random) {
    eval_train_.restore({eval_rng_, 0, 0});
  } else {
    eval_train_.reset();
    eval_val_.reset();
  }
  const float train_loss =
      estimate_split(*engine_, eval_train_, cfg_.eval_iters, B_, T_, ex_, ey_, comm_);
  if (order_ == DataOrder::Random) eval_val_.restore({eval_train_.state().rng, 0, 0});
  const float val_loss =
      estimate_split(*engine_, eval_val_, cfg_.eval_iters, B_, T_, ex_, ey_, comm_);
  eval_rng_ = eval_val_.state().rng;
  record(iter_num_, iter_num_ * tokens_per_step_,
         {{"train_loss", train_loss}, {"val_loss", val_loss}});
  if (root_) {
    std::printf("step %ld: train loss %.4f, val loss %.4f\n", iter_num_, train_loss, val_loss);
    std::fflush(stdout);
  }
  result.val_losses.push_back(val_loss);
  if (!std::isfinite(train_loss)) diverged(iter_num_, "the train loss", train_loss);
  if (!std::isfinite(val_loss)) diverged(iter_num_, "the val loss", val_loss);
  if (val_loss < best_val_loss_ || cfg_.always_save_checkpoint) {
    best_val_loss_ = val_loss; // as nanoGPT: updated whenever it saves
    if (iter_num_ > 0) save(iter_num_, held, eval_rng_before);
  }
}

Run::Step Run::step(float lr, LoaderState &held) {
  Step r{0.0f, 0.0f, 0.0};
  double loss_sum = 0.0;
  for (long micro = 0; micro < accum_; ++micro) {
    // Keyed by the global micro-batch index, as the sequential loader numbers batches.
    const uint64_t global =
        uint64_t(iter_num_ * cfg_.gradient_accumulation_steps + micro * world_ + rank_);
    const uint64_t key = cfg_.dropout > 0 ? mix64(uint64_t(cfg_.seed) ^ mix64(global + 1)) : 0;
    r.loss = engine_->forward_backward(x_.data(), y_.data(), B_, T_,
                                       1.0f / float(cfg_.gradient_accumulation_steps), key,
                                       micro == accum_ - 1);
    if (!std::isfinite(r.loss)) diverged(iter_num_, "the loss", r.loss);
    loss_sum += r.loss;
    held = loader_.state();
    loader_.next(x_.data(), y_.data());
  }
  r.norm = engine_->step(lr, float(cfg_.grad_clip));
  if (!std::isfinite(r.norm)) diverged(iter_num_, "the gradient norm", r.norm);
  comm_.allreduce_sum(&loss_sum, 1);
  r.loss_mean = loss_sum / double(cfg_.gradient_accumulation_steps);
  return r;
}

TrainResult Run::loop(bool *started) {
  using clock = std::chrono::steady_clock;
  const LrSchedule sched{cfg_.learning_rate, cfg_.min_lr, cfg_.warmup_iters, cfg_.lr_decay_iters,
                         cfg_.decay_lr};
  const double peak = engine_->peak_flops();
  InterruptGuard interrupts; // SIGINT / SIGTERM: finish the step, save, stop
  TrainResult result;
  // `held` is the loader state before the batch now in x, y: what a checkpoint must restore.
  LoaderState held = loader_.state();
  loader_.next(x_.data(), y_.data());
  auto t0 = clock::now();
  // The ETA: this process's wall time per step so far (evaluations and checkpoints included).
  const auto loop_start = t0;
  const long first_iter = iter_num_;
  if (started) *started = true;
  while (true) {
    const float lr = float(sched.at(iter_num_));
    if (iter_num_ % cfg_.eval_interval == 0) {
      evaluate(held, result);
      t0 = clock::now();
    }
    if (iter_num_ == 0 && cfg_.eval_only) break;
    const Step st = step(lr, held);
    auto t1 = clock::now();
    const double dt = std::chrono::duration<double>(t1 - t0).count();
    t0 = t1;
    result.losses.push_back(st.loss);
    result.iters.push_back(iter_num_);
    recent_.emplace_back(iter_num_, st.loss);
    if (recent_.size() > 6) recent_.pop_front();
    if (iter_num_ % cfg_.log_interval == 0 && root_) {
      const double tok_s = double(cfg_.gradient_accumulation_steps) * B_ * T_ / dt;
      // MFU as nanoGPT's estimate_mfu (model flops only, recompute not counted) over every
      // rank's peak; on a GPU the catalog knows (none on the CPU).
      const double mfu = peak > 0 ? flops_per_token(s_.model, T_, 0) * tok_s / (peak * world_) : 0;
      char mfu_text[32] = "";
      if (peak > 0) std::snprintf(mfu_text, sizeof mfu_text, ", mfu %.2f%%", 100.0 * mfu);
      const long done = iter_num_ + 1, total = cfg_.max_iters + 1; // iterations 0..max_iters
      const double elapsed = std::chrono::duration<double>(t1 - loop_start).count();
      const double eta = elapsed / double(iter_num_ - first_iter + 1) * double(total - done);
      // Recorded before it is printed: a line on the console is in the files.
      record(iter_num_, (iter_num_ + 1) * tokens_per_step_,
             {{"loss", st.loss},
              {"loss_mean", st.loss_mean},
              {"ms", dt * 1e3},
              {"tok_per_s", tok_s},
              {"mfu", mfu},
              {"lr", lr},
              {"grad_norm", st.norm},
              {"comm_ms", engine_->comm_seconds() * 1e3},
              {"memory_mib", memory_in_use() / (1024.0 * 1024.0)}});
      std::printf("iter %ld: loss %.4f, time %.2fms, tok/s %.0f, lr %.3e, norm %.4f%s, %ld/%ld "
                  "(%.0f%%), eta %s\n",
                  iter_num_, st.loss, dt * 1e3, tok_s, lr, st.norm, mfu_text, done, total,
                  100.0 * double(done) / double(total), format_duration(eta).c_str());
      std::fflush(stdout);
    }
    ++iter_num_;
    if (iter_num_ > cfg_.max_iters) break;
    // Stop cleanly when any rank was asked to (every rank takes part in the decision).
    double stop = interrupt_signal();
    if (world_ > 1) comm_.allreduce_sum(&stop, 1);
    if (stop != 0) {
      const int sig = interrupt_signal() != 0 ? interrupt_signal() : SIGTERM;
      save(iter_num_, held, eval_rng_);
      if (root_) {
        std::printf("stopped by %s after iter %ld: %s holds the run; continue it with the same "
                    "config and flags plus --init_from=resume\n",
                    sig == SIGINT ? "SIGINT" : "SIGTERM", iter_num_ - 1, ckpt_path_.c_str());
        std::fflush(stdout);
      }
      // No rank exits (which may make the launcher stop the others) before rank 0 has saved.
      comm_.barrier();
      result.stopped_by_signal = sig;
      break;
    }
  }
  if (root_) report_memory();
  return result;
}

// The peak split into what the plan covers and what it does not: the process as it was before
// the model was built, and the rest (thread stacks and BLAS buffers, data pages read, host copies
// for checkpoints and evaluation).
void Run::report_memory() const {
  const double peak_rss = peak_resident_bytes();
  const bool cpu = s_.backend == Backend::CPU;
  const double planned = cpu ? double(engine_->plan().total_bytes()) : 0;
  const double rest = peak_rss - planned - resident_before_model_;
  std::printf("memory: peak resident %s = %s planned (%s) + %s before the model was built "
              "(program, libraries) + %s%s other (threads, BLAS buffers, data pages, "
              "checkpoint copies)\n",
              format_bytes(peak_rss).c_str(), format_bytes(planned).c_str(),
              cpu ? "parameters, gradients, AdamW moments, activations" : "on the GPU, below",
              format_bytes(resident_before_model_).c_str(), rest < 0 ? "-" : "",
              format_bytes(std::fabs(rest)).c_str());
  const std::string dev = engine_->memory_report();
  if (!dev.empty()) std::printf("%s\n", dev.c_str());
}

} // namespace

TrainResult train(const TrainConfig &cfg, const RunSetup &s, Communicator &comm, bool *started) {
  Run run(cfg, s, comm);
  return run.loop(started);
}

} // namespace finegpt
