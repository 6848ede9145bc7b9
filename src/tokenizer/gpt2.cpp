// The GPT-2 tokenizer (gpt2.h): reading tiktoken rank files and GPT-2's data-gym vocab.bpe,
// checking that they hold gpt2's ranks, finding them (including tiktoken's own cache), and
// encode/decode on top of the pre-tokeniser (pretokenize.h) and the merges (bpe.h).
#include "tokenizer/gpt2.h"

#include "core/digest.h"
#include "core/error.h"
#include "core/file.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenize.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <map>

namespace finegpt {

struct Gpt2Tokenizer::Impl {
  bpe::RankTable ranks;
  std::string identity, path;
};

namespace {

constexpr const char *kR50kUrl = "https://openaipublic.blob.core.windows.net/encodings/"
                                 "r50k_base.tiktoken";
constexpr const char *kVocabBpeUrl =
    "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe";

const char *kBase64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Strict RFC 4648 base64 with padding; false on any other character or a bad length.
bool base64_decode(std::string_view in, std::string &out) {
  static const auto table = [] {
    std::array<int8_t, 256> t;
    t.fill(-1);
    for (int i = 0; i < 64; i++)
      t[uint8_t(kBase64[i])] = int8_t(i);
    return t;
  }();
  out.clear();
  if (in.empty() || in.size() % 4 != 0) return false;
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    int pad = 0;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
      const uint8_t c = uint8_t(in[i + k]);
      int d = table[c];
      if (c == '=' && last && k >= 2 && (k == 3 || in[i + 3] == '=')) {
        pad++, d = 0;
      } else if (d < 0 || pad) {
        return false;
      }
      v = v << 6 | uint32_t(d);
    }
    out += char(v >> 16);
    if (pad < 2) out += char(v >> 8 & 0xFF);
    if (pad < 1) out += char(v & 0xFF);
  }
  return true;
}

std::string base64_encode(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    const size_t n = std::min<size_t>(3, in.size() - i);
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (n > 1) v |= uint32_t(uint8_t(in[i + 1])) << 8;
    if (n > 2) v |= uint32_t(uint8_t(in[i + 2]));
    out += kBase64[v >> 18];
    out += kBase64[v >> 12 & 63];
    out += n > 1 ? kBase64[v >> 6 & 63] : '=';
    out += n > 2 ? kBase64[v & 63] : '=';
  }
  return out;
}

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

// Splits a line on runs of blanks, as Python's str.split() does for these files.
std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_blank(line[i]))
      i++;
    size_t j = i;
    while (j < line.size() && !is_blank(line[j]))
      j++;
    if (j > i) out.push_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

// Records `bytes` at `rank`; Error naming the place on a rank out of range or given twice.
void put(std::vector<std::string> &tokens, long rank, std::string bytes, const std::string &where) {
  if (rank < 0 || rank >= Gpt2Tokenizer::kEndOfText)
    fail(where, ": rank ", rank, " is out of range (GPT-2 ranks are 0..",
         Gpt2Tokenizer::kEndOfText - 1, "; ", Gpt2Tokenizer::kEndOfText, " is <|endoftext|>)");
  if (bytes.empty()) fail(where, ": a token of no bytes");
  if (size_t(rank) >= tokens.size()) tokens.resize(size_t(rank) + 1);
  if (!tokens[size_t(rank)].empty()) fail(where, ": rank ", rank, " is given twice");
  tokens[size_t(rank)] = std::move(bytes);
}

// tiktoken's format: "base64(bytes) rank" per line; blank lines are skipped (as tiktoken does).
std::vector<std::string> parse_tiktoken(const std::string &path, std::string_view data) {
  std::vector<std::string> tokens;
  size_t line_no = 0, pos = 0;
  std::string bytes;
  while (pos < data.size()) {
    size_t eol = data.find('\n', pos);
    if (eol == std::string_view::npos) eol = data.size();
    const std::string_view line = data.substr(pos, eol - pos);
    pos = eol + 1;
    line_no++;
    const auto f = fields(line);
    if (f.empty()) continue;
    const std::string where = cat(path, ":", line_no);
    if (f.size() != 2)
      fail(where, ": expected \"base64(bytes) rank\", got ", f.size(), " field",
           f.size() == 1 ? "" : "s", " (is this a tiktoken rank file?)");
    if (!base64_decode(f[0], bytes))
      fail(where, ": '", std::string(f[0].substr(0, 40)), "' is not valid base64");
    long rank = -1;
    auto [end, ec] = std::from_chars(f[1].data(), f[1].data() + f[1].size(), rank);
    if (ec != std::errc() || end != f[1].data() + f[1].size())
      fail(where, ": rank '", std::string(f[1].substr(0, 40)), "' is not a whole number");
    put(tokens, rank, bytes, where);
  }
  return tokens;
}

