// Native and llm.c checkpoint files (see checkpoint.h).
#include "io/checkpoint.h"

#include "core/error.h"
#include "core/file.h"

#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

namespace finegpt {

namespace {

using json = nlohmann::json;

struct FileCloser {
  void operator()(FILE *f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;

File open_read(const std::string &path) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) fail(path, ": cannot open: ", std::strerror(errno));
  return File(f);
}

json model_json(const GPTConfig &c) {
  return {{"block_size", c.block_size},
          {"vocab_size", c.vocab_size},
          {"padded_vocab_size", c.padded_vocab_size},
          {"n_layer", c.n_layer},
          {"n_head", c.n_head},
          {"n_embd", c.n_embd},
          {"bias", c.bias},
          {"dropout", c.dropout}};
}

GPTConfig model_from_json(const json &j) {
  GPTConfig c;
  c.block_size = j.at("block_size");
  c.vocab_size = j.at("vocab_size");
  c.padded_vocab_size = j.at("padded_vocab_size");
  c.n_layer = j.at("n_layer");
  c.n_head = j.at("n_head");
  c.n_embd = j.at("n_embd");
  c.bias = j.at("bias");
  c.dropout = j.at("dropout");
  return c;
}

// Reads the header and JSON; returns the JSON and the byte offset of the first array.
json read_header(const std::string &path, FILE *f, uint64_t *data_offset) {
  uint32_t head[2];
  uint64_t len = 0;
  if (std::fread(head, 4, 2, f) != 2 || head[0] != kCheckpointMagic)
    fail(path, ": not a finegpt checkpoint (bad magic number)");
  if (head[1] != kCheckpointVersion)
    fail(path, ": checkpoint version ", head[1], " is not supported (this build reads ",
         kCheckpointVersion, ")");
  read_bytes(f, &len, 8, path);
  if (len > (64u << 20)) fail(path, ": corrupt checkpoint header");
  std::string text(len, '\0');
  read_bytes(f, text.data(), len, path);
  *data_offset = (16 + len + 63) / 64 * 64;
  try {
    return json::parse(text);
  } catch (const json::exception &e) {
    fail(path, ": corrupt checkpoint header (", e.what(), ")");
  }
}

} // namespace

void save_checkpoint(const std::string &path, const CheckpointState &st, const float *params,
                     const float *m, const float *v) {
  const size_t P = num_parameters(st.model);
  json j = {{"model", model_json(st.model)},
            {"iter_num", st.iter_num},
            {"best_val_loss", st.best_val_loss},
            {"adam_steps", st.adam_steps},
            {"loaders", st.loaders},
            {"eval_rng", st.eval_rng},
            {"config", st.config_py},
            {"data_dir", st.data_dir},
            {"num_params", P},
            {"has_optimizer", m != nullptr}};
  const std::string text = j.dump();
  write_file_atomic(path, [&](FILE *f) {
    uint32_t head[2] = {kCheckpointMagic, kCheckpointVersion};
    uint64_t len = text.size();
    write_bytes(f, head, 8, path);
    write_bytes(f, &len, 8, path);
    write_bytes(f, text.data(), len, path);
    const size_t pad = (16 + len + 63) / 64 * 64 - (16 + len);
    const char zeros[64] = {};
    write_bytes(f, zeros, pad, path);
    write_bytes(f, params, P * 4, path);
    if (m) {
      write_bytes(f, m, P * 4, path);
      write_bytes(f, v, P * 4, path);
    }
  });
}

CheckpointState read_checkpoint_state(const std::string &path, bool *has_optimizer) {
  File f = open_read(path);
  uint64_t off = 0;
  json j = read_header(path, f.get(), &off);
  CheckpointState st;
  try {
    st.model = model_from_json(j.at("model"));
    st.iter_num = j.at("iter_num");
    st.best_val_loss = j.at("best_val_loss");
    st.adam_steps = j.at("adam_steps");
    st.loaders = j.at("loaders").get<std::vector<std::array<uint64_t, 3>>>();
    if (st.loaders.empty()) fail("no data loader state");
    st.eval_rng = j.at("eval_rng");
    st.config_py = j.at("config");
    st.data_dir = j.at("data_dir");
    bool opt = j.at("has_optimizer");
    if (has_optimizer) *has_optimizer = opt;
    check_gpt_config(st.model);
    const uint64_t P = num_parameters(st.model);
    if (uint64_t(j.at("num_params")) != P) fail("parameter count disagrees with the shape");
    const uint64_t want = off + P * 4 * (opt ? 3 : 1);
    const uint64_t have = file_size(path);
    if (have != want)
      fail(have < want ? "file is truncated" : "file has trailing bytes", " (", have,
           " bytes, expected ", want, ")");
  } catch (const json::exception &e) {
    fail(path, ": corrupt checkpoint header (", e.what(), ")");
  } catch (const Error &e) {
    if (std::string(e.what()).rfind(path, 0) == 0) throw;
    fail(path, ": ", e.what());
  }
  return st;
}

void load_checkpoint(const std::string &path, float *params, float *m, float *v) {
  bool has_opt = false;
  CheckpointState st = read_checkpoint_state(path, &has_opt);
  if (m && !has_opt) fail(path, ": checkpoint has no optimizer state; cannot resume from it");
  File f = open_read(path);
  uint64_t off = 0;
  read_header(path, f.get(), &off);
  if (std::fseek(f.get(), long(off), SEEK_SET) != 0) fail(path, ": seek failed");
  const size_t P = num_parameters(st.model);
  read_bytes(f.get(), params, P * 4, path);
  if (m) {
    read_bytes(f.get(), m, P * 4, path);
    read_bytes(f.get(), v, P * 4, path);
  }
}

// ---- llm.c model files -------------------------------------------------------------------

GPTConfig read_llmc_header(const std::string &path, int *version) {
  File f = open_read(path);
  int32_t h[256];
  if (std::fread(h, 4, 256, f.get()) != 256)
    fail(path, ": too short for an llm.c model file (no 1024-byte header)");
  if (h[0] != kLlmcModelMagic)
    fail(path, ": not an llm.c model file (magic ", h[0], ", expected ", kLlmcModelMagic, ")");
  if (h[1] != 3 && h[1] != 5)
    fail(path, ": llm.c model version ", h[1], " is not supported (3 = fp32, 5 = bf16)");
  GPTConfig c;
  c.block_size = h[2];
  c.vocab_size = h[3];
  c.n_layer = h[4];
  c.n_head = h[5];
  c.n_embd = h[6];
  c.padded_vocab_size = h[7];
  c.bias = true;
  try {
    check_gpt_config(c);
  } catch (const Error &e) {
    fail(path, ": bad llm.c header: ", e.what());
  }
  const uint64_t want = 1024 + uint64_t(num_parameters(c)) * (h[1] == 3 ? 4 : 2);
  const uint64_t have = file_size(path);
  if (have != want)
    fail(path, ": ", have < want ? "file is truncated" : "file has trailing bytes", " (", have,
         " bytes, the header's shape needs ", want, ")");
  if (version) *version = h[1];
  return c;
}

void load_llmc_model(const std::string &path, float *params) {
  int version = 0;
  GPTConfig c = read_llmc_header(path, &version);
  File f = open_read(path);
  std::fseek(f.get(), 1024, SEEK_SET);
  const size_t P = num_parameters(c);
  if (version == 3) {
    read_bytes(f.get(), params, P * 4, path);
    return;
  }
  std::vector<uint16_t> buf(1 << 20);
  for (size_t done = 0; done < P;) {
    size_t n = std::min(buf.size(), P - done);
    read_bytes(f.get(), buf.data(), n * 2, path);
    for (size_t i = 0; i < n; ++i) {
      uint32_t bits = uint32_t(buf[i]) << 16;
      std::memcpy(&params[done + i], &bits, 4);
    }
    done += n;
  }
}

void save_llmc_model(const std::string &path, const GPTConfig &cfg, const float *params,
                     int version) {
  FINEGPT_CHECK(version == 3 || version == 5, "llm.c model version must be 3 (fp32) or 5 (bf16)");
  GPTConfig full = cfg;
  full.bias = true;
  auto src = param_tensors(cfg);
  auto dst = param_tensors(full);
  write_file_atomic(path, [&](FILE *f) {
    int32_t h[256] = {};
    h[0] = kLlmcModelMagic;
    h[1] = version;
    h[2] = cfg.block_size;
    h[3] = cfg.vocab_size;
    h[4] = cfg.n_layer;
    h[5] = cfg.n_head;
    h[6] = cfg.n_embd;
    h[7] = cfg.padded_vocab_size;
    write_bytes(f, h, sizeof h, path);
    std::vector<float> zeros;
    std::vector<uint16_t> half;
    const float *p = params;
    for (int i = 0; i < kNumParamTensors; ++i) {
      const float *data = p;
      if (src[i].count == 0) { // absent bias: zeros are the same function
        zeros.assign(dst[i].count, 0.0f);
        data = zeros.data();
      }
      p += src[i].count;
      if (version == 3) {
        write_bytes(f, data, dst[i].count * 4, path);
        continue;
      }
      half.resize(dst[i].count);
      for (size_t k = 0; k < dst[i].count; ++k) {
        uint32_t bits;
        std::memcpy(&bits, &data[k], 4);
        bits += 0x7fff + ((bits >> 16) & 1); // round to nearest even
        half[k] = uint16_t(bits >> 16);
      }
      write_bytes(f, half.data(), half.size() * 2, path);
    }
  });
}

} // namespace finegpt
