// Token files and batch loading (see tokens.h): llm.c shard and nanoGPT raw file validation,
// read-only memory maps, split discovery, and the random / sequential batch loaders.
// Not here: tokenizers and text sources (they produce the tokens these files hold).
#include "data/tokens.h"

#include "core/error.h"
#include "core/file.h"
#include "core/rng.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace finegpt {

static_assert(std::endian::native == std::endian::little,
              "token files are little-endian; this reader assumes a little-endian host");

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kHeaderInts = 256;
constexpr uint64_t kHeaderBytes = kHeaderInts * sizeof(int32_t);

std::string base_name(const std::string &path) { return fs::path(path).filename().string(); }

// "<anything>_<split>_<anything>.bin": the names llm.c's data scripts give shards.
bool is_shard_name(const std::string &name, const std::string &split) {
  const std::string ext = ".bin";
  if (name.size() < ext.size() || name.compare(name.size() - ext.size(), ext.size(), ext) != 0)
    return false;
  std::string stem = name.substr(0, name.size() - ext.size());
  return stem.find("_" + split + "_") != std::string::npos;
}

// A nanoGPT raw file is named "<split>.bin"; anything with an underscore in its stem is taken
// for an llm.c shard (and so must carry the shard header).
bool is_raw_name(const std::string &name) {
  std::string stem = fs::path(name).stem().string();
  return stem.find('_') == std::string::npos;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Split discovery and writing

std::vector<std::string> find_split_files(const std::string &dir, const std::string &split) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) fail(dir, ": no such folder (looking for the '", split, "' split)");
  if (!fs::is_directory(dir, ec)) fail(dir, ": not a folder (looking for the '", split, "' split)");
  std::vector<std::string> shards;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    if (is_shard_name(it->path().filename().string(), split)) shards.push_back(it->path().string());
  }
  if (ec) fail(dir, ": cannot list folder: ", ec.message());
  if (!shards.empty()) {
    // Shards win over a raw file: the two are never mixed in one split.
    std::sort(shards.begin(), shards.end(), [](const std::string &a, const std::string &b) {
      return base_name(a) < base_name(b);
    });
    return shards;
  }
  fs::path raw = fs::path(dir) / (split + ".bin");
  if (fs::is_regular_file(raw, ec)) return {raw.string()};
  fail(dir, ": no '", split, "' data found (looked for llm.c shards *_", split,
       "_*.bin and nanoGPT's ", split, ".bin)");
}

void write_shard(const std::string &path, const uint16_t *tokens, size_t n) {
  FINEGPT_CHECK(n < (size_t(1) << 31), path, ": ", n,
                " tokens is too many for one llm.c shard (at most 2^31 - 1)");
  int32_t header[kHeaderInts] = {};
  header[0] = kShardMagic;
  header[1] = kShardVersion;
  header[2] = int32_t(n);
  write_file_atomic(path, [&](FILE *f) {
    write_bytes(f, header, sizeof(header), path);
    write_bytes(f, tokens, n * sizeof(uint16_t), path);
  });
}

DataOrder parse_data_order(const std::string &s) {
  if (s == "random") return DataOrder::Random;
  if (s == "sequential") return DataOrder::Sequential;
  fail("data_order '", s, "' is not one of: 'random' (nanoGPT), 'sequential' (llm.c)");
}

// ---------------------------------------------------------------------------------------------
// TokenDataset

struct TokenDataset::File {
  std::string path;
  void *map = nullptr;
  size_t map_bytes = 0;
  const uint16_t *tokens = nullptr;
  uint64_t count = 0;
  uint64_t offset = 0; // in the split's stream

  explicit File(const std::string &p) : path(p) { open(); }
  ~File() {
    if (map) munmap(map, map_bytes);
  }
  File(const File &) = delete;
  File &operator=(const File &) = delete;

  void open() {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(path, ": cannot open: ", std::strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int e = errno;
      ::close(fd);
      fail(path, ": cannot stat: ", std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      fail(path, ": not a regular file");
    }
    uint64_t bytes = uint64_t(st.st_size);
    if (bytes == 0) {
      ::close(fd);
      fail(path, ": file is empty (expected ",
           is_raw_name(path) ? "raw uint16 tokens)" : "an llm.c token shard)");
    }
    map = mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd, 0);
    int e = errno;
    ::close(fd); // the mapping keeps the file
    if (map == MAP_FAILED) {
      map = nullptr;
      fail(path, ": cannot memory-map: ", std::strerror(e));
    }
    map_bytes = bytes;
    validate(); // no readahead hint: a split can be far larger than memory
  }

