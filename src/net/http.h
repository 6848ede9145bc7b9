// HTTP(S) GETs over libcurl, for `finegpt download` and `prepare --input hub:...`: small answers
// into memory (the hub's API) and files streamed to disk. Both retry what a retry can fix (429
// and 5xx answers, with exponential backoff or the server's Retry-After; dropped or stalled
// connections) and nothing else. A file arrives under "<dest>.incomplete", continues from that
// file's bytes with a Range request (after a dropped connection, or in a later run), is checked
// against the size and digest the hub lists, and only then renamed to <dest>: no file under its
// final name is ever short or wrong. `Downloads` runs several files at once on a few threads,
// optionally only a window ahead of a reader (prepare). Not a general HTTP client: GET only.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace finegpt {

struct HttpOptions {
  std::string token;         // "Authorization: Bearer <token>" (not sent on to a redirect's host)
  int retries = 5;           // tries after the first one, per request
  double backoff_s = 1.0;    // the first wait; doubled after each failed try (at most 60 s)
  long stall_timeout_s = 60; // a transfer slower than 1 KB/s for this long is a failed try
};

// HF_TOKEN (the hub's token), FINEGPT_HTTP_BACKOFF (seconds; the tests keep it short).
HttpOptions http_options_from_env();

struct HttpResponse {
  long status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers; // of the last answer; names lowercase
  std::string header(const std::string &lowercase_name) const; // "" when absent
};

// GET into memory (at most 64 MB). Returns the final answer whatever its status (the caller
// words 404 or 401 for its context); Error when 429/5xx/connection failures outlast the
// retries.
HttpResponse http_get(const std::string &url, const HttpOptions &opt);

struct FileDownload {
  std::string url;
  std::string dest;     // final path; "<dest>.incomplete" while it arrives
  uint64_t size = 0;    // what the hub lists
  std::string sha256;   // expected digest (the LFS oid), or empty
  std::string git_sha1; // else the git blob id (sha1 of "blob <size>\0" + bytes), or empty
  std::string label;    // for messages (the path in the repository)
};

// One file, as the header says. `counter` (optional) adds the bytes as they arrive; `stop`
// (optional) aborts the transfer (Error "stopped"). A finished <dest> of the right size is
// left alone.
void download_file(const FileDownload &d, const HttpOptions &opt,
                   std::atomic<uint64_t> *counter = nullptr,
                   const std::atomic<bool> *stop = nullptr);

// Downloads `files` on `parallel` threads, in order. With `window` > 0 a file is started only
// while fewer than `window` files before it are unreleased (release()), so that disk use stays
// bounded when a reader consumes and deletes them. After a failure no file is started; without
// a window the transfers under way are stopped too (their .incomplete files stay, to resume)
// and wait_all() rethrows it; with one they finish, and wait(i) rethrows a failure only when
// file i is not there (its own, or the first one when file i was never started), so a reader
// gets every file before the one that failed.
class Downloads {
public:
  // Files before `first` are not fetched (a reader that resumes past them): they count as
  // released.
  Downloads(std::vector<FileDownload> files, int parallel, size_t window, HttpOptions opt,
            size_t first = 0);
  ~Downloads(); // stops the transfers and joins the threads
  Downloads(const Downloads &) = delete;
  Downloads &operator=(const Downloads &) = delete;

  void wait(size_t i);    // until file i is complete (or rethrows the first error)
  void release(size_t i); // the reader is done with file i: deleted, the window moves on
  // Until every file is complete; `tick` is called about every `period_s` meanwhile.
  void wait_all(const std::function<void()> &tick = {}, double period_s = 0.5);
  uint64_t bytes() const { return bytes_.load(); } // transferred in this run
  const std::vector<FileDownload> &files() const { return files_; }

private:
  void worker();
  std::vector<FileDownload> files_;
  size_t window_;
  HttpOptions opt_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<uint8_t> state_; // 0 queued, 1 running, 2 done, 3 released, 4 failed or stopped
  std::vector<std::exception_ptr> errors_; // of the failed files
  size_t next_ = 0;                        // the next file to start
  std::exception_ptr first_error_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> bytes_{0};
  std::vector<std::thread> threads_;
};

} // namespace finegpt
