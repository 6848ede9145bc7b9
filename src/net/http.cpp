// GETs and downloads over libcurl (see http.h): one easy handle per request, a retry loop
// around it, and for files a write callback that streams to "<dest>.incomplete" through a
// running digest, so memory does not grow with the file.
#include "net/http.h"

#include "core/digest.h"
#include "core/error.h"
#include "core/file.h"
#include "core/version.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <curl/curl.h>
#include <filesystem>
#include <unistd.h>

namespace finegpt {

namespace fs = std::filesystem;

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) fail("libcurl failed to initialize");
  });
}

std::string lower(std::string s) {
  for (char &c : s)
    c = char(std::tolower((unsigned char)c));
  return s;
}

// One request on one easy handle: headers collected per answer (a redirect starts a new set),
// the body handed to `on_data`.
struct Request {
  CURL *h = nullptr;
  curl_slist *hdrs = nullptr;
  std::vector<std::pair<std::string, std::string>> headers;
  std::function<bool(const char *, size_t)> on_data; // false: abort the transfer
  const std::atomic<bool> *stop = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {};

  Request(const std::string &url, const HttpOptions &opt) {
    global_init();
    h = curl_easy_init();
    if (!h) fail("libcurl could not make a request handle");
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, opt.stall_timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024); // fewer, larger writes
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    const std::string agent = cat("finegpt/", version());
    curl_easy_setopt(h, CURLOPT_USERAGENT, agent.c_str());
    // A custom Authorization header is not sent on to another host after a redirect (libcurl
    // >= 7.58), which is what the hub's redirects to its storage need.
    if (!opt.token.empty())
      hdrs = curl_slist_append(hdrs, ("Authorization: Bearer " + opt.token).c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &Request::on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, this);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Request::on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &Request::on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, this);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  }
  ~Request() {
    curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
  }
  Request(const Request &) = delete;
  Request &operator=(const Request &) = delete;

  long status() const {
    long s = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s);
    return s;
  }
  std::string header(const std::string &name) const {
    for (const auto &[k, v] : headers)
      if (k == name) return v;
    return "";
  }
  // CURLE_OK or the failure, as a phrase.
  std::string perform(CURLcode &rc) {
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK) return "";
    return errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
  }

  static size_t on_header(char *p, size_t size, size_t n, void *self) {
    auto *r = static_cast<Request *>(self);
    std::string line(p, size * n);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
      line.pop_back();
    if (line.rfind("HTTP/", 0) == 0) {
      r->headers.clear(); // a new answer (after a redirect or a 100 Continue)
    } else if (auto colon = line.find(':'); colon != std::string::npos) {
      std::string v = line.substr(colon + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      r->headers.emplace_back(lower(line.substr(0, colon)), v);
    }
    return size * n;
  }
  static size_t on_write(char *p, size_t size, size_t n, void *self) {
    auto *r = static_cast<Request *>(self);
    return r->on_data(p, size * n) ? size * n : 0;
  }
  static int on_progress(void *self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto *r = static_cast<Request *>(self);
    return r->stop && r->stop->load() ? 1 : 0;
  }
};

bool retriable_status(long s) { return s == 429 || s == 408 || (s >= 500 && s <= 599); }

// The wait before try number `attempt` + 1 (0-based): Retry-After when the server gives seconds,
// else backoff * 2^attempt; at most 60 s.
double retry_wait(const HttpOptions &opt, int attempt, const std::string &retry_after) {
  double w = opt.backoff_s * std::pow(2.0, attempt);
  if (!retry_after.empty()) {
    char *end = nullptr;
    double v = std::strtod(retry_after.c_str(), &end);
    if (end && *end == '\0' && v >= 0) w = v;
  }
  return std::min(w, 60.0);
}

