// Tests of the NCCL communicator (dist/nccl.h). Everywhere: whether NCCL is compiled in, the
// device-selection rule from the launcher's environment, and a clean Error (not a crash) from
// make_nccl_comm without a device or without NCCL. With a CUDA device and NCCL (skipped
// otherwise): a single-rank communicator leaves data unchanged through every collective, alone
// and fused in a group; after_compute() orders a collective after earlier compute work;
// compute_waits() lets compute work follow collectives; and a rank whose peer never arrives
// stops at the timeout with an Error instead of hanging.
#include "cuda_testing.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backend/cuda_ops.h"
#include "core/error.h"
#include "core/rng.h"
#include "dist/comm.h"
#include "dist/nccl.h"

#ifdef FINEGPT_HAVE_NCCL
#include <cuda_runtime.h>
#endif

using namespace finegpt;
namespace cu = finegpt::cuda;

namespace {

// Sets the launcher's local-rank variables for one test and restores them after.
class LocalRankEnv {
public:
  static constexpr const char *NAMES[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                                          "SLURM_LOCALID"};
  LocalRankEnv() {
    for (const char *n : NAMES) {
      const char *v = std::getenv(n);
      saved_.push_back(v ? std::optional<std::string>(v) : std::nullopt);
      unsetenv(n);
    }
  }
  ~LocalRankEnv() {
    for (size_t i = 0; i < saved_.size(); i++)
      if (saved_[i])
        setenv(NAMES[i], saved_[i]->c_str(), 1);
      else
        unsetenv(NAMES[i]);
  }
  void set(const char *name, const char *value) { setenv(name, value, 1); }

private:
  std::vector<std::optional<std::string>> saved_;
};

std::string error_of(const std::function<void()> &f) {
  try {
    f();
  } catch (const Error &e) {
    return e.what();
  }
  return "";
}

} // namespace

TEST(Nccl, CompiledInMatchesTheBuild) {
#ifdef FINEGPT_HAVE_NCCL
  EXPECT_TRUE(nccl_compiled_in());
  EXPECT_TRUE(cu::compiled()); // NCCL comes only with the CUDA backend
#else
  EXPECT_FALSE(nccl_compiled_in());
#endif
}

TEST(Nccl, LocalRankFromTheLauncher) {
  LocalRankEnv env;
  EXPECT_EQ(local_rank_from_env(), 0); // a single process
  env.set("SLURM_LOCALID", "3");
  EXPECT_EQ(local_rank_from_env(), 3);
  env.set("MPI_LOCALRANKID", "2"); // MPICH's before Slurm's
  EXPECT_EQ(local_rank_from_env(), 2);
  env.set("OMPI_COMM_WORLD_LOCAL_RANK", "1"); // Open MPI's first
  EXPECT_EQ(local_rank_from_env(), 1);
  env.set("OMPI_COMM_WORLD_LOCAL_RANK", ""); // empty: as if unset
  EXPECT_EQ(local_rank_from_env(), 2);
  for (const char *bad : {"x", "-1", "2a", "99999999999"}) {
    env.set("OMPI_COMM_WORLD_LOCAL_RANK", bad);
    const std::string msg = error_of([] { local_rank_from_env(); });
    EXPECT_NE(msg.find("OMPI_COMM_WORLD_LOCAL_RANK"), std::string::npos) << bad << ": " << msg;
  }
}

