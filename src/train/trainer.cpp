// nanoGPT's train.py loop on finegpt's model (see trainer.h).
#include "train/trainer.h"

#include "backend/cuda_ops.h"
#include "config/pyconfig.h"
#include "core/error.h"
#include "core/file.h"
#include "core/rng.h"
#include "core/threads.h"
#include "data/prepare.h"
#include "data/tokens.h"
#include "dist/nccl.h"
#include "io/checkpoint.h"
#include "io/hf_model.h"
#include "io/model_load.h"
#include "model/model.h"
#include "optim/optim.h"

#include "plan/gpus.h"

#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sys/resource.h>

namespace finegpt {

namespace {

constexpr int kGpt2Vocab = 50257;

std::string ckpt_path(const TrainConfig &cfg) { return cfg.out_dir + "/ckpt.bin"; }

} // namespace

void set_architecture(GPTConfig &m, const TrainConfig &cfg) {
  m.rotary = cfg.rotary;
  m.rmsnorm = cfg.norm == "rmsnorm";
  m.qk_norm = cfg.qk_norm;
  m.relu2 = cfg.mlp_activation == "relu2";
  m.tie_embeddings = cfg.tie_embeddings;
  m.zero_init_proj = cfg.zero_init_proj;
  m.logit_softcap = float(cfg.logit_softcap);
}

std::unique_ptr<Communicator> run_communicator(const TrainConfig &cfg, bool dry_run) {
  return dry_run ? make_single_communicator() : make_communicator(cfg.dist_timeout);
}

void choose_engine(const TrainConfig &cfg, RunSetup &setup, bool dry_run) {
  const bool wants_cuda = cfg.device.rfind("cuda", 0) == 0;
  // A CUDA device trains; without one a dry run still shows the GPU plan.
  const bool on_gpu = wants_cuda && cuda::device_count() > 0;
  if (on_gpu) {
    FINEGPT_CHECK(cfg.dtype != "float32",
                  "dtype='float32' on device='cuda' is not implemented "
                  "yet (the CUDA engine trains in bfloat16 mixed precision): use dtype = "
                  "'bfloat16', or device = 'cpu'");
    FINEGPT_CHECK(setup.world == 1 || nccl_compiled_in(), "device='cuda' on ", setup.world,
                  " ranks needs NCCL, and this build has none: use device = 'cpu' under MPI, "
                  "or build with NCCL");
  }
  setup.backend = wants_cuda && (dry_run || on_gpu) ? Backend::CUDA : Backend::CPU;
  if (setup.backend == Backend::CPU && cfg.offload == "optimizer")
    setup.notes.push_back("offload = 'optimizer': nothing to offload on the CPU engine (its "
                          "optimizer state is in host memory already); training as normal");
  if (wants_cuda && !on_gpu)
    setup.notes.push_back("device='" + cfg.device + "': " +
                          (cuda::compiled() ? "no CUDA device here (" + cuda::device_summary() + ")"
                                            : std::string("this build has no CUDA backend")) +
                          "; " +
                          (dry_run ? "the plan above is the CUDA engine's; training would run "
                                     "on the cpu"
                                   : "training on the cpu"));
}

RunSetup resolve_run(const TrainConfig &cfg) {
  RunSetup s;
  s.data_dir = cfg.data_dir.empty() ? "data/" + cfg.dataset : cfg.data_dir;
  if (cfg.init_from == "resume") {
    s.resume = true;
    s.init_path = ckpt_path(cfg);
    if (!file_exists(s.init_path))
      fail("init_from='resume' but ", s.init_path, " does not exist (train once first)");
    CheckpointState st = read_checkpoint_state(s.init_path);
    if (st.optimizer != cfg.optimizer)
      fail("init_from='resume': ", s.init_path, " was trained with optimizer = '", st.optimizer,
           "', and its state means nothing to '", cfg.optimizer, "': set optimizer = '",
           st.optimizer, "' to resume it");
    s.model = st.model;
    s.model.dropout = float(cfg.dropout);
    GPTConfig asked = st.model;
    set_architecture(asked, cfg);
    if (architecture_options(asked, true) != architecture_options(st.model, true))
      s.notes.push_back("init_from='resume': the architecture comes from the checkpoint (" +
                        (is_gpt2_architecture(st.model) && !st.model.zero_init_proj
                             ? std::string("GPT-2")
                             : architecture_options(st.model, true)) +
                        ")");
    if (cfg.n_layer != st.model.n_layer || cfg.n_embd != st.model.n_embd ||
        cfg.n_head != st.model.n_head || cfg.block_size != st.model.block_size)
      s.notes.push_back("init_from='resume': the model shape comes from the checkpoint");
    return s;
  }
  if (cfg.init_from != "scratch") { // a Hugging Face GPT-2 (a name or a folder), or an llm.c file
    // nanoGPT's from_pretrained: the shape, bias and vocabulary come from the model, only
    // dropout from the config, and a smaller block_size crops the position embeddings.
    const std::string hf = hf_model_folder(cfg.init_from);
    s.init_path = hf.empty() ? cfg.init_from : hf;
    GPTConfig file = hf.empty() ? read_llmc_header(s.init_path) : read_hf_config(hf);
    s.model = file;
    s.model.dropout = float(cfg.dropout);
    FINEGPT_CHECK(cfg.block_size <= file.block_size, "block_size ", cfg.block_size,
                  " is larger than the model's ", file.block_size, " positions (", s.init_path,
                  ")");
    s.model.block_size = int(cfg.block_size); // cropped as nanoGPT's crop_block_size
    s.notes.push_back(cat("init_from: model shape from ", s.init_path, " (", file.n_layer,
                          " layers, ", file.n_head, " heads, ", file.n_embd,
                          " channels, vocabulary ", file.vocab_size, ", bias)"));
    return s;
  }
  GPTConfig &m = s.model;
  m.n_layer = int(cfg.n_layer);
  m.n_head = int(cfg.n_head);
  m.n_embd = int(cfg.n_embd);
  m.block_size = int(cfg.block_size);
  m.bias = cfg.bias;
  m.dropout = float(cfg.dropout);
  set_architecture(m, cfg);
  if (cfg.vocab_size > 0) {
    m.vocab_size = int(cfg.vocab_size);
  } else if (file_exists(s.data_dir + "/meta.json")) {
    m.vocab_size = dataset_vocab_size(s.data_dir + "/meta.json");
  } else {
    m.vocab_size = kGpt2Vocab;
  }
  m.padded_vocab_size = pad_vocab(m.vocab_size);
  check_gpt_config(m);
  return s;
}

MemoryPlan run_plan(const TrainConfig &cfg, const RunSetup &setup, long batch_size) {
  PlanOptions o;
  o.zero_stage = int(cfg.zero_stage), o.world = setup.world, o.recompute = int(cfg.recompute);
  o.cudnn_attention = setup.backend == Backend::CUDA && cfg.attention == "cudnn";
  o.backend = setup.backend;
  if (setup.backend == Backend::CUDA && cfg.dtype != "float32") o.precision = Precision::BF16;
  o.offload = setup.backend == Backend::CUDA && cfg.offload == "optimizer";
  o.muon = cfg.optimizer == "muon";
  return plan_memory(setup.model, int(batch_size), int(cfg.block_size), o);
}

double host_memory_available() {
  if (const char *env = std::getenv("FINEGPT_HOST_MEMORY"))
    return parse_vram_gib(env) * 1024.0 * 1024.0 * 1024.0;
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kb = 0;
  while (in >> key >> kb) {
    if (key == "MemAvailable:") return kb * 1024.0;
    in.ignore(256, '\n');
  }
  return 0; // unknown: no check
}

namespace {
double proc_status_bytes(const char *field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with(field))
      return std::strtod(line.c_str() + std::strlen(field), nullptr) * 1024.0;
  return 0;
}
} // namespace

