// safetensors files (io/safetensors.h: read_safetensors_header, read_safetensors_tensor). A
// header the reader accepts must describe the file: its tensors tile the data after the header
// exactly, and every float tensor reads back as the file's bytes (F32) or their exact widening.
#include "io/safetensors.h"
#include "fuzz.h"

#include <algorithm>
#include <cstring>

using namespace finegpt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string path = fuzz::write_scratch("fuzz.safetensors", data, size);
  SafetensorsFile f;
  try {
    f = read_safetensors_header(path);
  } catch (const Error &) {
    return 0;
  }
  uint64_t n = 0;
  std::memcpy(&n, data, 8); // little-endian hosts only, as the targets run
  fuzz::check(f.data_start == 8 + n, "data_start is not 8 + the header length");
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const auto &[name, t] : f.tensors)
    spans.push_back({t.begin, t.end});
  std::sort(spans.begin(), spans.end());
  uint64_t at = 0;
  for (auto [b, e] : spans) {
    fuzz::check(b == at && e >= b, "accepted tensors that do not tile the data");
    at = e;
  }
  fuzz::check(f.data_start + at == size, "accepted a file whose tensors do not end it");
  for (const auto &[name, t] : f.tensors) {
    if (t.dtype != "F32" && t.dtype != "BF16" && t.dtype != "F16") continue;
    if (t.elements() > (1u << 20)) continue;
    std::vector<float> out(t.elements());
    read_safetensors_tensor(f, t, out.data());
    const uint8_t *p = data + f.data_start + t.begin;
    for (size_t i = 0; i < out.size(); ++i) {
      float want;
      if (t.dtype == "F32") {
        std::memcpy(&want, p + 4 * i, 4);
      } else if (t.dtype == "BF16") {
        const uint32_t bits = uint32_t(p[2 * i] | p[2 * i + 1] << 8) << 16;
        std::memcpy(&want, &bits, 4);
      } else {
        continue; // F16: widened by arithmetic; compared by the Python tests against torch
      }
      fuzz::check(std::memcmp(&want, &out[i], 4) == 0 || (want != want && out[i] != out[i]),
                  cat("tensor ", name, " element ", i, " differs from the file"));
    }
  }
  return 0;
}
