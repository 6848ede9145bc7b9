// Damaged headers of model files are refused with Error, before any size arithmetic or
// conversion can go wrong (the fuzz targets fuzz/llmc_model and fuzz/checkpoint found both;
// their inputs replay as ctest fuzz/<target>).
#include "io/checkpoint.h"
#include "testing.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

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

// Checkpoints from before the architecture options have no fields for them: GPT-2's values. With
// options, the fields travel and come back.
TEST(Checkpoints, ArchitectureOptionsTravelAndOldFilesReadAsGpt2) {
  GPTConfig old;
  old.block_size = 4, old.vocab_size = 64, old.padded_vocab_size = 64, old.n_layer = 1;
  old.n_head = 1, old.n_embd = 4, old.bias = false;
  const size_t P = num_parameters(old);
  const std::string json = R"({"model": {"block_size": 4, "vocab_size": 64,
      "padded_vocab_size": 64, "n_layer": 1, "n_head": 1, "n_embd": 4, "bias": false,
      "dropout": 0.0}, "iter_num": 1, "best_val_loss": 1.0, "adam_steps": 1,
      "loaders": [[1, 0, 0]], "eval_rng": 0, "config": "", "data_dir": "", "num_params": )" +
                           std::to_string(P) + R"(, "has_optimizer": false})";
  std::string file = checkpoint_with(json);
  file.resize((file.size() + 63) / 64 * 64, '\0');
  file += std::string(P * sizeof(float), '\0');
  TempDir dir;
  const std::string path = dir.file("ckpt.bin");
  write(path, file);
  const GPTConfig got = read_checkpoint_state(path).model;
  EXPECT_TRUE(is_gpt2_architecture(got));
  EXPECT_FALSE(got.zero_init_proj);
  EXPECT_EQ(got.n_embd, 4);

  CheckpointState st;
  st.loaders = {{1, 0, 0}};
  st.model = old;
  st.model.rotary = st.model.rmsnorm = st.model.qk_norm = st.model.relu2 = true;
  st.model.tie_embeddings = false, st.model.zero_init_proj = true, st.model.logit_softcap = 15;
  st.model.n_head = 2;
  std::vector<float> params(num_parameters(st.model), 0.5f);
  save_checkpoint(path, st, params.data(), nullptr, nullptr);
  const GPTConfig back = read_checkpoint_state(path).model;
  EXPECT_TRUE(back.rotary && back.rmsnorm && back.qk_norm && back.relu2 && back.zero_init_proj);
  EXPECT_FALSE(back.tie_embeddings);
  EXPECT_EQ(back.logit_softcap, 15.0f);
  EXPECT_EQ(architecture_options(back), architecture_options(st.model));
  // llm.c files hold GPT-2 only: refused, nothing written.
  const std::string llmc = dir.file("model.bin");
  const std::string e = error_of([&] { save_llmc_model(llmc, back, params.data(), 3); });
  EXPECT_NE(e.find("GPT-2 only"), std::string::npos) << e;
  EXPECT_NE(e.find("rotary = True"), std::string::npos) << e;
  EXPECT_FALSE(std::filesystem::exists(llmc));
}

} // namespace
} // namespace finegpt
