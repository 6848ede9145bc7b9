// The engine seam: a model, its optimizer and its gradient exchange behind one interface, built
// by one factory, so that every command (train, eval, sample, bench) drives the CPU engine
// (Model<CpuBackend>: fp32, data-parallel over MPI) and the CUDA engine (Model<CudaBackend>: bf16
// on this rank's GPU, NCCL between ranks) with the same code. Parameters and AdamW moments cross
// it as fp32 host arrays in param_tensors order, which is what checkpoints hold, so checkpoints
// of either engine resume on the other.
#pragma once
#include "dist/comm.h"
#include "model/backends.h"
#include "model/generate.h"
#include "model/plan.h"
#include "optim/optim.h"

#include <memory>
#include <string>
#include <vector>

namespace finegpt {

struct EngineOptions {
  Backend backend = Backend::CPU;
  ModelOptions model{};   // recompute, cuDNN attention (CUDA); the engine picks the device
  OptimConfig adam{};     // adam.offload: the optimizer state in pinned host memory (CUDA)
  bool training = true;   // with the optimizer (and its memory); eval and sample run without
  int zero_stage = 0;     // 1: optimizer state sharded over the ranks (ZeRO-1)
  int threads = 1;        // CPU threads in use (for describe())
  double timeout_s = 300; // a collective stuck this long is an Error (dist_timeout)
};

class Engine {
public:
  virtual ~Engine() = default;
  // "cpu with 8 threads" or "cuda (NVIDIA H100 80GB HBM3, bfloat16)": for the start-up line.
  virtual std::string describe() const = 0;
  virtual const GPTConfig &config() const = 0;
  // Everything this engine allocated, as the memory plan lists it (model and optimizer).
  virtual const MemoryPlan &plan() const = 0;
  virtual size_t allocated_bytes() const = 0;      // the engine's memory (the GPU's on CUDA)
  virtual size_t allocated_host_bytes() const = 0; // pinned host memory (optimizer offload)
  virtual size_t num_params() const = 0;
  virtual void init_weights(uint64_t seed) = 0;
  // All parameters as fp32 (num_params floats): the model's, and the master weights.
  virtual void set_params(const float *host) = 0;
  // The fp32 parameters for a checkpoint, valid until the next call on the engine. Call
  // gather_moments() first, on every rank: under ZeRO-1 on CUDA it also gathers the parameters.
  virtual const float *params_for_save() = 0;
  // The mean loss over (B,T).
  virtual float forward(const int32_t *x, const int32_t *y, int B, int T) = 0;
  // The loss at each of the B*T positions of the last forward or forward_backward (fp32, on the
  // host, valid until the next call): what scores a completion (eval --hellaswag).
  virtual const float *position_losses() const = 0;
  // Generation over S sequences with the model's KV cache (valid while the engine lives).
  virtual std::unique_ptr<LogitSource> generator(int S) = 0;
  // Gradients of loss * loss_scale accumulate. `last_micro_step` marks the micro-batch before
  // step() (nanoGPT's require_backward_grad_sync): its backward hands each layer's finished
  // gradients to the exchange.
  virtual float forward_backward(const int32_t *x, const int32_t *y, int B, int T, float loss_scale,
                                 uint64_t dropout_key, bool last_micro_step) = 0;
  // Gradient exchange, clipping, AdamW, zeroed gradients; the norm. The calls from here to
  // load_moments need an engine made for training.
  virtual float step(float lr, float grad_clip) = 0;
  // Waits for work queued on the device (timing); nothing on the CPU.
  virtual void synchronize() = 0;
  // Seconds the last step waited on gradient and parameter collectives (0 on one rank).
  virtual double comm_seconds() const = 0;
  virtual int steps_taken() const = 0;
  virtual void set_steps_taken(int t) = 0;
  // Moments of every parameter (a collective under ZeRO-1).
  virtual void gather_moments(std::vector<float> &m, std::vector<float> &v) = 0;
  virtual void load_moments(const float *m, const float *v) = 0;
  // A line on device memory after training ("" on the CPU).
  virtual std::string memory_report() const = 0;
  // This device's peak FLOP/s for MFU (the catalog's bf16 figure for the GPU), 0 when unknown
  // (always on the CPU).
  virtual double peak_flops() const = 0;
};

// The engine for micro-batches up to (B, T) on this rank of `comm`: the CPU's, or the CUDA one on
// this rank's device (dist/nccl.h local_device_index; an Error without a device). With more than
// one rank, gradients travel over MPI (CPU) or NCCL bootstrapped through `comm` (CUDA; an Error
// in a build without NCCL).
std::unique_ptr<Engine> make_engine(const GPTConfig &model, int B, int T, Communicator &comm,
                                    const EngineOptions &opt);
// The same in one process (eval, sample, bench).
std::unique_ptr<Engine> make_engine(const GPTConfig &model, int B, int T, const EngineOptions &opt);

// What this build offers between processes, for `finegpt info`: "mpi (...); NCCL: ...".
std::string parallel_description();

} // namespace finegpt
