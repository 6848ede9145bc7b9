// A run's records in out_dir (see metrics.h).
#include "train/metrics.h"

#include "core/error.h"
#include "core/file.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

namespace finegpt {

using nlohmann::json;

namespace {
constexpr const char *kRunFormat = "finegpt run";
constexpr int kRunVersion = 1;
} // namespace

MetricsLog::MetricsLog(const std::string &out_dir, long resume_iter)
    : path_(out_dir + "/metrics.jsonl"), events_(out_dir) {
  jsonl_.reset(std::fopen(path_.c_str(), resume_iter >= 0 ? "a" : "w"));
  if (!jsonl_) fail(path_, ": cannot write (", std::strerror(errno), ")");
  if (resume_iter >= 0) write_line(json{{"iter", resume_iter}, {"resumed", true}}.dump());
  // A fresh run restarts at 0: the events of an earlier run in this folder are dropped, as
  // metrics.jsonl was just emptied.
  events_.restart(std::max(resume_iter, 0L));
}

void MetricsLog::write_line(const std::string &line) {
  if (std::fprintf(jsonl_.get(), "%s\n", line.c_str()) < 0 || std::fflush(jsonl_.get()) != 0)
    fail(path_, ": cannot write (", std::strerror(errno), ")");
}

void MetricsLog::record(long iter, long long tokens, const MetricFields &fields) {
  json j{{"iter", iter}, {"tokens", tokens}};
  for (const auto &[name, value] : fields)
    j[name] = value; // non-finite: null
  write_line(j.dump());
  events_.scalars(iter, fields);
}

std::vector<MetricRecord> read_metrics(const std::string &path) {
  const std::string text = read_file(path);
  std::vector<MetricRecord> out;
  size_t at = 0;
  for (long line = 1; at < text.size(); ++line) {
    size_t end = text.find('\n', at);
    const bool complete = end != std::string::npos;
    if (!complete) end = text.size();
    const std::string row = text.substr(at, end - at);
    at = end + 1;
    if (row.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string place = cat(path, ":", line);
    json j = json::parse(row, nullptr, false);
    if (j.is_discarded()) {
      if (!complete) break; // the line a running train is writing now
      fail(place, ": not a JSON record (metrics.jsonl holds one JSON object per line)");
    }
    if (!j.is_object()) fail(place, ": not a JSON object");
    auto it = j.find("iter");
    if (it == j.end() || !it->is_number_integer() || it->get<long long>() < 0)
      fail(place, ": no \"iter\" (a non-negative integer)");
    MetricRecord r;
    r.iter = long(it->get<long long>());
    if (auto resumed = j.find("resumed"); resumed != j.end() && *resumed == true) {
      std::erase_if(out, [&](const MetricRecord &m) { return m.iter >= r.iter; });
      continue;
    }
    for (const auto &[key, v] : j.items()) {
      if (key == "iter") continue;
      if (key == "tokens") {
        if (!v.is_number_integer() || v.get<long long>() < 0)
          fail(place, ": \"tokens\" is not a non-negative integer");
        r.tokens = v.get<long long>();
      } else if (v.is_number()) {
        r.values[key] = v.get<double>();
      } else if (v.is_null()) {
        r.values[key] = std::numeric_limits<double>::quiet_NaN();
      } else {
        fail(place, ": \"", key, "\" is not a number");
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

void write_run_info(const std::string &path, const RunInfo &info) {
  json config = json::array(), plan = json::array();
  for (const auto &[k, v] : info.config)
    config.push_back({k, v});
  for (const auto &b : info.plan)
    plan.push_back({{"group", b.group}, {"name", b.name}, {"shape", b.shape}, {"bytes", b.bytes}});
  json j = {{"format", kRunFormat},
            {"version", kRunVersion},
            {"started", info.started},
            {"engine", info.engine},
            {"ranks", info.ranks},
            {"parameters", info.parameters},
            {"tokens_per_step", info.tokens_per_step},
            {"max_iters", info.max_iters},
            {"config", config},
            {"memory_plan", plan}};
  write_file_atomic(path, j.dump(1) + "\n");
}

RunInfo read_run_info(const std::string &path) {
  json j = json::parse(read_file(path), nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail(path, ": not JSON (finegpt train writes run.json)");
  if (!j.contains("format") || j["format"] != kRunFormat)
    fail(path, ": not a finegpt run.json (no \"format\": \"", kRunFormat, "\")");
  if (!j.contains("version") || j["version"] != kRunVersion)
    fail(path, ": version ", j.contains("version") ? j["version"].dump() : "missing",
         " (this finegpt reads version ", kRunVersion, ")");
  auto field = [&](const json &obj, const char *key, json::value_t type) -> const json & {
    auto it = obj.find(key);
    const bool ok =
        it != obj.end() &&
        (it->type() == type || (type == json::value_t::number_float && it->is_number()) ||
         (type == json::value_t::number_integer && it->is_number_integer()));
    if (!ok) fail(path, ": \"", key, "\" is missing or of the wrong type");
    return *it;
  };
  using T = json::value_t;
  RunInfo r;
  r.started = field(j, "started", T::string).get<std::string>();
  r.engine = field(j, "engine", T::string).get<std::string>();
  r.ranks = field(j, "ranks", T::number_integer).get<int>();
  r.parameters = field(j, "parameters", T::number_integer).get<long long>();
  r.tokens_per_step = field(j, "tokens_per_step", T::number_integer).get<long long>();
  r.max_iters = field(j, "max_iters", T::number_integer).get<long>();
  for (const json &kv : field(j, "config", T::array)) {
    if (!kv.is_array() || kv.size() != 2 || !kv[0].is_string() || !kv[1].is_string())
      fail(path, ": \"config\" holds something other than [key, value] pairs");
    r.config.emplace_back(kv[0].get<std::string>(), kv[1].get<std::string>());
  }
  for (const json &b : field(j, "memory_plan", T::array)) {
    if (!b.is_object()) fail(path, ": \"memory_plan\" holds something other than buffers");
    r.plan.push_back({field(b, "group", T::string).get<std::string>(),
                      field(b, "name", T::string).get<std::string>(),
                      field(b, "shape", T::string).get<std::string>(),
                      field(b, "bytes", T::number_float).get<double>()});
  }
  return r;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e12) return "?";
  const long long t = std::llround(seconds);
  char buf[48];
  if (t < 60)
    std::snprintf(buf, sizeof buf, "%llds", t);
  else if (t < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", t / 60, t % 60);
  else if (t < 86400)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", t / 3600, t % 3600 / 60);
  else
    std::snprintf(buf, sizeof buf, "%lldd%02lldh", t / 86400, t % 86400 / 3600);
  return buf;
}

} // namespace finegpt
