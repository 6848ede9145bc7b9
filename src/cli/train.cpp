// finegpt train CONFIG.py [--key=value ...] [--dry_run]
#include "cli/commands.h"
#include "config/train_config.h"
#include "core/error.h"
#include "train/trainer.h"

#include <cstdio>
#include <filesystem>

namespace finegpt {

namespace {
const char *kTrainHelp =
    "usage: finegpt train [CONFIG.py ...] [--key=value ...] [--dry_run]\n"
    "\n"
    "Trains a GPT as nanoGPT's train.py does. Arguments are read left to right: a file is a\n"
    "nanoGPT config (Python assignments), --key=value overrides one key. Every key of\n"
    "nanoGPT's train.py works with the same default, plus finegpt's own: seed, data_dir,\n"
    "data_order ('random' | 'sequential'), threads (0 = all cores), vocab_size, and on the GPU\n"
    "recompute (0-3), zero_stage (0 | 1), attention ('finegpt' | 'cudnn') and offload ('none' |\n"
    "'optimizer': master weights and AdamW moments in pinned host memory, updated on the CPU).\n"
    "Data: llm.c shards (*_train_*.bin, *_val_*.bin) or nanoGPT's train.bin/val.bin in\n"
    "data_dir (default data/<dataset>). init_from: 'scratch', 'resume' (out_dir/ckpt.bin),\n"
    "'gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl' (from the Hugging Face cache, $HF_HOME), a\n"
    "Hugging Face GPT-2 folder, or the path of an llm.c gpt2_*.bin model file.\n"
    "\n"
    "  --dry_run   print the resolved configuration, parameter count, tokens per step and the\n"
    "              memory plan, then exit without reading data\n";
}

namespace {
// Set-up is the same on every rank, so only rank 0 reports its errors; printed here, while
// the communicator is alive (Open MPI drops what a rank prints after MPI_Finalize).
int report_setup_error(const Error &e, Communicator &comm) {
  if (comm.world() == 1) throw e;
  if (comm.is_root()) std::fprintf(stderr, "finegpt train: error: %s\n", e.what());
  std::fflush(stderr);
  return 1;
}
} // namespace

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
  // Under mpirun / srun every rank runs this; set-up is the same on all of them, so only rank 0
  // reports set-up errors. An error once training runs is reported by its rank, which then
  // stops every rank.
  std::unique_ptr<Communicator> comm = run_communicator(cfg, dry_run);
  const bool root = comm->is_root();
  RunSetup setup;
  try {
    setup = resolve_run(cfg);
    setup.world = comm->world();
    choose_engine(cfg, setup, dry_run);
    fit_to_memory(cfg, setup, dry_run);
  } catch (const Error &e) {
    return report_setup_error(e, *comm);
  }
  for (const auto &n : notes)
    setup.notes.insert(setup.notes.begin(), n);
  if (root) print_run_summary(cfg, setup);
  if (dry_run) return 0;
  bool started = false;
  // A run that fails before it writes anything leaves no empty out_dir behind (remove() takes
  // a folder only when it is empty).
  std::error_code ec;
  const bool out_dir_existed = std::filesystem::exists(cfg.out_dir, ec);
  auto remove_empty_out_dir = [&] {
    if (root && !out_dir_existed) std::filesystem::remove(cfg.out_dir, ec);
  };
  try {
    const TrainResult r = train(cfg, setup, *comm, &started);
    // Stopped by a signal after saving: the conventional status of that signal.
    if (r.stopped_by_signal) return 128 + r.stopped_by_signal;
  } catch (const Error &e) {
    remove_empty_out_dir();
    if (comm->world() == 1) throw;
    if (!started) return report_setup_error(e, *comm);
    std::fprintf(stderr, "finegpt train: error: rank %d: %s\n", comm->rank(), e.what());
    comm->abort(1);
  }
  return 0;
}

} // namespace finegpt
