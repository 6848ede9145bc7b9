// Text sources (see sources.h): expanding the inputs into files of known kinds, chaining their
// readers into one stream of records, UTF-8 validity, and describing what a file looks like.
// The readers of each kind are in source_arrow.cpp, source_jsonl.cpp and source_text.cpp.
#include "data/sources.h"

#include "core/error.h"
#include "core/file.h"
#include "data/source_impl.h"
#include "net/hub.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

namespace finegpt {

namespace fs = std::filesystem;

const char *input_kind_name(InputKind k) {
  switch (k) {
  case InputKind::Parquet:
    return "Parquet";
  case InputKind::ArrowStream:
    return "Arrow IPC stream";
  case InputKind::ArrowFile:
    return "Arrow IPC file";
  case InputKind::Jsonl:
    return "JSONL";
  case InputKind::Text:
    return "text";
  }
  return "?";
}

bool utf8_valid(std::string_view s, size_t *bad_at) {
  const auto *p = reinterpret_cast<const unsigned char *>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (i + 8 <= n) { // ASCII fast path
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if (!(w & 0x8080808080808080ull)) {
        i += 8;
        continue;
      }
    }
    if (p[i] < 0x80) {
      i++;
      continue;
    }
    const size_t len = utf8_char_len(p + i, n - i);
    if (len == 0) {
      if (bad_at) *bad_at = i;
      return false;
    }
    i += len;
  }
  return true;
}

std::string describe_content(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  char buf[64];
  in.read(buf, sizeof buf);
  const size_t n = size_t(in.gcount());
  const std::string_view b(buf, n);
  const auto starts = [&](std::string_view m) { return b.substr(0, m.size()) == m; };
  if (n == 0) return "an empty file";
  if (starts("PAR1")) return "a Parquet file";
  if (starts("ARROW1")) return "an Arrow IPC file";
  if (starts("\xFF\xFF\xFF\xFF")) return "an Arrow IPC stream";
  if (starts("\x1F\x8B")) return "gzip data";
  if (starts("\x28\xB5\x2F\xFD")) return "zstd data";
  if (starts("PK\x03\x04")) return "a zip archive";
  if (starts("BZh")) return "bzip2 data";
  if (starts(std::string_view("\xFD"
                              "7zXZ\0",
                              6)))
    return "xz data";
  if (starts("\x89HDF")) return "an HDF5 file";
  size_t bad = 0;
  std::string_view head = b;
  if (!utf8_valid(head, &bad) && bad + 4 >= n) head = head.substr(0, bad); // cut mid-character
  if (utf8_valid(head) && std::none_of(head.begin(), head.end(), [](char c) {
        return (unsigned char)c < 0x20 && c != '\n' && c != '\r' && c != '\t';
      })) {
    size_t first = head.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos && (head[first] == '{' || head[first] == '['))
      return "JSON text";
    std::string shown(head.substr(0, 24));
    for (char &c : shown)
      if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    return cat("text (\"", shown, n > 24 ? "...\")" : "\")");
  }
  std::string hex;
  for (size_t i = 0; i < std::min<size_t>(n, 8); i++) {
    char h[8];
    std::snprintf(h, sizeof h, "%s%02x", i ? " " : "", unsigned((unsigned char)buf[i]));
    hex += h;
  }
  return cat("binary data (starting ", hex, ")");
}