  // Throws with the mapping still owned by *this, so the destructor unmaps it.
  void validate() {
    const auto *bytes = static_cast<const unsigned char *>(map);
    int32_t magic = 0;
    if (map_bytes >= sizeof(int32_t)) std::memcpy(&magic, bytes, sizeof(magic));
    bool shard = magic == kShardMagic || !is_raw_name(path);
    if (!shard) {
      if (map_bytes % 2 != 0)
        fail(path, ": raw uint16 token file has an odd size (", map_bytes,
             " bytes); it must hold whole 2-byte tokens");
      tokens = reinterpret_cast<const uint16_t *>(bytes);
      count = map_bytes / 2;
      return;
    }
    if (map_bytes < kHeaderBytes)
      fail(path, ": file is ", map_bytes, " bytes, shorter than the ", kHeaderBytes,
           "-byte llm.c token shard header");
    int32_t header[3];
    std::memcpy(header, bytes, sizeof(header));
    if (header[0] != kShardMagic)
      fail(path, ": not an llm.c token shard (magic ", header[0], ", expected ", kShardMagic, ")");
    if (header[1] != kShardVersion)
      fail(path, ": unsupported llm.c token shard version ", header[1], " (expected ",
           kShardVersion, ")");
    uint64_t body = map_bytes - kHeaderBytes;
    if (header[2] < 0 || uint64_t(header[2]) * 2 != body) {
      std::string held = body % 2 ? cat(body / 2, " and a half") : cat(body / 2);
      fail(path, ": header says ", header[2], " tokens but the file holds ", held, " (", map_bytes,
           " bytes; expected ", kHeaderBytes, " + 2 x count)");
    }
    tokens = reinterpret_cast<const uint16_t *>(bytes + kHeaderBytes);
    count = uint64_t(header[2]);
  }
};

TokenDataset::TokenDataset(const std::vector<std::string> &files) {
  FINEGPT_CHECK(!files.empty(), "no token files given");
  for (const auto &path : files) {
    files_.push_back(std::make_unique<File>(path));
    files_.back()->offset = total_;
    total_ += files_.back()->count;
  }
}

TokenDataset::~TokenDataset() = default;

uint64_t TokenDataset::file_tokens(size_t i) const {
  FINEGPT_CHECK(i < files_.size(), "file index ", i, " out of range (", files_.size(), " files)");
  return files_[i]->count;
}

uint64_t TokenDataset::file_offset(size_t i) const {
  FINEGPT_CHECK(i < files_.size(), "file index ", i, " out of range (", files_.size(), " files)");
  return files_[i]->offset;
}

const std::string &TokenDataset::file_path(size_t i) const {
  FINEGPT_CHECK(i < files_.size(), "file index ", i, " out of range (", files_.size(), " files)");
  return files_[i]->path;
}

void TokenDataset::read(uint64_t pos, size_t n, int32_t *out) const {
  if (pos > total_ || n > total_ - pos)
    fail(files_[0]->path, files_.size() > 1 ? " (and the rest of its split)" : "",
         ": cannot read tokens [", pos, ", ", pos + n, "): the split holds ", total_);
  // The last file starting at or before pos (skipping empty files via the count check below).
  auto it =
      std::upper_bound(files_.begin(), files_.end(), pos,
                       [](uint64_t p, const std::unique_ptr<File> &f) { return p < f->offset; });
  size_t fi = size_t(it - files_.begin()) - 1;
  while (n > 0) {
    const File &f = *files_[fi];
    uint64_t local = pos - f.offset;
    if (local >= f.count) { // empty file, or pos at its end
      ++fi;
      continue;
    }
    size_t take = size_t(std::min<uint64_t>(n, f.count - local));
    const uint16_t *src = f.tokens + local;
    for (size_t i = 0; i < take; i++)
      out[i] = src[i];
    out += take;
    pos += take;
    n -= take;
    ++fi;
  }
}

