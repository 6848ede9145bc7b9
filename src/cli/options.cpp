// Flag parsing for subcommands (see options.h).
#include "cli/options.h"

#include "config/train_config.h"
#include "core/error.h"
#include "core/threads.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace finegpt {

bool Options::parse(const Args &args, const std::vector<OptionSpec> &spec,
                    const std::string &usage) {
  std::vector<std::string> names;
  for (const auto &s : spec) {
    names.push_back(s.name);
    values_[s.name] = s.default_value;
  }
  auto find = [&](const std::string &n) -> const OptionSpec * {
    for (const auto &s : spec)
      if (s.name == n) return &s;
    return nullptr;
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string &a = args[i];
    if (a == "--help" || a == "-h") {
      std::string text = usage + "\n";
      for (const auto &s : spec) {
        char line[256];
        std::snprintf(line, sizeof line, "  --%-16s %s%s\n", s.name.c_str(), s.help.c_str(),
                      s.default_value.empty() || s.is_switch
                          ? ""
                          : (" (default " + s.default_value + ")").c_str());
        text += line;
      }
      std::fputs(text.c_str(), stdout);
      return false;
    }
    if (a.rfind("--", 0) != 0) {
      positional_.push_back(a);
      continue;
    }
    std::string key = a.substr(2), value;
    bool has_value = false;
    if (auto eq = key.find('='); eq != std::string::npos) {
      value = key.substr(eq + 1);
      key = key.substr(0, eq);
      has_value = true;
    }
    std::replace(key.begin(), key.end(), '-', '_');
    const OptionSpec *s = find(key);
    if (!s) fail("--", key, ": unknown option", did_you_mean(key, names));
    if (s->is_switch) {
      if (has_value && value != "true" && value != "false" && value != "True" && value != "False")
        fail("--", key, ": expected true or false, got '", value, "'");
      value = has_value ? value : "true";
      if (value == "True") value = "true";
      if (value == "False") value = "false";
    } else if (!has_value) {
      if (i + 1 >= args.size()) fail("--", key, ": missing value");
      value = args[++i];
    }
    if (given_.count(key) && values_[key] != value)
      fail("--", key, " is given twice, as '", values_[key], "' and as '", value,
           "'; give it once");
    values_[key] = value;
    given_[key] = true;
  }
  return true;
}

std::string Options::str(const std::string &name) const { return values_.at(name); }

long Options::integer(const std::string &name) const {
  const long x = integer64(name);
  if (x > INT32_MAX || x < INT32_MIN)
    fail("--", name, ": ", x, " is past the largest value finegpt takes (", INT32_MAX, ")");
  return x;
}

long Options::integer64(const std::string &name) const {
  const std::string &v = values_.at(name);
  char *end = nullptr;
  errno = 0;
  long x = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end || errno)
    fail("--", name, ": expected an integer", errno == ERANGE ? " that fits in 64 bits" : "",
         ", got '", v, "'");
  return x;
}

double Options::real(const std::string &name) const {
  const std::string &v = values_.at(name);
  char *end = nullptr;
  errno = 0;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || errno) fail("--", name, ": expected a number, got '", v, "'");
  if (!std::isfinite(x)) fail("--", name, ": expected a finite number, got '", v, "'");
  return x;
}

bool Options::flag(const std::string &name) const { return values_.at(name) == "true"; }

int Options::threads() const {
  const long n = integer("threads");
  if (n < 0) fail("--threads ", n, " must be 0 (all cores) or more");
  return set_threads(int(n));
}

} // namespace finegpt
