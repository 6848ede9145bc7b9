// Tests for data/tokens.h. Fixtures are written by real writers: llm.c shards by numpy exactly
// as llm.c's dev/data/data_common.py write_datafile does, nanoGPT raw files by numpy's tofile,
// and our own write_shard is read back by numpy. Expected batches are computed here
// independently (nanoGPT's get_batch and llm.c's sample-index dataloader).
#include "core/error.h"
#include "core/file.h"
#include "core/rng.h"
#include "data/tokens.h"

#include "testing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace finegpt;
using namespace finegpt::testutil;

namespace {

// Token at global stream position i: a bijection on [0, 50257) (7919 is coprime to 50257), so
// in splits shorter than 50257 a token names its position.
constexpr int64_t kMod = 50257;
int32_t tok_at(int64_t i) { return int32_t((i * 7919 + 13) % kMod); }

const char *kWriter = R"PY(
import sys
import numpy as np

def write_datafile(filename, toks):
    # as llm.c dev/data/data_common.py
    assert len(toks) < 2**31, "token count too large"
    header = np.zeros(256, dtype=np.int32)
    header[0] = 20240520
    header[1] = 1
    header[2] = len(toks)
    toks_np = np.array(toks, dtype=np.uint16)
    with open(filename, "wb") as f:
        f.write(header.tobytes())
        f.write(toks_np.tobytes())

def toks(start, n):
    return (np.arange(start, start + n, dtype=np.int64) * 7919 + 13) % 50257

cmd = sys.argv[1]
if cmd == "shard":    # shard PATH START N
    write_datafile(sys.argv[2], toks(int(sys.argv[3]), int(sys.argv[4])))
elif cmd == "raw":    # raw PATH START N (nanoGPT: np.array(ids, dtype=np.uint16).tofile)
    toks(int(sys.argv[3]), int(sys.argv[4])).astype(np.uint16).tofile(sys.argv[2])
elif cmd == "values": # values PATH V1 V2 ... (a shard with exactly these tokens)
    write_datafile(sys.argv[2], [int(v) for v in sys.argv[3:]])
elif cmd == "check":  # check PATH START N: a shard written by finegpt, read by numpy
    data = np.fromfile(sys.argv[2], dtype=np.uint8)
    header = data[:1024].view(np.int32)
    n = int(sys.argv[4])
    assert header[0] == 20240520 and header[1] == 1 and header[2] == n, header[:3]
    assert not header[3:].any()
    assert data.size == 1024 + 2 * n, data.size
    assert (data[1024:].view(np.uint16) == toks(int(sys.argv[3]), n)).all()
elif cmd == "bad":    # bad DIR: one file per validation error
    d = sys.argv[2]
    open(d + "/empty_train_000001.bin", "wb").close()
    open(d + "/val.bin", "wb").close()
    np.zeros(50, dtype=np.int32).tofile(d + "/short_train_000001.bin")
    def with_header(name, h0, h1, h2, ntok):
        header = np.zeros(256, dtype=np.int32)
        header[:3] = (h0, h1, h2)
        with open(d + "/" + name, "wb") as f:
            f.write(header.tobytes())
            f.write(toks(0, ntok).astype(np.uint16).tobytes())
    with_header("magic_train_000001.bin", 12345, 1, 10, 10)
    with_header("version_train_000001.bin", 20240520, 2, 10, 10)
    with_header("count_train_000001.bin", 20240520, 1, 10, 5)
    with_header("negative_train_000001.bin", 20240520, 1, -3, 5)
    with open(d + "/half_train_000001.bin", "wb") as f:
        header = np.zeros(256, dtype=np.int32)
        header[:3] = (20240520, 1, 4)
        f.write(header.tobytes())
        f.write(b"\x01\x02\x03")
    np.arange(7, dtype=np.uint8).tofile(d + "/train.bin")
else:
    sys.exit("unknown command " + cmd)
)PY";

class TokensTest : public ::testing::Test {
protected:
  fs::path dir;

