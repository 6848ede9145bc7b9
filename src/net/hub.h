// The Hugging Face hub, the part finegpt needs, over its HTTP API (net/http.h): a repository's
// commit for a revision (GET {endpoint}/api/{models|datasets}/{repo}/revision/{rev}), its files
// with sizes and digests (GET .../tree/{commit}/{folder}?recursive=true, paginated by Link
// headers), and the address of a file ({endpoint}/[datasets/]{repo}/resolve/{commit}/{path}).
// Files are always fetched at the commit the revision named at listing time, so a push to the
// repository during a download cannot mix two versions. HF_ENDPOINT and HF_TOKEN are honoured.
// Not here: what to do with the files (cli/download.cpp, data/sources.cpp for prepare).
#pragma once
#include "net/http.h"

#include <cstdint>
#include <string>
#include <vector>

namespace finegpt {

enum class RepoType { Model, Dataset };
const char *repo_type_name(RepoType t); // "model", "dataset"

struct HubFile {
  std::string path; // in the repository
  uint64_t size = 0;
  std::string sha256;  // LFS files: the LFS oid
  std::string git_oid; // the git blob id (sha1)
};

// HF_ENDPOINT without a trailing '/', or https://huggingface.co.
std::string hub_endpoint();

class Hub {
public:
  explicit Hub(HttpOptions opt, std::string endpoint = hub_endpoint());
  // The commit sha `revision` names. Error naming the repository when the hub has none (404, or
  // 401 for a private or gated one without a token), or when the revision does not exist.
  std::string commit(RepoType type, const std::string &repo, const std::string &revision) const;
  // Whether the hub has such a repository (false on 401/404; Error on anything else).
  bool exists(RepoType type, const std::string &repo) const;
  // The files under `folder` ("" = all), recursively, sorted by path. When the repository has
  // no such folder: *no_folder = true and nothing, or (no_folder null) Error naming it.
  std::vector<HubFile> list(RepoType type, const std::string &repo, const std::string &commit,
                            const std::string &folder, bool *no_folder = nullptr) const;
  std::string file_url(RepoType type, const std::string &repo, const std::string &commit,
                       const std::string &path) const;
  const HttpOptions &options() const { return opt_; }
  const std::string &endpoint() const { return endpoint_; }

private:
  HttpResponse api(const std::string &url) const;
  HttpOptions opt_;
  std::string endpoint_;
};

// A dataset's Parquet files for one config, at one commit.
struct HubParquetSet {
  std::string repo, commit, folder;
  std::vector<HubFile> files; // the .parquet files under `folder`, sorted by path
};

// `name`: a config as `datasets` names it ("sample-10BT": the folder sample/10BT; a folder
// data/NAME or NAME itself), a folder path ("sample/10BT"), or "" for the whole repository.
// Error when the repository has no such folder or no Parquet files there (naming what it has).
HubParquetSet hub_parquet_files(const Hub &hub, const std::string &repo, const std::string &name,
                                const std::string &revision = "main");

// prepare's "hub:ORG/NAME[/CONFIG]" -> repository and config; Error when malformed.
void parse_hub_input(const std::string &input, std::string &repo, std::string &name);

} // namespace finegpt
