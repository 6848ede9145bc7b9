// Checkpoint files. Native (out_dir/ckpt.bin): everything resume needs to continue bit for bit
// (parameters, AdamW moments, step, loader and RNG state, the config). llm.c model files
// (gpt2_124M.bin: fp32 version 3, bf16 version 5): parameters only, to move models between the
// two trainers. Every write is atomic; every read validates and names the file on error.
#pragma once
#include "model/plan.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace finegpt {

constexpr uint32_t kCheckpointMagic = 0x50434746; // "FGCP" little-endian
constexpr uint32_t kCheckpointVersion = 1;

struct CheckpointState {
  GPTConfig model;
  long iter_num = 0;
  double best_val_loss = 1e9;
  int adam_steps = 0;
  // Each rank's training-data loader (rng, shard, position), in rank order.
  std::vector<std::array<uint64_t, 3>> loaders;
  uint64_t eval_rng = 0;
  std::string config_py; // the resolved TrainConfig, nanoGPT syntax (for people and resume)
  std::string data_dir;  // where the training data (and its meta.json) was found
};

// params (P floats), and when non-null, AdamW m and v (P floats each).
void save_checkpoint(const std::string &path, const CheckpointState &st, const float *params,
                     const float *m, const float *v);

// Reads the header (state) only; Error naming the file when it is not a finegpt checkpoint,
// has another version, or its size disagrees with its contents.
CheckpointState read_checkpoint_state(const std::string &path, bool *has_optimizer = nullptr);
// Reads parameters (and moments when m, v are non-null: Error if the file has none).
void load_checkpoint(const std::string &path, float *params, float *m, float *v);

constexpr int32_t kLlmcModelMagic = 20240326;

// An llm.c model file's shape: maxT, V, L, NH, C, Vp; always bias = true.
GPTConfig read_llmc_header(const std::string &path, int *version = nullptr);
// Parameters into `params` (num_parameters(cfg) floats, bias on); bf16 files are widened.
void load_llmc_model(const std::string &path, float *params);
// Writes `params` of a model with config cfg as llm.c version 3 (fp32) or 5 (bf16, rounded to
// nearest even). A bias-free model is written with zero biases, which is the same function.
void save_llmc_model(const std::string &path, const GPTConfig &cfg, const float *params,
                     int version = 3);

} // namespace finegpt
