// File helpers: whole-file reads with clear errors, and atomic writes (temporary name, fsync,
// rename) so that no reader ever sees a half-written file. Not a stream abstraction.
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace finegpt {

// Reads a whole file (or what a pipe holds); throws Error naming the path when it is missing,
// unreadable, a folder or a device.
std::string read_file(const std::string &path);
// Size in bytes; throws Error naming the path when it does not exist.
uint64_t file_size(const std::string &path);
bool file_exists(const std::string &path);

struct AtomicWrite {
  // Called on the complete, closed temporary file before it replaces the destination; throwing
  // leaves the destination as it was.
  std::function<void(const std::string &tmp_path)> verify;
  // When set and the destination exists: the destination becomes this name (replacing an older
  // one) as the new file replaces it, so that at every moment the destination is complete.
  std::string keep_previous;
};

// Writes `path` atomically: `write` fills a FILE* opened on "<path>.tmp.<pid>", which is flushed,
// fsynced, verified (AtomicWrite::verify) and renamed over `path`. A symbolic link is written
// through: its target is replaced, the link stays. A `path` that exists and is not a regular
// file (a device node, folder, pipe or socket) is refused: Error naming it, nothing written. On
// any failure (including an exception from `write` or `verify`) the temporary file is removed
// and Error is thrown naming the path; `path` is untouched.
void write_file_atomic(const std::string &path, const std::function<void(FILE *)> &write,
                       const AtomicWrite &options = {});
void write_file_atomic(const std::string &path, const std::string &contents);
// The same file (after following symbolic links), for refusing to write over an input.
bool same_file(const std::string &a, const std::string &b);

// fwrite/fread that throw Error naming `what` on a short count.
void write_bytes(FILE *f, const void *data, size_t bytes, const std::string &what);
void read_bytes(FILE *f, void *data, size_t bytes, const std::string &what);

// Creates a directory and its parents; throws Error when that is impossible or it is not
// writable.
void make_dirs(const std::string &path);

} // namespace finegpt
