// Token files and batch loading. Reads llm.c token shards (256 x int32 header: 20240520, 1,
// count; then uint16 tokens) and nanoGPT's raw uint16 train.bin / val.bin; writes llm.c shards.
// A split (train or val) is the concatenation of its files in name order, memory-mapped.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace finegpt {

constexpr int32_t kShardMagic = 20240520;
constexpr int32_t kShardVersion = 1;

// The files of one split under `dir`: llm.c shards "*_<split>_*.bin" sorted by name, else
// nanoGPT's "<split>.bin" (never both). Throws Error naming the folder and what was looked for
// if none.
std::vector<std::string> find_split_files(const std::string &dir, const std::string &split);

// Writes an llm.c shard atomically (temporary name, then rename).
void write_shard(const std::string &path, const uint16_t *tokens, size_t n);

// One split: its files, validated at open (magic, version, count against the file size; a raw
// file must have an even size), memory-mapped and read as one stream of tokens. A file whose
// stem has no '_' ("train.bin") is raw unless it starts with the shard magic; any other name is
// an llm.c shard and must have the header.
class TokenDataset {
public:
  explicit TokenDataset(const std::vector<std::string> &files);
  ~TokenDataset();
  TokenDataset(const TokenDataset &) = delete;
  TokenDataset &operator=(const TokenDataset &) = delete;

  uint64_t size() const { return total_; }
  size_t num_files() const { return files_.size(); }
  uint64_t file_tokens(size_t i) const;
  uint64_t file_offset(size_t i) const; // position of file i's first token in the stream
  const std::string &file_path(size_t i) const;
  // out[0..n) = tokens [pos, pos+n) of the stream (may cross files); Error if out of range.
  void read(uint64_t pos, size_t n, int32_t *out) const;
  // Largest token id in the split (scanned once, cached): checked against the vocabulary.
  int max_token() const;

private:
  struct File;
  std::vector<std::unique_ptr<File>> files_;
  uint64_t total_ = 0;
  mutable int max_token_ = -1;
};

enum class DataOrder { Random, Sequential };
DataOrder parse_data_order(const std::string &s); // 'random' | 'sequential', else Error

// Where a loader is, saved in checkpoints so that resume continues exactly.
struct LoaderState {
  uint64_t rng = 0;      // Random: the generator state
  uint64_t shard = 0;    // Sequential: current file
  uint64_t position = 0; // Sequential: offset in that file of the next global batch (all ranks)
};

// Produces (B,T) inputs and targets (targets = inputs shifted by one).
//  Random (nanoGPT get_batch): each row starts at a uniform position in [0, size - T - 1]
//  of the concatenated split (so x and y both fit; rows may cross files), drawn with
//  Rng::below from Rng(seed ^ mix64(rank)) (rank 0: Rng(seed)).
//  Sequential (llm.c dataloader): reads B*T+1 tokens at position
//  idx*world*B*T + rank*B*T of the current file; moves to the next file (wrapping to the
//  first) when the next batch would not fit in the current one. Files too small for one global
//  batch (llm.c asserts on them) are passed over.
// Error at construction if the split is too small for one batch (naming the file and
// block_size; sequential: if no file holds world*B*T+1 tokens).
class BatchLoader {
public:
  BatchLoader(const TokenDataset &data, int B, int T, DataOrder order, uint64_t seed, int rank = 0,
              int world = 1);
  void next(int32_t *inputs, int32_t *targets);
  LoaderState state() const { return state_; }
  void restore(const LoaderState &s);
  void reset(); // back to the start (sequential) / reseeded (random)

private:
  const TokenDataset &data_;
  int B_, T_;
  DataOrder order_;
  uint64_t seed_;
  int rank_, world_;
  LoaderState state_;
  std::vector<int32_t> buf_;
};

} // namespace finegpt
