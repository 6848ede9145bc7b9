// Tests for the GPT-2 tokenizer's parts that need no oracle: the merge rule on tiny rank files
// written here (lowest rank first, leftmost on ties, whole-piece lookup first), the two merge
// loops against a plain reference, rank file errors, decode's range checks, invalid UTF-8
// replacement, and (with GPT-2's ranks, when present) that safe_split cuts change no id.
// Parity with tiktoken itself is tests/tokenizer/test_gpt2.py.
#include "core/error.h"
#include "core/file.h"
#include "tokenizer/bpe.h"
#include "tokenizer/char_tokenizer.h"
#include "tokenizer/gpt2.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode_tables.h"

#include "testing.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <unistd.h>

using namespace finegpt;
using namespace finegpt::testutil;
namespace fs = std::filesystem;

namespace {

std::string b64(const std::string &s) {
  static const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < s.size(); i += 3) {
    uint32_t v = uint32_t(uint8_t(s[i])) << 16;
    if (i + 1 < s.size()) v |= uint32_t(uint8_t(s[i + 1])) << 8;
    if (i + 2 < s.size()) v |= uint32_t(uint8_t(s[i + 2]));
    out += t[v >> 18];
    out += t[v >> 12 & 63];
    out += i + 1 < s.size() ? t[v >> 6 & 63] : '=';
    out += i + 2 < s.size() ? t[v & 63] : '=';
  }
  return out;
}

// A tiktoken rank file: the 256 single bytes at ranks 0..255 (rank = byte), then `merges`.
std::string rank_file(const TempDir &dir, const std::vector<std::string> &merges,
                      const std::string &name = "tiny.tiktoken") {
  std::string text;
  for (int b = 0; b < 256; b++)
    text += cat(b64(std::string(1, char(b))), " ", b, "\n");
  for (size_t i = 0; i < merges.size(); i++)
    text += cat(b64(merges[i]), " ", 256 + i, "\n");
  write_file_atomic(dir.file(name), text);
  return dir.file(name);
}

std::vector<uint16_t> encode(const Gpt2Tokenizer &t, const std::string &s) {
  std::vector<uint16_t> ids;
  t.encode(s, ids);
  return ids;
}

// The merge rule written plainly over byte strings (no pair table): the reference.
std::vector<uint16_t> reference_merge(const std::map<std::string, uint32_t> &ranks,
                                      const std::string &piece) {
  std::vector<std::string> parts;
  for (char c : piece)
    parts.push_back(std::string(1, c));
  for (;;) {
    uint32_t best = UINT32_MAX;
    size_t at = 0;
    for (size_t i = 0; i + 1 < parts.size(); i++) {
      auto it = ranks.find(parts[i] + parts[i + 1]);
      if (it != ranks.end() && it->second < best) best = it->second, at = i;
    }
    if (best == UINT32_MAX) break;
    parts[at] += parts[at + 1];
    parts.erase(parts.begin() + long(at) + 1);
  }
  std::vector<uint16_t> ids;
  for (const auto &p : parts)
    ids.push_back(uint16_t(ranks.at(p)));
  return ids;
}

std::string gpt2_ranks_path() {
  for (const char *v : {"FINEGPT_GPT2_RANKS", "FINEGPT_ASSETS"}) {
    const char *e = std::getenv(v);
    if (!e || !*e) continue;
    std::string p = std::string(v) == "FINEGPT_ASSETS" ? std::string(e) + "/gpt2.tiktoken" : e;
    if (file_exists(p)) return p;
  }
  return "";
}

} // namespace

TEST(Gpt2Merge, LowestRankFirst) {
  TempDir dir;
  // "bc" outranks "ab": "abc" -> a + bc, although "ab" + "c" would also be a split.
  auto t = Gpt2Tokenizer::load(rank_file(dir, {"bc", "ab"}), true);
  EXPECT_EQ(encode(*t, "abc"), (std::vector<uint16_t>{'a', 256}));
  EXPECT_EQ(encode(*t, "ab"), (std::vector<uint16_t>{257}));
  // Ranks decide, not file position: the same merges listed in the other order.
  auto u = Gpt2Tokenizer::load(rank_file(dir, {"ab", "bc"}, "other.tiktoken"), true);
  EXPECT_EQ(encode(*u, "abc"), (std::vector<uint16_t>{256, 'c'}));
}

