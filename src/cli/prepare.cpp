// `finegpt prepare`: the command line of data/prepare.h -- flags, the summary on stdout. The
// reading, tokenizing and writing are in src/data (sources.h, prepare.h).
#include "data/prepare.h"
#include "cli/commands.h"
#include "core/error.h"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

namespace finegpt {

namespace {

const char *kUsage =
    R"(usage: finegpt prepare --input PATH... [--out DIR] [--name NAME] [--tokenizer gpt2|char|FILE]
                       [options]

Reads documents and writes llm.c token shards (256 x int32 header, uint16 tokens) and meta.json.

Inputs (files or folders, read in the order given; a folder's files sorted by name):
  Parquet (.parquet)           the --text-column column; any compression Arrow reads
  Arrow IPC (.arrow)           e.g. a datasets save_to_disk folder (read in state.json's order;
                               a DatasetDict folder: its 'train' split) or cache folder
  JSONL (.jsonl, .ndjson)      one JSON object per line, the --text-field field; .gz and .zst too
  text (.txt, .md, other)      one document per file, or split by --doc-separator
  hub:ORG/NAME[/CONFIG]        a Hugging Face hub dataset's Parquet files (like
                               hub:HuggingFaceFW/fineweb/sample-10BT), downloaded a few files
                               ahead of the tokenizer into DIR/.hub-download and deleted once
                               read ($HF_ENDPOINT, $HF_TOKEN; see finegpt download)

Output (--tokenizer gpt2 or a tiktoken rank file), as llm.c's fineweb.py writes it: each
document is <|endoftext|> then its tokens; shards of --shard-tokens tokens (a document may
straddle two); NAME_val_000000.bin first (the validation split), then NAME_train_000001.bin ...
Output (--tokenizer char), as nanoGPT's shakespeare_char: the vocabulary is the sorted set of
the characters of all the text; the first 1 - F of it NAME_train_000001.bin, the rest
NAME_val_000000.bin; meta.json holds the vocabulary (itos).

  --input PATH...        files or folders
  --out DIR              output folder (default data/NAME, where `finegpt train` looks for
                         dataset='NAME')
  --name NAME            shard name prefix (default: the last component of DIR)
  --tokenizer T          gpt2 (default; the rank file from $FINEGPT_GPT2_RANKS, tiktoken's cache
                         or the binary's assets/ or ../share/finegpt/), a path to
                         gpt2.tiktoken, or char
  --text-column C        Parquet/Arrow column (default text)
  --text-field F         JSONL field (default text)
  --doc-separator S      split text files into documents at S (\n, \t, \\ understood)
  --shard-tokens N       tokens per shard (default 100000000; k, M, G suffixes)
  --val-tokens N         the val shard is the first N tokens (default: a whole shard)
  --val-fraction F       char: the last F of the characters are val (default 0.1)
  --threads N            threads (default: all cores, or OMP_NUM_THREADS)
  --max-tokens N         stop after N tokens
  --max-docs N           stop after N documents
  --overwrite            replace the shards already in DIR (default: continue an interrupted
                         run with the same arguments; refuse shards of another run)
  --quiet                no progress line

An interrupted run continues where its last finished shard ended when run again with the same
arguments; the result is the same, byte for byte. Empty documents and non-text values (null)
are skipped and counted; documents that are not valid UTF-8 are tokenized and counted.
)";

uint64_t parse_count(const std::string &flag, const std::string &s) {
  char *end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  double mult = 1;
  std::string suffix = end ? std::string(end) : "";
  if (suffix == "k" || suffix == "K")
    mult = 1e3;
  else if (suffix == "M")
    mult = 1e6;
  else if (suffix == "G")
    mult = 1e9;
  else if (!suffix.empty())
    mult = -1;
  v *= mult;
  if (s.empty() || end == s.c_str() || errno != 0 || mult < 0 || !(v >= 0) || v > 9e18 ||
      v != double(uint64_t(v)))
    fail(flag, " '", s, "' must be a whole number (like 100000000, 100M or 1e8)");
  return uint64_t(v);
}

double parse_fraction(const std::string &s) {
  char *end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || errno != 0 || !(v > 0.0 && v < 1.0))
    fail("--val-fraction '", s, "' must be a number between 0 and 1 (exclusive), like 0.1");
  return v;
}

std::string unescape(const std::string &s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    char c = s[++i];
    out += c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c == '0' ? '\0' : c;
  }
  return out;
}

