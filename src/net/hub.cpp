// The hub's API (see hub.h): addresses, JSON answers read with nlohmann/json, pagination, and
// the messages for what users get wrong (a name that does not exist, a private repository, a
// config without Parquet files).
#include "net/hub.h"

#include "core/error.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace finegpt {

namespace {

// Percent-encodes what is not unreserved (RFC 3986), keeping '/' between path segments.
std::string encode_path(const std::string &s) {
  static const char *hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out += char(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string api_base(const std::string &endpoint, RepoType t, const std::string &repo) {
  return cat(endpoint, "/api/", t == RepoType::Model ? "models/" : "datasets/", encode_path(repo));
}

// The URL of the Link header's rel="next", or "".
std::string next_link(const std::string &link) {
  size_t rel = link.find("rel=\"next\"");
  if (rel == std::string::npos) return "";
  size_t close = link.rfind('>', rel), open = link.rfind('<', rel);
  if (close == std::string::npos || open == std::string::npos || open > close) return "";
  return link.substr(open + 1, close - open - 1);
}

nlohmann::json parse_json(const HttpResponse &r, const std::string &url) {
  try {
    return nlohmann::json::parse(r.body);
  } catch (const nlohmann::json::exception &) {
    fail(url, ": the hub's answer is not JSON (is HF_ENDPOINT a hub?)");
  }
}

std::string not_found(RepoType t, const std::string &repo, const std::string &endpoint) {
  return cat("the hub has no ", repo_type_name(t), " '", repo, "' (", endpoint,
             "; a private or gated one needs HF_TOKEN)");
}

} // namespace

const char *repo_type_name(RepoType t) { return t == RepoType::Model ? "model" : "dataset"; }

std::string hub_endpoint() {
  std::string e = "https://huggingface.co";
  if (const char *v = std::getenv("HF_ENDPOINT"); v && *v) e = v;
  while (!e.empty() && e.back() == '/')
    e.pop_back();
  if (e.rfind("http://", 0) != 0 && e.rfind("https://", 0) != 0)
    fail("HF_ENDPOINT='", e, "' must start with http:// or https://");
  return e;
}

Hub::Hub(HttpOptions opt, std::string endpoint)
    : opt_(std::move(opt)), endpoint_(std::move(endpoint)) {}

HttpResponse Hub::api(const std::string &url) const { return http_get(url, opt_); }

std::string Hub::commit(RepoType type, const std::string &repo, const std::string &revision) const {
  const std::string url = cat(api_base(endpoint_, type, repo), "/revision/", encode_path(revision));
  HttpResponse r = api(url);
  if (r.status == 404 || r.status == 401) {
    // A missing revision and a missing repository both answer 404: tell them apart.
    if (revision != "main" && exists(type, repo))
      fail(repo_type_name(type), " '", repo, "' has no revision '", revision, "'");
    fail(not_found(type, repo, endpoint_));
  }
  if (r.status == 403)
    fail(repo_type_name(type), " '", repo, "': access denied (HTTP 403): ",
         opt_.token.empty() ? "set HF_TOKEN" : "HF_TOKEN has no access",
         " (gated repositories need their terms accepted on the hub)");
  if (r.status != 200) fail(url, ": HTTP ", r.status);
  nlohmann::json j = parse_json(r, url);
  if (!j.is_object() || !j.contains("sha") || !j["sha"].is_string())
    fail(url, ": the hub's answer has no commit (\"sha\")");
  return j["sha"].get<std::string>();
}

bool Hub::exists(RepoType type, const std::string &repo) const {
  const std::string url = cat(api_base(endpoint_, type, repo), "/revision/main");
  HttpResponse r = api(url);
  if (r.status == 404 || r.status == 401) return false;
  if (r.status == 200 || r.status == 403) return true;
  fail(url, ": HTTP ", r.status);
}

std::vector<HubFile> Hub::list(RepoType type, const std::string &repo, const std::string &commit,
                               const std::string &folder, bool *no_folder) const {
  std::string url = cat(api_base(endpoint_, type, repo), "/tree/", encode_path(commit),
                        folder.empty() ? "" : "/" + encode_path(folder), "?recursive=true");
  std::vector<HubFile> out;
  for (int page = 0; !url.empty(); page++) {
    FINEGPT_CHECK(page < 100000, url, ": more than 100000 pages of files");
    HttpResponse r = api(url);
    if (r.status == 404 && page == 0) {
      if (!no_folder) fail(repo_type_name(type), " '", repo, "' has no folder '", folder, "'");
      *no_folder = true;
      return {};
    }
    if (r.status != 200) fail(url, ": HTTP ", r.status);
    nlohmann::json j = parse_json(r, url);
    if (!j.is_array()) fail(url, ": the hub's answer is not a list of files");
    for (const auto &e : j) {
      if (!e.is_object() || e.value("type", "") != "file") continue;
      HubFile f;
      try {
        f.path = e.at("path").get<std::string>();
        f.size = e.at("size").get<uint64_t>();
        f.git_oid = e.value("oid", "");
        if (e.contains("lfs") && e["lfs"].is_object()) {
          f.sha256 = e["lfs"].value("oid", "");
          f.size = e["lfs"].value("size", f.size);
        }
      } catch (const nlohmann::json::exception &) {
        fail(url, ": a file entry without a path or size");
      }
      FINEGPT_CHECK(f.path.find("..") == std::string::npos && !f.path.empty() && f.path[0] != '/',
                    url, ": the hub lists a file with an unsafe path '", f.path, "'");
      out.push_back(std::move(f));
    }
    url = next_link(r.header("link"));
  }
  std::sort(out.begin(), out.end(),
            [](const HubFile &a, const HubFile &b) { return a.path < b.path; });
  return out;
}

std::string Hub::file_url(RepoType type, const std::string &repo, const std::string &commit,
                          const std::string &path) const {
  return cat(endpoint_, type == RepoType::Dataset ? "/datasets/" : "/", encode_path(repo),
             "/resolve/", encode_path(commit), "/", encode_path(path));
}

HubParquetSet hub_parquet_files(const Hub &hub, const std::string &repo, const std::string &name,
                                const std::string &revision) {
  HubParquetSet s;
  s.repo = repo;
  s.commit = hub.commit(RepoType::Dataset, repo, revision);
  // The folders a config name can mean, in order: the name as a path, data/NAME (one folder per
  // config), and NAME with its first '-' as '/' (FineWeb's sample-10BT is sample/10BT/).
  std::vector<std::string> candidates;
  if (!name.empty()) {
    candidates.push_back(name);
    candidates.push_back("data/" + name);
    if (size_t dash = name.find('-'); dash != std::string::npos) {
      std::string n = name;
      n[dash] = '/';
      candidates.push_back(n);
    }
  } else {
    candidates.push_back("");
  }
  std::vector<HubFile> files;
  std::string tried;
  bool found = false;
  for (const auto &c : candidates) {
    bool missing = false;
    files = hub.list(RepoType::Dataset, repo, s.commit, c, &missing);
    if (missing) {
      tried += (tried.empty() ? "" : ", ") + c + "/";
      continue;
    }
    s.folder = c, found = true;
    break;
  }
  if (!found)
    fail("dataset '", repo, "' has no config or folder '", name, "' (looked in ", tried, ")");
  for (auto &f : files)
    if (f.path.size() > 8 && f.path.compare(f.path.size() - 8, 8, ".parquet") == 0)
      s.files.push_back(f);
  if (s.files.empty()) {
    std::string some;
    for (size_t i = 0; i < files.size() && i < 3; i++)
      some += (i ? ", " : "") + files[i].path;
    fail("dataset '", repo, "' has no Parquet files",
         s.folder.empty() ? "" : " in " + s.folder + "/",
         files.empty() ? std::string(" (it is empty)")
                       : cat(" (it has ", files.size(), " other files: ", some,
                             files.size() > 3 ? ", ..." : "", ")"));
  }
  return s;
}

void parse_hub_input(const std::string &input, std::string &repo, std::string &name) {
  std::string s = input.substr(input.rfind("hub:", 0) == 0 ? 4 : 0);
  size_t slash = s.find('/');
  size_t second = slash == std::string::npos ? slash : s.find('/', slash + 1);
  repo = s.substr(0, second);
  name = second == std::string::npos ? "" : s.substr(second + 1);
  while (!name.empty() && name.back() == '/')
    name.pop_back();
  if (slash == std::string::npos || slash == 0 || slash + 1 == repo.size())
    fail("--input '", input, "': a hub input is hub:ORG/NAME or hub:ORG/NAME/CONFIG (like ",
         "hub:HuggingFaceFW/fineweb/sample-10BT)");
}

} // namespace finegpt
