// One thread pool for our OpenMP kernels and OpenBLAS (its OpenMP build): set both together.
#pragma once
#include <string>

namespace finegpt {

// n <= 0: OMP_NUM_THREADS if set, else all cores. Returns the number of threads in use.
int set_threads(int n);
int num_threads();
std::string blas_description(); // OpenBLAS's build configuration string
std::string cpu_description();  // model name from /proc/cpuinfo, or "unknown"

} // namespace finegpt
