// The engine (see engine.h): one template over the model's backend; what differs by backend is
// how ranks exchange gradients and what is said about the device.
#include "train/engine.h"

#include "backend/cuda_ops.h"
#include "core/error.h"
#include "dist/exchange.h"
#include "dist/nccl.h"
#include "model/model.h"
#include "plan/gpus.h"

#include <algorithm>
#include <optional>

namespace finegpt {

namespace {

template <class Backend> class ModelEngine final : public Engine {
public:
  ModelEngine(const GPTConfig &cfg, int B, int T, Communicator &comm, const EngineOptions &e,
              std::unique_ptr<DeviceComm> nccl, int device)
      : e_(e), device_(device), nccl_(std::move(nccl)), model_(cfg, B, T, with_device(e, device)),
        exchange_(e.training ? make_exchange(comm) : nullptr) {
    if (e.training) opt_.emplace(model_, e.adam, exchange_.get());
    PlanOptions o;
    o.backend = Backend::kind, o.precision = Backend::precision;
    o.recompute = e.model.recompute, o.cudnn_attention = e.model.cudnn_attention;
    o.zero_stage = exchange_ ? exchange_->zero_stage() : 0, o.world = comm.world();
    o.optimizer = e.training;
    o.offload = e.training && e.adam.offload;
    o.muon = e.training && e.adam.muon;
    plan_ = plan_memory(cfg, B, T, o);
  }

  std::string describe() const override {
    if constexpr (Backend::kind == ::finegpt::Backend::CPU) {
      return cat("cpu with ", e_.threads, " threads");
    } else {
      cuda::DeviceInfo d;
      return cat("cuda (", cuda::device_info(device_, &d) ? d.name : cat("device ", device_),
                 ", bfloat16", nccl_ ? ", NCCL" : "", ")");
    }
  }
  const GPTConfig &config() const override { return model_.config(); }
  const MemoryPlan &plan() const override { return plan_; }
  size_t allocated_bytes() const override { return model_.bytes() + (opt_ ? opt_->bytes() : 0); }
  size_t allocated_host_bytes() const override { return opt_ ? opt_->host_bytes() : 0; }
  size_t num_params() const override { return model_.num_params(); }
  void init_weights(uint64_t seed) override {
    if constexpr (Backend::kMasterWeights) {
      std::vector<float> host(model_.num_params());
      init_gpt_weights(model_.config(), host.data(), seed);
      set_params(host.data());
    } else {
      model_.init_weights(seed); // in place: the parameters are the fp32 values
    }
  }
  void set_params(const float *host) override {
    if (opt_)
      opt_->set_params(host);
    else
      model_.set_params(host);
  }
  const float *params_for_save() override {
    if constexpr (Backend::kMasterWeights)
      return host_.data(); // gathered by gather_moments
    else
      return model_.params();
  }
  float forward(const int32_t *x, const int32_t *y, int B, int T) override {
    return model_.forward(x, y, B, T);
  }
  const float *position_losses() const override { return model_.host_losses(); }
  std::unique_ptr<LogitSource> generator(int S) override {
    return std::make_unique<Generator<Backend>>(model_, S);
  }
  float forward_backward(const int32_t *x, const int32_t *y, int B, int T, float loss_scale,
                         uint64_t key, bool last_micro_step) override {
    // The optimizer's hook: the exchange, or under offload on one rank its own gradient copies.
    GradExchange *hook = opt_ ? opt_->backward_hook() : exchange_.get();
    return model_.forward_backward(x, y, B, T, loss_scale, key, last_micro_step ? hook : nullptr);
  }
  float step(float lr, float grad_clip) override { return optimizer().step(lr, grad_clip); }
  void synchronize() override {
    if constexpr (Backend::kind == ::finegpt::Backend::CUDA) cuda::synchronize();
  }
  double comm_seconds() const override { return optimizer().comm_seconds(); }
  int steps_taken() const override { return optimizer().steps_taken(); }
  void set_steps_taken(int t) override { optimizer().set_steps_taken(t); }
  void gather_moments(std::vector<float> &m, std::vector<float> &v) override {
    optimizer().gather_moments(m, v);
    if constexpr (Backend::kMasterWeights) {
      host_.resize(model_.num_params());
      optimizer().get_params(host_.data());
    }
  }
  void load_moments(const float *m, const float *v) override { optimizer().load_moments(m, v); }
  double peak_flops() const override {
    if constexpr (Backend::kind == ::finegpt::Backend::CUDA) {
      cuda::DeviceInfo d;
      return cuda::device_info(device_, &d) ? peak_flops_of(d.name) : 0.0;
    }
    return 0.0;
  }
  std::string memory_report() const override {
    if constexpr (Backend::kind == ::finegpt::Backend::CUDA) {
      cuda::DeviceInfo d;
      if (!cuda::device_info(device_, &d)) return "";
      return cat("GPU memory: ", format_bytes(double(d.total_bytes - d.free_bytes)), " of ",
                 format_bytes(double(d.total_bytes)),
                 " in use (this process and others); the engine's arenas are ",
                 format_bytes(double(allocated_bytes())),
                 allocated_host_bytes() ? cat("; pinned host memory (optimizer offload) ",
                                              format_bytes(double(allocated_host_bytes())))
                                        : std::string());
    }
    return "";
  }

private:
  static ModelOptions with_device(const EngineOptions &e, int device) {
    ModelOptions m = e.model;
    m.device = device;
    return m;
  }
  std::unique_ptr<GradExchange> make_exchange(Communicator &comm) {
    if constexpr (Backend::kind == ::finegpt::Backend::CUDA) {
      if (!nccl_) return nullptr;
      return make_nccl_exchange(*nccl_, comm, e_.zero_stage, model_.grads(), model_.params(),
                                model_.num_params());
    } else {
      if (comm.world() == 1) return nullptr;
      return make_mpi_exchange(comm, e_.zero_stage, model_.grads(), model_.params(),
                               model_.num_params());
    }
  }

  Optimizer<Backend> &optimizer() const {
    FINEGPT_CHECK(opt_, "internal: an engine made without training has no optimizer");
    return *opt_;
  }

  EngineOptions e_;
  int device_;
  std::unique_ptr<DeviceComm> nccl_; // before the model: the exchange uses both
  Model<Backend> model_;
  std::unique_ptr<GradExchange> exchange_; // destroyed before the model: waits for collectives
  mutable std::optional<Optimizer<Backend>> opt_; // mutable: const queries read its counters
  MemoryPlan plan_;
  std::vector<float> host_;
};

} // namespace

std::unique_ptr<Engine> make_engine(const GPTConfig &model, int B, int T, Communicator &comm,
                                    const EngineOptions &opt) {
  if (opt.backend == Backend::CPU)
    return std::make_unique<ModelEngine<CpuBackend>>(model, B, T, comm, opt, nullptr, 0);
  FINEGPT_CHECK(comm.world() == 1 || nccl_compiled_in(), "device='cuda' on ", comm.world(),
                " ranks needs NCCL, and this build has none (configure with NCCL found, or use "
                "device='cpu' under MPI)");
  const int device = local_device_index();
  std::unique_ptr<DeviceComm> nccl =
      comm.world() > 1 ? make_nccl_comm(comm, opt.timeout_s) : nullptr;
  return std::make_unique<ModelEngine<CudaBackend>>(model, B, T, comm, opt, std::move(nccl),
                                                    device);
}

std::unique_ptr<Engine> make_engine(const GPTConfig &model, int B, int T,
                                    const EngineOptions &opt) {
  static const std::unique_ptr<Communicator> single = make_single_communicator(); // stateless
  return make_engine(model, B, T, *single, opt);
}

std::string parallel_description() {
  return cat(
      mpi_compiled_in() ? "mpi (launch with mpirun or srun)"
                        : "single process (no MPI in this build)",
      "; NCCL: ", nccl_compiled_in() ? "compiled in (GPU collectives)" : "not in this build");
}

} // namespace finegpt
