// sha256 / sha1 hex digests (see digest.h) via OpenSSL's one-shot EVP_Digest.
#include "core/digest.h"

#include "core/error.h"

#include <openssl/evp.h>

namespace finegpt {

namespace {

std::string digest_hex(std::string_view data, const EVP_MD *md, const char *name) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) != 1)
    fail("OpenSSL could not compute a ", name, " digest");
  static const char *hex = "0123456789abcdef";
  std::string s(2 * len, '0');
  for (unsigned int i = 0; i < len; i++) {
    s[2 * i] = hex[out[i] >> 4];
    s[2 * i + 1] = hex[out[i] & 15];
  }
  return s;
}

} // namespace

std::string sha256_hex(std::string_view data) { return digest_hex(data, EVP_sha256(), "sha256"); }
std::string sha1_hex(std::string_view data) { return digest_hex(data, EVP_sha1(), "sha1"); }

} // namespace finegpt
