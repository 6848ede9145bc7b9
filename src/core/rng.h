// Random numbers: a small-state generator whose whole state is one uint64 (so checkpoints can
// save it exactly), plus counter-based hashing for dropout masks that backward regenerates
// instead of storing. Not compatible with PyTorch's generators (nothing can be).
// mix64 and dropout_keep are also device functions under nvcc (FINEGPT_HD), so the CUDA ops
// compute exactly the CPU's masks from this one definition; the header needs no CUDA header.
#pragma once
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define FINEGPT_HD __host__ __device__
#else
#define FINEGPT_HD
#endif

namespace finegpt {

// splitmix64 finaliser: a good 64-bit mixer (Steele, Lea, Flood 2014).
FINEGPT_HD inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed = 1337) : state(mix64(seed + 0x9e3779b97f4a7c15ULL)) {}
  uint64_t next_u64() {
    state += 0x9e3779b97f4a7c15ULL;
    return mix64(state);
  }
  // Uniform in [0, 1) with 24 bits (exactly representable as float).
  float uniform() { return float(next_u64() >> 40) * (1.0f / 16777216.0f); }
  // Uniform integer in [0, n) without modulo bias (Lemire's method).
  uint64_t below(uint64_t n) {
    unsigned __int128 m = (unsigned __int128)next_u64() * n;
    uint64_t l = (uint64_t)m;
    if (l < n) {
      uint64_t t = -n % n;
      while (l < t) {
        m = (unsigned __int128)next_u64() * n;
        l = (uint64_t)m;
      }
    }
    return uint64_t(m >> 64);
  }
  // Standard normal via Box-Muller (one value per call; the pair's second is discarded so the
  // state stays a single integer).
  float normal() {
    double u1 = (double(next_u64() >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = double(next_u64() >> 11) * (1.0 / 9007199254740992.0);
    return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
  }
};

// Dropout keep decision for element `i` of the mask identified by `key` (seed, step, site):
// a pure function, so backward recomputes exactly the forward's mask. Integer arithmetic, then
// an exact compare (r < 2^24 converts exactly, and the scaling is by a power of two), so host
// and device agree bit for bit.
FINEGPT_HD inline bool dropout_keep(uint64_t key, uint64_t i, float p) {
  uint32_t r = uint32_t(mix64(key ^ mix64(i)) >> 40);
  return float(r) * (1.0f / 16777216.0f) >= p;
}

} // namespace finegpt
