// A build without libcurl (FINEGPT_CURL=OFF): every request refuses, naming the fix.
#include "core/error.h"
#include "net/http.h"

namespace finegpt {

namespace {
[[noreturn]] void no_curl() {
  fail("this build has no libcurl, so it cannot reach the hub (install libcurl4-openssl-dev, or "
       "run scripts/setup.sh, and rebuild)");
}
} // namespace

HttpOptions http_options_from_env() { return {}; }
std::string HttpResponse::header(const std::string &) const { return ""; }
HttpResponse http_get(const std::string &, const HttpOptions &) { no_curl(); }
void download_file(const FileDownload &, const HttpOptions &, std::atomic<uint64_t> *,
                   const std::atomic<bool> *) {
  no_curl();
}
Downloads::Downloads(std::vector<FileDownload>, int, size_t, HttpOptions) { no_curl(); }
Downloads::~Downloads() = default;
void Downloads::wait(size_t) { no_curl(); }
void Downloads::release(size_t) { no_curl(); }
void Downloads::wait_all(const std::function<void()> &, double) { no_curl(); }
void Downloads::worker() {}

} // namespace finegpt
