// The safetensors format (Hugging Face's): an 8-byte little-endian header length N, N bytes of
// JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the tensors' bytes, offsets relative to the end of the header. A reader and a writer of
// our own (no C++ safetensors library in Debian, and the format is this small). Not the meaning
// of the tensors (hf_model.h).
//
// The reader is strict, as the safetensors crate is: the header fits in the file (at most
// 100 MB), is a JSON object, every tensor has a known dtype, a shape of non-negative sizes and
// offsets with end - begin = elements x dtype size, and the tensors tile the data exactly
// (sorted by offset: no overlap, no hole, no trailing bytes). Any breach is an Error naming the
// file and the tensor.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace finegpt {

struct SafeTensor {
  std::string name;
  std::string dtype; // "F32", "BF16", "F16", ... as written
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0; // byte offsets in the data section
  size_t elements() const;
};

struct SafetensorsFile {
  std::string path;
  uint64_t data_start = 0; // 8 + N
  std::map<std::string, SafeTensor> tensors;
  std::map<std::string, std::string> metadata;
  const SafeTensor *find(const std::string &name) const; // nullptr when absent
};

// Reads and validates the header (not the data).
SafetensorsFile read_safetensors_header(const std::string &path);
// One tensor as fp32 (F32 read as is, BF16 and F16 widened exactly); `out` holds t.elements()
// floats. Error on another dtype.
void read_safetensors_tensor(const SafetensorsFile &file, const SafeTensor &t, float *out);

struct SafeTensorOut {
  std::string name;
  std::vector<int64_t> shape;
  // Fills its argument with the tensor's elements(shape) floats (one tensor in memory at a
  // time); empty: zeros.
  std::function<void(float *)> fill;
};
// Writes `tensors` in their order as `dtype` ("F32", or "BF16" rounded to nearest even), the
// header padded with spaces to a multiple of 8 bytes, atomically (core/file.h).
void write_safetensors(const std::string &path, const std::vector<SafeTensorOut> &tensors,
                       const std::string &dtype,
                       const std::map<std::string, std::string> &metadata = {});

} // namespace finegpt
