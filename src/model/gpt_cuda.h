// The GPT model on a CUDA GPU in bf16 mixed precision: model/gpt.cpp's forward and backward
// mirrored op for op against the CUDA seam (backend/cuda_ops.h), plus the AdamW step on the
// device (fp32 master weights and moments, bf16 parameters and gradients). Every device buffer
// comes from plan_memory(cfg, B, T, {CUDA, BF16, recompute}): one device arena per plan group,
// buffers looked up by name. Activation recompute: level 1 keeps one layer's GELU output and
// recomputes it per layer in backward, level 2 also the LayerNorm outputs, level 3 the whole
// block from its input (one more forward); the recomputed values equal the forward's bit for
// bit. Dropout as the CPU model (the same masks: model/gpt.h dropout_site_key). Host code only
// (it links against the CUDA stubs in a build without CUDA, where constructing one throws).
#pragma once
#include "backend/cuda_ops.h"
#include "dist/comm.h"
#include "model/plan.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace finegpt {

class DeviceComm; // dist/nccl.h

// Data parallelism on GPUs: gradients are summed over the ranks of `device` (NCCL) during the
// backward of the micro-batch that ends a step, each layer's gradients as soon as that layer's
// backward has finished (on NCCL's stream, overlapping the layers below). zero_stage 1 shards
// the fp32 master weights and AdamW moments (Communicator::shard_range): gradients are reduced
// to the rank owning each range, each rank updates its shard, and the bf16 parameters are
// broadcast from their owners. `host` (MPI) carries scalars and the gathers for checkpoints.
struct CudaParallel {
  Communicator *host = nullptr;
  DeviceComm *device = nullptr;
  int zero_stage = 0;
};

struct CudaModelOptions {
  int recompute = 0; // activation recompute level, 0-3
  int device = 0;    // CUDA device index
  // Attention through cuDNN's fused SDPA (backend/cuda_ops.h attention_forward_cudnn) instead of
  // ours: no dropout, backward not bitwise repeatable, a larger op workspace (the plan's).
  bool cudnn_attention = false;
  CudaParallel parallel{};
};

class CudaGPT {
public:
  // Selects device opt.device, allocates every buffer of the plan for micro-batches up to (B, T)
  // at recompute level opt.recompute (0-3). Parameters are not initialised (init_weights or
  // set_params).
  CudaGPT(const GPTConfig &cfg, int B, int T, CudaModelOptions opt = {});
  ~CudaGPT();
  CudaGPT(const CudaGPT &) = delete;
  CudaGPT &operator=(const CudaGPT &) = delete;

  const GPTConfig &config() const { return cfg_; }
  const MemoryPlan &plan() const { return plan_; }
  size_t num_params() const { return P_; }
  size_t param_offset(ParamId id) const { return offsets_[id]; }
  size_t param_count(ParamId id) const { return counts_[id]; }
  // Bytes of device memory this model allocated (its arenas).
  size_t device_bytes() const { return allocated_; }

  // GPT::init_weights on the host (the CPU's numbers), then set_params.
  void init_weights(uint64_t seed);
  // fp32 parameters (num_params, param_tensors order) become the master weights; the bf16
  // parameters are rounded from them.
  void set_params(const float *host);
  // The master weights (fp32, every parameter) to the host; under ZeRO-1 a collective (each rank
  // holds a shard).
  void get_params(float *host) const;
  // The bf16 gradients, widened to fp32, to the host (tests).
  void get_grads(float *host) const;
  void zero_grads();

  // As GPT::forward with targets (no dropout): the mean loss over the B*T positions.
  float forward(const int32_t *inputs, const int32_t *targets, int B, int T);
  // As GPT::forward_backward: gradients of (mean loss * loss_scale) accumulate (+=) into the
  // bf16 gradients, with dropout (cfg.dropout) under `dropout_key` when it is not 0. With a
  // DeviceComm (even of one rank), `last_micro_step` (the micro-batch before step()) sums the
  // gradients over ranks as backward goes. Returns the unscaled mean loss.
  float forward_backward(const int32_t *inputs, const int32_t *targets, int B, int T,
                         float loss_scale, uint64_t dropout_key = 0, bool last_micro_step = true);

