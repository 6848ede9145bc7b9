// Checkpoint files. Native (out_dir/ckpt.bin): everything resume needs to continue bit for bit
// (parameters, AdamW moments, step, loader and RNG state, the config). llm.c model files
// (gpt2_124M.bin: fp32 version 3, bf16 version 5): parameters only, to move models between the
// two trainers. Every write is atomic; every read validates and names the file on error.
// Native layout (version 2): magic, version, JSON length (u64), the JSON header, zero padding to
// 64 bytes, parameters, m, v (fp32), then a 16-byte trailer: "FGCK", and the CRC-32 of the
// header bytes, of the parameters and of the moments (zlib's crc32). Version 1 files (no
// trailer) are still read, unchecked.
#pragma once
#include "model/plan.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace finegpt {

constexpr uint32_t kCheckpointMagic = 0x50434746; // "FGCP" little-endian
constexpr uint32_t kCheckpointVersion = 2;
constexpr uint32_t kCheckpointTrailerMagic = 0x4b434746; // "FGCK" little-endian

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
  // What m and v hold: 'adamw' (AdamW's moments), or 'muon' (the hidden matrices' m is Muon's
  // momentum, their v unused). Files without the key are AdamW's.
  std::string optimizer = "adamw";
};

// params (P floats), and when non-null, AdamW m and v (P floats each). Refuses (Error, nothing
// written) non-finite values or a non-finite best_val_loss; the file is read back and its
// checksums verified before it replaces `path`. With `previous`, an existing `path` is kept
// under that name (the one before is dropped).
void save_checkpoint(const std::string &path, const CheckpointState &st, const float *params,
                     const float *m, const float *v, const std::string &previous = "");
// Reads a whole checkpoint and checks its checksums; Error naming the file and the part that
// does not match.
void verify_checkpoint(const std::string &path);

// Reads the header (state) only; Error naming the file when it is not a finegpt checkpoint,
// has another version, or its size disagrees with its contents.
CheckpointState read_checkpoint_state(const std::string &path, bool *has_optimizer = nullptr);
// Reads parameters (and moments when m, v are non-null: Error if the file has none), checking
// the checksum of what it reads.
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
