// Token files (data/tokens.h): the input as an llm.c token shard ("fuzz_train_000.bin": must
// carry the 1024-byte header) and as a nanoGPT raw file ("train.bin": raw uint16 tokens unless
// it starts with the shard magic), each alone and the two as one split. What TokenDataset reads
// must be the file's bytes; reads past the end must be refused; the batch loaders (both orders)
// must produce targets that are the inputs shifted by one.
#include "data/tokens.h"
#include "fuzz.h"

#include <cstring>

using namespace finegpt;

namespace {

// The tokens a file of these bytes holds, decoded independently of tokens.cpp; false when it
// is not a valid file of its kind.
bool expected_tokens(const uint8_t *data, size_t size, bool raw_name, std::vector<uint16_t> &out) {
  int32_t head[3] = {};
  if (size >= 12) std::memcpy(head, data, 12);
  const bool shard = !raw_name || (size >= 4 && head[0] == kShardMagic);
  size_t from = 0;
  if (shard) {
    if (size < 1024 || head[0] != kShardMagic || head[1] != kShardVersion || head[2] < 0 ||
        uint64_t(head[2]) * 2 != size - 1024)
      return false;
    from = 1024;
  } else if (size == 0 || size % 2 != 0) {
    return false;
  }
  out.resize((size - from) / 2);
  if (!out.empty()) std::memcpy(out.data(), data + from, out.size() * 2);
  return true;
}

void exercise(const std::vector<std::string> &files, const std::vector<uint16_t> &want) {
  TokenDataset ds(files);
  fuzz::check(ds.size() == want.size(), "TokenDataset size differs from the file's tokens");
  const size_t n = std::min<size_t>(want.size(), 1 << 16);
  std::vector<int32_t> got(n + 1);
  ds.read(0, n, got.data());
  for (size_t i = 0; i < n; i++)
    fuzz::check(got[i] == want[i], cat("token ", i, " read as ", got[i], ", file has ", want[i]));
  if (!want.empty()) {
    int m = 0;
    for (uint16_t t : want)
      m = std::max(m, int(t));
    fuzz::check(ds.max_token() == m, "max_token differs");
  }
  bool refused = false;
  try {
    ds.read(ds.size(), 1, got.data());
  } catch (const Error &) {
    refused = true;
  }
  fuzz::check(refused, "a read past the end was not refused");

  for (DataOrder order : {DataOrder::Random, DataOrder::Sequential}) {
    try {
      const int B = 2, T = 3;
      BatchLoader loader(ds, B, T, order, 1337);
      int32_t x[B * T], y[B * T];
      for (int step = 0; step < 4; step++) {
        loader.next(x, y);
        for (int b = 0; b < B; b++)
          for (int t = 0; t + 1 < T; t++)
            fuzz::check(y[b * T + t] == x[b * T + t + 1], "targets are not inputs shifted by one");
      }
      loader.restore(loader.state());
    } catch (const Error &) {
    }
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string shard = fuzz::write_scratch("fuzz_train_000.bin", data, size);
  const std::string raw = fuzz::write_scratch("train.bin", data, size);
  std::vector<uint16_t> as_shard, as_raw;
  const bool shard_ok = expected_tokens(data, size, false, as_shard);
  const bool raw_ok = expected_tokens(data, size, true, as_raw);
  std::vector<uint16_t> both = as_shard;
  both.insert(both.end(), as_raw.begin(), as_raw.end());
  const std::pair<std::vector<std::string>, std::pair<bool, const std::vector<uint16_t> *>>
      cases[] = {{{shard}, {shard_ok, &as_shard}},
                 {{raw}, {raw_ok, &as_raw}},
                 {{shard, raw}, {shard_ok && raw_ok, &both}}};
  for (const auto &[files, expect] : cases) {
    bool opened = false;
    try {
      exercise(files, *expect.second);
      opened = true;
    } catch (const Error &) {
    }
    fuzz::check(opened == expect.first,
                opened ? "an invalid token file was accepted" : "a valid token file was refused");
  }
  return 0;
}