  // AdamW (as optim/optim.h's, weight decay on 2-D tensors only) on the master weights, the
  // gradients clipped to global norm grad_clip first (0: none); zeroes the gradients. Returns
  // the global gradient norm before clipping.
  float step(float lr, float grad_clip, float beta1, float beta2, float eps, float weight_decay);
  int steps_taken() const { return t_; }
  void set_steps_taken(int t) { t_ = t; }
  // Moments of every parameter (a collective under ZeRO-1); set_moments keeps this rank's shard.
  void get_moments(float *m, float *v) const;
  void set_moments(const float *m, const float *v);

private:
  template <typename E> E *buf(const char *name) const {
    return static_cast<E *>(lookup(name, sizeof(E)));
  }
  void *lookup(const char *name, size_t elem_bytes) const;
  void upload_tokens(const char *name, const int32_t *host, int N);
  float mean_loss(int N);
  // One layer's activations (pointers into the arenas; a recomputed tensor's single slot).
  struct LayerActs {
    const cuda::bf16 *res_in;
    cuda::bf16 *ln1, *qkv, *atty, *res2, *ln2, *fch, *fch_gelu, *res3;
    float *ln1_mean, *ln1_rstd, *lse, *ln2_mean, *ln2_rstd;
  };
  LayerActs layer_acts(int l, int B, int T) const;
  // Block l from a.res_in; write_output = false stops before the MLP's output GEMM and the
  // residual add (recompute: the block's output is kept).
  void block_forward(int l, int B, int T, const LayerActs &a, uint64_t key, bool write_output);
  // What the recompute level dropped of layer l, before its backward.
  void recompute_for_backward(int l, int B, int T, const LayerActs &a, uint64_t key);
  // Attention through ours or cuDNN's (cudnn_attention_).
  void attention_forward(const LayerActs &a, int B, int T, Dropout drop);
  void attention_backward(cuda::bf16 *dqkv, const cuda::bf16 *dout, const LayerActs &a, int B,
                          int T, Dropout drop);
  // Forward with the fused loss into `losses` (read by mean_loss, which synchronises);
  // dloss != 0 leaves the logits' gradient for backward.
  void forward_loss(const int32_t *inputs, const int32_t *targets, int B, int T, float dloss,
                    uint64_t key);
  void forward_logits(int B, int T, uint64_t key);
  void backward(int B, int T, uint64_t key, bool reduce);
  // Sums gradients [begin, begin + n) over ranks (ZeRO-1: onto the ranks owning each part).
  void reduce_grads(size_t begin, size_t n);
  // This rank's part of [begin, end) of the flat parameters (ZeRO-1: its shard).
  std::pair<size_t, size_t> owned(size_t begin, size_t end) const {
    return {std::max(begin, shard_begin_), std::min(end, shard_end_)};
  }
  // Copies this rank's shard of a device fp32 array (shard-sized) into the full host array,
  // then gathers the other ranks' shards.
  void gather_shards(float *host, const float *device_shard) const;
  cuda::bf16 *param(ParamId id) const { return params_ + offsets_[id]; }
  cuda::bf16 *grad(ParamId id) const { return grads_ + offsets_[id]; }
  cuda::bf16 *param_or_null(ParamId id) const { return counts_[id] ? param(id) : nullptr; }
  cuda::bf16 *grad_or_null(ParamId id) const { return counts_[id] ? grad(id) : nullptr; }

  GPTConfig cfg_;
  int B_, T_;
  int recompute_;
  bool cudnn_attention_;
  bool fused_gelu_;
  CudaParallel par_;
  int world_ = 1;
  size_t shard_begin_ = 0, shard_end_ = 0; // this rank's optimizer shard of the parameters
  bool grads_reduced_ = false;             // the last backward summed gradients over ranks
  MemoryPlan plan_;
  size_t P_ = 0, allocated_ = 0;
  std::array<size_t, kNumParamTensors> offsets_{}, counts_{};
  std::vector<cuda::DeviceArray<unsigned char>> arenas_; // one per plan group
  struct Named {
    std::string name;
    void *ptr;
    int dtype_bytes;
  };
  std::vector<Named> named_;
  cuda::bf16 *params_ = nullptr, *grads_ = nullptr;
  float *master_ = nullptr, *m_ = nullptr, *v_ = nullptr;
  void *workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::vector<float> host_losses_;
  int t_ = 0;
};

} // namespace finegpt