namespace {

std::string lower(std::string s) {
  for (char &c : s)
    c = char(std::tolower((unsigned char)c));
  return s;
}

bool ends_with(const std::string &s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The file's name without a .gz / .zst ending, lowercased.
std::string plain_name(const std::string &path) {
  std::string name = lower(fs::path(path).filename().string());
  for (const char *z : {".gz", ".zst", ".zstd"})
    if (ends_with(name, z)) return name.substr(0, name.size() - std::strlen(z));
  return name;
}

bool is_jsonl_name(const std::string &plain, bool explicit_file) {
  return ends_with(plain, ".jsonl") || ends_with(plain, ".ndjson") ||
         (ends_with(plain, ".json") && explicit_file);
}

std::string read_bytes_at(const std::string &path, uint64_t offset, size_t n) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(std::streamoff(offset));
  std::string out(n, '\0');
  in.read(out.data(), std::streamsize(n));
  out.resize(size_t(in.gcount()));
  return out;
}

// The kind of a file from its name, confirmed by its first and last bytes. `in_folder`: found
// by expanding a folder (only the names we read are taken; the rest of a folder is ignored).
// Returns false when a folder's file is not one we read.
bool classify(const std::string &path, bool in_folder, InputFile &f) {
  const std::string plain = plain_name(path);
  const std::string name = lower(fs::path(path).filename().string());
  const bool compressed = plain != name;
  f.path = path;
  if (!compressed && (ends_with(name, ".parquet") || ends_with(name, ".pq"))) {
    f.kind = InputKind::Parquet;
  } else if (!compressed && (ends_with(name, ".arrow") || ends_with(name, ".feather") ||
                             ends_with(name, ".ipc"))) {
    f.kind = InputKind::ArrowStream; // or ArrowFile: decided by the magic below
  } else if (is_jsonl_name(plain, !in_folder)) {
    f.kind = InputKind::Jsonl;
  } else if (ends_with(plain, ".txt") || ends_with(plain, ".text")) { // not README.md
    f.kind = InputKind::Text;
  } else if (in_folder) {
    return false;
  } else {
    // Any other name: by content (Parquet, Arrow), else text.
    std::string head = read_bytes_at(path, 0, 6);
    if (head.rfind("PAR1", 0) == 0)
      f.kind = InputKind::Parquet;
    else if (head.rfind("ARROW1", 0) == 0 || head.rfind("\xFF\xFF\xFF\xFF", 0) == 0)
      f.kind = InputKind::ArrowStream;
    else
      f.kind = InputKind::Text;
  }

  f.bytes = file_size(path);
  if (f.bytes == 0) fail(path, ": empty file (0 bytes); remove it from the input");
  if (f.kind == InputKind::Parquet) {
    std::string head = read_bytes_at(path, 0, 4), tail = read_bytes_at(path, f.bytes - 4, 4);
    if (head != "PAR1")
      fail(path, ": not a Parquet file (it looks like ", describe_content(path), ")");
    if (tail == "PARE") fail(path, ": encrypted Parquet files are not supported");
    if (f.bytes < 12 || tail != "PAR1")
      fail(path, ": truncated Parquet file (", f.bytes,
           " bytes, no footer at the end): copy or download it again");
  } else if (f.kind == InputKind::ArrowStream) {
    std::string head = read_bytes_at(path, 0, 8);
    if (head.rfind("ARROW1", 0) == 0) {
      f.kind = InputKind::ArrowFile;
      if (f.bytes < 12 || read_bytes_at(path, f.bytes - 6, 6) != "ARROW1")
        fail(path, ": truncated Arrow IPC file (", f.bytes,
             " bytes, no footer at the end): copy or write it again");
    } else if (head.rfind("\xFF\xFF\xFF\xFF", 0) == 0) {
      if (f.bytes < 8 ||
          read_bytes_at(path, f.bytes - 8, 8) != std::string("\xFF\xFF\xFF\xFF\0\0\0\0", 8))
        fail(path, ": truncated Arrow IPC stream (", f.bytes,
             " bytes, no end-of-stream marker): copy or write it again");
    } else {
      fail(path, ": not an Arrow IPC stream or file (it looks like ", describe_content(path), ")");
    }
  }
  return true;
}

nlohmann::json read_json(const std::string &path) {
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception &e) {
    fail(path, ": not valid JSON: ", e.what());
  }
}

