// What the training loop (train/loop.cpp) needs of a model and its optimizer, so that one loop
// drives both engines: the CPU's (GPT + AdamW, fp32, data-parallel over a Communicator) and the
// CUDA one (CudaGPT: bf16 on one GPU, AdamW on fp32 master weights). Parameters and AdamW moments
// cross this interface as fp32 host arrays in param_tensors order, which is what checkpoints
// hold, so checkpoints of either engine resume on the other.
#pragma once
#include "dist/comm.h"
#include "model/gpt_cuda.h"
#include "model/plan.h"
#include "optim/optim.h"

#include <memory>
#include <string>
#include <vector>

namespace finegpt {

class Engine {
public:
  virtual ~Engine() = default;
  // "cpu with 8 threads" or "cuda (NVIDIA H100 80GB HBM3)": for the start-up line.
  virtual std::string describe() const = 0;
  virtual size_t num_params() const = 0;
  virtual void init_weights(uint64_t seed) = 0;
  // All parameters as fp32 (num_params floats); on CUDA the master weights.
  virtual void set_params(const float *host) = 0;
  // The fp32 parameters for a checkpoint, valid until the next call on the engine. Call
  // gather_moments() first, on every rank: under ZeRO-1 on CUDA it also gathers the parameters.
  virtual const float *params_for_save() = 0;
  virtual float forward(const int32_t *x, const int32_t *y, int B, int T) = 0;
  // Gradients of loss * loss_scale accumulate. `last_micro_step` marks the micro-batch before
  // step() (nanoGPT's require_backward_grad_sync): the CUDA engine sums gradients over ranks
  // during that backward; the CPU engine does it in step().
  virtual float forward_backward(const int32_t *x, const int32_t *y, int B, int T, float loss_scale,
                                 uint64_t dropout_key, bool last_micro_step) = 0;
  // Gradient exchange (CPU: over ranks), clipping, AdamW, zeroed gradients; the norm.
  virtual float step(float lr, float grad_clip) = 0;
  virtual double comm_seconds() const = 0;
  virtual int steps_taken() const = 0;
  virtual void set_steps_taken(int t) = 0;
  // Moments of every parameter (a collective under ZeRO-1).
  virtual void gather_moments(std::vector<float> &m, std::vector<float> &v) = 0;
  virtual void load_moments(const float *m, const float *v) = 0;
  // A line on memory after training ("" when there is nothing to say).
  virtual std::string memory_report() const = 0;
  // This device's peak FLOP/s for MFU (the catalog's bf16 figure for the GPU), 0 when unknown
  // (always on the CPU).
  virtual double peak_flops() const = 0;
};

// The CPU engine: GPT + AdamW over `comm`, exactly as before this interface.
std::unique_ptr<Engine> make_cpu_engine(const GPTConfig &model, int B, int T, AdamWConfig adam,
                                        Communicator &comm, int zero_stage, int threads);
// The CUDA engine on this rank's device (dist/nccl.h local_device_index): Error without a
// device. With more than one rank, gradients travel over NCCL, bootstrapped through `comm`
// (Error in a build without NCCL; a collective stuck for timeout_s is an Error). From `opt`:
// recompute, cudnn_attention and parallel.zero_stage (1 shards the optimizer state); the
// engine fills in the device and the communicators.
std::unique_ptr<Engine> make_cuda_engine(const GPTConfig &model, int B, int T, AdamWConfig adam,
                                         Communicator &comm, CudaModelOptions opt,
                                         double timeout_s);

} // namespace finegpt
