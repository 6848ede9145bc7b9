// Thread settings shared by OpenMP and OpenBLAS (see threads.h).
#include "core/threads.h"

#include <cblas.h>
#include <cstdlib>
#include <fstream>
#include <omp.h>
#include <thread>

namespace finegpt {

int set_threads(int n) {
  if (n <= 0) { // OMP_NUM_THREADS when the user set it, else every core
    const char *env = std::getenv("OMP_NUM_THREADS");
    n = env ? std::atoi(env) : 0;
  }
  if (n <= 0) n = int(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
  return n;
}

int num_threads() { return omp_get_max_threads(); }

std::string blas_description() { return openblas_get_config(); }

std::string cpu_description() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      auto p = line.find(':');
      if (p != std::string::npos) return line.substr(p + 2);
    }
  return "unknown";
}

} // namespace finegpt
