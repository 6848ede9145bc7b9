// GPT-2 rank files as the tokenizer loads them (Gpt2Tokenizer::load, any ranks allowed): the
// input as a tiktoken rank file (lines "base64(bytes) rank"), or a data-gym vocab.bpe when it
// starts with "#version". When it loads, text encodes and decodes through those ranks
// (tokenizer_check.h): any table that load() accepts must round-trip.
#include "tokenizer_check.h"

using namespace finegpt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string path = fuzz::write_scratch("ranks.tiktoken", data, size);
  std::unique_ptr<Gpt2Tokenizer> tok;
  try {
    tok = Gpt2Tokenizer::load(path, true);
  } catch (const Error &) {
    return 0;
  }
  fuzz::check_round_trip(*tok, "Hello world! It's 2026: naïve café, 東京, 👋🏽  \n\n  x");
  fuzz::check_round_trip(*tok, std::string_view(reinterpret_cast<const char *>(data), size));
  return 0;
}