TEST(Gpt2Merge, LeftmostOnTies) {
  TempDir dir;
  auto t = Gpt2Tokenizer::load(rank_file(dir, {"aa"}), true);
  EXPECT_EQ(encode(*t, "aaa"), (std::vector<uint16_t>{256, 'a'}));
  EXPECT_EQ(encode(*t, "aaaaa"), (std::vector<uint16_t>{256, 256, 'a'}));
  // After the first merge (a, a) = 256 still ranks before (aa, a) = 257: "aaaa" -> aa + aa.
  auto u = Gpt2Tokenizer::load(rank_file(dir, {"aa", "aaa"}, "aaa.tiktoken"), true);
  EXPECT_EQ(encode(*u, "aaaa"), (std::vector<uint16_t>{256, 256}));
  EXPECT_EQ(encode(*u, "aaa"), (std::vector<uint16_t>{257}));
}

TEST(Gpt2Merge, WholePieceThatIsATokenWins) {
  TempDir dir;
  // Merging "abcd" stops at a + bc + d ("abc" and "bcd" are no tokens), but "abcd" is a token
  // and tiktoken maps a piece that is a token directly.
  auto path = rank_file(dir, {"bc", "ab", "cd", "abcd"});
  auto t = Gpt2Tokenizer::load(path, true);
  EXPECT_EQ(encode(*t, "abcd"), (std::vector<uint16_t>{259}));
  EXPECT_EQ(encode(*t, "abcde"), (std::vector<uint16_t>{'a', 256, 'd', 'e'}));
  std::vector<uint16_t> merged;
  bpe::RankTable table;
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; b++)
    tokens.push_back(std::string(1, char(b)));
  for (auto m : {"bc", "ab", "cd", "abcd"})
    tokens.push_back(m);
  table.build(tokens);
  table.merge_scan(reinterpret_cast<const uint8_t *>("abcd"), 4, merged);
  EXPECT_EQ(merged, (std::vector<uint16_t>{'a', 256, 'd'}));
}

TEST(Gpt2Merge, PiecesAreMergedSeparately) {
  TempDir dir;
  auto t = Gpt2Tokenizer::load(rank_file(dir, {"a ", " b", "ab"}), true);
  // Pieces "a" and " b": "a " never forms although it is a token.
  EXPECT_EQ(encode(*t, "a b"), (std::vector<uint16_t>{'a', 257}));
  EXPECT_EQ(encode(*t, "ab"), (std::vector<uint16_t>{258}));
}

TEST(Gpt2Merge, ScanAndHeapAgreeWithTheReference) {
  // A vocabulary over a small alphabet so that long pieces merge a lot.
  std::mt19937 rng(1234);
  std::vector<std::string> tokens;
  std::map<std::string, uint32_t> ranks;
  for (int b = 0; b < 256; b++)
    tokens.push_back(std::string(1, char(b)));
  const std::string alphabet = "abcd";
  while (tokens.size() < 1500) {
    std::string s;
    const size_t len = 2 + rng() % 6;
    for (size_t i = 0; i < len; i++)
      s += alphabet[rng() % alphabet.size()];
    if (std::find(tokens.begin(), tokens.end(), s) == tokens.end()) tokens.push_back(s);
  }
  for (size_t r = 0; r < tokens.size(); r++)
    ranks[tokens[r]] = uint32_t(r);
  bpe::RankTable table;
  table.build(tokens);
  for (int trial = 0; trial < 400; trial++) {
    std::string s;
    const size_t len = 2 + rng() % (trial < 300 ? 90 : 600);
    for (size_t i = 0; i < len; i++)
      s += alphabet[rng() % alphabet.size()];
    const auto *p = reinterpret_cast<const uint8_t *>(s.data());
    const auto want = reference_merge(ranks, s);
    std::vector<uint16_t> heap;
    table.merge_heap(p, s.size(), heap);
    EXPECT_EQ(heap, want) << s;
    if (s.size() <= bpe::RankTable::kScanMaxBytes) {
      std::vector<uint16_t> scan;
      table.merge_scan(p, s.size(), scan);
      EXPECT_EQ(scan, want) << s;
    }
  }
}

