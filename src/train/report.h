// finegpt report: one self-contained HTML page for a run (no scripts, no fonts, nothing fetched):
// SVG plots drawn here of loss (train per step, train and val at evaluations), learning rate,
// gradient norm, throughput, memory in use (and MFU where measured) against tokens, then the
// configuration and the memory plan from run.json. Not an interactive viewer: TensorBoard reads
// the event files for that.
#pragma once
#include "train/metrics.h"

#include <string>
#include <vector>

namespace finegpt {

// The page for the run in `out_dir` with these records (in order) and, when known, its run.json.
std::string report_html(const std::string &out_dir, const std::vector<MetricRecord> &records,
                        const RunInfo *info);

// Reads out_dir (metrics.jsonl, run.json when present) and writes the page to `output`
// atomically. Errors name the folder or file: not a folder, no metrics.jsonl, no records in it, a
// malformed line, an output that is an input of the report or not a regular file. Returns
// notes for the user (run.json missing).
std::vector<std::string> write_report(const std::string &out_dir, const std::string &output);

} // namespace finegpt