double resident_bytes() { return proc_status_bytes("VmRSS:"); }

double pinned_memory_limit() {
  struct rlimit r {};
  if (getrlimit(RLIMIT_MEMLOCK, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return 0;
  return double(r.rlim_cur);
}

int ranks_on_this_node() {
  for (const char *name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"})
    if (const char *v = std::getenv(name)) {
      const long n = std::strtol(v, nullptr, 10);
      if (n >= 1 && n <= 4096) return int(n);
    }
  return 1;
}

void check_host_memory(const MemoryPlan &plan, std::vector<std::string> &notes) {
  // Every rank on this machine pins its own shard.
  const int local = ranks_on_this_node();
  const double need = double(plan.host_bytes()) * local;
  if (need == 0) return;
  const std::string ranks =
      local > 1 ? cat(" (", local, " ranks on this node x ", format_bytes(need / local), ")") : "";
  const double avail = host_memory_available();
  if (avail > 0 && need > avail)
    fail("offload = 'optimizer' needs ", format_bytes(need), ranks,
         " of pinned host memory (master weights, AdamW moments and a staging buffer) but the "
         "host has ",
         format_bytes(avail),
         " available (MemAvailable, or FINEGPT_HOST_MEMORY): use a machine with more memory, "
         "zero_stage = 1 over more GPUs, or offload = 'none'");
  notes.push_back(cat("host memory: offload pins ", format_bytes(need), ranks, " of ",
                      avail > 0 ? format_bytes(avail) : std::string("(unknown)"), " available"));
  // cudaHostAlloc's pages are pinned by the driver, which does not charge them to
  // RLIMIT_MEMLOCK on Linux; a limit below the need is worth a word, not a refusal.
  const double lock = pinned_memory_limit();
  if (lock > 0 && lock < need)
    notes.push_back(cat("host memory: RLIMIT_MEMLOCK (ulimit -l) is ", format_bytes(lock),
                        ", below the ", format_bytes(need),
                        " offload pins; the CUDA driver's pinned allocations do not count "
                        "against it, but raise it if cudaHostAlloc fails"));
}
double peak_resident_bytes() { return proc_status_bytes("VmHWM:"); }

void fit_to_memory(TrainConfig &cfg, RunSetup &setup, bool dry_run) {
  // Host memory bounds the CPU engine, the device's free memory the CUDA engine; a CUDA plan
  // shown on a machine without a device has nothing to check against.
  cuda::DeviceInfo dev;
  const double avail = setup.backend == Backend::CPU                   ? host_memory_available()
                       : cuda::device_info(local_device_index(), &dev) ? double(dev.free_bytes)
                                                                       : 0.0;
  const int T = int(cfg.block_size);
  auto need = [&](long B) { return double(run_plan(cfg, setup, B).total_bytes()); };
  // Offload: the pinned host memory (it does not depend on the micro-batch) first.
  if (setup.backend == Backend::CUDA && cfg.offload == "optimizer") {
    try {
      check_host_memory(run_plan(cfg, setup, std::max(1L, cfg.batch_size)), setup.notes);
    } catch (const Error &e) {
      if (!dry_run) throw;
      setup.notes.push_back(cat("does not fit: ", e.what()));
    }
  }
  if (cfg.batch_size == 0) {
    const long target = cfg.tokens_per_step ? cfg.tokens_per_step : 524288;
    FINEGPT_CHECK(target % T == 0, "batch_size='auto': tokens_per_step (", target,
                  ") must be a multiple of block_size (", T, ")");
    long B = 1;
    while (B * 2 <= std::min(64L, target / T) && (target / T) % (B * 2) == 0 &&
           (avail == 0 || need(B * 2) <= avail))
      B *= 2;
    FINEGPT_CHECK(avail == 0 || need(B) <= avail, "batch_size='auto': even micro-batch 1 needs ",
                  format_bytes(need(1)), " but ", format_bytes(avail),
                  " is available (choose a smaller model)");
    cfg.batch_size = B;
    cfg.gradient_accumulation_steps = target / (B * T);
    setup.notes.push_back(cat("batch_size='auto': micro-batch ", B, " x ",
                              cfg.gradient_accumulation_steps, " accumulation steps = ", target,
                              " tokens per step"));
  }
  if (avail == 0) {
    if (setup.backend == Backend::CUDA)
      setup.notes.push_back("memory: no CUDA device here to check against (finegpt plan --check "
                            "CONFIG --gpu NAME says whether it fits a GPU)");
    return;
  }
  const double n = need(cfg.batch_size);
  if (n > avail) {
    const long tokens = cfg.batch_size * cfg.gradient_accumulation_steps;
    std::string advice = "choose a smaller model";
    for (long B = cfg.batch_size / 2; B >= 1; B /= 2)
      if (cfg.batch_size % B == 0 && need(B) <= avail) {
        advice = cat("try batch_size = ", B, ", gradient_accumulation_steps = ", tokens / B,
                     " (same tokens per step, needs ", format_bytes(need(B)), ")");
        break;
      }
    std::string msg = cat("the run needs ", format_bytes(n), " of memory but ", format_bytes(avail),
                          " is available: ", advice);
    if (!dry_run) fail(msg);
    setup.notes.push_back("does not fit: " + msg);
    return;
  }
  setup.notes.push_back(
      cat("memory: the plan takes ", format_bytes(n), " of ", format_bytes(avail), " available"));
}

void print_run_summary(const TrainConfig &cfg, const RunSetup &s) {
  std::printf("# configuration\n%s", to_python(cfg).c_str());
  const GPTConfig &m = s.model;
  const size_t P = num_parameters_unpadded(m), Pp = num_parameters(m);
  const size_t wpe = param_tensors(m)[WPE].count; // 0 with rotary
  const std::string arch = architecture_options(m, true);
  std::printf("# model: %d layers, %d heads, %d channels, block %d, vocab %d (padded %d), "
              "bias %s%s%s\n",
              m.n_layer, m.n_head, m.n_embd, m.block_size, m.vocab_size, m.padded_vocab_size,
              m.bias ? "on" : "off", arch.empty() ? "" : "; ", arch.c_str());
  std::printf("# parameters: %zu (%.2fM; %.2fM without position embeddings; %zu stored with "
              "vocabulary padding)\n",
              P, P / 1e6, (P - wpe) / 1e6, Pp);
  const double tokens_per_step =
      double(cfg.gradient_accumulation_steps) * double(cfg.batch_size) * double(cfg.block_size);
  std::printf("# tokens per optimizer step: %.0f (%ld accumulation x %ld batch x %ld block); "
              "total over %ld iterations: %.3g\n",
              tokens_per_step, cfg.gradient_accumulation_steps, cfg.batch_size, cfg.block_size,
              cfg.max_iters, tokens_per_step * double(cfg.max_iters + 1));
  std::string rates; // the parameter groups with rates of their own
  if (cfg.embedding_lr > 0)
    rates += cat("; embeddings at embedding_lr ", py::float_repr(cfg.embedding_lr));
  if (cfg.head_lr > 0) rates += cat("; lm_head at head_lr ", py::float_repr(cfg.head_lr));
  if (cfg.optimizer == "muon")
    std::printf("# optimizer: muon (Muon for the %d layers' qkv, attention projection, fc and fc "
                "projection matrices at muon_lr %s, momentum %s; AdamW for the rest at "
                "learning_rate %s%s)\n",
                m.n_layer, py::float_repr(cfg.muon_lr).c_str(),
                py::float_repr(cfg.muon_momentum).c_str(),
                py::float_repr(cfg.learning_rate).c_str(), rates.c_str());
  else
    std::printf("# optimizer: adamw (at learning_rate %s%s)\n",
                py::float_repr(cfg.learning_rate).c_str(), rates.c_str());
  MemoryPlan plan = run_plan(cfg, s, cfg.batch_size);
  std::printf("# memory plan (%s, %s, micro-batch %ld x %ld, recompute %ld, zero_stage %ld, "
              "%d rank%s%s):\n%s",
              backend_name(s.backend),
              s.backend == Backend::CPU || cfg.dtype == "float32" ? "float32"
                                                                  : "bfloat16 mixed precision",
              cfg.batch_size, cfg.block_size, cfg.recompute, cfg.zero_stage, s.world,
              s.world > 1 ? "s" : "", plan.host_bytes() ? ", optimizer offload" : "",
              format_plan(plan).c_str());
  for (const auto &n : s.notes)
    std::printf("note: %s\n", n.c_str());
  std::fflush(stdout);
}

} // namespace finegpt
