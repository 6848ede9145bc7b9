// Loads a trained model's weights for sample / eval / export: from a finegpt checkpoint (a file,
// or an out_dir holding ckpt.bin) or an llm.c model file, whichever the path is. The commands put
// them into an engine (train/engine.h) of the device they run on.
#pragma once
#include "model/plan.h"

#include <string>
#include <vector>

namespace finegpt {

struct LoadedModel {
  GPTConfig config;
  std::vector<float> params; // fp32, num_parameters(config), param_tensors order
  std::string data_dir;      // from a finegpt checkpoint; "" for llm.c files
  std::string source;
};

// `path`: an out_dir (reads path/ckpt.bin), a finegpt checkpoint file, or an llm.c model file.
LoadedModel load_model(const std::string &path);

} // namespace finegpt
