// The communicator seam: how ranks of a data-parallel run talk. Single-process (every
// collective returns its input), MPI (CPU buffers; also how ranks find each other), and NCCL
// (GPU buffers, bootstrapped through MPI; with the CUDA backend). Chosen from how the program
// was launched: under mpirun / srun with more than one rank, MPI; else single-process. A build
// without MPI swaps in a stub file whose make_mpi_communicator() says so.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace finegpt {

class Communicator {
public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual std::string name() const = 0; // "single" | "mpi"

  // In place: every rank ends with the element-wise sum over ranks.
  virtual void allreduce_sum(float *data, size_t n) = 0;
  virtual void allreduce_sum(double *data, size_t n) = 0;
  // `data` holds n floats on every rank, split into world() contiguous shards
  // (shard_range()); rank r ends with the sum over ranks of its own shard, in place.
  virtual void reduce_scatter_sum(float *data, size_t n) = 0;
  // In place: every rank contributes its own shard of `data` and ends with all of them.
  virtual void all_gather(float *data, size_t n) = 0;
  // Rank 0's bytes to everyone.
  virtual void broadcast(void *data, size_t bytes) = 0;
  // Every rank's `bytes` bytes, concatenated in rank order (the result on every rank).
  virtual std::vector<uint8_t> all_gather_bytes(const void *data, size_t bytes) = 0;
  virtual void barrier() = 0;
  // Ends every rank now (after a fatal error on one of them), with exit code `code`.
  [[noreturn]] virtual void abort(int code) = 0;

  bool is_root() const { return rank() == 0; }
  // The part of [0, n) that `rank` owns in reduce_scatter_sum / all_gather: equal shards of
  // ceil(n / world), the last one shorter (possibly empty).
  std::pair<size_t, size_t> shard_range(size_t n, int rank) const;
};

// The communicator for this process: MPI when launched by mpirun/srun with more than one rank
// (environment variables of Open MPI, MPICH/PMI or Slurm), else single-process.
// `timeout_s`: a collective that makes no progress for this long means a rank died or hangs;
// every rank then stops with an error instead of waiting forever.
std::unique_ptr<Communicator> make_communicator(double timeout_s);
std::unique_ptr<Communicator> make_single_communicator();
// MPI (dist/mpi.cpp), or an Error from the stub when the build has no MPI.
std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s);
bool launched_with_multiple_ranks();
bool mpi_compiled_in();

} // namespace finegpt
