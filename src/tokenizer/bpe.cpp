// The rank table's two hash tables (bytes -> rank, rank pair -> rank) and the merge loops; see
// bpe.h. Open addressing with linear probing, sized at most 40% full; byte strings are hashed in
// 8-byte words (little-endian loads: x86-64 and arm64).
#include "tokenizer/bpe.h"

#include "core/error.h"

#include <algorithm>
#include <cstring>
#include <functional>

namespace finegpt::bpe {

namespace {

constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;

// The n <= 8 bytes at p as a little-endian integer, zero padded, without reading past p + n.
inline uint64_t load_le(const uint8_t *p, size_t n) {
  if (n >= 8) {
    uint64_t x;
    std::memcpy(&x, p, 8);
    return x;
  }
  if (n >= 4) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + n - 4, 4);
    return uint64_t(lo) | uint64_t(hi) << ((n - 4) * 8);
  }
  if (n >= 2) {
    uint16_t lo, hi;
    std::memcpy(&lo, p, 2);
    std::memcpy(&hi, p + n - 2, 2);
    return uint64_t(lo) | uint64_t(hi) << ((n - 2) * 8);
  }
  return n ? p[0] : 0;
}

inline uint64_t hash_bytes(uint64_t head, const uint8_t *p, size_t n) {
  uint64_t h = (head ^ (uint64_t(n) << 58)) * kMul;
  for (size_t i = 8; i < n; i += 8) {
    h = (h << 23 | h >> 41) ^ load_le(p + i, std::min<size_t>(8, n - i));
    h *= kMul;
  }
  return h ^ (h >> 29);
}

size_t table_size(size_t entries) {
  size_t n = 16;
  while (n < entries * 5 / 2)
    n *= 2;
  return n;
}

} // namespace

uint32_t RankTable::lookup(const uint8_t *p, size_t n) const {
  if (n == 0 || n > max_len_) return kNoRank;
  const uint64_t head = load_le(p, n);
  for (size_t i = (hash_bytes(head, p, n) * kMul >> 32) & slot_mask_;; i = (i + 1) & slot_mask_) {
    const Slot &s = slots_[i];
    if (s.len == 0) return kNoRank;
    if (s.len == n && s.head == head &&
        (n <= 8 || std::memcmp(blob_.data() + offsets_[s.rank] + 8, p + 8, n - 8) == 0))
      return s.rank;
  }
}

void RankTable::insert_piece(uint32_t rank) {
  const std::string_view t = bytes(rank);
  const auto *p = reinterpret_cast<const uint8_t *>(t.data());
  const uint64_t head = load_le(p, t.size());
  size_t i = (hash_bytes(head, p, t.size()) * kMul >> 32) & slot_mask_;
  while (slots_[i].len != 0)
    i = (i + 1) & slot_mask_;
  slots_[i] = Slot{head, uint32_t(t.size()), rank};
}

void RankTable::insert_pair(uint32_t a, uint32_t b, uint32_t rank) {
  const uint32_t key = a << 16 | b;
  size_t i = pair_hash(key) & pair_mask_;
  while (pairs_[i].key != kEmptyKey) {
    if (pairs_[i].key == key) return; // one concatenation, one rank: already there
    i = (i + 1) & pair_mask_;
  }
  pairs_[i] = PairSlot{key, rank};
  pair_count_++;
}

void RankTable::build(std::vector<std::string> tokens) {
  if (tokens.size() >= 0xFFFF)
    fail(tokens.size(), " ranks; at most 65534 fit the uint16 token ids");
  offsets_.assign(1, 0);
  blob_.clear();
  size_t count = 0;
  max_len_ = 0;
  for (const std::string &t : tokens) {
    blob_ += t;
    offsets_.push_back(uint32_t(blob_.size()));
    max_len_ = std::max(max_len_, t.size());
    count += !t.empty();
  }
  slots_.assign(table_size(count), Slot{0, 0, 0});
  slot_mask_ = slots_.size() - 1;
  for (uint32_t r = 0; r < tokens.size(); r++) {
    if (tokens[r].empty()) continue;
    const auto *p = reinterpret_cast<const uint8_t *>(tokens[r].data());
    if (uint32_t other = lookup(p, tokens[r].size()); other != kNoRank)
      fail("ranks ", other, " and ", r, " have the same bytes");
    insert_piece(r);
  }
  for (int b = 0; b < 256; b++) {
    const uint8_t byte = uint8_t(b);
    byte_rank_[b] = lookup(&byte, 1);
    if (byte_rank_[b] == kNoRank) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", unsigned(b));
      fail("the single byte ", hex,
           " has no rank (a byte-level BPE rank file ranks all 256 single bytes)");
    }
  }
  // Every split of every token into two tokens.
  std::vector<uint32_t> pairs; // (a, b, rank) triples
  for (uint32_t r = 0; r < tokens.size(); r++) {
    const auto *p = reinterpret_cast<const uint8_t *>(tokens[r].data());
    for (size_t k = 1; k < tokens[r].size(); k++) {
      uint32_t a = lookup(p, k), b = lookup(p + k, tokens[r].size() - k);
      if (a != kNoRank && b != kNoRank) pairs.insert(pairs.end(), {a, b, r});
    }
  }
  pairs_.assign(table_size(pairs.size() / 3), PairSlot{kEmptyKey, 0});
  pair_mask_ = pairs_.size() - 1;
  pair_count_ = 0;
  for (size_t i = 0; i < pairs.size(); i += 3)
    insert_pair(pairs[i], pairs[i + 1], pairs[i + 2]);
  byte_pairs_.assign(65536, 0xFFFF);
  for (size_t i = 0; i < 65536; i++) {
    const uint8_t two[2] = {uint8_t(i >> 8), uint8_t(i)};
    if (uint32_t r = lookup(two, 2); r != kNoRank) byte_pairs_[i] = uint16_t(r);
  }
}

