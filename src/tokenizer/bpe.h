// Byte-pair encoding of one pre-tokenised piece over a tiktoken rank table (a token's rank is its
// id). tiktoken's rule: a piece that is itself a token maps to it; otherwise start from single
// bytes and repeatedly merge the adjacent pair whose concatenated bytes has the lowest rank,
// leftmost on ties, until no adjacent pair concatenates to a token.
//
// Every part is a token at every step, so "the rank of bytes(a) + bytes(b)" is a function of
// the two parts' ranks: the pair table maps (a, b) to it for every split of every token into two
// tokens, and merging never hashes byte strings. Not the pre-tokeniser (pretokenize.h) and not
// the rank file's format (gpt2.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace finegpt::bpe {

constexpr uint32_t kNoRank = UINT32_MAX;

class RankTable {
public:
  // tokens[r] holds the bytes of rank r; an empty string is a rank that is absent. Throws Error
  // (a message without the file's name, which the caller adds) on bytes that appear twice, on a
  // single byte with no rank, or on more than 65535 ranks (ids are uint16).
  void build(std::vector<std::string> tokens);

  size_t size() const { return offsets_.size() - 1; }
  std::string_view bytes(uint32_t rank) const {
    return {blob_.data() + offsets_[rank], offsets_[rank + 1] - offsets_[rank]};
  }
  uint32_t byte_rank(uint8_t b) const { return byte_rank_[b]; }
  size_t max_token_bytes() const { return max_len_; }
  size_t pair_count() const { return pair_count_; }

  // The rank of a byte string, kNoRank when it is not a token.
  uint32_t lookup(const uint8_t *p, size_t n) const;
  // The rank of bytes(a) + bytes(b), kNoRank when that is not a token.
  uint32_t pair(uint32_t a, uint32_t b) const {
    const uint32_t key = a << 16 | b;
    for (size_t i = pair_hash(key) & pair_mask_;; i = (i + 1) & pair_mask_) {
      if (pairs_[i].key == key) return pairs_[i].rank;
      if (pairs_[i].key == kEmptyKey) return kNoRank;
    }
  }
  // The rank of the two bytes b0 b1, kNoRank when they are not a token (a direct table: every
  // merge starts from these).
  uint32_t byte_pair(uint8_t b0, uint8_t b1) const {
    const uint16_t r = byte_pairs_[size_t(b0) << 8 | b1];
    return r == 0xFFFF ? kNoRank : r;
  }

  // Appends the ranks of one piece (n >= 1 bytes).
  void encode_piece(const uint8_t *p, size_t n, std::vector<uint16_t> &out) const;
  // The merge loop alone, without the whole-piece lookup: the quadratic scan tiktoken uses
  // (short pieces) and a heap with a linked list (long pieces). Public so tests can check that
  // they agree; encode_piece picks by length.
  void merge_scan(const uint8_t *p, size_t n, std::vector<uint16_t> &out) const;
  void merge_heap(const uint8_t *p, size_t n, std::vector<uint16_t> &out) const;
  static constexpr size_t kScanMaxBytes = 48;

private:
  static constexpr uint32_t kEmptyKey = UINT32_MAX; // ranks < 65536, so never a real key
  static size_t pair_hash(uint32_t key) {
    return size_t((uint64_t(key) * 0x9E3779B97F4A7C15ull) >> 32);
  }
  struct Slot {
    uint64_t head; // the first min(len, 8) bytes, little-endian, zero padded
    uint32_t len;  // 0: empty slot
    uint32_t rank;
  };
  void insert_piece(uint32_t rank);
  void insert_pair(uint32_t a, uint32_t b, uint32_t rank);

  std::string blob_;              // every token's bytes, by rank
  std::vector<uint32_t> offsets_; // rank r is blob_[offsets_[r], offsets_[r + 1])
  uint32_t byte_rank_[256];
  size_t max_len_ = 0;
  std::vector<Slot> slots_; // open addressing (linear probing) on the bytes
  size_t slot_mask_ = 0;
  struct PairSlot {
    uint32_t key; // a << 16 | b
    uint32_t rank;
  };
  std::vector<PairSlot> pairs_;      // open addressing on the key
  std::vector<uint16_t> byte_pairs_; // 65536 entries; 0xFFFF: none
  size_t pair_mask_ = 0;
  size_t pair_count_ = 0;
};

} // namespace finegpt::bpe
