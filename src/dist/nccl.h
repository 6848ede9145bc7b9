// The NCCL communicator: collectives over GPU buffers for data parallelism on CUDA. The ranks
// are those of the host communicator (comm.h: MPI, or single-process), which also carries the
// bootstrap: rank 0 makes the ncclUniqueId and host.broadcast()s it. Bodies: dist/nccl.cpp in
// builds with NCCL (FINEGPT_NCCL, which needs the CUDA backend), else dist/nccl_stub.cpp, whose
// make_nccl_comm() says the build has no NCCL. The device selection rule (local_rank_from_env,
// device_for_local_rank, local_device_index) is in dist/local_device.cpp, in every build.
// This header needs no CUDA or NCCL header.
#pragma once
#include <cstddef>
#include <memory>

#include "dist/comm.h"

namespace finegpt {

namespace cuda {
struct bf16; // backend/cuda_ops.h
}

// Collectives over GPU buffers through NCCL, on a stream of their own. Ordering with the
// compute stream (the CUDA backend's ops run on the legacy default stream) is by events:
// after_compute() makes later collectives wait for everything issued so far on the compute
// stream; compute_waits() makes later compute work wait for every collective issued so far.
// Every NCCL and CUDA status is checked: a failure throws finegpt::Error with one line.
class DeviceComm {
public:
  virtual ~DeviceComm() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual void after_compute() = 0;
  virtual void compute_waits() = 0;
  // Between group_start() and group_end() calls are fused into one launch (ncclGroupStart/End).
  virtual void group_start() = 0;
  virtual void group_end() = 0;
  // In place, enqueued on the comm stream: sum over ranks (bf16 = finegpt::cuda::bf16 storage,
  // ncclBfloat16; float = ncclFloat32).
  virtual void allreduce_sum(cuda::bf16 *data, size_t n) = 0;
  virtual void allreduce_sum(float *data, size_t n) = 0;
  // In place: rank `root` ends with the sum over ranks of data[0..n); the other ranks' data is
  // left as NCCL's in-place reduce leaves it (do not rely on it).
  virtual void reduce_sum(cuda::bf16 *data, size_t n, int root) = 0;
  // In place: root's n elements to everyone.
  virtual void broadcast(cuda::bf16 *data, size_t n, int root) = 0;
  // Waits (host) until every collective issued so far has finished. A watchdog: NCCL's
  // asynchronous errors end the wait with an Error at once, and collectives that make no
  // progress for the comm's timeout (a rank died or hangs) abort the communicator and throw.
  // Host code that blocks on compute work which waits for collectives (compute_waits(), then a
  // copy to the host) should call synchronize() first, so that a hang is caught here.
  virtual void synchronize() = 0;
};

// Bootstraps over `host` (the MPI communicator, or single-process): selects this rank's CUDA
// device (local_device_index(), cuda::set_device), rank 0 makes the ncclUniqueId and
// host.broadcast()s it, then ncclCommInitRankConfig (non-blocking) with host.rank() and
// host.world(). `timeout_s` (the config's dist_timeout): how long the initialization, a
// collective's enqueue or synchronize() may wait without progress before the communicator is
// aborted and an Error thrown; 0 or less waits forever. World 1 works without MPI. An Error
// without NCCL in the build, without a CUDA device, or when NCCL fails.
std::unique_ptr<DeviceComm> make_nccl_comm(Communicator &host, double timeout_s = 300);

// This process's rank among the ranks on its node, from the launcher's environment: the first
// of OMPI_COMM_WORLD_LOCAL_RANK (Open MPI), MPI_LOCALRANKID (MPICH, Intel MPI), SLURM_LOCALID
// (srun) that is set; 0 when none is (a single process). Error on a value that is not a
// non-negative integer.
int local_rank_from_env();
// The CUDA device for local rank `local_rank` with `visible_devices` devices visible: one GPU
// per rank, device = local rank. With one visible device every rank uses it (launchers that give
// each rank its own GPU through CUDA_VISIBLE_DEVICES; NCCL itself refuses two ranks on one GPU).
// With none, the local rank (nothing to choose from; selecting it reports the missing device).
// Error when the node has ranks without a GPU of their own (local_rank >= visible_devices > 1).
int device_for_local_rank(int local_rank, int visible_devices);
// The CUDA device index this process should use under the launcher:
// device_for_local_rank(local_rank_from_env(), cuda::device_count()); 0 for a single process.
int local_device_index();

// True when this build has NCCL (dist/nccl.cpp), false with dist/nccl_stub.cpp (never throws).
bool nccl_compiled_in();

} // namespace finegpt
