// finegpt eval: mean loss of a model over the first N tokens of a split or token file, read in
// order (the protocol modded-nanogpt uses with N = 10,485,760); or, with --hellaswag FILE, the
// HellaSwag accuracy llm.c and nanoGPT users report (train/hellaswag.h), with a progress line.
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/file.h"
#include "core/threads.h"
#include "core/units.h"
#include "data/tokens.h"
#include "io/model_load.h"
#include "tokenizer/gpt2.h"
#include "train/engine.h"
#include "train/hellaswag.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unistd.h>

namespace finegpt {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string json_line(const nlohmann::json &j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The progress line on stderr, as prepare's: rewritten in place on a terminal, else one line
// every few seconds.
class HellaswagProgress {
public:
  HellaswagProgress(bool enabled, long total)
      : enabled_(enabled), total_(total), tty_(isatty(STDERR_FILENO) == 1) {}
  ~HellaswagProgress() {
    if (shown_ && tty_) std::fprintf(stderr, "\r\033[K");
  }
  void update(const HellaswagResult &r) {
    if (!enabled_) return;
    const double t = seconds_since(t0_);
    if (r.examples < total_ && t - last_ < (tty_ ? 0.25 : 5.0)) return;
    last_ = t;
    const double rate = double(r.examples) / std::max(t, 1e-9);
    const std::string line =
        cat("hellaswag: ", r.examples, "/", total_, " examples (", 100 * r.examples / total_,
            "%), acc_norm ", fixed4(double(r.correct_norm) / double(r.examples)), ", ",
            fixed1(rate), " examples/s, ETA ", duration_text(double(total_ - r.examples) / rate));
    std::fprintf(stderr, tty_ ? "\r\033[K%s" : "%s\n", line.c_str());
    std::fflush(stderr);
    shown_ = true;
  }

private:
  static std::string fixed4(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.4f", v);
    return b;
  }
  static std::string fixed1(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f", v);
    return b;
  }
  bool enabled_;
  long total_;
  bool tty_, shown_ = false;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
  double last_ = 0;
};

int eval_hellaswag(const Options &o, LoadedModel &lm, const std::string &device) {
  const std::string path = o.str("hellaswag");
  for (const char *flag : {"input", "data_dir", "split", "tokens"})
    FINEGPT_CHECK(!o.given(flag), "--", flag,
                  " does not apply to --hellaswag (it scores the "
                  "endings of the file's examples)");
  // HellaSwag is text: the model must read GPT-2's tokens (nanoGPT's 50304 pads GPT-2's 50257).
  const std::string model_tok = model_tokenizer_spec(lm);
  FINEGPT_CHECK(model_tok == "gpt2", "--hellaswag needs a model of GPT-2's vocabulary; ", lm.source,
                " was trained with a character vocabulary (", lm.config.vocab_size, " tokens, ",
                model_tok.substr(5), ")");
  FINEGPT_CHECK(lm.config.vocab_size >= Gpt2Tokenizer::kVocab,
                "--hellaswag needs a model of GPT-2's vocabulary (50257 tokens); ", lm.source,
                " has ", lm.config.vocab_size);
  const std::string tok_spec = o.str("tokenizer");
  FINEGPT_CHECK(tok_spec.rfind("char:", 0) != 0,
                "--hellaswag scores text with the GPT-2 tokenizer, not '", tok_spec, "'");
  const auto enc = Gpt2Tokenizer::load(Gpt2Tokenizer::locate(tok_spec));
  const int model_block = lm.config.block_size;
  const int block = o.integer("block_size") ? int(o.integer("block_size")) : model_block;
  FINEGPT_CHECK(block > 0 && block <= model_block, "--block_size must be in 1..", model_block);
  const long max_examples = o.integer64("max_examples");
  FINEGPT_CHECK(max_examples >= 0, "--max_examples must be 0 (all) or more");
  const int per_forward = int(o.integer("batch_size"));
  FINEGPT_CHECK(per_forward > 0 && per_forward <= 65536,
                "--batch_size (examples per forward with --hellaswag) must be in 1..65536");
  const std::string scores_path = o.str("scores");
  if (!scores_path.empty()) { // checked now: the file is written after the whole run
    namespace fs = std::filesystem;
    std::error_code ec;
    FINEGPT_CHECK(!same_file(scores_path, path) && !same_file(scores_path, lm.source), "--scores ",
                  scores_path, " is an input of this run");
    FINEGPT_CHECK(!fs::is_directory(scores_path, ec), "--scores ", scores_path, " is a folder");
    const fs::path parent = fs::path(scores_path).parent_path();
    FINEGPT_CHECK(parent.empty() || fs::is_directory(parent, ec), "--scores ", scores_path,
                  ": the folder ", parent.string(), " does not exist");
  }

  const auto t_load = std::chrono::steady_clock::now();
  const std::vector<HellaswagExample> examples = read_hellaswag(path, *enc, max_examples);
  const int T = hellaswag_max_positions(examples, block, path);
  const double load_s = seconds_since(t_load);
  EngineOptions eo;
  eo.backend = device == "cuda" ? Backend::CUDA : Backend::CPU, eo.training = false;
  eo.threads = num_threads();
  auto engine = make_engine(lm.config, kHellaswagEndings * per_forward, T, eo);
  engine->set_params(lm.params.data());
  lm.params = {};
  if (!o.flag("quiet")) {
    std::fprintf(stderr,
                 "hellaswag: %zu examples read and tokenized in %.1f s; scoring on %s, %d per "
                 "forward (%d rows of up to %d positions)\n",
                 examples.size(), load_s, engine->describe().c_str(), per_forward,
                 kHellaswagEndings * per_forward, T);
    std::fflush(stderr);
  }

  const auto t0 = std::chrono::steady_clock::now();
  HellaswagResult r;
  {
    HellaswagProgress bar(!o.flag("quiet"), long(examples.size()));
    r = score_hellaswag(*engine, examples, per_forward, block, path,
                        [&](const HellaswagResult &now) { bar.update(now); });
    engine->synchronize();
  }
  const double secs = seconds_since(t0);
  const double rate = double(r.examples) / std::max(secs, 1e-9);
  const double acc = double(r.correct) / double(r.examples);
  const double acc_norm = double(r.correct_norm) / double(r.examples);

  if (!scores_path.empty())
    write_file_atomic(scores_path, [&](FILE *f) {
      for (const HellaswagScore &s : r.scores) {
        nlohmann::json j = {{"line", s.line},           {"label", s.label},
                            {"pred", s.pred},           {"pred_norm", s.pred_norm},
                            {"tokens", s.tokens},       {"sum_loss", s.sum_loss},
                            {"mean_loss", s.mean_loss}, {"cropped", s.cropped}};
        const std::string line = json_line(j) + "\n";
        write_bytes(f, line.data(), line.size(), scores_path);
      }
    });
  if (o.flag("json")) {
    nlohmann::json j = {{"task", "hellaswag"},
                        {"file", path},
                        {"model", lm.source},
                        {"device", engine->describe()},
                        {"examples", r.examples},
                        {"acc_norm", acc_norm},
                        {"correct_norm", r.correct_norm},
                        {"acc", acc},
                        {"correct", r.correct},
                        {"cropped", r.cropped},
                        {"block_size", block},
                        {"seconds", secs},
                        {"load_seconds", load_s},
                        {"examples_per_s", rate}};
    std::printf("%s\n", json_line(j).c_str());
  } else {
    std::string cropped =
        r.cropped ? cat(", ", r.cropped, " cropped from the left to block_size ", block) : "";
    std::printf("hellaswag %s (%s, %s): %ld examples, acc_norm %.4f (%ld/%ld), acc %.4f "
                "(%ld/%ld)%s; %.1f s, %.1f examples/s\n",
                path.c_str(), lm.source.c_str(), engine->describe().c_str(), r.examples, acc_norm,
                r.correct_norm, r.examples, acc, r.correct, r.examples, cropped.c_str(), secs,
                rate);
  }
  return 0;
}

} // namespace

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
                {"batch_size", "8",
                 "sequences per forward (with --hellaswag: examples, 4 sequences each)"},
                {"block_size", "0",
                 "sequence length (0 = the model's block_size; with --hellaswag longer rows lose "
                 "their first context tokens)"},
                {"hellaswag", "",
                 "a HellaSwag JSONL file (ctx, endings, label per line): its acc_norm and acc"},
                {"max_examples", "0", "with --hellaswag: the first N examples (0 = all)"},
                {"scores", "", "with --hellaswag: write each example's losses to this JSONL file"},
                {"tokenizer", "gpt2", "with --hellaswag: gpt2 or the PATH of GPT-2's rank file"},
                {"json", "false", "print the result as one JSON line", true},
                {"quiet", "false", "with --hellaswag: no progress line", true},
                {"threads", "0", "CPU threads (0 = all cores)"},
                {"device", "cpu", "cpu | cuda"}},
               "usage: finegpt eval [--out_dir=DIR | --init_from=MODEL] [--input=FILE | "
               "--split=val] [--tokens=N]\n       finegpt eval [--out_dir=DIR | "
               "--init_from=MODEL] --hellaswag=FILE.jsonl [--max_examples=N]\n\nMean "
               "cross-entropy over the first N tokens, in order, in batches of batch_size x "
               "block_size (no overlap); or HellaSwag's accuracy as llm.c and nanoGPT report it: "
               "each ending's loss over its own tokens, acc_norm by the mean, acc by the sum."))
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
  if (o.str("hellaswag").empty()) {
    for (const char *flag : {"max_examples", "scores", "tokenizer", "quiet"})
      FINEGPT_CHECK(!o.given(flag), "--", flag, " applies only with --hellaswag=FILE");
  }
  LoadedModel lm = load_model(init == "resume" ? o.str("out_dir") : init);
  if (!o.str("hellaswag").empty()) return eval_hellaswag(o, lm, device);
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
  const double loss = sum / double(steps);
  if (o.flag("json")) {
    nlohmann::json j = {{"model", lm.source}, {"tokens", n}, {"loss", loss}};
    std::printf("%s\n", json_line(j).c_str());
  } else {
    std::printf("eval %s: %llu tokens, loss %.6f\n", lm.source.c_str(), (unsigned long long)n,
                loss);
  }
  return 0;
}

} // namespace finegpt
