// finegpt export: a checkpoint as an llm.c model file (fp32 version 3 or bf16 version 5).
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/file.h"
#include "io/checkpoint.h"
#include "io/model_load.h"

#include <cstdio>

namespace finegpt {

int cmd_export(const Args &args) {
  Options o;
  if (!o.parse(args,
               {{"out_dir", "out", "folder with ckpt.bin"},
                {"init_from", "resume", "'resume' (out_dir/ckpt.bin) or a model file path"},
                {"format", "llmc", "output format: llmc"},
                {"dtype", "float32", "float32 (llm.c version 3) or bfloat16 (version 5)"},
                {"output", "", "the file to write (required)"}},
               "usage: finegpt export --output=FILE [--out_dir=DIR] [--dtype=float32|bfloat16]"))
    return 0;
  if (!o.positional().empty()) fail("unexpected argument '", o.positional()[0], "'");
  FINEGPT_CHECK(o.str("format") == "llmc", "--format: '", o.str("format"),
                "' is not supported (llmc)");
  FINEGPT_CHECK(!o.str("output").empty(), "--output: give the file to write");
  const std::string dt = o.str("dtype");
  FINEGPT_CHECK(dt == "float32" || dt == "bfloat16", "--dtype: expected float32 or bfloat16, got '",
                dt, "'");
  const std::string init = o.str("init_from");
  LoadedModel lm = load_model(init == "resume" ? o.str("out_dir") : init);
  if (same_file(o.str("output"), lm.source))
    fail("--output ", o.str("output"), " is the file being exported (", lm.source,
         "); choose another file");
  save_llmc_model(o.str("output"), lm.config, lm.params.data(), dt == "float32" ? 3 : 5);
  std::printf("wrote %s (llm.c version %d)\n", o.str("output").c_str(), dt == "float32" ? 3 : 5);
  return 0;
}

} // namespace finegpt
