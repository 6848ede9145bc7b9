// sha256 / sha1 hex digests (see digest.h) via OpenSSL's EVP_Digest, one-shot or in pieces.
#include "core/digest.h"

#include "core/error.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <openssl/evp.h>
#include <utility>

namespace finegpt {

namespace {

std::string to_hex(const unsigned char *out, unsigned int len) {
  static const char *hex = "0123456789abcdef";
  std::string s(2 * len, '0');
  for (unsigned int i = 0; i < len; i++) {
    s[2 * i] = hex[out[i] >> 4];
    s[2 * i + 1] = hex[out[i] & 15];
  }
  return s;
}

std::string digest_hex(std::string_view data, const EVP_MD *md, const char *name) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) != 1)
    fail("OpenSSL could not compute a ", name, " digest");
  return to_hex(out, len);
}

const EVP_MD *md_of(Digest::Kind k) {
  return k == Digest::Kind::Sha256 ? EVP_sha256() : EVP_sha1();
}

} // namespace

Digest::Digest(Kind kind) : ctx_(EVP_MD_CTX_new()), kind_(kind) {
  if (!ctx_) throw std::bad_alloc();
  reset();
}

Digest::~Digest() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX *>(ctx_)); }

void Digest::reset() {
  if (EVP_DigestInit_ex(static_cast<EVP_MD_CTX *>(ctx_), md_of(kind_), nullptr) != 1)
    fail("OpenSSL could not start a digest");
}

void Digest::update(const void *data, size_t n) {
  if (EVP_DigestUpdate(static_cast<EVP_MD_CTX *>(ctx_), data, n) != 1)
    fail("OpenSSL could not update a digest");
}

std::string Digest::hex() {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(static_cast<EVP_MD_CTX *>(ctx_), out, &len) != 1)
    fail("OpenSSL could not finish a digest");
  reset();
  return to_hex(out, len);
}

BackgroundDigest::BackgroundDigest(Digest::Kind kind)
    : digest_(kind), blocks_(kBlocks, std::vector<char>(kBlockBytes)), used_(kBlocks, 0) {
  thread_ = std::thread([this] { run(); });
}

BackgroundDigest::~BackgroundDigest() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void BackgroundDigest::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return quit_ || queued_ > 0; });
    if (queued_ == 0) return;                                  // quit_, nothing left
    const size_t b = (filling_ + kBlocks - queued_) % kBlocks; // the oldest handed over
    lock.unlock();
    try {
      if (!error_) digest_.update(blocks_[b].data(), used_[b]);
    } catch (...) {
      error_ = std::current_exception(); // read by drain() after queued_ reaches 0
    }
    lock.lock();
    queued_--;
    cv_.notify_all();
  }
}

void BackgroundDigest::hand_over() { // with mu_ not held; the block filling_ is full or final
  std::unique_lock<std::mutex> lock(mu_);
  queued_++;
  filling_ = (filling_ + 1) % kBlocks;
  cv_.notify_all();
  cv_.wait(lock, [&] { return queued_ < kBlocks; }); // the next block is free
  used_[filling_] = 0;
}

void BackgroundDigest::update(const void *data, size_t n) {
  const char *p = static_cast<const char *>(data);
  while (n) {
    const size_t k = std::min(n, kBlockBytes - used_[filling_]);
    std::memcpy(blocks_[filling_].data() + used_[filling_], p, k);
    used_[filling_] += k;
    p += k, n -= k;
    if (used_[filling_] == kBlockBytes) hand_over();
  }
}

void BackgroundDigest::drain() {
  if (used_[filling_]) hand_over();
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return queued_ == 0; });
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

std::string BackgroundDigest::hex() {
  drain();
  return digest_.hex();
}

void BackgroundDigest::reset() {
  drain();
  digest_.reset();
}

std::string sha256_hex(std::string_view data) { return digest_hex(data, EVP_sha256(), "sha256"); }
std::string sha1_hex(std::string_view data) { return digest_hex(data, EVP_sha1(), "sha1"); }

} // namespace finegpt
