// tiktoken's `gpt2` encoding (r50k_base ranks), byte for byte: the same pre-tokenisation
// pattern with Unicode letter/number/White_Space classes as tiktoken's regex engine has them,
// byte-pair merges lowest rank first (leftmost on ties), and <|endoftext|> = 50256 only as
// the document separator (the literal text in a document is ordinary text, encode_ordinary).
#pragma once
#include "tokenizer/encoder.h"

#include <memory>
#include <string>

namespace finegpt {

constexpr const char *kGpt2RanksSha256 =
    "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930";

class Gpt2Tokenizer : public TextEncoder {
public:
  static constexpr int kEndOfText = 50256;
  static constexpr int kVocab = 50257;

  // Loads a tiktoken rank file (lines "base64(bytes) rank"); Error naming the file and line on
  // a bad line, and naming the file when its sha256 is not gpt2's (unless allow_other_hash).
  static std::unique_ptr<Gpt2Tokenizer> load(const std::string &rank_file,
                                             bool allow_other_hash = false);
  // The rank file to use: `explicit_path` if given; else $FINEGPT_GPT2_RANKS; else tiktoken's
  // own cache ($TIKTOKEN_CACHE_DIR, $DATA_GYM_CACHE_DIR or <tmp>/data-gym-cache, file named by
  // the sha1 of the rank file's URL); else assets/gpt2.tiktoken beside the finegpt binary
  // (scripts/setup.sh puts it there). Error listing the places looked at when none exists.
  static std::string locate(const std::string &explicit_path);

  void encode(std::string_view text, std::vector<uint16_t> &out) const override;
  std::string decode(const int32_t *ids, size_t n) const override;
  int document_separator() const override { return kEndOfText; }
  int vocab_size() const override { return kVocab; }
  std::string name() const override { return "gpt2"; }
  std::string identity() const override;

  ~Gpt2Tokenizer() override;

private:
  Gpt2Tokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace finegpt
