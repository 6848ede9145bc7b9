// The kernel-host engine behind shim/cuda_runtime.h: runs a CUDA kernel's own source on the
// CPU. Each CUDA thread is a host thread (a pool, reused across blocks); a grid's blocks run one
// after another, so function-local statics are the running block's static shared memory, and
// dynamic shared memory is one fresh buffer per block. __syncthreads is a barrier of the block's
// live threads; a warp collective (shuffle, mma.sync) is a barrier of the warp's live lanes over
// double-buffered per-lane slots, so one barrier per collective suffices: a lane rewrites its
// slot of buffer p only at collective s + 2, after every lane passed barrier s + 1 and so
// finished reading collective s. Barriers are atomics, which ThreadSanitizer understands:
// accesses of different threads between two barriers are unordered, so a missing
// __syncthreads is reported as a data race whatever the timing.
// Launch configurations CUDA rejects (an empty grid, grid.y or grid.z above 65535, more than
// 1024 threads, more dynamic shared memory than the smallest target, sm_86/89, grants) set
// cudaErrorInvalidConfiguration for the next cudaGetLastError, as on a GPU.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "cuda_bf16.h"
#include "cuda_runtime.h"

namespace kernel_host {

namespace {

[[noreturn]] void misuse(const char *what) {
  std::fprintf(stderr, "kernel_host: block (%u,%u,%u) thread (%u,%u,%u): %s\n", blockIdx.x,
               blockIdx.y, blockIdx.z, threadIdx.x, threadIdx.y, threadIdx.z, what);
  std::abort();
}

// A barrier of `expected` threads; a thread that has returned from the kernel drops out. State
// (expected, arrived) is one atomic word, so arrivals and drops cannot miss each other; waiters
// sleep on the generation (a futex through std::atomic::wait) and the last arrival wakes them.
// Arrivals are acq_rel read-modify-writes of one word and the release is a release store that
// waiters acquire: everything before the barrier in any thread happens before everything after
// it in every thread, and nothing else is ordered (ThreadSanitizer sees the same).
class Barrier {
public:
  explicit Barrier(int expected) : state_(uint64_t(uint32_t(expected)) << 32) {}
  void arrive_and_wait() {
    const uint32_t gen = gen_.load(std::memory_order_acquire);
    uint64_t s = state_.load(std::memory_order_relaxed);
    for (;;) {
      const uint32_t expected = uint32_t(s >> 32), arrived = uint32_t(s) + 1;
      const uint64_t next =
          arrived == expected ? uint64_t(expected) << 32 : (s & ~0xffffffffull) | arrived;
      if (state_.compare_exchange_weak(s, next, std::memory_order_acq_rel)) {
        if (arrived == expected) return release();
        break;
      }
    }
    while (gen_.load(std::memory_order_acquire) == gen)
      gen_.wait(gen, std::memory_order_acquire);
  }
  void drop() {
    uint64_t s = state_.load(std::memory_order_relaxed);
    for (;;) {
      const uint32_t expected = uint32_t(s >> 32) - 1, arrived = uint32_t(s);
      const bool complete = arrived > 0 && arrived == expected;
      const uint64_t next = uint64_t(expected) << 32 | (complete ? 0u : arrived);
      if (state_.compare_exchange_weak(s, next, std::memory_order_acq_rel)) {
        if (complete) release();
        return;
      }
    }
  }

private:
  void release() {
    gen_.fetch_add(1, std::memory_order_acq_rel);
    gen_.notify_all();
  }
  std::atomic<uint64_t> state_; // expected << 32 | arrived
  std::atomic<uint32_t> gen_{0};
};

enum class Kind : int { Shuffle = 1, Mma = 2, Ldmatrix = 3 };
struct Slot {
  uint64_t seq = ~uint64_t(0); // which collective of its lane wrote it
  Kind kind{};
  uint64_t value = 0;
  uint32_t a[4] = {}, b[2] = {};
};
struct Warp {
  explicit Warp(int lanes) : bar(lanes) {}
  Barrier bar;
  Slot slots[2][32];
};
struct Block {
  explicit Block(int threads) : bar(threads) {}
  Barrier bar;
  std::vector<std::unique_ptr<Warp>> warps;
  std::unique_ptr<unsigned char[]> smem;
  size_t smem_bytes = 0;
};

thread_local Block *tl_block = nullptr;
thread_local uint64_t tl_seq = 0; // collectives this lane has done in this launch
thread_local int tl_lane = 0, tl_warp = 0;

// Host threads that run CUDA threads: worker i runs thread i of the current block. Each worker
// sleeps on its own word, so a block wakes exactly the workers it needs.
class Pool {
public:
  ~Pool() {
    stop_.store(true, std::memory_order_release);
    for (auto &w : workers_) {
      w->go.fetch_add(1, std::memory_order_release);
      w->go.notify_one();
    }
    for (auto &w : workers_)
      w->thread.join();
  }
  void run(int n, const std::function<void(int)> &task) {
    while (int(workers_.size()) < n) {
      workers_.push_back(std::make_unique<Worker>());
      Worker *w = workers_.back().get();
      w->thread = std::thread([this, w, id = int(workers_.size()) - 1] { work(*w, id); });
    }
    task_ = &task;
    pending_.store(n, std::memory_order_relaxed);
    for (int i = 0; i < n; i++) {
      workers_[size_t(i)]->go.fetch_add(1, std::memory_order_release);
      workers_[size_t(i)]->go.notify_one();
    }
    for (int left; (left = pending_.load(std::memory_order_acquire)) != 0;)
      pending_.wait(left, std::memory_order_acquire);
  }

private:
  struct Worker {
    std::atomic<uint32_t> go{0};
    std::thread thread;
  };
  void work(Worker &w, int id) {
    uint32_t seen = 0;
    for (;;) {
      uint32_t g;
      while ((g = w.go.load(std::memory_order_acquire)) == seen)
        w.go.wait(seen, std::memory_order_acquire);
      seen = g;
      if (stop_.load(std::memory_order_acquire)) return;
      (*task_)(id);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
    }
  }
  std::vector<std::unique_ptr<Worker>> workers_;
  const std::function<void(int)> *task_ = nullptr;
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

Pool &pool() {
  static Pool p;
  return p;
}

std::mutex state_mu;
cudaError_t last_error = cudaSuccess;
int launches = 0;
bool execute = true;

// Dynamic shared memory the smallest target grants (sm_86 and sm_89: 99 KB per block).
constexpr size_t MAX_DYNAMIC_SMEM = 99 * 1024;

// Writes this lane's slot of the current collective, waits for the warp, and returns the slots
// of the same collective; every lane must be at the same collective of the same kind.
Slot *collective(Kind kind, const Slot &mine) {
  if (!tl_block) misuse("warp collective outside a kernel");
  Warp &w = *tl_block->warps[size_t(tl_warp)];
  Slot *slots = w.slots[tl_seq & 1];
  slots[tl_lane] = mine;
  slots[tl_lane].seq = tl_seq;
  slots[tl_lane].kind = kind;
  w.bar.arrive_and_wait();
  tl_seq++;
  return slots;
}
void check_peer(const Slot &peer, Kind kind) {
  if (peer.seq != tl_seq - 1 || peer.kind != kind)
    misuse("warp collective not reached by every lane (a lane returned, or lanes diverged)");
}

} // namespace

void run(dim3 grid, dim3 block, size_t smem, const std::function<void()> &body) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  {
    std::lock_guard<std::mutex> lock(state_mu);
    launches++;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 ||
        grid.z > 65535 || threads == 0 || threads > 1024 || block.z > 64 ||
        smem > MAX_DYNAMIC_SMEM) {
      last_error = cudaErrorInvalidConfiguration;
      return;
    }
    if (!execute) return;
  }
  for (unsigned bz = 0; bz < grid.z; bz++)
    for (unsigned by = 0; by < grid.y; by++)
      for (unsigned bx = 0; bx < grid.x; bx++) {
        Block blk{int(threads)};
        for (uint64_t w = 0; w < (threads + 31) / 32; w++)
          blk.warps.push_back(
              std::make_unique<Warp>(int(std::min<uint64_t>(32, threads - 32 * w))));
        blk.smem.reset(new unsigned char[smem ? smem : 1]);
        blk.smem_bytes = smem;
        std::memset(blk.smem.get(), 0xff, smem); // NaN as bf16 and fp32: unwritten reads show
        pool().run(int(threads), [&](int id) {
          threadIdx = {unsigned(id) % block.x, unsigned(id) / block.x % block.y,
                       unsigned(id) / (block.x * block.y)};
          blockIdx = {bx, by, bz};
          blockDim = block, gridDim = grid;
          tl_block = &blk, tl_seq = 0, tl_lane = id % 32, tl_warp = id / 32;
          body();
          blk.warps[size_t(tl_warp)]->bar.drop();
          blk.bar.drop();
          tl_block = nullptr;
        });
      }
}

