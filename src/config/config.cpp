// TrainConfig loading (see train_config.h): one table maps each key to its TrainConfig member;
// config files run through the config language (pyconfig.h), --key=value flags are parsed as
// Python literals, and every value is checked against its key's type. Also validate() and
// to_python().
#include "config/train_config.h"

#include "config/pyconfig.h"
#include "core/error.h"
#include "core/file.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <set>
#include <thread>
#include <type_traits>
#include <variant>

namespace finegpt {
namespace {

using Field = std::variant<std::string TrainConfig::*, long TrainConfig::*, double TrainConfig::*,
                           bool TrainConfig::*>;

struct KeyDef {
  const char *name;
  Field field;
  bool none_is_default;      // `key = None` means the automatic default ("" or 0)
  bool auto_is_zero = false; // `key = 'auto'` is stored as 0 (batch_size)
};

#define FINEGPT_KEY(k)                                                                             \
  KeyDef { #k, &TrainConfig::k, false }
#define FINEGPT_KEY_OR_NONE(k)                                                                     \
  KeyDef { #k, &TrainConfig::k, true }
#define FINEGPT_KEY_OR_AUTO(k)                                                                     \
  KeyDef { #k, &TrainConfig::k, false, true }

// Every key, in TrainConfig's declaration order.
const std::vector<KeyDef> &key_table() {
  static const std::vector<KeyDef> keys = {
      FINEGPT_KEY(out_dir),
      FINEGPT_KEY(eval_interval),
      FINEGPT_KEY(log_interval),
      FINEGPT_KEY(eval_iters),
      FINEGPT_KEY(eval_only),
      FINEGPT_KEY(always_save_checkpoint),
      FINEGPT_KEY(init_from),
      FINEGPT_KEY(wandb_log),
      FINEGPT_KEY(wandb_project),
      FINEGPT_KEY(wandb_run_name),
      FINEGPT_KEY(dataset),
      FINEGPT_KEY(gradient_accumulation_steps),
      FINEGPT_KEY_OR_AUTO(batch_size),
      FINEGPT_KEY(block_size),
      FINEGPT_KEY(n_layer),
      FINEGPT_KEY(n_head),
      FINEGPT_KEY(n_embd),
      FINEGPT_KEY(dropout),
      FINEGPT_KEY(bias),
      FINEGPT_KEY(learning_rate),
      FINEGPT_KEY(max_iters),
      FINEGPT_KEY(weight_decay),
      FINEGPT_KEY(beta1),
      FINEGPT_KEY(beta2),
      FINEGPT_KEY(grad_clip),
      FINEGPT_KEY(decay_lr),
      FINEGPT_KEY(warmup_iters),
      FINEGPT_KEY(lr_decay_iters),
      FINEGPT_KEY(min_lr),
      FINEGPT_KEY(backend),
      FINEGPT_KEY(device),
      FINEGPT_KEY(dtype),
      FINEGPT_KEY(compile),
      FINEGPT_KEY(seed),
      FINEGPT_KEY_OR_NONE(data_dir),
      FINEGPT_KEY(data_order),
      FINEGPT_KEY(threads),
      FINEGPT_KEY_OR_NONE(vocab_size),
      FINEGPT_KEY(recipe),
      FINEGPT_KEY(rotary),
      FINEGPT_KEY(norm),
      FINEGPT_KEY(qk_norm),
      FINEGPT_KEY(mlp_activation),
      FINEGPT_KEY(tie_embeddings),
      FINEGPT_KEY(zero_init_proj),
      FINEGPT_KEY(logit_softcap),
      FINEGPT_KEY(optimizer),
      FINEGPT_KEY(muon_lr),
      FINEGPT_KEY(muon_momentum),
      FINEGPT_KEY_OR_NONE(embedding_lr),
      FINEGPT_KEY_OR_NONE(head_lr),
      FINEGPT_KEY(recompute),
      FINEGPT_KEY(zero_stage),
      FINEGPT_KEY(dist_timeout),
      FINEGPT_KEY(attention),
      FINEGPT_KEY(offload),
      FINEGPT_KEY(tokens_per_step),
  };
  return keys;
}

#undef FINEGPT_KEY
#undef FINEGPT_KEY_OR_NONE
#undef FINEGPT_KEY_OR_AUTO

const KeyDef *find_key(const std::string &name) {
  for (const KeyDef &k : key_table())
    if (name == k.name) return &k;
  return nullptr;
}

py::Value get(const TrainConfig &cfg, const KeyDef &k) {
  return std::visit([&](auto m) -> py::Value { return cfg.*m; }, k.field);
}

py::Env env_of(const TrainConfig &cfg) {
  py::Env env;
  for (const KeyDef &k : key_table())
    env[k.name] = get(cfg, k);
  return env;
}

size_t edit_distance(const std::string &a, const std::string &b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      bool same = std::tolower((unsigned char)a[i - 1]) == std::tolower((unsigned char)b[j - 1]);
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (same ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

[[noreturn]] void unknown_key(const std::string &place, const std::string &name) {
  fail(place, ": unknown key '", name, "'", did_you_mean(name, train_config_keys()));
}

// Stores `v` in key `k`, or throws naming `place`, the key, the expected and the given type.
// `raw` is the text after '=' for a flag (nullptr for files): a str key takes it verbatim when it
// is not itself a string expression (--out_dir=123 means the string '123').
void set_key(TrainConfig *cfg, const KeyDef &k, const py::Value &v, const std::string &place,
             const std::string *raw) {
  std::visit(
      [&](auto m) {
        using T = std::remove_reference_t<decltype(cfg->*m)>;
        if (k.none_is_default && std::holds_alternative<std::monostate>(v)) {
          cfg->*m = T{};
          return;
        }
        const char *expected = "a str";
        std::string hint;
        if constexpr (std::is_same_v<T, bool>) {
          if (auto *b = std::get_if<bool>(&v)) return void(cfg->*m = *b);
          expected = "True or False";
        } else if constexpr (std::is_same_v<T, long>) {
          if (auto *i = std::get_if<long>(&v)) return void(cfg->*m = *i);
          auto *s = std::get_if<std::string>(&v);
          if (k.auto_is_zero && s && *s == "auto") return void(cfg->*m = 0);
          expected = k.auto_is_zero ? "an int or 'auto'" : "an int";
          auto *d = std::get_if<double>(&v);
          if (d && std::isfinite(*d) && *d == std::trunc(*d) && std::fabs(*d) < 1e18)
            hint = cat(" (write ", long(*d), ")");
        } else if constexpr (std::is_same_v<T, double>) {
          if (auto *d = std::get_if<double>(&v)) return void(cfg->*m = *d);
          if (auto *i = std::get_if<long>(&v)) return void(cfg->*m = double(*i));
          expected = "a float";
        } else {
          if (auto *s = std::get_if<std::string>(&v)) return void(cfg->*m = *s);
          if (raw) return void(cfg->*m = *raw);
          hint = " (put it in quotes)";
        }
        std::string shown = py::repr(v); // a long value is shown by its start, not by pages
        if (shown.size() > 80)
          shown = cat(shown.substr(0, 60), "... (", shown.size(), " characters)");
        fail(place, ": ", k.name, " expects ", expected, k.none_is_default ? " or None" : "",
             ", got ", py::type_name(v), " ", shown, hint);
      },
      k.field);
}

bool in(const std::string &s, std::initializer_list<const char *> options) {
  for (const char *o : options)
    if (s == o) return true;
  return false;
}

} // namespace

void apply_recipe(TrainConfig &c, const std::string &place) {
  if (c.recipe != "nanogpt" && c.recipe != "modern")
    fail(place,
         ": recipe must be 'nanogpt' (GPT-2 and AdamW) or 'modern' (rotary, RMSNorm, "
         "QK-norm, ReLU^2, untied head, zero-init, soft-cap, Muon), got '",
         c.recipe, "'");
  const bool modern = c.recipe == "modern";
  c.rotary = modern;
  c.norm = modern ? "rmsnorm" : "layernorm";
  c.qk_norm = modern;
  c.mlp_activation = modern ? "relu2" : "gelu";
  c.tie_embeddings = !modern;
  c.zero_init_proj = modern;
  c.logit_softcap = modern ? 15.0 : 0.0; // modded-nanogpt: 30 in its 2024 records, then 15
  c.optimizer = modern ? "muon" : "adamw";
  // The embeddings and the untied head at rates of their own (modded-nanogpt's head rate; its
  // embeddings take 0.6 at 0.5M-token steps, 0.05 did better in bench/RESULTS.md's sweep).
  c.embedding_lr = modern ? 0.05 : 0.0;
  c.head_lr = modern ? 0.008 : 0.0;
}

std::string did_you_mean(const std::string &name, const std::vector<std::string> &candidates) {
  const std::string *best = nullptr;
  size_t best_d = SIZE_MAX;
  for (const std::string &c : candidates) {
    size_t d = edit_distance(name, c);
    if (d < best_d) best_d = d, best = &c;
  }
  if (!best || best_d > std::max<size_t>(2, name.size() / 3)) return "";
  return cat(" (did you mean '", *best, "'?)");
}

const std::vector<std::string> &train_config_keys() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const KeyDef &k : key_table())
      out.push_back(k.name);
    return out;
  }();
  return names;
}

TrainConfig load_train_config(const std::vector<std::string> &args,
                              std::vector<std::string> *notes) {
  TrainConfig cfg;
  std::set<std::string> given; // keys set by a file or a flag
  for (const std::string &arg : args) {
    if (arg.rfind("--", 0) != 0) {
      if (!file_exists(arg))
        fail("config file '", arg, "' not found",
             arg.find('=') != std::string::npos ? " (overrides are written --key=value)" : "");
      if (std::filesystem::is_directory(arg))
        fail("config file '", arg, "' is a directory (expected a nanoGPT .py config)");
      for (const py::Assignment &a : py::run(read_file(arg), arg, env_of(cfg))) {
        std::string place = cat(arg, ":", a.line);
        const KeyDef *k = find_key(a.name);
        if (!k) unknown_key(place, a.name);
        set_key(&cfg, *k, a.value, place, nullptr);
        if (std::string(k->name) == "recipe") apply_recipe(cfg, place);
        given.insert(k->name);
      }
      continue;
    }
    size_t eq = arg.find('=');
    std::string key = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    if (key.empty()) fail("'", arg, "': expected --key=value");
    std::string place = "--" + key;
    if (eq == std::string::npos)
      fail(place, ": expected --", key, "=value (a value is required, e.g. --", key,
           find_key(key) && std::holds_alternative<bool TrainConfig::*>(find_key(key)->field)
               ? "=True)"
               : "=...)");
    const KeyDef *k = find_key(key);
    if (!k) unknown_key(place, key);
    std::string raw = arg.substr(eq + 1);
    py::Value v;
    try {
      v = py::eval(raw, place);
    } catch (const Error &) {
      v = raw; // not a Python literal: a plain string, as nanoGPT's configurator does
    }
    set_key(&cfg, *k, v, place, &raw);
    if (std::string(k->name) == "recipe") apply_recipe(cfg, place);
    given.insert(k->name);
  }

  if (notes) {
    if (given.count("compile") && cfg.compile)
      notes->push_back("compile: finegpt's kernels are compiled ahead of time; ignored");
    if (cfg.wandb_log) {
      // A word for a shell command line: quoted unless it is plain.
      auto word = [](const std::string &w) {
        const bool plain =
            !w.empty() &&
            w.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
                                "KLMNOPQRSTUVWXYZ0123456789._/+:=@-") == std::string::npos;
        std::string q = "'";
        for (char c : w)
          q += c == '\'' ? std::string("'\\''") : std::string(1, c);
        return plain ? w : q + "'";
      };
      notes->push_back(cat("wandb_log: finegpt does not talk to Weights & Biases itself",
                           given.count("wandb_run_name") ? " (wandb_run_name unused)" : "",
                           "; to send it the run's TensorBoard event files: wandb sync "
                           "--sync-tensorboard --project ",
                           word(cfg.wandb_project), " ", word(cfg.out_dir)));
    }
    if (given.count("dtype") && cfg.device == "cpu" && cfg.dtype != "float32")
      notes->push_back("dtype: the CPU backend trains in float32");
    if (given.count("backend") && !in(cfg.backend, {"nccl", "gloo"}))
      notes->push_back(cat("backend: '", cfg.backend, "' ignored; finegpt runs one process"));
    if (given.count("tokens_per_step") && cfg.batch_size != 0)
      notes->push_back("tokens_per_step: used with batch_size = 'auto' only; ignored (the tokens "
                       "per step are gradient_accumulation_steps x batch_size x block_size)");
    if (cfg.attention == "cudnn" && cfg.device == "cpu")
      notes->push_back("attention = 'cudnn': a CUDA op; the CPU engine uses its own attention");
  }
  // More threads than the hardware has only slow training down.
  const long hardware = long(std::thread::hardware_concurrency());
  // (Past 32 bits it is left for validate() to refuse, not quietly made sensible.)
  if (hardware > 0 && cfg.threads > hardware && cfg.threads <= INT32_MAX) {
    if (notes)
      notes->push_back(cat("threads = ", cfg.threads, ": this machine has ", hardware,
                           " hardware threads; using ", hardware));
    cfg.threads = hardware;
  }
  return cfg;
}

void validate(const TrainConfig &c) {
  // The engine holds these in 32-bit integers; past that a value would wrap, not work.
  for (auto [name, v] : {std::pair<const char *, long>{"n_layer", c.n_layer},
                         {"n_head", c.n_head},
                         {"n_embd", c.n_embd},
                         {"block_size", c.block_size},
                         {"batch_size", c.batch_size},
                         {"gradient_accumulation_steps", c.gradient_accumulation_steps},
                         {"eval_iters", c.eval_iters},
                         {"vocab_size", c.vocab_size},
                         {"threads", c.threads}})
    if (v > std::numeric_limits<int32_t>::max())
      fail(name, " = ", v, " is past the largest value finegpt takes (",
           std::numeric_limits<int32_t>::max(), ")");
  auto at_least_0_l = [](const char *name, long v) {
    if (v < 0) fail(name, " must be >= 0 (got ", v, ")");
  };
  auto positive = [](const char *name, long v) {
    if (v < 1) fail(name, " must be at least 1 (got ", v, ")");
  };
  positive("n_layer", c.n_layer);
  positive("n_head", c.n_head);
  positive("n_embd", c.n_embd);
  positive("block_size", c.block_size);
  if (c.batch_size != 0) positive("batch_size", c.batch_size); // 0 is 'auto'
  if (c.recompute < 0 || c.recompute > 3)
    fail("recompute must be 0 (none), 1 (GELU), 2 (GELU + LayerNorm) or 3 (whole block), got ",
         c.recompute);
  if (c.zero_stage != 0 && c.zero_stage != 1) fail("zero_stage must be 0 or 1, got ", c.zero_stage);
  if (c.offload != "none" && c.offload != "optimizer")
    fail("offload must be 'none' or 'optimizer' (fp32 master weights and AdamW moments in pinned "
         "host memory, updated on the CPU), got '",
         c.offload, "'");
  if (!in(c.recipe, {"nanogpt", "modern"}))
    fail("recipe must be 'nanogpt' or 'modern' (got '", c.recipe, "')");
  if (!in(c.optimizer, {"adamw", "muon"}))
    fail("optimizer must be 'adamw' (nanoGPT's) or 'muon' (Muon for the hidden matrices, AdamW "
         "for the rest), got '",
         c.optimizer, "'");
  if (c.optimizer == "muon") {
    if (!(c.muon_lr > 0)) fail("muon_lr must be positive (got ", py::float_repr(c.muon_lr), ")");
    if (!(c.muon_momentum >= 0 && c.muon_momentum < 1))
      fail("muon_momentum must be in [0, 1) (got ", py::float_repr(c.muon_momentum), ")");
    if (!(c.learning_rate > 0))
      fail("optimizer = 'muon' needs learning_rate > 0: Muon's rate is muon_lr times the "
           "schedule's learning rate over learning_rate");
    if (c.offload != "none")
      fail("optimizer = 'muon' does not combine with offload = 'optimizer' yet (the host update "
           "is AdamW's): set offload = 'none' or optimizer = 'adamw'");
  }
  if (!(c.embedding_lr >= 0))
    fail("embedding_lr must be 0 or more (0 or None: learning_rate), got ",
         py::float_repr(c.embedding_lr));
  if (!(c.head_lr >= 0))
    fail("head_lr must be 0 or more (0 or None: learning_rate), got ", py::float_repr(c.head_lr));
  if (c.head_lr > 0 && c.tie_embeddings)
    fail("head_lr is the rate of an untied lm_head (tie_embeddings = False); with tied "
         "embeddings the head is wte, trained at embedding_lr",
         c.recipe == "modern" ? " (recipe = 'modern' sets head_lr: add head_lr = None)" : "");
  if ((c.embedding_lr > 0 || c.head_lr > 0) && !(c.learning_rate > 0))
    fail("embedding_lr and head_lr need learning_rate > 0: they are scheduled as learning_rate");
  if (c.attention != "finegpt" && c.attention != "cudnn")
    fail("attention must be 'finegpt' (our flash attention) or 'cudnn' (cuDNN's), got '",
         c.attention, "'");
  if (c.attention == "cudnn" && c.dropout > 0)
    fail("attention = 'cudnn' cannot apply dropout (cuDNN's masks are not finegpt's): set "
         "dropout = 0.0, or attention = 'finegpt'");
  at_least_0_l("tokens_per_step", c.tokens_per_step);
  if (!(c.dist_timeout > 0))
    fail("dist_timeout must be positive seconds (got ", c.dist_timeout, ")");
  positive("gradient_accumulation_steps", c.gradient_accumulation_steps);
  positive("eval_iters", c.eval_iters);
  positive("eval_interval", c.eval_interval);
  positive("log_interval", c.log_interval);
  if (c.n_embd % c.n_head != 0) {
    long lo = c.n_embd - c.n_embd % c.n_head, hi = lo + c.n_head;
    fail("n_embd (", c.n_embd, ") must be divisible by n_head (", c.n_head,
         "): try n_embd = ", lo > 0 ? cat(lo, " or ", hi) : cat(hi));
  }
  auto at_least_0 = [](const char *name, auto v, const char *what) {
    if (!(v >= 0)) fail(name, " must be >= 0", what, " (got ", v, ")");
  };
  at_least_0("max_iters", c.max_iters, "");
  at_least_0("warmup_iters", c.warmup_iters, "");
  at_least_0("learning_rate", c.learning_rate, "");
  at_least_0("min_lr", c.min_lr, "");
  at_least_0("weight_decay", c.weight_decay, "");
  at_least_0("grad_clip", c.grad_clip, " (0 disables clipping)");
  at_least_0("threads", c.threads, " (0 uses all cores)");
  at_least_0("vocab_size", c.vocab_size, " (0 takes it from the dataset)");
  auto unit = [](const char *name, double v) {
    if (!(v >= 0 && v < 1)) fail(name, " must be in [0, 1) (got ", py::float_repr(v), ")");
  };
  unit("dropout", c.dropout);
  unit("beta1", c.beta1);
  unit("beta2", c.beta2);
  // Every float key takes a finite number (learning_rate = inf passes the checks above): inf or
  // nan does not train, and a checkpoint would carry it on.
  for (const KeyDef &k : key_table())
    if (auto *m = std::get_if<double TrainConfig::*>(&k.field); m && !std::isfinite(c.**m))
      fail(k.name, " must be a finite number (got ", py::float_repr(c.**m), ")");
  if (c.decay_lr && c.lr_decay_iters < c.warmup_iters)
    fail("lr_decay_iters (", c.lr_decay_iters, ") must be >= warmup_iters (", c.warmup_iters,
         ") when decay_lr is True (raise lr_decay_iters or set decay_lr = False)");
  if (c.out_dir.empty()) fail("out_dir must not be empty");
  if (c.dataset.empty() && c.data_dir.empty())
    fail("dataset must not be empty (name a folder under data/, or set data_dir)");
  if (!in(c.data_order, {"random", "sequential"}))
    fail("data_order must be 'random' or 'sequential' (got '", c.data_order, "')");

  bool cuda_n = c.device.rfind("cuda:", 0) == 0 && c.device.size() > 5 &&
                c.device.find_first_not_of("0123456789", 5) == std::string::npos;
  if (c.device == "mps")
    fail("device='mps': Apple GPUs are not supported; use device='cpu' or 'cuda'");
  if (!in(c.device, {"cpu", "cuda"}) && !cuda_n)
    fail("device='", c.device, "' is not supported; use 'cpu', 'cuda' or 'cuda:N'");
  if (!in(c.dtype, {"float32", "bfloat16", "float16"}))
    fail("dtype must be 'float32', 'bfloat16' or 'float16' (got '", c.dtype, "')");

  if (!in(c.norm, {"layernorm", "rmsnorm"}))
    fail("norm must be 'layernorm' (GPT-2) or 'rmsnorm' (got '", c.norm, "')");
  if (!in(c.mlp_activation, {"gelu", "relu2"}))
    fail("mlp_activation must be 'gelu' (GPT-2's tanh GELU) or 'relu2' (relu(x)^2) (got '",
         c.mlp_activation, "')");
  if (!(c.logit_softcap >= 0))
    fail("logit_softcap must be >= 0 (0 turns it off; modded-nanogpt used 30, then 15), got ",
         py::float_repr(c.logit_softcap));
  if (c.rotary && (c.n_embd / c.n_head) % 2 != 0)
    fail("rotary = True needs an even head size (n_embd / n_head = ", c.n_embd / c.n_head, ")");
  // A pretrained GPT-2 (llm.c file, Hugging Face folder, gpt2* name) is the architecture the
  // options change: its weights would mean something else.
  if (c.init_from != "scratch" && c.init_from != "resume" && !c.init_from.empty()) {
    std::string on;
    auto add = [&](bool set, const char *what) {
      if (set) on += (on.empty() ? "" : ", ") + std::string(what);
    };
    add(c.rotary, "rotary = True");
    add(c.norm != "layernorm", "norm = 'rmsnorm'");
    add(c.qk_norm, "qk_norm = True");
    add(c.mlp_activation != "gelu", "mlp_activation = 'relu2'");
    add(!c.tie_embeddings, "tie_embeddings = False");
    add(c.zero_init_proj, "zero_init_proj = True");
    add(c.logit_softcap != 0, "logit_softcap > 0");
    if (!on.empty())
      fail("init_from = '", c.init_from,
           "' loads a GPT-2 (learned positions, LayerNorm, GELU, tied "
           "head), which ",
           on,
           " would change: train with init_from = 'scratch', or leave the "
           "architecture options at their defaults");
  }
  if (c.init_from.empty())
    fail("init_from must be 'scratch', 'resume', 'gpt2' (or gpt2-medium, -large, -xl), a Hugging "
         "Face model folder or the path of an llm.c model file (got '')");
}

std::vector<std::pair<std::string, std::string>> config_items(const TrainConfig &cfg) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const KeyDef &k : key_table()) {
    py::Value v = get(cfg, k);
    auto *i = std::get_if<long>(&v);
    // -9223372036854775808 is not a literal: its digits overflow before the minus applies.
    std::string text = i && *i == LONG_MIN ? "-9223372036854775807 - 1" : py::repr(v);
    if (k.auto_is_zero && i && *i == 0) text = "'auto'";
    out.emplace_back(k.name, text);
  }
  return out;
}

std::string to_python(const TrainConfig &cfg) {
  std::string out;
  for (const auto &[name, text] : config_items(cfg))
    out += cat(name, " = ", text, "\n");
  return out;
}

} // namespace finegpt
