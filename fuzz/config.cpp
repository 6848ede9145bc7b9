// The config language (config/pyconfig.h, config/pylex.cpp) and TrainConfig loading
// (config/train_config.h). The input is run as a config file; the part after its first NUL byte,
// if any, is also given as --key=value flags (one per line) after a config file made of the part
// before. The loaded config then goes through validate() (the range checks) and to_python(), whose
// text must load back to the same config; each evaluated value must read back from its repr().
#include "config/pyconfig.h"
#include "config/train_config.h"
#include "fuzz.h"

#include <cmath>
#include <cstring>
#include <variant>

using namespace finegpt;

namespace {

// a and b are the same Python value (a float NaN equal to any NaN, -0.0 not equal to 0.0).
bool same_value(const py::Value &a, const py::Value &b) {
  if (a.index() != b.index()) return false;
  if (auto *x = std::get_if<double>(&a)) {
    double y = std::get<double>(b);
    return (std::isnan(*x) && std::isnan(y)) || std::memcmp(x, &y, sizeof y) == 0;
  }
  return a == b;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string input(reinterpret_cast<const char *>(data), size);

  // The language alone, on the whole input (NUL bytes included).
  try {
    for (const py::Assignment &a : py::run(input, "fuzz.py")) {
      const std::string r = py::repr(a.value);
      py::Value back = py::eval(r, "repr");
      fuzz::check(same_value(back, a.value), "eval(repr(v)) != v for " + r);
      (void)py::str(a.value);
    }
  } catch (const Error &) {
  }

  // The same text as a config file of train (and flags after a NUL), through the key table.
  const size_t nul = input.find('\0');
  std::vector<std::string> args = {
      fuzz::write_scratch("config.py", input.data(), nul == std::string::npos ? size : nul)};
  if (nul != std::string::npos) {
    for (size_t at = nul + 1; at <= size;) {
      size_t end = input.find('\n', at);
      if (end == std::string::npos) end = size;
      std::string flag = input.substr(at, end - at);
      args.push_back(flag.rfind("--", 0) == 0 ? flag : "--" + flag);
      at = end + 1;
    }
  }
  TrainConfig cfg;
  try {
    std::vector<std::string> notes;
    cfg = load_train_config(args, &notes);
  } catch (const Error &) {
    return 0;
  }
  try {
    validate(cfg);
  } catch (const Error &) {
  }
  // to_python() promises text that loads back to the same config.
  const std::string text = to_python(cfg);
  const std::string path = fuzz::write_scratch("round_trip.py", text.data(), text.size());
  std::string again;
  try {
    again = to_python(load_train_config({path}, nullptr));
  } catch (const Error &e) {
    fuzz::check(false, cat("to_python() output does not load: ", e.what(), "\n", text));
  }
  fuzz::check(again == text, "to_python() output loads to another config:\n" + text + "\n" + again);
  return 0;
}
