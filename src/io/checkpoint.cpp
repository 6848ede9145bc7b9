// Native and llm.c checkpoint files (see checkpoint.h).
#include "io/checkpoint.h"

#include "core/error.h"
#include "core/file.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <utility>
#include <zlib.h>

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
          {"dropout", c.dropout},
          {"rotary", c.rotary},
          {"rmsnorm", c.rmsnorm},
          {"qk_norm", c.qk_norm},
          {"relu2", c.relu2},
          {"tie_embeddings", c.tie_embeddings},
          {"zero_init_proj", c.zero_init_proj},
          {"logit_softcap", c.logit_softcap}};
}

// `v` as an integer of type T; Error naming `what` when it is another type (a float, whose
// conversion could be undefined) or out of T's range (which a conversion would wrap).
template <typename T> T integer(const json &v, const char *what) {
  if (v.is_number_unsigned()) {
    if (std::in_range<T>(v.get<uint64_t>())) return T(v.get<uint64_t>());
  } else if (v.is_number_integer() && std::in_range<T>(v.get<int64_t>())) {
    return T(v.get<int64_t>());
  }
  fail("\"", what, "\" is ", v.dump(), ", not an integer in ", std::numeric_limits<T>::min(), "..",
       std::numeric_limits<T>::max());
}
// j.at(key) as an integer of type T (integer()).
template <typename T> T integer_at(const json &j, const char *key) {
  return integer<T>(j.at(key), key);
}

GPTConfig model_from_json(const json &j) {
  GPTConfig c;
  c.block_size = integer_at<int>(j, "block_size");
  c.vocab_size = integer_at<int>(j, "vocab_size");
  c.padded_vocab_size = integer_at<int>(j, "padded_vocab_size");
  c.n_layer = integer_at<int>(j, "n_layer");
  c.n_head = integer_at<int>(j, "n_head");
  c.n_embd = integer_at<int>(j, "n_embd");
  c.bias = j.at("bias");
  c.dropout = j.at("dropout");
  // The architecture options (absent in checkpoints from before them: GPT-2's values).
  auto flag = [&](const char *key, bool def) {
    if (!j.contains(key)) return def;
    FINEGPT_CHECK(j.at(key).is_boolean(), "\"", key, "\" is ", j.at(key).dump(),
                  ", not true/false");
    return j.at(key).get<bool>();
  };
  c.rotary = flag("rotary", false);
  c.rmsnorm = flag("rmsnorm", false);
  c.qk_norm = flag("qk_norm", false);
  c.relu2 = flag("relu2", false);
  c.tie_embeddings = flag("tie_embeddings", true);
  c.zero_init_proj = flag("zero_init_proj", false);
  if (j.contains("logit_softcap")) {
    FINEGPT_CHECK(j.at("logit_softcap").is_number(), "\"logit_softcap\" is ",
                  j.at("logit_softcap").dump(), ", not a number");
    c.logit_softcap = j.at("logit_softcap").get<float>();
  }
  return c;
}

uint32_t crc(uint32_t c, const void *data, size_t bytes) {
  return uint32_t(crc32_z(c, static_cast<const Bytef *>(data), bytes));
}

struct Trailer {
  uint32_t magic = kCheckpointTrailerMagic, header_crc = 0, params_crc = 0, moments_crc = 0;
};
static_assert(sizeof(Trailer) == 16);

// A checkpoint's header as read: the JSON, where the arrays start, and (version 2) the trailer.
struct Header {
  json j;
  uint64_t data_offset = 0;
  uint32_t version = 0;
  uint32_t header_crc = 0; // computed over the bytes read
};

const char *const kCorruptHint = " (the file is damaged; ckpt.prev.bin beside it, when there "
                                 "is one, holds the checkpoint before it)";

Trailer read_trailer(const std::string &path, FILE *f);

