// Helpers shared by the C++ tests: the message of the finegpt::Error a call throws, and a
// temporary folder that is removed when the test ends.
#pragma once
#include "core/error.h"

#include <atomic>
#include <filesystem>
#include <functional>
#include <gtest/gtest.h>
#include <string>
#include <unistd.h>

namespace finegpt::testutil {

// The message of the finegpt::Error that `f` throws; "" and a test failure when it throws none.
inline std::string error_of(const std::function<void()> &f) {
  try {
    f();
  } catch (const Error &e) {
    return e.what();
  }
  ADD_FAILURE() << "no finegpt::Error was thrown";
  return "";
}

// A fresh folder under the system's temporary directory, unique per process and instance.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() / cat("finegpt_test_", getpid(), "_", counter++);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  std::string file(const std::string &name) const { return (path / name).string(); }
};

} // namespace finegpt::testutil
