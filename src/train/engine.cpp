// The two engines behind train/engine.h: thin adapters, so the loop's arithmetic on the CPU is
// exactly what it was (the same GPT and AdamW calls in the same order).
#include "train/engine.h"

#include "backend/cuda_ops.h"
#include "core/error.h"
#include "dist/nccl.h"
#include "model/gpt.h"
#include "model/gpt_cuda.h"
#include "plan/gpus.h"

#include <cstring>

namespace finegpt {

namespace {

class CpuEngine final : public Engine {
public:
  CpuEngine(const GPTConfig &cfg, int B, int T, AdamWConfig adam, Communicator &comm,
            int zero_stage, int threads)
      : model_(cfg, B, T), opt_(model_, adam, &comm, zero_stage), threads_(threads) {}
  std::string describe() const override { return cat("cpu with ", threads_, " threads"); }
  size_t num_params() const override { return model_.num_params(); }
  void init_weights(uint64_t seed) override { model_.init_weights(seed); }
  void set_params(const float *host) override {
    std::memcpy(model_.params(), host, model_.num_params() * sizeof(float));
  }
  const float *params_for_save() override { return model_.params(); }
  float forward(const int32_t *x, const int32_t *y, int B, int T) override {
    return model_.forward(x, y, B, T);
  }
  float forward_backward(const int32_t *x, const int32_t *y, int B, int T, float loss_scale,
                         uint64_t key, bool) override {
    return model_.forward_backward(x, y, B, T, loss_scale, key);
  }
  float step(float lr, float grad_clip) override { return opt_.step(model_, lr, grad_clip); }
  double comm_seconds() const override { return opt_.comm_seconds(); }
  int steps_taken() const override { return opt_.steps_taken(); }
  void set_steps_taken(int t) override { opt_.set_steps_taken(t); }
  void gather_moments(std::vector<float> &m, std::vector<float> &v) override {
    opt_.gather_moments(m, v);
  }
  void load_moments(const float *m, const float *v) override { opt_.load_moments(m, v); }
  std::string memory_report() const override { return ""; }
  double peak_flops() const override { return 0.0; }

private:
  GPT model_;
  AdamW opt_;
  int threads_;
};

class CudaEngine final : public Engine {
public:
  CudaEngine(const GPTConfig &cfg, int B, int T, AdamWConfig adam, Communicator &comm,
             CudaModelOptions opt, double timeout_s)
      : device_(local_device_index()),
        nccl_(comm.world() > 1 ? make_nccl_comm(comm, timeout_s) : nullptr),
        model_(cfg, B, T, with_devices(opt, device_, comm, nccl_.get())), adam_(adam) {}
  std::string describe() const override {
    cuda::DeviceInfo d;
    return cat("cuda (", cuda::device_info(device_, &d) ? d.name : cat("device ", device_),
               ", bfloat16", nccl_ ? ", NCCL" : "", ")");
  }
  size_t num_params() const override { return model_.num_params(); }
  void init_weights(uint64_t seed) override { model_.init_weights(seed); }
  void set_params(const float *host) override { model_.set_params(host); }
  const float *params_for_save() override { return host_.data(); }
  float forward(const int32_t *x, const int32_t *y, int B, int T) override {
    return model_.forward(x, y, B, T);
  }
  float forward_backward(const int32_t *x, const int32_t *y, int B, int T, float loss_scale,
                         uint64_t key, bool last_micro_step) override {
    return model_.forward_backward(x, y, B, T, loss_scale, key, last_micro_step);
  }
  float step(float lr, float grad_clip) override {
    return model_.step(lr, grad_clip, adam_.beta1, adam_.beta2, adam_.eps, adam_.weight_decay);
  }
  double comm_seconds() const override { return 0.0; }
  int steps_taken() const override { return model_.steps_taken(); }
  void set_steps_taken(int t) override { model_.set_steps_taken(t); }
  void gather_moments(std::vector<float> &m, std::vector<float> &v) override {
    m.resize(model_.num_params());
    v.resize(model_.num_params());
    model_.get_moments(m.data(), v.data());
    host_.resize(model_.num_params());
    model_.get_params(host_.data());
  }
  void load_moments(const float *m, const float *v) override { model_.set_moments(m, v); }
  double peak_flops() const override {
    cuda::DeviceInfo d;
    return cuda::device_info(device_, &d) ? peak_flops_of(d.name) : 0.0;
  }
  std::string memory_report() const override {
    cuda::DeviceInfo d;
    if (!cuda::device_info(device_, &d)) return "";
    return cat("GPU memory: ", format_bytes(double(d.total_bytes - d.free_bytes)), " of ",
               format_bytes(double(d.total_bytes)),
               " in use (this process and others); the "
               "model's arenas are ",
               format_bytes(double(model_.device_bytes())));
  }

private:
  static CudaModelOptions with_devices(CudaModelOptions opt, int device, Communicator &comm,
                                       DeviceComm *nccl) {
    opt.device = device;
    opt.parallel.host = &comm, opt.parallel.device = nccl;
    return opt;
  }

  int device_;
  std::unique_ptr<DeviceComm> nccl_; // before model_: the model uses it until destroyed
  CudaGPT model_;
  AdamWConfig adam_;
  std::vector<float> host_;
};

} // namespace

std::unique_ptr<Engine> make_cpu_engine(const GPTConfig &model, int B, int T, AdamWConfig adam,
                                        Communicator &comm, int zero_stage, int threads) {
  return std::make_unique<CpuEngine>(model, B, T, adam, comm, zero_stage, threads);
}

std::unique_ptr<Engine> make_cuda_engine(const GPTConfig &model, int B, int T, AdamWConfig adam,
                                         Communicator &comm, CudaModelOptions opt,
                                         double timeout_s) {
  FINEGPT_CHECK(comm.world() == 1 || nccl_compiled_in(), "device='cuda' on ", comm.world(),
                " ranks needs NCCL, and this build has none (configure with NCCL found, or use "
                "device='cpu' under MPI)");
  return std::make_unique<CudaEngine>(model, B, T, adam, comm, opt, timeout_s);
}

} // namespace finegpt