void sleep_s(double s, const std::atomic<bool> *stop) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(s);
  while (std::chrono::steady_clock::now() < until) {
    if (stop && stop->load()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string status_text(long s) {
  switch (s) {
  case 401:
    return "401 Unauthorized";
  case 403:
    return "403 Forbidden";
  case 404:
    return "404 Not Found";
  case 408:
    return "408 Request Timeout";
  case 416:
    return "416 Range Not Satisfiable";
  case 429:
    return "429 Too Many Requests";
  case 500:
    return "500 Internal Server Error";
  case 502:
    return "502 Bad Gateway";
  case 503:
    return "503 Service Unavailable";
  case 504:
    return "504 Gateway Timeout";
  default:
    return cat(s);
  }
}

struct Stopped {};

} // namespace

HttpOptions http_options_from_env() {
  HttpOptions o;
  if (const char *t = std::getenv("HF_TOKEN"); t && *t) o.token = t;
  if (const char *b = std::getenv("FINEGPT_HTTP_BACKOFF"); b && *b) {
    char *end = nullptr;
    double v = std::strtod(b, &end);
    if (*end != '\0' || !(v >= 0 && v <= 60))
      fail("FINEGPT_HTTP_BACKOFF='", b, "' must be seconds between 0 and 60");
    o.backoff_s = v;
  }
  return o;
}

std::string HttpResponse::header(const std::string &name) const {
  for (const auto &[k, v] : headers)
    if (k == name) return v;
  return "";
}

HttpResponse http_get(const std::string &url, const HttpOptions &opt) {
  constexpr size_t kMaxBody = size_t(64) << 20;
  for (int attempt = 0;; attempt++) {
    HttpResponse res;
    Request r(url, opt);
    r.on_data = [&](const char *p, size_t n) {
      if (res.body.size() + n > kMaxBody) return false;
      res.body.append(p, n);
      return true;
    };
    CURLcode rc;
    std::string why = r.perform(rc);
    res.status = r.status();
    res.headers = r.headers;
    if (rc == CURLE_WRITE_ERROR) fail(url, ": the answer is larger than 64 MB");
    if (rc == CURLE_OK && !retriable_status(res.status)) return res;
    if (rc == CURLE_OK) why = cat("HTTP ", status_text(res.status));
    if (attempt >= opt.retries)
      fail(url, ": ", why, " (", attempt + 1, attempt ? " tries" : " try",
           "); try again later, or check the address and HF_ENDPOINT");
    sleep_s(retry_wait(opt, attempt, r.header("retry-after")), nullptr);
  }
}

void download_file(const FileDownload &d, const HttpOptions &opt, std::atomic<uint64_t> *counter,
                   const std::atomic<bool> *stop) {
  const std::string part = d.dest + ".incomplete";
  const std::string name = d.label.empty() ? d.dest : d.label;
  std::error_code ec;
  if (fs::is_regular_file(d.dest, ec) && fs::file_size(d.dest, ec) == d.size && !ec) return;
  const fs::path parent = fs::path(d.dest).parent_path();
  if (!parent.empty()) make_dirs(parent.string());

  const bool check_sha256 = !d.sha256.empty();
  // Hashed on its own thread, beside the receive and the write.
  BackgroundDigest digest(check_sha256 ? Digest::Kind::Sha256 : Digest::Kind::Sha1);
  const bool check = check_sha256 || !d.git_sha1.empty();
  const auto start_digest = [&] {
    digest.reset();
    if (!check_sha256) {
      const std::string head = cat("blob ", d.size, std::string(1, '\0'));
      digest.update(head.data(), head.size());
    }
  };
  start_digest();

  // What an earlier try or run left: its bytes go through the digest first.
  uint64_t have = fs::is_regular_file(part, ec) ? fs::file_size(part, ec) : 0;
  if (ec || have > d.size) have = 0;
  FILE *f = std::fopen(part.c_str(), have ? "r+b" : "wb");
  if (!f) fail(part, ": cannot write: ", std::strerror(errno));
  std::setvbuf(f, nullptr, _IOFBF, size_t(1) << 20);
  struct Closer {
    FILE *&f;
    ~Closer() {
      if (f) std::fclose(f);
    }
  } closer{f};
  if (have) {
    std::vector<char> buf(size_t(1) << 20);
    uint64_t left = have;
    while (left) {
      const size_t n = std::fread(buf.data(), 1, std::min<uint64_t>(left, buf.size()), f);
      if (n == 0) fail(part, ": read failed: ", std::strerror(errno));
      digest.update(buf.data(), n);
      left -= n;
    }
    if (std::fseek(f, long(have), SEEK_SET) != 0) fail(part, ": seek failed");
  }
  const auto restart = [&] {
    if (std::fflush(f) != 0 || ftruncate(fileno(f), 0) != 0 || std::fseek(f, 0, SEEK_SET) != 0)
      fail(part, ": cannot truncate: ", std::strerror(errno));
    have = 0;
    start_digest();
  };
  // A file that is wrong (not merely short) goes: its bytes are no start for a resume.
  const auto reject = [&](const std::string &why) {
    std::fclose(f);
    f = nullptr;
    std::remove(part.c_str());
    fail(name, ": ", why, "; removed the download, nothing was written under ", d.dest);
  };

  for (int attempt = 0; have < d.size || d.size == 0; attempt++) {
    Request r(d.url, opt);
    r.stop = stop;
    if (have) curl_easy_setopt(r.h, CURLOPT_RANGE, cat(have, "-").c_str());
    std::string write_error, size_error, error_body;
    bool first = true;
    r.on_data = [&](const char *p, size_t n) {
      const long s = r.status();
      if (s != 200 && s != 206) { // an error page: kept for the message, not written
        if (error_body.size() < 512) error_body.append(p, std::min<size_t>(n, 512));
        return true;
      }
      if (first) {
        first = false;
        if (s == 200 && have) { // the server ignored the Range: from the start
          try {
            restart();
          } catch (const Error &e) {
            write_error = e.what();
            return false;
          }
        }
        if (s == 206) {
          const std::string cr = r.header("content-range");
          unsigned long long a = 0, b = 0, total = 0;
          if (std::sscanf(cr.c_str(), "bytes %llu-%llu/%llu", &a, &b, &total) != 3 || a != have) {
            size_error = cat("the server answered the range request from byte ", have,
                             " with Content-Range '", cr, "'");
            return false;
          }
          if (total != d.size) {
            size_error = cat("the server has ", total, " bytes, the hub lists ", d.size);
            return false;
          }
        } else if (const std::string cl = r.header("content-length");
                   !cl.empty() && std::strtoull(cl.c_str(), nullptr, 10) != d.size) {
          size_error = cat("the server sends ", cl, " bytes, the hub lists ", d.size);
          return false;
        }
      }
      if (have + n > d.size) {
        size_error = cat("the server sent more than the ", d.size, " bytes the hub lists");
        return false;
      }
      if (std::fwrite(p, 1, n, f) != n) {
        write_error = std::strerror(errno);
        return false;
      }
      digest.update(p, n);
      have += n;
      if (counter) *counter += n;
      return true;
    };
    CURLcode rc;
    std::string why = r.perform(rc);
    const long s = r.status();
    if (!size_error.empty()) reject(size_error);
    if (!write_error.empty())
      fail(part, ": write failed: ", write_error, " (", have, " of ", d.size,
           " bytes kept: free some space and run again to resume)");
    if (rc == CURLE_ABORTED_BY_CALLBACK && stop && stop->load()) throw Stopped{};
    if (rc == CURLE_OK) {
      if (s == 416) { // our partial file is not a prefix the server knows: start over
        restart();
        why = "HTTP 416 Range Not Satisfiable";
      } else if (s != 200 && s != 206 && !retriable_status(s)) {
        std::string detail = error_body.substr(0, error_body.find('\n'));
        if (detail.size() > 120) detail.resize(120);
        fail(name, ": HTTP ", status_text(s), " for ", d.url,
             s == 401 || s == 403 ? " (set HF_TOKEN to a token with access)" : "",
             detail.empty() ? "" : cat(": ", detail));
      } else if (retriable_status(s)) {
        why = cat("HTTP ", status_text(s));
      } else if (have == d.size) {
        break;
      } else {
        why = cat("the server closed the connection after ", have, " of ", d.size, " bytes");
      }
    } else if (rc == CURLE_PARTIAL_FILE) {
      why = cat("the connection dropped after ", have, " of ", d.size, " bytes");
    }
    if (d.size == 0 && rc == CURLE_OK && (s == 200 || s == 206)) break;
    if (attempt >= opt.retries)
      fail(name, ": ", why, " (", attempt + 1, attempt ? " tries" : " try", "); ", have, " of ",
           d.size, " bytes kept in ", part, ": run again to resume");
    if (std::fflush(f) != 0) fail(part, ": write failed: ", std::strerror(errno));
    sleep_s(retry_wait(opt, attempt, r.header("retry-after")), stop);
    if (stop && stop->load()) throw Stopped{};
  }

  if (std::fflush(f) != 0 || fsync(fileno(f)) != 0)
    fail(part, ": write failed: ", std::strerror(errno), " (free some space and run again)");
  const int rc = std::fclose(f);
  f = nullptr;
  if (rc != 0) fail(part, ": write failed: ", std::strerror(errno));
  if (check) {
    const std::string got = digest.hex();
    const std::string &want = check_sha256 ? d.sha256 : d.git_sha1;
    if (got != want) {
      std::remove(part.c_str());
      fail(name, ": ", check_sha256 ? "sha256 " : "git blob id ", got, " does not match the hub's ",
           want, "; removed the download, nothing was written under ", d.dest);
    }
  }
  if (std::rename(part.c_str(), d.dest.c_str()) != 0)
    fail(d.dest, ": cannot rename into place: ", std::strerror(errno));
}

Downloads::Downloads(std::vector<FileDownload> files, int parallel, size_t window, HttpOptions opt,
                     size_t first)
    : files_(std::move(files)), window_(window), opt_(std::move(opt)), state_(files_.size(), 0),
      errors_(files_.size()) {
  global_init();
  next_ = std::min(first, files_.size());
  std::fill(state_.begin(), state_.begin() + long(next_), uint8_t(3));
  const int n = std::max(1, std::min<int>(parallel, int(files_.size() - next_)));
  for (int t = 0; t < n; t++)
    threads_.emplace_back([this] { worker(); });
}

Downloads::~Downloads() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto &t : threads_)
    t.join();
}

