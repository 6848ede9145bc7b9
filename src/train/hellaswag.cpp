// HellaSwag scoring (see hellaswag.h): reading the public JSONL format, the rows, and the
// completion-only, length-normalised loss over the engine's per-position losses.
#include "train/hellaswag.h"

#include "core/error.h"
#include "core/file.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace finegpt {

namespace {

// nlohmann's message without its "[json.exception...]" tag and the line (always 1 here).
std::string json_error(const std::exception &e) {
  std::string m = e.what();
  if (size_t close = m.find("] "); m.rfind("[json.exception", 0) == 0 && close != std::string::npos)
    m = m.substr(close + 2);
  if (size_t at = m.find("at line 1, "); at != std::string::npos) m.erase(at, 11);
  return m;
}

struct RawExample {
  long line;
  int label;
  std::string ctx;
  std::array<std::string, kHellaswagEndings> ends;
};

RawExample parse_line(const std::string &text, const std::string &where, long line) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception &e) {
    fail(where, ": not JSON (", json_error(e), ")");
  }
  FINEGPT_CHECK(j.is_object(), where, ": expected a JSON object with ctx, endings and label, got ",
                j.type_name());
  RawExample r{line, 0, {}, {}};
  for (const char *key : {"ctx", "endings", "label"})
    FINEGPT_CHECK(j.contains(key), where, ": no \"", key,
                  "\" field (HellaSwag's format: ctx, "
                  "endings, label)");
  const auto &ctx = j["ctx"];
  FINEGPT_CHECK(ctx.is_string(), where, ": \"ctx\" must be a string, got ", ctx.type_name());
  r.ctx = ctx.get<std::string>();
  FINEGPT_CHECK(!r.ctx.empty(), where,
                ": \"ctx\" is empty (an ending is scored from the context "
                "before it)");
  const auto &ends = j["endings"];
  FINEGPT_CHECK(ends.is_array() && ends.size() == kHellaswagEndings, where,
                ": \"endings\" must be a list of ", kHellaswagEndings, " strings, got ",
                ends.is_array() ? cat(ends.size(), " items") : std::string(ends.type_name()));
  for (int k = 0; k < kHellaswagEndings; ++k) {
    FINEGPT_CHECK(ends[k].is_string(), where, ": endings[", k, "] must be a string, got ",
                  ends[k].type_name());
    r.ends[k] = ends[k].get<std::string>();
  }
  const auto &label = j["label"];
  long v = -1;
  if (label.is_number_integer()) {
    v = label.get<long>();
  } else if (label.is_string()) { // the Hugging Face copy writes "3"
    const std::string s = label.get<std::string>();
    FINEGPT_CHECK(s.size() == 1 && s[0] >= '0' && s[0] <= '9', where,
                  ": \"label\" must be an integer 0..3, got \"", s, "\"");
    v = s[0] - '0';
  } else {
    fail(where, ": \"label\" must be an integer 0..3, got ", label.dump());
  }
  FINEGPT_CHECK(v >= 0 && v < kHellaswagEndings, where, ": \"label\" ", v,
                " is outside 0..3 (the index of the right ending)");
  r.label = int(v);
  return r;
}

std::vector<int32_t> encode(const TextEncoder &enc, const std::string &text) {
  std::vector<uint16_t> ids;
  enc.encode(text, ids);
  return {ids.begin(), ids.end()};
}

} // namespace

std::vector<HellaswagExample> read_hellaswag(const std::string &path, const TextEncoder &enc,
                                             long max_examples) {
  FINEGPT_CHECK(max_examples >= 0, "internal: max_examples < 0");
  const std::string text = read_file(path);
  std::vector<RawExample> raw;
  size_t at = 0;
  long line = 0;
  while (at < text.size() && (max_examples == 0 || long(raw.size()) < max_examples)) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string s = text.substr(at, end - at);
    at = end + 1;
    ++line;
    if (!s.empty() && s.back() == '\r') s.pop_back();
    if (s.find_first_not_of(" \t") == std::string::npos) continue;
    raw.push_back(parse_line(s, cat(path, ":", line), line));
  }
  FINEGPT_CHECK(!raw.empty(), path, ": no HellaSwag example (",
                text.empty() ? "the file is empty" : "only blank lines",
                "); expected JSON lines with ctx, endings and label");
  std::vector<HellaswagExample> out(raw.size());
  // The tokenizer is const and thread-safe; HellaSwag's validation set is ~50,000 strings.
