// Hugging Face tokenizer files from our tokenizers (see hf_files.h).
#include "tokenizer/hf_files.h"

#include "core/error.h"
#include "core/file.h"
#include "tokenizer/bpe.h"
#include "tokenizer/char_tokenizer.h"
#include "tokenizer/gpt2.h"

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

namespace finegpt {

namespace {

std::u32string stand_ins(std::string_view bytes) {
  std::u32string out;
  for (char b : bytes)
    out += gpt2_byte_char(uint8_t(b));
  return out;
}

// vocab.json as json.dumps writes a dict: {"key": id, "key": id}, in id order.
std::string vocab_json(const std::vector<std::u32string> &by_id) {
  std::string out = "{";
  for (size_t id = 0; id < by_id.size(); ++id)
    out += cat(id ? ", " : "", python_json_string(by_id[id]), ": ", id);
  return out + "}";
}

// The two tokens whose merge made rank r: byte-pair merging of its bytes with ranks < r only.
std::pair<uint32_t, uint32_t> merge_of(const bpe::RankTable &t, uint32_t r) {
  const std::string_view b = t.bytes(r);
  std::vector<uint32_t> parts;
  for (char c : b)
    parts.push_back(t.byte_rank(uint8_t(c)));
  while (parts.size() > 2) {
    size_t best = 0;
    uint32_t best_rank = bpe::kNoRank;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      const uint32_t p = t.pair(parts[i], parts[i + 1]);
      if (p < r && p < best_rank) best = i, best_rank = p;
    }
    if (best_rank == bpe::kNoRank) break;
    parts[best] = best_rank;
    parts.erase(parts.begin() + long(best) + 1);
  }
  if (parts.size() != 2) fail("the rank file's token ", r, " is not the merge of two lower ranks");
  return {parts[0], parts[1]};
}

std::string utf8(const std::u32string &s) { return utf8_encode(s); }

} // namespace

std::string python_json_string(const std::u32string &s) {
  std::string out = "\"";
  char buf[16];
  for (char32_t c : s) {
    if (c == '"' || c == '\\') {
      out += '\\', out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\b') {
      out += "\\b";
    } else if (c == '\f') {
      out += "\\f";
    } else if (c >= 0x20 && c <= 0x7E) {
      out += char(c);
    } else if (c < 0x10000) {
      std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(c));
      out += buf;
    } else {
      const unsigned v = unsigned(c) - 0x10000;
      std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      out += buf;
    }
  }
  return out + "\"";
}

bool hf_tokenizer_files(const TextEncoder &tok, HfTokenizerFiles &out, std::string &why) {
  out = {};
  if (const auto *g = dynamic_cast<const Gpt2Tokenizer *>(&tok)) {
    const bpe::RankTable &t = g->ranks();
    std::vector<std::u32string> by_id;
    out.merges_txt = "#version: 0.2\n";
    for (uint32_t r = 0; r < t.size(); ++r) {
      by_id.push_back(stand_ins(t.bytes(r)));
      if (t.bytes(r).size() < 2) continue;
      const auto [a, b] = merge_of(t, r);
      out.merges_txt += utf8(stand_ins(t.bytes(a))) + " " + utf8(stand_ins(t.bytes(b))) + "\n";
    }
    by_id.push_back(U"<|endoftext|>");
    out.vocab_json = vocab_json(by_id);
    return true;
  }
  if (const auto *c = dynamic_cast<const CharTokenizer *>(&tok)) {
    std::vector<std::u32string> by_id;
    for (char32_t ch : c->itos()) {
      if (ch >= 0x80) {
        why = cat("its character U+", std::hex, uint32_t(ch),
                  " is several bytes in UTF-8, which GPT-2's byte-level tokenizer would need "
                  "merges through tokens the model lacks to make");
        return false;
      }
      by_id.push_back(std::u32string(1, gpt2_byte_char(uint8_t(ch))));
    }
    out.vocab_json = vocab_json(by_id);
    out.merges_txt = "#version: 0.2\n";
    return true;
  }
  why = cat("no Hugging Face form of the ", tok.name(), " tokenizer");
  return false;
}

std::unique_ptr<TextEncoder> read_hf_tokenizer(const std::string &dir) {
  const std::string vocab_path = dir + "/vocab.json", merges_path = dir + "/merges.txt";
  const auto refuse = [](const std::string &file, const std::string &why) {
    fail(file, ": ", why,
         "; finegpt reads GPT-2's tokenizer files and char vocabularies (give "
         "--tokenizer)");
  };
  if (!file_exists(vocab_path) || !file_exists(merges_path))
    fail(dir, ": no vocab.json and merges.txt (give --tokenizer)");
  const std::string merges = read_file(merges_path);
  if (merges.rfind("#version:", 0) != 0) refuse(merges_path, "does not start with '#version:'");
  const size_t eol = merges.find('\n');
  if (eol != std::string::npos && eol + 1 < merges.size()) { // merges: GPT-2's or nothing
    auto gpt2 = Gpt2Tokenizer::load(Gpt2Tokenizer::locate(""));
    HfTokenizerFiles mine;
    std::string why;
    hf_tokenizer_files(*gpt2, mine, why);
    if (merges != mine.merges_txt) refuse(merges_path, "not GPT-2's merges");
    return gpt2;
  }
  const nlohmann::json vocab = nlohmann::json::parse(read_file(vocab_path), nullptr, false);
  if (!vocab.is_object() || vocab.empty())
    refuse(vocab_path, "not a JSON object of tokens and ids");
  std::map<char32_t, uint8_t> byte_of;
  for (int b = 0; b < 256; b++)
    byte_of[gpt2_byte_char(uint8_t(b))] = uint8_t(b);
  std::vector<char32_t> itos(vocab.size(), 0);
  std::vector<bool> seen(vocab.size(), false);
  for (const auto &[token, id] : vocab.items()) {
    const std::u32string c = utf8_decode(token);
    const auto b = c.size() == 1 ? byte_of.find(c[0]) : byte_of.end();
    if (b == byte_of.end() || b->second >= 0x80)
      refuse(vocab_path, cat("token '", token, "' is not one ASCII byte, and there are no merges"));
    if (!id.is_number_integer() || id.get<int64_t>() < 0 ||
        id.get<int64_t>() >= int64_t(vocab.size()) || seen[size_t(id.get<int64_t>())])
      refuse(vocab_path,
             cat("the id of '", token, "' is not one of 0..", vocab.size() - 1, " given once"));
    seen[size_t(id.get<int64_t>())] = true;
    itos[size_t(id.get<int64_t>())] = char32_t(b->second);
  }
  return std::make_unique<CharTokenizer>(
      CharTokenizer::from_itos(std::move(itos), vocab_path, "ids"));
}

} // namespace finegpt
