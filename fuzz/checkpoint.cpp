// finegpt checkpoints (io/checkpoint.h): read_checkpoint_state, verify_checkpoint,
// load_checkpoint (parameters, and the AdamW moments when the file has them) and load_model.
// Version 2 files end in a CRC trailer, which random bytes almost never match, so a second
// target (checkpoint_crc.cpp, FINEGPT_FUZZ_FIX_CRC) takes its input without the trailer and
// appends the one that matches, so that the fuzzer reaches the checks behind the checksums.
// Invariants: a file that read_checkpoint_state accepts and verify_checkpoint passes must load,
// and its parameters must be the file's bytes.
#include "io/checkpoint.h"
#include "fuzz.h"
#include "io/model_load.h"

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <zlib.h>

using namespace finegpt;

namespace {

#ifdef FINEGPT_FUZZ_FIX_CRC
uint32_t crc_of(const std::string &s, size_t from, size_t n) {
  if (from >= s.size()) return 0;
  n = std::min(n, s.size() - from);
  return uint32_t(crc32_z(0, reinterpret_cast<const Bytef *>(s.data() + from), n));
}

// `body` (a version 2 checkpoint without its trailer) with the trailer that matches it appended:
// the header's CRC over the magic, version, length and JSON; the parameters' and the moments'
// over the arrays, P taken from the JSON's num_params (else the arrays split as they would be).
std::string with_trailer(const uint8_t *data, size_t size) {
  std::string body(reinterpret_cast<const char *>(data), size);
  uint32_t head[2] = {};
  uint64_t len = 0;
  if (size < 16) return body;
  std::memcpy(head, data, 8);
  std::memcpy(&len, data + 8, 8);
  if (head[0] != kCheckpointMagic || head[1] != 2 || len > body.size() - 16) return body;
  const uint32_t header_crc = crc_of(body, 0, 16 + len);
  const size_t offset = (16 + len + 63) / 64 * 64;
  const size_t arrays = body.size() > offset ? body.size() - offset : 0;
  bool opt = false;
  size_t P = SIZE_MAX;
  try {
    auto j = nlohmann::json::parse(body.substr(16, len));
    opt = j.at("has_optimizer").get<bool>();
    if (j.at("num_params").is_number_unsigned()) P = j.at("num_params").get<size_t>();
  } catch (const nlohmann::json::exception &) {
  }
  if (P == SIZE_MAX) P = arrays / 4 / (opt ? 3 : 1);
  P = std::min(P, arrays / 4);
  const uint32_t trailer[4] = {kCheckpointTrailerMagic, header_crc, crc_of(body, offset, P * 4),
                               opt ? crc_of(body, offset + P * 4, 2 * P * 4) : 0u};
  body.append(reinterpret_cast<const char *>(trailer), sizeof trailer);
  return body;
}
#endif

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
#ifdef FINEGPT_FUZZ_FIX_CRC
  const std::string bytes = with_trailer(data, size);
#else
  const std::string bytes(reinterpret_cast<const char *>(data), size);
#endif
  const std::string path = fuzz::write_scratch("ckpt.bin", bytes.data(), bytes.size());
  CheckpointState st;
  bool has_opt = false;
  try {
    st = read_checkpoint_state(path, &has_opt);
  } catch (const Error &) {
    return 0;
  }
  const size_t P = num_parameters(st.model);
  fuzz::check(bytes.size() >= P * 4 * (has_opt ? 3 : 1), "the state accepted a short file");
  try {
    verify_checkpoint(path);
  } catch (const Error &) {
    return 0; // a checksum fails
  }
  std::vector<float> params(P), m(has_opt ? P : 0), v(has_opt ? P : 0);
  uint64_t len = 0;
  std::memcpy(&len, bytes.data() + 8, 8);
  const size_t offset = (16 + len + 63) / 64 * 64;
  try {
    load_checkpoint(path, params.data(), has_opt ? m.data() : nullptr,
                    has_opt ? v.data() : nullptr);
  } catch (const Error &) {
    // Refused only for a non-finite value in what it read (parameters, and the moments).
    bool finite = true;
    for (size_t i = 0; i < P * (has_opt ? 3 : 1) && finite; ++i) {
      float x;
      std::memcpy(&x, bytes.data() + offset + 4 * i, 4);
      finite = std::isfinite(x);
    }
    fuzz::check(!finite, "load_checkpoint refused a verified checkpoint of finite values");
    return 0;
  }
  fuzz::check(std::memcmp(params.data(), bytes.data() + offset, P * 4) == 0,
              "the parameters differ from the file's bytes");
  if (has_opt)
    fuzz::check(std::memcmp(v.data(), bytes.data() + offset + 8 * P, P * 4) == 0,
                "the second moments differ from the file's bytes");
  LoadedModel lm = load_model(path);
  fuzz::check(lm.params.size() == P && std::memcmp(lm.params.data(), params.data(), P * 4) == 0,
              "load_model's parameters differ from load_checkpoint's");
  return 0;
}