struct Parsed {
  PrepareOptions opt;
  bool help = false, char_only_given = false, llmc_only_given = false;
};

Parsed parse(const Args &args) {
  Parsed p;
  PrepareOptions &o = p.opt;
  bool have_input = false;
  std::map<std::string, std::string> seen; // flag -> value, for flags given twice
  for (size_t i = 0; i < args.size(); i++) {
    std::string flag = args[i], value;
    bool inline_value = false;
    if (flag.rfind("--", 0) == 0) {
      if (auto eq = flag.find('='); eq != std::string::npos) {
        value = flag.substr(eq + 1), flag = flag.substr(0, eq), inline_value = true;
      }
    }
    auto take = [&]() -> std::string {
      if (!inline_value) {
        if (i + 1 >= args.size() || args[i + 1].rfind("--", 0) == 0)
          fail(flag, " needs a value (try: finegpt prepare --help)");
        value = args[++i];
      }
      // A flag given twice with different values is a mistake, not "the last one wins".
      auto [it, fresh] = seen.emplace(flag, value);
      if (!fresh && it->second != value)
        fail(flag, " is given twice, as '", it->second, "' and as '", value, "'; give it once");
      return value;
    };
    if (flag == "--help" || flag == "-h") {
      p.help = true;
    } else if (flag == "--tokenizer") {
      o.tokenizer = take();
    } else if (flag == "--input") {
      have_input = true;
      if (inline_value) o.inputs.push_back(value);
      while (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0)
        o.inputs.push_back(args[++i]);
      if (o.inputs.empty()) fail("--input needs at least one file or folder");
    } else if (flag == "--out") {
      o.out = take();
    } else if (flag == "--name") {
      o.name = take();
    } else if (flag == "--text-column") {
      o.source.text_column = take();
    } else if (flag == "--text-field") {
      o.source.text_field = take();
    } else if (flag == "--doc-separator") {
      o.source.doc_separator = unescape(take());
      if (o.source.doc_separator.empty()) fail("--doc-separator must not be empty");
    } else if (flag == "--shard-tokens") {
      o.shard_tokens = parse_count(flag, take());
      p.llmc_only_given = true;
    } else if (flag == "--val-tokens") {
      o.val_tokens = parse_count(flag, take());
      p.llmc_only_given = true;
    } else if (flag == "--val-fraction") {
      o.val_fraction = parse_fraction(take());
      p.char_only_given = true;
    } else if (flag == "--threads") {
      const uint64_t threads = parse_count(flag, take());
      if (threads > 65536) fail("--threads ", threads, " is past any machine (0 = all cores)");
      o.threads = int(threads);
    } else if (flag == "--max-tokens") {
      o.max_tokens = parse_count(flag, take());
      if (o.max_tokens == 0) fail("--max-tokens must be at least 1 (leave it out for no limit)");
    } else if (flag == "--max-docs") {
      o.max_docs = parse_count(flag, take());
      if (o.max_docs == 0) fail("--max-docs must be at least 1 (leave it out for no limit)");
    } else if (flag == "--overwrite") {
      o.overwrite = true;
    } else if (flag == "--quiet") {
      o.progress = false;
    } else if (flag.rfind("-", 0) == 0) {
      fail("unknown option '", flag, "' (try: finegpt prepare --help)");
    } else {
      fail("unexpected argument '", flag,
           "' (input files follow --input; try: finegpt prepare --help)");
    }
  }
  if (p.help) return p;
  if (!have_input) fail("missing --input (the files or folders to tokenize)");
  if (o.out.empty()) {
    if (o.name.empty()) fail("missing --out (the folder to write the shards to) or --name");
    o.out = "data/" + o.name;
  }
  const bool is_char = o.tokenizer == "char";
  if (is_char && p.llmc_only_given)
    fail("--shard-tokens and --val-tokens do not apply to --tokenizer char (one train and one "
         "val file, split by --val-fraction)");
  if (!is_char && p.char_only_given)
    fail("--val-fraction applies to --tokenizer char only (use --val-tokens)");
  return p;
}

} // namespace

