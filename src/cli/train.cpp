// finegpt train CONFIG.py [--key=value ...] [--dry_run]
#include "cli/commands.h"
#include "config/train_config.h"
#include "core/error.h"
#include "train/trainer.h"

#include <cstdio>

namespace finegpt {

namespace {
const char *kTrainHelp =
    "usage: finegpt train [CONFIG.py ...] [--key=value ...] [--dry_run]\n"
    "\n"
    "Trains a GPT as nanoGPT's train.py does. Arguments are read left to right: a file is a\n"
    "nanoGPT config (Python assignments), --key=value overrides one key. Every key of\n"
    "nanoGPT's train.py works with the same default, plus finegpt's own: seed, data_dir,\n"
    "data_order ('random' | 'sequential'), threads (0 = all cores), vocab_size.\n"
    "Data: llm.c shards (*_train_*.bin, *_val_*.bin) or nanoGPT's train.bin/val.bin in\n"
    "data_dir (default data/<dataset>). init_from: 'scratch', 'resume' (out_dir/ckpt.bin) or\n"
    "the path of an llm.c gpt2_*.bin model file.\n"
    "\n"
    "  --dry_run   print the resolved configuration, parameter count, tokens per step and the\n"
    "              memory plan, then exit without reading data\n";
}

int cmd_train(const Args &args) {
  Args rest;
  bool dry_run = false;
  for (const auto &a : args) {
    if (a == "--help" || a == "-h") {
      std::fputs(kTrainHelp, stdout);
      return 0;
    }
    if (a == "--dry_run" || a == "--dry-run") {
      dry_run = true;
      continue;
    }
    rest.push_back(a);
  }
  std::vector<std::string> notes;
  TrainConfig cfg = load_train_config(rest, &notes);
  validate(cfg);
  RunSetup setup = resolve_run(cfg);
  fit_to_memory(cfg, setup, dry_run);
  for (const auto &n : notes)
    setup.notes.insert(setup.notes.begin(), n);
  if (cfg.device.rfind("cuda", 0) == 0)
    setup.notes.push_back("device='" + cfg.device +
                          "': this build has no CUDA backend; training on the cpu");
  print_run_summary(cfg, setup);
  if (dry_run) return 0;
  train(cfg, setup);
  return 0;
}

} // namespace finegpt
