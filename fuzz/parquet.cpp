// Parquet and Arrow IPC inputs of prepare: the code of ours in front of Arrow C++ (input kind
// detection in data/sources.cpp, the schema and text column checks and the row and row-group
// reading of data/source_arrow.cpp). The input is written as input.parquet when it starts with
// "PAR1", else as input.arrow (an Arrow IPC stream or file), and read to the end through
// DocumentReader; then read again after skipping half its records, which must give the same
// records. Arrow's own decoders are fuzzed upstream (OSS-Fuzz); here they are not instrumented,
// so the fuzzer's guidance comes from our code only.
#include "data/sources.h"
#include "fuzz.h"

#include <cstring>

using namespace finegpt;

namespace {

constexpr size_t kMaxBytes = size_t(64) << 20;

bool read_all(const std::string &path, uint64_t skip, std::vector<Document> &out) {
  try {
    DocumentReader reader({path}, SourceOptions{});
    if (skip) reader.skip(skip);
    size_t bytes = 0;
    std::vector<Document> batch;
    while (bytes < kMaxBytes && reader.next_batch(batch, 256, size_t(1) << 20) > 0) {
      for (Document &d : batch) {
        bytes += d.text.size();
        reader.resolve(d);
        out.push_back(std::move(d));
      }
      batch.clear();
    }
    return bytes < kMaxBytes;
  } catch (const Error &) {
    return false;
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const bool parquet = size >= 4 && std::memcmp(data, "PAR1", 4) == 0;
  const std::string path =
      fuzz::write_scratch(parquet ? "input.parquet" : "input.arrow", data, size);
  std::vector<Document> all;
  if (!read_all(path, 0, all) || all.size() < 2) return 0;
  const uint64_t k = all.size() / 2;
  std::vector<Document> rest;
  if (!read_all(path, k, rest)) return 0; // skip() reads less: a later part may not be reached
  fuzz::check(rest.size() == all.size() - k, "skip() then read gives another number of records");
  for (size_t i = 0; i < rest.size(); i++)
    fuzz::check(all[k + i].text == rest[i].text && all[k + i].kind == rest[i].kind,
                cat("record ", k + i, " differs after skip()"));
  return 0;
}
