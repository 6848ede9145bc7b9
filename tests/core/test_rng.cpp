// Tests of core/rng.h's dropout masks: dropout_keep keeps about 1 - p of the indices, is a pure
// function of (key, index), gives independent masks for different keys, and is pinned to its
// current values (checkpoints resume dropout from keys, and the CUDA ops compute the same hash,
// so changing it is a format change). The masks applied by the ops are tested in tests/backend.
#include <gtest/gtest.h>

#include <cstdint>

#include "core/rng.h"

using namespace finegpt;

namespace {

constexpr uint64_t N = 1000000;
// Values of this version (see the file comment): the first 64 decisions of key 42 at p = 0.5
// (bit i for index i), and mix64(1).
constexpr uint64_t PINNED_42 = 0x1a7ea9b01c0c01abULL;
constexpr uint64_t PINNED_MIX1 = 0x5692161d100b05e5ULL;

TEST(DropoutKeep, KeepsAboutOneMinusP) {
  for (float p : {0.0f, 0.1f, 0.5f, 0.9f}) {
    uint64_t kept = 0;
    for (uint64_t i = 0; i < N; i++)
      kept += dropout_keep(0x1234abcdULL, i, p);
    // Binomial: the standard deviation is at most 500 of 1e6; allow 5 of them.
    EXPECT_NEAR(double(kept), double(N) * (1.0 - p), 2500.0) << "p=" << p;
  }
}

TEST(DropoutKeep, KeepsEverythingAtZeroAndIsMonotoneInP) {
  for (uint64_t i = 0; i < 10000; i++) {
    EXPECT_TRUE(dropout_keep(99, i, 0.0f)) << i;
    // Kept at p implies kept at any smaller p: one uniform number per element, compared with p.
    if (dropout_keep(99, i, 0.5f)) {
      EXPECT_TRUE(dropout_keep(99, i, 0.1f)) << i;
    }
  }
}

TEST(DropoutKeep, IsDeterministicAndPinned) {
  // The first 64 decisions of a mask as bits, twice, and against the values of this version.
  auto bits = [](uint64_t key, float p) {
    uint64_t b = 0;
    for (uint64_t i = 0; i < 64; i++)
      b |= uint64_t(dropout_keep(key, i, p)) << i;
    return b;
  };
  EXPECT_EQ(bits(42, 0.5f), bits(42, 0.5f));
  EXPECT_EQ(bits(42, 0.5f), PINNED_42);
  EXPECT_EQ(mix64(1), PINNED_MIX1);
}

TEST(DropoutKeep, DiffersAcrossKeysAndIndices) {
  // Two keys' masks disagree on about 2 p (1 - p) of the indices (independent masks) ...
  const float p = 0.5f;
  uint64_t differ = 0, differ_shift = 0;
  for (uint64_t i = 0; i < N; i++) {
    const bool a = dropout_keep(7, i, p);
    differ += a != dropout_keep(8, i, p);
    // ... and so do a mask and itself shifted by one index (no correlation between neighbours).
    differ_shift += a != dropout_keep(7, i + 1, p);
  }
  EXPECT_NEAR(double(differ), N * 2.0 * p * (1.0 - p), 2500.0);
  EXPECT_NEAR(double(differ_shift), N * 2.0 * p * (1.0 - p), 2500.0);
}

} // namespace