  void SetUp() override {
    static std::atomic<int> counter{0};
    dir = fs::temp_directory_path() / cat("finegpt_test_tokens_", getpid(), "_", counter++);
    fs::remove_all(dir);
    fs::create_directories(dir);
    write_file_atomic((dir / "writer.py").string(), std::string(kWriter));
  }
  void TearDown() override { fs::remove_all(dir); }

  static std::string python() {
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
  }
  void py(const std::string &args) {
    std::string cmd = cat(python(), " ", (dir / "writer.py").string(), " ", args);
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "failed: " << cmd << " (needs python3 with numpy)";
  }
  std::string path(const std::string &name) const { return (dir / name).string(); }

  // llm.c shards of the given sizes named <name>_<split>_%06d.bin; tokens follow tok_at over
  // the concatenation. Returns the paths in order.
  std::vector<std::string> shards(const std::vector<int64_t> &sizes,
                                  const std::string &split = "train") {
    std::vector<std::string> paths;
    int64_t start = 0;
    for (size_t i = 0; i < sizes.size(); i++) {
      char name[64];
      std::snprintf(name, sizeof name, "ds_%s_%06zu.bin", split.c_str(), i + 1);
      paths.push_back(path(name));
      py(cat("shard ", paths.back(), " ", start, " ", sizes[i]));
      start += sizes[i];
    }
    return paths;
  }
};

std::vector<int32_t> expect_range(int64_t start, int64_t n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++)
    v[size_t(i)] = tok_at(start + i);
  return v;
}

} // namespace

TEST_F(TokensTest, ReadsAcrossShardBoundaries) {
  std::vector<int64_t> sizes = {1000, 1, 0, 2500, 37};
  auto files = shards(sizes);
  TokenDataset d(files);
  ASSERT_EQ(d.num_files(), sizes.size());
  int64_t total = 0;
  for (size_t i = 0; i < sizes.size(); i++) {
    EXPECT_EQ(d.file_tokens(i), uint64_t(sizes[i]));
    EXPECT_EQ(d.file_offset(i), uint64_t(total));
    EXPECT_EQ(d.file_path(i), files[i]);
    total += sizes[i];
  }
  ASSERT_EQ(d.size(), uint64_t(total));
  std::vector<int32_t> all(static_cast<size_t>(total));
  d.read(0, size_t(total), all.data());
  EXPECT_EQ(all, expect_range(0, total));
  // Windows that start in, end in and straddle every boundary (including the empty file).
  for (int64_t pos : {int64_t(0), int64_t(995), int64_t(999), int64_t(1000), int64_t(1001),
                      int64_t(3400), total - 40, total - 1}) {
    for (int64_t n : {int64_t(1), int64_t(2), int64_t(6), int64_t(40)}) {
      if (pos + n > total) continue;
      std::vector<int32_t> got(static_cast<size_t>(n));
      d.read(uint64_t(pos), size_t(n), got.data());
      EXPECT_EQ(got, expect_range(pos, n)) << "pos " << pos << " n " << n;
    }
  }
  int32_t one;
  d.read(uint64_t(total), 0, &one);
  std::string e = error_of([&] { d.read(uint64_t(total) - 2, 3, &all[0]); });
  EXPECT_NE(e.find(files[0]), std::string::npos) << e;
  EXPECT_NE(e.find("cannot read tokens"), std::string::npos) << e;
}

TEST_F(TokensTest, ReadsNanoGptRawFiles) {
  py(cat("raw ", path("train.bin"), " 0 4321"));
  py(cat("raw ", path("val.bin"), " 4321 99"));
  TokenDataset train(find_split_files(dir.string(), "train"));
  TokenDataset val(find_split_files(dir.string(), "val"));
  ASSERT_EQ(train.size(), 4321u);
  ASSERT_EQ(val.size(), 99u);
  std::vector<int32_t> got(4321);
  train.read(0, 4321, got.data());
  EXPECT_EQ(got, expect_range(0, 4321));
  got.resize(99);
  val.read(0, 99, got.data());
  EXPECT_EQ(got, expect_range(4321, 99));
  // An llm.c shard renamed to a raw name is still read as a shard (its header is not data).
  py(cat("shard ", path("renamed.bin"), " 5 300"));
  TokenDataset renamed({path("renamed.bin")});
  ASSERT_EQ(renamed.size(), 300u);
  got.resize(300);
  renamed.read(0, 300, got.data());
  EXPECT_EQ(got, expect_range(5, 300));
}

