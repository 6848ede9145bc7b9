// The training loop as nanoGPT's train.py runs it (iterations 0..max_iters inclusive, eval every
// eval_interval including 0, checkpoint when val improves or always, gradient accumulation,
// clipping, AdamW, get_lr), with llm.c's data formats and exact resume.
#pragma once
#include "config/train_config.h"
#include "dist/comm.h"
#include "model/plan.h"

#include <memory>
#include <string>
#include <vector>

namespace finegpt {

// What a run resolves before touching data: the model shape (from the config, a checkpoint or
// an llm.c file), where data lives and the vocabulary.
struct RunSetup {
  GPTConfig model;
  std::string data_dir;
  std::string init_path; // checkpoint or llm.c file to load ("" for scratch)
  bool resume = false;
  int world = 1; // ranks of the run (for the plan under ZeRO-1)
  // The engine: CUDA when device='cuda' and a CUDA device is present (train() then runs on the
  // GPU), or for a dry run of a device='cuda' config (to show the CUDA engine's plan); else CPU.
  Backend backend = Backend::CPU;
  std::vector<std::string> notes;
};

RunSetup resolve_run(const TrainConfig &cfg);

// The config's architecture options (rotary, norm, ...) into a model's GPTConfig.
void set_architecture(GPTConfig &m, const TrainConfig &cfg);

// The communicator of this run: MPI when launched on several ranks (make_communicator), one
// process for a dry run.
std::unique_ptr<Communicator> run_communicator(const TrainConfig &cfg, bool dry_run);

// The one place the engine is chosen: CUDA when device='cuda' and a CUDA device is present (or,
// for a dry run, to show the CUDA plan), else the CPU with a note saying why. Errors for what the
// CUDA engine cannot do (dtype='float32'; several ranks without NCCL in the build).
void choose_engine(const TrainConfig &cfg, RunSetup &setup, bool dry_run);

// Bytes of host memory a run may use: MemAvailable from /proc/meminfo, or FINEGPT_HOST_MEMORY
// (bytes, or with a unit: "8GB") when set, to plan for a smaller machine.
double host_memory_available();
// Bytes of this process now resident in host memory (VmRSS), and the most it has been (the
// peak, VmHWM); 0 where /proc does not say.
double resident_bytes();
// RLIMIT_MEMLOCK's soft limit in bytes, 0 when unlimited.
double pinned_memory_limit();
// Ranks of this run on this machine (OMPI_COMM_WORLD_LOCAL_SIZE, MPI_LOCALNRANKS; else 1).
int ranks_on_this_node();
// Offload: the plan's pinned host memory times the ranks on this node against
// host_memory_available() (an Error naming both when it does not fit) and RLIMIT_MEMLOCK (a
// note); adds a note on what it takes.
void check_host_memory(const MemoryPlan &plan, std::vector<std::string> &notes);
double peak_resident_bytes();

// Makes the run fit in host memory before anything is allocated: batch_size='auto' (0) becomes
// the largest power-of-two micro-batch that fits, with the accumulation that keeps the tokens
// per step (tokens_per_step, else 524288); a fixed batch_size that does not fit is an Error
// naming the memory needed and available and the micro-batch / accumulation that would fit.
// Adds a note saying how much memory the plan takes of what is available. A dry run reports
// a run that does not fit in a note instead of failing.
void fit_to_memory(TrainConfig &cfg, RunSetup &setup, bool dry_run);

// The memory plan of one rank of this run.
MemoryPlan run_plan(const TrainConfig &cfg, const RunSetup &setup, long batch_size);

// Prints the resolved config, parameter counts, tokens per step and in total, and the memory
// plan to stdout.
void print_run_summary(const TrainConfig &cfg, const RunSetup &setup);

// Per-step losses, returned for tests.
struct TrainResult {
  std::vector<float> losses; // logged loss of each optimizer step (iter order)
  std::vector<long> iters;   // the iteration of each entry in losses
  std::vector<float> val_losses;
  int stopped_by_signal = 0; // SIGINT or SIGTERM when the run stopped early on one, else 0
};

// Trains on this process's rank of `comm` (make_single_communicator() for one process).
// SIGINT / SIGTERM finish the current step, save a checkpoint to resume from and return with
// stopped_by_signal set. A non-finite loss or gradient norm is an Error saying where the run
// diverged; nothing of the diverged run is saved.
// `*started` becomes true when set-up is done and the first step begins: errors before that
// are the same on every rank, errors after it belong to one rank.
TrainResult train(const TrainConfig &cfg, const RunSetup &setup, Communicator &comm,
                  bool *started = nullptr);

} // namespace finegpt
