// Inside `prepare` (prepare.h): the streaming pipeline (prepare_pipeline.cpp: a reader thread,
// OpenMP encoding of each batch, one writer in document order), the character vocabulary pass
// and encoders (prepare_char.cpp), and the bookkeeping that makes a run restartable. Not a
// public API.
#pragma once
#include "data/prepare.h"
#include "data/sources.h"
#include "tokenizer/encoder.h"

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace finegpt {

// Running totals, in document order.
struct Counts {
  uint64_t records = 0, documents = 0, empty = 0, not_text = 0, invalid_utf8 = 0, tokens = 0;
};

// Where a run stands after its last finished shard: what a restart continues from. Records
// [0, records_done) are written; of record `records_done`, the first `partial` tokens
// (separator included) are in the finished shards.
struct ResumePoint {
  std::vector<uint64_t> shard_tokens; // of each finished shard
  uint64_t records_done = 0, partial = 0;
  // The input file holding record records_done (or the one before it) and the sequence number
  // of that file's first record: a restart starts reading there, without the files before it.
  size_t input = 0;
  uint64_t input_first = 0;
  Counts counts; // over the records before records_done; tokens = all tokens in the shards
};

// Shard k's file name and size (0 = no shard k).
struct ShardLayout {
  std::function<std::string(size_t)> file_name;
  std::function<uint64_t(size_t)> capacity;
};

struct PipelineConfig {
  const TextEncoder *enc = nullptr;
  ShardLayout layout;
  std::string out_dir;
  uint64_t max_tokens = 0, max_docs = 0; // 0 = no limit
  bool split_documents = false;          // encoder is context-free (char): split long documents
  // Records after last_seq are not encoded; record last_seq is cut to last_bytes (char layout:
  // text past the cut may hold characters outside the vocabulary).
  uint64_t last_seq = UINT64_MAX, last_bytes = 0;
  bool progress = true;
  std::string label = "prepare";
  std::function<void(const ResumePoint &)> on_shard; // after each finished shard (save state)
};

struct PipelineResult {
  ResumePoint end; // everything written, the last shard included
  uint64_t text_bytes = 0;
};

// Reads from `reader` (positioned at `start.records_done` by this function), encodes and
// writes shards from `start` on; the last shard is finished at the end.
PipelineResult run_pipeline(DocumentReader &reader, const PipelineConfig &cfg,
                            const ResumePoint &start);

// "file:line", "file (row N)", "file (document N)" or "file": where a document is.
std::string document_place(const DocumentReader &reader, const Document &d);

// A reader thread a few batches ahead of the consumer. Errors of the reader are rethrown by
// next(); destruction stops and joins the thread.
class ReadAhead {
public:
  struct Batch {
    std::vector<Document> docs;
    uint64_t bytes_done = 0; // reader.bytes_done() after this batch
  };
  explicit ReadAhead(DocumentReader &reader, size_t depth = 3);
  ~ReadAhead();
  bool next(Batch &out); // false at the end

private:
  void run();
  DocumentReader &reader_;
  size_t depth_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;
  bool done_ = false, stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

// The progress line on stderr: rewritten in place on a terminal, else one line every few
// seconds. MB/s of text, documents/s, tokens and ETA from the input bytes.
class Progress {
public:
  Progress(bool enabled, std::string label, uint64_t total_bytes);
  ~Progress();
  void update(uint64_t bytes_done, uint64_t docs, uint64_t tokens, uint64_t text_bytes);
  void clear(); // erases the line on a terminal
  double seconds() const;

private:
  bool enabled_, tty_;
  std::string label_;
  uint64_t total_;
  double start_, last_ = 0;
  bool shown_ = false;
};

// Character vocabulary pass (nanoGPT's sorted set of the characters of all the text), over the
// documents `prepare` will write (max_docs / max_tokens applied the same way). Error naming the
// document on invalid UTF-8 or more than 65535 characters.
struct CharScan {
  std::vector<char32_t> itos;
  uint64_t chars = 0; // tokens the char layout will write
  // Where max_docs / max_tokens cut the input: the last record read and its bytes taken.
  uint64_t last_seq = UINT64_MAX, last_bytes = 0;
};
CharScan scan_char_vocabulary(DocumentReader &reader, uint64_t max_docs, uint64_t max_tokens,
                              bool progress);
std::unique_ptr<TextEncoder> make_char_encoder(const std::vector<char32_t> &itos);
// For tests: token = byte value, separator 256.
std::unique_ptr<TextEncoder> make_test_byte_encoder();

// Document length in Unicode characters, and the bytes of its first `chars` characters (valid
// UTF-8 assumed).
uint64_t utf8_count_chars(std::string_view s);
size_t utf8_prefix_bytes(std::string_view s, uint64_t chars);

} // namespace finegpt