// Reads the header and JSON; Error naming the file when it is not a checkpoint of a version
// this build reads.
Header read_header(const std::string &path, FILE *f) {
  uint32_t head[2];
  uint64_t len = 0;
  if (std::fread(head, 4, 2, f) != 2 || head[0] != kCheckpointMagic)
    fail(path, ": not a finegpt checkpoint (bad magic number)");
  if (head[1] != 1 && head[1] != kCheckpointVersion)
    fail(path, ": checkpoint version ", head[1], " is not supported (this build reads 1 to ",
         kCheckpointVersion, ")");
  read_bytes(f, &len, 8, path);
  if (len > (64u << 20)) fail(path, ": corrupt checkpoint header", kCorruptHint);
  std::string text(len, '\0');
  read_bytes(f, text.data(), len, path);
  Header h;
  h.version = head[1];
  h.data_offset = (16 + len + 63) / 64 * 64;
  h.header_crc = crc(crc(crc(0, head, 8), &len, 8), text.data(), len);
  try {
    h.j = json::parse(text);
  } catch (const json::exception &e) {
    // A damaged byte is what the checksum is for: say so where the trailer can tell. Otherwise
    // the parser's reason, without its excerpt of the text (which may run to pages).
    if (h.version >= 2) {
      const long at = std::ftell(f);
      bool bad_crc = false;
      try {
        bad_crc = read_trailer(path, f).header_crc != h.header_crc;
      } catch (const Error &) { // no trailer either: the parser's reason below
      }
      if (bad_crc) fail(path, ": the header fails its checksum", kCorruptHint);
      std::fseek(f, at, SEEK_SET);
    }
    std::string why = e.what();
    why = why.substr(0, std::min(why.find("; last read"), size_t(160)));
    fail(path, ": corrupt checkpoint header (", why, ")", kCorruptHint);
  }
  return h;
}

Trailer read_trailer(const std::string &path, FILE *f) {
  Trailer t;
  if (std::fseek(f, -long(sizeof t), SEEK_END) != 0) fail(path, ": seek failed");
  read_bytes(f, &t, sizeof t, path);
  if (t.magic != kCheckpointTrailerMagic) fail(path, ": no checksum trailer", kCorruptHint);
  return t;
}

// Reads `n` floats into `dst` (or, when null, through a buffer) and returns the CRC of the bytes
// read, continuing `c`.
uint32_t read_floats(const std::string &path, FILE *f, float *dst, size_t n, uint32_t c = 0) {
  std::vector<float> buf(dst ? 0 : std::min<size_t>(n, 1 << 20));
  for (size_t done = 0; done < n;) {
    const size_t k = dst ? n : std::min(buf.size(), n - done);
    float *p = dst ? dst : buf.data();
    read_bytes(f, p, k * 4, path);
    c = crc(c, p, k * 4);
    done += k;
  }
  return c;
}

// The index of the first non-finite value of a[0..n), or n.
size_t first_non_finite(const float *a, size_t n) {
  size_t first = n;
#pragma omp parallel for reduction(min : first) schedule(static)
  for (size_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &a[i], 4);
    if ((bits & 0x7f800000u) == 0x7f800000u && i < first) first = i;
  }
  return first;
}

} // namespace