TEST_F(TokensTest, FindSplitFilesSortsShardsAndNeverMixes) {
  py(cat("shard ", path("ds_train_000002.bin"), " 0 10"));
  py(cat("shard ", path("ds_train_000010.bin"), " 0 10"));
  py(cat("shard ", path("ds_train_000001.bin"), " 0 10"));
  py(cat("shard ", path("ds_val_000000.bin"), " 0 10"));
  py(cat("raw ", path("train.bin"), " 0 10"));
  fs::create_directories(dir / "sub_train_000003.bin"); // a folder, not a shard
  write_file_atomic(path("ds_train_000004.txt"), "not a .bin");
  auto train = find_split_files(dir.string(), "train");
  EXPECT_EQ(train,
            (std::vector<std::string>{path("ds_train_000001.bin"), path("ds_train_000002.bin"),
                                      path("ds_train_000010.bin")}));
  EXPECT_EQ(find_split_files(dir.string(), "val"),
            std::vector<std::string>{path("ds_val_000000.bin")});

  fs::path raw = dir / "raw";
  fs::create_directories(raw);
  py(cat("raw ", (raw / "train.bin").string(), " 0 10"));
  EXPECT_EQ(find_split_files(raw.string(), "train"),
            std::vector<std::string>{(raw / "train.bin").string()});
  std::string e = error_of([&] { find_split_files(raw.string(), "val"); });
  EXPECT_NE(e.find(raw.string()), std::string::npos) << e;
  EXPECT_NE(e.find("*_val_*.bin"), std::string::npos) << e;
  EXPECT_NE(e.find("val.bin"), std::string::npos) << e;

  e = error_of([&] { find_split_files(path("missing"), "train"); });
  EXPECT_NE(e.find(path("missing")), std::string::npos) << e;
  EXPECT_NE(e.find("no such folder"), std::string::npos) << e;
}

TEST_F(TokensTest, WriteShardIsReadByNumpyAndBack) {
  std::vector<int32_t> want = expect_range(77, 3000);
  std::vector<uint16_t> toks(want.begin(), want.end());
  write_shard(path("mine_train_000001.bin"), toks.data(), toks.size());
  py(cat("check ", path("mine_train_000001.bin"), " 77 3000"));
  EXPECT_EQ(file_size(path("mine_train_000001.bin")), 1024u + 2 * 3000);
  TokenDataset d({path("mine_train_000001.bin")});
  std::vector<int32_t> got(3000);
  d.read(0, 3000, got.data());
  EXPECT_EQ(got, want);
  for (const auto &entry : fs::directory_iterator(dir))
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos);
}

TEST_F(TokensTest, BadFilesNameTheFileAndTheProblem) {
  py(cat("bad ", dir.string()));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"empty_train_000001.bin", "file is empty"},
      {"val.bin", "file is empty"},
      {"short_train_000001.bin", "200 bytes, shorter than the 1024-byte"},
      {"magic_train_000001.bin", "not an llm.c token shard (magic 12345, expected 20240520)"},
      {"version_train_000001.bin", "unsupported llm.c token shard version 2 (expected 1)"},
      {"count_train_000001.bin", "header says 10 tokens but the file holds 5"},
      {"negative_train_000001.bin", "header says -3 tokens but the file holds 5"},
      {"half_train_000001.bin", "header says 4 tokens but the file holds 1 and a half"},
      {"train.bin", "raw uint16 token file has an odd size (7 bytes)"},
      {"nothere_train_000001.bin", "cannot open"},
  };
  for (const auto &[name, problem] : cases) {
    std::string e = error_of([&] { TokenDataset d({path(name)}); });
    EXPECT_EQ(e.rfind(path(name) + ": ", 0), 0u) << name << ": " << e;
    EXPECT_NE(e.find(problem), std::string::npos) << name << ": " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
  // A bad file among good ones is still named.
  py(cat("shard ", path("ok_train_000001.bin"), " 0 100"));
  std::string e = error_of([&] {
    TokenDataset d({path("ok_train_000001.bin"), path("version_train_000001.bin")});
  });
  EXPECT_NE(e.find(path("version_train_000001.bin")), std::string::npos) << e;
  EXPECT_NE(error_of([&] { TokenDataset d({}); }).find("no token files"), std::string::npos);
}

