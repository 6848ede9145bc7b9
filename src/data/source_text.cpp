// Plain text inputs (optionally .gz / .zst): one document per file, or documents split by
// --doc-separator (a separator at the very end of the file does not start an empty document).
// Bytes are taken as stored: no newline translation, no UTF-8 check here.
#include "core/error.h"
#include "data/source_impl.h"

#include <algorithm>

namespace finegpt {

namespace {

constexpr size_t kChunk = size_t(1) << 20;

class TextSource : public FileSource {
public:
  TextSource(const InputFile &f, const SourceOptions &opt)
      : in_(open_byte_stream(f.path)), sep_(opt.doc_separator) {}

  size_t read(std::vector<Document> &out, size_t max_docs, size_t max_bytes) override {
    size_t n = 0, bytes = 0;
    std::string_view piece;
    while (n < max_docs && bytes < max_bytes && next_piece(piece)) {
      Document &d = out.emplace_back();
      d.text.assign(piece);
      d.record = doc_++;
      bytes += piece.size();
      n++;
    }
    return n;
  }

  uint64_t skip(uint64_t n) override {
    uint64_t k = 0;
    std::string_view piece;
    while (k < n && next_piece(piece)) {
      doc_++;
      k++;
    }
    return k;
  }

  uint64_t bytes_done() const override { return in_->bytes_done(); }

private:
  // The next document; valid until the next call.
  bool next_piece(std::string_view &piece) {
    if (finished_) return false;
    if (sep_.empty()) { // the whole file
      while (fill()) {
      }
      piece = buf_;
      finished_ = true;
      return true;
    }
    for (;;) {
      size_t at = buf_.find(sep_, scan_);
      if (at != std::string::npos) {
        piece = std::string_view(buf_).substr(pos_, at - pos_);
        pos_ = scan_ = at + sep_.size();
        return true;
      }
      if (eof_) {
        finished_ = true;
        if (pos_ >= buf_.size()) return false; // ended with a separator (or is empty)
        piece = std::string_view(buf_).substr(pos_);
        return true;
      }
      buf_.erase(0, pos_);
      pos_ = 0;
      // A separator may straddle the old end and the new bytes.
      scan_ = buf_.size() >= sep_.size() ? buf_.size() - sep_.size() + 1 : 0;
      fill();
    }
  }

  bool fill() {
    size_t old = buf_.size();
    buf_.resize(old + kChunk);
    size_t got = in_->read(buf_.data() + old, kChunk);
    buf_.resize(old + got);
    if (got == 0) eof_ = true;
    return got > 0;
  }

  std::unique_ptr<ByteStream> in_;
  std::string sep_;
  std::string buf_;
  size_t pos_ = 0, scan_ = 0;
  bool eof_ = false, finished_ = false;
  uint64_t doc_ = 0;
};

} // namespace

std::unique_ptr<FileSource> open_text_source(const InputFile &f, const SourceOptions &opt) {
  return std::make_unique<TextSource>(f, opt);
}

} // namespace finegpt
