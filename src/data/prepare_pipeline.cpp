// The streaming pipeline of `prepare` (see prepare_impl.h): a reader thread fills batches of
// documents; each batch is resolved (JSON) and checked, then encoded, document by document, on
// all OpenMP threads; one writer appends the tokens in document order to the current shard,
// which is written under a temporary name and renamed when full. Because documents are encoded
// independently and written in order, the output does not depend on the thread count.
#include "core/error.h"
#include "core/file.h"
#include "core/units.h"
#include "data/prepare_impl.h"
#include "data/tokens.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <unistd.h>

namespace finegpt {

namespace {

constexpr size_t kBatchDocs = 4096;
constexpr size_t kBatchBytes = size_t(16) << 20;
constexpr size_t kPieceBytes = size_t(1) << 20; // split_documents: pieces of about this size

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// One shard being written: the header (with the capacity as its count, rewritten if the
// shard ends shorter), then tokens as they come, all to "<path>.tmp.<pid>"; fsynced and renamed
// to <path> when finished. Destroyed unfinished (an error), the temporary file is removed, so
// no shard that looks complete is ever left short.
class ShardFile {
public:
  ShardFile(std::string path, uint64_t capacity)
      : path_(std::move(path)), tmp_(cat(path_, ".tmp.", getpid())), capacity_(capacity) {
    FINEGPT_CHECK(capacity_ < (uint64_t(1) << 31), path_, ": ", capacity_,
                  " tokens is too many for one llm.c shard (at most 2^31 - 1)");
    f_ = std::fopen(tmp_.c_str(), "wb");
    if (!f_) fail(path_, ": cannot write: ", std::strerror(errno));
    std::setvbuf(f_, nullptr, _IOFBF, size_t(1) << 20);
    write_header(capacity_);
  }
  ~ShardFile() {
    if (f_) {
      std::fclose(f_);
      std::remove(tmp_.c_str());
    }
  }
  uint64_t room() const { return capacity_ - fill_; }
  uint64_t fill() const { return fill_; }
  void write(const uint16_t *t, size_t n) {
    write_bytes(f_, t, n * sizeof(uint16_t), path_);
    fill_ += n;
  }
  void finish() {
    if (fill_ != capacity_) {
      if (std::fseek(f_, 0, SEEK_SET) != 0) fail(path_, ": seek failed: ", std::strerror(errno));
      write_header(fill_);
    }
    if (std::fflush(f_) != 0) fail(path_, ": write failed: ", std::strerror(errno));
    if (fsync(fileno(f_)) != 0) fail(path_, ": fsync failed: ", std::strerror(errno));
    int rc = std::fclose(f_);
    f_ = nullptr;
    if (rc != 0) {
      int e = errno;
      std::remove(tmp_.c_str());
      fail(path_, ": write failed: ", std::strerror(e));
    }
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
      int e = errno;
      std::remove(tmp_.c_str());
      fail(path_, ": cannot rename into place: ", std::strerror(e));
    }
  }

private:
  void write_header(uint64_t count) {
    int32_t header[256] = {};
    header[0] = kShardMagic, header[1] = kShardVersion, header[2] = int32_t(count);
    write_bytes(f_, header, sizeof header, path_);
  }
  std::string path_, tmp_;
  uint64_t capacity_, fill_ = 0;
  FILE *f_ = nullptr;
};

// What the first parallel step finds out about a document.
struct DocInfo {
  bool beyond = false; // after the last record to write (PipelineConfig::last_seq)
  bool text = false, empty = false, invalid_utf8 = false;
  size_t first_item = 0, items = 0;
};

struct Item {
  size_t doc;
  size_t begin, end; // byte range of the document's text
};

// Rethrows the first (in document order) of the errors caught on the worker threads.
void rethrow_first(std::vector<std::exception_ptr> &errors) {
  for (auto &e : errors)
    if (e) std::rethrow_exception(e);
}

// Splits [0, size) into pieces of about kPieceBytes at character boundaries.
void split_pieces(const std::string &s, size_t doc, std::vector<Item> &items) {
  size_t begin = 0;
  while (s.size() - begin > kPieceBytes + kPieceBytes / 2) {
    size_t end = begin + kPieceBytes;
    while (end < s.size() && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80)
      end++;
    items.push_back({doc, begin, end});
    begin = end;
  }
  items.push_back({doc, begin, s.size()});
}

} // namespace