TEST_F(TokensTest, MaxTokenScansEveryFile) {
  py(cat("values ", path("a_train_000001.bin"), " 5 17 3"));
  py(cat("values ", path("a_train_000002.bin"), " 1 65535 0"));
  py(cat("shard ", path("a_train_000003.bin"), " 0 20000"));
  TokenDataset d(find_split_files(dir.string(), "train"));
  EXPECT_EQ(d.max_token(), 65535);
  EXPECT_EQ(d.max_token(), 65535); // cached
  TokenDataset e({path("a_train_000003.bin")});
  int64_t want = 0;
  for (int64_t i = 0; i < 20000; i++)
    want = std::max<int64_t>(want, tok_at(i));
  EXPECT_EQ(e.max_token(), want);
  TokenDataset f({path("a_train_000001.bin")});
  EXPECT_EQ(f.max_token(), 17);
}

TEST_F(TokensTest, RandomBatchesFollowNanoGptGetBatch) {
  auto files = shards({300, 5, 450}); // rows cross both boundaries
  TokenDataset d(files);
  const int B = 7, T = 33;
  const uint64_t seed = 1337;
  BatchLoader loader(d, B, T, DataOrder::Random, seed);
  Rng rng(seed); // rank 0 draws from Rng(seed) itself
  std::vector<int32_t> x(B * T), y(B * T);
  std::set<int64_t> starts;
  for (int step = 0; step < 200; step++) {
    loader.next(x.data(), y.data());
    for (int b = 0; b < B; b++) {
      int64_t p = int64_t(rng.below(d.size() - T));
      ASSERT_LE(p, int64_t(d.size()) - T - 1);
      std::vector<int32_t> row(x.begin() + b * T, x.begin() + (b + 1) * T);
      std::vector<int32_t> trow(y.begin() + b * T, y.begin() + (b + 1) * T);
      ASSERT_EQ(row, expect_range(p, T)) << "step " << step << " row " << b;
      ASSERT_EQ(trow, expect_range(p + 1, T)) << "step " << step << " row " << b;
      starts.insert(p);
    }
  }
  EXPECT_GT(starts.size(), 500u);

  // Another rank draws other rows; the same rank and seed the same ones.
  BatchLoader r1(d, B, T, DataOrder::Random, seed, 1, 2),
      r1b(d, B, T, DataOrder::Random, seed, 1, 2);
  std::vector<int32_t> x1(B * T), y1(B * T), x2(B * T), y2(B * T);
  BatchLoader r0(d, B, T, DataOrder::Random, seed, 0, 2);
  r0.next(x.data(), y.data());
  r1.next(x1.data(), y1.data());
  r1b.next(x2.data(), y2.data());
  EXPECT_NE(x, x1);
  EXPECT_EQ(x1, x2);
}

TEST_F(TokensTest, RandomPositionsCoverTheWholeRange) {
  // size = T + 3: the only starts are 0..2, and a target at the very last token is reachable.
  auto files = shards({19});
  TokenDataset d(files);
  const int T = 16;
  BatchLoader loader(d, 1, T, DataOrder::Random, 7);
  std::vector<int32_t> x(T), y(T);
  std::set<int64_t> starts;
  for (int i = 0; i < 200; i++) {
    loader.next(x.data(), y.data());
    int64_t p = 0;
    while (tok_at(p) != x[0])
      p++;
    ASSERT_LE(p, 2);
    EXPECT_EQ(y, expect_range(p + 1, T));
    starts.insert(p);
  }
  EXPECT_EQ(starts, (std::set<int64_t>{0, 1, 2}));
}

