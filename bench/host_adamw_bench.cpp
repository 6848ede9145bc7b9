// The offloaded optimizer's host update (optim/optim.h host_adamw: bf16 gradients widened, the CPU
// engine's AdamW on the fp32 master weights and moments, bf16 parameters written back) against
// this machine's memory bandwidth measured in the same run by a STREAM-style copy and triad
// (OpenMP, first touch by the same threads, best of the repeats, STREAM's byte counting: copy
// 8 and triad 12 bytes per element, write-allocate traffic not counted). The host update moves
// 28 bytes per parameter (planner.h kOffloadHostBytes): reads 2 (gradient) + 12 (master, m, v),
// writes 12 + 2 (parameter); every line it writes it has read, so it has no write-allocate
// traffic either (the write-allocate figures are printed too). Prints a line per kernel and one
// JSON line.
//
// usage: host_adamw_bench [PARAMS (default 64M)] [REPEATS (default 5)]
#include "backend/cuda_ops.h"
#include "optim/optim.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace finegpt;

namespace {

template <class F> double best_seconds(int repeats, F &&f) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  return best;
}

// Uninitialised storage, first touched in parallel below (pages land with the threads using them).
template <class T> T *raw(size_t n) {
  return static_cast<T *>(std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64));
}

} // namespace

int main(int argc, char **argv) {
  const size_t n = argc > 1 ? size_t(std::strtod(argv[1], nullptr)) : size_t(64) << 20;
  const int repeats = argc > 2 ? std::max(1, std::atoi(argv[2])) : 5;
  if (n < 1024) {
    std::fprintf(stderr, "host_adamw_bench: PARAMS must be at least 1024\n");
    return 2;
  }
  float *a = raw<float>(n), *b = raw<float>(n), *c = raw<float>(n);
  float *master = raw<float>(n), *m = raw<float>(n), *v = raw<float>(n);
  cuda::bf16 *staging = raw<cuda::bf16>(n);
  const long N = long(n);
#pragma omp parallel for schedule(static)
  for (long i = 0; i < N; ++i) {
    a[i] = 0.0f, b[i] = 1.0f, c[i] = 2.0f;
    master[i] = 0.01f * float(i % 1000) - 5.0f, m[i] = 0.0f, v[i] = 0.0f;
    staging[i] = cuda::to_bf16(1e-3f * float(i % 777) - 0.3f);
  }
  const double copy_s = best_seconds(repeats, [&] {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < N; ++i)
      a[i] = b[i];
  });
  const double triad_s = best_seconds(repeats, [&] {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < N; ++i)
      a[i] = b[i] + 3.0f * c[i];
  });
  // The same chunking as Optimizer<CudaBackend>::host_update: one range, weight decay on.
  std::vector<HostChunk> chunks;
  for (size_t o = 0; o < n; o += kHostAdamWChunk)
    chunks.push_back({o, std::min(kHostAdamWChunk, n - o), 1e-4f, 0.1f});
  const OptimConfig cfg{};
  int t = 0;
  const double adamw_s = best_seconds(repeats, [&] {
    // The parameters it writes become the next repeat's gradients: the values stay finite and
    // the work is the same each time.
    host_adamw(staging, master, m, v, chunks, cfg, ++t, 1.0f);
  });
  const double copy_gbs = 8.0 * double(n) / copy_s / 1e9;
  const double triad_gbs = 12.0 * double(n) / triad_s / 1e9;
  const double adamw_gbs = 28.0 * double(n) / adamw_s / 1e9;
  std::printf("host_adamw_bench: %zu parameters, %d threads, best of %d\n", n,
              omp_get_max_threads(), repeats);
  std::printf("  copy  %8.2f ms  %7.2f GB/s (8 bytes/element)\n", copy_s * 1e3, copy_gbs);
  std::printf("  triad %8.2f ms  %7.2f GB/s (12 bytes/element)\n", triad_s * 1e3, triad_gbs);
  std::printf("  host AdamW %8.2f ms  %7.2f GB/s (28 bytes/parameter) = %.0f%% of triad, %.0f%% "
              "of copy; %.2f G parameters/s\n",
              adamw_s * 1e3, adamw_gbs, 100.0 * adamw_gbs / triad_gbs, 100.0 * adamw_gbs / copy_gbs,
              double(n) / adamw_s / 1e9);
  // Counting the write-allocate reads STREAM leaves out (the line of a[] read before it is
  // written): copy 12, triad 16 bytes per element; the host AdamW has none to add.
  std::printf("  with write-allocate traffic: copy %.2f GB/s, triad %.2f GB/s; host AdamW = %.0f%% "
              "of triad\n",
              1.5 * copy_gbs, 4.0 / 3.0 * triad_gbs, 100.0 * adamw_gbs / (4.0 / 3.0 * triad_gbs));
  std::printf("{\"bench\": \"host_adamw\", \"params\": %zu, \"threads\": %d, \"copy_gbs\": %.3f, "
              "\"triad_gbs\": %.3f, \"adamw_gbs\": %.3f, \"adamw_vs_triad\": %.4f}\n",
              n, omp_get_max_threads(), copy_gbs, triad_gbs, adamw_gbs, adamw_gbs / triad_gbs);
  for (float *p : {a, b, c, master, m, v})
    std::free(p);
  std::free(staging);
  return 0;
}