unsigned char *dynamic_smem() {
  if (!tl_block) misuse("dynamic shared memory outside a kernel");
  return tl_block->smem.get();
}

void sync_block() {
  if (!tl_block) misuse("__syncthreads outside a kernel");
  tl_block->bar.arrive_and_wait();
}

uint64_t exchange(uint64_t mine, int src_lane) {
  Slot s;
  s.value = mine;
  const Slot *slots = collective(Kind::Shuffle, s);
  if (src_lane < 0 || src_lane >= 32) misuse("shuffle from a lane outside the warp");
  check_peer(slots[src_lane], Kind::Shuffle);
  return slots[src_lane].value;
}

// PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type": lane = 4 groupID +
// threadID_in_group; each .b32 register holds two bf16, the lower-indexed element in the low
// half. A (16x16, row): a_i at row groupID (+8 for i in {2,3,6,7}), col 2 threadID_in_group +
// (i & 1) (+8 for i >= 4), so register r = i / 2 covers (row + 8 (r & 1), col + 8 (r >> 1)).
// B (16x8, col): b_i at row (k) 2 threadID_in_group + (i & 1) (+8 for i >= 2), col groupID.
// C, D (16x8, f32): c_i at row groupID (+8 for i >= 2), col 2 threadID_in_group + (i & 1).
void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  Slot s;
  for (int r = 0; r < 4; r++)
    s.a[r] = a[r];
  s.b[0] = b[0], s.b[1] = b[1];
  const Slot *slots = collective(Kind::Mma, s);
  for (int l = 0; l < 32; l++)
    check_peer(slots[l], Kind::Mma);
  auto half = [](uint32_t reg, int hi) {
    return __bfloat162float(__nv_bfloat16{uint16_t(hi ? reg >> 16 : reg & 0xffffu)});
  };
  auto A = [&](int row, int k) {
    const Slot &src = slots[4 * (row % 8) + (k % 8) / 2];
    return half(src.a[(row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0)], k & 1);
  };
  auto B = [&](int k, int col) {
    const Slot &src = slots[4 * col + (k % 8) / 2];
    return half(src.b[k >= 8 ? 1 : 0], k & 1);
  };
  const int g = tl_lane >> 2, t = tl_lane & 3;
  for (int i = 0; i < 4; i++) {
    const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
    double acc = d[i]; // products of bf16 are exact in fp32; the sum is rounded once
    for (int k = 0; k < 16; k++)
      acc += double(A(row, k)) * double(B(k, col));
    d[i] = float(acc);
  }
}

