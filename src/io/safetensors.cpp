// safetensors reader and writer (see safetensors.h).
#include "io/safetensors.h"

#include "backend/cuda_ops.h" // bf16 rounding (host code)
#include "core/error.h"
#include "core/file.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

namespace finegpt {

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000; // the safetensors crate's limit

int dtype_bytes(const std::string &d) {
  static const std::map<std::string, int> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8}};
  auto it = sizes.find(d);
  return it == sizes.end() ? 0 : it->second;
}

struct FileCloser {
  void operator()(FILE *f) const { std::fclose(f); }
};

float half_to_float(uint16_t h) {
  const int e = (h >> 10) & 31, m = h & 1023;
  const float sign = (h & 0x8000) ? -1.0f : 1.0f;
  if (e == 0) return sign * std::ldexp(float(m), -24);
  if (e == 31) return m ? NAN : sign * INFINITY;
  return sign * std::ldexp(float(m | 1024), e - 25);
}

} // namespace

size_t SafeTensor::elements() const {
  size_t n = 1;
  for (int64_t d : shape)
    n *= size_t(d);
  return n;
}

const SafeTensor *SafetensorsFile::find(const std::string &name) const {
  auto it = tensors.find(name);
  return it == tensors.end() ? nullptr : &it->second;
}

SafetensorsFile read_safetensors_header(const std::string &path) {
  SafetensorsFile out;
  out.path = path;
  const uint64_t size = file_size(path);
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) fail(path, ": cannot open: ", std::strerror(errno));
  unsigned char len_bytes[8];
  if (size < 8 || std::fread(len_bytes, 1, 8, f.get()) != 8)
    fail(path, ": too short for a safetensors file (", size, " bytes, no 8-byte header length)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i)
    n = n << 8 | len_bytes[i];
  if (n > size - 8)
    fail(path, ": the safetensors header length (", n, " bytes) runs past the end of the file (",
         size, " bytes): truncated or not a safetensors file");
  if (n > kMaxHeaderBytes) fail(path, ": the safetensors header (", n, " bytes) is over 100 MB");
  std::string text(n, '\0');
  read_bytes(f.get(), text.data(), n, path);
  json h = json::parse(text, nullptr, false);
  if (h.is_discarded() || !h.is_object())
    fail(path, ": the safetensors header is not a JSON object");
  out.data_start = 8 + n;
  const uint64_t data_bytes = size - out.data_start;
  std::vector<const SafeTensor *> by_offset;
  for (auto &[name, v] : h.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, ": __metadata__ is not a JSON object");
      for (auto &[k, s] : v.items()) {
        if (!s.is_string()) fail(path, ": __metadata__ value of '", k, "' is not a string");
        out.metadata[k] = s.get<std::string>();
      }
      continue;
    }
    const std::string where = cat(path, ": tensor '", name.substr(0, 100), "'");
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") ||
        !v.contains("data_offsets"))
      fail(where, ": expected {dtype, shape, data_offsets}");
    SafeTensor t;
    t.name = name;
    if (!v["dtype"].is_string()) fail(where, ": dtype is not a string");
    t.dtype = v["dtype"].get<std::string>();
    const int bytes = dtype_bytes(t.dtype);
    if (!bytes) fail(where, ": unknown dtype '", t.dtype.substr(0, 20), "'");
    if (!v["shape"].is_array()) fail(where, ": shape is not a list");
    unsigned __int128 elems = 1;
    for (auto &d : v["shape"]) {
      if (!d.is_number_unsigned())
        fail(where, ": shape has a size that is not a whole number >= 0");
      t.shape.push_back(int64_t(std::min<uint64_t>(d.get<uint64_t>(), uint64_t(1) << 62)));
      elems *= uint64_t(t.shape.back());
      if (elems > data_bytes) elems = data_bytes + 1; // cannot fit; keeps the product small
    }
    const auto &o = v["data_offsets"];
    if (!o.is_array() || o.size() != 2 || !o[0].is_number_unsigned() || !o[1].is_number_unsigned())
      fail(where, ": data_offsets is not [begin, end]");
    t.begin = o[0].get<uint64_t>(), t.end = o[1].get<uint64_t>();
    if (t.begin > t.end || t.end > data_bytes)
      fail(where, ": data_offsets [", t.begin, ", ", t.end, "] lie outside the file's ", data_bytes,
           " data bytes");
    if (elems * unsigned(bytes) != t.end - t.begin)
      fail(where, ": its shape and dtype ", t.dtype, " need ", double(elems * unsigned(bytes)),
           " bytes but its data_offsets hold ", t.end - t.begin);
    out.tensors.emplace(name, std::move(t));
  }
  for (auto &[name, t] : out.tensors)
    by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const SafeTensor *a, const SafeTensor *b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t at = 0;
  for (const SafeTensor *t : by_offset) {
    if (t->begin < at)
      fail(path, ": tensor '", t->name.substr(0, 100), "' overlaps the tensor before it (offset ",
           t->begin, " < ", at, ")");
    if (t->begin > at)
      fail(path, ": a hole of ", t->begin - at, " bytes before tensor '", t->name.substr(0, 100),
           "' (offsets must tile the data)");
    at = t->end;
  }
  if (at != data_bytes)
    fail(path, ": ", data_bytes - at, " bytes after the last tensor (the header's offsets end at ",
         at, ")");
  return out;
}

