// What finegpt report reads from a run's folder (train/metrics.h): metrics.jsonl (read_metrics)
// and run.json (read_run_info), each input read as both, and the page drawn from what they
// accept (train/report.h). Invariants: the records' iterations and token counts are not negative
// and the page is one whole HTML document.
#include "fuzz.h"
#include "train/metrics.h"
#include "train/report.h"

using namespace finegpt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string metrics = fuzz::write_scratch("metrics.jsonl", data, size);
  std::vector<MetricRecord> records;
  try {
    records = read_metrics(metrics);
  } catch (const Error &) {
  }
  for (const MetricRecord &r : records)
    fuzz::check(r.iter >= 0 && r.tokens >= -1, "a record with a negative iteration or count");
  const std::string html = report_html("out", records, nullptr);
  fuzz::check(html.rfind("</html>\n") == html.size() - 8, "the page is not whole");
  const std::string run = fuzz::write_scratch("run.json", data, size);
  try {
    const RunInfo info = read_run_info(run);
    const std::string page = report_html("out", records, &info);
    fuzz::check(page.rfind("</html>\n") == page.size() - 8, "the page with run.json is not whole");
  } catch (const Error &) {
  }
  return 0;
}
