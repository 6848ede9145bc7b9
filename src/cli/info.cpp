// finegpt info: what this build can do and where it runs.
#include "backend/cuda_ops.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/threads.h"
#include "core/version.h"
#include "data/sources.h"
#include "train/engine.h"

#include <cstdio>
#include <thread>

namespace finegpt {

int cmd_info(const Args &args) {
  Options o;
  if (!o.parse(args, {}, "usage: finegpt info\n\nPrints build features, threads and devices."))
    return 0;
  if (!o.positional().empty()) fail("unexpected argument '", o.positional()[0], "'");
  std::printf("%s\n", version_text().c_str());
  std::printf("backends:  cpu (float32, OpenMP); cuda: %s\n",
              cuda::compiled() ? "compiled in (bfloat16, cuBLASLt)"
                               : "not in this build (configure with -DFINEGPT_CUDA=ON)");
  std::printf("blas:      %s\n", blas_description().c_str());
  std::printf("distributed: %s\n", parallel_description().c_str());
  std::printf("cpu:       %s\n", cpu_description().c_str());
  std::printf("arrow:     %s\n", arrow_description().c_str());
  std::printf("threads:   %d (of %u hardware threads; set with threads= or OMP_NUM_THREADS)\n",
              num_threads(), std::thread::hardware_concurrency());
  std::printf("devices:   cpu\n");
  if (cuda::compiled()) {
    // One line per GPU, or "none (why)" without a driver or GPU.
    std::string gpus = cuda::device_summary();
    for (size_t p = 0; (p = gpus.find('\n', p)) != std::string::npos; p += 12)
      gpus.replace(p, 1, "\n           ");
    std::printf("cuda:      %s\n", gpus.c_str());
  }
  return 0;
}

} // namespace finegpt
