// finegpt export: a model as an llm.c model file (fp32 version 3 or bf16 version 5), or as a
// Hugging Face GPT-2 folder (config.json, model.safetensors and the tokenizer's vocab.json and
// merges.txt) that transformers' GPT2LMHeadModel.from_pretrained loads.
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/file.h"
#include "io/checkpoint.h"
#include "io/hf_model.h"
#include "io/model_load.h"
#include "tokenizer/hf_files.h"

#include <cstdio>
#include <filesystem>

namespace finegpt {

namespace {

// --out for --format hf: a new or empty folder, or one holding only what an export writes
// (regular files, not links), and not the folder being exported. Error naming what is there.
void check_hf_out(const std::string &dir, const std::string &source) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir, ec))) return;
  if (!fs::is_directory(dir, ec)) fail("--out ", dir, ": exists and is not a folder");
  if (!source.empty() && fs::equivalent(fs::path(source).parent_path(), dir, ec))
    fail("--out ", dir, " is the folder being exported; choose another folder");
  if (fs::exists(fs::symlink_status(dir + "/ckpt.bin", ec)))
    fail("--out ", dir, " holds a training checkpoint (ckpt.bin); choose another folder");
  for (const auto &e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    bool ours = false;
    for (const char *f : kHfModelFiles)
      ours = ours || name == f;
    if (!ours || !e.is_regular_file(ec) || e.is_symlink(ec))
      fail("--out ", dir, " holds '", name.substr(0, 60),
           "', which is not an earlier export; choose a new or empty folder");
  }
  if (ec) fail("--out ", dir, ": cannot read the folder: ", ec.message());
}

} // namespace

int cmd_export(const Args &args) {
  Options o;
  if (!o.parse(
          args,
          {{"out_dir", "out", "folder with ckpt.bin"},
           {"init_from", "resume",
            "'resume' (out_dir/ckpt.bin), a model file, a Hugging Face folder or 'gpt2'"},
           {"format", "llmc", "llmc (one llm.c model file) or hf (a Hugging Face folder)"},
           {"dtype", "float32",
            "float32 or bfloat16 (llm.c version 3 or 5; safetensors F32 or BF16)"},
           {"output", "", "--format llmc: the file to write"},
           {"out", "", "--format hf: the folder to write"},
           {"tokenizer", "", "--format hf: the tokenizer to write (default: the training data's)"}},
          "usage: finegpt export --output=FILE [--out_dir=DIR] [--dtype=float32|bfloat16]\n"
          "       finegpt export --format=hf --out=DIR [--out_dir=DIR]"))
    return 0;
  if (!o.positional().empty()) fail("unexpected argument '", o.positional()[0], "'");
  const std::string format = o.str("format");
  FINEGPT_CHECK(format == "llmc" || format == "hf", "--format: '", format,
                "' is not supported (llmc or hf)");
  const bool hf = format == "hf";
  if (hf) {
    FINEGPT_CHECK(o.str("output").empty(),
                  "--output is for --format llmc; --format hf writes a folder: give --out=DIR");
    FINEGPT_CHECK(!o.str("out").empty(), "--out: give the folder to write (--format hf)");
  } else {
    FINEGPT_CHECK(!o.str("output").empty(), "--output: give the file to write");
    FINEGPT_CHECK(o.str("out").empty() && o.str("tokenizer").empty(),
                  "--out and --tokenizer are for --format hf; --format llmc writes --output=FILE");
  }
  const std::string dt = o.str("dtype");
  FINEGPT_CHECK(dt == "float32" || dt == "bfloat16", "--dtype: expected float32 or bfloat16, got '",
                dt, "'");
  const std::string init = o.str("init_from");
  LoadedModel lm = load_model(init == "resume" ? o.str("out_dir") : init);
  // Both formats hold GPT-2 only: transformers' GPT2LMHeadModel has none of the options, and no
  // transformers class has GPT-2's layout with them (LLaMA's rotary and RMSNorm come with SwiGLU).
  if (!is_gpt2_architecture(lm.config))
    fail("export --format ", format, ": ", lm.source, " has ", architecture_options(lm.config),
         hf ? "; Hugging Face's GPT2LMHeadModel has none of these and no transformers class "
              "matches them"
            : "; an llm.c model file holds GPT-2 only",
         ": keep the finegpt checkpoint (sample and eval read it)");
  if (!hf) {
    if (same_file(o.str("output"), lm.source))
      fail("--output ", o.str("output"), " is the file being exported (", lm.source,
           "); choose another file");
    save_llmc_model(o.str("output"), lm.config, lm.params.data(), dt == "float32" ? 3 : 5);
    std::printf("wrote %s (llm.c version %d)\n", o.str("output").c_str(), dt == "float32" ? 3 : 5);
    return 0;
  }
  const std::string dir = o.str("out");
  check_hf_out(dir, lm.source);
  // The tokenizer given, or the one the model was trained with; a model whose vocabulary is
  // not that tokenizer's (vocab_size = 50304, say) is written without tokenizer files.
  const bool given = !o.str("tokenizer").empty();
  std::unique_ptr<TextEncoder> tok =
      make_encoder(given ? o.str("tokenizer") : model_tokenizer_spec(lm));
  HfTokenizerFiles files;
  std::string why = cat("the model's vocabulary has ", lm.config.vocab_size, " tokens, the ",
                        tok->name(), " tokenizer ", tok->vocab_size());
  FINEGPT_CHECK(!given || tok->vocab_size() == lm.config.vocab_size, "--tokenizer: ", why);
  const bool with_tokenizer =
      tok->vocab_size() == lm.config.vocab_size && hf_tokenizer_files(*tok, files, why);
  save_hf_model(dir, lm.config, lm.params.data(), dt == "float32" ? "F32" : "BF16",
                with_tokenizer ? &files : nullptr);
  std::printf("wrote %s: config.json, model.safetensors (%s)%s\n", dir.c_str(),
              dt == "float32" ? "F32" : "BF16",
              with_tokenizer ? cat(", vocab.json, merges.txt (", tok->name(), " tokenizer)").c_str()
                             : "");
  if (!with_tokenizer) std::printf("note: no tokenizer files (%s)\n", why.c_str());
  if (!lm.config.bias)
    std::printf("note: the model has no biases; they are written as zeros (the same function)\n");
  return 0;
}

} // namespace finegpt