// The .arrow files of a datasets cache folder: "<builder>-<split>[-NNNNN-of-NNNNN].arrow". When
// it holds several splits, the train split is read (the others are evaluation data); the
// cache files of map() ("cache-<fingerprint>.arrow") are not the dataset.
void pick_cache_split(std::vector<InputFile> &files, size_t from, const fs::path &dir) {
  const auto split_of = [](const std::string &path) -> std::string {
    std::string stem = fs::path(path).stem().string();
    size_t of = stem.rfind("-of-");
    if (of != std::string::npos) {
      size_t dash = stem.rfind('-', of - 1);
      if (dash != std::string::npos) stem = stem.substr(0, dash);
    }
    size_t dash = stem.rfind('-');
    return dash == std::string::npos ? "" : stem.substr(dash + 1);
  };
  const auto is_arrow_here = [&](const InputFile &f) {
    return (f.kind == InputKind::ArrowStream || f.kind == InputKind::ArrowFile) &&
           fs::path(f.path).parent_path() == dir;
  };
  const auto name = [](const InputFile &f) { return fs::path(f.path).filename().string(); };
  std::vector<std::string> splits;
  bool have_data = false;
  for (size_t i = from; i < files.size(); i++) {
    if (!is_arrow_here(files[i]) || name(files[i]).rfind("cache-", 0) == 0) continue;
    have_data = true;
    if (std::string s = split_of(files[i].path);
        std::find(splits.begin(), splits.end(), s) == splits.end())
      splits.push_back(s);
  }
  const bool only_train =
      splits.size() > 1 && std::find(splits.begin(), splits.end(), "train") != splits.end();
  // In place, so that the folder's order by name stays.
  auto drop = [&](const InputFile &f) {
    if (!is_arrow_here(f)) return false;
    if (have_data && name(f).rfind("cache-", 0) == 0) return true;
    return only_train && split_of(f.path) != "train";
  };
  files.erase(std::remove_if(files.begin() + std::ptrdiff_t(from), files.end(), drop), files.end());
}

void expand(const fs::path &p, bool top, std::vector<InputFile> &out) {
  std::error_code ec;
  const std::string ps = p.string();
  if (!fs::exists(p, ec)) fail("--input ", ps, ": no such file or folder");
  if (!fs::is_directory(p, ec)) {
    const fs::file_status st = fs::status(p, ec);
    if (fs::is_character_file(st) || fs::is_block_file(st) || fs::is_socket(st))
      fail("--input ", ps, ": is a device or socket, not a file");
    InputFile f;
    if (classify(ps, !top, f)) out.push_back(f);
    return;
  }
  if (fs::exists(p / "state.json", ec)) { // Dataset.save_to_disk
    const std::string state = (p / "state.json").string();
    nlohmann::json j = read_json(state);
    FINEGPT_CHECK(j.is_object() && j.contains("_data_files") && j["_data_files"].is_array(), state,
                  ": no \"_data_files\" list (not a datasets save_to_disk folder?)");
    for (const auto &e : j["_data_files"]) {
      FINEGPT_CHECK(e.is_object() && e.contains("filename") && e["filename"].is_string(), state,
                    ": an entry of \"_data_files\" has no \"filename\"");
      fs::path file = p / e["filename"].get<std::string>();
      FINEGPT_CHECK(fs::is_regular_file(file, ec), state, ": lists ", file.filename().string(),
                    ", which is not in ", ps);
      InputFile f;
      classify(file.string(), false, f);
      FINEGPT_CHECK(f.kind == InputKind::ArrowStream || f.kind == InputKind::ArrowFile,
                    file.string(), ": expected an Arrow IPC file (listed in ", state, ")");
      out.push_back(f);
    }
    return;
  }
  if (fs::exists(p / "dataset_dict.json", ec)) { // DatasetDict.save_to_disk
    const std::string dd = (p / "dataset_dict.json").string();
    nlohmann::json j = read_json(dd);
    std::vector<std::string> splits;
    if (j.is_object() && j.contains("splits") && j["splits"].is_array())
      for (const auto &s : j["splits"])
        if (s.is_string()) splits.push_back(s.get<std::string>());
    std::string list;
    for (const auto &s : splits)
      list += (list.empty() ? "" : ", ") + s;
    if (std::find(splits.begin(), splits.end(), "train") == splits.end())
      fail(ps, ": a DatasetDict without a 'train' split (splits: ", list,
           "); give the split's folder as --input, e.g. ",
           (p / (splits.empty() ? "SPLIT" : splits[0])).string());
    expand(p / "train", false, out);
    return;
  }
  std::vector<fs::path> entries;
  for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.' || name[0] == '_') continue; // hidden, _SUCCESS, ...
    entries.push_back(it->path());
  }
  if (ec) fail(ps, ": cannot list folder: ", ec.message());
  std::sort(entries.begin(), entries.end(),
            [](const fs::path &a, const fs::path &b) { return a.filename() < b.filename(); });
  const size_t from = out.size();
  for (const auto &e : entries)
    expand(e, false, out);
  pick_cache_split(out, from, p);
  if (top && out.size() == from)
    fail("--input ", ps, ": no Parquet, Arrow, JSONL or text files in this folder");
}

