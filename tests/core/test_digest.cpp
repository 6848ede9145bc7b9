// Digests against published test vectors (FIPS 180 "abc", the million 'a's), and
// BackgroundDigest against the one-shot digest over the same bytes given in pieces of every
// kind: empty, tiny, across the 1 MiB block boundaries, larger than all blocks together.
#include "core/digest.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace finegpt {
namespace {

TEST(Digest, PublishedVectors) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  const std::string million(1000000, 'a');
  EXPECT_EQ(sha256_hex(million),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  BackgroundDigest d(Digest::Kind::Sha256);
  for (int i = 0; i < 1000; i++)
    d.update(million.data() + 1000 * i, 1000);
  EXPECT_EQ(d.hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(BackgroundDigest, EqualsOneShotForAnyPieces) {
  std::mt19937_64 rng(7);
  std::string data(9 * (size_t(1) << 20) + 777, '\0');
  for (auto &c : data)
    c = char(rng());
  const std::string want256 = sha256_hex(data), want1 = sha1_hex(data);
  const size_t MiB = size_t(1) << 20;
  // Piece sizes: random small ones, then sizes at and around the block size, and one piece
  // bigger than the four blocks together.
  std::vector<std::vector<size_t>> plans;
  std::vector<size_t> small;
  for (size_t n = 0; n < data.size();) {
    size_t k = std::min<size_t>(rng() % 70000, data.size() - n);
    small.push_back(k), n += k;
  }
  plans.push_back(small);
  plans.push_back({MiB, MiB, MiB - 1, 1, MiB + 1, 0, 3 * MiB, data.size() - 7 * MiB - 1});
  plans.push_back({5 * MiB + 3, data.size() - 5 * MiB - 3});
  plans.push_back({data.size()});
  for (const auto &plan : plans) {
    BackgroundDigest d256(Digest::Kind::Sha256), d1(Digest::Kind::Sha1);
    size_t at = 0;
    for (size_t k : plan) {
      d256.update(data.data() + at, k);
      d1.update(data.data() + at, k);
      at += k;
    }
    ASSERT_EQ(at, data.size());
    EXPECT_EQ(d256.hex(), want256);
    EXPECT_EQ(d1.hex(), want1);
    // hex() starts over: the next digest is of what follows only.
    d256.update("abc", 3);
    EXPECT_EQ(d256.hex(), sha256_hex("abc"));
  }
}

TEST(BackgroundDigest, ResetDropsWhatWasGiven) {
  std::string junk(3 * (size_t(1) << 20) + 5, 'x');
  BackgroundDigest d(Digest::Kind::Sha256);
  d.update(junk.data(), junk.size());
  d.reset();
  d.update("ab", 2);
  d.update("c", 1);
  EXPECT_EQ(d.hex(), sha256_hex("abc"));
  BackgroundDigest empty(Digest::Kind::Sha256);
  EXPECT_EQ(empty.hex(), sha256_hex(""));
}

} // namespace
} // namespace finegpt
