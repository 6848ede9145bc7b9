// Shared by the CUDA tests: whether a supported device is here (selected), the macro that
// skips a test without one (so CI, which has no GPU, passes them as skipped), and the op tests'
// host <-> device helpers.
#pragma once
#include "backend/cuda_ops.h"
#include "core/error.h"

#include <cstdio>
#include <gtest/gtest.h>
#include <vector>

namespace finegpt::testutil {

// A device the backend supports (compute capability 8.0 or newer), selected.
inline bool have_cuda_device() {
  static const bool ok = [] {
    if (cuda::device_count() == 0) return false;
    try {
      cuda::set_device(0);
      return true;
    } catch (const Error &e) {
      std::printf("%s\n", e.what());
      return false;
    }
  }();
  return ok;
}

// bf16 <-> float vectors; device arrays up, down and poisoned (0xff bytes: NaN in bf16 and fp32,
// so an output the op does not write shows).
inline std::vector<cuda::bf16> to_h(const std::vector<float> &x) {
  std::vector<cuda::bf16> h(x.size());
  for (size_t i = 0; i < x.size(); i++)
    h[i] = cuda::to_bf16(x[i]);
  return h;
}
inline std::vector<float> to_f(const std::vector<cuda::bf16> &h) {
  std::vector<float> x(h.size());
  for (size_t i = 0; i < h.size(); i++)
    x[i] = cuda::to_float(h[i]);
  return x;
}
template <typename T> cuda::DeviceArray<T> upload(const std::vector<T> &x) {
  cuda::DeviceArray<T> d(x.size());
  cuda::copy_to_device(d.data(), x.data(), x.size() * sizeof(T));
  return d;
}
inline cuda::DeviceArray<cuda::bf16> upload_bf16(const std::vector<float> &x) {
  return upload(to_h(x));
}
template <typename T> cuda::DeviceArray<T> poisoned(size_t n) {
  cuda::DeviceArray<T> d(n);
  cuda::device_memset(d.data(), 0xff, n * sizeof(T));
  return d;
}
template <typename T> std::vector<T> download(const cuda::DeviceArray<T> &d) {
  cuda::synchronize();
  std::vector<T> x(d.size());
  cuda::copy_to_host(x.data(), d.data(), d.size() * sizeof(T));
  return x;
}
inline std::vector<float> download_f(const cuda::DeviceArray<cuda::bf16> &d) {
  return to_f(download(d));
}

} // namespace finegpt::testutil

#define REQUIRE_DEVICE()                                                                           \
  do {                                                                                             \
    if (!::finegpt::testutil::have_cuda_device()) GTEST_SKIP() << "no CUDA device: skipped";       \
  } while (0)
