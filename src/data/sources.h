// Text sources for `prepare`: documents, in order, from the inputs users have -- Parquet files
// or folders of them (through Arrow C++), a `datasets` save_to_disk folder or cache folder
// (Arrow IPC stream files, in state.json's order), JSONL (optionally .gz or .zst) and plain
// text (one document per file, or split by a separator), and a hub dataset's Parquet files
// ("hub:ORG/NAME/CONFIG": downloaded a few files ahead of the reader into a staging folder and
// deleted once read, so disk use is a few files, not the dataset). Streaming: memory does not
// grow with the input size. Not here: tokenizing and writing shards (data/prepare.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace finegpt {

struct SourceOptions {
  std::string text_column = "text"; // Parquet / Arrow
  std::string text_field = "text";  // JSONL
  std::string doc_separator;        // plain text: "" = one document per file
  // hub: inputs are downloaded into this folder (made, and removed with the reader); "" = a
  // folder in the system's temporary folder.
  std::string download_dir;
};

// One record of the input and where it came from (for messages and restart bookkeeping).
// Records are what the inputs hold: Parquet/Arrow rows, non-blank JSONL lines, text documents;
// a record that holds no text (a null, a JSON number) is a record of kind NotText.
struct Document {
  enum class Kind : uint8_t {
    Text,     // `text` is the document (bytes as stored; not checked for UTF-8)
    JsonLine, // `text` is a JSONL line; DocumentReader::resolve turns it into Text or NotText
    NotText,  // null or not a string: skipped (and counted) by the caller
  };
  std::string text;
  Kind kind = Kind::Text;
  bool repaired_utf8 = false; // resolve() replaced invalid UTF-8 in a JSON line by U+FFFD
  uint32_t input = 0;         // index into DocumentReader::files()
  uint64_t record = 0;        // in its file: JSONL line (1-based), row or document (0-based)
  uint64_t seq = 0;           // in the whole input (0-based): what skip() counts
};

enum class InputKind { Parquet, ArrowStream, ArrowFile, Jsonl, Text };
const char *input_kind_name(InputKind k); // "Parquet", "Arrow IPC stream", ...

struct InputFile {
  std::string path;
  InputKind kind;
  uint64_t bytes = 0;
  std::string origin; // hub inputs: "hub:ORG/NAME@COMMIT/PATH" (path is where it is downloaded)
};

class DocumentReader {
public:
  // Expands folders (sorted by name; a save_to_disk folder in state.json's order; a
  // DatasetDict folder by its 'train' split) and hub: inputs (their listing, at one commit),
  // checks that every input exists and is a supported kind, and opens the header of every local
  // Parquet/Arrow file (its schema must have the text column) before reading any document:
  // Error naming the path and what was expected. A hub file is checked when it has arrived.
  DocumentReader(const std::vector<std::string> &inputs, const SourceOptions &opt);
  ~DocumentReader();
  DocumentReader(const DocumentReader &) = delete;
  DocumentReader &operator=(const DocumentReader &) = delete;

  // Up to `max_docs` next records, stopping early once `max_bytes` of text were added
  // (at least one record); appended to `out`. Returns how many (0 when done).
  size_t next_batch(std::vector<Document> &out, size_t max_docs, size_t max_bytes = SIZE_MAX);
  // Skips `n` records without returning them (restart; Parquet skips whole row groups by their
  // metadata). Error if the input has fewer.
  void skip(uint64_t n);
  // Before any read: to record `seq` of the whole input, which is in input file `input` whose
  // first record is `input_first` (first_record_of, as a run recorded it). The files before
  // `input` are not opened (hub files: not downloaded). Error if the numbers cannot hold.
  void skip_to(uint64_t seq, size_t input, uint64_t input_first);
  uint64_t records_read() const; // records returned or skipped so far
  // The sequence number of input file `input`'s first record; valid for a file a returned
  // Document came from (the reader thread set it before reading the file's first record).
  uint64_t first_record_of(size_t input) const;

  // A JSON line -> its text field (Text, or NotText for null / not a string). Invalid UTF-8
  // (raw bytes or lone surrogate escapes) is replaced by U+FFFD and flagged, as tiktoken does
  // for Python strings. Error "file:line: ..." for a line that is not a JSON object or lacks
  // the field (listing the fields it has). Thread-safe; other kinds are left as they are.
  void resolve(Document &doc) const;

  uint64_t bytes_total() const; // sum of the input file sizes
  uint64_t bytes_done() const;  // of those, read so far (approximate within a file)
  const std::vector<InputFile> &inputs() const;
  const std::vector<std::string> &files() const; // the expanded inputs, in reading order

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// UTF-8 validity (RFC 3629: no overlongs, surrogates or code points above U+10FFFF); on
// failure *bad_at (if given) is the offset of the first bad byte.
bool utf8_valid(std::string_view s, size_t *bad_at = nullptr);

// "Arrow 26.0.1 (Parquet, Arrow IPC)" or why this build has none (for `finegpt info`).
std::string arrow_description();

} // namespace finegpt
