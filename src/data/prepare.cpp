// `prepare` (see prepare.h): the tokenizer, the output folder (fresh, resumed from its state
// file, already complete, or refused because it holds another run's shards), the shard layouts,
// the state file after each shard and meta.json at the end. The pipeline itself is in
// prepare_pipeline.cpp, the character vocabulary in prepare_char.cpp.
#include "data/prepare.h"

#include "core/error.h"
#include "core/file.h"
#include "core/threads.h"
#include "core/version.h"
#include "data/prepare_impl.h"
#include "tokenizer/char_tokenizer.h"
#include "tokenizer/gpt2.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace finegpt {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

constexpr const char *kStateFile = "prepare_state.json";
constexpr const char *kMetaFile = "meta.json";

std::string shard_name(const std::string &name, bool val, size_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "_%s_%06zu.bin", val ? "val" : "train", index);
  return name + buf;
}

// "<anything>_train_<anything>.bin" or "_val_": files the loader would read as shards.
bool is_shard_like(const std::string &f) {
  return f.size() > 4 && f.compare(f.size() - 4, 4, ".bin") == 0 &&
         (f.find("_train_") != std::string::npos || f.find("_val_") != std::string::npos);
}

bool is_stale_temp(const std::string &f) {
  for (const char *stem : {".bin.tmp.", "meta.json.tmp.", "prepare_state.json.tmp."})
    if (f.find(stem) != std::string::npos) return true;
  return false;
}

