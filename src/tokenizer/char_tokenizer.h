// Character-level tokenizer as nanoGPT's shakespeare_char prepare.py builds it: the vocabulary
// is the sorted set of Unicode code points of the corpus; ids are their positions. Saved as
// meta.json beside the shards ({"tokenizer": "char", "vocab_size": N, "itos": [...]}).
#pragma once
#include "tokenizer/encoder.h"

#include <cstdint>
#include <string>
#include <vector>

namespace finegpt {

// Strict UTF-8 (RFC 3629): Error "invalid UTF-8 at byte N: ..." on a stray or missing
// continuation byte, an overlong form, a surrogate or a code point above U+10FFFF.
std::u32string utf8_decode(const std::string &utf8);
std::string utf8_encode(const std::u32string &text); // Error on a surrogate or > U+10FFFF
std::string utf8_encode(char32_t c);

// As a TextEncoder: no document separator (-1), name "char", identity the sha256 of the
// vocabulary string (the UTF-8 of itos in order).
class CharTokenizer : public TextEncoder {
public:
  // Error on invalid UTF-8, or more than kMaxVocab distinct characters (ids are uint16).
  static CharTokenizer from_text(const std::string &utf8);
  static constexpr int kMaxVocab = 65535;
  static CharTokenizer load(const std::string &meta_json_path);
  // From the characters in id order; Error naming `file` and the list's `name` unless they are
  // sorted by code point, distinct, and 1 to kMaxVocab of them.
  static CharTokenizer from_itos(std::vector<char32_t> itos, const std::string &file,
                                 const std::string &name);
  void save(const std::string &meta_json_path) const; // atomic
  int vocab_size() const override { return int(itos_.size()); }
  // Error naming the character and its offset if it is not in the vocabulary.
  std::vector<uint16_t> encode(const std::string &utf8) const;
  void encode(std::string_view utf8, std::vector<uint16_t> &out) const override;
  std::string decode(const int32_t *ids, size_t n) const override; // Error on an id out of range
  int document_separator() const override { return -1; }
  std::string name() const override { return "char"; }
  std::string identity() const override;
  const std::vector<char32_t> &itos() const { return itos_; }

private:
  std::vector<char32_t> itos_;
};

} // namespace finegpt
