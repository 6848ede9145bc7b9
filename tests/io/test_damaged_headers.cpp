// Damaged headers of model files are refused with Error, before any size arithmetic or
// conversion can go wrong (the fuzz targets fuzz/llmc_model and fuzz/checkpoint found both;
// their inputs replay as ctest fuzz/<target>).
#include "io/checkpoint.h"
#include "testing.h"

#include <cstdio>
#include <cstring>

namespace finegpt {
namespace {

using testutil::error_of;
using testutil::TempDir;

void write(const std::string &path, const std::string &bytes) {
  FILE *f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  std::fclose(f);
}

TEST(DamagedHeaders, LlmcShapeTooLargeForSizeArithmetic) {
  // n_layer and n_embd near 2^31: 12 L C^2 overflows 64 bits.
  int32_t h[256] = {};
  const int32_t fields[] = {kLlmcModelMagic, 3, 1024, 50257, 0x7fffffff, 1, 0x7fffffff, 50304};
  std::memcpy(h, fields, sizeof fields);
  TempDir dir;
  const std::string path = dir.file("gpt2_damaged.bin");
  write(path, std::string(reinterpret_cast<const char *>(h), sizeof h));
  const std::string e = error_of([&] { read_llmc_header(path); });
  EXPECT_NE(e.find("bad llm.c header"), std::string::npos) << e;
  EXPECT_NE(e.find("parameters, more than finegpt takes"), std::string::npos) << e;
}

// A version 1 checkpoint (no trailer) whose JSON header is `json`.
std::string checkpoint_with(const std::string &json) {
  std::string out(16, '\0');
  const uint32_t head[2] = {kCheckpointMagic, 1};
  const uint64_t len = json.size();
  std::memcpy(out.data(), head, 8);
  std::memcpy(out.data() + 8, &len, 8);
  return out + json;
}

TEST(DamagedHeaders, CheckpointIntegersMustBeIntegersInRange) {
  const std::string model = R"("model": {"block_size": 4, "vocab_size": 64,
      "padded_vocab_size": 64, "n_layer": 1, "n_head": 1, "n_embd": 4, "bias": false,
      "dropout": 0.0})";
  auto header = [&](const std::string &iter, const std::string &loaders) {
    return "{" + model + R"(, "iter_num": )" + iter + R"(, "best_val_loss": 1.0,
        "adam_steps": 1, "loaders": )" +
           loaders +
           R"(, "eval_rng": 0, "config": "", "data_dir": "", "num_params": 1,
        "has_optimizer": false})";
  };
  TempDir dir;
  const std::string path = dir.file("ckpt.bin");
  // A float where an integer belongs: its conversion was undefined behaviour.
  write(path, checkpoint_with(header("1", "[[3.4e19, 0, 0]]")));
  std::string e = error_of([&] { read_checkpoint_state(path); });
  EXPECT_NE(e.find("\"loaders\" is 3.4e+19, not an integer"), std::string::npos) << e;
  // An integer out of its type's range: it used to wrap.
  write(path, checkpoint_with(header("9223372036854775808", "[[1, 0, 0]]")));
  e = error_of([&] { read_checkpoint_state(path); });
  EXPECT_NE(e.find("\"iter_num\" is 9223372036854775808, not an integer"), std::string::npos) << e;
  write(path, checkpoint_with(header("1", "[[1, 0]]")));
  e = error_of([&] { read_checkpoint_state(path); });
  EXPECT_NE(e.find("not a list of 3 integers"), std::string::npos) << e;
}

} // namespace
} // namespace finegpt
