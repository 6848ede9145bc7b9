// What this binary is: finegpt's version, the git commit it was built from and its build
// options (`finegpt --version`; generated at build time by cmake/build_info.cmake).
#pragma once
#include <string>

namespace finegpt {

// "0.1.0"
const char *version();
// Three lines: "finegpt 0.1.0", "commit: ...", "build: ..." (no trailing newline).
std::string version_text();

} // namespace finegpt
