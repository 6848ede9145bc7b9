// The kernel-host shim's stand-in for CUB's DeviceRadixSort::SortPairs, the one CUB call of the
// CUDA bodies (encoder_backward): a stable sort of (key, value) pairs by key bits
// [begin_bit, end_bit), as CUB's radix sort, on host memory.
#pragma once
#include <algorithm>
#include <cstddef>
#include <numeric>
#include <vector>

#include "cuda_runtime.h"

namespace cub {
struct DeviceRadixSort {
  template <typename K, typename V>
  static cudaError_t SortPairs(void *temp, size_t &temp_bytes, const K *keys_in, K *keys_out,
                               const V *values_in, V *values_out, int n, int begin_bit, int end_bit,
                               cudaStream_t = nullptr) {
    if (temp == nullptr) {
      temp_bytes = 16; // asks for some, as CUB does, so the caller's sizing is exercised
      return cudaSuccess;
    }
    const K mask = K(((uint64_t(1) << (end_bit - begin_bit)) - 1) << begin_bit);
    std::vector<int> order(size_t(n > 0 ? n : 0));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return (keys_in[a] & mask) < (keys_in[b] & mask); });
    std::vector<K> k(order.size());
    std::vector<V> v(order.size());
    for (size_t i = 0; i < order.size(); i++)
      k[i] = keys_in[order[i]], v[i] = values_in[order[i]];
    std::copy(k.begin(), k.end(), keys_out);
    std::copy(v.begin(), v.end(), values_out);
    return cudaSuccess;
  }
};
} // namespace cub
