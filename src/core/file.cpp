// File helpers (see file.h).
#include "core/file.h"

#include "core/error.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace finegpt {

std::string read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open: ", std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(path, ": read error");
  return ss.str();
}

uint64_t file_size(const std::string &path) {
  std::error_code ec;
  auto n = std::filesystem::file_size(path, ec);
  if (ec) fail(path, ": ", ec.message());
  return n;
}

bool file_exists(const std::string &path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

void write_bytes(FILE *f, const void *data, size_t bytes, const std::string &what) {
  if (bytes && std::fwrite(data, 1, bytes, f) != bytes)
    fail(what, ": write failed: ", std::strerror(errno));
}

void read_bytes(FILE *f, void *data, size_t bytes, const std::string &what) {
  if (bytes && std::fread(data, 1, bytes, f) != bytes)
    fail(what, ": file is truncated (wanted ", bytes, " more bytes)");
}

void write_file_atomic(const std::string &path, const std::function<void(FILE *)> &write) {
  std::string tmp = cat(path, ".tmp.", getpid());
  FILE *f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(path, ": cannot write: ", std::strerror(errno));
  try {
    write(f);
    if (std::fflush(f) != 0) fail(path, ": write failed: ", std::strerror(errno));
    if (fsync(fileno(f)) != 0) fail(path, ": fsync failed: ", std::strerror(errno));
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    fail(path, ": write failed: ", std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    fail(path, ": cannot rename into place: ", std::strerror(e));
  }
}

void write_file_atomic(const std::string &path, const std::string &contents) {
  write_file_atomic(path, [&](FILE *f) { write_bytes(f, contents.data(), contents.size(), path); });
}

void make_dirs(const std::string &path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) fail(path, ": cannot create directory: ", ec.message());
  if (access(path.c_str(), W_OK) != 0) fail(path, ": directory is not writable");
}

} // namespace finegpt
