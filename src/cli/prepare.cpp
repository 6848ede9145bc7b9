// `finegpt prepare`: text files -> llm.c token shards + meta.json. This build does the
// character-level tokenizer only (nanoGPT's shakespeare_char prepare.py: vocabulary = sorted
// characters, first (1 - val_fraction) of the characters train, the rest val). Text is taken
// byte-exact: unlike Python's text mode, "\r\n" is not turned into "\n". GPT-2 BPE and the
// FineWeb sources (parquet, arrow, jsonl) come in their own issue.
#include "cli/commands.h"
#include "core/error.h"
#include "core/file.h"
#include "data/tokens.h"
#include "tokenizer/char_tokenizer.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace finegpt {

namespace {

const char *kUsage =
    R"(usage: finegpt prepare --tokenizer char --input FILE... --out DIR [--name NAME]
                       [--val-fraction F]

Tokenizes text files (UTF-8, concatenated in the order given) into llm.c token shards.

  --tokenizer char     character-level vocabulary: the sorted set of characters of the input
                       (nanoGPT's shakespeare_char). 'gpt2' is not in this build yet.
  --input FILE...      one or more text files
  --out DIR            output folder (created if missing)
  --name NAME          shard name prefix (default: the last component of DIR)
  --val-fraction F     the last F of the characters become the val split (default 0.1)

Writes DIR/NAME_val_000000.bin, DIR/NAME_train_000001.bin and DIR/meta.json.
)";

struct Options {
  std::string tokenizer = "gpt2";
  std::vector<std::string> inputs;
  std::string out, name;
  double val_fraction = 0.1;
  bool help = false;
};

double parse_fraction(const std::string &s) {
  char *end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || errno != 0 || !(v > 0.0 && v < 1.0))
    fail("--val-fraction '", s, "' must be a number between 0 and 1 (exclusive), like 0.1");
  return v;
}

Options parse(const Args &args) {
  Options o;
  bool have_input = false;
  for (size_t i = 0; i < args.size(); i++) {
    std::string flag = args[i], value;
    bool inline_value = false;
    if (flag.rfind("--", 0) == 0) {
      if (auto eq = flag.find('='); eq != std::string::npos) {
        value = flag.substr(eq + 1), flag = flag.substr(0, eq), inline_value = true;
      }
    }
    auto take = [&]() -> std::string {
      if (inline_value) return value;
      if (i + 1 >= args.size() || args[i + 1].rfind("--", 0) == 0)
        fail(flag, " needs a value (try: finegpt prepare --help)");
      return args[++i];
    };
    if (flag == "--help" || flag == "-h") {
      o.help = true;
    } else if (flag == "--tokenizer") {
      o.tokenizer = take();
    } else if (flag == "--input") {
      have_input = true;
      if (inline_value) o.inputs.push_back(value);
      while (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0)
        o.inputs.push_back(args[++i]);
      if (o.inputs.empty()) fail("--input needs at least one text file");
    } else if (flag == "--out") {
      o.out = take();
    } else if (flag == "--name") {
      o.name = take();
    } else if (flag == "--val-fraction") {
      o.val_fraction = parse_fraction(take());
    } else if (flag.rfind("-", 0) == 0) {
      fail("unknown option '", flag, "' (try: finegpt prepare --help)");
    } else {
      fail("unexpected argument '", flag,
           "' (input files follow --input; try: finegpt prepare "
           "--help)");
    }
  }
  if (o.help) return o;
  if (o.tokenizer == "gpt2")
    fail("the GPT-2 tokenizer is not in this build yet; use --tokenizer char");
  if (o.tokenizer != "char") fail("--tokenizer '", o.tokenizer, "' is not one of: char, gpt2");
  if (!have_input) fail("missing --input (the text files to tokenize)");
  if (o.out.empty()) fail("missing --out (the folder to write the shards to)");
  if (o.name.empty()) {
    auto p = std::filesystem::absolute(o.out).lexically_normal();
    if (!p.has_filename()) p = p.parent_path(); // "dir/" -> "dir"
    o.name = p.filename().string();
    if (o.name.empty()) fail("cannot take a shard name from --out '", o.out, "'; give --name");
  }
  if (o.name.find('/') != std::string::npos) fail("--name '", o.name, "' must not contain '/'");
  return o;
}

// Shards of another dataset in DIR would be read together with ours (find_split_files takes
// every *_train_*.bin); refuse rather than mix them.
void check_no_foreign_shards(const std::string &dir, const std::vector<std::string> &ours) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  for (const char *split : {"train", "val"}) {
    std::vector<std::string> found;
    try {
      found = find_split_files(dir, split);
    } catch (const Error &) {
      continue; // none
    }
    for (const auto &f : found) {
      std::string base = fs::path(f).filename().string();
      if (std::find(ours.begin(), ours.end(), base) == ours.end())
        fail(dir, ": already holds ", base,
             ", which would be read with the new shards; remove "
             "it or choose another --out");
    }
  }
}

} // namespace

int cmd_prepare(const Args &args) {
  Options o = parse(args);
  if (o.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }

  // Read and check everything before the first byte is written.
  std::string text;
  for (const auto &path : o.inputs) {
    if (!file_exists(path)) fail("--input ", path, ": no such file");
    if (std::filesystem::is_directory(path))
      fail("--input ", path, ": is a folder, not a text file");
    std::string part = read_file(path);
    try {
      utf8_decode(part);
    } catch (const Error &e) {
      fail(path, ": ", e.what());
    }
    text += part;
  }
  if (text.empty())
    fail(o.inputs.size() == 1 ? o.inputs[0] + ": input is empty"
                              : std::string("the input files are all empty"));
  CharTokenizer tok = CharTokenizer::from_text(text);
  std::vector<uint16_t> ids = tok.encode(text);

  // nanoGPT: n = len(data); train = data[:int(n*0.9)], val = data[int(n*0.9):].
  const size_t n = ids.size();
  const size_t n_train = size_t(std::floor(double(n) * (1.0 - o.val_fraction)));
  if (n_train == 0 || n_train == n)
    fail("the input has ", n, " characters, too few to split with --val-fraction ", o.val_fraction,
         " (both train and val need at least one)");

  const std::string val_name = o.name + "_val_000000.bin";
  const std::string train_name = o.name + "_train_000001.bin";
  check_no_foreign_shards(o.out, {val_name, train_name});
  make_dirs(o.out);
  namespace fs = std::filesystem;
  const std::string val_path = (fs::path(o.out) / val_name).string();
  const std::string train_path = (fs::path(o.out) / train_name).string();
  const std::string meta_path = (fs::path(o.out) / "meta.json").string();
  std::vector<std::string> written;
  try {
    write_shard(val_path, ids.data() + n_train, n - n_train);
    written.push_back(val_path);
    write_shard(train_path, ids.data(), n_train);
    written.push_back(train_path);
    tok.save(meta_path); // last: its presence says the folder is complete
  } catch (...) {
    for (const auto &p : written)
      std::remove(p.c_str());
    throw;
  }

  std::printf("prepare: %zu characters from %zu file%s, vocab size %d\n", n, o.inputs.size(),
              o.inputs.size() == 1 ? "" : "s", tok.vocab_size());
  std::printf("  train: %zu tokens -> %s\n", n_train, train_path.c_str());
  std::printf("  val:   %zu tokens -> %s\n", n - n_train, val_path.c_str());
  std::printf("  meta:  %s\n", meta_path.c_str());
  return 0;
}

} // namespace finegpt