// A hub input: its Parquet files at one commit, each to arrive at `staging`/<path>.
void expand_hub(const std::string &input, const std::string &staging, const HttpOptions &http,
                std::vector<InputFile> &out, std::vector<FileDownload> &jobs) {
  std::string repo, name;
  parse_hub_input(input, repo, name);
  Hub hub(http);
  const HubParquetSet set = hub_parquet_files(hub, repo, name);
  for (const auto &f : set.files) {
    InputFile in;
    in.path = (fs::path(staging) / set.commit.substr(0, 12) / f.path).string();
    in.kind = InputKind::Parquet;
    in.bytes = f.size;
    in.origin = cat("hub:", repo, "@", set.commit, "/", f.path);
    out.push_back(in);
    FileDownload d;
    d.url = hub.file_url(RepoType::Dataset, repo, set.commit, f.path);
    d.dest = in.path;
    d.size = f.size, d.sha256 = f.sha256, d.git_sha1 = f.git_oid;
    d.label = cat("hub:", repo, "/", f.path);
    jobs.push_back(d);
  }
}

// Hub files are read while the next ones arrive: two at once, at most two ahead of the one
// being read (so at most three on disk).
constexpr int kHubParallel = 2;
constexpr size_t kHubWindow = 3;

} // namespace

struct DocumentReader::Impl {
  std::vector<InputFile> inputs;
  std::vector<std::string> files;
  SourceOptions opt;
  uint64_t total = 0;
  size_t cur = 0;                  // the file being read
  std::unique_ptr<FileSource> src; // its reader (null between files)
  uint64_t done_before = 0;        // bytes of the files before `cur`
  uint64_t seq = 0;
  std::vector<uint64_t> first_seq; // of each input's first record, set when it is opened
  size_t first_remote = 0;         // hub files before this one are not needed (skip_to)
  // hub: inputs: remote_of[i] is input i's index in `remote` (-1: a local file).
  std::vector<FileDownload> remote;
  std::vector<long> remote_of;
  std::unique_ptr<Downloads> downloads; // started when the first hub file is needed
  HttpOptions http;
  std::string staging;
  bool made_staging = false;

  bool open_next() {
    if (src) return true;
    if (cur >= inputs.size()) return false;
    const InputFile &f = inputs[cur];
    if (const long r = remote_of[cur]; r >= 0) {
      if (!downloads) {
        std::error_code ec;
        made_staging = !fs::exists(staging, ec);
        make_dirs(staging);
        downloads =
            std::make_unique<Downloads>(remote, kHubParallel, kHubWindow, http, first_remote);
      }
      downloads->wait(size_t(r));
      check_arrow_input(f, opt);
    }
    switch (f.kind) {
    case InputKind::Parquet:
    case InputKind::ArrowStream:
    case InputKind::ArrowFile:
      src = open_arrow_source(f, opt);
      break;
    case InputKind::Jsonl:
      src = open_jsonl_source(f, opt);
      break;
    case InputKind::Text:
      src = open_text_source(f, opt);
      break;
    }
    first_seq[cur] = seq;
    return true;
  }
  void close_current() {
    done_before += inputs[cur].bytes;
    src.reset();
    if (remote_of[cur] >= 0) downloads->release(size_t(remote_of[cur]));
    cur++;
  }
};

