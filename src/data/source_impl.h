// Inside the text sources (sources.h): one reader per input file kind, behind FileSource.
// sources.cpp expands the inputs and chains the files; source_arrow.cpp (Parquet and Arrow IPC
// through Arrow C++, or source_arrow_stub.cpp in a build without Arrow), source_jsonl.cpp and
// source_text.cpp read one file each. Not a public API.
#pragma once
#include "data/sources.h"

#include <memory>
#include <string>
#include <vector>

namespace finegpt {

// Length of the valid UTF-8 character at p[0..n) (p[0] >= 0x80), or 0 when it is not one (RFC
// 3629: no overlongs, surrogates or code points above U+10FFFF).
inline size_t utf8_char_len(const unsigned char *p, size_t n) {
  const unsigned c = p[0];
  size_t len;
  unsigned lo = 0x80, hi = 0xBF; // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0; // overlong
    if (c == 0xED) hi = 0x9F; // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90; // overlong
    if (c == 0xF4) hi = 0x8F; // above U+10FFFF
  } else {
    return 0;
  }
  if (len > n || p[1] < lo || p[1] > hi) return 0;
  for (size_t k = 2; k < len; k++)
    if ((p[k] & 0xC0) != 0x80) return 0;
  return len;
}

class FileSource {
public:
  virtual ~FileSource() = default;
  // Appends up to `max_docs` records (text, kind and record set; input and seq are the
  // caller's), stopping once `max_bytes` of text were added. Returns how many; 0 at the end.
  virtual size_t read(std::vector<Document> &out, size_t max_docs, size_t max_bytes) = 0;
  // Skips up to `n` records; returns how many were skipped (fewer only at the end of the file).
  virtual uint64_t skip(uint64_t n) = 0;
  virtual uint64_t bytes_done() const = 0; // of the file's size, approximately
};

// Checked before anything is read: the file opens as its kind and has the text column (Error
// naming the file, listing the columns it has).
void check_arrow_input(const InputFile &f, const SourceOptions &opt);
std::unique_ptr<FileSource> open_arrow_source(const InputFile &f, const SourceOptions &opt);
std::unique_ptr<FileSource> open_jsonl_source(const InputFile &f, const SourceOptions &opt);
std::unique_ptr<FileSource> open_text_source(const InputFile &f, const SourceOptions &opt);

// A JSONL line -> its text field (DocumentReader::resolve). In source_jsonl.cpp.
void resolve_json_line(Document &doc, const std::string &path, const std::string &field);

// Bytes of a file, decompressed when its name ends in .gz or .zst (zlib, libzstd); Error
// naming the file on corrupt or truncated data.
class ByteStream {
public:
  virtual ~ByteStream() = default;
  virtual size_t read(char *buf, size_t n) = 0; // 0 at the end
  virtual uint64_t bytes_done() const = 0;      // of the file (compressed bytes)
};
std::unique_ptr<ByteStream> open_byte_stream(const std::string &path);

// What the first bytes of a file look like, for "not a Parquet file (it looks like ...)".
std::string describe_content(const std::string &path);

} // namespace finegpt
