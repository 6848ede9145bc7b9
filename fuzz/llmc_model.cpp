// llm.c model files (io/checkpoint.h: read_llmc_header, load_llmc_model) and the loader that
// tells them from finegpt checkpoints (io/model_load.h). A file the header accepts must load,
// and its parameters must be the file's fp32 values (version 3) or its bf16 values widened
// (version 5).
#include "fuzz.h"
#include "io/checkpoint.h"
#include "io/model_load.h"

#include <cstring>

using namespace finegpt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string path = fuzz::write_scratch("gpt2_fuzz.bin", data, size);
  GPTConfig cfg;
  int version = 0;
  try {
    cfg = read_llmc_header(path, &version);
  } catch (const Error &) {
    return 0;
  }
  const size_t P = num_parameters(cfg);
  const size_t width = version == 3 ? 4 : 2;
  fuzz::check(size == 1024 + P * width, "the header accepted a file of the wrong size");
  std::vector<float> params(P);
  load_llmc_model(path, params.data());
  for (size_t i = 0; i < P; i++) {
    uint32_t want = 0, got;
    std::memcpy(&want, data + 1024 + i * width, width);
    if (width == 2) want <<= 16;
    std::memcpy(&got, &params[i], 4);
    fuzz::check(got == want, cat("parameter ", i, " differs from the file"));
  }
  // The same file through load_model (what sample, eval and export read).
  LoadedModel m = load_model(path);
  fuzz::check(m.params.size() == P && std::memcmp(m.params.data(), params.data(), P * 4) == 0,
              "load_model's parameters differ from load_llmc_model's");
  return 0;
}
