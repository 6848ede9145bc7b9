// UTF-8 validation and replacement for the pre-tokeniser, and safe cut points (pretokenize.h).
#include "tokenizer/pretokenize.h"

#include <cstring>

namespace finegpt::pretok {

namespace {

// The length of the well-formed sequence at p (1 to 4), or 0 with `bad` = the length of the
// maximal subpart to replace (the lead byte and the continuation bytes that were still valid).
// Ranges from the Unicode standard's table of well-formed UTF-8 byte sequences.
inline int sequence_at(const uint8_t *p, const uint8_t *end, int &bad) {
  const uint8_t b0 = p[0];
  if (b0 < 0x80) return 1;
  int need;
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 == 0xE0) {
    need = 2, lo = 0xA0;
  } else if (b0 == 0xED) {
    need = 2, hi = 0x9F; // no surrogates
  } else if (b0 >= 0xE1 && b0 <= 0xEF) {
    need = 2;
  } else if (b0 == 0xF0) {
    need = 3, lo = 0x90;
  } else if (b0 >= 0xF1 && b0 <= 0xF3) {
    need = 3;
  } else if (b0 == 0xF4) {
    need = 3, hi = 0x8F; // nothing above U+10FFFF
  } else {
    bad = 1; // a continuation byte, C0, C1 or F5..FF
    return 0;
  }
  for (int k = 1; k <= need; k++) {
    if (p + k >= end || p[k] < (k == 1 ? lo : 0x80) || p[k] > (k == 1 ? hi : 0xBF)) {
      bad = k;
      return 0;
    }
  }
  return need + 1;
}

inline bool ascii_non_space(uint8_t b) {
  return b < 0x80 && unicode::kAsciiClass[b] != unicode::kSpace;
}

} // namespace

size_t utf8_valid_prefix(const uint8_t *s, size_t n) {
  const uint8_t *p = s, *const end = s + n;
  while (p < end) {
    if (end - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        p += 8;
        continue;
      }
    }
    int bad;
    const int len = sequence_at(p, end, bad);
    if (len == 0) break;
    p += len;
  }
  return size_t(p - s);
}

std::string utf8_replace_invalid(std::string_view text) {
  const auto *s = reinterpret_cast<const uint8_t *>(text.data());
  const uint8_t *p = s, *const end = s + text.size();
  std::string out;
  out.reserve(text.size() + 16);
  while (p < end) {
    const size_t ok = utf8_valid_prefix(p, size_t(end - p));
    out.append(reinterpret_cast<const char *>(p), ok);
    p += ok;
    if (p == end) break;
    int bad = 1;
    sequence_at(p, end, bad);
    out += "\xEF\xBF\xBD";
    p += bad;
  }
  return out;
}

size_t safe_split(const uint8_t *s, size_t n, size_t from) {
  if (from < 1) from = 1;
  while (from + 1 < n) {
    const void *hit = std::memchr(s + from, ' ', n - 1 - from);
    if (!hit) break;
    const size_t q = size_t(static_cast<const uint8_t *>(hit) - s);
    if (ascii_non_space(s[q - 1]) && ascii_non_space(s[q + 1])) return q;
    from = q + 1;
  }
  return n;
}

} // namespace finegpt::pretok
