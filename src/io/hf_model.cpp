// Hugging Face GPT-2 model folders (see hf_model.h).
#include "io/hf_model.h"

#include "core/error.h"
#include "core/file.h"
#include "io/safetensors.h"
#include "tokenizer/hf_files.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

namespace finegpt {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// One HF tensor of a finegpt parameter: its name (without "transformer."), its HF shape, and
// which finegpt tensor and layer it is; `transpose` for Conv1D weights ([in, out] in HF).
struct HfTensor {
  std::string name;
  std::vector<int64_t> shape;
  int param;
  int layer; // -1: not per layer
  bool transpose;
};

std::vector<HfTensor> hf_tensors(const GPTConfig &c) {
  const int64_t C = c.n_embd, V = c.vocab_size, T = c.block_size;
  std::vector<HfTensor> t = {{"wte.weight", {V, C}, WTE, -1, false},
                             {"wpe.weight", {T, C}, WPE, -1, false}};
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string h = cat("h.", l, ".");
    t.push_back({h + "ln_1.weight", {C}, LN1W, l, false});
    t.push_back({h + "ln_1.bias", {C}, LN1B, l, false});
    t.push_back({h + "attn.c_attn.weight", {C, 3 * C}, QKVW, l, true});
    t.push_back({h + "attn.c_attn.bias", {3 * C}, QKVB, l, false});
    t.push_back({h + "attn.c_proj.weight", {C, C}, ATTPROJW, l, true});
    t.push_back({h + "attn.c_proj.bias", {C}, ATTPROJB, l, false});
    t.push_back({h + "ln_2.weight", {C}, LN2W, l, false});
    t.push_back({h + "ln_2.bias", {C}, LN2B, l, false});
    t.push_back({h + "mlp.c_fc.weight", {C, 4 * C}, FCW, l, true});
    t.push_back({h + "mlp.c_fc.bias", {4 * C}, FCB, l, false});
    t.push_back({h + "mlp.c_proj.weight", {4 * C, C}, FCPROJW, l, true});
    t.push_back({h + "mlp.c_proj.bias", {C}, FCPROJB, l, false});
  }
  t.push_back({"ln_f.weight", {C}, LNFW, -1, false});
  t.push_back({"ln_f.bias", {C}, LNFB, -1, false});
  return t;
}

std::string dims(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += cat(i ? ", " : "", shape[i]);
  return s + "]";
}

// Where tensor `t` lives in finegpt's flat parameters: the offset of its layer's slice.
size_t param_offset(const GPTConfig &c, const HfTensor &t) {
  const auto pt = param_tensors(c);
  size_t off = 0;
  for (int i = 0; i < t.param; ++i)
    off += pt[i].count;
  if (t.layer >= 0) off += size_t(t.layer) * (pt[t.param].count / size_t(c.n_layer));
  return off;
}

bool ends_with(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The prefix of the file's tensor names: "transformer." (save_pretrained of GPT2LMHeadModel) or
// "" (the original GPT-2 upload, a GPT2Model).
std::string name_prefix(const SafetensorsFile &f) {
  return f.find("transformer.wte.weight") ? "transformer." : "";
}

const std::vector<std::string> kGpt2Names = {"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"};

} // namespace

bool is_gpt2_name(const std::string &name) {
  for (const auto &n : kGpt2Names)
    if (name == n) return true;
  return false;
}

std::string find_hub_model(const std::string &name) {
  std::string cache;
  if (const char *c = std::getenv("HF_HUB_CACHE"); c && *c) {
    cache = c;
  } else {
    std::string home;
    if (const char *h = std::getenv("HF_HOME"); h && *h)
      home = h;
    else if (const char *x = std::getenv("XDG_CACHE_HOME"); x && *x)
      home = std::string(x) + "/huggingface";
    else if (const char *u = std::getenv("HOME"); u && *u)
      home = std::string(u) + "/.cache/huggingface";
    else
      fail("init_from='", name,
           "': neither HF_HOME nor HOME is set, so there is no hub cache "
           "to look in (set HF_HOME, or give the model's folder)");
    cache = home + "/hub";
  }
  std::string looked;
  for (const std::string &repo : {"models--openai-community--" + name, "models--" + name}) {
    const std::string dir = cache + "/" + repo;
    looked += (looked.empty() ? "" : ", ") + dir;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    const std::string ref = dir + "/refs/main";
    if (!file_exists(ref)) fail(dir, ": no refs/main (an incomplete download?)");
    std::string sha = read_file(ref);
    while (!sha.empty() && (sha.back() == '\n' || sha.back() == ' '))
      sha.pop_back();
    if (sha.empty() || sha.size() > 64 ||
        sha.find_first_not_of("0123456789abcdef") != std::string::npos)
      fail(ref, ": not a commit hash");
    const std::string snap = dir + "/snapshots/" + sha;
    if (!fs::is_directory(snap, ec))
      fail(snap, ": the snapshot refs/main names is missing (an incomplete download?)");
    return snap;
  }
  fail("init_from='", name, "': no copy of openai-community/", name, " in the Hugging Face cache (",
       looked, "); with network access run `finegpt download openai-community/", name,
       "`, or give the path of a folder with config.json and model.safetensors");
}

