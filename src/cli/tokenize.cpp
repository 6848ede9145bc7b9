// `finegpt tokenize` (a file's bytes -> token ids on one line) and `finegpt detokenize` (ids ->
// the text's bytes), with the GPT-2 or a char tokenizer. A large file is encoded on several
// threads by cutting it where GPT-2's pre-tokeniser provably restarts (Gpt2Tokenizer::
// safe_split), so the ids do not depend on the thread count. Not `prepare` (no shards, no
// <|endoftext|>).
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/file.h"
#include "core/threads.h"
#include "tokenizer/char_tokenizer.h"
#include "tokenizer/gpt2.h"

#include <charconv>
#include <chrono>
#include <cstdio>
#include <memory>

namespace finegpt {

namespace {

const char *kTokenizeUsage =
    R"(usage: finegpt tokenize FILE... [--tokenizer gpt2|PATH|char:META.json] [--threads N] [--bench]

Prints the token ids of each FILE's bytes on one line, separated by spaces (no <|endoftext|> is
added; the literal text "<|endoftext|>" in a file is ordinary text). The ids equal tiktoken's
gpt2 encode_ordinary of the file's text; bytes that are not valid UTF-8 are read as U+FFFD, as
Python's bytes.decode('utf-8', errors='replace') does.

  --tokenizer gpt2       GPT-2's ranks from $FINEGPT_GPT2_RANKS, else tiktoken's cache, else
                         assets/gpt2.tiktoken beside the finegpt binary (scripts/setup.sh) or
                         share/finegpt/ of an installed one
  --tokenizer PATH       a gpt2.tiktoken rank file (or GPT-2's vocab.bpe)
  --tokenizer char:META  the character vocabulary in META (a meta.json from prepare --tokenizer char)
)";

const char *kDetokenizeUsage =
    R"(usage: finegpt detokenize [FILE|-] [--tokenizer gpt2|PATH|char:META.json]

Reads token ids (integers separated by white space) from FILE, or standard input when FILE is
'-' or missing, and writes the text's bytes to standard output exactly (50256 is written as
"<|endoftext|>"). The inverse of `finegpt tokenize` for valid UTF-8.
)";

std::vector<OptionSpec> tokenizer_option() {
  return {{"tokenizer", "gpt2", "gpt2 | PATH to a rank file | char:META.json"}};
}

// Cuts `text` into pieces of about `target` bytes at GPT-2's safe points, encodes them in
// parallel and concatenates the ids in order.
std::vector<uint16_t> encode_parallel(const Gpt2Tokenizer &tok, std::string_view text,
                                      int threads) {
  std::vector<uint16_t> ids;
  const size_t target = std::max<size_t>(size_t(1) << 20, text.size() / size_t(threads * 8));
  if (threads <= 1 || text.size() < 2 * target) {
    tok.encode(text, ids);
    return ids;
  }
  std::vector<size_t> cuts = {0};
  while (cuts.back() < text.size()) {
    const size_t want = cuts.back() + target;
    cuts.push_back(want >= text.size() ? text.size() : Gpt2Tokenizer::safe_split(text, want));
  }
  const long chunks = long(cuts.size()) - 1;
  std::vector<std::vector<uint16_t>> parts(static_cast<size_t>(chunks));
  std::vector<std::string> errors(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (long c = 0; c < chunks; c++) {
    try {
      tok.encode(text.substr(cuts[size_t(c)], cuts[size_t(c) + 1] - cuts[size_t(c)]),
                 parts[size_t(c)]);
    } catch (const std::exception &e) {
      errors[size_t(c)] = e.what();
    }
  }
  size_t total = 0;
  for (size_t c = 0; c < parts.size(); c++) {
    if (!errors[c].empty()) fail(errors[c]);
    total += parts[c].size();
  }
  ids.reserve(total);
  for (const auto &p : parts)
    ids.insert(ids.end(), p.begin(), p.end());
  return ids;
}

void write_stdout(const char *data, size_t n) {
  if (n && std::fwrite(data, 1, n, stdout) != n) fail("writing to standard output failed");
}

} // namespace