#pragma omp parallel for schedule(dynamic, 16)
  for (size_t i = 0; i < raw.size(); ++i) {
    HellaswagExample &e = out[i];
    e.line = raw[i].line, e.label = raw[i].label;
    e.ctx = encode(enc, raw[i].ctx);
    // GPT-2's tokens carry the space before a word: the ending continues the context's text.
    for (int k = 0; k < kHellaswagEndings; ++k)
      e.ends[k] = encode(enc, " " + raw[i].ends[k]);
  }
  for (const HellaswagExample &e : out)
    FINEGPT_CHECK(!e.ctx.empty(), path, ":", e.line, ": \"ctx\" has no tokens");
  return out;
}

HellaswagRow hellaswag_row(const HellaswagExample &ex, int ending, int block_size,
                           const std::string &path) {
  const std::vector<int32_t> &end = ex.ends[ending];
  const int E = int(end.size()), C = int(ex.ctx.size());
  // The forward sees all tokens but the last (a target only): block_size + 1 tokens fit, and the
  // ending's first token needs at least one context token before it.
  FINEGPT_CHECK(E >= 1 && E <= block_size, path, ":", ex.line, ": ending ", ending, " is ", E,
                " tokens, too long for block_size ", block_size, " with a context token before it");
  const int keep = std::min(C, block_size + 1 - E);
  HellaswagRow r;
  r.cropped = keep < C;
  r.tokens.assign(ex.ctx.end() - keep, ex.ctx.end());
  r.ending_begin = keep;
  r.tokens.insert(r.tokens.end(), end.begin(), end.end());
  return r;
}

int hellaswag_max_positions(const std::vector<HellaswagExample> &examples, int block_size,
                            const std::string &path) {
  int most = 1;
  for (const HellaswagExample &ex : examples)
    for (int k = 0; k < kHellaswagEndings; ++k)
      most = std::max(most, int(hellaswag_row(ex, k, block_size, path).tokens.size()) - 1);
  return most;
}

HellaswagResult score_hellaswag(Engine &engine, const std::vector<HellaswagExample> &examples,
                                int per_forward, int block, const std::string &path,
                                const std::function<void(const HellaswagResult &)> &progress) {
  FINEGPT_CHECK(per_forward > 0 && block > 0 && block <= engine.config().block_size,
                "internal: score_hellaswag's per_forward or block_size");
  HellaswagResult res;
  res.scores.reserve(examples.size());
  std::vector<HellaswagRow> rows;
  std::vector<int32_t> x, y;
  for (size_t first = 0; first < examples.size(); first += size_t(per_forward)) {
    const size_t n = std::min(examples.size() - first, size_t(per_forward));
    rows.clear();
    int T = 1;
    for (size_t i = 0; i < n; ++i)
      for (int k = 0; k < kHellaswagEndings; ++k) {
        rows.push_back(hellaswag_row(examples[first + i], k, block, path));
        T = std::max(T, int(rows.back().tokens.size()) - 1);
      }
    const int B = int(rows.size());
    // Inputs: a row's tokens but its last; targets: the row shifted by one. Padding (token 0)
    // sits after each row, where causal attention keeps it from the positions that are scored.
    x.assign(size_t(B) * T, 0);
    y.assign(size_t(B) * T, 0);
    for (int b = 0; b < B; ++b) {
      const std::vector<int32_t> &t = rows[b].tokens;
      std::copy(t.begin(), t.end() - 1, x.begin() + size_t(b) * T);
      std::copy(t.begin() + 1, t.end(), y.begin() + size_t(b) * T);
    }
    engine.forward(x.data(), y.data(), B, T);
    const float *loss = engine.position_losses();
    for (size_t i = 0; i < n; ++i) {
      const HellaswagExample &ex = examples[first + i];
      HellaswagScore s;
      s.line = ex.line, s.label = ex.label;
      for (int k = 0; k < kHellaswagEndings; ++k) {
        const int b = int(i) * kHellaswagEndings + k;
        const HellaswagRow &r = rows[b];
        // Position p predicts token p + 1: the ending's tokens are predicted from
        // ending_begin - 1 to the row's second-to-last position.
        double sum = 0.0;
        const int last = int(r.tokens.size()) - 1;
        for (int p = r.ending_begin - 1; p < last; ++p)
          sum += double(loss[size_t(b) * T + p]);
        s.tokens[k] = last - (r.ending_begin - 1);
        s.sum_loss[k] = sum;
        s.mean_loss[k] = sum / s.tokens[k];
        s.cropped = s.cropped || r.cropped;
      }
      for (int k = 1; k < kHellaswagEndings; ++k) { // the first lowest, as argmin
        if (s.sum_loss[k] < s.sum_loss[s.pred]) s.pred = k;
        if (s.mean_loss[k] < s.mean_loss[s.pred_norm]) s.pred_norm = k;
      }
      ++res.examples;
      res.correct += s.pred == s.label;
      res.correct_norm += s.pred_norm == s.label;
      res.cropped += s.cropped;
      res.scores.push_back(s);
    }
    if (progress) progress(res);
  }
  return res;
}

} // namespace finegpt
