// Character-level tokenizer (see char_tokenizer.h): strict UTF-8 decoding and encoding, the
// sorted code-point vocabulary, and meta.json. Not the GPT-2 BPE tokenizer.
#include "tokenizer/char_tokenizer.h"

#include "core/digest.h"
#include "core/error.h"
#include "core/file.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace finegpt {

namespace {

bool is_surrogate(char32_t c) { return c >= 0xD800 && c <= 0xDFFF; }

std::string hex_code(char32_t c) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", unsigned(c));
  return buf;
}

// "'a' (U+0061)" for printable characters, "U+000A" for controls.
std::string describe_char(char32_t c) {
  if (c < 0x20 || c == 0x7F || (c >= 0x80 && c < 0xA0)) return hex_code(c);
  return cat("'", utf8_encode(c), "' (", hex_code(c), ")");
}

// Decodes one code point at s[i]; on success advances i. Returns an empty reason or why not.
const char *decode_one(std::string_view s, size_t &i, char32_t &out) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char b0 = byte(i);
  if (b0 < 0x80) {
    out = b0;
    i += 1;
    return nullptr;
  }
  int len;
  char32_t c, min;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, c = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, c = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, c = b0 & 0x07, min = 0x10000;
  } else {
    return (b0 & 0xC0) == 0x80 ? "unexpected continuation byte" : "byte is never valid in UTF-8";
  }
  for (int k = 1; k < len; k++) {
    if (i + k >= s.size()) return "sequence truncated by the end of the text";
    unsigned char b = byte(i + k);
    if ((b & 0xC0) != 0x80) return "missing continuation byte";
    c = (c << 6) | (b & 0x3F);
  }
  if (c < min) return "overlong encoding";
  if (is_surrogate(c)) return "encoded surrogate (not allowed in UTF-8)";
  if (c > 0x10FFFF) return "code point above U+10FFFF";
  out = c;
  i += len;
  return nullptr;
}

} // namespace

std::u32string utf8_decode(const std::string &utf8) {
  std::u32string out;
  out.reserve(utf8.size());
  size_t i = 0;
  while (i < utf8.size()) {
    char32_t c;
    if (const char *why = decode_one(utf8, i, c)) {
      char byte[8];
      std::snprintf(byte, sizeof byte, "0x%02X", unsigned(static_cast<unsigned char>(utf8[i])));
      fail("invalid UTF-8 at byte ", i, " (", byte, "): ", why);
    }
    out.push_back(c);
  }
  return out;
}

std::string utf8_encode(char32_t c) {
  std::string out;
  if (c < 0x80) {
    out += char(c);
  } else if (c < 0x800) {
    out += char(0xC0 | (c >> 6));
    out += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    FINEGPT_CHECK(!is_surrogate(c), "cannot encode surrogate ", hex_code(c), " as UTF-8");
    out += char(0xE0 | (c >> 12));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  } else {
    FINEGPT_CHECK(c <= 0x10FFFF, "cannot encode ", hex_code(c), " as UTF-8 (above U+10FFFF)");
    out += char(0xF0 | (c >> 18));
    out += char(0x80 | ((c >> 12) & 0x3F));
    out += char(0x80 | ((c >> 6) & 0x3F));
    out += char(0x80 | (c & 0x3F));
  }
  return out;
}

std::string utf8_encode(const std::u32string &text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text)
    out += utf8_encode(c);
  return out;
}

CharTokenizer CharTokenizer::from_text(const std::string &utf8) {
  std::u32string text = utf8_decode(utf8);
  std::sort(text.begin(), text.end());
  text.erase(std::unique(text.begin(), text.end()), text.end());
  if (text.size() > size_t(kMaxVocab))
    fail("the text has ", text.size(), " distinct characters; a char vocabulary holds at most ",
         kMaxVocab, " (token ids are uint16)");
  CharTokenizer t;
  t.itos_.assign(text.begin(), text.end());
  return t;
}

