// finegpt bench: time full training steps (forward, backward, clip, AdamW) of a model shape on
// random tokens; one JSON line for scripts (bench/) and a human line. --device cuda times the
// CUDA engine and adds tokens/s, MFU against the catalog's bf16 peak for the
// driver's GPU name, and the device memory in use against the memory plan.
#include "backend/cuda_ops.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/rng.h"
#include "plan/gpus.h"
#include "plan/planner.h"
#include "train/engine.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>

namespace finegpt {

namespace {

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Milliseconds of each timed training step (after `warmup` untimed ones) on fresh random
// tokens; `step` runs one step on inputs and targets and returns when it is complete.
std::vector<double> time_steps(const GPTConfig &c, int B, int T, int steps, int warmup,
                               const std::function<void(const int32_t *, const int32_t *)> &step) {
  Rng rng(42);
  std::vector<int32_t> x(size_t(B) * T), y(x.size());
  std::vector<double> ms;
  for (int s = 0; s < warmup + steps; ++s) {
    for (auto &t : x)
      t = int32_t(rng.below(c.vocab_size));
    for (auto &t : y)
      t = int32_t(rng.below(c.vocab_size));
    auto t0 = std::chrono::steady_clock::now();
    step(x.data(), y.data());
    auto t1 = std::chrono::steady_clock::now();
    if (s >= warmup) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return ms;
}

// Training steps of the CUDA engine; the numbers of a GPU run (see the file comment).
int bench_cuda(const GPTConfig &c, int B, int T, ModelOptions opt, int steps, int warmup, int accum,
               bool offload) {
  if (cuda::device_count() == 0) { // as cuda_ops_bench: a skip, not a failure
    std::printf("no CUDA device: skipped (%s)\n", cuda::device_summary().c_str());
    return 0;
  }
  // Device memory in use before the model: the CUDA context (and any other process's memory).
  cuda::set_device(0);
  cuda::DeviceInfo d0;
  cuda::device_info(0, &d0);
  EngineOptions eo;
  eo.backend = Backend::CUDA, eo.model = opt;
  eo.adam.offload = offload;
  auto engine = make_engine(c, B, T, eo);
  Engine &model = *engine;
  model.init_weights(1337);
  model.synchronize();
  std::vector<double> ms =
      time_steps(c, B, T, steps, warmup, [&](const int32_t *x, const int32_t *y) {
        // `accum` micro-batches per optimizer step (the same tokens each: timing only).
        for (int a = 0; a < accum; ++a)
          model.forward_backward(x, y, B, T, 1.0f / float(accum), 0, a == accum - 1);
        model.step(1e-4f, 1.0f);
        model.synchronize();
      });
  const double median = median_of(ms);
  const double tok_s = double(B) * T * accum / (median / 1e3);
  // nanoGPT's estimate_mfu: 6 N + 12 L C T flops per token, N without position embeddings.
  const double flops = flops_per_token(c, T, 0) * tok_s;
  cuda::DeviceInfo d;
  cuda::device_info(0, &d);
  const double peak = peak_flops_of(d.name);
  std::string gpu = d.name;
  if (peak > 0)
    gpu = find_gpu(d.name).name;
  else
    std::printf("note: '%s' is not in the GPU catalog (finegpt plan --list): no MFU\n",
                d.name.c_str());
  // What the model and its training steps took (free memory before - after), against the plan;
  // the part outside the plan (cuBLASLt's handle and kernels, allocator rounding) is the fixed
  // overhead the planner adds.
  const double before = double(d0.total_bytes - d0.free_bytes);
  const double used = double(d.total_bytes - d.free_bytes);
  const double delta = used - before;
  const double planned = double(model.plan().total_bytes());
  std::printf("finegpt bench --device cuda: %s, %zu parameters, B=%d T=%d accum %d recompute %d, "
              "%s attention%s: median step %.2f ms, %.0f tokens/s, %.1f TFLOP/s, MFU %s\n",
              gpu.c_str(), num_parameters(c), B, T, accum, opt.recompute,
              opt.cudnn_attention ? "cudnn" : "finegpt", offload ? ", optimizer offload" : "",
              median, tok_s, flops / 1e12,
              peak > 0 ? cat(int(100.0 * flops / peak + 0.5), "%").c_str() : "unknown");
  // The allocator's own account (cuda::device_memory: what device_malloc held at its peak,
  // against FINEGPT_DEVICE_MEMORY_CAP when set) and the pinned host memory, against the plan.
  const cuda::DeviceMemory dm = cuda::device_memory();
  std::printf("allocator: peak %s held by device_malloc = plan %s x %.4f%s; pinned host %s = "
              "plan %s\n",
              format_bytes(double(dm.peak)).c_str(), format_bytes(planned).c_str(),
              double(dm.peak) / planned,
              dm.cap ? cat(" (cap ", format_bytes(double(dm.cap)), ")").c_str() : "",
              format_bytes(double(cuda::pinned_bytes())).c_str(),
              format_bytes(double(model.plan().host_bytes())).c_str());
  std::printf("memory: context %s; the model took %s = plan %s x %.4f (arenas %s; outside the "
              "plan %s); in use %s of %s\n",
              format_bytes(before).c_str(), format_bytes(delta).c_str(),
              format_bytes(planned).c_str(), delta / planned,
              format_bytes(double(model.allocated_bytes())).c_str(),
              format_bytes(delta - planned).c_str(), format_bytes(used).c_str(),
              format_bytes(double(d.total_bytes)).c_str());
  std::printf("{\"impl\": \"finegpt-cuda\", \"gpu\": \"%s\", \"B\": %d, \"T\": %d, "
              "\"recompute\": %d, \"accum\": %d, \"offload\": %s, \"step_ms_median\": %.3f, "
              "\"tokens_per_s\": %.0f, \"tflops\": %.2f, \"mfu\": %.4f, \"context_bytes\": %.0f, "
              "\"model_bytes\": %.0f, \"plan_bytes\": %.0f, \"allocator_peak_bytes\": %zu, "
              "\"pinned_bytes\": %zu, \"plan_host_bytes\": %zu}\n",
              gpu.c_str(), B, T, opt.recompute, accum, offload ? "true" : "false", median, tok_s,
              flops / 1e12, peak > 0 ? flops / peak : 0.0, before, delta, planned, dm.peak,
              cuda::pinned_bytes(), model.plan().host_bytes());
  return 0;
}

} // namespace

int cmd_bench(const Args &args) {
  Options o;
  if (!o.parse(args,
               {{"n_layer", "12", "layers"},
                {"n_head", "12", "heads"},
                {"n_embd", "768", "channels"},
                {"vocab_size", "50257", "vocabulary (padded to a multiple of 64)"},
                {"block_size", "1024", "position embeddings"},
                {"bias", "true", "biases in Linear and LayerNorm"},
                {"batch_size", "4", "B"},
                {"seq_len", "64", "T"},
                {"steps", "5", "timed steps (the median is reported)"},
                {"warmup", "1", "untimed steps first"},
                {"threads", "0", "CPU threads (0 = all cores)"},
                {"device", "cpu", "cpu | cuda"},
                {"recompute", "0", "activation recompute 0-3 (cuda)"},
                {"attention", "finegpt", "finegpt | cudnn (cuda)"},
                {"accum", "1", "micro-batches per optimizer step (cuda)"},
                {"offload", "none", "none | optimizer: AdamW's state on the host (cuda)"}},
               "usage: finegpt bench [options]\n\nTimes training steps of a GPT shape "
               "(default: GPT-2 124M at B=4, T=64)."))
    return 0;
  GPTConfig c;
  c.n_layer = int(o.integer("n_layer"));
  c.n_head = int(o.integer("n_head"));
  c.n_embd = int(o.integer("n_embd"));
  c.vocab_size = int(o.integer("vocab_size"));
  c.padded_vocab_size = pad_vocab(c.vocab_size);
  c.block_size = int(o.integer("block_size"));
  c.bias = o.str("bias") == "true" || o.str("bias") == "True" || o.str("bias") == "1";
  const int B = int(o.integer("batch_size")), T = int(o.integer("seq_len"));
  const int steps = int(o.integer("steps")), warmup = int(o.integer("warmup"));
  FINEGPT_CHECK(steps > 0 && warmup >= 0, "--steps must be positive and --warmup >= 0");
  FINEGPT_CHECK(o.str("device") == "cpu" || o.str("device") == "cuda",
                "--device must be cpu or cuda (got '", o.str("device"), "')");
  const int recompute = int(o.integer("recompute"));
  FINEGPT_CHECK(recompute >= 0 && recompute <= 3, "--recompute must be 0..3 (got ", recompute, ")");
  const std::string attention = o.str("attention");
  FINEGPT_CHECK(attention == "finegpt" || attention == "cudnn",
                "--attention must be finegpt or cudnn (got '", attention, "')");
  const int accum = int(o.integer("accum"));
  FINEGPT_CHECK(accum >= 1 && accum <= 4096, "--accum must be in 1..4096 (got ", accum, ")");
  const std::string offload = o.str("offload");
  FINEGPT_CHECK(offload == "none" || offload == "optimizer",
                "--offload must be none or optimizer (got '", offload, "')");
  if (o.str("device") == "cuda")
    return bench_cuda(c, B, T, {.recompute = recompute, .cudnn_attention = attention == "cudnn"},
                      steps, warmup, accum, offload == "optimizer");
  FINEGPT_CHECK(accum == 1 && offload == "none", "--accum and --offload are for --device cuda");
  FINEGPT_CHECK(recompute == 0, "--recompute is for --device cuda (the CPU engine keeps every "
                                "activation)");
  FINEGPT_CHECK(attention == "finegpt", "--attention cudnn is for --device cuda");
  const int threads = o.threads();
  EngineOptions eo;
  eo.threads = threads;
  auto engine = make_engine(c, B, T, eo);
  Engine &model = *engine;
  model.init_weights(1337);
  std::vector<double> ms =
      time_steps(c, B, T, steps, warmup, [&](const int32_t *x, const int32_t *y) {
        model.forward_backward(x, y, B, T, 1.0f, 0, true);
        model.step(1e-4f, 1.0f);
      });
  const double median = median_of(ms);
  std::printf("finegpt bench: %zu parameters, B=%d T=%d, %d threads: median step %.1f ms\n",
              num_parameters(c), B, T, threads, median);
  std::string list;
  for (double v : ms)
    list += (list.empty() ? "" : ", ") + std::to_string(v);
  std::printf("{\"impl\": \"finegpt\", \"threads\": %d, \"step_ms_median\": %.3f, \"step_ms\": "
              "[%s]}\n",
              threads, median, list.c_str());
  return 0;
}

} // namespace finegpt
