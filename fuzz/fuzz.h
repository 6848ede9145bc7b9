// Helpers shared by the fuzz targets (fuzz/*.cpp). Each target defines LLVMFuzzerTestOneInput:
// libFuzzer drives it in the clang build (FINEGPT_FUZZ=ON, scripts/fuzz.sh), replay_main.cpp
// runs it over the committed corpus in the normal builds (ctest fuzz/<target>).
//
// A target feeds its input to one of our parsers. A finegpt::Error is the parser refusing the
// input, which is what it should do with garbage: caught and ignored. Anything else is a finding:
// a sanitizer report, an exception of another type escaping (the parsers promise Error), or a
// broken invariant (check() below), which aborts with a message.
#pragma once
#include "core/error.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace finegpt::fuzz {

// A folder of this process's own under the temporary directory (readers that take a path get
// the input written there), made on first use and removed at a normal exit.
inline const std::filesystem::path &scratch_dir() {
  static const std::filesystem::path dir = [] {
    auto p = std::filesystem::temp_directory_path() / cat("finegpt_fuzz_", getpid());
    std::filesystem::create_directories(p);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return p;
  }();
  return dir;
}

// Writes `size` bytes to scratch_dir()/name (replacing it) and returns its path.
inline std::string write_scratch(const std::string &name, const void *data, size_t size) {
  std::string path = (scratch_dir() / name).string();
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f || (size && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
  return path;
}

// An invariant of the code under test: its failure is a bug, reported as a crash.
inline void check(bool ok, const std::string &what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz: invariant broken: %s\n", what.c_str());
  std::abort();
}

} // namespace finegpt::fuzz
