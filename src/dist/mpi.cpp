// The MPI communicator (see comm.h): CPU buffers, in-place collectives, and a watchdog that
// ends this rank with a clear message when a collective makes no progress for timeout_s (a
// rank died or hangs); mpirun / srun then stop the others. MPI is called from the main thread
// only (MPI_THREAD_FUNNELED); the watchdog never calls MPI.
#include "core/error.h"
#include "dist/comm.h"

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <mpi.h>
#include <thread>

namespace finegpt {

bool mpi_compiled_in() { return true; }

namespace {

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

void check(int rc, const char *what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fail("MPI ", what, " failed: ", std::string(msg, len));
}

int as_int(size_t n) {
  FINEGPT_CHECK(n <= size_t(INT_MAX), "MPI message of ", n, " elements is too large");
  return int(n);
}

class MpiCommunicator final : public Communicator {
public:
  explicit MpiCommunicator(double timeout_s) : timeout_ms_(int64_t(timeout_s * 1000)) {
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "init");
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &world_);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    watchdog_ = std::thread([this] { watch(); });
  }
  ~MpiCommunicator() override {
    stop_ = true;
    watchdog_.join();
    MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int world() const override { return world_; }
  std::string name() const override { return "mpi"; }

  void allreduce_sum(float *data, size_t n) override {
    Busy b(this, "all-reduce");
    check(MPI_Allreduce(MPI_IN_PLACE, data, as_int(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
          "all-reduce");
  }
  void allreduce_sum(double *data, size_t n) override {
    Busy b(this, "all-reduce");
    check(MPI_Allreduce(MPI_IN_PLACE, data, as_int(n), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
          "all-reduce");
  }
  void reduce_scatter_sum(float *data, size_t n) override {
    Busy b(this, "reduce-scatter");
    std::vector<int> counts = shard_counts(n);
    auto [begin, end] = shard_range(n, rank_);
    scratch_.resize(end - begin);
    check(MPI_Reduce_scatter(data, scratch_.data(), counts.data(), MPI_FLOAT, MPI_SUM,
                             MPI_COMM_WORLD),
          "reduce-scatter");
    std::copy(scratch_.begin(), scratch_.end(), data + begin);
  }
  void all_gather(float *data, size_t n) override {
    Busy b(this, "all-gather");
    std::vector<int> counts = shard_counts(n), displs(world_);
    for (int r = 0; r < world_; ++r)
      displs[r] = as_int(shard_range(n, r).first);
    check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, counts.data(), displs.data(),
                         MPI_FLOAT, MPI_COMM_WORLD),
          "all-gather");
  }
  void broadcast(void *data, size_t bytes) override {
    Busy b(this, "broadcast");
    check(MPI_Bcast(data, as_int(bytes), MPI_BYTE, 0, MPI_COMM_WORLD), "broadcast");
  }
  std::vector<uint8_t> all_gather_bytes(const void *data, size_t bytes) override {
    Busy b(this, "all-gather");
    std::vector<uint8_t> out(bytes * world_);
    check(MPI_Allgather(data, as_int(bytes), MPI_BYTE, out.data(), as_int(bytes), MPI_BYTE,
                        MPI_COMM_WORLD),
          "all-gather");
    return out;
  }
  void barrier() override {
    Busy b(this, "barrier");
    check(MPI_Barrier(MPI_COMM_WORLD), "barrier");
  }
  [[noreturn]] void abort(int code) override {
    std::fflush(nullptr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

private:
  // Marks a collective in progress for the watchdog.
  struct Busy {
    MpiCommunicator *c;
    Busy(MpiCommunicator *comm, const char *what) : c(comm) {
      c->what_ = what;
      c->busy_since_ms_ = now_ms();
    }
    ~Busy() { c->busy_since_ms_ = 0; }
  };

  std::vector<int> shard_counts(size_t n) const {
    std::vector<int> counts(world_);
    for (int r = 0; r < world_; ++r) {
      auto [b, e] = shard_range(n, r);
      counts[r] = as_int(e - b);
    }
    return counts;
  }

  void watch() {
    while (!stop_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      const int64_t since = busy_since_ms_;
      if (since && timeout_ms_ > 0 && now_ms() - since > timeout_ms_) {
        std::fprintf(stderr,
                     "finegpt train: error: rank %d of %d: no progress in %s for %.0f s: another "
                     "rank died or hangs (dist_timeout); stopping\n",
                     rank_, world_, what_.load(), timeout_ms_ / 1000.0);
        std::fflush(nullptr);
        std::_Exit(3);
      }
    }
  }

  int rank_ = 0, world_ = 1;
  int64_t timeout_ms_;
  std::atomic<int64_t> busy_since_ms_{0};
  std::atomic<const char *> what_{""};
  std::atomic<bool> stop_{false};
  std::thread watchdog_;
  std::vector<float> scratch_;
};

} // namespace

std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s) {
  return std::make_unique<MpiCommunicator>(timeout_s);
}

} // namespace finegpt