namespace {

// llm.c's dataloader (no shuffle), written from its description: per shard
// num_samples = (ntok - 1) / (world*B*T); a batch reads B*T+1 tokens at
// sample*world*B*T + rank*B*T; when sample reaches num_samples, go to the next shard (after the
// last, back to the first).
struct LlmcModel {
  std::vector<int64_t> sizes, offsets;
  int64_t B, T, rank, world;
  size_t shard = 0;
  int64_t sample = 0;
  LlmcModel(std::vector<int64_t> s, int64_t b, int64_t t, int64_t r, int64_t w)
      : sizes(std::move(s)), B(b), T(t), rank(r), world(w) {
    int64_t o = 0;
    for (int64_t n : sizes)
      offsets.push_back(o), o += n;
  }
  std::vector<int32_t> next() {
    if (sample >= (sizes[shard] - 1) / (world * B * T)) {
      shard = (shard + 1) % sizes.size();
      sample = 0;
    }
    int64_t at = offsets[shard] + sample * world * B * T + rank * B * T;
    sample++;
    return expect_range(at, B * T + 1);
  }
};

} // namespace

TEST_F(TokensTest, SequentialBatchesMatchLlmcDataloader) {
  // Global batch world*B*T = 64. 129 = 2*64 + 1 fits two batches exactly; 640 = 10*64 fits
  // only nine (the tenth would need one more target token).
  const std::vector<int64_t> sizes = {1000, 129, 640, 700};
  auto files = shards(sizes);
  TokenDataset d(files);
  const int B = 2, T = 16, world = 2;
  for (int rank = 0; rank < world; rank++) {
    BatchLoader loader(d, B, T, DataOrder::Sequential, 1337, rank, world);
    LlmcModel model(sizes, B, T, rank, world);
    std::vector<int32_t> x(B * T), y(B * T);
    // Per pass: 15 + 2 + 9 + 10 batches; run three passes to see the wrap twice.
    std::set<uint64_t> shards_seen;
    for (int step = 0; step < 3 * 36; step++) {
      loader.next(x.data(), y.data());
      std::vector<int32_t> want = model.next();
      ASSERT_EQ(x, std::vector<int32_t>(want.begin(), want.end() - 1))
          << "rank " << rank << " step " << step;
      ASSERT_EQ(y, std::vector<int32_t>(want.begin() + 1, want.end()))
          << "rank " << rank << " step " << step;
      ASSERT_EQ(loader.state().shard, model.shard) << "step " << step;
      shards_seen.insert(loader.state().shard);
    }
    EXPECT_EQ(shards_seen.size(), 4u);
  }
  // One process, one file: plain consecutive windows of B*T, then back to the start.
  TokenDataset one({files[0]});
  BatchLoader single(one, 4, 8, DataOrder::Sequential, 0);
  std::vector<int32_t> x(32), y(32);
  for (int step = 0; step < 33; step++) { // (1000 - 1) / 32 = 31 batches per pass
    single.next(x.data(), y.data());
    int64_t at = (step % 31) * 32;
    ASSERT_EQ(x, expect_range(at, 32)) << step;
    ASSERT_EQ(y, expect_range(at + 1, 32)) << step;
  }
}

TEST_F(TokensTest, SequentialPassesOverFilesTooSmallForABatch) {
  auto files = shards({40, 10, 40}); // B*T = 32: the middle file cannot hold a batch
  TokenDataset d(files);
  BatchLoader loader(d, 2, 16, DataOrder::Sequential, 0);
  std::vector<int32_t> x(32), y(32);
  const int64_t want_at[] = {0, 50, 0, 50};
  for (int64_t at : want_at) {
    loader.next(x.data(), y.data());
    ASSERT_EQ(x, expect_range(at, 32)) << at;
    ASSERT_EQ(y, expect_range(at + 1, 32)) << at;
  }
}

