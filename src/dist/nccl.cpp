// The NCCL communicator (see nccl.h). The communicator is non-blocking (ncclConfig_t.blocking =
// 0): NCCL calls return ncclInProgress instead of blocking inside NCCL, and this file waits for
// them by polling ncclCommGetAsyncError with the comm's timeout, so neither the initialization,
// nor an enqueue, nor synchronize() can hang forever when another rank dies or hangs: on timeout
// the communicator is aborted (ncclCommAbort) and an Error thrown. Collectives run on a
// non-blocking stream of their own (no implicit synchronization with the legacy default stream
// the CUDA backend computes on), ordered against it by events only.
#include "dist/nccl.h"

#include "backend/cuda_ops.h"
#include "core/error.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <string>
#include <thread>

namespace finegpt {

bool nccl_compiled_in() { return true; }

namespace {

// The stream the CUDA backend's ops run on (backend/cuda/runtime.cu: the legacy default stream).
cudaStream_t compute_stream() { return nullptr; }

void cuda_check(cudaError_t err, const char *what) {
  if (err == cudaSuccess) return;
  cudaGetLastError(); // clear a non-sticky error, so later calls report their own
  fail("CUDA ", what, " failed (NCCL communicator): ", cudaGetErrorString(err));
}

// NCCL's last error text, on one line ("" when there is none).
std::string last_error(ncclComm_t comm) {
  const char *s = ncclGetLastError(comm);
  std::string out = s ? s : "";
  for (char &c : out)
    if (c == '\n' || c == '\r') c = ' ';
  while (!out.empty() && out.back() == ' ')
    out.pop_back();
  return out;
}

std::string describe(ncclResult_t r, ncclComm_t comm) {
  const std::string detail = last_error(comm);
  return detail.empty() ? std::string(ncclGetErrorString(r))
                        : cat(ncclGetErrorString(r), " (", detail, ")");
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

class NcclComm final : public DeviceComm {
public:
  NcclComm(Communicator &host, double timeout_s)
      : rank_(host.rank()), world_(host.world()), timeout_s_(timeout_s) {
    try {
      ncclUniqueId id{};
      if (rank_ == 0) {
        const ncclResult_t r = ncclGetUniqueId(&id);
        if (r != ncclSuccess) fail("NCCL unique id failed: ", describe(r, nullptr));
      }
      host.broadcast(&id, sizeof id);

      cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "stream create");
      for (cudaEvent_t *e : {&compute_done_, &comm_done_, &sync_done_})
        cuda_check(cudaEventCreateWithFlags(e, cudaEventDisableTiming), "event create");

      ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
      config.blocking = 0;
      const ncclResult_t r = ncclCommInitRankConfig(&comm_, world_, id, rank_, &config);
      if (r != ncclSuccess && r != ncclInProgress) {
        const std::string msg = describe(r, comm_);
        abort_comm();
        fail("NCCL init failed on rank ", rank_, " of ", world_, ": ", msg);
      }
      settle(r, "init");
    } catch (...) {
      release();
      throw;
    }
  }

  ~NcclComm() override { release(); }

  int rank() const override { return rank_; }
  int world() const override { return world_; }

  void after_compute() override {
    cuda_check(cudaEventRecord(compute_done_, compute_stream()), "event record");
    cuda_check(cudaStreamWaitEvent(stream_, compute_done_, 0), "stream wait");
  }
  void compute_waits() override {
    FINEGPT_CHECK(!in_group_, "internal: compute_waits() inside an NCCL group (its collectives "
                              "are issued at group_end())");
    cuda_check(cudaEventRecord(comm_done_, stream_), "event record");
    cuda_check(cudaStreamWaitEvent(compute_stream(), comm_done_, 0), "stream wait");
  }

  void group_start() override {
    live("group start");
    FINEGPT_CHECK(!in_group_, "internal: NCCL group_start() inside a group");
    const ncclResult_t r = ncclGroupStart();
    if (r != ncclSuccess) fail("NCCL group start failed: ", describe(r, comm_));
    in_group_ = true;
  }
  void group_end() override {
    live("group end");
    FINEGPT_CHECK(in_group_, "internal: NCCL group_end() without group_start()");
    in_group_ = false;
    settle(ncclGroupEnd(), "group");
  }

  void allreduce_sum(cuda::bf16 *data, size_t n) override {
    if (n == 0) return;
    live("all-reduce");
    settle(ncclAllReduce(data, data, n, ncclBfloat16, ncclSum, comm_, stream_), "all-reduce");
  }
  void allreduce_sum(float *data, size_t n) override {
    if (n == 0) return;
    live("all-reduce");
    settle(ncclAllReduce(data, data, n, ncclFloat32, ncclSum, comm_, stream_), "all-reduce");
  }
  void reduce_sum(cuda::bf16 *data, size_t n, int root) override {
    check_root(root, "reduce");
    if (n == 0) return;
    live("reduce");
    settle(ncclReduce(data, data, n, ncclBfloat16, ncclSum, root, comm_, stream_), "reduce");
  }
  void broadcast(cuda::bf16 *data, size_t n, int root) override {
    check_root(root, "broadcast");
    if (n == 0) return;
    live("broadcast");
    settle(ncclBroadcast(data, data, n, ncclBfloat16, root, comm_, stream_), "broadcast");
  }

  void synchronize() override {
    live("synchronize");
    FINEGPT_CHECK(!in_group_, "internal: NCCL synchronize() inside a group");
    cuda_check(cudaEventRecord(sync_done_, stream_), "event record");
    const auto t0 = std::chrono::steady_clock::now();
    for (int polls = 0;; polls++) {
      const cudaError_t e = cudaEventQuery(sync_done_);
      if (e == cudaSuccess) return;
      if (e != cudaErrorNotReady) cuda_check(e, "collective");
      check_async("collective");
      if (timeout_s_ > 0 && seconds_since(t0) > timeout_s_) timed_out("collectives");
      // Spin briefly (a step's last all-reduce usually ends soon), then sleep between polls.
      if (polls < 1000)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }

private:
  // Finishes what was issued and frees the communicator (aborts it instead when that fails or
  // makes no progress within the timeout), then the stream and events. Never throws.
  void release() noexcept {
    if (comm_) {
      bool ok = true;
      try {
        if (in_group_) group_end();
        synchronize();
      } catch (const Error &) {
        ok = false;
      }
      if (comm_) {
        ncclResult_t r = ok ? ncclCommFinalize(comm_) : ncclInternalError;
        const auto t0 = std::chrono::steady_clock::now();
        while (r == ncclInProgress && !(timeout_s_ > 0 && seconds_since(t0) > timeout_s_)) {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          if (ncclCommGetAsyncError(comm_, &r) != ncclSuccess) r = ncclInternalError;
        }
        if (r == ncclSuccess)
          ncclCommDestroy(comm_);
        else
          ncclCommAbort(comm_);
        comm_ = nullptr;
      }
    }
    for (cudaEvent_t *e : {&compute_done_, &comm_done_, &sync_done_}) {
      if (*e) cudaEventDestroy(*e);
      *e = nullptr;
    }
    if (stream_) cudaStreamDestroy(stream_);
    stream_ = nullptr;
    cudaGetLastError();
  }

  // Waits until an NCCL call that returned `r` is done (ncclInProgress: poll the comm's state),
  // with the timeout; fails with one line on an error.
  void settle(ncclResult_t r, const char *what) {
    const auto t0 = std::chrono::steady_clock::now();
    while (r == ncclInProgress) {
      if (timeout_s_ > 0 && seconds_since(t0) > timeout_s_) timed_out(what);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
      const ncclResult_t q = ncclCommGetAsyncError(comm_, &r);
      if (q != ncclSuccess) r = q;
    }
    if (r != ncclSuccess) abort_and_fail(what, r);
  }

  void check_async(const char *what) {
    ncclResult_t async = ncclSuccess;
    const ncclResult_t q = ncclCommGetAsyncError(comm_, &async);
    if (q != ncclSuccess) abort_and_fail(what, q);
    if (async != ncclSuccess && async != ncclInProgress) abort_and_fail(what, async);
  }

  [[noreturn]] void abort_and_fail(const char *what, ncclResult_t r) {
    const std::string msg = describe(r, comm_);
    abort_comm();
    fail("NCCL ", what, " failed on rank ", rank_, " of ", world_, ": ", msg);
  }

  [[noreturn]] void timed_out(const char *what) {
    abort_comm();
    fail("NCCL ", what, " made no progress for ", timeout_s_, " s on rank ", rank_, " of ", world_,
         ": another rank died or hangs (dist_timeout); communicator aborted");
  }

  void abort_comm() {
    if (in_group_) ncclGroupEnd(); // close NCCL's per-thread group before the comm goes
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    in_group_ = false;
  }

  void live(const char *what) const {
    FINEGPT_CHECK(comm_, "NCCL ", what, ": the communicator was aborted after an earlier error");
  }

  void check_root(int root, const char *what) const {
    FINEGPT_CHECK(root >= 0 && root < world_, "internal: NCCL ", what, " to root ", root,
                  " of a world of ", world_);
  }

  int rank_, world_;
  double timeout_s_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t compute_done_ = nullptr, comm_done_ = nullptr, sync_done_ = nullptr;
  bool in_group_ = false;
};

} // namespace

std::unique_ptr<DeviceComm> make_nccl_comm(Communicator &host, double timeout_s) {
  const int devices = cuda::device_count();
  FINEGPT_CHECK(devices > 0,
                "NCCL needs a CUDA device, and none is visible: ", cuda::device_summary());
  const int local = local_rank_from_env();
  try {
    cuda::set_device(device_for_local_rank(local, devices));
    return std::make_unique<NcclComm>(host, timeout_s);
  } catch (const Error &e) {
    if (devices == 1 && local > 0 && host.world() > 1)
      fail(e.what(), " (local rank ", local,
           " shares this node's one visible GPU with other ranks; NCCL needs a GPU per rank)");
    throw;
  }
}

} // namespace finegpt
