// What `prepare` and `tokenize` need from a tokenizer: text -> token ids, ids -> text, and the
// id that separates documents. Implemented by the GPT-2 BPE (gpt2.h) and the char tokenizer.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace finegpt {

class TextEncoder {
public:
  virtual ~TextEncoder() = default;
  // Appends the ids of `text` to `out`; thread-safe (const, no shared mutable state).
  virtual void encode(std::string_view text, std::vector<uint16_t> &out) const = 0;
  virtual std::string decode(const int32_t *ids, size_t n) const = 0;
  // The id written before every document (GPT-2's <|endoftext|> = 50256); -1 when none.
  virtual int document_separator() const = 0;
  virtual int vocab_size() const = 0;
  virtual std::string name() const = 0;     // "gpt2" | "char"
  virtual std::string identity() const = 0; // e.g. the rank file's sha256; recorded in meta.json
};

// The tokenizer a `--tokenizer` flag names: "gpt2" (or "") finds GPT-2's rank file
// (Gpt2Tokenizer::locate), a path loads that rank file, "char:META.json" loads a character
// vocabulary written by prepare --tokenizer char. Error naming what is wrong.
std::unique_ptr<TextEncoder> make_encoder(const std::string &spec);

} // namespace finegpt