TEST_F(TokensTest, SavedStateContinuesWithTheSameBatches) {
  auto files = shards({500, 200, 333});
  TokenDataset d(files);
  for (DataOrder order : {DataOrder::Random, DataOrder::Sequential}) {
    for (int k : {0, 1, 9, 14, 23}) { // sequential: 23 crosses into the third file
      const int B = 3, T = 10;
      BatchLoader a(d, B, T, order, 42, 1, 2);
      std::vector<int32_t> x(B * T), y(B * T);
      for (int i = 0; i < k; i++)
        a.next(x.data(), y.data());
      LoaderState saved = a.state();
      std::vector<std::vector<int32_t>> seen;
      for (int i = 0; i < 30; i++) {
        a.next(x.data(), y.data());
        seen.push_back(x);
        seen.push_back(y);
      }
      BatchLoader b(d, B, T, order, 42, 1, 2);
      b.next(x.data(), y.data()); // moved on, then restored
      b.restore(saved);
      for (int i = 0; i < 30; i++) {
        b.next(x.data(), y.data());
        ASSERT_EQ(x, seen[2 * i]) << "order " << int(order) << " k " << k << " i " << i;
        ASSERT_EQ(y, seen[2 * i + 1]) << "order " << int(order) << " k " << k << " i " << i;
      }
      // reset() starts over exactly like a fresh loader.
      BatchLoader fresh(d, B, T, order, 42, 1, 2);
      b.reset();
      std::vector<int32_t> fx(B * T), fy(B * T);
      for (int i = 0; i < 5; i++) {
        b.next(x.data(), y.data());
        fresh.next(fx.data(), fy.data());
        ASSERT_EQ(x, fx);
      }
    }
  }
  BatchLoader l(d, 1, 4, DataOrder::Sequential, 0);
  std::string e = error_of([&] { l.restore(LoaderState{0, 3, 0}); });
  EXPECT_NE(e.find("loader state"), std::string::npos) << e;
}

TEST_F(TokensTest, TooSmallSplitsNameTheFileAndBlockSize) {
  auto files = shards({64});
  TokenDataset d(files);
  for (DataOrder order : {DataOrder::Random, DataOrder::Sequential}) {
    std::string e = error_of([&] { BatchLoader l(d, 1, 64, order, 0); });
    EXPECT_EQ(e.rfind(files[0] + ": 64 tokens is too few for block_size 64", 0), 0u) << e;
    EXPECT_NE(e.find("need at least 65"), std::string::npos) << e;
    BatchLoader ok(d, 1, 63, order, 0); // exactly T + 1 tokens is enough
    std::vector<int32_t> x(63), y(63);
    ok.next(x.data(), y.data());
    EXPECT_EQ(x, expect_range(0, 63));
    EXPECT_EQ(y, expect_range(1, 63));
  }
  // Sequential needs one file to hold world*B*T+1 tokens.
  std::string e = error_of([&] { BatchLoader l(d, 2, 32, DataOrder::Sequential, 0); });
  EXPECT_NE(e.find(files[0]), std::string::npos) << e;
  EXPECT_NE(e.find("block_size 32"), std::string::npos) << e;
  EXPECT_NE(e.find("65 tokens"), std::string::npos) << e;
  BatchLoader random_ok(d, 2, 32, DataOrder::Random, 0);
  EXPECT_NE(error_of([&] { BatchLoader l(d, 0, 8, DataOrder::Random, 0); }).find("batch_size"),
            std::string::npos);
  EXPECT_NE(error_of([&] { BatchLoader l(d, 1, 8, DataOrder::Random, 0, 2, 2); }).find("rank"),
            std::string::npos);
}

TEST(DataOrderTest, Parses) {
  EXPECT_EQ(parse_data_order("random"), DataOrder::Random);
  EXPECT_EQ(parse_data_order("sequential"), DataOrder::Sequential);
  std::string e = error_of([] { parse_data_order("shuffled"); });
  EXPECT_NE(e.find("'shuffled'"), std::string::npos) << e;
  EXPECT_NE(e.find("sequential"), std::string::npos) << e;
}
