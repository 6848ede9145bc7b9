// Loads a trained model for sample / eval / export: from a finegpt checkpoint (a file, or an
// out_dir holding ckpt.bin) or an llm.c model file, whichever the path is.
#pragma once
#include "model/model.h"

#include <memory>
#include <string>

namespace finegpt {

struct LoadedModel {
  std::unique_ptr<GPT> model;
  std::string data_dir; // from a finegpt checkpoint; "" for llm.c files
  std::string source;
};

// `path`: an out_dir (reads path/ckpt.bin), a finegpt checkpoint file, or an llm.c model file.
// Activations are planned for micro-batches up to (B, T); T = 0 means block_size.
LoadedModel load_model(const std::string &path, int B, int T);

} // namespace finegpt