int cmd_prepare(const Args &args) {
  Parsed p = parse(args);
  if (p.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  // A write past RLIMIT_FSIZE then fails with EFBIG (reported) instead of killing us.
  std::signal(SIGXFSZ, SIG_IGN);
  const PrepareOptions &o = p.opt;
  const auto t0 = std::chrono::steady_clock::now();
  // A run that fails before it writes a shard leaves no empty --out folder behind (remove()
  // takes a folder only when it is empty).
  std::error_code ec;
  const bool out_existed =
      std::filesystem::exists(o.out, ec) || std::filesystem::is_symlink(o.out, ec);
  PrepareStats s;
  try {
    s = prepare_dataset(o);
  } catch (...) {
    if (!out_existed) std::filesystem::remove(o.out, ec);
    throw;
  }
  const bool is_char = o.tokenizer == "char";
  const std::string out = o.out;
  if (s.already_complete) {
    std::printf("prepare: %s is already complete (%zu shards, %llu tokens); nothing to do\n",
                out.c_str(), s.shard_files.size(), (unsigned long long)s.tokens);
    return 0;
  }
  const auto u = [](uint64_t v) { return (unsigned long long)v; };
  if (s.resumed_shards)
    std::printf("prepare: continued an interrupted run after its %zu finished shard%s\n",
                s.resumed_shards, s.resumed_shards == 1 ? "" : "s");
  if (is_char) {
    std::printf("prepare: %llu characters from %llu documents, vocab size %d\n", u(s.tokens),
                u(s.documents), s.vocab_size);
    std::printf("  train: %llu tokens -> %s/%s\n", u(s.shard_tokens[0]), out.c_str(),
                s.shard_files[0].c_str());
    if (s.shard_files.size() > 1)
      std::printf("  val:   %llu tokens -> %s/%s\n", u(s.shard_tokens[1]), out.c_str(),
                  s.shard_files[1].c_str());
  } else {
    std::printf("prepare: %llu documents, %llu tokens (vocab size %d)\n", u(s.documents),
                u(s.tokens), s.vocab_size);
    std::printf("  val:   %llu tokens -> %s/%s\n", u(s.shard_tokens[0]), out.c_str(),
                s.shard_files[0].c_str());
    if (s.shard_files.size() > 1) {
      uint64_t train = 0;
      for (size_t k = 1; k < s.shard_tokens.size(); k++)
        train += s.shard_tokens[k];
      std::printf("  train: %llu tokens in %zu shard%s -> %s/%s%s\n", u(train),
                  s.shard_files.size() - 1, s.shard_files.size() == 2 ? "" : "s", out.c_str(),
                  s.shard_files[1].c_str(), s.shard_files.size() > 2 ? " ..." : "");
    } else {
      std::printf("  train: none: every token went to the val split (%s %llu); finegpt train "
                  "needs a train shard: give a smaller --val-tokens%s\n",
                  o.val_tokens ? "--val-tokens" : "a whole shard of --shard-tokens",
                  u(o.val_tokens ? o.val_tokens : o.shard_tokens),
                  o.val_tokens ? "" : " or --shard-tokens");
      std::fprintf(stderr, "prepare: warning: no train shard written (all %llu tokens are val)\n",
                   u(s.tokens));
    }
  }
  std::printf("  skipped: %llu empty, %llu not text; %llu documents with invalid UTF-8 "
              "(tokenized; the tokenizer's policy applies)\n",
              u(s.empty), u(s.not_text), u(s.invalid_utf8));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("  time:  %.1f s, %.1f MB/s of text\n", secs, double(s.text_bytes) / 1e6 / secs);
  std::printf("  meta:  %s/meta.json\n", out.c_str());
  return 0;
}

} // namespace finegpt