void save_checkpoint(const std::string &path, const CheckpointState &st, const float *params,
                     const float *m, const float *v, const std::string &previous) {
  const size_t P = num_parameters(st.model);
  if (!std::isfinite(st.best_val_loss))
    fail(path, ": refusing to save a checkpoint whose loss is ", st.best_val_loss);
  for (auto [a, what] :
       {std::pair{params, "parameters"}, {m, "AdamW first moments"}, {v, "AdamW second moments"}}) {
    if (!a) continue;
    const size_t i = first_non_finite(a, P);
    if (i < P)
      fail(path, ": refusing to save a checkpoint with non-finite ", what, " (element ", i, " is ",
           a[i], ")");
  }
  json j = {{"model", model_json(st.model)},
            {"iter_num", st.iter_num},
            {"best_val_loss", st.best_val_loss},
            {"adam_steps", st.adam_steps},
            {"loaders", st.loaders},
            {"eval_rng", st.eval_rng},
            {"config", st.config_py},
            {"data_dir", st.data_dir},
            {"optimizer", st.optimizer},
            {"num_params", P},
            {"has_optimizer", m != nullptr}};
  const std::string text = j.dump();
  AtomicWrite how;
  how.verify = [](const std::string &tmp) { verify_checkpoint(tmp); };
  how.keep_previous = previous;
  write_file_atomic(
      path,
      [&](FILE *f) {
        uint32_t head[2] = {kCheckpointMagic, kCheckpointVersion};
        uint64_t len = text.size();
        Trailer t;
        t.header_crc = crc(crc(crc(0, head, 8), &len, 8), text.data(), len);
        write_bytes(f, head, 8, path);
        write_bytes(f, &len, 8, path);
        write_bytes(f, text.data(), len, path);
        const size_t pad = (16 + len + 63) / 64 * 64 - (16 + len);
        const char zeros[64] = {};
        write_bytes(f, zeros, pad, path);
        write_bytes(f, params, P * 4, path);
        t.params_crc = crc(0, params, P * 4);
        if (m) {
          write_bytes(f, m, P * 4, path);
          write_bytes(f, v, P * 4, path);
          t.moments_crc = crc(crc(0, m, P * 4), v, P * 4);
        }
        write_bytes(f, &t, sizeof t, path);
      },
      how);
}

void verify_checkpoint(const std::string &path) {
  bool has_opt = false;
  const CheckpointState st = read_checkpoint_state(path, &has_opt);
  const size_t P = num_parameters(st.model);
  File f = open_read(path);
  const Header h = read_header(path, f.get());
  if (h.version < 2) return; // no checksums to check
  if (std::fseek(f.get(), long(h.data_offset), SEEK_SET) != 0) fail(path, ": seek failed");
  const uint32_t params_crc = read_floats(path, f.get(), nullptr, P);
  const uint32_t moments_crc = has_opt ? read_floats(path, f.get(), nullptr, 2 * P) : 0;
  const Trailer t = read_trailer(path, f.get());
  if (params_crc != t.params_crc) fail(path, ": the parameters fail their checksum", kCorruptHint);
  if (moments_crc != t.moments_crc)
    fail(path, ": the optimizer state fails its checksum", kCorruptHint);
}