// GPT-2's vocab.bpe: "#version..." then "first second" merges; ranks as tiktoken derives them:
// the 256 single bytes first (printable Latin-1 bytes in order, then the rest), then each merge
// in file order. Bytes are written as GPT-2's printable stand-in characters.
std::vector<std::string> parse_data_gym(const std::string &path, std::string_view data) {
  std::vector<uint8_t> rank_to_byte;
  std::map<char32_t, uint8_t> char_to_byte;
  for (int b = 0; b < 256; b++)
    if (gpt2_byte_char(uint8_t(b)) < 256) rank_to_byte.push_back(uint8_t(b));
  for (int b = 0; b < 256; b++) {
    if (gpt2_byte_char(uint8_t(b)) >= 256) rank_to_byte.push_back(uint8_t(b));
    char_to_byte[gpt2_byte_char(uint8_t(b))] = uint8_t(b);
  }
  std::vector<std::string> tokens;
  for (size_t r = 0; r < 256; r++)
    tokens.push_back(std::string(1, char(rank_to_byte[r])));
  // tiktoken takes contents.split("\n")[1:-1]: the first line and what follows the last "\n"
  // are not merges.
  std::vector<std::string_view> lines;
  for (size_t pos = 0;;) {
    size_t eol = data.find('\n', pos);
    if (eol == std::string_view::npos) {
      lines.push_back(data.substr(pos));
      break;
    }
    lines.push_back(data.substr(pos, eol - pos));
    pos = eol + 1;
  }
  const auto decode_field = [&](std::string_view s, const std::string &where) {
    std::string out;
    const auto *p = reinterpret_cast<const uint8_t *>(s.data());
    if (pretok::utf8_valid_prefix(p, s.size()) != s.size()) fail(where, ": not UTF-8");
    for (size_t i = 0; i < s.size();) {
      int len;
      const char32_t c = pretok::decode(p + i, len);
      auto it = char_to_byte.find(c);
      if (it == char_to_byte.end())
        fail(where, ": character U+", std::hex, uint32_t(c),
             " is not one of GPT-2's byte stand-ins");
      out += char(it->second);
      i += size_t(len);
    }
    return out;
  };
  for (size_t i = 1; i + 1 < lines.size(); i++) {
    const std::string where = cat(path, ":", i + 1);
    const auto f = fields(lines[i]);
    if (f.size() != 2)
      fail(where, ": expected a merge \"first second\", got ", f.size(), " fields");
    put(tokens, long(tokens.size()), decode_field(f[0], where) + decode_field(f[1], where), where);
  }
  return tokens;
}

} // namespace