void Downloads::worker() {
  for (;;) {
    size_t i;
    {
      std::unique_lock<std::mutex> lock(mu_);
      const auto may_start = [&] {
        if (stop_ || first_error_ || next_ >= files_.size()) return true;
        if (!window_) return true;
        size_t unreleased = 0;
        for (size_t k = 0; k < next_; k++)
          unreleased += state_[k] != 3;
        return unreleased < window_;
      };
      cv_.wait(lock, may_start);
      if (stop_ || first_error_ || next_ >= files_.size()) return;
      i = next_++;
      state_[i] = 1;
    }
    std::exception_ptr error;
    bool stopped = false;
    try {
      download_file(files_[i], opt_, &bytes_, &stop_);
    } catch (const Stopped &) {
      stopped = true;
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      state_[i] = stopped || error ? 4 : state_[i] == 1 ? 2 : state_[i];
      if (error) {
        errors_[i] = error;
        if (!first_error_) first_error_ = error;
        if (!window_) stop_ = true; // the command: stop the others now
      }
    }
    cv_.notify_all();
  }
}

void Downloads::wait(size_t i) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto failed = [&] { return state_[i] == 4 || (state_[i] == 0 && first_error_); };
  cv_.wait(lock, [&] { return state_[i] == 2 || state_[i] == 3 || failed(); });
  if (failed()) std::rethrow_exception(errors_[i] ? errors_[i] : first_error_);
}

void Downloads::release(size_t i) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_[i] = 3;
  }
  std::error_code ec;
  fs::remove(files_[i].dest, ec);
  cv_.notify_all();
}

void Downloads::wait_all(const std::function<void()> &tick, double period_s) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto done = [&] {
    return first_error_ ||
           std::all_of(state_.begin(), state_.end(), [](uint8_t s) { return s == 2 || s == 3; });
  };
  while (!cv_.wait_for(lock, std::chrono::duration<double>(period_s), done)) {
    if (tick) {
      lock.unlock();
      tick();
      lock.lock();
    }
  }
  if (first_error_) std::rethrow_exception(first_error_);
}

} // namespace finegpt
