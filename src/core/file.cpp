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
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (std::filesystem::is_directory(st)) fail(path, ": is a folder, not a file");
  // A device (/dev/zero, /dev/urandom, a terminal) has no end to read to; a pipe has one.
  if (std::filesystem::is_character_file(st) || std::filesystem::is_block_file(st) ||
      std::filesystem::is_socket(st))
    fail(path, ": is a device or socket, not a file");
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

bool same_file(const std::string &a, const std::string &b) {
  std::error_code ec;
  return std::filesystem::equivalent(a, b, ec) && !ec;
}

void write_file_atomic(const std::string &user_path, const std::function<void(FILE *)> &write,
                       const AtomicWrite &options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string path = user_path;
  if (fs::is_symlink(user_path, ec)) { // write through the link: its target is the file
    path = fs::weakly_canonical(user_path, ec).string();
    if (ec) fail(user_path, ": cannot follow the symbolic link: ", ec.message());
  }
  const fs::file_status st = fs::status(path, ec);
  if (fs::exists(st) && !fs::is_regular_file(st))
    fail(user_path, ": exists and is not a regular file (",
         fs::is_directory(st) ? "a folder" : "a device, pipe or socket",
         "); refusing to replace it");
  std::string tmp = cat(path, ".tmp.", getpid());
  FILE *f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail(user_path, ": cannot write: ", std::strerror(errno));
  try {
    write(f);
    if (std::fflush(f) != 0) fail(user_path, ": write failed: ", std::strerror(errno));
    if (fsync(fileno(f)) != 0) fail(user_path, ": fsync failed: ", std::strerror(errno));
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    fail(user_path, ": write failed: ", std::strerror(errno));
  }
  try {
    if (options.verify) options.verify(tmp);
    if (!options.keep_previous.empty() && fs::exists(path, ec)) {
      // A second name for the current file, moved over the previous one: `path` never
      // disappears. Where hard links are not possible, the current file is renamed.
      const std::string prev_tmp = cat(options.keep_previous, ".tmp.", getpid());
      std::remove(prev_tmp.c_str());
      if (link(path.c_str(), prev_tmp.c_str()) == 0) {
        if (std::rename(prev_tmp.c_str(), options.keep_previous.c_str()) != 0) {
          std::remove(prev_tmp.c_str());
          fail(options.keep_previous, ": cannot rename into place: ", std::strerror(errno));
        }
      } else if (std::rename(path.c_str(), options.keep_previous.c_str()) != 0) {
        fail(options.keep_previous, ": cannot keep the previous file: ", std::strerror(errno));
      }
    }
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    fail(user_path, ": cannot rename into place: ", std::strerror(e));
  }
}

void write_file_atomic(const std::string &path, const std::string &contents) {
  write_file_atomic(path, [&](FILE *f) { write_bytes(f, contents.data(), contents.size(), path); });
}

void make_dirs(const std::string &path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_directory(path, ec))
    fail(path, ": exists and is not a folder");
  std::filesystem::create_directories(path, ec);
  if (ec) fail(path, ": cannot create directory: ", ec.message());
  if (access(path.c_str(), W_OK) != 0) fail(path, ": directory is not writable");
}

} // namespace finegpt