void read_safetensors_tensor(const SafetensorsFile &file, const SafeTensor &t, float *out) {
  const int bytes = dtype_bytes(t.dtype);
  if (t.dtype != "F32" && t.dtype != "BF16" && t.dtype != "F16")
    fail(file.path, ": tensor '", t.name, "' has dtype ", t.dtype, " (F32, BF16 or F16 expected)");
  std::unique_ptr<FILE, FileCloser> f(std::fopen(file.path.c_str(), "rb"));
  if (!f) fail(file.path, ": cannot open: ", std::strerror(errno));
  if (fseeko(f.get(), off_t(file.data_start + t.begin), SEEK_SET) != 0)
    fail(file.path, ": seek failed");
  const size_t n = t.elements();
  if (bytes == 4) return read_bytes(f.get(), out, n * 4, file.path);
  std::vector<uint16_t> buf(std::min<size_t>(n, 1 << 20));
  for (size_t done = 0; done < n;) {
    const size_t k = std::min(buf.size(), n - done);
    read_bytes(f.get(), buf.data(), k * 2, file.path);
    for (size_t i = 0; i < k; ++i)
      out[done + i] =
          t.dtype == "BF16" ? cuda::to_float(cuda::bf16{buf[i]}) : half_to_float(buf[i]);
    done += k;
  }
}

void write_safetensors(const std::string &path, const std::vector<SafeTensorOut> &tensors,
                       const std::string &dtype,
                       const std::map<std::string, std::string> &metadata) {
  FINEGPT_CHECK(dtype == "F32" || dtype == "BF16", "safetensors: cannot write dtype ", dtype);
  const int bytes = dtype_bytes(dtype);
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t at = 0;
  std::vector<size_t> counts;
  for (const SafeTensorOut &t : tensors) {
    size_t n = 1;
    for (int64_t d : t.shape)
      n *= size_t(d);
    counts.push_back(n);
    h[t.name] = {{"dtype", dtype}, {"shape", t.shape}, {"data_offsets", {at, at + n * bytes}}};
    at += n * bytes;
  }
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  write_file_atomic(path, [&](FILE *f) {
    unsigned char len[8];
    for (int i = 0; i < 8; ++i)
      len[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
    write_bytes(f, len, 8, path);
    write_bytes(f, text.data(), text.size(), path);
    std::vector<float> buf;
    std::vector<uint16_t> half;
    for (size_t i = 0; i < tensors.size(); ++i) {
      buf.assign(counts[i], 0.0f);
      if (tensors[i].fill) tensors[i].fill(buf.data());
      const float *data = buf.data();
      if (bytes == 4) {
        write_bytes(f, data, counts[i] * 4, path);
        continue;
      }
      half.resize(counts[i]);
      for (size_t k = 0; k < counts[i]; ++k)
        half[k] = cuda::to_bf16(data[k]).bits;
      write_bytes(f, half.data(), half.size() * 2, path);
    }
  });
}

} // namespace finegpt