std::vector<std::string> folder_files(const std::string &dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file(ec)) out.push_back(it->path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

ojson read_json_file(const std::string &path) {
  try {
    return ojson::parse(read_file(path));
  } catch (const nlohmann::json::exception &e) {
    fail(path, ": not valid JSON (", e.what(), ")");
  }
}

// What makes two runs produce the same shards. A run whose arguments differ from the ones
// recorded in the folder must not continue it.
ojson run_arguments(const PrepareOptions &o, const DocumentReader &reader, const std::string &tok,
                    const std::string &identity, bool char_layout) {
  ojson a;
  a["tokenizer"] = tok;
  a["tokenizer_identity"] = identity;
  a["name"] = o.name;
  ojson inputs = ojson::array();
  for (const auto &f : reader.inputs())
    inputs.push_back(
        {{"path", f.origin.empty() ? fs::absolute(f.path).lexically_normal().string() : f.origin},
         {"bytes", f.bytes}});
  a["inputs"] = inputs;
  a["text_column"] = o.source.text_column;
  a["text_field"] = o.source.text_field;
  a["doc_separator"] = o.source.doc_separator;
  if (char_layout) {
    a["val_fraction"] = o.val_fraction;
  } else {
    a["shard_tokens"] = o.shard_tokens;
    a["val_tokens"] = o.val_tokens;
  }
  a["max_tokens"] = o.max_tokens;
  a["max_docs"] = o.max_docs;
  return a;
}

std::string short_dump(const ojson &j) {
  std::string s = j.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

// Why `there` (recorded) and `here` differ, for the message.
std::string describe_difference(const ojson &there, const ojson &here) {
  for (auto it = here.begin(); it != here.end(); ++it) {
    const std::string &k = it.key();
    if (!there.contains(k)) return cat(k, ": not recorded there");
    if (there[k] == it.value()) continue;
    if (k == "inputs") return "other inputs";
    return cat(k, ": ", short_dump(there[k]), " there, ", short_dump(it.value()), " here");
  }
  return "other arguments";
}

ojson counts_json(const Counts &c) {
  return {{"records", c.records},   {"documents", c.documents},       {"empty", c.empty},
          {"not_text", c.not_text}, {"invalid_utf8", c.invalid_utf8}, {"tokens", c.tokens}};
}

Counts counts_from(const ojson &j) {
  Counts c;
  c.records = j.at("records"), c.documents = j.at("documents"), c.empty = j.at("empty");
  c.not_text = j.at("not_text"), c.invalid_utf8 = j.at("invalid_utf8"), c.tokens = j.at("tokens");
  return c;
}

// Each listed shard is there, with the size its token count gives.
void verify_shards(const std::string &out, const std::vector<std::string> &names,
                   const std::vector<uint64_t> &tokens, const std::string &recorded_in) {
  for (size_t k = 0; k < names.size(); k++) {
    std::string p = (fs::path(out) / names[k]).string();
    std::error_code ec;
    uint64_t size = fs::file_size(p, ec);
    if (ec || size != 1024 + 2 * tokens[k])
      fail(p, ": ", ec ? "missing" : "has the wrong size", " (", recorded_in, " lists it with ",
           tokens[k],
           " tokens); the folder changed since that run: use --overwrite to start again");
  }
}

enum class FolderState { Fresh, Resume, Complete };

struct Folder {
  FolderState state = FolderState::Fresh;
  ResumePoint resume;
  ojson meta; // Complete: the recorded meta.json
};

// Decides what to do with `out` before anything is written (nothing is removed here).
Folder inspect_folder(const PrepareOptions &o, const ojson &args, const ShardLayout &layout) {
  Folder f;
  const std::vector<std::string> files = folder_files(o.out);
  if (o.overwrite || files.empty()) return f;
  const std::string state_path = (fs::path(o.out) / kStateFile).string();
  const std::string meta_path = (fs::path(o.out) / kMetaFile).string();
  const auto refuse = [&](const ojson &there) {
    fail(o.out, ": holds shards from another prepare run (", describe_difference(there, args),
         "); use --overwrite to replace them, or choose another --out");
  };
  std::vector<std::string> ours;
  if (file_exists(state_path)) {
    ojson s = read_json_file(state_path);
    if (!s.contains("args")) fail(state_path, ": not a finegpt prepare state file");
    if (s["args"] != args) refuse(s["args"]);
    try {
      f.resume.shard_tokens = s.at("shards").get<std::vector<uint64_t>>();
      f.resume.records_done = s.at("records_done");
      f.resume.partial = s.at("partial");
      f.resume.counts = counts_from(s.at("counts"));
      f.resume.input = s.value("input", size_t(0));
      f.resume.input_first = s.value("input_first_record", uint64_t(0));
    } catch (const nlohmann::json::exception &e) {
      fail(state_path, ": incomplete state (", e.what(), "); use --overwrite to start again");
    }
    for (size_t k = 0; k < f.resume.shard_tokens.size(); k++)
      ours.push_back(layout.file_name(k));
    verify_shards(o.out, ours, f.resume.shard_tokens, state_path);
    f.state = FolderState::Resume;
  } else if (file_exists(meta_path)) {
    ojson m = read_json_file(meta_path);
    if (m.contains("args")) {
      if (m["args"] != args) refuse(m["args"]);
      std::vector<uint64_t> tokens;
      for (const auto &s : m.at("shards")) {
        ours.push_back(s.at("file"));
        tokens.push_back(s.at("tokens"));
      }
      verify_shards(o.out, ours, tokens, meta_path);
      f.state = FolderState::Complete;
      f.meta = m;
    }
  }
  // A run killed between renaming a shard and saving the state leaves that shard behind: the
  // resumed run writes it again.
  const auto later_shard_of_ours = [&](const std::string &name) {
    return f.state == FolderState::Resume && name == layout.file_name(ours.size());
  };
  for (const auto &name : files)
    if (is_shard_like(name) && std::find(ours.begin(), ours.end(), name) == ours.end() &&
        !later_shard_of_ours(name))
      fail(o.out, ": already holds ", name,
           ", which would be read with the new shards; remove it, use --overwrite, or choose "
           "another --out");
  return f;
}

// Makes the folder and clears what a fresh or resumed run must not find there.
void clear_folder(const PrepareOptions &o, bool fresh) {
  make_dirs(o.out);
  for (const auto &name : folder_files(o.out)) {
    bool remove = is_stale_temp(name);
    if (fresh && o.overwrite)
      remove = remove || is_shard_like(name) || name == kMetaFile || name == kStateFile;
    if (fresh && name == kStateFile) remove = true;
    if (remove) fs::remove(fs::path(o.out) / name);
  }
}

std::string resolve_name(const PrepareOptions &o) {
  if (!o.name.empty()) return o.name;
  auto p = fs::absolute(o.out).lexically_normal();
  if (!p.has_filename()) p = p.parent_path(); // "dir/" -> "dir"
  std::string n = p.filename().string();
  if (n.empty()) fail("cannot take a shard name from --out '", o.out, "'; give --name");
  return n;
}

PrepareStats stats_from_meta(const ojson &m) {
  PrepareStats s;
  s.already_complete = true;
  Counts c = counts_from(m.at("counts"));
  s.records = c.records, s.documents = c.documents, s.empty = c.empty, s.not_text = c.not_text;
  s.invalid_utf8 = c.invalid_utf8, s.tokens = c.tokens;
  for (const auto &sh : m.at("shards")) {
    s.shard_files.push_back(sh.at("file"));
    s.shard_tokens.push_back(sh.at("tokens"));
  }
  s.vocab_size = m.value("vocab_size", 0);
  s.resumed_shards = s.shard_files.size();
  return s;
}

// The whole run for either layout; `enc` is null for the char layout (made after its pass).
PrepareStats run(PrepareOptions o, const TextEncoder *enc, const std::string &tok_name,
                 const std::string &tok_identity) {
  const bool char_layout = enc == nullptr;
  o.name = resolve_name(o);
  FINEGPT_CHECK(o.name.find('/') == std::string::npos, "--name '", o.name,
                "' must not contain '/'");
  if (!char_layout) {
    FINEGPT_CHECK(o.shard_tokens > 0 && o.shard_tokens < (uint64_t(1) << 31), "--shard-tokens ",
                  o.shard_tokens, " must be between 1 and 2^31 - 1 (llm.c shards)");
    FINEGPT_CHECK(o.val_tokens < (uint64_t(1) << 31), "--val-tokens ", o.val_tokens,
                  " must be below 2^31 (one llm.c shard)");
    FINEGPT_CHECK(enc->document_separator() >= 0, "tokenizer ", enc->name(),
                  " has no document separator");
  }
  set_threads(o.threads);
  // hub: inputs arrive in a folder of --out, a few files at a time, each removed once read.
  if (o.source.download_dir.empty())
    o.source.download_dir = (fs::path(o.out) / ".hub-download").string();
  DocumentReader reader(o.inputs, o.source);
  // prepare writes and, with --overwrite, removes files in the output folder: none may be input.
  const fs::path out_dir = fs::weakly_canonical(o.out);
  for (const auto &f : reader.inputs()) {
    if (!f.origin.empty()) continue; // a hub file, downloaded into --out by the reader
    const fs::path in = fs::weakly_canonical(f.path);
    const auto [end, _] = std::mismatch(out_dir.begin(), out_dir.end(), in.begin(), in.end());
    if (end == out_dir.end())
      fail("--input ", f.path, " is inside --out ", o.out,
           ", where prepare writes its shards; choose another --out");
  }
  const ojson args = run_arguments(o, reader, tok_name, tok_identity, char_layout);

  // The layout; the char layout's sizes come from its vocabulary pass (below).
  uint64_t n_train = 0, n_val = 0;
  ShardLayout layout;
  if (char_layout) {
    layout.file_name = [&](size_t k) { return shard_name(o.name, k == 1, k == 0 ? 1 : 0); };
    layout.capacity = [&](size_t k) { return k == 0 ? n_train : k == 1 ? n_val : 0; };
  } else {
    layout.file_name = [&](size_t k) { return shard_name(o.name, k == 0, k); };
    layout.capacity = [&](size_t k) {
      return k == 0 && o.val_tokens ? o.val_tokens : o.shard_tokens;
    };
  }
  Folder folder = inspect_folder(o, args, layout);
  if (folder.state == FolderState::Complete) return stats_from_meta(folder.meta);

  std::unique_ptr<TextEncoder> char_enc;
  std::vector<char32_t> itos;
  uint64_t last_seq = UINT64_MAX, last_bytes = 0;
  std::unique_ptr<DocumentReader> second;
  DocumentReader *source = &reader;
  if (char_layout) {
    CharScan scan = scan_char_vocabulary(reader, o.max_docs, o.max_tokens, o.progress);
    if (scan.chars == 0)
      fail(o.inputs.size() == 1 ? o.inputs[0] + ": " : "", "no text in the input");
    // nanoGPT: n = len(data); train = data[:int(n*0.9)], val = data[int(n*0.9):].
    n_train = uint64_t(std::floor(double(scan.chars) * (1.0 - o.val_fraction)));
    n_val = scan.chars - n_train;
    if (n_train == 0 || n_val == 0)
      fail("the input has ", scan.chars, " characters, too few to split with --val-fraction ",
           o.val_fraction, " (both train and val need at least one)");
    FINEGPT_CHECK(n_train < (uint64_t(1) << 31), "the input has ", scan.chars,
                  " characters; the train split must fit one llm.c shard (< 2^31 tokens)");
    itos = scan.itos;
    last_seq = scan.last_seq, last_bytes = scan.last_bytes;
    char_enc = make_char_encoder(itos);
    enc = char_enc.get();
    second = std::make_unique<DocumentReader>(o.inputs, o.source);
    source = second.get();
  }

  clear_folder(o, folder.state == FolderState::Fresh);
  const std::string state_path = (fs::path(o.out) / kStateFile).string();
  PipelineConfig cfg;
  cfg.enc = enc;
  cfg.layout = layout;
  cfg.out_dir = o.out;
  cfg.max_tokens = char_layout ? n_train + n_val : o.max_tokens;
  cfg.max_docs = o.max_docs;
  cfg.split_documents = char_layout;
  cfg.last_seq = last_seq;
  cfg.last_bytes = last_bytes;
  cfg.progress = o.progress;
  cfg.on_shard = [&](const ResumePoint &p) {
    ojson s;
    s["format"] = "finegpt-prepare-state";
    s["version"] = 1;
    s["args"] = args;
    s["shards"] = p.shard_tokens;
    s["records_done"] = p.records_done;
    s["partial"] = p.partial;
    s["input"] = p.input;
    s["input_first_record"] = p.input_first;
    s["counts"] = counts_json(p.counts);
    write_file_atomic(state_path, s.dump(1) + "\n");
  };
  PipelineResult res = run_pipeline(*source, cfg, folder.resume);
  const Counts &c = res.end.counts;
  if (c.tokens == 0)
    fail("no documents with text in the input (", c.records, " records: ", c.empty, " empty, ",
         c.not_text, " not text)");

  PrepareStats st;
  st.records = c.records, st.documents = c.documents, st.empty = c.empty;
  st.not_text = c.not_text, st.invalid_utf8 = c.invalid_utf8, st.tokens = c.tokens;
  st.shard_tokens = res.end.shard_tokens;
  for (size_t k = 0; k < st.shard_tokens.size(); k++)
    st.shard_files.push_back(layout.file_name(k));
  st.input_bytes = reader.bytes_total();
  st.text_bytes = res.text_bytes;
  st.vocab_size = enc->vocab_size();
  st.resumed_shards = folder.resume.shard_tokens.size();

  // meta.json last: its presence says the folder is complete.
  ojson m;
  m["tokenizer"] = tok_name;
  m["vocab_size"] = enc->vocab_size();
  if (char_layout) {
    ojson j = ojson::array();
    for (char32_t ch : itos)
      j.push_back(utf8_encode(ch));
    m["itos"] = j;
  } else {
    m["tokenizer_identity"] = tok_identity;
    m["document_separator"] = enc->document_separator();
    m["shard_tokens"] = o.shard_tokens;
    m["val_tokens"] = o.val_tokens ? o.val_tokens : st.shard_tokens[0];
  }
  m["format"] = "finegpt-shards";
  m["format_version"] = 1;
  m["finegpt_version"] = version();
  m["name"] = o.name;
  ojson sources = ojson::array();
  for (const auto &f : reader.inputs())
    sources.push_back({{"path", f.origin.empty() ? f.path : f.origin},
                       {"kind", input_kind_name(f.kind)},
                       {"bytes", f.bytes}});
  m["sources"] = sources;
  m["documents"] = c.documents;
  m["skipped"] = {{"empty", c.empty}, {"not_text", c.not_text}};
  m["invalid_utf8"] = c.invalid_utf8;
  m["tokens"] = c.tokens;
  ojson shards = ojson::array();
  for (size_t k = 0; k < st.shard_files.size(); k++)
    shards.push_back({{"file", st.shard_files[k]}, {"tokens", st.shard_tokens[k]}});
  m["shards"] = shards;
  m["counts"] = counts_json(c);
  m["args"] = args;
  write_file_atomic((fs::path(o.out) / kMetaFile).string(), m.dump(1) + "\n");
  std::error_code ec;
  fs::remove(state_path, ec);
  return st;
}

} // namespace

int dataset_vocab_size(const std::string &meta_json_path) {
  ojson m = read_json_file(meta_json_path);
  if (m.is_object() && m.value("tokenizer", "") == "char")
    return CharTokenizer::load(meta_json_path).vocab_size();
  if (!m.is_object() || !m.contains("vocab_size") || !m["vocab_size"].is_number_integer() ||
      m["vocab_size"].get<int64_t>() <= 0 || m["vocab_size"].get<int64_t>() > 65536)
    fail(meta_json_path, ": no \"vocab_size\" (a positive integer up to 65536)");
  return m["vocab_size"].get<int>();
}

PrepareStats prepare_with_encoder(const PrepareOptions &opt, const TextEncoder &enc) {
  return run(opt, &enc, enc.name(), enc.identity());
}

PrepareStats prepare_dataset(const PrepareOptions &opt) {
  if (opt.tokenizer == "char") return run(opt, nullptr, "char", "");
  std::unique_ptr<TextEncoder> enc;
  if (opt.tokenizer == "test-bytes") {
    enc = make_test_byte_encoder();
  } else if (opt.tokenizer == "gpt2") {
    enc = Gpt2Tokenizer::load(Gpt2Tokenizer::locate(""));
  } else if (file_exists(opt.tokenizer) && !fs::is_directory(opt.tokenizer)) {
    enc = Gpt2Tokenizer::load(opt.tokenizer);
  } else {
    fail("--tokenizer '", opt.tokenizer,
         "' is not one of: gpt2, char, or a tiktoken rank file (no such file)");
  }
  return run(opt, enc.get(), enc->name(), enc->identity());
}

} // namespace finegpt