char32_t gpt2_byte_char(uint8_t b) {
  const auto printable = [](int c) {
    return (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
  };
  if (printable(b)) return char32_t(b);
  int n = 0; // the others, in byte order, become U+0100, U+0101, ...
  for (int c = 0; c < b; c++)
    n += !printable(c);
  return char32_t(256 + n);
}

namespace {

std::string canonical_form(const std::vector<std::string> &tokens) {
  std::string out;
  for (size_t r = 0; r < tokens.size(); r++)
    if (!tokens[r].empty()) out += cat(base64_encode(tokens[r]), " ", r, "\n");
  return out;
}

} // namespace

Gpt2Tokenizer::Gpt2Tokenizer() : impl_(std::make_unique<Impl>()) {}
Gpt2Tokenizer::~Gpt2Tokenizer() = default;

std::unique_ptr<Gpt2Tokenizer> Gpt2Tokenizer::load(const std::string &rank_file,
                                                   bool allow_other_hash) {
  const std::string data = read_file(rank_file);
  const bool data_gym = data.rfind("#version", 0) == 0;
  std::vector<std::string> tokens =
      data_gym ? parse_data_gym(rank_file, data) : parse_tiktoken(rank_file, data);
  if (tokens.empty()) fail(rank_file, ": no ranks in the file (is it a tiktoken rank file?)");
  std::unique_ptr<Gpt2Tokenizer> t(new Gpt2Tokenizer());
  const std::string file_hash = sha256_hex(data);
  t->impl_->identity =
      !data_gym && file_hash == kGpt2RanksSha256 ? file_hash : sha256_hex(canonical_form(tokens));
  t->impl_->path = rank_file;
  if (t->impl_->identity != kGpt2RanksSha256 && !allow_other_hash)
    fail(rank_file, ": not GPT-2's ranks (file sha256 ", file_hash, ", ", tokens.size(),
         " ranks); gpt2.tiktoken has sha256 ", kGpt2RanksSha256,
         " -- run scripts/setup.sh or point --tokenizer at that file");
  try {
    t->impl_->ranks.build(std::move(tokens));
  } catch (const Error &e) {
    fail(rank_file, ": ", e.what());
  }
  return t;
}

std::string Gpt2Tokenizer::locate(const std::string &explicit_path) {
  namespace fs = std::filesystem;
  if (!explicit_path.empty() && explicit_path != "gpt2") return explicit_path;
  const char *env = std::getenv("FINEGPT_GPT2_RANKS");
  if (env && *env) return env;
  std::vector<std::string> looked = {"$FINEGPT_GPT2_RANKS (not set)"};
  // tiktoken's read_file_cached: TIKTOKEN_CACHE_DIR (empty = no cache), DATA_GYM_CACHE_DIR,
  // else tempfile.gettempdir()/data-gym-cache.
  std::string cache;
  bool use_cache = true;
  if (const char *t = std::getenv("TIKTOKEN_CACHE_DIR")) {
    cache = t, use_cache = *t != 0;
  } else if (const char *d = std::getenv("DATA_GYM_CACHE_DIR")) {
    cache = d;
  } else {
    std::string tmp = "/tmp";
    for (const char *v : {"TMPDIR", "TEMP", "TMP"})
      if (const char *s = std::getenv(v); s && *s && fs::is_directory(s)) {
        tmp = s;
        break;
      }
    cache = (fs::path(tmp) / "data-gym-cache").string();
  }
  if (use_cache) {
    for (const char *url : {kR50kUrl, kVocabBpeUrl}) {
      const std::string p = (fs::path(cache) / sha1_hex(url)).string();
      if (file_exists(p)) return p;
      looked.push_back(cat(p, " (tiktoken's cache of ", url, ")"));
    }
  } else {
    looked.push_back("tiktoken's cache (disabled: TIKTOKEN_CACHE_DIR is empty)");
  }
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    // Beside a built binary (build/assets), or where `cmake --install` puts it (PREFIX/share).
    for (const fs::path &p :
         {exe.parent_path() / "assets" / "gpt2.tiktoken",
          exe.parent_path().parent_path() / "share" / "finegpt" / "gpt2.tiktoken"}) {
      if (file_exists(p.string())) return p.string();
      looked.push_back(p.string());
    }
  }
  std::string list;
  for (const auto &l : looked)
    list += (list.empty() ? "" : "; ") + l;
  fail("no GPT-2 rank file found (looked at: ", list,
       "); run scripts/setup.sh, or pass --tokenizer PATH to gpt2.tiktoken (sha256 ",
       kGpt2RanksSha256, ")");
}

void Gpt2Tokenizer::encode(std::string_view text, std::vector<uint16_t> &out) const {
  const auto *s = reinterpret_cast<const uint8_t *>(text.data());
  const bpe::RankTable &ranks = impl_->ranks;
  auto run = [&](const uint8_t *p, size_t n) {
    out.reserve(out.size() + n / 4 + 16);
    pretok::split(p, n,
                  [&](const uint8_t *piece, size_t len) { ranks.encode_piece(piece, len, out); });
  };
  if (pretok::utf8_valid_prefix(s, text.size()) == text.size()) {
    run(s, text.size());
  } else {
    const std::string clean = pretok::utf8_replace_invalid(text);
    run(reinterpret_cast<const uint8_t *>(clean.data()), clean.size());
  }
}

std::string Gpt2Tokenizer::decode(const int32_t *ids, size_t n) const {
  std::string out;
  out.reserve(n * 4);
  const bpe::RankTable &ranks = impl_->ranks;
  for (size_t i = 0; i < n; i++) {
    const int32_t id = ids[i];
    if (id == kEndOfText) {
      out += "<|endoftext|>";
      continue;
    }
    if (id < 0 || id >= kVocab)
      fail("token id ", id, " at position ", i, " is out of range (GPT-2 ids are 0..", kVocab - 1,
           ")");
    const std::string_view b = size_t(id) < ranks.size() ? ranks.bytes(uint32_t(id)) : "";
    if (b.empty()) fail("token id ", id, " at position ", i, " is not a token of ", impl_->path);
    out += b;
  }
  return out;
}

std::string Gpt2Tokenizer::identity() const { return impl_->identity; }
const bpe::RankTable &Gpt2Tokenizer::ranks() const { return impl_->ranks; }

const std::string &Gpt2Tokenizer::path() const { return impl_->path; }

size_t Gpt2Tokenizer::safe_split(std::string_view text, size_t from) {
  return pretok::safe_split(reinterpret_cast<const uint8_t *>(text.data()), text.size(), from);
}

} // namespace finegpt
