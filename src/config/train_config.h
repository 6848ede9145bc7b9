// TrainConfig: every key of nanoGPT's train.py with its default and meaning, plus finegpt's own
// keys; and loading it from nanoGPT config files and --key=value overrides (config.cpp).
// The config language itself (a Python subset) lives in pyconfig.h.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace finegpt {

struct TrainConfig {
  // --- nanoGPT train.py keys, same defaults (REFERENCE.md 2) ---
  std::string out_dir = "out";
  long eval_interval = 2000;
  long log_interval = 1;
  long eval_iters = 200;
  bool eval_only = false;
  bool always_save_checkpoint = true;
  // 'scratch' | 'resume' | 'gpt2*' (hub cache) | a Hugging Face folder | an llm.c gpt2_*.bin
  std::string init_from = "scratch";
  bool wandb_log = false; // accepted; finegpt writes out_dir/metrics.jsonl instead
  std::string wandb_project = "owt";
  std::string wandb_run_name = "gpt2";
  std::string dataset = "openwebtext";
  long gradient_accumulation_steps = 5 * 8;
  long batch_size = 12; // 'auto' (stored as 0): the largest micro-batch that fits in memory
  long block_size = 1024;
  long n_layer = 12;
  long n_head = 12;
  long n_embd = 768;
  double dropout = 0.0;
  bool bias = false;
  double learning_rate = 6e-4;
  long max_iters = 600000;
  double weight_decay = 1e-1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double grad_clip = 1.0;
  bool decay_lr = true;
  long warmup_iters = 2000;
  long lr_decay_iters = 600000;
  double min_lr = 6e-5;
  std::string backend = "nccl"; // accepted; single process here (MPI/NCCL: issue 6)
  std::string device = "cuda";  // 'cpu' | 'cuda' (falls back to cpu, with a note, without CUDA)
  std::string dtype = "bfloat16";
  bool compile = true; // accepted; finegpt's kernels are compiled ahead of time

  // --- finegpt's own keys ---
  long seed = 1337;
  std::string data_dir = "";         // default (also None): data/<dataset>
  std::string data_order = "random"; // 'random' (nanoGPT) | 'sequential' (llm.c)
  long threads = 0;                  // 0: all cores
  long vocab_size = 0;               // 0 (also None): from the dataset's meta.json, else 50257
  // The recipe family, a preset applied where it is set (keys after it override its values):
  // 'nanogpt' (GPT-2 and AdamW, the defaults) or 'modern' (apply_recipe).
  std::string recipe = "nanogpt";
  // Architecture options (finegpt's; all off = GPT-2, so nanoGPT configs keep their meaning).
  bool rotary = false;                 // rotary position embeddings on q, k; no learned wpe
  std::string norm = "layernorm";      // 'layernorm' | 'rmsnorm' (a gain, no bias)
  bool qk_norm = false;                // RMSNorm of each head's q and k (parameterless)
  std::string mlp_activation = "gelu"; // 'gelu' (tanh) | 'relu2' (relu(x)^2)
  bool tie_embeddings = true;          // False: a separate lm_head
  bool zero_init_proj = false;         // attn/mlp c_proj (and an untied lm_head) start at 0
  double logit_softcap = 0.0;          // > 0: logits = cap * tanh(logits / cap); 0 off
  std::string optimizer = "adamw";     // 'adamw' | 'muon' (Muon for the hidden matrices)
  double muon_lr = 0.02;               // Muon's peak learning rate (scheduled as learning_rate)
  double muon_momentum = 0.95;         // Muon's Nesterov momentum
  // Peak rates of their own (scheduled as learning_rate; 0 or None: learning_rate) for the
  // embeddings (wte, and wpe where it exists) and for an untied lm_head, as modded-nanogpt gives
  // them; AdamW trains both.
  double embedding_lr = 0.0;
  double head_lr = 0.0;
  long recompute = 0;        // activation recompute: 0 none, 1 GELU, 2 + LayerNorm, 3 whole block
  long zero_stage = 0;       // 1: optimizer state sharded over ranks (issue 6)
  double dist_timeout = 300; // seconds a collective may wait before the run is declared dead
  std::string attention = "finegpt"; // CUDA attention: 'finegpt' (ours) | 'cudnn' (cuDNN SDPA)
  std::string offload = "none";      // 'optimizer': fp32 master weights and AdamW moments in pinned
                                     // host memory, updated on the CPU (CUDA engine)
  long tokens_per_step = 0;          // batch_size='auto' keeps this many tokens per optimizer step
                            // (0: batch_size x block_size x gradient_accumulation_steps, or
                            // 524288 with 'auto')

  friend bool operator==(const TrainConfig &, const TrainConfig &) = default;
};

// Loads a TrainConfig from train's arguments, processed left to right as nanoGPT's
// configurator does: an argument without "--" is a config file, "--key=value" overrides one key.
// Errors (Error) name file:line or the flag, and suggest the closest key for unknown ones.
// Types: a value must have its key's type, except that an int is accepted for a float, None for
// data_dir and vocab_size (their automatic defaults), and any text for a str key given as a flag
// (--out_dir=123 is the string '123'). Config files may refer to keys (their current values) and
// to names they assigned earlier. It does not call validate().
// `notes` (may be null) receives one line per key that was set to a value that matters in
// nanoGPT but means nothing here (compile=True, wandb_log=True, dtype on the CPU, backend).
TrainConfig load_train_config(const std::vector<std::string> &args,
                              std::vector<std::string> *notes);

// Checks the values against each other (n_embd % n_head, positive sizes, known enums, ...);
// throws Error with one line naming the key and the fix.
void validate(const TrainConfig &cfg);

// Sets the keys of cfg.recipe's family. 'nanogpt': the architecture options off and AdamW (the
// defaults). 'modern' (modded-nanogpt's changes that finegpt has): rotary, RMSNorm, QK-norm,
// ReLU^2, an untied head, zero-initialised projections, logit_softcap 15, Muon for the hidden
// matrices, and rates of their own for the embeddings (0.05) and the head (0.008). Error naming
// `place` for another name.
void apply_recipe(TrainConfig &cfg, const std::string &place = "recipe");

// "key = value" lines in nanoGPT syntax (strings quoted, True/False), in declaration order;
// a config file that load_train_config reads back to the same TrainConfig.
std::string to_python(const TrainConfig &cfg);
// The same as (key, value in Python syntax) pairs.
std::vector<std::pair<std::string, std::string>> config_items(const TrainConfig &cfg);

// Every key name, in declaration order.
const std::vector<std::string> &train_config_keys();

// " (did you mean 'learning_rate'?)" for the candidate closest to `name` by edit distance, or ""
// when none is close; for messages about unknown keys and flags.
std::string did_you_mean(const std::string &name, const std::vector<std::string> &candidates);

} // namespace finegpt
