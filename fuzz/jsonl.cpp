// JSONL inputs of prepare (data/source_jsonl.cpp behind DocumentReader): the input as a .jsonl
// file (gzip or zstd when it starts with their magic, as the reader decides), read to the end
// with every line resolved to its "text" field. Invariants: every Text document is valid UTF-8
// (invalid input is repaired to U+FFFD), and skipping k records then reading gives the records
// a straight read gives from k (what restart relies on).
#include "data/sources.h"
#include "fuzz.h"

using namespace finegpt;

namespace {

constexpr size_t kMaxBytes = size_t(64) << 20; // of decompressed text: a compression bomb stops

// Every record from `skip` on (text, kind, line), resolved; false when the reader refused the
// file part way (Error).
bool read_all(const std::string &path, uint64_t skip, std::vector<Document> &out) {
  try {
    DocumentReader reader({path}, SourceOptions{});
    if (skip) reader.skip(skip);
    size_t bytes = 0;
    std::vector<Document> batch;
    while (bytes < kMaxBytes && reader.next_batch(batch, 64, size_t(1) << 20) > 0) {
      for (Document &d : batch) {
        bytes += d.text.size();
        try {
          reader.resolve(d);
        } catch (const Error &) {
          d.kind = Document::Kind::NotText;
          d.text = "(refused)";
        }
        if (d.kind == Document::Kind::Text)
          fuzz::check(utf8_valid(d.text), cat("line ", d.record, ": text is not valid UTF-8"));
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
  const std::string path = fuzz::write_scratch("input.jsonl", data, size);
  std::vector<Document> all;
  if (!read_all(path, 0, all) || all.size() < 2) return 0;
  const uint64_t k = all.size() / 2;
  std::vector<Document> rest;
  fuzz::check(read_all(path, k, rest), "the file read straight but not after skip()");
  fuzz::check(rest.size() == all.size() - k, "skip() then read gives another number of records");
  for (size_t i = 0; i < rest.size(); i++) {
    const Document &a = all[k + i], &b = rest[i];
    fuzz::check(a.text == b.text && a.kind == b.kind && a.record == b.record && a.seq == b.seq,
                cat("record ", k + i, " differs after skip()"));
  }
  return 0;
}
