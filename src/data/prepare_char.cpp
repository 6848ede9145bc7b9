// The character-level side of `prepare` (nanoGPT's shakespeare_char): the vocabulary pass
// over all the documents (parallel: per-thread code-point bitmaps), the encoder that maps
// characters to their rank in the sorted vocabulary, and the byte encoder the tests use.
#include "core/error.h"
#include "data/prepare_impl.h"
#include "data/source_impl.h"
#include "tokenizer/char_tokenizer.h"

#include <algorithm>
#include <omp.h>

namespace finegpt {

namespace {

constexpr char32_t kCodePoints = 0x110000;

// The code point at s[i] (valid UTF-8), advancing i.
inline char32_t next_code_point(const unsigned char *s, size_t &i) {
  const unsigned c = s[i];
  if (c < 0x80) return char32_t(s[i++]);
  if (c < 0xE0) {
    char32_t r = ((c & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
    i += 2;
    return r;
  }
  if (c < 0xF0) {
    char32_t r = ((c & 0x0Fu) << 12) | ((s[i + 1] & 0x3Fu) << 6) | (s[i + 2] & 0x3Fu);
    i += 3;
    return r;
  }
  char32_t r = ((c & 0x07u) << 18) | ((s[i + 1] & 0x3Fu) << 12) | ((s[i + 2] & 0x3Fu) << 6) |
               (s[i + 3] & 0x3Fu);
  i += 4;
  return r;
}

// Marks the code points of the first `chars` characters of s.
void mark(std::string_view s, uint64_t chars, std::vector<uint64_t> &bits) {
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  size_t i = 0;
  for (uint64_t k = 0; k < chars && i < s.size(); k++) {
    char32_t c = next_code_point(p, i);
    bits[c >> 6] |= uint64_t(1) << (c & 63);
  }
}

class CharEncoder : public TextEncoder {
public:
  explicit CharEncoder(const std::vector<char32_t> &itos) : itos_(itos), stoi_(kCodePoints, 0) {
    for (size_t i = 0; i < itos_.size(); i++)
      stoi_[itos_[i]] = uint16_t(i + 1);
  }
  void encode(std::string_view text, std::vector<uint16_t> &out) const override {
    const auto *p = reinterpret_cast<const unsigned char *>(text.data());
    size_t i = 0;
    out.reserve(out.size() + text.size());
    while (i < text.size()) {
      const size_t at = i;
      if (p[i] >= 0x80 && utf8_char_len(p + i, text.size() - i) == 0)
        fail("invalid UTF-8 at byte ", at);
      const char32_t c = next_code_point(p, i);
      if (stoi_[c] == 0)
        fail("character U+", std::hex, unsigned(c), std::dec, " at byte ", at,
             " is not in the vocabulary");
      out.push_back(uint16_t(stoi_[c] - 1));
    }
  }
  std::string decode(const int32_t *ids, size_t n) const override {
    std::string out;
    for (size_t i = 0; i < n; i++) {
      FINEGPT_CHECK(ids[i] >= 0 && size_t(ids[i]) < itos_.size(), "token id ", ids[i],
                    " is out of range for a vocabulary of ", itos_.size(), " characters");
      out += utf8_encode(itos_[size_t(ids[i])]);
    }
    return out;
  }
  int document_separator() const override { return -1; }
  int vocab_size() const override { return int(itos_.size()); }
  std::string name() const override { return "char"; }
  std::string identity() const override { return cat(itos_.size(), " characters (itos)"); }

private:
  std::vector<char32_t> itos_;
  std::vector<uint16_t> stoi_; // code point -> id + 1 (0: not in the vocabulary)
};

class ByteEncoder : public TextEncoder {
public:
  void encode(std::string_view text, std::vector<uint16_t> &out) const override {
    for (char c : text)
      out.push_back(static_cast<unsigned char>(c));
  }
  std::string decode(const int32_t *ids, size_t n) const override {
    std::string out;
    for (size_t i = 0; i < n; i++)
      if (ids[i] < 256) out += char(ids[i]);
    return out;
  }
  int document_separator() const override { return 256; }
  int vocab_size() const override { return 257; }
  std::string name() const override { return "test-bytes"; }
  std::string identity() const override { return "bytes"; }
};

} // namespace

size_t utf8_prefix_bytes(std::string_view s, uint64_t chars) {
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  size_t i = 0;
  for (uint64_t k = 0; k < chars && i < s.size(); k++)
    next_code_point(p, i);
  return i;
}

uint64_t utf8_count_chars(std::string_view s) {
  uint64_t n = 0;
  for (char c : s)
    n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

std::unique_ptr<TextEncoder> make_char_encoder(const std::vector<char32_t> &itos) {
  return std::make_unique<CharEncoder>(itos);
}

std::unique_ptr<TextEncoder> make_test_byte_encoder() { return std::make_unique<ByteEncoder>(); }

CharScan scan_char_vocabulary(DocumentReader &reader, uint64_t max_docs, uint64_t max_tokens,
                              bool show_progress) {
  const int nt = omp_get_max_threads();
  std::vector<std::vector<uint64_t>> bits(size_t(nt), std::vector<uint64_t>(kCodePoints / 64));
  std::vector<uint64_t> chars;
  std::vector<char> text;
  std::vector<std::exception_ptr> errors;
  CharScan scan;
  uint64_t docs = 0, text_bytes = 0;
  Progress progress(show_progress, "prepare (vocabulary pass)", reader.bytes_total());
  ReadAhead ahead(reader);
  ReadAhead::Batch batch;
  bool stop = false;
  while (!stop && ahead.next(batch)) {
    std::vector<Document> &d = batch.docs;
    const long n = long(d.size());
    chars.assign(d.size(), 0);
    text.assign(d.size(), 0);
    errors.assign(d.size(), nullptr);
#pragma omp parallel for schedule(dynamic, 16)
    for (long i = 0; i < n; i++) {
      try {
        reader.resolve(d[size_t(i)]);
        const std::string &s = d[size_t(i)].text;
        if (d[size_t(i)].kind != Document::Kind::Text || s.empty()) continue;
        if (!utf8_valid(s)) {
          try {
            utf8_decode(s); // for its message
          } catch (const Error &e) {
            fail(document_place(reader, d[size_t(i)]), ": ", e.what(),
                 " (--tokenizer char needs UTF-8 text)");
          }
        }
        text[size_t(i)] = 1;
        chars[size_t(i)] = utf8_count_chars(s);
      } catch (...) {
        errors[size_t(i)] = std::current_exception();
      }
    }
    for (auto &e : errors)
      if (e) std::rethrow_exception(e);
    // The documents `prepare` will write: max_docs whole documents, max_tokens characters.
    size_t end = d.size();
    uint64_t cut_chars = 0; // of document end - 1 when the limit falls inside it
    for (size_t i = 0; i < d.size(); i++) {
      if (!text[i]) continue;
      uint64_t take = chars[i];
      if (max_tokens && scan.chars + take >= max_tokens)
        take = max_tokens - scan.chars, stop = true;
      scan.chars += take, docs++, text_bytes += d[i].text.size();
      if (max_docs && docs >= max_docs) stop = true;
      if (stop) {
        end = i + 1, cut_chars = take;
        scan.last_seq = d[i].seq;
        scan.last_bytes = utf8_prefix_bytes(d[i].text, take);
        break;
      }
    }
    const long full = long(stop ? end - 1 : end);
#pragma omp parallel for schedule(dynamic, 16)
    for (long i = 0; i < full; i++)
      if (text[size_t(i)])
        mark(d[size_t(i)].text, chars[size_t(i)], bits[size_t(omp_get_thread_num())]);
    if (stop) mark(d[end - 1].text, cut_chars, bits[0]);
    progress.update(batch.bytes_done, docs, scan.chars, text_bytes);
  }
  for (char32_t w = 0; w < kCodePoints / 64; w++) {
    uint64_t word = 0;
    for (auto &b : bits)
      word |= b[w];
    for (; word; word &= word - 1)
      scan.itos.push_back(w * 64 + char32_t(__builtin_ctzll(word)));
  }
  if (scan.itos.size() > size_t(CharTokenizer::kMaxVocab))
    fail("the text has ", scan.itos.size(),
         " distinct characters; a char vocabulary holds at most ", CharTokenizer::kMaxVocab,
         " (token ids are uint16)");
  return scan;
}

} // namespace finegpt
