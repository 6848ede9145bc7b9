// finegpt sample: nanoGPT's sample.py options, with a KV cache.
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/file.h"
#include "io/model_load.h"
#include "model/generate.h"
#include "tokenizer/encoder.h"
#include "train/engine.h"

#include <cmath>
#include <cstdio>

namespace finegpt {

int cmd_sample(const Args &args) {
  Options o;
  if (!o.parse(args,
               {{"out_dir", "out", "folder with ckpt.bin (as nanoGPT's sample.py)"},
                {"init_from", "resume",
                 "'resume' (out_dir/ckpt.bin), a model file, a Hugging Face folder or 'gpt2'"},
                {"start", "\n", "start text, or FILE:path to read it from a file"},
                {"num_samples", "10", "number of samples"},
                {"max_new_tokens", "500", "tokens generated per sample"},
                {"temperature", "0.8", "1.0 = no change, < 1.0 = less random"},
                {"top_k", "200", "keep only the top_k most likely tokens (0 = all)"},
                {"seed", "1337", "random seed"},
                {"tokenizer", "",
                 "gpt2 | PATH to a rank file | char:META.json | hf:DIR (default: a Hugging "
                 "Face folder's own files, the training data's meta.json, else GPT-2)"},
                {"threads", "0", "CPU threads (0 = all cores)"},
                {"device", "cpu", "cpu | cuda"},
                {"dtype", "float32", "accepted for nanoGPT compatibility"},
                {"compile", "false", "accepted for nanoGPT compatibility"}},
               "usage: finegpt sample [--out_dir=DIR | --init_from=MODEL] [--start=TEXT|FILE:path] "
               "[options]\n\nGenerates text from a trained model, like nanoGPT's sample.py."))
    return 0;
  if (!o.positional().empty()) fail("unexpected argument '", o.positional()[0], "'");
  o.threads();
  const std::string init = o.str("init_from");
  const std::string device = o.str("device");
  FINEGPT_CHECK(device == "cpu" || device == "cuda", "--device must be cpu or cuda (got '", device,
                "')");
  LoadedModel lm = load_model(init == "resume" ? o.str("out_dir") : init);
  // An HF folder's own tokenizer files; nanoGPT's choice: the dataset's own vocabulary when it
  // has one, else GPT-2's.
  std::string spec = o.str("tokenizer");
  if (spec.empty()) spec = model_tokenizer_spec(lm);
  std::unique_ptr<TextEncoder> enc = make_encoder(spec);
  const TextEncoder &tok = *enc;
  FINEGPT_CHECK(tok.vocab_size() == lm.config.vocab_size, "the ", tok.name(), " tokenizer has ",
                tok.vocab_size(), " tokens but the model was trained on ", lm.config.vocab_size,
                " (give --tokenizer)");
  std::string start = o.str("start");
  if (start.rfind("FILE:", 0) == 0) start = read_file(start.substr(5));
  std::vector<uint16_t> ids16;
  tok.encode(start, ids16);
  std::vector<int32_t> prompt(ids16.begin(), ids16.end());
  const long S = o.integer("num_samples"), n = o.integer("max_new_tokens");
  FINEGPT_CHECK(S > 0, "--num_samples must be positive");
  FINEGPT_CHECK(n >= 0, "--max_new_tokens must be >= 0");
  SampleOptions opt{int(n), float(o.real("temperature")), int(o.integer("top_k"))};
  FINEGPT_CHECK(opt.temperature > 0 && std::isfinite(opt.temperature),
                "--temperature must be a positive number");
  FINEGPT_CHECK(opt.top_k >= 0, "--top_k must be >= 0");
  Rng rng(uint64_t(o.integer64("seed")));
  EngineOptions eo;
  eo.backend = device == "cuda" ? Backend::CUDA : Backend::CPU, eo.training = false;
  auto engine = make_engine(lm.config, 1, 1, eo); // the generator has its own activations
  engine->set_params(lm.params.data());
  lm.params = {};
  auto gen = engine->generator(int(S));
  const auto outs = generate(*gen, int(S), lm.config.vocab_size, prompt, opt, rng);
  for (const auto &seq : outs) {
    std::string text = start + tok.decode(seq.data(), seq.size());
    std::printf("%s\n---------------\n", text.c_str());
  }
  return 0;
}

} // namespace finegpt
