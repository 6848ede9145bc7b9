// JSONL inputs (one JSON object per line, the document in --text-field) and the byte streams
// under them and under text inputs: plain files, gzip (zlib, concatenated members too) and zstd
// (libzstd, concatenated frames too), chosen by the file's first bytes. Lines are split here,
// in the reader thread; parsing them (resolve_json_line) runs on the worker threads.
#include "core/error.h"
#include "data/source_impl.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <zlib.h>
#include <zstd.h>

namespace finegpt {

namespace {

constexpr size_t kChunk = size_t(1) << 20;

class PlainStream : public ByteStream {
public:
  PlainStream(FILE *f, std::string path) : f_(f), path_(std::move(path)) {}
  ~PlainStream() override { std::fclose(f_); }
  size_t read(char *buf, size_t n) override {
    size_t got = std::fread(buf, 1, n, f_);
    if (got < n && std::ferror(f_)) fail(path_, ": read error: ", std::strerror(errno));
    done_ += got;
    return got;
  }
  uint64_t bytes_done() const override { return done_; }

private:
  FILE *f_;
  std::string path_;
  uint64_t done_ = 0;
};

// Compressed input: the raw bytes are read in chunks and handed to a decoder. At the end of
// the file the decoder is called with no input until it has flushed what it holds.
class CompressedStream : public ByteStream {
public:
  CompressedStream(FILE *f, const std::string &path) : raw_(f, path), in_(kChunk), path_(path) {}
  uint64_t bytes_done() const override { return raw_.bytes_done(); }

protected:
  // Refills the input buffer when empty; false at the end of the file.
  bool refill() {
    if (in_pos_ < in_len_) return true;
    in_len_ = raw_.read(in_.data(), in_.size());
    in_pos_ = 0;
    return in_len_ > 0;
  }
  PlainStream raw_;
  std::vector<char> in_;
  size_t in_pos_ = 0, in_len_ = 0;
  std::string path_;
};

class GzipStream : public CompressedStream {
public:
  GzipStream(FILE *f, const std::string &path) : CompressedStream(f, path) {
    std::memset(&z_, 0, sizeof z_);
    if (inflateInit2(&z_, 16 + MAX_WBITS) != Z_OK) fail(path, ": cannot start gzip decoder");
  }
  ~GzipStream() override { inflateEnd(&z_); }
  size_t read(char *buf, size_t n) override {
    size_t out = 0;
    while (out < n) {
      const bool have = refill();
      if (!have && !mid_member_) break;
      z_.next_in = reinterpret_cast<Bytef *>(in_.data() + in_pos_);
      z_.avail_in = have ? uInt(in_len_ - in_pos_) : 0;
      z_.next_out = reinterpret_cast<Bytef *>(buf + out);
      z_.avail_out = uInt(n - out);
      const size_t before = out;
      int rc = inflate(&z_, Z_NO_FLUSH);
      if (have) in_pos_ = in_len_ - z_.avail_in;
      out = n - z_.avail_out;
      mid_member_ = true;
      if (rc == Z_STREAM_END) {
        mid_member_ = false;
        inflateReset(&z_); // a following member, if any (gzip files may be concatenated)
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        fail(path_, ": corrupt gzip data (", z_.msg ? z_.msg : "zlib error", ")");
      } else if (!have && out == before) {
        fail(path_, ": truncated gzip data (the file ends inside a member)");
      }
    }
    return out;
  }

private:
  z_stream z_;
  bool mid_member_ = false;
};

class ZstdStream : public CompressedStream {
public:
  ZstdStream(FILE *f, const std::string &path)
      : CompressedStream(f, path), ctx_(ZSTD_createDCtx()) {
    if (!ctx_) fail(path, ": cannot start zstd decoder");
  }
  ~ZstdStream() override { ZSTD_freeDCtx(ctx_); }
  size_t read(char *buf, size_t n) override {
    ZSTD_outBuffer ob{buf, n, 0};
    while (ob.pos < n) {
      const bool have = refill();
      if (!have && !pending_) break;
      ZSTD_inBuffer ib{in_.data(), have ? in_len_ : 0, have ? in_pos_ : 0};
      const size_t before = ob.pos;
      size_t rc = ZSTD_decompressStream(ctx_, &ob, &ib);
      if (ZSTD_isError(rc)) fail(path_, ": corrupt zstd data (", ZSTD_getErrorName(rc), ")");
      if (have) in_pos_ = ib.pos;
      pending_ = rc != 0;
      if (!have && ob.pos == before && pending_)
        fail(path_, ": truncated zstd data (the file ends inside a frame)");
    }
    return ob.pos;
  }

private:
  ZSTD_DCtx *ctx_;
  bool pending_ = false;
};

bool name_ends(const std::string &path, const char *suffix) {
  size_t n = std::strlen(suffix);
  if (path.size() < n) return false;
  for (size_t i = 0; i < n; i++)
    if (std::tolower((unsigned char)path[path.size() - n + i]) != suffix[i]) return false;
  return true;
}

// The four hex digits at s[at..at+4) as a number.
bool hex4(std::string_view s, size_t at, unsigned &u) {
  if (at + 4 > s.size()) return false;
  u = 0;
  for (size_t k = at; k < at + 4; k++) {
    char c = s[k];
    unsigned d = c >= '0' && c <= '9'   ? unsigned(c - '0')
                 : c >= 'a' && c <= 'f' ? unsigned(c - 'a' + 10)
                 : c >= 'A' && c <= 'F' ? unsigned(c - 'A' + 10)
                                        : 16u;
    if (d == 16) return false;
    u = u * 16 + d;
  }
  return true;
}

// The line with each invalid UTF-8 byte and each unpaired surrogate escape replaced by
// U+FFFD; *changed says whether anything was.
std::string repair_utf8(std::string_view s, bool *changed) {
  std::string out;
  out.reserve(s.size() + 16);
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  size_t i = 0;
  *changed = false;
  while (i < s.size()) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      unsigned u, u2;
      if (s[i + 1] == 'u' && hex4(s, i + 2, u) && u >= 0xD800 && u <= 0xDFFF) {
        bool paired = u <= 0xDBFF && i + 12 <= s.size() && s[i + 6] == '\\' && s[i + 7] == 'u' &&
                      hex4(s, i + 8, u2) && u2 >= 0xDC00 && u2 <= 0xDFFF;
        if (paired) {
          out.append(s.substr(i, 12));
          i += 12;
        } else {
          out += "\\ufffd";
          *changed = true;
          i += 6;
        }
        continue;
      }
      out.append(s.substr(i, 2));
      i += 2;
      continue;
    }
    if (p[i] < 0x80) {
      out += s[i++];
      continue;
    }
    size_t len = utf8_char_len(p + i, s.size() - i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";
      *changed = true;
      i++;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

// nlohmann's message without its "[json.exception...]" tag and the line (always 1 here).
std::string json_message(const std::exception &e) {
  std::string m = e.what();
  if (size_t close = m.find("] "); m.rfind("[json.exception", 0) == 0 && close != std::string::npos)
    m = m.substr(close + 2);
  if (size_t at = m.find("at line 1, "); at != std::string::npos) m.erase(at, 11);
  return m;
}

class JsonlSource : public FileSource {
public:
  explicit JsonlSource(const InputFile &f) : path_(f.path), in_(open_byte_stream(f.path)) {}

  size_t read(std::vector<Document> &out, size_t max_docs, size_t max_bytes) override {
    size_t n = 0, bytes = 0;
    std::string_view line;
    while (n < max_docs && bytes < max_bytes && next_record(line)) {
      Document &d = out.emplace_back();
      d.kind = Document::Kind::JsonLine;
      d.text.assign(line);
      d.record = line_;
      bytes += line.size();
      n++;
    }
    return n;
  }

  uint64_t skip(uint64_t n) override {
    uint64_t k = 0;
    std::string_view line;
    while (k < n && next_record(line))
      k++;
    return k;
  }

  uint64_t bytes_done() const override { return in_->bytes_done(); }

private:
  // The next non-blank line (without its "\n" or "\r\n"); valid until the next call.
  bool next_record(std::string_view &line) {
    while (next_line(line)) {
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.find_first_not_of(" \t\r") != std::string_view::npos) return true;
    }
    return false;
  }

  bool next_line(std::string_view &line) {
    for (;;) {
      const void *nl = std::memchr(buf_.data() + scan_, '\n', buf_.size() - scan_);
      if (nl) {
        size_t end = size_t(static_cast<const char *>(nl) - buf_.data());
        line = std::string_view(buf_).substr(pos_, end - pos_);
        pos_ = scan_ = end + 1;
        line_++;
        return true;
      }
      if (eof_) {
        if (pos_ >= buf_.size()) return false;
        line = std::string_view(buf_).substr(pos_);
        pos_ = scan_ = buf_.size();
        line_++;
        return true;
      }
      buf_.erase(0, pos_);
      scan_ = buf_.size();
      pos_ = 0;
      size_t old = buf_.size();
      buf_.resize(old + kChunk);
      size_t got = in_->read(buf_.data() + old, kChunk);
      buf_.resize(old + got);
      if (got == 0) eof_ = true;
    }
  }

  std::string path_;
  std::unique_ptr<ByteStream> in_;
  std::string buf_;
  size_t pos_ = 0, scan_ = 0; // start of the next line; where the search for '\n' resumes
  bool eof_ = false;
  uint64_t line_ = 0;
};

} // namespace

std::unique_ptr<ByteStream> open_byte_stream(const std::string &path) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) fail(path, ": cannot open: ", std::strerror(errno));
  unsigned char magic[4] = {};
  size_t n = std::fread(magic, 1, 4, f);
  std::rewind(f);
  const bool gz = n >= 2 && magic[0] == 0x1F && magic[1] == 0x8B;
  const bool zst =
      n == 4 && magic[0] == 0x28 && magic[1] == 0xB5 && magic[2] == 0x2F && magic[3] == 0xFD;
  if (gz) return std::make_unique<GzipStream>(f, path);
  if (zst) return std::make_unique<ZstdStream>(f, path);
  std::fclose(f);
  if (name_ends(path, ".gz"))
    fail(path, ": not gzip data (it looks like ", describe_content(path), ")");
  if (name_ends(path, ".zst") || name_ends(path, ".zstd"))
    fail(path, ": not zstd data (it looks like ", describe_content(path), ")");
  f = std::fopen(path.c_str(), "rb");
  if (!f) fail(path, ": cannot open: ", std::strerror(errno));
  return std::make_unique<PlainStream>(f, path);
}

