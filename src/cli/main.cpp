// finegpt's entry point: dispatches to one subcommand; the only place that prints errors and
// chooses exit codes (library code throws finegpt::Error).
#include "cli/commands.h"
#include "core/error.h"
#include "core/version.h"

#include <cstdio>
#include <cstring>
#include <map>

namespace {

struct Command {
  int (*run)(const finegpt::Args &);
  const char *summary;
};

const std::map<std::string, Command> &commands() {
  static const std::map<std::string, Command> table = {
      {"train", {finegpt::cmd_train, "train a GPT from a nanoGPT config file"}},
      {"sample", {finegpt::cmd_sample, "generate text from a checkpoint"}},
      {"eval", {finegpt::cmd_eval, "mean loss of a checkpoint over the first N tokens"}},
      {"prepare", {finegpt::cmd_prepare, "text -> token shards (llm.c format)"}},
      {"download", {finegpt::cmd_download, "a dataset's Parquet files or a model from the hub"}},
      {"export", {finegpt::cmd_export, "write a checkpoint as an llm.c gpt2_*.bin model file"}},
      {"bench", {finegpt::cmd_bench, "time training steps of a model shape"}},
      {"info", {finegpt::cmd_info, "build features, threads, devices"}},
      {"plan", {finegpt::cmd_plan, "the best GPT for a GPU and budget; does a config fit?"}},
      {"tokenize", {finegpt::cmd_tokenize, "print a file's token ids (GPT-2 BPE or char)"}},
      {"detokenize", {finegpt::cmd_detokenize, "token ids -> the text's bytes"}},
      {"report",
       {finegpt::cmd_report, "a run's plots, configuration and memory plan as one HTML page"}},
  };
  return table;
}

void usage(FILE *out) {
  std::fprintf(out, "usage: finegpt <command> [options]   (finegpt <command> --help)\n"
                    "       finegpt --version\n\n");
  for (const auto &[name, c] : commands())
    std::fprintf(out, "  %-10s %s\n", name.c_str(), c.summary);
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version") || !std::strcmp(argv[1], "version")) {
    if (argc > 2) {
      std::fprintf(stderr, "finegpt --version: error: takes no arguments (got '%s')\n", argv[2]);
      return 2;
    }
    std::printf("%s\n", finegpt::version_text().c_str());
    return 0;
  }
  auto it = commands().find(argv[1]);
  if (it == commands().end()) {
    std::fprintf(stderr, "finegpt: unknown command '%s' (try: finegpt --help)\n", argv[1]);
    return 2;
  }
  finegpt::Args args(argv + 2, argv + argc);
  try {
    return it->second.run(args);
  } catch (const finegpt::ExitQuietly &q) {
    return q.code;
  } catch (const finegpt::Error &e) {
    std::fprintf(stderr, "finegpt %s: error: %s\n", argv[1], e.what());
    return 1;
  } catch (const std::bad_alloc &) {
    std::fprintf(stderr, "finegpt %s: error: out of memory\n", argv[1]);
    return 1;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "finegpt %s: error: %s\n", argv[1], e.what());
    return 1;
  }
}
