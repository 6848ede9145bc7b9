// The training loop as nanoGPT's train.py runs it (iterations 0..max_iters inclusive, eval every
// eval_interval including 0, checkpoint when val improves or always, gradient accumulation,
// clipping, AdamW, get_lr), with llm.c's data formats and exact resume.
#pragma once
#include "config/train_config.h"
#include "model/plan.h"

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
  std::vector<std::string> notes;
};

RunSetup resolve_run(const TrainConfig &cfg);

// Prints the resolved config, parameter counts, tokens per step and in total, and the memory
// plan to stdout.
void print_run_summary(const TrainConfig &cfg, const RunSetup &setup);

// Per-step losses, returned for tests.
struct TrainResult {
  std::vector<float> losses; // logged loss of each optimizer step (iter order)
  std::vector<long> iters;   // the iteration of each entry in losses
  std::vector<float> val_losses;
};

TrainResult train(const TrainConfig &cfg, const RunSetup &setup);

} // namespace finegpt