TEST(Nccl, DeviceForLocalRank) {
  EXPECT_EQ(device_for_local_rank(0, 8), 0);
  EXPECT_EQ(device_for_local_rank(7, 8), 7);
  EXPECT_EQ(device_for_local_rank(0, 2), 0);
  EXPECT_EQ(device_for_local_rank(1, 2), 1);
  // One visible device: every rank's own (CUDA_VISIBLE_DEVICES per rank), or shared (NCCL says).
  EXPECT_EQ(device_for_local_rank(0, 1), 0);
  EXPECT_EQ(device_for_local_rank(3, 1), 0);
  // None visible: nothing to choose; selecting the device reports it.
  EXPECT_EQ(device_for_local_rank(2, 0), 2);
  // More ranks on the node than GPUs: a clear one-line error.
  const std::string msg = error_of([] { device_for_local_rank(2, 2); });
  EXPECT_NE(msg.find("local rank 2 has no GPU of its own"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_THROW(device_for_local_rank(8, 4), Error);
}

TEST(Nccl, LocalDeviceIndexFollowsTheEnvironment) {
  LocalRankEnv env;
  EXPECT_EQ(local_device_index(), 0); // a single process
  const int devices = cu::device_count();
  env.set("SLURM_LOCALID", "1");
  if (devices == 0)
    EXPECT_EQ(local_device_index(), 1);
  else if (devices == 1)
    EXPECT_EQ(local_device_index(), 0);
  else
    EXPECT_EQ(local_device_index(), 1);
  env.set("OMPI_COMM_WORLD_LOCAL_RANK", "0");
  EXPECT_EQ(local_device_index(), 0);
}

TEST(Nccl, MakeCommWithoutDeviceOrNcclIsAnError) {
  if (nccl_compiled_in() && cu::device_count() > 0)
    GTEST_SKIP() << "a CUDA device is here: covered by the device tests";
  auto host = make_single_communicator();
  const std::string msg = error_of([&] { make_nccl_comm(*host); });
  ASSERT_FALSE(msg.empty()) << "make_nccl_comm did not throw finegpt::Error";
  std::printf("the error, as expected: %s\n", msg.c_str());
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  if (nccl_compiled_in())
    EXPECT_NE(msg.find("NCCL needs a CUDA device"), std::string::npos) << msg;
  else
    EXPECT_NE(msg.find("this build has no NCCL"), std::string::npos) << msg;
}

// ---------------------------------------------------------------- with a device and NCCL

#ifdef FINEGPT_HAVE_NCCL

namespace {

#define REQUIRE_NCCL_DEVICE()                                                                      \
  do {                                                                                             \
    REQUIRE_DEVICE();                                                                              \
    if (!nccl_compiled_in()) GTEST_SKIP() << "no NCCL in this build: skipped";                     \
  } while (0)

// A device allocation freed at scope exit.
struct DeviceBuffer {
  void *ptr;
  explicit DeviceBuffer(size_t bytes) : ptr(cu::device_malloc(bytes)) {}
  ~DeviceBuffer() { cu::device_free(ptr); }
  DeviceBuffer(DeviceBuffer &&o) noexcept : ptr(o.ptr) { o.ptr = nullptr; }
  DeviceBuffer &operator=(DeviceBuffer &&) = delete;
  template <typename T> T *as() const { return static_cast<T *>(ptr); }
};

std::vector<cu::bf16> random_bf16(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<cu::bf16> v(n);
  for (auto &e : v)
    e = cu::to_bf16(rng.normal());
  return v;
}
std::vector<float> random_float(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto &e : v)
    e = rng.normal();
  return v;
}

template <typename T> std::vector<T> to_host(const DeviceBuffer &b, size_t n) {
  std::vector<T> v(n);
  cu::copy_to_host(v.data(), b.ptr, n * sizeof(T));
  return v;
}
template <typename T> DeviceBuffer to_device(const std::vector<T> &v) {
  DeviceBuffer b(v.size() * sizeof(T));
  cu::copy_to_device(b.ptr, v.data(), v.size() * sizeof(T));
  return b;
}
template <typename T> bool same_bits(const std::vector<T> &a, const std::vector<T> &b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

std::unique_ptr<DeviceComm> single_rank_comm() {
  static auto host = make_single_communicator();
  auto comm = make_nccl_comm(*host, 60);
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->world(), 1);
  return comm;
}

// A host communicator that claims a second rank which never arrives.
class LonelyHost final : public Communicator {
public:
  int rank() const override { return 0; }
  int world() const override { return 2; }
  std::string name() const override { return "lonely"; }
  void allreduce_sum(float *, size_t) override {}
  void allreduce_sum(double *, size_t) override {}
  void reduce_scatter_sum(float *, size_t) override {}
  void all_gather(float *, size_t) override {}
  void broadcast(void *, size_t) override {}
  std::vector<uint8_t> all_gather_bytes(const void *, size_t) override { return {}; }
  void barrier() override {}
  [[noreturn]] void abort(int code) override { std::exit(code); }
};

} // namespace

TEST(NcclDevice, AllReduceOneRankLeavesDataUnchanged) {
  REQUIRE_NCCL_DEVICE();
  auto comm = single_rank_comm();
  const size_t n = 1000003; // odd, not a multiple of any chunk
  const auto h = random_bf16(n, 1);
  const auto f = random_float(n, 2);
  DeviceBuffer dh = to_device(h), df = to_device(f);
  comm->after_compute();
  comm->allreduce_sum(dh.as<cu::bf16>(), n);
  comm->allreduce_sum(df.as<float>(), n);
  comm->allreduce_sum(df.as<float>(), 0); // nothing to do
  comm->synchronize();
  EXPECT_TRUE(same_bits(to_host<cu::bf16>(dh, n), h));
  EXPECT_TRUE(same_bits(to_host<float>(df, n), f));
}

TEST(NcclDevice, ReduceAndBroadcastToRoot0) {
  REQUIRE_NCCL_DEVICE();
  auto comm = single_rank_comm();
  const size_t n = 4099;
  const auto a = random_bf16(n, 3), b = random_bf16(n, 4);
  DeviceBuffer da = to_device(a), db = to_device(b);
  comm->after_compute();
  comm->reduce_sum(da.as<cu::bf16>(), n, 0);
  comm->broadcast(db.as<cu::bf16>(), n, 0);
  comm->synchronize();
  EXPECT_TRUE(same_bits(to_host<cu::bf16>(da, n), a));
  EXPECT_TRUE(same_bits(to_host<cu::bf16>(db, n), b));
  EXPECT_THROW(comm->broadcast(db.as<cu::bf16>(), n, 1), Error); // no rank 1
}

TEST(NcclDevice, GroupFusesSeveralCalls) {
  REQUIRE_NCCL_DEVICE();
  auto comm = single_rank_comm();
  const size_t n = 65537;
  std::vector<std::vector<cu::bf16>> hs;
  std::vector<DeviceBuffer> bufs;
  bufs.reserve(6);
  for (int i = 0; i < 4; i++) {
    hs.push_back(random_bf16(n + i, 10 + i));
    bufs.push_back(to_device(hs.back()));
  }
  const auto f = random_float(n, 20);
  bufs.push_back(to_device(f));
  comm->after_compute();
  for (int rep = 0; rep < 2; rep++) { // a group after a group
    comm->group_start();
    comm->allreduce_sum(bufs[0].as<cu::bf16>(), n);
    comm->allreduce_sum(bufs[1].as<cu::bf16>(), n + 1);
    comm->reduce_sum(bufs[2].as<cu::bf16>(), n + 2, 0);
    comm->broadcast(bufs[3].as<cu::bf16>(), n + 3, 0);
    comm->allreduce_sum(bufs[4].as<float>(), n);
    comm->group_end();
  }
  comm->compute_waits();
  comm->synchronize();
  for (int i = 0; i < 4; i++)
    EXPECT_TRUE(same_bits(to_host<cu::bf16>(bufs[i], n + i), hs[i])) << "buffer " << i;
  EXPECT_TRUE(same_bits(to_host<float>(bufs[4], n), f));
}

TEST(NcclDevice, AfterComputeOrdersCollectivesAfterComputeWork) {
  REQUIRE_NCCL_DEVICE();
  auto comm = single_rank_comm();
  // Compute work that takes a while (memsets of 256 MiB, some ms in all), then a small buffer
  // the collective reads, written last on the compute stream.
  const size_t big = size_t(256) << 20, n = 4096;
  DeviceBuffer dbig(big), dsmall(n * sizeof(cu::bf16));
  cu::synchronize();
  for (int i = 0; i < 16; i++)
    cu::device_memset(dbig.ptr, i, big);
  cu::device_memset(dsmall.ptr, 0x3c, n * sizeof(cu::bf16));
  comm->after_compute();
  comm->broadcast(dsmall.as<cu::bf16>(), n, 0);
  comm->allreduce_sum(dsmall.as<cu::bf16>(), n);
  comm->synchronize();
  // The comm stream waited for all of the compute work: none of it is still running.
  EXPECT_EQ(cudaStreamQuery(cudaStreamLegacy), cudaSuccess)
      << "synchronize() returned while compute work issued before after_compute() still ran";
  const auto got = to_host<cu::bf16>(dsmall, n);
  for (size_t i = 0; i < n; i++)
    ASSERT_EQ(got[i].bits, 0x3c3c) << "element " << i;
}

TEST(NcclDevice, ComputeWaitsForCollectives) {
  REQUIRE_NCCL_DEVICE();
  auto comm = single_rank_comm();
  const size_t n = 1 << 20;
  const auto h = random_bf16(n, 5);
  DeviceBuffer d = to_device(h);
  comm->after_compute();
  comm->allreduce_sum(d.as<cu::bf16>(), n);
  comm->compute_waits();
  // Compute work after the collective: zero the first half, then read everything back.
  cu::device_memset(d.ptr, 0, n); // n bytes = n/2 bf16
  cu::synchronize();
  comm->synchronize();
  const auto got = to_host<cu::bf16>(d, n);
  for (size_t i = 0; i < n; i++)
    ASSERT_EQ(got[i].bits, i < n / 2 ? 0 : h[i].bits) << "element " << i;
}

TEST(NcclDevice, SynchronizeWithNothingIssued) {
  REQUIRE_NCCL_DEVICE();
  auto comm = single_rank_comm();
  comm->synchronize();
  comm->after_compute();
  comm->synchronize();
}

// Last: leaves NCCL's bootstrap thread for the missing rank behind in this process.
TEST(NcclDevice, InitTimesOutWhenAPeerNeverArrives) {
  REQUIRE_NCCL_DEVICE();
  LonelyHost host;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string msg = error_of([&] { make_nccl_comm(host, 2.0); });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(msg.find("NCCL init made no progress for 2 s"), std::string::npos) << msg;
  EXPECT_NE(msg.find("another rank died or hangs"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_LT(s, 30.0);
}

#endif // FINEGPT_HAVE_NCCL
