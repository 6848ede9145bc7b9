// Cryptographic digests as lowercase hex, through OpenSSL's libcrypto: sha256 identifies rank
// files and vocabularies; sha1 names files in tiktoken's cache. Not for passwords or secrets.
#pragma once
#include <string>
#include <string_view>

namespace finegpt {

std::string sha256_hex(std::string_view data);
std::string sha1_hex(std::string_view data);

} // namespace finegpt