bool is_hf_model_dir(const std::string &path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::exists(path + "/config.json", ec);
}

GPTConfig read_hf_config(const std::string &dir) {
  const std::string path = dir + "/config.json";
  json j = json::parse(read_file(path), nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail(path, ": not a JSON object");
  // transformers' GPT2Config defaults for absent keys.
  auto integer = [&](const char *key, int def) {
    if (!j.contains(key) || j[key].is_null()) return def;
    if (!j[key].is_number_integer() || j[key].get<int64_t>() <= 0 ||
        j[key].get<int64_t>() > (int64_t(1) << 24))
      fail(path, ": ", key, " must be a whole number in 1..2^24");
    return int(j[key].get<int64_t>());
  };
  auto text = [&](const char *key, const char *def) {
    if (!j.contains(key)) return std::string(def);
    if (!j[key].is_string()) fail(path, ": ", key, " must be a string");
    return j[key].get<std::string>();
  };
  auto flag = [&](const char *key, bool def) {
    if (!j.contains(key)) return def;
    if (!j[key].is_boolean()) fail(path, ": ", key, " must be true or false");
    return j[key].get<bool>();
  };
  const std::string type = text("model_type", "gpt2");
  if (type != "gpt2")
    fail(path, ": model_type '", type.substr(0, 40), "' is not GPT-2 (finegpt reads gpt2 models)");
  GPTConfig c;
  c.n_layer = integer("n_layer", 12);
  c.n_head = integer("n_head", 12);
  c.n_embd = integer("n_embd", 768);
  c.block_size = integer("n_positions", 1024);
  c.vocab_size = integer("vocab_size", 50257);
  c.padded_vocab_size = pad_vocab(c.vocab_size);
  c.bias = true;
  c.dropout = 0.0f;
  const std::string act = text("activation_function", "gelu_new");
  if (act != "gelu_new" && act != "gelu_pytorch_tanh")
    fail(path, ": activation_function '", act.substr(0, 40),
         "' is not GPT-2's tanh GELU (gelu_new), which finegpt computes");
  if (integer("n_inner", 4 * c.n_embd) != 4 * c.n_embd)
    fail(path, ": n_inner must be 4 x n_embd (", 4 * c.n_embd, ") as in GPT-2");
  if (j.contains("layer_norm_epsilon") &&
      (!j["layer_norm_epsilon"].is_number() ||
       std::fabs(j["layer_norm_epsilon"].get<double>() - 1e-5) > 1e-12))
    fail(path, ": layer_norm_epsilon must be 1e-05 (GPT-2's, which finegpt computes)");
  if (!flag("scale_attn_weights", true) || flag("scale_attn_by_inverse_layer_idx", false) ||
      flag("add_cross_attention", false) || !flag("tie_word_embeddings", true))
    fail(path, ": scale_attn_weights, scale_attn_by_inverse_layer_idx, add_cross_attention and "
               "tie_word_embeddings must be GPT-2's (true, false, false, true)");
  try {
    check_gpt_config(c);
  } catch (const Error &e) {
    fail(path, ": ", e.what());
  }
  // The weights must be exactly these tensors.
  const std::string st_path = dir + "/model.safetensors";
  if (!file_exists(st_path))
    fail(dir, ": no model.safetensors (finegpt reads Hugging Face models in safetensors form)");
  const SafetensorsFile f = read_safetensors_header(st_path);
  const std::string prefix = name_prefix(f);
  std::map<std::string, bool> expected;
  for (const HfTensor &t : hf_tensors(c)) {
    expected[prefix + t.name] = true;
    const SafeTensor *s = f.find(prefix + t.name);
    if (!s) fail(st_path, ": tensor '", prefix + t.name, "' is missing");
    if (s->shape != t.shape)
      fail(st_path, ": tensor '", s->name, "' has shape ", dims(s->shape), ", config.json's model ",
           "needs ", dims(t.shape));
    if (s->dtype != "F32" && s->dtype != "BF16" && s->dtype != "F16")
      fail(st_path, ": tensor '", s->name, "' has dtype ", s->dtype,
           " (F32, BF16 or F16 expected)");
  }
  for (const auto &[name, s] : f.tensors) {
    if (expected.count(name) || ends_with(name, ".attn.bias") ||
        ends_with(name, ".attn.masked_bias"))
      continue;
    if (name == "lm_head.weight" &&
        s.shape == std::vector<int64_t>{int64_t(c.vocab_size), int64_t(c.n_embd)})
      continue;
    fail(st_path, ": unexpected tensor '", name.substr(0, 100), "' (not a GPT-2 weight)");
  }
  return c;
}

void load_hf_model(const std::string &dir, const GPTConfig &c, float *params) {
  const std::string st_path = dir + "/model.safetensors";
  const SafetensorsFile f = read_safetensors_header(st_path);
  const std::string prefix = name_prefix(f);
  std::fill(params, params + num_parameters(c), 0.0f); // wte's padding rows
  std::vector<float> buf;
  for (const HfTensor &t : hf_tensors(c)) {
    const SafeTensor *s = f.find(prefix + t.name);
    if (!s || s->shape != t.shape) fail(st_path, ": changed while being read");
    float *dst = params + param_offset(c, t);
    if (!t.transpose) {
      read_safetensors_tensor(f, *s, dst);
      continue;
    }
    buf.resize(s->elements());
    read_safetensors_tensor(f, *s, buf.data());
    const size_t in = size_t(t.shape[0]), out = size_t(t.shape[1]);
    for (size_t i = 0; i < in; ++i)
      for (size_t o = 0; o < out; ++o)
        dst[o * in + i] = buf[i * out + o];
  }
  if (const SafeTensor *head = f.find("lm_head.weight")) {
    buf.resize(head->elements());
    read_safetensors_tensor(f, *head, buf.data());
    if (!std::equal(buf.begin(), buf.end(), params))
      fail(st_path, ": lm_head.weight differs from wte (an untied output layer; GPT-2's is tied)");
  }
  const size_t n = num_parameters(c);
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(params[i]))
      fail(st_path, ": a non-finite weight (element ", i, " of finegpt's layout is ", params[i],
           "); it cannot be used");
}