TEST(Gpt2RankFile, Errors) {
  TempDir dir;
  const std::string good = read_file(rank_file(dir, {"ab"}));
  auto bad = [&](const std::string &name, const std::string &text) {
    write_file_atomic(dir.file(name), text);
    return error_of([&] { Gpt2Tokenizer::load(dir.file(name), true); });
  };
  std::string e = bad("b64.tiktoken", good + "YW*= 300\n");
  EXPECT_NE(e.find("b64.tiktoken:258"), std::string::npos) << e;
  EXPECT_NE(e.find("not valid base64"), std::string::npos) << e;
  e = bad("pad.tiktoken", good + "Y=Jj 300\n");
  EXPECT_NE(e.find("not valid base64"), std::string::npos) << e;
  e = bad("norank.tiktoken", good + "YWJj\n");
  EXPECT_NE(e.find("norank.tiktoken:258"), std::string::npos) << e;
  EXPECT_NE(e.find("got 1 field"), std::string::npos) << e;
  e = bad("word.tiktoken", good + "YWJj x1\n");
  EXPECT_NE(e.find("not a whole number"), std::string::npos) << e;
  e = bad("twice.tiktoken", good + "YWJj 256\n");
  EXPECT_NE(e.find("rank 256 is given twice"), std::string::npos) << e;
  e = bad("range.tiktoken", good + "YWJj 50256\n");
  EXPECT_NE(e.find("out of range"), std::string::npos) << e;
  e = bad("same.tiktoken", good + "YWI= 300\n");
  EXPECT_NE(e.find("same bytes"), std::string::npos) << e;
  e = bad("nobyte.tiktoken", "YQ== 0\n");
  EXPECT_NE(e.find("0x00 has no rank"), std::string::npos) << e;
  e = bad("empty.tiktoken", "\n\n");
  EXPECT_NE(e.find("no ranks"), std::string::npos) << e;
  // A well-formed file that is not gpt2's: refused unless asked for.
  e = error_of([&] { Gpt2Tokenizer::load(dir.file("tiny.tiktoken")); });
  EXPECT_NE(e.find("tiny.tiktoken"), std::string::npos) << e;
  EXPECT_NE(e.find("not GPT-2's ranks"), std::string::npos) << e;
  e = error_of([&] { Gpt2Tokenizer::load(dir.file("missing.tiktoken")); });
  EXPECT_NE(e.find("missing.tiktoken"), std::string::npos) << e;
}

TEST(Gpt2Decode, RangeAndEndOfText) {
  TempDir dir;
  auto t = Gpt2Tokenizer::load(rank_file(dir, {"ab"}), true);
  const int32_t ok[] = {'h', 'i', 256, 50256};
  EXPECT_EQ(t->decode(ok, 4), "hiab<|endoftext|>");
  const int32_t big[] = {'a', 50257};
  std::string e = error_of([&] { t->decode(big, 2); });
  EXPECT_NE(e.find("token id 50257 at position 1 is out of range"), std::string::npos) << e;
  const int32_t neg[] = {-1};
  EXPECT_NE(error_of([&] { t->decode(neg, 1); }).find("out of range"), std::string::npos);
  const int32_t absent[] = {300}; // below 50257 but not in this small file
  EXPECT_NE(error_of([&] { t->decode(absent, 1); }).find("not a token"), std::string::npos);
}

TEST(Gpt2Utf8, ReplacesMaximalSubparts) {
  const std::string fffd = "\xEF\xBF\xBD";
  // Python: b'...'.decode('utf-8', errors='replace')
  EXPECT_EQ(pretok::utf8_replace_invalid("a\x80z"), "a" + fffd + "z");
  EXPECT_EQ(pretok::utf8_replace_invalid("\xE2\x82"), fffd);        // truncated at the end
  EXPECT_EQ(pretok::utf8_replace_invalid("\xE2\x82z"), fffd + "z"); // truncated
  EXPECT_EQ(pretok::utf8_replace_invalid("\xED\xA0\x80"), fffd + fffd + fffd); // surrogate
  EXPECT_EQ(pretok::utf8_replace_invalid("\xF0\x80\x80"), fffd + fffd + fffd); // overlong
  EXPECT_EQ(pretok::utf8_replace_invalid("\xC0\xAF"), fffd + fffd);
  EXPECT_EQ(pretok::utf8_replace_invalid("\xF4\x90\x80\x80"), fffd + fffd + fffd + fffd);
  EXPECT_EQ(pretok::utf8_replace_invalid("\xF0\x9F\x98"), fffd); // truncated emoji
  EXPECT_EQ(pretok::utf8_replace_invalid("\xFF\xFE"), fffd + fffd);
  const std::string ok = "h\xC3\xA9llo \xF0\x9F\x98\x80";
  EXPECT_EQ(pretok::utf8_replace_invalid(ok), ok);
  EXPECT_EQ(pretok::utf8_valid_prefix(reinterpret_cast<const uint8_t *>(ok.data()), ok.size()),
            ok.size());
}

