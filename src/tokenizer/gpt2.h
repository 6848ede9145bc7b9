// tiktoken's `gpt2` encoding (r50k_base ranks), byte for byte: the same pre-tokenisation
// pattern with Unicode letter/number/White_Space classes as tiktoken's regex engine has them,
// byte-pair merges lowest rank first (leftmost on ties), and <|endoftext|> = 50256 only as
// the document separator (the literal text in a document is ordinary text, encode_ordinary).
//
// Invalid UTF-8: tiktoken takes text, not bytes, so the input is first made text the way
// Python's bytes.decode('utf-8', errors='replace') does it: each maximal ill-formed subsequence
// (a stray continuation byte, a truncated sequence, an overlong form, a surrogate, a code point
// above U+10FFFF) becomes U+FFFD. encode(bytes) therefore equals tiktoken's
// encode_ordinary(bytes.decode('utf-8', errors='replace')), and decode returns the replaced
// text: the original invalid bytes are not kept. Valid UTF-8 round-trips exactly.
//
// Pieces (pretokenize.h), merges (bpe.h) and the Unicode classes (unicode_tables.h) live in
// their own files; this one reads rank files and finds them.
#pragma once
#include "tokenizer/encoder.h"

#include <memory>
#include <string>

namespace finegpt {

namespace bpe {
class RankTable;
}

// GPT-2's printable stand-in for a byte in its vocab.bpe / encoder.json (bytes_to_unicode in
// GPT-2's encoder.py): printable Latin-1 bytes stand for themselves, the others become
// U+0100, U+0101, ... in byte order.
char32_t gpt2_byte_char(uint8_t b);

constexpr const char *kGpt2RanksSha256 =
    "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930";

class Gpt2Tokenizer : public TextEncoder {
public:
  static constexpr int kEndOfText = 50256;
  static constexpr int kVocab = 50257;

  // Loads a tiktoken rank file (lines "base64(bytes) rank"), or GPT-2's original data-gym
  // `vocab.bpe` (first line "#version", then one merge per line; the ranks are derived as
  // tiktoken's data_gym_to_mergeable_bpe_ranks does; encoder.json is not needed). Error naming
  // the file and line on a bad line (bad base64, a missing or repeated rank, a rank >= 50256,
  // repeated bytes, a single byte without a rank), and naming the file when the ranks are not
  // gpt2's (unless allow_other_hash). The ranks are compared by the sha256 of their canonical
  // tiktoken form ("base64 rank\n" by rank), which for tiktoken's own file is the file's sha256.
  static std::unique_ptr<Gpt2Tokenizer> load(const std::string &rank_file,
                                             bool allow_other_hash = false);
  // The rank file to use: `explicit_path` unless it is "" or "gpt2" (which mean: find it); else
  // $FINEGPT_GPT2_RANKS; else tiktoken's own cache ($TIKTOKEN_CACHE_DIR, $DATA_GYM_CACHE_DIR or
  // <tmp>/data-gym-cache, files named by the sha1 of their URL: r50k_base.tiktoken, then the
  // vocab.bpe that tiktoken's `gpt2` itself downloads); else assets/gpt2.tiktoken beside the
  // finegpt binary (CMake copies it there from .venv's openai-whisper; scripts/setup.sh too);
  // else ../share/finegpt/gpt2.tiktoken from the binary (where `cmake --install` puts it).
  // Error listing the places looked at when none exists.
  static std::string locate(const std::string &explicit_path);

  void encode(std::string_view text, std::vector<uint16_t> &out) const override;
  std::string decode(const int32_t *ids, size_t n) const override; // Error on an id >= 50257
  int document_separator() const override { return kEndOfText; }
  int vocab_size() const override { return kVocab; }
  std::string name() const override { return "gpt2"; }
  // The sha256 of the ranks' canonical tiktoken form (kGpt2RanksSha256 for gpt2's ranks).
  std::string identity() const override;
  const std::string &path() const;     // the rank file it was loaded from
  const bpe::RankTable &ranks() const; // rank r is token id r (50256 ranks; 50256 is EOT)

  // A byte offset >= `from` at which `text` may be cut and the two parts encoded separately
  // with the same ids as the whole (text.size() when there is none): lets callers encode one
  // large text on several threads.
  static size_t safe_split(std::string_view text, size_t from);

  ~Gpt2Tokenizer() override;

private:
  Gpt2Tokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace finegpt
