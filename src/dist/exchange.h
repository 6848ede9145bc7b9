// The gradient exchanges behind core/exchange.h: MPI over the CPU engine's fp32 host arrays, and
// NCCL over the CUDA engine's bf16 device arrays. Each is bound to one model's flat gradients and
// parameters (P elements). zero_stage 1 shards the optimizer state (Communicator::shard_range):
// gradients are summed onto the rank owning each part, and the updated parameters go from their
// owners to everyone.
#pragma once
#include "core/exchange.h"
#include "dist/comm.h"
#include "dist/nccl.h"

#include <memory>

namespace finegpt {

// MPI: blocking collectives, so nothing is gained by starting them during backward (a rank's
// threads are busy with it); reduce() sums all the gradients in one all-reduce, or one
// reduce-scatter under ZeRO-1, and share_params() all-gathers the parameters.
std::unique_ptr<GradExchange> make_mpi_exchange(Communicator &comm, int zero_stage, float *grads,
                                                float *params, size_t P);

// NCCL: each ready() range is summed on NCCL's stream at once, overlapping the backward of the
// layers below (ZeRO-1: reduced onto its owners); reduce() waits for them (where a rank that died
// or hangs is caught), share_params() broadcasts each shard from its owner. `host` carries the
// scalars and the gathers for checkpoints. Destroying it waits for collectives still running.
std::unique_ptr<GradExchange> make_nccl_exchange(DeviceComm &device, Communicator &host,
                                                 int zero_stage, cuda::bf16 *grads,
                                                 cuda::bf16 *params, size_t P);

} // namespace finegpt