DocumentReader::DocumentReader(const std::vector<std::string> &inputs, const SourceOptions &opt)
    : impl_(std::make_unique<Impl>()) {
  FINEGPT_CHECK(!inputs.empty(), "no inputs given");
  Impl &m = *impl_;
  m.opt = opt;
  m.staging = !opt.download_dir.empty()
                  ? opt.download_dir
                  : (fs::temp_directory_path() / cat("finegpt-hub-", getpid())).string();
  for (const auto &in : inputs) {
    const size_t from = m.inputs.size();
    if (in.rfind("hub:", 0) == 0) {
      if (m.remote.empty()) m.http = http_options_from_env();
      const size_t first_job = m.remote.size();
      expand_hub(in, m.staging, m.http, m.inputs, m.remote);
      for (size_t k = from; k < m.inputs.size(); k++)
        m.remote_of.push_back(long(first_job + k - from));
    } else {
      expand(fs::path(in), true, m.inputs);
      m.remote_of.resize(m.inputs.size(), -1);
    }
  }
  m.first_seq.assign(m.inputs.size(), 0);
  for (size_t i = 0; i < m.inputs.size(); i++) {
    const InputFile &f = m.inputs[i];
    m.files.push_back(f.path);
    m.total += f.bytes;
    if (f.kind != InputKind::Jsonl && f.kind != InputKind::Text && m.remote_of[i] < 0)
      check_arrow_input(f, opt);
  }
}

DocumentReader::~DocumentReader() {
  // The reader first, then the transfers; then what was downloaded goes.
  impl_->src.reset();
  impl_->downloads.reset();
  std::error_code ec;
  if (impl_->made_staging) fs::remove_all(impl_->staging, ec);
}

size_t DocumentReader::next_batch(std::vector<Document> &out, size_t max_docs, size_t max_bytes) {
  Impl &m = *impl_;
  size_t got = 0, bytes = 0;
  while (got < max_docs && bytes < max_bytes && m.open_next()) {
    const size_t start = out.size();
    size_t n = m.src->read(out, max_docs - got, max_bytes - bytes);
    if (n == 0) {
      m.close_current();
      continue;
    }
    for (size_t i = start; i < out.size(); i++) {
      out[i].input = uint32_t(m.cur);
      out[i].seq = m.seq++;
      bytes += out[i].text.size();
    }
    got += n;
  }
  return got;
}

void DocumentReader::skip(uint64_t n) {
  Impl &m = *impl_;
  const uint64_t target = m.seq + n;
  while (n > 0) {
    if (!m.open_next())
      fail("cannot skip to record ", target, ": the input has only ", m.seq,
           " records (did the input change since the last run?)");
    uint64_t k = m.src->skip(n);
    m.seq += k;
    n -= k;
    if (n > 0) m.close_current();
  }
}

void DocumentReader::skip_to(uint64_t seq, size_t input, uint64_t input_first) {
  Impl &m = *impl_;
  FINEGPT_CHECK(m.seq == 0 && m.cur == 0 && !m.src && !m.downloads,
                "internal: skip_to after reading");
  if (input >= m.inputs.size() || input_first > seq)
    fail("cannot continue at record ", seq, " in input file ", input + 1, " of ", m.inputs.size(),
         " (did the input change since the last run?)");
  for (; m.cur < input; m.cur++) {
    m.done_before += m.inputs[m.cur].bytes;
    if (m.remote_of[m.cur] >= 0) m.first_remote = size_t(m.remote_of[m.cur]) + 1;
  }
  m.seq = input_first;
  skip(seq - input_first);
}

uint64_t DocumentReader::records_read() const { return impl_->seq; }

uint64_t DocumentReader::first_record_of(size_t input) const { return impl_->first_seq.at(input); }

void DocumentReader::resolve(Document &doc) const {
  if (doc.kind == Document::Kind::JsonLine)
    resolve_json_line(doc, impl_->files[doc.input], impl_->opt.text_field);
}

uint64_t DocumentReader::bytes_total() const { return impl_->total; }

uint64_t DocumentReader::bytes_done() const {
  const Impl &m = *impl_;
  uint64_t in_file = m.src ? std::min(m.src->bytes_done(), m.inputs[m.cur].bytes) : 0;
  return m.done_before + in_file;
}

const std::vector<InputFile> &DocumentReader::inputs() const { return impl_->inputs; }
const std::vector<std::string> &DocumentReader::files() const { return impl_->files; }

} // namespace finegpt