CheckpointState read_checkpoint_state(const std::string &path, bool *has_optimizer) {
  File f = open_read(path);
  const Header h = read_header(path, f.get());
  const json &j = h.j;
  const uint64_t off = h.data_offset;
  CheckpointState st;
  try {
    // The header's checksum first, when the trailer is there: a damaged header is named as such,
    // not as whatever its damaged values say (a truncated file has no trailer: see below).
    if (h.version >= 2) {
      Trailer t;
      if (std::fseek(f.get(), -long(sizeof t), SEEK_END) == 0 &&
          std::fread(&t, sizeof t, 1, f.get()) == 1 && t.magic == kCheckpointTrailerMagic &&
          t.header_crc != h.header_crc)
        fail("the header fails its checksum", kCorruptHint);
    }
    st.model = model_from_json(j.at("model"));
    st.iter_num = integer_at<long>(j, "iter_num");
    st.best_val_loss = j.at("best_val_loss");
    st.adam_steps = integer_at<int>(j, "adam_steps");
    const json &loaders = j.at("loaders");
    if (!loaders.is_array()) fail("\"loaders\" is not a list");
    for (const json &l : loaders) {
      if (!l.is_array() || l.size() != 3) fail("a data loader state is not a list of 3 integers");
      st.loaders.push_back({integer<uint64_t>(l[0], "loaders"), integer<uint64_t>(l[1], "loaders"),
                            integer<uint64_t>(l[2], "loaders")});
    }
    if (st.loaders.empty()) fail("no data loader state");
    st.eval_rng = integer_at<uint64_t>(j, "eval_rng");
    st.config_py = j.at("config");
    st.data_dir = j.at("data_dir");
    if (j.contains("optimizer")) {
      const json &o = j.at("optimizer");
      if (!o.is_string() || (o != "adamw" && o != "muon"))
        fail("\"optimizer\" is not 'adamw' or 'muon'");
      st.optimizer = o;
    }
    bool opt = j.at("has_optimizer");
    if (has_optimizer) *has_optimizer = opt;
    check_gpt_config(st.model);
    const uint64_t P = num_parameters(st.model);
    if (integer_at<uint64_t>(j, "num_params") != P)
      fail("parameter count disagrees with the shape");
    const uint64_t want = off + P * 4 * (opt ? 3 : 1) + (h.version >= 2 ? sizeof(Trailer) : 0);
    const uint64_t have = file_size(path);
    if (have != want)
      fail(have < want ? "file is truncated" : "file has trailing bytes", " (", have,
           " bytes, expected ", want, ")");
    if (h.version >= 2 && read_trailer(path, f.get()).header_crc != h.header_crc)
      fail("the header fails its checksum", kCorruptHint);
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
  const Header h = read_header(path, f.get());
  if (std::fseek(f.get(), long(h.data_offset), SEEK_SET) != 0) fail(path, ": seek failed");
  const size_t P = num_parameters(st.model);
  const uint32_t params_crc = read_floats(path, f.get(), params, P);
  uint32_t moments_crc = 0;
  if (m) {
    moments_crc = read_floats(path, f.get(), m, P);
    moments_crc = read_floats(path, f.get(), v, P, moments_crc);
  }
  if (h.version >= 2) {
    const Trailer t = read_trailer(path, f.get());
    if (params_crc != t.params_crc)
      fail(path, ": the parameters fail their checksum", kCorruptHint);
    if (m && moments_crc != t.moments_crc)
      fail(path, ": the optimizer state fails its checksum", kCorruptHint);
  }
  // Intact but not finite (written by something else, or before the save checked): refused, as
  // save_checkpoint refuses to write it.
  for (auto [a, what] :
       {std::pair{params, "parameters"}, {m, "AdamW first moments"}, {v, "AdamW second moments"}}) {
    if (!a) continue;
    const size_t i = first_non_finite(a, P);
    if (i < P)
      fail(path, ": the checkpoint holds non-finite ", what, " (element ", i, " is ", a[i],
           "); it cannot be used");
  }
}

// ---- llm.c model files -------------------------------------------------------------------

GPTConfig read_llmc_header(const std::string &path, int *version) {
  File f = open_read(path);
  int32_t h[256];
  if (std::fread(h, 4, 256, f.get()) != 256)
    fail(path, ": too short for an llm.c model file (no 1024-byte header)");
  if (uint32_t(h[0]) == kCheckpointMagic)
    fail(path, ": a finegpt checkpoint, not an llm.c model file (continue it with "
               "init_from='resume' and its out_dir, or write one with finegpt export)");
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
  uint64_t P = 0;
  try {
    check_gpt_config(c);
    P = num_parameters(c);
  } catch (const Error &e) {
    fail(path, ": bad llm.c header: ", e.what());
  }
  const uint64_t want = 1024 + P * (h[1] == 3 ? 4 : 2);
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
  } else {
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
  if (const size_t i = first_non_finite(params, P); i < P)
    fail(path, ": the model file holds a non-finite parameter (element ", i, " is ", params[i],
         "); it cannot be used");
}

void save_llmc_model(const std::string &path, const GPTConfig &cfg, const float *params,
                     int version) {
  FINEGPT_CHECK(version == 3 || version == 5, "llm.c model version must be 3 (fp32) or 5 (bf16)");
  FINEGPT_CHECK(is_gpt2_architecture(cfg),
                "an llm.c model file holds GPT-2 only (learned "
                "positions, LayerNorm, GELU, tied head); this model has ",
                architecture_options(cfg), ": keep its finegpt checkpoint (ckpt.bin)");
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
