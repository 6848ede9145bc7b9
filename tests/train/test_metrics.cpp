// A run's records read back (read_metrics: resumes, lines being written, malformed lines),
// run.json round trip, the ETA's duration format and the report page's structure. The event
// files and the rendered page are checked with TensorBoard's reader and Chromium in
// tests/cli/test_watch.py.
#include "core/file.h"
#include "testing.h"
#include "train/metrics.h"
#include "train/report.h"

#include <cmath>
#include <gtest/gtest.h>

namespace finegpt {
namespace {

using testutil::error_of;
using testutil::TempDir;

TEST(Metrics, ResumeDropsTheRecordsItRepeats) {
  TempDir d;
  const std::string path = d.file("metrics.jsonl");
  write_file_atomic(path, "{\"iter\": 0, \"tokens\": 0, \"val_loss\": 4.5}\n"
                          "{\"iter\": 0, \"tokens\": 64, \"loss\": 4.0}\n"
                          "{\"iter\": 1, \"tokens\": 128, \"loss\": 3.5}\n"
                          "{\"iter\": 2, \"tokens\": 192, \"loss\": null}\n"
                          "\n"
                          "{\"iter\": 1, \"resumed\": true}\n"
                          "{\"iter\": 1, \"tokens\": 128, \"loss\": 3.25}\n");
  const auto r = read_metrics(path);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].values.at("val_loss"), 4.5);
  EXPECT_EQ(r[1].iter, 0);
  EXPECT_EQ(r[1].tokens, 64);
  EXPECT_EQ(r[2].iter, 1);
  EXPECT_EQ(r[2].values.at("loss"), 3.25);
}

TEST(Metrics, NullIsNaNAndAnUnfinishedLastLineIsLeftOut) {
  TempDir d;
  const std::string path = d.file("metrics.jsonl");
  write_file_atomic(path, "{\"iter\": 3, \"loss\": null}\n{\"iter\": 4, \"lo");
  const auto r = read_metrics(path);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(std::isnan(r[0].values.at("loss")));
  EXPECT_EQ(r[0].tokens, -1);
}

TEST(Metrics, MalformedLinesNameTheirNumber) {
  TempDir d;
  const std::string path = d.file("metrics.jsonl");
  for (const auto &[text, words] : std::vector<std::pair<std::string, std::string>>{
           {"{\"iter\": 0}\n\n{\"iter\": 1, \"lo\n{\"iter\": 2}\n", ":3: not a JSON record"},
           {"[1, 2]\n", ":1: not a JSON object"},
           {"{\"loss\": 1}\n", ":1: no \"iter\""},
           {"{\"iter\": -1}\n", ":1: no \"iter\""},
           {"{\"iter\": 1.5}\n", ":1: no \"iter\""},
           {"{\"iter\": 0}\n{\"iter\": 1, \"loss\": \"low\"}\n", ":2: \"loss\" is not a number"},
           {"{\"iter\": 0, \"tokens\": -5}\n", ":1: \"tokens\""}}) {
    write_file_atomic(path, text);
    const std::string msg = error_of([&] { read_metrics(path); });
    EXPECT_NE(msg.find(path + words), std::string::npos) << msg << " for " << text;
  }
}

RunInfo sample_info() {
  RunInfo info;
  info.config = {{"n_layer", "2"}, {"out_dir", "'o<b>'"}};
  info.engine = "cpu with 2 threads";
  info.ranks = 1;
  info.parameters = 123456;
  info.tokens_per_step = 128;
  info.max_iters = 20;
  info.plan = {{"parameters", "wte", "65x32", 8320}, {"activations", "logits", "4x16x128", 32768}};
  info.started = "2026-12-05T08:00:00Z";
  return info;
}

TEST(RunJson, RoundTripAndErrors) {
  TempDir d;
  const std::string path = d.file("run.json");
  write_run_info(path, sample_info());
  const RunInfo r = read_run_info(path);
  EXPECT_EQ(r.config, sample_info().config);
  EXPECT_EQ(r.engine, "cpu with 2 threads");
  EXPECT_EQ(r.tokens_per_step, 128);
  ASSERT_EQ(r.plan.size(), 2u);
  EXPECT_EQ(r.plan[1].shape, "4x16x128");
  EXPECT_EQ(r.plan[1].bytes, 32768);
  for (const auto &[text, words] : std::vector<std::pair<std::string, std::string>>{
           {"{", "not JSON"},
           {"{\"format\": 3}", "not a finegpt run.json"},
           {"{\"format\": \"finegpt run\", \"version\": \"1\"}", "version \"1\""},
           {"{\"format\": \"finegpt run\", \"version\": 1}", "\"started\" is missing"}}) {
    write_file_atomic(path, text);
    const std::string msg = error_of([&] { read_run_info(path); });
    EXPECT_NE(msg.find(path + ": " + words), std::string::npos) << msg;
  }
}

TEST(Duration, TwoUnitsAtMost) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(59.4), "59s");
  EXPECT_EQ(format_duration(60), "1m00s");
  EXPECT_EQ(format_duration(3599), "59m59s");
  EXPECT_EQ(format_duration(3600 + 2 * 60 + 50), "1h02m");
  EXPECT_EQ(format_duration(86400 * 3 + 3600 * 4 + 59), "3d04h");
  EXPECT_EQ(format_duration(NAN), "?");
  EXPECT_EQ(format_duration(-1), "?");
}

TEST(Report, SelfContainedAndEscaped) {
  std::vector<MetricRecord> records(3);
  records[0] = {0, 0, {{"val_loss", 4.0}, {"train_loss", 4.1}}};
  records[1] = {0, 128, {{"loss", 4.2}, {"loss_mean", 4.2}, {"lr", 1e-3}, {"mfu", 0.0}}};
  records[2] = {1, 256, {{"loss", 3.9}, {"loss_mean", 3.9}, {"lr", 9e-4}, {"mfu", 0.0}}};
  const RunInfo info = sample_info();
  const std::string html = report_html("runs/<x>", records, &info);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("http"), std::string::npos);
  EXPECT_EQ(html.find("<x>"), std::string::npos); // escaped
  EXPECT_NE(html.find("runs/&lt;x&gt;"), std::string::npos);
  EXPECT_NE(html.find("&#39;o&lt;b&gt;&#39;"), std::string::npos);
  // Loss, lr, gradient norm, throughput, memory; no MFU plot where it was never measured.
  size_t plots = 0;
  for (size_t at = html.find("<svg"); at != std::string::npos; at = html.find("<svg", at + 1))
    ++plots;
  EXPECT_EQ(plots, 5u);
  EXPECT_EQ(html.find("Model FLOPs utilization"), std::string::npos);
  EXPECT_NE(html.find("no data yet"), std::string::npos); // the gradient norm has none here
}

} // namespace
} // namespace finegpt
