// The round-trip checks the GPT-2 tokenizer targets share (gpt2_tokenizer.cpp, gpt2_ranks.cpp).
#pragma once
#include "data/sources.h"
#include "fuzz.h"
#include "tokenizer/gpt2.h"

#include <string_view>

namespace finegpt::fuzz {

// encode(text): decoding gives the text back when it is valid UTF-8, else the text with invalid
// bytes replaced (valid UTF-8 that encodes to the same ids); cutting at safe_split() and encoding
// the parts gives the same ids as the whole.
inline void check_round_trip(const Gpt2Tokenizer &tok, std::string_view text) {
  std::vector<uint16_t> ids;
  tok.encode(text, ids);
  const std::vector<int32_t> wide(ids.begin(), ids.end());
  const std::string back = tok.decode(wide.data(), wide.size());
  if (utf8_valid(text)) {
    check(back == text, "decode(encode(text)) != text");
  } else {
    check(utf8_valid(back), "decode(encode(text)) of invalid UTF-8 is not valid UTF-8");
    std::vector<uint16_t> again;
    tok.encode(back, again);
    check(again == ids, "the replaced text encodes to other ids");
  }
  const size_t cut = Gpt2Tokenizer::safe_split(text, text.size() / 2);
  check(cut <= text.size(), "safe_split past the end");
  if (cut < text.size() && cut > 0) {
    std::vector<uint16_t> parts;
    tok.encode(text.substr(0, cut), parts);
    tok.encode(text.substr(cut), parts);
    check(parts == ids, cat("encoding the two sides of safe_split (", cut, ") differs"));
  }
}

} // namespace finegpt::fuzz