int TokenDataset::max_token() const {
  if (max_token_ >= 0 || total_ == 0) return max_token_;
  int best = 0;
  for (const auto &f : files_) {
    const uint16_t *t = f->tokens;
    const int64_t n = int64_t(f->count);
    int m = 0;
#pragma omp parallel for reduction(max : m) schedule(static)
    for (int64_t i = 0; i < n; i++)
      m = std::max(m, int(t[i]));
    best = std::max(best, m);
  }
  max_token_ = best;
  return max_token_;
}

// ---------------------------------------------------------------------------------------------
// BatchLoader

namespace {

std::string split_name(const TokenDataset &d) {
  if (d.num_files() == 1) return d.file_path(0);
  return cat(d.file_path(0), " (and ", d.num_files() - 1, " more files of its split)");
}

} // namespace

BatchLoader::BatchLoader(const TokenDataset &data, int B, int T, DataOrder order, uint64_t seed,
                         int rank, int world)
    : data_(data), B_(B), T_(T), order_(order), seed_(seed), rank_(rank), world_(world) {
  FINEGPT_CHECK(B > 0, "batch_size must be positive (got ", B, ")");
  FINEGPT_CHECK(T > 0, "block_size must be positive (got ", T, ")");
  FINEGPT_CHECK(world > 0 && rank >= 0 && rank < world, "rank ", rank, " is not in [0, world size ",
                world, ")");
  if (data.size() < uint64_t(T) + 1)
    fail(split_name(data), ": ", data.size(), " tokens is too few for block_size ", T,
         " (need at least ", T + 1, ")");
  if (order == DataOrder::Sequential) {
    // llm.c reads a whole global batch (world x B x T, plus one target) from one file.
    uint64_t need = uint64_t(world) * B * T + 1, largest = 0;
    for (size_t i = 0; i < data.num_files(); i++)
      largest = std::max(largest, data.file_tokens(i));
    if (largest < need)
      fail(split_name(data), ": no file holds one sequential batch of ", need, " tokens (world ",
           world, " x batch_size ", B, " x block_size ", T, " + 1); the largest holds ", largest,
           ". Use data_order='random' or smaller batches");
  }
  buf_.resize(size_t(B) * T + 1);
  reset();
}

void BatchLoader::reset() {
  // rank 0 draws from Rng(seed) itself; other ranks from decorrelated seeds (mix64(0) == 0).
  state_ = LoaderState{};
  state_.rng = Rng(seed_ ^ mix64(uint64_t(rank_))).state;
}

void BatchLoader::restore(const LoaderState &s) {
  FINEGPT_CHECK(s.shard < data_.num_files(), "loader state names file ", s.shard,
                " but the split has ", data_.num_files(), " files (was the data changed?)");
  state_ = s;
}

void BatchLoader::next(int32_t *inputs, int32_t *targets) {
  const size_t T = size_t(T_), BT = size_t(B_) * T;
  if (order_ == DataOrder::Random) {
    Rng rng;
    rng.state = state_.rng;
    const uint64_t range = data_.size() - T; // positions [0, size - T - 1]
    for (size_t b = 0; b < size_t(B_); b++) {
      uint64_t pos = rng.below(range);
      data_.read(pos, T + 1, buf_.data());
      std::copy(buf_.begin(), buf_.begin() + T, inputs + b * T);
      std::copy(buf_.begin() + 1, buf_.begin() + T + 1, targets + b * T);
    }
    state_.rng = rng.state;
    return;
  }
  // Sequential: like llm.c, move on (lazily, before reading) when the next global batch would
  // not fit in the current file; files too small for one batch are passed over.
  const uint64_t global = uint64_t(world_) * BT;
  while (state_.position + global + 1 > data_.file_tokens(state_.shard)) {
    state_.shard = (state_.shard + 1) % data_.num_files();
    state_.position = 0;
  }
  uint64_t start = data_.file_offset(state_.shard) + state_.position + uint64_t(rank_) * BT;
  data_.read(start, BT + 1, buf_.data());
  std::copy(buf_.begin(), buf_.begin() + BT, inputs);
  std::copy(buf_.begin() + 1, buf_.begin() + BT + 1, targets);
  state_.position += global;
}

} // namespace finegpt
