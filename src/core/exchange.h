// Data parallelism as the model and the optimizer see it: one hook, whose bodies live in dist/
// (dist/exchange.h: MPI over host arrays on the CPU, NCCL over device arrays on the GPU). An
// exchange is bound to one model's flat gradient and parameter arrays when it is made; here it
// is only told what is ready and asked for what the update needs.
#pragma once
#include <cstddef>
#include <utility>
#include <vector>

namespace finegpt {

// A [begin, end) range of the flat parameter order.
using Range = std::pair<size_t, size_t>;

class GradExchange {
public:
  virtual ~GradExchange() = default;
  virtual int world() const = 0;
  virtual int zero_stage() const = 0; // 1: optimizer state sharded over the ranks (ZeRO-1)
  // The part of the parameters whose optimizer state (and update) is this rank's: a shard under
  // ZeRO-1 (Communicator::shard_range), else all of them.
  virtual Range owned() const = 0;
  // Backward of the micro-batch that ends a step has finished these gradients (a layer's, or the
  // embeddings' and the final LayerNorm's). The exchange may start summing them now (NCCL: on its
  // own stream, while backward goes on below) or leave it to reduce().
  virtual void ready(const std::vector<Range> &ranges) = 0;
  // Before the update: the gradients summed over ranks (under ZeRO-1 at least the owned part;
  // the rest is left undefined).
  virtual void reduce() = 0;
  // A host scalar summed over ranks (the squared gradient norm of the shards under ZeRO-1).
  virtual void sum(double *x) = 0;
  // After the update: every rank's owned parameters to all ranks (ZeRO-1; nothing otherwise).
  virtual void share_params() = 0;
  // Within the update (Muon under ZeRO-1): every rank's owned part of the gradient array, which
  // the owner has overwritten (with Muon's momentum mix), to all ranks (ZeRO-1; nothing
  // otherwise).
  virtual void share_grads() = 0;
  // `full` holds this rank's owned part of an fp32 host array of every parameter; afterwards it
  // holds every rank's (a collective; nothing to do without sharding).
  virtual void gather(float *full) = 0;
  // Seconds the last step's host waited on collectives (reduce and share_params): the
  // communication that computation did not hide.
  virtual double seconds() const = 0;
};

} // namespace finegpt
