// The finegpt subcommands: each is one file in this folder, takes the arguments after its name,
// returns the exit code, and throws finegpt::Error for a person to read (main prints it).
#pragma once
#include <string>
#include <vector>

namespace finegpt {

using Args = std::vector<std::string>;

// Thrown to end with an exit code and nothing printed (another rank reports the error).
struct ExitQuietly {
  int code;
};

int cmd_train(const Args &args);
int cmd_sample(const Args &args);
int cmd_eval(const Args &args);
int cmd_prepare(const Args &args);
int cmd_download(const Args &args);
int cmd_export(const Args &args);
int cmd_bench(const Args &args);
int cmd_info(const Args &args);
int cmd_plan(const Args &args);
int cmd_tokenize(const Args &args);
int cmd_detokenize(const Args &args);
int cmd_report(const Args &args);

} // namespace finegpt
