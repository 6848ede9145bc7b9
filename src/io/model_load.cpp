// Model loading for inference (see model_load.h).
#include "io/model_load.h"

#include "core/error.h"
#include "core/file.h"
#include "io/checkpoint.h"

#include <cstring>
#include <filesystem>

namespace finegpt {

LoadedModel load_model(const std::string &path) {
  LoadedModel out;
  std::string file = path;
  if (std::filesystem::is_directory(path)) file = path + "/ckpt.bin";
  if (!file_exists(file)) fail(file, ": no checkpoint here (train first, or give a model file)");
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

} // namespace finegpt
