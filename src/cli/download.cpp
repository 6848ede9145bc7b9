// `finegpt download`: a dataset's Parquet files or a model's files from the Hugging Face hub
// (net/hub.h, net/http.h), with a progress line. Datasets land as DIR/<path in the repository>;
// models in the hub's cache layout ($HF_HOME/hub/models--ORG--NAME/{blobs,snapshots,refs}), where
// transformers and finegpt's init_from look, unless --to names a folder.
#include "cli/commands.h"
#include "cli/options.h"
#include "core/error.h"
#include "core/file.h"
#include "core/units.h"
#include "net/hub.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fnmatch.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace finegpt {

namespace fs = std::filesystem;

namespace {

const char *kUsage =
    R"(usage: finegpt download REPO [--name CONFIG] [--to DIR] [options]

Downloads from the Hugging Face hub ($HF_ENDPOINT, default https://huggingface.co; $HF_TOKEN for
private or gated repositories), without Python: several files at once, resumed where an
interrupted run stopped, each checked against the size and sha256 the hub lists.

  finegpt download HuggingFaceFW/fineweb --name sample-10BT --to fineweb
      the dataset's Parquet files (any dataset repository whose files are Parquet, e.g.
      HuggingFaceFW/fineweb-edu) as fineweb/sample/10BT/*.parquet, for finegpt prepare
  finegpt download openai-community/gpt2
      the model's config, weights and tokenizer files into the hub's cache ($HF_HUB_CACHE, or
      $HF_HOME/hub, default ~/.cache/huggingface/hub), where init_from='gpt2' finds them

Without the files on disk first: finegpt prepare --input hub:HuggingFaceFW/fineweb/sample-10BT
)";

std::string hub_cache() {
  if (const char *c = std::getenv("HF_HUB_CACHE"); c && *c) return c;
  if (const char *h = std::getenv("HF_HOME"); h && *h) return (fs::path(h) / "hub").string();
  const char *home = std::getenv("HOME");
  if (!home || !*home) fail("no HOME, HF_HOME or HF_HUB_CACHE to find the hub's cache; give --to");
  return (fs::path(home) / ".cache" / "huggingface" / "hub").string();
}

bool matches_any(const std::string &path, const std::string &patterns) {
  size_t start = 0;
  while (start <= patterns.size()) {
    size_t comma = patterns.find(',', start);
    if (comma == std::string::npos) comma = patterns.size();
    const std::string p = patterns.substr(start, comma - start);
    if (!p.empty() && fnmatch(p.c_str(), path.c_str(), FNM_PATHNAME) == 0) return true;
    start = comma + 1;
  }
  return false;
}

uint64_t bytes_present(const std::string &dest, uint64_t size) {
  std::error_code ec;
  if (fs::is_regular_file(dest, ec) && fs::file_size(dest, ec) == size) return size;
  const uint64_t part = fs::file_size(dest + ".incomplete", ec);
  return ec || part > size ? 0 : part;
}

// Refuses a download that cannot fit (the rest of each file, against the free space where it
// goes), before a byte is written.
void check_space(const std::string &dir, uint64_t need) {
  struct statvfs st;
  if (statvfs(dir.c_str(), &st) != 0) return;
  const uint64_t free_bytes = uint64_t(st.f_bavail) * st.f_frsize;
  if (need > free_bytes)
    fail(dir, ": needs ", human(double(need), "B"), " more, and only ",
         human(double(free_bytes), "B"), " are free there");
}

// The progress line on stderr: in place on a terminal, else one line every 5 seconds.
struct ProgressLine {
  bool enabled, tty = isatty(STDERR_FILENO) == 1;
  uint64_t total;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now(), last = start;
  bool shown = false;

  void show(uint64_t done, bool force = false) {
    if (!enabled) return;
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last < std::chrono::duration<double>(tty ? 0.25 : 5.0)) return;
    last = now;
    const double el = std::max(1e-9, std::chrono::duration<double>(now - start).count());
    const double rate = double(done) / el;
    const double frac = total ? std::min(1.0, double(done) / double(total)) : 1.0;
    const std::string eta =
        rate > 0 ? duration_text(double(total - std::min(done, total)) / rate) : std::string("?");
    const std::string line =
        cat("download: ", human(double(done), "B"), " of ", human(double(total), "B"), " (",
            int(frac * 100), "%), ", human(rate, "B/s"), ", ETA ", eta);
    std::fprintf(stderr, tty ? "\r\033[K%s" : "%s\n", line.c_str());
    std::fflush(stderr);
    shown = true;
  }
  void clear() {
    if (shown && tty) std::fprintf(stderr, "\r\033[K");
    shown = false;
  }
};

} // namespace

int cmd_download(const Args &args) {
  Options o;
  if (!o.parse(args,
               {{"name", "", "dataset config (sample-10BT) or folder (sample/10BT)"},
                {"to", "",
                 "folder to write to (datasets: default ./NAME of REPO; models: default the "
                 "hub's cache)"},
                {"repo_type", "",
                 "model or dataset (default: dataset with --name, else a model "
                 "if the hub has one of that name, else a dataset)"},
                {"revision", "main", "branch, tag or commit"},
                {"max_files", "0", "only the first N files, by path (0 = all)"},
                {"include", "*.json,*.safetensors,*.txt",
                 "models: comma-separated patterns of the files to take"},
                {"parallel", "4", "files downloaded at once"},
                {"retries", "5", "tries after the first on 429, 5xx and dropped connections"},
                {"quiet", "false", "no progress line", true}},
               kUsage))
    return 0;
  if (o.positional().size() != 1)
    fail(o.positional().empty() ? "give the repository to download, like HuggingFaceFW/fineweb"
                                : cat("unexpected argument '", o.positional()[1], "'"));
  const std::string repo = o.positional()[0];
  if (repo.find('/') == std::string::npos || repo.front() == '/' || repo.back() == '/' ||
      repo.find("..") != std::string::npos || repo.find('/') != repo.rfind('/'))
    fail("'", repo, "' is not a hub repository name (ORG/NAME, like HuggingFaceFW/fineweb)");
  const long max_files = o.integer("max_files"), parallel = o.integer("parallel"),
             retries = o.integer("retries");
  FINEGPT_CHECK(max_files >= 0, "--max-files must be 0 (all) or more, got ", max_files);
  FINEGPT_CHECK(parallel >= 1 && parallel <= 64, "--parallel must be 1 to 64, got ", parallel);
  FINEGPT_CHECK(retries >= 0 && retries <= 100, "--retries must be 0 to 100, got ", retries);
  const std::string rt = o.str("repo_type");
  FINEGPT_CHECK(rt.empty() || rt == "model" || rt == "dataset",
                "--repo-type must be model or dataset, got '", rt, "'");
  // A write past RLIMIT_FSIZE then fails with EFBIG (reported) instead of killing us.
  std::signal(SIGXFSZ, SIG_IGN);

  HttpOptions http = http_options_from_env();
  http.retries = int(retries);
  Hub hub(http);
  RepoType type = RepoType::Dataset;
  if (rt == "model" || (rt.empty() && o.str("name").empty() && hub.exists(RepoType::Model, repo)))
    type = RepoType::Model;
  else if (rt.empty() && o.str("name").empty() && !hub.exists(RepoType::Dataset, repo))
    fail("the hub has no model or dataset '", repo, "' (", hub.endpoint(),
         "; a private or gated one needs HF_TOKEN)");
  if (type == RepoType::Model && o.given("name"))
    fail("--name picks a dataset's config; '", repo, "' is a model");
  if (type == RepoType::Dataset && o.given("include"))
    fail("--include applies to models; a dataset's Parquet files are what download takes");

  std::string commit, dest_dir, shown_dir;
  std::vector<HubFile> files;
  if (type == RepoType::Dataset) {
    HubParquetSet set = hub_parquet_files(hub, repo, o.str("name"), o.str("revision"));
    commit = set.commit, files = set.files;
    dest_dir = o.str("to").empty() ? repo.substr(repo.find('/') + 1) : o.str("to");
    shown_dir = set.folder.empty() ? dest_dir : (fs::path(dest_dir) / set.folder).string();
  } else {
    commit = hub.commit(type, repo, o.str("revision"));
    for (auto &f : hub.list(type, repo, commit, ""))
      if (matches_any(f.path, o.str("include"))) files.push_back(f);
    if (files.empty())
      fail("model '", repo, "' has no files matching --include ", o.str("include"));
    if (o.str("to").empty()) {
      std::string folder = "models--" + repo;
      folder.replace(folder.find('/'), 1, "--");
      dest_dir = (fs::path(hub_cache()) / folder).string();
    } else {
      dest_dir = o.str("to");
    }
    shown_dir = dest_dir;
  }
  if (max_files > 0 && size_t(max_files) < files.size()) files.resize(size_t(max_files));

  // The hub's cache: blobs/<etag> (the LFS sha256, else the git blob id), and
  // snapshots/<commit>/<path> a relative link to its blob; refs/<revision> holds the commit.
  const bool cache_layout = type == RepoType::Model && o.str("to").empty();
  std::vector<FileDownload> jobs;
  uint64_t need = 0, total = 0;
  for (const auto &f : files) {
    FileDownload d;
    d.url = hub.file_url(type, repo, commit, f.path);
    d.size = f.size, d.sha256 = f.sha256, d.git_sha1 = f.git_oid, d.label = f.path;
    d.dest =
        cache_layout
            ? (fs::path(dest_dir) / "blobs" / (f.sha256.empty() ? f.git_oid : f.sha256)).string()
            : (fs::path(dest_dir) / f.path).string();
    FINEGPT_CHECK(!cache_layout || !(f.sha256.empty() && f.git_oid.empty()), repo, ": ", f.path,
                  " has no oid in the hub's listing");
    need += f.size - bytes_present(d.dest, f.size);
    total += f.size;
    jobs.push_back(d);
  }
  make_dirs(dest_dir);
  check_space(dest_dir, need);

  ProgressLine progress{!o.flag("quiet"), false, need};
  const auto t0 = std::chrono::steady_clock::now();
  Downloads downloads(jobs, int(parallel), 0, http);
  try {
    downloads.wait_all([&] { progress.show(downloads.bytes()); });
  } catch (...) {
    progress.clear();
    throw;
  }
  progress.clear();
  const double secs =
      std::max(1e-9, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

  if (cache_layout) {
    const fs::path snap = fs::path(dest_dir) / "snapshots" / commit;
    for (size_t i = 0; i < files.size(); i++) {
      const fs::path link = snap / files[i].path;
      make_dirs(link.parent_path().string());
      const fs::path target = fs::relative(jobs[i].dest, link.parent_path());
      std::error_code ec;
      if (fs::is_symlink(link, ec) && fs::read_symlink(link, ec) == target) continue;
      fs::remove(link, ec);
      fs::create_symlink(target, link, ec);
      if (ec) fail(link.string(), ": cannot link to ", target.string(), ": ", ec.message());
    }
    if (o.str("revision") != commit) {
      make_dirs((fs::path(dest_dir) / "refs").string());
      write_file_atomic((fs::path(dest_dir) / "refs" / o.str("revision")).string(), commit);
    }
    shown_dir = snap.string();
  }
  std::printf("download: %zu file%s, %s (%s in this run, %.1f s, %s) of %s %s at %.12s -> %s\n",
              files.size(), files.size() == 1 ? "" : "s", human(double(total), "B").c_str(),
              human(double(downloads.bytes()), "B").c_str(), secs,
              human(double(downloads.bytes()) / secs, "B/s").c_str(), repo_type_name(type),
              repo.c_str(), commit.c_str(), shown_dir.c_str());
  return 0;
}

} // namespace finegpt
