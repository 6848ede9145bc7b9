// Tests for the C++ side of `prepare` (data/sources.h, data/prepare.h) that the command line
// cannot reach: UTF-8 validity at its edges, DocumentReader's batches, skip and resolve, and
// prepare_with_encoder with an encoder of the test's own (the Python tests cover the inputs
// made by real writers and the llm.c layout byte for byte).
#include "core/error.h"
#include "core/file.h"
#include "data/prepare.h"
#include "data/sources.h"
#include "data/tokens.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace finegpt;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("finegpt_prepare_api_" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string &name, const std::string &contents) const {
    std::string p = (path / name).string();
    write_file_atomic(p, contents);
    return p;
  }
};

// Token = byte + 1, separator 0: a tokenizer of this test's own.
class ShiftEncoder : public TextEncoder {
public:
  void encode(std::string_view text, std::vector<uint16_t> &out) const override {
    for (char c : text)
      out.push_back(uint16_t(static_cast<unsigned char>(c) + 1));
  }
  std::string decode(const int32_t *ids, size_t n) const override {
    std::string s;
    for (size_t i = 0; i < n; i++)
      if (ids[i] > 0) s += char(ids[i] - 1);
    return s;
  }
  int document_separator() const override { return 0; }
  int vocab_size() const override { return 257; }
  std::string name() const override { return "shift"; }
  std::string identity() const override { return "shift-by-one"; }
};

} // namespace

TEST(Utf8, Validity) {
  EXPECT_TRUE(utf8_valid(""));
  EXPECT_TRUE(utf8_valid("plain ascii text, longer than eight bytes"));
  EXPECT_TRUE(utf8_valid("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  EXPECT_TRUE(utf8_valid("\xF4\x8F\xBF\xBF")); // U+10FFFF
  size_t at = 0;
  EXPECT_FALSE(utf8_valid("abc\xE9 def", &at));
  EXPECT_EQ(at, 3u);
  EXPECT_FALSE(utf8_valid("\xC0\xAF"));              // overlong '/'
  EXPECT_FALSE(utf8_valid("\xE0\x80\xAF"));          // overlong
  EXPECT_FALSE(utf8_valid("\xED\xA0\x80"));          // surrogate U+D800
  EXPECT_FALSE(utf8_valid("\xF4\x90\x80\x80"));      // above U+10FFFF
  EXPECT_FALSE(utf8_valid("12345678\xE2\x82", &at)); // truncated at the end
  EXPECT_EQ(at, 8u);
}

TEST(DocumentReader, BatchesSkipAndResolve) {
  TempDir t;
  std::string j =
      t.file("a.jsonl", "{\"text\": \"one\"}\n\n{\"text\": null}\n{\"text\": \"three\"}\n");
  std::string x = t.file("b.txt", "x|y|z");
  SourceOptions opt;
  opt.doc_separator = "|";
  {
    DocumentReader r({j, x}, opt);
    ASSERT_EQ(r.files().size(), 2u);
    EXPECT_EQ(r.bytes_total(), file_size(j) + file_size(x));
    std::vector<Document> docs;
    EXPECT_EQ(r.next_batch(docs, 2), 2u);
    EXPECT_EQ(r.next_batch(docs, 100), 4u);
    EXPECT_EQ(r.next_batch(docs, 100), 0u);
    ASSERT_EQ(docs.size(), 6u);
    for (auto &d : docs)
      r.resolve(d);
    EXPECT_EQ(docs[0].text, "one");
    EXPECT_EQ(docs[0].record, 1u); // JSONL: line numbers (the blank line 2 is not a record)
    EXPECT_EQ(docs[1].kind, Document::Kind::NotText);
    EXPECT_EQ(docs[1].record, 3u);
    EXPECT_EQ(docs[2].text, "three");
    EXPECT_EQ(docs[3].text, "x");
    EXPECT_EQ(docs[3].input, 1u);
    EXPECT_EQ(docs[5].text, "z");
    EXPECT_EQ(docs[5].seq, 5u);
    EXPECT_EQ(r.records_read(), 6u);
    EXPECT_EQ(r.bytes_done(), r.bytes_total());
  }
  {
    DocumentReader r({j, x}, opt);
    r.skip(4);
    std::vector<Document> docs;
    r.next_batch(docs, 10);
    ASSERT_EQ(docs.size(), 2u);
    EXPECT_EQ(docs[0].text, "y");
    EXPECT_EQ(docs[0].seq, 4u);
    EXPECT_THROW(r.skip(1), Error);
  }
}

TEST(Prepare, WithAnEncoderOfOurOwn) {
  TempDir t;
  std::string a = t.file("a.txt", "hello"), b = t.file("b.txt", "world!");
  PrepareOptions o;
  o.inputs = {a, b};
  o.out = (t.path / "out").string();
  o.name = "api";
  o.shard_tokens = 4;
  o.val_tokens = 3;
  o.progress = false;
  ShiftEncoder enc;
  PrepareStats s = prepare_with_encoder(o, enc);
  EXPECT_EQ(s.documents, 2u);
  EXPECT_EQ(s.tokens, 13u); // 1 + 5 + 1 + 6
  ASSERT_EQ(s.shard_files.size(), 4u);
  EXPECT_EQ(s.shard_files[0], "api_val_000000.bin");
  EXPECT_EQ(s.shard_files[1], "api_train_000001.bin");
  EXPECT_EQ(s.shard_tokens, (std::vector<uint64_t>{3, 4, 4, 2}));
  TokenDataset val(find_split_files(o.out, "val"));
  TokenDataset train(find_split_files(o.out, "train"));
  std::vector<int32_t> v(3), tr(10);
  val.read(0, 3, v.data());
  train.read(0, 10, tr.data());
  std::string all = enc.decode(v.data(), 3) + "|" + enc.decode(tr.data(), 10);
  EXPECT_EQ(all, "he|lloworld!");
  EXPECT_EQ(v[0], 0);
  EXPECT_EQ(tr[3], 0); // the second separator: 1 + 5 tokens in, the 3rd of train
  EXPECT_EQ(dataset_vocab_size((fs::path(o.out) / "meta.json").string()), 257);
  // Run again: complete, nothing written.
  PrepareStats again = prepare_with_encoder(o, enc);
  EXPECT_TRUE(again.already_complete);
  EXPECT_EQ(again.tokens, 13u);
}
