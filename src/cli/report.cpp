// finegpt report OUT_DIR [--output FILE]: a run's plots, configuration and memory plan as one
// self-contained HTML page (train/report.h).
#include "train/report.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"

#include <cstdio>

namespace finegpt {

int cmd_report(const Args &args) {
  Options o;
  if (!o.parse(args, {{"output", "", "the page to write (default OUT_DIR/report.html)"}},
               "usage: finegpt report OUT_DIR [--output FILE]\n\n"
               "Writes one HTML page, readable offline, with plots of a run's train and val loss,\n"
               "learning rate, gradient norm, throughput and memory against tokens (from\n"
               "OUT_DIR/metrics.jsonl), its configuration and its memory plan (OUT_DIR/run.json).\n"
               "It can be run while the run trains."))
    return 0;
  if (o.positional().empty()) fail("give the run's folder: finegpt report OUT_DIR");
  if (o.positional().size() > 1) fail("unexpected argument '", o.positional()[1], "'");
  const std::string out_dir = o.positional()[0];
  FINEGPT_CHECK(!out_dir.empty(), "OUT_DIR is empty: give the run's folder");
  const std::string output = o.given("output") ? o.str("output") : out_dir + "/report.html";
  FINEGPT_CHECK(!output.empty(), "--output: give the file to write");
  for (const auto &note : write_report(out_dir, output))
    std::printf("note: %s\n", note.c_str());
  std::printf("wrote %s\n", output.c_str());
  return 0;
}

} // namespace finegpt