TEST(Gpt2Real, SafeSplitChangesNoId) {
  const std::string path = gpt2_ranks_path();
  if (path.empty()) GTEST_SKIP() << "no gpt2.tiktoken (set FINEGPT_GPT2_RANKS)";
  auto t = Gpt2Tokenizer::load(path);
  EXPECT_EQ(t->identity(), kGpt2RanksSha256);
  std::mt19937 rng(7);
  const std::vector<std::string> atoms = {
      "a",        "Z",    "x",  "7", " ",  " ",        "  ",           "\n",
      "\t",       "'s",   "'S", ".", "!?", "\xC3\xA9", "\xE3\x80\x80", "\xE4\xB8\xAD",
      "\xC2\xA0", "\r\n", "'",  "ll"};
  for (int trial = 0; trial < 300; trial++) {
    std::string s;
    const size_t n = 5 + rng() % 60;
    for (size_t i = 0; i < n; i++)
      s += atoms[rng() % atoms.size()];
    const auto whole = encode(*t, s);
    for (size_t q = Gpt2Tokenizer::safe_split(s, 0); q < s.size();
         q = Gpt2Tokenizer::safe_split(s, q + 1)) {
      auto parts = encode(*t, s.substr(0, q));
      const auto rest = encode(*t, s.substr(q));
      parts.insert(parts.end(), rest.begin(), rest.end());
      ASSERT_EQ(parts, whole) << "cut at " << q << " of '" << s << "'";
    }
  }
}

TEST(UnicodeTables, TwoLevelLookupMatchesTheRanges) {
  // The ranges are checked against tiktoken's engine by gen_unicode_tables.py --check
  // (test_gpt2.py); here every code point's char_class is checked against the ranges.
  std::vector<uint8_t> want(0x110000, unicode::kOther);
  auto mark = [&](const uint32_t(*r)[2], size_t n, unicode::CharClass c) {
    for (size_t i = 0; i < n; i++) {
      if (i) {
        ASSERT_GT(r[i][0], r[i - 1][1] + 1); // sorted, disjoint, maximal
      }
      for (uint32_t cp = r[i][0]; cp <= r[i][1]; cp++) {
        ASSERT_EQ(want[cp], unicode::kOther) << std::hex << cp;
        want[cp] = c;
      }
    }
  };
  mark(unicode::kLetterRanges, unicode::kLetterRangeCount, unicode::kLetter);
  mark(unicode::kNumberRanges, unicode::kNumberRangeCount, unicode::kNumber);
  mark(unicode::kSpaceRanges, unicode::kSpaceRangeCount, unicode::kSpace);
  for (uint32_t cp = 0; cp < 0x110000; cp++)
    ASSERT_EQ(unicode::char_class(cp), want[cp]) << "U+" << std::hex << cp;
  EXPECT_EQ(unicode::char_class(0x3000), unicode::kSpace);
  EXPECT_EQ(unicode::char_class(0x1C), unicode::kOther);     // not White_Space
  EXPECT_EQ(unicode::char_class(0x200B), unicode::kOther);   // not White_Space
  EXPECT_EQ(unicode::char_class(0x10D50), unicode::kLetter); // Garay, Unicode 16.0
  EXPECT_EQ(unicode::char_class(0x11DB0), unicode::kOther);  // Tolong Siki, Unicode 17.0
}

TEST(CharTokenizer, IsATextEncoder) {
  const CharTokenizer c = CharTokenizer::from_text("hello");
  const TextEncoder &e = c;
  std::vector<uint16_t> ids = {9};
  e.encode("hel", ids);
  EXPECT_EQ(ids, (std::vector<uint16_t>{9, 1, 0, 2}));
  EXPECT_EQ(e.document_separator(), -1);
  EXPECT_EQ(e.name(), "char");
  // sha256("ehlo")
  EXPECT_EQ(e.identity(), "baa179d875e6a482fedb9e30db1c4d7b98bde54bbacac0a22492295260f79b81");
}
