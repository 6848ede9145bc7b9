// Cryptographic digests as lowercase hex, through OpenSSL's libcrypto: sha256 identifies rank
// files and vocabularies and checks downloads (the hub's LFS oid); sha1 names files in
// tiktoken's cache and checks git blob ids. Not for passwords or secrets.
#pragma once
#include <string>
#include <string_view>

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

} // namespace finegpt
