// The single-process communicator and launch detection (see comm.h).
#include "dist/comm.h"

#include "core/error.h"

#include <cstdlib>
#include <cstring>

namespace finegpt {

std::pair<size_t, size_t> Communicator::shard_range(size_t n, int r) const {
  const size_t w = size_t(world()), per = (n + w - 1) / w;
  const size_t begin = std::min(n, per * size_t(r));
  return {begin, std::min(n, begin + per)};
}

namespace {

class SingleCommunicator final : public Communicator {
public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  std::string name() const override { return "single"; }
  void allreduce_sum(float *, size_t) override {}
  void allreduce_sum(double *, size_t) override {}
  void reduce_scatter_sum(float *, size_t) override {}
  void all_gather(float *, size_t) override {}
  void broadcast(void *, size_t) override {}
  std::vector<uint8_t> all_gather_bytes(const void *data, size_t bytes) override {
    auto p = static_cast<const uint8_t *>(data);
    return std::vector<uint8_t>(p, p + bytes);
  }
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::exit(code); }
};

int env_int(const char *name) {
  const char *v = std::getenv(name);
  return v ? std::atoi(v) : 0;
}

} // namespace

bool launched_with_multiple_ranks() {
  for (const char *v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"})
    if (env_int(v) > 1) return true;
  return false;
}

std::unique_ptr<Communicator> make_single_communicator() {
  return std::make_unique<SingleCommunicator>();
}

std::unique_ptr<Communicator> make_communicator(double timeout_s) {
  if (!launched_with_multiple_ranks()) return make_single_communicator();
  return make_mpi_communicator(timeout_s);
}

} // namespace finegpt
