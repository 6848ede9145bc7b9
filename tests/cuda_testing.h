// Shared by the CUDA tests: whether a supported device is here (selected), and the macro that
// skips a test without one (so CI, which has no GPU, passes them as skipped).
#pragma once
#include "backend/cuda_ops.h"
#include "core/error.h"

#include <cstdio>
#include <gtest/gtest.h>

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

} // namespace finegpt::testutil

#define REQUIRE_DEVICE()                                                                           \
  do {                                                                                             \
    if (!::finegpt::testutil::have_cuda_device()) GTEST_SKIP() << "no CUDA device: skipped";       \
  } while (0)
