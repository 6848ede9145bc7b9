// A tokenizer as Hugging Face's GPT-2 tokenizer files: vocab.json (token string -> id) and
// merges.txt ("#version: 0.2", then one merge "first second" per line, in rank order), both in
// GPT-2's byte stand-in characters (gpt2_byte_char). For GPT-2's ranks they are byte for byte
// the files of the hub's openai-community/gpt2 (json.dumps formatting: ", " and ": ", non-ASCII
// as \uXXXX). Read back in the two forms written: GPT-2's files, and a char vocabulary.
#pragma once
#include "tokenizer/encoder.h"

#include <string>

namespace finegpt {

struct HfTokenizerFiles {
  std::string vocab_json, merges_txt;
};

// GPT-2's tokenizer: every rank's merge is found by running byte-pair merging over its bytes
// with the ranks below it (what remains is two parts: the merge that made it).
// A char tokenizer whose characters are all ASCII: each character its own token, no merges
// (GPT-2's byte-level tokenizer then maps each byte to its character's id, which is exactly the
// char tokenizer). Returns false with `why` set when the tokenizer cannot be written so (a
// character of several UTF-8 bytes needs merges through tokens the vocabulary lacks).
bool hf_tokenizer_files(const TextEncoder &tok, HfTokenizerFiles &out, std::string &why);

// The tokenizer of a Hugging Face folder's vocab.json and merges.txt, in the forms
// hf_tokenizer_files writes: GPT-2's (merges.txt is GPT-2's, byte for byte; its ranks are then
// found as for --tokenizer gpt2) or a char vocabulary (no merges, each token the stand-in
// character of one ASCII byte, ids 0..N-1 in code point order). Error naming the file for
// anything else: a one-line reason and "give --tokenizer".
std::unique_ptr<TextEncoder> read_hf_tokenizer(const std::string &dir);

// `s` as Python's json.dumps writes a string (ensure_ascii: \uXXXX for non-ASCII, surrogate
// pairs past U+FFFF), quotes included.
std::string python_json_string(const std::u32string &s);

} // namespace finegpt
