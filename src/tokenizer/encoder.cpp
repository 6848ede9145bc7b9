// make_encoder (see encoder.h): one place that turns a --tokenizer flag into a tokenizer.
#include "tokenizer/encoder.h"

#include "core/error.h"
#include "tokenizer/char_tokenizer.h"
#include "tokenizer/gpt2.h"
#include "tokenizer/hf_files.h"

namespace finegpt {

std::unique_ptr<TextEncoder> make_encoder(const std::string &spec) {
  if (spec.rfind("char:", 0) == 0)
    return std::make_unique<CharTokenizer>(CharTokenizer::load(spec.substr(5)));
  if (spec.rfind("hf:", 0) == 0) return read_hf_tokenizer(spec.substr(3));
  if (spec == "char")
    fail("--tokenizer char needs its vocabulary: --tokenizer char:DIR/meta.json (written by "
         "finegpt prepare --tokenizer char)");
  return Gpt2Tokenizer::load(Gpt2Tokenizer::locate(spec));
}

} // namespace finegpt
