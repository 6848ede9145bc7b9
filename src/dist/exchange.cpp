// The MPI and NCCL gradient exchanges (see exchange.h).
#include "dist/exchange.h"

#include "backend/cuda_ops.h"
#include "core/error.h"

#include <algorithm>
#include <chrono>

namespace finegpt {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void check_stage(int zero_stage) {
  FINEGPT_CHECK(zero_stage == 0 || zero_stage == 1, "zero_stage must be 0 or 1 (got ", zero_stage,
                ")");
}

class MpiExchange final : public GradExchange {
public:
  MpiExchange(Communicator &comm, int zero_stage, float *grads, float *params, size_t P)
      : comm_(comm), zero_(zero_stage), grads_(grads), params_(params), P_(P) {
    check_stage(zero_stage);
  }
  int world() const override { return comm_.world(); }
  int zero_stage() const override { return zero_; }
  Range owned() const override {
    return zero_ ? comm_.shard_range(P_, comm_.rank()) : Range{0, P_};
  }
  void ready(const std::vector<Range> &) override {}
  void reduce() override {
    const auto t0 = Clock::now();
    if (zero_)
      comm_.reduce_scatter_sum(grads_, P_);
    else
      comm_.allreduce_sum(grads_, P_);
    seconds_ = since(t0);
  }
  void sum(double *x) override { comm_.allreduce_sum(x, 1); }
  void share_params() override {
    if (!zero_) return;
    const auto t0 = Clock::now();
    comm_.all_gather(params_, P_);
    seconds_ += since(t0);
  }
  void share_grads() override {
    if (!zero_) return;
    const auto t0 = Clock::now();
    comm_.all_gather(grads_, P_);
    seconds_ += since(t0);
  }
  void gather(float *full) override {
    if (zero_) comm_.all_gather(full, P_);
  }
  double seconds() const override { return seconds_; }

private:
  Communicator &comm_;
  int zero_;
  float *grads_, *params_;
  size_t P_;
  double seconds_ = 0.0;
};

class NcclExchange final : public GradExchange {
public:
  NcclExchange(DeviceComm &device, Communicator &host, int zero_stage, cuda::bf16 *grads,
               cuda::bf16 *params, size_t P)
      : device_(device), host_(host), zero_(zero_stage), grads_(grads), params_(params), P_(P) {
    check_stage(zero_stage);
  }
  // Collectives still running on the model's gradients finish (or time out and abort) before
  // the model's memory goes: after an error between the last backward and the update, say.
  ~NcclExchange() override {
    try {
      device_.synchronize();
    } catch (const Error &) {
    }
  }
  int world() const override { return host_.world(); }
  int zero_stage() const override { return zero_; }
  Range owned() const override {
    return zero_ ? host_.shard_range(P_, host_.rank()) : Range{0, P_};
  }
  void ready(const std::vector<Range> &ranges) override {
    device_.after_compute();
    device_.group_start();
    for (const auto &[begin, end] : ranges)
      reduce_range(begin, end);
    device_.group_end();
    pending_ = true;
  }
  void reduce() override {
    FINEGPT_CHECK(pending_, "internal: an update after a backward that did not sum gradients");
    const auto t0 = Clock::now();
    device_.synchronize(); // where a rank that died or hangs is caught
    device_.compute_waits();
    seconds_ = since(t0);
    pending_ = false;
  }
  void sum(double *x) override { host_.allreduce_sum(x, 1); }
  void share_params() override { share(params_); }
  void share_grads() override { share(grads_); }
  void gather(float *full) override {
    if (zero_) host_.all_gather(full, P_);
  }
  double seconds() const override { return seconds_; }

private:
  // Each rank's shard of `data` (P elements) broadcast from it (ZeRO-1).
  void share(cuda::bf16 *data) {
    if (!zero_) return;
    const auto t0 = Clock::now();
    device_.after_compute();
    device_.group_start();
    for (int r = 0; r < host_.world(); ++r) {
      const auto [begin, end] = host_.shard_range(P_, r);
      if (begin < end) device_.broadcast(data + begin, end - begin, r);
    }
    device_.group_end();
    device_.compute_waits();
    seconds_ += since(t0);
  }
  // Sums [begin, end) over ranks (ZeRO-1: onto the ranks owning each part).
  void reduce_range(size_t begin, size_t end) {
    if (!zero_) {
      device_.allreduce_sum(grads_ + begin, end - begin);
      return;
    }
    for (int r = 0; r < host_.world(); ++r) {
      const auto [rb, re] = host_.shard_range(P_, r);
      const size_t lo = std::max(begin, rb), hi = std::min(end, re);
      if (lo < hi) device_.reduce_sum(grads_ + lo, hi - lo, r);
    }
  }

  DeviceComm &device_;
  Communicator &host_;
  int zero_;
  cuda::bf16 *grads_, *params_;
  size_t P_;
  bool pending_ = false;
  double seconds_ = 0.0;
};

} // namespace

std::unique_ptr<GradExchange> make_mpi_exchange(Communicator &comm, int zero_stage, float *grads,
                                                float *params, size_t P) {
  return std::make_unique<MpiExchange>(comm, zero_stage, grads, params, P);
}

std::unique_ptr<GradExchange> make_nccl_exchange(DeviceComm &device, Communicator &host,
                                                 int zero_stage, cuda::bf16 *grads,
                                                 cuda::bf16 *params, size_t P) {
  return std::make_unique<NcclExchange>(device, host, zero_stage, grads, params, P);
}

} // namespace finegpt
