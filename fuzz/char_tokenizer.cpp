// The character tokenizer (tokenizer/char_tokenizer.h). An input starting with '{' is a
// meta.json vocabulary (CharTokenizer::load); any other input is a corpus (from_text). Either
// way the vocabulary's characters and the input must round-trip through encode and decode, a
// vocabulary must save and load back unchanged, and decoding arbitrary ids must refuse (Error)
// the ones out of range.
#include "tokenizer/char_tokenizer.h"
#include "fuzz.h"

using namespace finegpt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string input(reinterpret_cast<const char *>(data), size);
  CharTokenizer tok;
  try {
    if (!input.empty() && input[0] == '{')
      tok = CharTokenizer::load(fuzz::write_scratch("meta.json", data, size));
    else
      tok = CharTokenizer::from_text(input);
  } catch (const Error &) {
    return 0;
  }
  const std::string chars = utf8_encode(std::u32string(tok.itos().begin(), tok.itos().end()));
  const std::string text = !input.empty() && input[0] == '{' ? chars : input;
  const std::vector<uint16_t> ids = tok.encode(text);
  const std::vector<int32_t> wide(ids.begin(), ids.end());
  fuzz::check(tok.decode(wide.data(), wide.size()) == text, "decode(encode(text)) != text");

  if (tok.itos().empty()) return 0; // from_text(""): nothing to save (load refuses it)
  const std::string meta = (fuzz::scratch_dir() / "saved.json").string();
  tok.save(meta);
  fuzz::check(CharTokenizer::load(meta).itos() == tok.itos(), "save() then load() differs");

  // Every two bytes an id in [-1, vocab_size]: mostly valid, the ends out of range.
  std::vector<int32_t> any(size / 2);
  for (size_t i = 0; i < any.size(); i++)
    any[i] = int32_t(data[2 * i] | data[2 * i + 1] << 8) % (tok.vocab_size() + 2) - 1;
  try {
    (void)tok.decode(any.data(), any.size());
  } catch (const Error &) {
  }
  return 0;
}