std::string document_place(const DocumentReader &reader, const Document &d) {
  const InputFile &f = reader.inputs()[d.input];
  const std::string &where = f.origin.empty() ? f.path : f.origin;
  switch (f.kind) {
  case InputKind::Jsonl:
    return cat(where, ":", d.record);
  case InputKind::Text:
    return d.record == 0 ? where : cat(where, " (document ", d.record, ")");
  default:
    return cat(where, " (row ", d.record, ")");
  }
}

// ---------------------------------------------------------------------------------------------
// ReadAhead

ReadAhead::ReadAhead(DocumentReader &reader, size_t depth)
    : reader_(reader), depth_(depth), thread_([this] { run(); }) {}

ReadAhead::~ReadAhead() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ReadAhead::run() {
  try {
    for (;;) {
      Batch b;
      size_t n = reader_.next_batch(b.docs, kBatchDocs, kBatchBytes);
      b.bytes_done = reader_.bytes_done();
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || queue_.size() < depth_; });
      if (stop_) return;
      if (n == 0) {
        done_ = true;
        cv_.notify_all();
        return;
      }
      queue_.push_back(std::move(b));
      cv_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = std::current_exception();
    done_ = true;
    cv_.notify_all();
  }
}

bool ReadAhead::next(Batch &out) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !queue_.empty() || done_; });
  if (!queue_.empty()) {
    out = std::move(queue_.front());
    queue_.pop_front();
    cv_.notify_all();
    return true;
  }
  if (error_) std::rethrow_exception(error_);
  return false;
}

// ---------------------------------------------------------------------------------------------
// Progress

Progress::Progress(bool enabled, std::string label, uint64_t total_bytes)
    : enabled_(enabled), tty_(isatty(STDERR_FILENO) == 1), label_(std::move(label)),
      total_(total_bytes), start_(now_seconds()) {
  last_ = start_;
}

Progress::~Progress() { clear(); }

double Progress::seconds() const { return now_seconds() - start_; }

void Progress::update(uint64_t bytes_done, uint64_t docs, uint64_t tokens, uint64_t text_bytes) {
  if (!enabled_) return;
  const double t = now_seconds();
  if (t - last_ < (tty_ ? 0.25 : 5.0)) return;
  last_ = t;
  const double el = std::max(t - start_, 1e-9);
  const double frac = total_ ? std::min(1.0, double(bytes_done) / double(total_)) : 0;
  std::string eta = frac > 0 ? duration_text(el * (1 - frac) / frac) : "?";
  std::string line =
      cat(label_, ": ", human(double(bytes_done), "B"), " of ", human(double(total_), "B"), " (",
          int(frac * 100), "%), ", human(double(text_bytes) / el, "B/s"), " of text, ",
          human(double(docs) / el, ""), " documents/s, ", human(double(tokens), ""),
          " tokens, ETA ", eta);
  if (tty_)
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
  else
    std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
  shown_ = true;
}

void Progress::clear() {
  if (shown_ && tty_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }
  shown_ = false;
}

// ---------------------------------------------------------------------------------------------
// The pipeline

