// Tests for tokenizer/char_tokenizer.h: strict UTF-8, nanoGPT's sorted-character vocabulary,
// encode/decode round trips, meta.json save/load and its errors.
#include "core/error.h"
#include "core/file.h"
#include "tokenizer/char_tokenizer.h"

#include "testing.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <unistd.h>

using namespace finegpt;
using namespace finegpt::testutil;
namespace fs = std::filesystem;

namespace {

} // namespace

TEST(Utf8, RoundTripsEveryLength) {
  const std::string text = "a\n\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\x7F\xC2\x80\xEF\xBF\xBF"
                           "\xF4\x8F\xBF\xBF"; // a \n é € 😀 DEL U+0080 U+FFFF U+10FFFF
  std::u32string cps = utf8_decode(text);
  EXPECT_EQ(cps,
            (std::u32string{U'a', U'\n', 0xE9, 0x20AC, 0x1F600, 0x7F, 0x80, 0xFFFF, 0x10FFFF}));
  EXPECT_EQ(utf8_encode(cps), text);
  EXPECT_EQ(utf8_decode(""), U"");
}

TEST(Utf8, RejectsMalformedInput) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"ab\x80", "at byte 2 (0x80): unexpected continuation byte"},
      {"\xC3", "at byte 0 (0xC3): sequence truncated"},
      {"x\xE2\x82", "at byte 1 (0xE2): sequence truncated"},
      {"\xC3(", "missing continuation byte"},
      {"caf\xE9\n", "at byte 3 (0xE9): missing continuation byte"},
      {"\xC0\xAF", "overlong encoding"},
      {"\xE0\x80\xAF", "overlong encoding"},
      {"\xF0\x80\x80\xAF", "overlong encoding"},
      {"\xED\xA0\x80", "surrogate"},
      {"\xF4\x90\x80\x80", "above U+10FFFF"},
      {"\xFF", "never valid"},
  };
  for (const auto &[bytes, why] : cases) {
    std::string e = error_of([&] { utf8_decode(bytes); });
    EXPECT_EQ(e.rfind("invalid UTF-8 at byte ", 0), 0u) << e;
    EXPECT_NE(e.find(why), std::string::npos) << e;
  }
  EXPECT_NE(error_of([] { utf8_encode(char32_t(0xD800)); }).find("surrogate"), std::string::npos);
  EXPECT_NE(error_of([] { utf8_encode(char32_t(0x110000)); }).find("U+10FFFF"), std::string::npos);
}

TEST(CharTokenizer, VocabularyIsSortedCodePoints) {
  // nanoGPT: chars = sorted(list(set(data))); stoi = {ch: i}.
  const std::string text = "hello, w\xC3\xB6rld\n\xE2\x82\xAC!";
  CharTokenizer t = CharTokenizer::from_text(text);
  std::vector<char32_t> want = {U'\n', U' ', U'!', U',', U'd', U'e',  U'h',
                                U'l',  U'o', U'r', U'w', 0xF6, 0x20AC};
  EXPECT_EQ(t.itos(), want);
  EXPECT_EQ(t.vocab_size(), 13);
  std::vector<uint16_t> ids = t.encode(text);
  ASSERT_EQ(ids.size(), 15u);
  EXPECT_EQ(ids[0], 6);  // h
  EXPECT_EQ(ids[8], 11); // ö
  std::vector<int32_t> ids32(ids.begin(), ids.end());
  EXPECT_EQ(t.decode(ids32.data(), ids32.size()), text);
}

TEST(CharTokenizer, ErrorsNameTheProblem) {
  CharTokenizer t = CharTokenizer::from_text("abc");
  std::string e = error_of([&] { t.encode("abxc"); });
  EXPECT_NE(e.find("'x' (U+0078) at character 2 (byte 2) is not in the vocabulary"),
            std::string::npos)
      << e;
  e = error_of([&] { t.encode("a\n"); });
  EXPECT_NE(e.find("U+000A at character 1"), std::string::npos) << e;
  int32_t bad[] = {0, 3};
  e = error_of([&] { t.decode(bad, 2); });
  EXPECT_NE(e.find("token id 3 at position 1 is out of range"), std::string::npos) << e;
  int32_t neg[] = {-1};
  EXPECT_NE(error_of([&] { t.decode(neg, 1); }).find("token id -1"), std::string::npos);
  EXPECT_NE(error_of([] { CharTokenizer::from_text("ok\xFF"); }).find("invalid UTF-8 at byte 2"),
            std::string::npos);
}

TEST(CharTokenizer, VocabularyLimit) {
  // 65536 distinct code points: one more than ids allow.
  std::u32string cps;
  for (char32_t c = 0x20; cps.size() < 65536; c++)
    if (c < 0xD800 || c > 0xDFFF) cps.push_back(c);
  std::string text = utf8_encode(cps);
  std::string e = error_of([&] { CharTokenizer::from_text(text); });
  EXPECT_NE(e.find("65536 distinct characters"), std::string::npos) << e;
  EXPECT_NE(e.find("at most 65535"), std::string::npos) << e;
  cps.pop_back();
  EXPECT_EQ(CharTokenizer::from_text(utf8_encode(cps)).vocab_size(), 65535);
}

TEST(CharTokenizer, MetaJsonRoundTrip) {
  TempDir dir;
  CharTokenizer t = CharTokenizer::from_text("\"q\\uote\"\n\t\xE2\x82\xAC\xF0\x9F\x98\x80");
  t.save(dir.file("meta.json"));
  std::string json = read_file(dir.file("meta.json"));
  EXPECT_NE(json.find("\"tokenizer\": \"char\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"vocab_size\": 11"), std::string::npos) << json;
  CharTokenizer u = CharTokenizer::load(dir.file("meta.json"));
  EXPECT_EQ(u.itos(), t.itos());
  for (const auto &entry : fs::directory_iterator(dir.path))
    EXPECT_EQ(entry.path().filename().string(), "meta.json");
}

TEST(CharTokenizer, BadMetaJson) {
  TempDir dir;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{", "not valid JSON"},
      {"[]", "expected a JSON object"},
      {R"({"tokenizer": "gpt2", "itos": ["a"]})", "\"tokenizer\" must be \"char\""},
      {R"({"tokenizer": "char"})", "\"itos\" must be a list"},
      {R"({"tokenizer": "char", "itos": []})", "\"itos\" is empty"},
      {R"({"tokenizer": "char", "itos": ["a", 5]})", "itos[1] is not a string"},
      {R"({"tokenizer": "char", "itos": ["a", "bc"]})", "itos[1] must be exactly one character"},
      {R"({"tokenizer": "char", "itos": ["b", "a"]})", "itos[1] 'a' (U+0061) is out of order"},
      {R"({"tokenizer": "char", "vocab_size": 3, "itos": ["a", "b"]})",
       "vocab_size 3 disagrees with itos, which has 2"},
  };
  for (const auto &[text, why] : cases) {
    write_file_atomic(dir.file("meta.json"), text);
    std::string e = error_of([&] { CharTokenizer::load(dir.file("meta.json")); });
    EXPECT_EQ(e.rfind(dir.file("meta.json") + ": ", 0), 0u) << e;
    EXPECT_NE(e.find(why), std::string::npos) << text << " -> " << e;
  }
  std::string e = error_of([&] { CharTokenizer::load(dir.file("missing.json")); });
  EXPECT_NE(e.find("missing.json"), std::string::npos) << e;
}