std::unique_ptr<FileSource> open_jsonl_source(const InputFile &f, const SourceOptions &) {
  return std::make_unique<JsonlSource>(f);
}

void resolve_json_line(Document &doc, const std::string &path, const std::string &field) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(doc.text);
  } catch (const nlohmann::json::exception &e) {
    bool changed = false;
    std::string fixed = repair_utf8(doc.text, &changed);
    try {
      if (!changed) throw;
      j = nlohmann::json::parse(fixed);
      doc.repaired_utf8 = true;
    } catch (const nlohmann::json::exception &) {
      fail(path, ":", doc.record, ": not JSON (", json_message(e), ")");
    }
  }
  if (!j.is_object())
    fail(path, ":", doc.record, ": expected a JSON object with a \"", field, "\" field, got ",
         j.type_name());
  auto it = j.find(field);
  if (it == j.end()) {
    std::string fields;
    for (auto &[k, v] : j.items())
      fields += (fields.empty() ? "" : ", ") + k;
    fail(path, ":", doc.record, ": no field \"", field, "\" (fields: ", fields,
         "); choose one with --text-field");
  }
  if (!it->is_string()) {
    doc.kind = Document::Kind::NotText;
    doc.text.clear();
    return;
  }
  doc.text = std::move(it->get_ref<std::string &>());
  doc.kind = Document::Kind::Text;
}

} // namespace finegpt
