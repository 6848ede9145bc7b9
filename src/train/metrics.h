// What a training run leaves in out_dir for people and tools, and reading it back (finegpt
// report): metrics.jsonl and TensorBoard event files, both written by one record function
// (MetricsLog), and run.json, the run's resolved configuration and memory plan.
#pragma once
#include "io/tensorboard.h"

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace finegpt {

using MetricFields = std::vector<std::pair<std::string, double>>;

// metrics.jsonl: one JSON object per record, {"iter": I, "tokens": N, field: value, ...} (a
// non-finite value is null); a resumed run appends {"iter": I, "resumed": true} first, a fresh
// one empties the file. The event file: one event per record at step I with a scalar per field
// (tokens is the JSONL's alone), after a SessionLog START at the iteration the run starts from
// (0 when fresh), so TensorBoard drops what earlier files in the folder hold from there on. Both
// flushed after every record.
class MetricsLog {
public:
  // Opens out_dir/metrics.jsonl (appended to when resuming, resume_iter >= 0) and a new event
  // file in out_dir, and marks where the run starts in both.
  MetricsLog(const std::string &out_dir, long resume_iter);
  // One record at iteration `iter` after `tokens` training tokens.
  void record(long iter, long long tokens, const MetricFields &fields);
  const std::string &event_path() const { return events_.path(); }

private:
  void write_line(const std::string &json);

  std::string path_;
  std::unique_ptr<FILE, int (*)(FILE *)> jsonl_{nullptr, std::fclose};
  EventWriter events_;
};

struct MetricRecord {
  long iter = 0;
  long long tokens = -1;                // -1: the record does not say
  std::map<std::string, double> values; // null is NaN
};

// The records of out_dir/metrics.jsonl as they stand: a resume drops the earlier records at and
// after its iteration (as TensorBoard drops those events). A last line without its newline is
// one being written and is left out. Error naming path:line for a line that is not a record.
std::vector<MetricRecord> read_metrics(const std::string &path);

// run.json: the run as train resolved it, written when it starts.
struct RunInfo {
  std::vector<std::pair<std::string, std::string>> config; // key, value in Python syntax
  std::string engine;                                      // "cpu with 2 threads"
  int ranks = 1;
  long long parameters = 0;
  long long tokens_per_step = 0;
  long max_iters = 0;
  struct Buffer {
    std::string group, name, shape; // shape "12x4x1024x768"
    double bytes = 0;
  };
  std::vector<Buffer> plan; // one rank's memory plan, every buffer
  std::string started;      // UTC, ISO 8601
};

void write_run_info(const std::string &path, const RunInfo &info);
// Error naming the path and what is wrong.
RunInfo read_run_info(const std::string &path);

// A duration for people, two units at most: "42s", "3m05s", "2h03m", "3d04h" ("?" if not finite).
std::string format_duration(double seconds);

} // namespace finegpt
