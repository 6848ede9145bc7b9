// finegpt errors: library code throws finegpt::Error with one line for a person; only main prints.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace finegpt {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// cat("a", 1, 'b') -> "a1b": the one string builder used for messages.
template <typename... Args> std::string cat(const Args &...args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <typename... Args> [[noreturn]] void fail(const Args &...args) {
  throw Error(cat(args...));
}

#define FINEGPT_CHECK(cond, ...)                                                                   \
  do {                                                                                             \
    if (!(cond)) ::finegpt::fail(__VA_ARGS__);                                                     \
  } while (0)

} // namespace finegpt
