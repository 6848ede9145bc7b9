// Text sources for `prepare`: documents, in order, from the inputs users have -- Parquet files
// or folders of them (through Arrow C++), a `datasets` save_to_disk folder or cache folder
// (Arrow IPC stream files, in state.json's order), JSONL (optionally .gz or .zst) and plain
// text (one document per file, or split by a separator). Streaming: memory does not grow with
// the input size.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace finegpt {

struct SourceOptions {
  std::string text_column = "text"; // Parquet / Arrow
  std::string text_field = "text";  // JSONL
  std::string doc_separator;        // plain text: "" = one document per file
};

// A document and where it came from (for messages and restart bookkeeping).
struct Document {
  std::string text;
  size_t input = 0; // index into the expanded input list
};

class DocumentReader {
public:
  // Expands folders, checks that every input exists and is a supported kind (Error naming the
  // path and what was expected) before reading anything.
  DocumentReader(const std::vector<std::string> &inputs, const SourceOptions &opt);
  ~DocumentReader();
  // Up to `max_docs` next documents (fewer at the end; 0 when done), appended to `out`.
  size_t next_batch(std::vector<Document> &out, size_t max_docs);
  // Skips `n` documents without returning them (restart); Error if the input has fewer.
  void skip(uint64_t n);
  uint64_t bytes_total() const; // sum of the input file sizes
  uint64_t bytes_done() const;  // of those, read so far (approximate within a file)
  const std::vector<std::string> &files() const; // the expanded inputs, in reading order
  uint64_t skipped_invalid() const; // documents skipped as not text (null, wrong type)

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace finegpt
