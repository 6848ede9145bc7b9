// finegpt eval: mean loss of a model over the first N tokens of a split or token file, read in
// order (the protocol modded-nanogpt uses with N = 10,485,760).
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/threads.h"
#include "data/tokens.h"
#include "io/model_load.h"
#include "train/engine.h"

#include <cstdio>

namespace finegpt {

int cmd_eval(const Args &args) {
  Options o;
  if (!o.parse(args,
               {{"out_dir", "out", "folder with ckpt.bin"},
                {"init_from", "resume",
                 "'resume' (out_dir/ckpt.bin), a model file, a Hugging Face folder or 'gpt2'"},
                {"input", "", "a token file (llm.c shard or raw uint16); default: the split"},
                {"data_dir", "", "folder of the split (default: the checkpoint's data folder)"},
                {"split", "val", "'val' or 'train'"},
                {"tokens", "10485760", "evaluate the first N tokens (0 = all whole batches)"},
                {"batch_size", "8", "sequences per forward"},
                {"block_size", "0", "sequence length (0 = the model's block_size)"},
                {"threads", "0", "CPU threads (0 = all cores)"},
                {"device", "cpu", "cpu | cuda"}},
               "usage: finegpt eval [--out_dir=DIR | --init_from=MODEL] [--input=FILE | "
               "--split=val] [--tokens=N]\n\nMean cross-entropy over the first N tokens, in "
               "order, in batches of batch_size x block_size (no overlap)."))
    return 0;
  if (!o.positional().empty()) fail("unexpected argument '", o.positional()[0], "'");
  FINEGPT_CHECK(o.integer("threads") >= 0, "--threads must be 0 (all cores) or more");
  set_threads(int(o.integer("threads")));
  const int B = int(o.integer("batch_size"));
  FINEGPT_CHECK(B > 0, "--batch_size must be positive");
  const std::string init = o.str("init_from");
  const std::string device = o.str("device");
  FINEGPT_CHECK(device == "cpu" || device == "cuda", "--device must be cpu or cuda (got '", device,
                "')");
  LoadedModel lm = load_model(init == "resume" ? o.str("out_dir") : init);
  const int block = lm.config.block_size;
  const int T = o.integer("block_size") ? int(o.integer("block_size")) : block;
  FINEGPT_CHECK(T > 0 && T <= block, "--block_size must be in 1..", block);
  std::vector<std::string> files;
  if (!o.str("input").empty()) {
    files = {o.str("input")};
  } else {
    std::string dir = o.str("data_dir").empty() ? lm.data_dir : o.str("data_dir");
    FINEGPT_CHECK(!dir.empty(), "no data folder known for this model: give --input or --data_dir");
    files = find_split_files(dir, o.str("split"));
  }
  TokenDataset data(files);
  FINEGPT_CHECK(data.max_token() < lm.config.vocab_size, files[0], ": token id ", data.max_token(),
                " is outside the model's vocabulary");
  const long want = o.integer64("tokens");
  FINEGPT_CHECK(want >= 0, "--tokens must be >= 0");
  const uint64_t per_batch = uint64_t(B) * T;
  const uint64_t avail = data.size() - 1;
  const uint64_t n = want ? uint64_t(want) : avail / per_batch * per_batch;
  FINEGPT_CHECK(n <= avail, "--tokens ", n, " is more than the ", avail, " tokens available");
  FINEGPT_CHECK(n >= per_batch && n % per_batch == 0, "--tokens (", n,
                ") must be a positive multiple of batch_size x block_size (", per_batch, ")");
  EngineOptions eo;
  eo.backend = device == "cuda" ? Backend::CUDA : Backend::CPU, eo.training = false;
  auto engine = make_engine(lm.config, B, T, eo);
  engine->set_params(lm.params.data());
  lm.params = {};
  std::vector<int32_t> x(per_batch), y(per_batch), buf(per_batch + 1);
  double sum = 0.0;
  const uint64_t steps = n / per_batch;
  for (uint64_t s = 0; s < steps; ++s) {
    data.read(s * per_batch, per_batch + 1, buf.data());
    std::copy(buf.begin(), buf.end() - 1, x.begin());
    std::copy(buf.begin() + 1, buf.end(), y.begin());
    sum += engine->forward(x.data(), y.data(), B, T);
  }
  std::printf("eval %s: %llu tokens, loss %.6f\n", lm.source.c_str(), (unsigned long long)n,
              sum / double(steps));
  return 0;
}

} // namespace finegpt
