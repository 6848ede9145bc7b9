// Flag parsing for the subcommands other than train (which reads nanoGPT configs): --key=value
// or --key value, '-' and '_' interchangeable, unknown flags rejected with the closest known
// one, a flag given twice with different values refused, values type-checked with a message
// that names the flag.
#pragma once
#include "cli/commands.h"

#include <map>
#include <string>
#include <vector>

namespace finegpt {

struct OptionSpec {
  std::string name;          // without dashes, with underscores
  std::string default_value; // "" for none; "false" for a boolean switch
  std::string help;
  bool is_switch = false; // takes no value (--flag sets "true")
};

class Options {
public:
  // Parses args; positional arguments (not starting with --) are collected in positional().
  // Returns false when --help was given (the usage has been printed).
  bool parse(const Args &args, const std::vector<OptionSpec> &spec, const std::string &usage);
  std::string str(const std::string &name) const;
  // A value that fits in 32 bits (what the engines hold); integer64 for counts past that.
  long integer(const std::string &name) const;
  long integer64(const std::string &name) const;
  // A finite number (nan and inf are refused).
  double real(const std::string &name) const;
  bool flag(const std::string &name) const;
  // --threads checked (0: OMP_NUM_THREADS or all cores; negative is an Error) and applied to
  // our OpenMP kernels and OpenBLAS (set_threads); returns the threads in use.
  int threads() const;
  bool given(const std::string &name) const { return given_.count(name) > 0; }
  const std::vector<std::string> &positional() const { return positional_; }

private:
  std::map<std::string, std::string> values_;
  std::map<std::string, bool> given_;
  std::vector<std::string> positional_;
};

} // namespace finegpt