void RankTable::encode_piece(const uint8_t *p, size_t n, std::vector<uint16_t> &out) const {
  if (n == 1) {
    out.push_back(uint16_t(byte_rank_[p[0]]));
    return;
  }
  if (uint32_t r = lookup(p, n); r != kNoRank) {
    out.push_back(uint16_t(r));
    return;
  }
  if (n <= kScanMaxBytes)
    merge_scan(p, n, out);
  else
    merge_heap(p, n, out);
}

void RankTable::merge_scan(const uint8_t *p, size_t n, std::vector<uint16_t> &out) const {
  if (n > kScanMaxBytes) return merge_heap(p, n, out);
  if (n < 2) {
    if (n == 1) out.push_back(uint16_t(byte_rank_[p[0]]));
    return;
  }
  // ids[i]: the rank of part i; pr[i]: the rank of parts i and i + 1 merged (kNoRank: none).
  uint32_t ids[kScanMaxBytes], pr[kScanMaxBytes];
  size_t m = n;
  for (size_t i = 0; i < n; i++)
    ids[i] = byte_rank_[p[i]];
  for (size_t i = 0; i + 1 < n; i++)
    pr[i] = byte_pair(p[i], p[i + 1]);
  pr[n - 1] = kNoRank;
  for (;;) {
    uint32_t best = kNoRank;
    size_t at = 0;
    for (size_t i = 0; i + 1 < m; i++)
      if (pr[i] < best) best = pr[i], at = i; // strict: leftmost on ties
    if (best == kNoRank) break;
    ids[at] = best;
    for (size_t i = at + 1; i + 1 < m; i++)
      ids[i] = ids[i + 1], pr[i] = pr[i + 1];
    m--;
    if (at > 0) pr[at - 1] = pair(ids[at - 1], ids[at]);
    pr[at] = at + 1 < m ? pair(ids[at], ids[at + 1]) : kNoRank;
  }
  for (size_t i = 0; i < m; i++)
    out.push_back(uint16_t(ids[i]));
}

void RankTable::merge_heap(const uint8_t *p, size_t n, std::vector<uint16_t> &out) const {
  // Parts form a linked list over byte positions; the heap holds (rank << 32 | position of the
  // left part) for candidate merges, checked against the list when popped (stale entries are
  // skipped). Popping the smallest key is "lowest rank, leftmost on ties".
  constexpr uint32_t kDead = UINT32_MAX;
  if (n < 2) return merge_scan(p, n, out);
  thread_local std::vector<uint32_t> ids, next, prev;
  thread_local std::vector<uint64_t> heap;
  ids.resize(n), next.resize(n), prev.resize(n);
  heap.clear();
  const uint32_t end = uint32_t(n);
  for (size_t i = 0; i < n; i++) {
    ids[i] = byte_rank_[p[i]];
    next[i] = uint32_t(i + 1);
    prev[i] = i == 0 ? end : uint32_t(i - 1);
  }
  auto push = [&](uint32_t left) {
    if (left == end || next[left] == end) return;
    const uint32_t r = pair(ids[left], ids[next[left]]);
    if (r == kNoRank) return;
    heap.push_back(uint64_t(r) << 32 | left);
    std::push_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
  };
  for (uint32_t i = 0; i + 1 < n; i++)
    if (const uint32_t r = byte_pair(p[i], p[i + 1]); r != kNoRank)
      heap.push_back(uint64_t(r) << 32 | i);
  std::make_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
    const uint64_t top = heap.back();
    heap.pop_back();
    const uint32_t r = uint32_t(top >> 32), i = uint32_t(top);
    if (ids[i] == kDead || next[i] == end || pair(ids[i], ids[next[i]]) != r) continue;
    const uint32_t j = next[i];
    ids[i] = r;
    ids[j] = kDead;
    next[i] = next[j];
    if (next[j] != end) prev[next[j]] = i;
    push(prev[i]);
    push(i);
  }
  for (uint32_t i = 0; i != end; i = next[i])
    out.push_back(uint16_t(ids[i]));
  if (n > (size_t(1) << 20)) { // do not keep a huge piece's scratch for the thread's lifetime
    for (auto *v : {&ids, &next, &prev})
      std::vector<uint32_t>().swap(*v);
    std::vector<uint64_t>().swap(heap);
  }
}

} // namespace finegpt::bpe
