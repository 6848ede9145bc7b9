// Loads a trained model's weights for sample / eval / export: from a finegpt checkpoint (a file,
// or an out_dir holding ckpt.bin), an llm.c model file, or a Hugging Face GPT-2 folder (a path,
// or 'gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl' from the hub cache: io/hf_model.h),
// whichever the path is. The commands put
// them into an engine (train/engine.h) of the device they run on.
#pragma once
#include "model/plan.h"

#include <string>
#include <vector>

namespace finegpt {

struct LoadedModel {
  GPTConfig config;
  std::vector<float> params; // fp32, num_parameters(config), param_tensors order
  std::string data_dir;      // from a finegpt checkpoint; "" for llm.c files and HF folders
  std::string hf_dir;        // a Hugging Face folder's path; "" for other files
  std::string source;        // the file read
};

// `path`: an out_dir (reads path/ckpt.bin), a finegpt checkpoint file, an llm.c model file, a
// Hugging Face model folder (config.json, model.safetensors) or a GPT-2 name.
LoadedModel load_model(const std::string &path);

// The Hugging Face model folder `path` names: a GPT-2 name (from the hub cache, unless a file or
// folder of that name exists here; Error when the cache has no copy), or a folder holding
// config.json and no ckpt.bin. "" when it names none.
std::string hf_model_folder(const std::string &path);

// The tokenizer the model was trained with, as make_encoder takes it: a Hugging Face folder's
// own files ("hf:DIR") when it has them; the training data's char vocabulary when its meta.json
// says so (nanoGPT's choice); else "gpt2".
std::string model_tokenizer_spec(const LoadedModel &lm);

} // namespace finegpt