PipelineResult run_pipeline(DocumentReader &reader, const PipelineConfig &cfg,
                            const ResumePoint &start) {
  namespace fs = std::filesystem;
  const TextEncoder &enc = *cfg.enc;
  const int sep = enc.document_separator();
  PipelineResult res;
  ResumePoint &pos = res.end;
  pos = start;
  Counts &c = pos.counts;
  const auto limit_reached = [&] {
    return (cfg.max_tokens && c.tokens >= cfg.max_tokens) ||
           (cfg.max_docs && c.documents >= cfg.max_docs);
  };

  reader.skip_to(start.records_done, start.input, start.input_first);
  Progress progress(cfg.progress, cfg.label, reader.bytes_total());
  std::unique_ptr<ShardFile> shard;
  const auto open_shard = [&] {
    const size_t k = pos.shard_tokens.size();
    const uint64_t cap = cfg.layout.capacity(k);
    FINEGPT_CHECK(cap > 0, "internal: no room for more tokens after ", k, " shards");
    shard = std::make_unique<ShardFile>((fs::path(cfg.out_dir) / cfg.layout.file_name(k)).string(),
                                        cap);
  };
  const auto finish_shard = [&] {
    shard->finish();
    pos.shard_tokens.push_back(shard->fill());
    shard.reset();
  };

  ReadAhead ahead(reader);
  ReadAhead::Batch batch;
  std::vector<DocInfo> info;
  std::vector<Item> items;
  std::vector<std::vector<uint16_t>> toks;
  std::vector<std::exception_ptr> errors;
  bool stop = limit_reached();
  while (!stop && ahead.next(batch)) {
    std::vector<Document> &docs = batch.docs;
    const long n = long(docs.size());
    info.assign(docs.size(), DocInfo{});
    errors.assign(docs.size(), nullptr);
#pragma omp parallel for schedule(dynamic, 16)
    for (long i = 0; i < n; i++) {
      try {
        Document &d = docs[size_t(i)];
        DocInfo &di = info[size_t(i)];
        if (d.seq > cfg.last_seq) {
          di.beyond = true;
          continue;
        }
        reader.resolve(d);
        if (d.seq == cfg.last_seq && d.text.size() > cfg.last_bytes) d.text.resize(cfg.last_bytes);
        di.text = d.kind == Document::Kind::Text;
        di.empty = di.text && d.text.empty();
        di.invalid_utf8 = di.text && (d.repaired_utf8 || !utf8_valid(d.text));
      } catch (...) {
        errors[size_t(i)] = std::current_exception();
      }
    }
    rethrow_first(errors);

    items.clear();
    for (size_t i = 0; i < docs.size(); i++) {
      DocInfo &di = info[i];
      di.first_item = items.size();
      if (!di.text || di.empty) continue;
      if (cfg.split_documents)
        split_pieces(docs[i].text, i, items);
      else
        items.push_back({i, 0, docs[i].text.size()});
      di.items = items.size() - di.first_item;
    }
    if (toks.size() < items.size()) toks.resize(items.size());
    errors.assign(items.size(), nullptr);
    const long m = long(items.size());
#pragma omp parallel for schedule(dynamic, 1)
    for (long j = 0; j < m; j++) {
      const Item &it = items[size_t(j)];
      const Document &d = docs[it.doc];
      std::vector<uint16_t> &t = toks[size_t(j)];
      t.clear();
      try {
        if (sep >= 0 && it.begin == 0) t.push_back(uint16_t(sep));
        enc.encode(std::string_view(d.text).substr(it.begin, it.end - it.begin), t);
      } catch (const Error &e) {
        errors[size_t(j)] =
            std::make_exception_ptr(Error(cat(document_place(reader, d), ": ", e.what())));
      } catch (...) {
        errors[size_t(j)] = std::current_exception();
      }
    }
    rethrow_first(errors);

    // In document order, one thread.
    for (size_t i = 0; i < docs.size() && !stop; i++) {
      const Document &d = docs[i];
      const DocInfo &di = info[i];
      if (di.beyond) {
        stop = true;
        break;
      }
      const Counts before = c;
      c.records++;
      if (!di.text) {
        c.not_text++;
        continue;
      }
      if (di.empty) {
        c.empty++;
        continue;
      }
      c.documents++;
      c.invalid_utf8 += di.invalid_utf8;
      res.text_bytes += d.text.size();
      uint64_t len = 0;
      for (size_t j = di.first_item; j < di.first_item + di.items; j++)
        len += toks[j].size();
      // Tokens of this document already in finished shards (restart).
      const uint64_t drop = d.seq == start.records_done ? start.partial : 0;
      uint64_t g = 0; // position in the document's tokens
      for (size_t j = di.first_item; j < di.first_item + di.items && !stop; j++) {
        const uint16_t *p = toks[j].data();
        uint64_t left = toks[j].size();
        if (g + left <= drop) {
          g += left;
          continue;
        }
        if (g < drop) p += drop - g, left -= drop - g, g = drop;
        while (left > 0) {
          if (!shard) open_shard();
          uint64_t take = std::min(left, shard->room());
          if (cfg.max_tokens) take = std::min(take, cfg.max_tokens - c.tokens);
          shard->write(p, take);
          p += take, left -= take, g += take, c.tokens += take;
          if (shard->room() == 0) {
            finish_shard();
            ResumePoint &s = pos; // state as of this moment
            const Counts now = c;
            // Done with the document: all of it written, or the run ends inside it.
            s.input = d.input, s.input_first = reader.first_record_of(d.input);
            if (g == len || (cfg.max_tokens && now.tokens >= cfg.max_tokens)) {
              s.records_done = d.seq + 1, s.partial = 0;
            } else {
              s.records_done = d.seq, s.partial = g;
              c = before;
              c.tokens = now.tokens;
            }
            if (cfg.on_shard) cfg.on_shard(s);
            c = now;
          }
          if (cfg.max_tokens && c.tokens >= cfg.max_tokens) {
            stop = true;
            break;
          }
        }
      }
      if (limit_reached()) stop = true;
    }
    progress.update(batch.bytes_done, c.documents, c.tokens, res.text_bytes);
  }
  if (shard && shard->fill() > 0) finish_shard();
  shard.reset();
  progress.clear();
  return res;
}

} // namespace finegpt