CharTokenizer CharTokenizer::load(const std::string &meta_json_path) {
  const std::string &p = meta_json_path;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(p));
  } catch (const nlohmann::json::exception &e) {
    fail(p, ": not valid JSON: ", e.what());
  }
  FINEGPT_CHECK(j.is_object(), p, ": expected a JSON object");
  FINEGPT_CHECK(j.contains("tokenizer") && j["tokenizer"] == "char", p,
                ": \"tokenizer\" must be \"char\" for a character vocabulary");
  FINEGPT_CHECK(j.contains("itos") && j["itos"].is_array(), p,
                ": \"itos\" must be a list of one-character strings");
  const auto &itos = j["itos"];
  std::vector<char32_t> chars;
  for (size_t i = 0; i < itos.size(); i++) {
    FINEGPT_CHECK(itos[i].is_string(), p, ": itos[", i, "] is not a string");
    std::u32string c = utf8_decode(itos[i].get<std::string>());
    FINEGPT_CHECK(c.size() == 1, p, ": itos[", i, "] must be exactly one character (has ", c.size(),
                  ")");
    chars.push_back(c[0]);
  }
  CharTokenizer t = from_itos(std::move(chars), p, "itos");
  if (j.contains("vocab_size")) {
    const auto &v = j["vocab_size"];
    FINEGPT_CHECK(v.is_number_integer() && v.get<int64_t>() == int64_t(t.itos_.size()), p,
                  ": vocab_size ", v.dump(), " disagrees with itos, which has ", t.itos_.size(),
                  " entries");
  }
  return t;
}

CharTokenizer CharTokenizer::from_itos(std::vector<char32_t> itos, const std::string &file,
                                       const std::string &name) {
  for (size_t i = 1; i < itos.size(); i++)
    FINEGPT_CHECK(itos[i - 1] < itos[i], file, ": ", name, "[", i, "] ", describe_char(itos[i]),
                  " is out of order (", name, " must be sorted by code point)");
  FINEGPT_CHECK(!itos.empty(), file, ": \"", name, "\" is empty");
  FINEGPT_CHECK(itos.size() <= size_t(kMaxVocab), file, ": ", itos.size(),
                " characters is more than a char vocabulary holds (", kMaxVocab, ")");
  CharTokenizer t;
  t.itos_ = std::move(itos);
  return t;
}

void CharTokenizer::save(const std::string &meta_json_path) const {
  // Keys in the documented order, the vocabulary on one line.
  nlohmann::json itos = nlohmann::json::array();
  for (char32_t c : itos_)
    itos.push_back(utf8_encode(c));
  std::string text = cat("{\n \"tokenizer\": \"char\",\n \"vocab_size\": ", itos_.size(),
                         ",\n \"itos\": ", itos.dump(), "\n}\n");
  write_file_atomic(meta_json_path, text);
}

std::vector<uint16_t> CharTokenizer::encode(const std::string &utf8) const {
  std::vector<uint16_t> ids;
  encode(std::string_view(utf8), ids);
  return ids;
}

void CharTokenizer::encode(std::string_view utf8, std::vector<uint16_t> &ids) const {
  ids.reserve(ids.size() + utf8.size());
  const size_t first = ids.size();
  size_t i = 0;
  while (i < utf8.size()) {
    size_t at = i;
    char32_t c;
    if (const char *why = decode_one(utf8, i, c)) fail("invalid UTF-8 at byte ", at, ": ", why);
    auto it = std::lower_bound(itos_.begin(), itos_.end(), c);
    if (it == itos_.end() || *it != c)
      fail("character ", describe_char(c), " at character ", ids.size() - first, " (byte ", at,
           ") is not in the vocabulary of ", itos_.size(), " characters");
    ids.push_back(uint16_t(it - itos_.begin()));
  }
}

std::string CharTokenizer::identity() const {
  return sha256_hex(utf8_encode(std::u32string(itos_.begin(), itos_.end())));
}

std::string CharTokenizer::decode(const int32_t *ids, size_t n) const {
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; i++) {
    if (ids[i] < 0 || size_t(ids[i]) >= itos_.size())
      fail("token id ", ids[i], " at position ", i, " is out of range for a vocabulary of ",
           itos_.size(), " characters");
    out += utf8_encode(itos_[size_t(ids[i])]);
  }
  return out;
}

} // namespace finegpt
