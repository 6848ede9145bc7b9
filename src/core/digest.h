// Cryptographic digests as lowercase hex, through OpenSSL's libcrypto: sha256 identifies rank
// files and vocabularies and checks downloads (the hub's LFS oid); sha1 names files in
// tiktoken's cache and checks git blob ids. Not for passwords or secrets.
#pragma once
#include <condition_variable>
#include <exception>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace finegpt {

std::string sha256_hex(std::string_view data);
std::string sha1_hex(std::string_view data);

// The same digests over data given in pieces (a download as it arrives).
class Digest {
public:
  enum class Kind { Sha256, Sha1 };
  explicit Digest(Kind kind);
  ~Digest();
  Digest(const Digest &) = delete;
  Digest &operator=(const Digest &) = delete;
  void update(const void *data, size_t n);
  std::string hex(); // the digest of everything given; the object then starts over
  void reset();

private:
  void *ctx_; // EVP_MD_CTX
  Kind kind_;
};

// A Digest fed on a thread of its own: update() copies the bytes into one of a few 1 MiB blocks
// and returns (waiting only when every block is still queued), so the hashing (sha256 runs at
// about 1.7 GB/s on one core here) overlaps with the caller's work (a download's receive and
// write) instead of adding to it. The result equals Digest's over the same bytes.
class BackgroundDigest {
public:
  explicit BackgroundDigest(Digest::Kind kind);
  ~BackgroundDigest();
  BackgroundDigest(const BackgroundDigest &) = delete;
  BackgroundDigest &operator=(const BackgroundDigest &) = delete;
  void update(const void *data, size_t n);
  std::string hex(); // waits for the bytes given so far; then starts over, as Digest::hex
  void reset();      // drops what was given

private:
  static constexpr size_t kBlockBytes = size_t(1) << 20;
  static constexpr size_t kBlocks = 4;
  void drain(); // hands over the block being filled and waits until every block is hashed
  void hand_over();
  void run();

  Digest digest_; // used by the thread only, and by hex()/reset() after a drain
  std::vector<std::vector<char>> blocks_;
  std::vector<size_t> used_; // bytes in each block
  size_t filling_ = 0;       // the block update() writes into
  size_t queued_ = 0;        // blocks handed over and not yet hashed (those before filling_)
  bool quit_ = false;
  std::exception_ptr error_; // from the thread
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
};

} // namespace finegpt
