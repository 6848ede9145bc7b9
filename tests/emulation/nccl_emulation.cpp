// A host emulation of the NCCL communicator (dist/nccl.h), for tests only, beside
// cuda_emulation.cpp: the collectives go through the host communicator (MPI, or single-process)
// on the emulated "device" buffers, which are host memory. bf16 data is summed in fp32 and
// rounded once, as NCCL's bf16 reduction of two ranks does; a reduce or broadcast to a root is
// an all-reduce in which the other ranks contribute zeros (exact), the result kept where NCCL
// keeps it. Streams and groups have nothing to order here: those calls do nothing.
#include "backend/cuda_ops.h"
#include "core/error.h"
#include "dist/nccl.h"

#include <vector>

namespace finegpt {

bool nccl_compiled_in() { return true; }

namespace {

class EmulatedNccl final : public DeviceComm {
public:
  explicit EmulatedNccl(Communicator &host) : host_(host) {}
  int rank() const override { return host_.rank(); }
  int world() const override { return host_.world(); }
  void after_compute() override {}
  void compute_waits() override {}
  void group_start() override {}
  void group_end() override {}
  void allreduce_sum(cuda::bf16 *data, size_t n) override { sum_to(data, n, true); }
  void allreduce_sum(float *data, size_t n) override { host_.allreduce_sum(data, n); }
  void reduce_sum(cuda::bf16 *data, size_t n, int root) override {
    check_root(root);
    sum_to(data, n, host_.rank() == root);
  }
  void broadcast(cuda::bf16 *data, size_t n, int root) override {
    check_root(root);
    std::vector<float> v(n, 0.0f);
    if (host_.rank() == root)
      for (size_t i = 0; i < n; ++i)
        v[i] = cuda::to_float(data[i]);
    host_.allreduce_sum(v.data(), n);
    for (size_t i = 0; i < n; ++i)
      data[i] = cuda::to_bf16(v[i]);
  }
  void synchronize() override {}

private:
  // The fp32 sum over ranks of data, rounded into data where `keep`.
  void sum_to(cuda::bf16 *data, size_t n, bool keep) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i)
      v[i] = cuda::to_float(data[i]);
    host_.allreduce_sum(v.data(), n);
    if (keep)
      for (size_t i = 0; i < n; ++i)
        data[i] = cuda::to_bf16(v[i]);
  }
  void check_root(int root) const {
    FINEGPT_CHECK(root >= 0 && root < host_.world(), "internal: NCCL root ", root, " of ",
                  host_.world());
  }

  Communicator &host_;
};

} // namespace

std::unique_ptr<DeviceComm> make_nccl_comm(Communicator &host, double) {
  return std::make_unique<EmulatedNccl>(host);
}

} // namespace finegpt