void save_hf_model(const std::string &dir, const GPTConfig &cfg, const float *params,
                   const std::string &dtype, const HfTokenizerFiles *tok) {
  FINEGPT_CHECK(dtype == "F32" || dtype == "BF16", "Hugging Face export: dtype F32 or BF16");
  FINEGPT_CHECK(is_gpt2_architecture(cfg), "Hugging Face export: GPT2LMHeadModel has none of ",
                architecture_options(cfg));
  make_dirs(dir);
  const auto src = param_tensors(cfg);
  std::vector<SafeTensorOut> out;
  for (const HfTensor &t : hf_tensors(cfg)) {
    SafeTensorOut o{"transformer." + t.name, t.shape, {}};
    if (src[t.param].count > 0) {
      const float *p = params + param_offset(cfg, t);
      const bool tr = t.transpose;
      const size_t n0 = size_t(t.shape[0]), n1 = t.shape.size() > 1 ? size_t(t.shape[1]) : 1;
      o.fill = [p, tr, n0, n1](float *dst) {
        if (!tr) return std::copy(p, p + n0 * n1, dst), void();
        for (size_t i = 0; i < n0; ++i) // dst [in = n0, out = n1] from finegpt's [out, in]
          for (size_t k = 0; k < n1; ++k)
            dst[i * n1 + k] = p[k * n0 + i];
      };
    }
    out.push_back(std::move(o));
  }
  json c = {{"architectures", {"GPT2LMHeadModel"}},
            {"model_type", "gpt2"},
            {"activation_function", "gelu_new"},
            {"vocab_size", cfg.vocab_size},
            {"n_positions", cfg.block_size},
            {"n_ctx", cfg.block_size},
            {"n_embd", cfg.n_embd},
            {"n_layer", cfg.n_layer},
            {"n_head", cfg.n_head},
            {"n_inner", nullptr},
            {"layer_norm_epsilon", 1e-5},
            {"initializer_range", 0.02},
            {"attn_pdrop", cfg.dropout},
            {"embd_pdrop", cfg.dropout},
            {"resid_pdrop", cfg.dropout},
            {"tie_word_embeddings", true},
            {"torch_dtype", dtype == "F32" ? "float32" : "bfloat16"}};
  if (cfg.vocab_size == 50257) c["bos_token_id"] = 50256, c["eos_token_id"] = 50256;
  write_safetensors(dir + "/model.safetensors", out, dtype, {{"format", "pt"}});
  write_file_atomic(dir + "/config.json", c.dump(2) + "\n");
  if (tok) {
    write_file_atomic(dir + "/vocab.json", tok->vocab_json);
    write_file_atomic(dir + "/merges.txt", tok->merges_txt);
  }
}

} // namespace finegpt
