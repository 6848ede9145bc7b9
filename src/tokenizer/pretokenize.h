// GPT-2's pre-tokeniser as a hand-written scanner: splits valid UTF-8 into the pieces that
// tiktoken's pattern for `gpt2` finds,
//   '(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s
// (leftmost alternative first, scanning left to right; every character lands in some piece).
// Per position: an ASCII apostrophe followed by lowercase s, d, m, t, ll, ve or re is a piece;
// otherwise a run of letters, of numbers, or of "other" characters (neither space, letter nor
// number), each optionally preceded by one ASCII space; otherwise a run of White_Space: all of it
// when it reaches the end of the text, else all but its last character (which then starts the
// next piece: joined to the following run if it is an ASCII space, alone if not), or the single
// character when the run has one. Also here: UTF-8 validation and the replacement of invalid
// bytes, the policy documented in gpt2.h. Not the merges (bpe.h).
#pragma once
#include "tokenizer/unicode_tables.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace finegpt::pretok {

// The code point at p (valid UTF-8, p < end) and its length in bytes.
inline uint32_t decode(const uint8_t *p, int &len) {
  const uint32_t b = p[0];
  if (b < 0x80) return len = 1, b;
  if (b < 0xE0) return len = 2, (b & 0x1F) << 6 | (p[1] & 0x3F);
  if (b < 0xF0) return len = 3, (b & 0x0F) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3F);
  return len = 4, (b & 0x07) << 18 | (p[1] & 0x3Fu) << 12 | (p[2] & 0x3Fu) << 6 | (p[3] & 0x3F);
}

inline unicode::CharClass class_at(const uint8_t *p, int &len) {
  if (p[0] < 0x80) return len = 1, unicode::CharClass(unicode::kAsciiClass[p[0]]);
  return unicode::char_class(decode(p, len));
}

// The end of the run of characters of class `c` that starts at p.
inline const uint8_t *run_end(const uint8_t *p, const uint8_t *end, unicode::CharClass c) {
  while (p < end) {
    int len;
    if (class_at(p, len) != c) break;
    p += len;
  }
  return p;
}

// Calls piece(const uint8_t *begin, size_t bytes) for each piece of [s, s + n), in order.
// `s` must be valid UTF-8 (see utf8_valid / utf8_replace_invalid).
template <typename F> void split(const uint8_t *s, size_t n, F &&piece) {
  using unicode::kSpace;
  const uint8_t *p = s, *const end = s + n;
  while (p < end) {
    const uint8_t *const start = p;
    int len;
    const unicode::CharClass c = class_at(p, len);
    if (c == kSpace) {
      if (*p == ' ' && p + 1 < end) {
        int l1;
        const unicode::CharClass c1 = class_at(p + 1, l1);
        if (c1 != kSpace) {
          p = run_end(p + 1 + l1, end, c1);
          piece(start, size_t(p - start));
          continue;
        }
      }
      const uint8_t *last = p; // start of the run's last character
      p += len;
      while (p < end) {
        int l;
        if (class_at(p, l) != kSpace) break;
        last = p;
        p += l;
      }
      if (p < end && last > start) p = last; // leave the last one for the next piece
      piece(start, size_t(p - start));
      continue;
    }
    if (*p == '\'' && p + 1 < end) {
      const uint8_t x = p[1];
      if (x == 's' || x == 'd' || x == 'm' || x == 't') {
        piece(start, 2);
        p += 2;
        continue;
      }
      if (p + 2 < end) {
        const uint8_t y = p[2];
        if ((x == 'l' && y == 'l') || (x == 'v' && y == 'e') || (x == 'r' && y == 'e')) {
          piece(start, 3);
          p += 3;
          continue;
        }
      }
    }
    p = run_end(p + len, end, c);
    piece(start, size_t(p - start));
  }
}

// The length of the longest prefix of [s, s + n) that is valid UTF-8 (n when all of it is).
size_t utf8_valid_prefix(const uint8_t *s, size_t n);
// `text` with each maximal ill-formed subsequence replaced by U+FFFD (EF BF BD), the way
// Python's bytes.decode('utf-8', errors='replace') does it (Unicode's "substitution of maximal
// subparts").
std::string utf8_replace_invalid(std::string_view text);

// A position at or after `from` where the text may be cut in two and each part encoded alone
// with the same ids as the whole: an ASCII space with an ASCII non-space character on each side
// (the piece before ends there whatever follows; the piece after starts there whatever
// precedes). n when there is none.
size_t safe_split(const uint8_t *s, size_t n, size_t from);

} // namespace finegpt::pretok
