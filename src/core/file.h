// File helpers: whole-file reads with clear errors, and atomic writes (temporary name, fsync,
// rename) so that no reader ever sees a half-written file. Not a stream abstraction.
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace finegpt {

// Reads a whole file; throws Error naming the path when it is missing or unreadable.
std::string read_file(const std::string &path);
// Size in bytes; throws Error naming the path when it does not exist.
uint64_t file_size(const std::string &path);
bool file_exists(const std::string &path);

// Writes `path` atomically: `write` fills a FILE* opened on "<path>.tmp.<pid>", which is flushed,
// fsynced and renamed over `path`. On any failure (including an exception from `write`) the
// temporary file is removed and Error is thrown naming the path; `path` is untouched.
void write_file_atomic(const std::string &path, const std::function<void(FILE *)> &write);
void write_file_atomic(const std::string &path, const std::string &contents);

// fwrite/fread that throw Error naming `what` on a short count.
void write_bytes(FILE *f, const void *data, size_t bytes, const std::string &what);
void read_bytes(FILE *f, void *data, size_t bytes, const std::string &what);

// Creates a directory and its parents; throws Error when that is impossible or it is not
// writable.
void make_dirs(const std::string &path);

} // namespace finegpt
