// Hugging Face GPT-2 models (transformers' GPT2LMHeadModel): a folder with config.json and
// model.safetensors, read and written in finegpt's parameter layout (model/plan.h). GPT-2's
// linear layers are Conv1D, so c_attn, c_proj, c_fc weights are stored [in, out] and transposed
// here; lm_head is tied to wte (a stored lm_head.weight must equal it); HF keeps vocab_size rows
// of wte, finegpt pads to a multiple of 64 with zero rows. The causal-mask buffers some files
// carry (h.N.attn.bias, h.N.attn.masked_bias) are ignored, as nanoGPT's from_pretrained does.
// Not the safetensors format itself (safetensors.h) nor the tokenizer files (tokenizer/).
#pragma once
#include "model/plan.h"

#include <string>

namespace finegpt {

struct HfTokenizerFiles;

// 'gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl': the names nanoGPT's init_from takes.
bool is_gpt2_name(const std::string &name);
// The snapshot folder of a GPT-2 name in the hub cache: $HF_HUB_CACHE, else $HF_HOME/hub (HF_HOME
// defaults to $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface), repo
// models--openai-community--<name> (or the older models--<name>), the snapshot refs/main names.
// Error saying where it looked and how to get a copy.
std::string find_hub_model(const std::string &name);
// A folder holding config.json (a Hugging Face model folder, to be checked by the readers).
bool is_hf_model_dir(const std::string &path);

// The model's shape from dir/config.json (bias on, dropout 0, padded vocabulary), checked
// against dir/model.safetensors: every tensor present with its shape, nothing unknown. Error
// naming the file and the key or tensor.
GPTConfig read_hf_config(const std::string &dir);
// Parameters into `params` (num_parameters(cfg) floats, cfg = read_hf_config(dir)).
void load_hf_model(const std::string &dir, const GPTConfig &cfg, float *params);

// Writes dir/config.json and dir/model.safetensors ("F32" or "BF16"), and the tokenizer's
// vocab.json and merges.txt when `tok` is not null. A bias-free model is written with zero
// biases (transformers' GPT-2 always has them), which is the same function. Each file is
// written atomically; `dir` is made if missing.
void save_hf_model(const std::string &dir, const GPTConfig &cfg, const float *params,
                   const std::string &dtype, const HfTokenizerFiles *tok);
// The files save_hf_model writes.
constexpr const char *kHfModelFiles[] = {"config.json", "model.safetensors", "vocab.json",
                                         "merges.txt"};

} // namespace finegpt
