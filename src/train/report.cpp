// finegpt report's page (see report.h): the plots are inline SVG written here, axes with "nice"
// ticks (1, 2, 5 x 10^k); a series of more points than its plot has pixel columns keeps each
// column's first, lowest, highest and last point, so spikes stay visible in long runs.
#include "train/report.h"

#include "core/error.h"
#include "core/file.h"
#include "model/plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>

namespace finegpt {

namespace {

std::string esc(const std::string &s) {
  std::string out;
  for (char c : s) {
    switch (c) {
    case '&':
      out += "&amp;";
      break;
    case '<':
      out += "&lt;";
      break;
    case '>':
      out += "&gt;";
      break;
    case '"':
      out += "&quot;";
      break;
    case '\'':
      out += "&#39;";
      break;
    default:
      out += c;
    }
  }
  return out;
}

std::string fmt(const char *format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// 1234567 -> "1.23M": counts for people.
std::string si(double v) {
  const char *suffix[] = {"", "k", "M", "G", "T", "P"};
  int k = 0;
  while (std::fabs(v) >= 999.5 && k < 5)
    v /= 1000.0, ++k;
  return fmt(k == 0 || std::fabs(v) >= 100 ? "%.0f"
             : std::fabs(v) >= 10          ? "%.1f"
                                           : "%.2f",
             v) +
         suffix[k];
}

// A plot's series: one field of the records, drawn as a line (markers: evaluations, which are
// few).
struct SeriesSpec {
  const char *field, *label, *color;
  bool markers;
};
struct PlotSpec {
  const char *title, *y_label;
  double y_scale; // value shown = value in the record x y_scale
  std::vector<SeriesSpec> series;
};

// The colours are distinct across the page (the report's test finds each plot by its colour).
const std::vector<PlotSpec> &plot_specs() {
  static const std::vector<PlotSpec> specs = {
      {"Loss",
       "loss (nats per token)",
       1.0,
       {{"loss_mean", "train, each step", "#1f77b4", false},
        {"train_loss", "train, evaluation", "#17becf", true},
        {"val_loss", "val, evaluation", "#d62728", true}}},
      {"Learning rate", "learning rate", 1.0, {{"lr", "lr", "#2ca02c", false}}},
      {"Gradient norm",
       "global L2 norm (before clipping)",
       1.0,
       {{"grad_norm", "gradient norm", "#9467bd", false}}},
      {"Throughput", "tokens per second", 1.0, {{"tok_per_s", "tokens/s", "#ff7f0e", false}}},
      {"Memory in use",
       "MiB (CPU: resident set; GPU: device)",
       1.0,
       {{"memory_mib", "memory in use", "#8c564b", false}}},
      {"Model FLOPs utilization", "MFU (%)", 100.0, {{"mfu", "MFU", "#e377c2", false}}},
  };
  return specs;
}

struct Point {
  double x, y;
};

// Ticks at multiples of a 1, 2 or 5 x 10^k step covering [lo, hi]; the range is widened to them.
std::vector<double> nice_ticks(double &lo, double &hi) {
  if (!(hi > lo)) {
    const double pad = lo == 0 ? 1.0 : std::fabs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  const double raw = (hi - lo) / 5.0, mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double n = raw / mag;
  const double step = (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * mag;
  const double a = std::floor(lo / step + 1e-9) * step, b = std::ceil(hi / step - 1e-9) * step;
  const double count = (b - a) / step;
  // Values past double's range or precision (no step between them) get their two ends.
  if (!std::isfinite(count) || !(count >= 1 && count <= 20) || a + step == a) return {lo, hi};
  lo = a, hi = b;
  std::vector<double> t;
  for (int i = 0; i <= int(std::lround(count)); ++i) {
    const double v = lo + i * step;
    t.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  }
  return t;
}

// The ticks' labels: past 10^4 in the unit (k, M, ...) of the largest, with the decimals the step
// needs, so that one axis reads "0.5M 1.0M 1.5M".
std::vector<std::string> tick_labels(const std::vector<double> &ticks) {
  double largest = 0;
  for (double t : ticks)
    largest = std::max(largest, std::fabs(t));
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : std::max(largest, 1.0);
  const char *suffix[] = {"", "k", "M", "G", "T", "P"};
  const double unit = std::floor(std::log10(largest) / 3);
  const int k = largest >= 1e4 && std::isfinite(unit) ? int(std::min(5.0, unit)) : 0;
  const double scale = std::pow(1000.0, k);
  const double places = std::ceil(-std::log10(step / scale) - 1e-9);
  const int decimals = std::isfinite(places) ? int(std::clamp(places, 0.0, 8.0)) : 0;
  std::vector<std::string> out;
  for (double t : ticks)
    out.push_back(
        t == 0 ? "0" : fmt(("%." + std::to_string(decimals) + "f").c_str(), t / scale) + suffix[k]);
  return out;
}

// Keeps, per pixel column, the first, lowest, highest and last point (in their order).
std::vector<Point> thin(const std::vector<Point> &pts, double x0, double x1, double lo, double hi,
                        int columns) {
  if (int(pts.size()) <= 2 * columns) return pts;
  std::vector<Point> out;
  size_t i = 0;
  while (i < pts.size()) {
    const long col = std::lround((pts[i].x - lo) / (hi - lo) * (x1 - x0));
    size_t j = i, mn = i, mx = i;
    while (j < pts.size() && std::lround((pts[j].x - lo) / (hi - lo) * (x1 - x0)) == col) {
      if (pts[j].y < pts[mn].y) mn = j;
      if (pts[j].y > pts[mx].y) mx = j;
      ++j;
    }
    std::vector<size_t> keep = {i, mn, mx, j - 1};
    std::sort(keep.begin(), keep.end());
    keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
    for (size_t k : keep)
      out.push_back(pts[k]);
    i = j;
  }
  return out;
}

constexpr int kW = 560, kH = 300, kLeft = 72, kRight = 16, kTop = 46, kBottom = 46;

// One plot; `series` holds each spec's points (NaN y: a gap).
std::string svg_plot(const PlotSpec &spec, const std::vector<std::vector<Point>> &series,
                     const std::string &x_label) {
  const double x0 = kLeft, x1 = kW - kRight, y0 = kTop, y1 = kH - kBottom;
  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
  for (const auto &s : series)
    for (const Point &p : s)
      if (std::isfinite(p.y)) {
        xlo = std::min(xlo, p.x), xhi = std::max(xhi, p.x);
        ylo = std::min(ylo, p.y), yhi = std::max(yhi, p.y);
      }
  const bool empty = !std::isfinite(xlo);
  std::string o = cat("<svg class=\"plot\" width=\"", kW, "\" height=\"", kH, "\" viewBox=\"0 0 ",
                      kW, " ", kH, "\" role=\"img\" aria-label=\"", esc(spec.title), "\">\n");
  o += cat("<text x=\"", x0, "\" y=\"18\" class=\"title\">", esc(spec.title), "</text>\n");
  o += cat("<rect x=\"", x0, "\" y=\"", y0, "\" width=\"", x1 - x0, "\" height=\"", y1 - y0,
           "\" class=\"area\"/>\n");
  o += cat("<text x=\"", (x0 + x1) / 2, "\" y=\"", kH - 8,
           "\" class=\"label\" "
           "text-anchor=\"middle\">",
           esc(x_label), "</text>\n");
  o += cat("<text transform=\"translate(14,", (y0 + y1) / 2,
           ") rotate(-90)\" class=\"label\" "
           "text-anchor=\"middle\">",
           esc(spec.y_label), "</text>\n");
  if (empty) {
    o += cat("<text x=\"", (x0 + x1) / 2, "\" y=\"", (y0 + y1) / 2,
             "\" class=\"nodata\" "
             "text-anchor=\"middle\">no data yet</text>\n</svg>\n");
    return o;
  }
  if (xhi == xlo) xhi = xlo + 1; // one point: a range around it
  std::vector<double> xt = nice_ticks(xlo, xhi), yt = nice_ticks(ylo, yhi);
  auto px = [&](double x) { return x0 + (x - xlo) / (xhi - xlo) * (x1 - x0); };
  auto py = [&](double y) { return y1 - (y - ylo) / (yhi - ylo) * (y1 - y0); };
  const std::vector<std::string> xl = tick_labels(xt), yl = tick_labels(yt);
  for (size_t i = 0; i < xt.size(); ++i)
    o += cat("<line x1=\"", fmt("%.1f", px(xt[i])), "\" y1=\"", y0, "\" x2=\"",
             fmt("%.1f", px(xt[i])), "\" y2=\"", y1, "\" class=\"grid\"/><text x=\"",
             fmt("%.1f", px(xt[i])), "\" y=\"", y1 + 16,
             "\" class=\"tick\" text-anchor=\"middle\">", xl[i], "</text>\n");
  for (size_t i = 0; i < yt.size(); ++i)
    o += cat("<line x1=\"", x0, "\" y1=\"", fmt("%.1f", py(yt[i])), "\" x2=\"", x1, "\" y2=\"",
             fmt("%.1f", py(yt[i])), "\" class=\"grid\"/><text x=\"", x0 - 6, "\" y=\"",
             fmt("%.1f", py(yt[i]) + 4), "\" class=\"tick\" text-anchor=\"end\">", yl[i],
             "</text>\n");
  // Legend (series with data only), then the series.
  double lx = x0;
  for (size_t i = 0; i < series.size(); ++i) {
    if (std::none_of(series[i].begin(), series[i].end(),
                     [](const Point &p) { return std::isfinite(p.y); }))
      continue;
    const SeriesSpec &s = spec.series[i];
    o += cat("<line x1=\"", lx, "\" y1=\"34\" x2=\"", lx + 18, "\" y2=\"34\" stroke=\"", s.color,
             "\" stroke-width=\"2\"/><text x=\"", lx + 22, "\" y=\"38\" class=\"legend\">",
             esc(s.label), "</text>\n");
    lx += 34 + 6.5 * double(std::string(s.label).size());
  }
  for (size_t i = 0; i < series.size(); ++i) {
    const SeriesSpec &s = spec.series[i];
    const std::vector<Point> pts = thin(series[i], x0, x1, xlo, xhi, int(x1 - x0));
    std::string line;
    auto flush = [&] {
      if (!line.empty())
        o += cat("<polyline fill=\"none\" stroke=\"", s.color, "\" stroke-width=\"",
                 s.markers ? "1.5" : "2", "\" stroke-linejoin=\"round\" points=\"", line, "\"/>\n");
      line.clear();
    };
    for (const Point &p : pts) {
      if (!std::isfinite(p.y)) {
        flush();
        continue;
      }
      line += cat(line.empty() ? "" : " ", fmt("%.1f", px(p.x)), ",", fmt("%.1f", py(p.y)));
    }
    flush();
    if (s.markers)
      for (const Point &p : pts)
        if (std::isfinite(p.y))
          o += cat("<circle cx=\"", fmt("%.1f", px(p.x)), "\" cy=\"", fmt("%.1f", py(p.y)),
                   "\" r=\"3.5\" fill=\"", s.color, "\"/>\n");
  }
  return o + "</svg>\n";
}

const char *kStyle = R"(
body { font-family: sans-serif; margin: 16px; color: #222; background: #fff; }
h1 { font-size: 20px; margin: 0 0 6px 0; }
h2 { font-size: 16px; margin: 22px 0 8px 0; }
p.summary { margin: 2px 0; font-size: 14px; }
div.plots { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 12px; }
svg.plot { background: #fff; }
svg .title { font-size: 14px; font-weight: bold; fill: #222; }
svg .label { font-size: 12px; fill: #444; }
svg .tick { font-size: 11px; fill: #444; }
svg .legend { font-size: 12px; fill: #222; }
svg .nodata { font-size: 14px; fill: #888; }
svg .area { fill: none; stroke: #999; }
svg .grid { stroke: #e4e4e4; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.code { font-family: monospace; }
div.tables { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
)";

} // namespace

std::string report_html(const std::string &out_dir, const std::vector<MetricRecord> &records,
                        const RunInfo *info) {
  const long long tps = info ? info->tokens_per_step : 0;
  // The x of a record: its tokens, or (older files) the iteration times the tokens per step.
  const bool by_tokens = std::all_of(records.begin(), records.end(),
                                     [&](const MetricRecord &r) { return r.tokens >= 0; }) ||
                         tps > 0;
  auto x_of = [&](const MetricRecord &r) {
    if (r.tokens >= 0) return double(r.tokens);
    const bool eval = r.values.count("val_loss") > 0;
    return tps > 0 ? (double(r.iter) + (eval ? 0 : 1)) * double(tps) : double(r.iter);
  };
  std::string plots;
  for (const PlotSpec &spec : plot_specs()) {
    std::vector<std::vector<Point>> series(spec.series.size());
    bool positive = false;
    for (size_t i = 0; i < spec.series.size(); ++i)
      for (const MetricRecord &r : records)
        if (auto it = r.values.find(spec.series[i].field); it != r.values.end()) {
          series[i].push_back({x_of(r), it->second * spec.y_scale});
          positive = positive || it->second > 0;
        }
    // MFU exists only where the GPU's peak is known; elsewhere the records hold 0.
    if (std::string(spec.series[0].field) == "mfu" && !positive) continue;
    plots += svg_plot(spec, series, by_tokens ? "tokens" : "iteration");
  }

  // The summary: how far the run is, and its latest numbers.
  const MetricRecord *last_step = nullptr, *last_eval = nullptr, *best = nullptr;
  long last_iter = -1;
  for (const MetricRecord &r : records) {
    last_iter = std::max(last_iter, r.iter);
    if (r.values.count("loss")) last_step = &r;
    if (auto v = r.values.find("val_loss"); v != r.values.end() && std::isfinite(v->second)) {
      last_eval = &r;
      if (!best || v->second < best->values.at("val_loss")) best = &r;
    }
  }
  std::string summary;
  if (info)
    summary += cat("<p class=\"summary\">", esc(info->engine),
                   info->ranks > 1 ? cat(" x ", info->ranks, " ranks") : "", "; ",
                   si(double(info->parameters)), " parameters; ", si(double(info->tokens_per_step)),
                   " tokens per step; started ", esc(info->started), "</p>\n");
  if (last_step) {
    const double tokens = x_of(*last_step);
    summary += cat("<p class=\"summary\">iteration ", last_step->iter,
                   info ? cat(" of ", info->max_iters, " (",
                              fmt("%.0f", 100.0 * (double(last_step->iter) + 1) /
                                              (double(info->max_iters) + 1)),
                              "%)")
                        : std::string(),
                   by_tokens ? cat(", ", si(tokens), " tokens") : std::string(), "; loss ",
                   fmt("%.4f", last_step->values.at("loss")),
                   last_step->values.count("tok_per_s")
                       ? cat("; ", si(last_step->values.at("tok_per_s")), " tokens/s")
                       : std::string(),
                   "</p>\n");
  }
  if (last_eval)
    summary +=
        cat("<p class=\"summary\">val loss ", fmt("%.4f", last_eval->values.at("val_loss")),
            " at iteration ", last_eval->iter, "; best ", fmt("%.4f", best->values.at("val_loss")),
            " at iteration ", best->iter, "</p>\n");
  if (!last_step && !last_eval)
    summary += "<p class=\"summary\">no training step or evaluation recorded yet</p>\n";

  std::string tables;
  if (info) {
    std::string config = "<table><tr><th>key</th><th>value</th></tr>\n";
    for (const auto &[k, v] : info->config)
      config += cat("<tr><td>", esc(k), "</td><td class=\"code\">", esc(v), "</td></tr>\n");
    config += "</table>\n";
    // Groups with their totals, then every buffer.
    std::vector<std::string> groups;
    std::map<std::string, double> group_bytes;
    double total = 0;
    for (const auto &b : info->plan) {
      if (!group_bytes.count(b.group)) groups.push_back(b.group);
      group_bytes[b.group] += b.bytes;
      total += b.bytes;
    }
    std::string plan = "<table><tr><th>group</th><th>bytes</th></tr>\n";
    for (const auto &g : groups)
      plan += cat("<tr><td>", esc(g), "</td><td class=\"num\">", format_bytes(group_bytes[g]),
                  "</td></tr>\n");
    plan +=
        cat("<tr><th>total</th><th class=\"num\">", format_bytes(total), "</th></tr></table>\n");
    plan += cat("<details><summary>all ", info->plan.size(),
                " buffers</summary><table><tr>"
                "<th>group</th><th>buffer</th><th>shape</th><th>bytes</th></tr>\n");
    for (const auto &b : info->plan)
      plan += cat("<tr><td>", esc(b.group), "</td><td>", esc(b.name), "</td><td class=\"code\">",
                  esc(b.shape), "</td><td class=\"num\">", format_bytes(b.bytes), "</td></tr>\n");
    plan += "</table></details>\n";
    tables = cat("<div class=\"tables\"><div><h2>Memory plan (one rank)</h2>\n", plan,
                 "</div><div><h2>Configuration</h2>\n", config, "</div></div>\n");
  } else {
    tables = "<p class=\"summary\">No run.json in this folder (finegpt train writes it when a "
             "run starts): no configuration or memory plan to show.</p>\n";
  }

  return cat("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
             "<title>finegpt run ",
             esc(out_dir), "</title>\n<style>", kStyle,
             "</style>\n</head>\n<body>\n<h1>finegpt run ", esc(out_dir), "</h1>\n", summary,
             "<div class=\"plots\">\n", plots, "</div>\n", tables, "<p class=\"summary\">From ",
             esc(out_dir), "/metrics.jsonl (", records.size(),
             " records). The same scalars are in the TensorBoard event files beside it "
             "(tensorboard --logdir ",
             esc(out_dir), ").</p>\n</body>\n</html>\n");
}

std::vector<std::string> write_report(const std::string &out_dir, const std::string &output) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(out_dir, ec);
  if (!fs::exists(st)) fail(out_dir, ": no such folder (give the out_dir of a finegpt train run)");
  if (!fs::is_directory(st))
    fail(out_dir, ": not a folder (give the out_dir of a finegpt train run)");
  const std::string metrics = out_dir + "/metrics.jsonl", run = out_dir + "/run.json";
  if (!file_exists(metrics))
    fail(metrics, ": missing (finegpt train writes it in out_dir when a run starts)");
  // The report never replaces what it reads, nor the run's other files.
  std::vector<std::string> inputs = {metrics, run, out_dir + "/ckpt.bin",
                                     out_dir + "/ckpt.prev.bin"};
  for (const auto &e : fs::directory_iterator(out_dir, ec))
    if (e.path().filename().string().find("tfevents") != std::string::npos)
      inputs.push_back(e.path().string());
  for (const auto &in : inputs)
    if (same_file(output, in))
      fail("--output ", output, " is ", in, ", a file of the run; choose another file");
  const std::vector<MetricRecord> records = read_metrics(metrics);
  if (records.empty())
    fail(metrics, ": no records yet (the run has not finished its first evaluation or step)");
  std::vector<std::string> notes;
  std::unique_ptr<RunInfo> info;
  if (file_exists(run))
    info = std::make_unique<RunInfo>(read_run_info(run));
  else
    notes.push_back(cat(run, " is missing (a run of an older finegpt): the page has no "
                             "configuration or memory plan"));
  write_file_atomic(output, report_html(out_dir, records, info.get()));
  return notes;
}

} // namespace finegpt
