// `finegpt prepare`: documents (data/sources.h) -> tokens -> llm.c token shards + meta.json,
// streaming, on all cores, restartable. Two layouts:
//  - llm.c's dev/data/fineweb.py (GPT-2 and any encoder with a document separator): each
//    document is <|endoftext|> then its tokens; shards of exactly shard_tokens tokens (the last
//    shorter; a document may straddle shards); shard 0 is <name>_val_000000.bin (or the first
//    val_tokens tokens), then <name>_train_000001.bin, ...
//  - nanoGPT's shakespeare_char (tokenizer "char"): vocabulary = sorted set of the characters
//    of all the text, no separator, the first (1 - val_fraction) of the characters are
//    <name>_train_000001.bin, the rest <name>_val_000000.bin; meta.json holds itos.
// Output is identical for any thread count and after any number of interruptions.
#pragma once
#include "data/sources.h"
#include "tokenizer/encoder.h"

#include <cstdint>
#include <string>
#include <vector>

namespace finegpt {

struct PrepareOptions {
  std::vector<std::string> inputs;
  std::string out;                // folder (created)
  std::string name;               // shard name prefix; "" = the last component of `out`
  std::string tokenizer = "gpt2"; // gpt2 | char | a tiktoken rank file | test-bytes (tests)
  SourceOptions source;
  uint64_t shard_tokens = 100'000'000;
  uint64_t val_tokens = 0;   // 0: shard 0 (val) is a whole shard
  double val_fraction = 0.1; // char layout
  int threads = 0;           // 0: all cores (or OMP_NUM_THREADS)
  uint64_t max_tokens = 0;   // stop after this many tokens (0 = all)
  uint64_t max_docs = 0;     // stop after this many documents (0 = all)
  bool overwrite = false;    // replace what `out` holds instead of refusing / resuming
  bool progress = true;      // the progress line on stderr
};

// What was read and written (over the whole run, including the parts of a resumed run that
// an earlier run did).
struct PrepareStats {
  uint64_t records = 0;      // rows / lines / documents read from the inputs
  uint64_t documents = 0;    // of those, tokenized
  uint64_t empty = 0;        // skipped: empty text
  uint64_t not_text = 0;     // skipped: null or not a string
  uint64_t invalid_utf8 = 0; // tokenized, but not valid UTF-8 (the tokenizer's policy applies)
  uint64_t tokens = 0;
  std::vector<std::string> shard_files; // in shard order (file names in `out`)
  std::vector<uint64_t> shard_tokens;
  uint64_t input_bytes = 0, text_bytes = 0; // text_bytes: read in this run
  int vocab_size = 0;
  size_t resumed_shards = 0; // shards an earlier run had finished
  bool already_complete = false;
};

// The whole command: resolves the tokenizer, checks `out` (resume, refuse or overwrite),
// writes the shards, the restart state after each shard, and meta.json last.
PrepareStats prepare_dataset(const PrepareOptions &opt);

// The llm.c layout with a given encoder (its document_separator() must be >= 0); for tests
// and for tokenizers made elsewhere. Its name() and identity() are recorded in meta.json.
PrepareStats prepare_with_encoder(const PrepareOptions &opt, const TextEncoder &enc);

// The vocabulary size a dataset folder's meta.json records (a char vocabulary is validated
// through CharTokenizer::load); Error naming the file when it has none.
int dataset_vocab_size(const std::string &meta_json_path);

} // namespace finegpt
