// Model loading for inference (see model_load.h).
#include "io/model_load.h"

#include "core/error.h"
#include "core/file.h"
#include "io/checkpoint.h"
#include "io/hf_model.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>

namespace finegpt {

std::string hf_model_folder(const std::string &path) {
  std::error_code ec;
  if (is_gpt2_name(path) && !std::filesystem::exists(path, ec)) return find_hub_model(path);
  return is_hf_model_dir(path) && !file_exists(path + "/ckpt.bin") ? path : "";
}

LoadedModel load_model(const std::string &path) {
  LoadedModel out;
  if (const std::string hf = hf_model_folder(path); !hf.empty()) {
    out.config = read_hf_config(hf);
    out.params.resize(num_parameters(out.config));
    load_hf_model(hf, out.config, out.params.data());
    out.source = hf + "/model.safetensors";
    out.hf_dir = hf;
    return out;
  }
  std::string file = path;
  if (std::filesystem::is_directory(path)) file = path + "/ckpt.bin";
  if (!file_exists(file))
    fail(file, ": no checkpoint here (train first, or give a model file or a Hugging Face model "
               "folder)");
  uint32_t magic = 0;
  {
    FILE *f = std::fopen(file.c_str(), "rb");
    if (!f) fail(file, ": cannot open");
    size_t got = std::fread(&magic, 4, 1, f);
    std::fclose(f);
    if (got != 1) fail(file, ": empty or truncated model file");
  }
  out.source = file;
  if (magic == kCheckpointMagic) {
    CheckpointState st = read_checkpoint_state(file);
    out.config = st.model;
    out.params.resize(num_parameters(st.model));
    load_checkpoint(file, out.params.data(), nullptr, nullptr);
    out.data_dir = st.data_dir;
  } else if (int32_t(magic) == kLlmcModelMagic) {
    out.config = read_llmc_header(file);
    out.params.resize(num_parameters(out.config));
    load_llmc_model(file, out.params.data());
  } else {
    fail(file, ": not a finegpt checkpoint or an llm.c model file (unknown magic number)");
  }
  return out;
}

std::string model_tokenizer_spec(const LoadedModel &lm) {
  if (!lm.hf_dir.empty() && file_exists(lm.hf_dir + "/vocab.json")) return "hf:" + lm.hf_dir;
  const std::string meta = lm.data_dir + "/meta.json";
  const bool char_meta =
      !lm.data_dir.empty() && file_exists(meta) &&
      nlohmann::json::parse(read_file(meta), nullptr, false).value("tokenizer", "") == "char";
  return char_meta ? "char:" + meta : "gpt2";
}

} // namespace finegpt