// PTX ISA, ldmatrix: for .m8n8 .b16, lane 4 g + t receives in register i the elements (row g,
// cols 2t, 2t+1) of matrix i, whose row r starts at the address lane 8 i + r gave; .trans
// delivers the matrix transposed: (rows 2t, 2t+1, col g). The lower-indexed element is the low
// half of the register.
void ldmatrix_x4(uint32_t (&r)[4], const void *row, bool trans) {
  if (!tl_block) misuse("ldmatrix outside a kernel");
  const auto *lo = tl_block->smem.get(), *p = static_cast<const unsigned char *>(row);
  if (reinterpret_cast<uintptr_t>(p) % 16 != 0)
    misuse("ldmatrix: a row address not 16-byte aligned");
  if (p < lo || p + 16 > lo + tl_block->smem_bytes)
    misuse("ldmatrix: a row outside the block's dynamic shared memory");
  Slot s;
  s.value = reinterpret_cast<uintptr_t>(p);
  s.a[0] = trans;
  const Slot *slots = collective(Kind::Ldmatrix, s);
  for (int l = 0; l < 32; l++) {
    check_peer(slots[l], Kind::Ldmatrix);
    if (slots[l].a[0] != s.a[0]) misuse("ldmatrix: lanes disagree on .trans");
  }
  auto element = [&](int matrix, int row, int col) {
    uint16_t v;
    std::memcpy(&v,
                reinterpret_cast<const unsigned char *>(slots[8 * matrix + row].value) + 2 * col,
                sizeof v);
    return uint32_t(v);
  };
  const int g = tl_lane >> 2, t = tl_lane & 3;
  for (int i = 0; i < 4; i++)
    r[i] = trans ? element(i, 2 * t, g) | element(i, 2 * t + 1, g) << 16
                 : element(i, g, 2 * t) | element(i, g, 2 * t + 1) << 16;
}

void set_execute(bool on) {
  std::lock_guard<std::mutex> lock(state_mu);
  execute = on;
}

int take_launch_count() {
  std::lock_guard<std::mutex> lock(state_mu);
  const int n = launches;
  launches = 0;
  return n;
}

} // namespace kernel_host

cudaError_t cudaGetLastError() {
  std::lock_guard<std::mutex> lock(kernel_host::state_mu);
  const cudaError_t e = kernel_host::last_error;
  kernel_host::last_error = cudaSuccess;
  return e;
}
const char *cudaGetErrorName(cudaError_t e) {
  return e == cudaSuccess ? "cudaSuccess" : "cudaErrorInvalidConfiguration";
}
const char *cudaGetErrorString(cudaError_t e) {
  return e == cudaSuccess ? "no error" : "invalid configuration argument";
}
