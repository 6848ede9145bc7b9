// The GPT-2 BPE tokenizer (tokenizer/gpt2.h, pretokenize.h, bpe.h) with GPT-2's own ranks: the
// input encoded as text (tokenizer_check.h: round trip, safe_split) and decoded as token ids
// (every two bytes an id, most of them valid, some not: an id out of range must be refused with
// Error, never read out of bounds).
#include "tokenizer_check.h"

#include <filesystem>

using namespace finegpt;

namespace {

const Gpt2Tokenizer &tokenizer() {
  static const std::unique_ptr<Gpt2Tokenizer> tok = [] {
    std::string path;
    try {
      path = Gpt2Tokenizer::locate("gpt2");
    } catch (const Error &) {
#ifdef FINEGPT_FUZZ_ASSETS
      path = FINEGPT_FUZZ_ASSETS "/gpt2.tiktoken";
#endif
    }
    if (path.empty() || !std::filesystem::exists(path)) {
      std::fprintf(stderr, "no gpt2.tiktoken (run scripts/setup.sh, or set FINEGPT_GPT2_RANKS): "
                           "skipped\n");
      std::exit(77);
    }
    return Gpt2Tokenizer::load(path);
  }();
  return *tok;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const Gpt2Tokenizer &tok = tokenizer();
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  fuzz::check_round_trip(tok, text);

  std::vector<int32_t> ids(size / 2);
  for (size_t i = 0; i < ids.size(); i++)
    ids[i] = (data[2 * i] | data[2 * i + 1] << 8) % 50300 - (data[2 * i + 1] == 0xFF ? 60000 : 0);
  try {
    (void)tok.decode(ids.data(), ids.size());
  } catch (const Error &) {
  }
  return 0;
}