int cmd_tokenize(const Args &args) {
  Options o;
  auto spec = tokenizer_option();
  spec.push_back({"threads", "0", "CPU threads (0 = all cores); the ids do not depend on it"});
  spec.push_back({"bench", "false", "report the encoding's throughput on stderr (JSON)", true});
  if (!o.parse(args, spec, kTokenizeUsage)) return 0;
  if (o.positional().empty()) fail("expected a FILE to tokenize (try: finegpt tokenize --help)");
  const long want_threads = o.integer("threads");
  if (want_threads < 0) fail("--threads ", want_threads, " must be 0 (all cores) or more");
  const int threads = set_threads(int(want_threads));
  const auto encoder = make_encoder(o.str("tokenizer"));
  const auto *gpt2 = dynamic_cast<const Gpt2Tokenizer *>(encoder.get());

  size_t total_bytes = 0, total_tokens = 0;
  double seconds = 0;
  std::string out;
  for (const std::string &path : o.positional()) {
    const std::string text = read_file(path);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<uint16_t> ids;
    try {
      if (gpt2)
        ids = encode_parallel(*gpt2, text, threads);
      else
        encoder->encode(text, ids);
    } catch (const Error &e) {
      fail(path, ": ", e.what());
    }
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    total_bytes += text.size();
    total_tokens += ids.size();
    out.clear();
    out.reserve(ids.size() * 6 + 1);
    char buf[16];
    for (size_t i = 0; i < ids.size(); i++) {
      if (i) out += ' ';
      auto r = std::to_chars(buf, buf + sizeof buf, ids[i]);
      out.append(buf, r.ptr);
    }
    out += '\n';
    write_stdout(out.data(), out.size());
  }
  if (std::fflush(stdout) != 0) fail("writing to standard output failed");
  if (o.flag("bench"))
    std::fprintf(stderr,
                 "{\"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.6f, \"mb_per_s\": %.3f, "
                 "\"threads\": %d, \"tokenizer\": \"%s\"}\n",
                 total_bytes, total_tokens, seconds,
                 seconds > 0 ? double(total_bytes) / seconds / 1e6 : 0.0, threads,
                 encoder->name().c_str());
  return 0;
}

int cmd_detokenize(const Args &args) {
  Options o;
  if (!o.parse(args, tokenizer_option(), kDetokenizeUsage)) return 0;
  if (o.positional().size() > 1)
    fail("expected at most one FILE of ids, got ", o.positional().size(),
         " (try: finegpt detokenize --help)");
  const std::string path = o.positional().empty() ? "-" : o.positional()[0];
  std::string input;
  if (path == "-") {
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0)
      input.append(buf, n);
    if (std::ferror(stdin)) fail("reading standard input failed");
  } else {
    input = read_file(path);
  }
  const std::string where = path == "-" ? "standard input" : path;
  std::vector<int32_t> ids;
  const char *p = input.data(), *end = p + input.size();
  const auto space = [](char c) {
    return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
  };
  while (p < end) {
    while (p < end && space(*p))
      p++;
    if (p == end) break;
    const char *q = p;
    while (q < end && !space(*q))
      q++;
    int64_t v = 0;
    auto r = std::from_chars(p, q, v);
    if (r.ec != std::errc() || r.ptr != q || v < INT32_MIN || v > INT32_MAX)
      fail(where, ": '", std::string(p, size_t(std::min<ptrdiff_t>(q - p, 40))), "' (item ",
           ids.size() + 1, ") is not a token id");
    ids.push_back(int32_t(v));
    p = q;
  }
  const auto encoder = make_encoder(o.str("tokenizer"));
  std::string text;
  try {
    text = encoder->decode(ids.data(), ids.size());
  } catch (const Error &e) {
    fail(where, ": ", e.what());
  }
  write_stdout(text.data(), text.size());
  if (std::fflush(stdout) != 0) fail("writing to standard output failed");
  return 0;
}

} // namespace finegpt
