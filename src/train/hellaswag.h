// HellaSwag scoring as llm.c and nanoGPT users report it (Karpathy's hellaswag.py): each line of
// the public hellaswag_{val,train}.jsonl is {"ctx": str, "endings": [4 str], "label": int}; the
// context is tokenized alone and each ending as " " + ending, giving four rows ctx + ending; a
// row's score is the cross-entropy of its ending tokens only, each predicted from the position
// before it. acc_norm picks the ending with the lowest mean loss over its tokens, acc the lowest
// summed loss (the first on ties, as argmin does). Rows run through the engine's ordinary forward
// (several examples per call, padded to the batch's longest row); the losses come from the
// model's own cross-entropy (Engine::position_losses), so both engines score with one model body.
//
// A row longer than the model can see (block_size + 1 tokens: the last token is only a target)
// loses its earliest context tokens, as lm-evaluation-harness does; at GPT-2's 1024 no HellaSwag
// row is cropped, so the scores are the references'. Not here: the file's reading errors are
// read_hellaswag's, the progress line is the caller's.
#pragma once
#include "tokenizer/encoder.h"
#include "train/engine.h"

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace finegpt {

constexpr int kHellaswagEndings = 4;

struct HellaswagExample {
  long line = 0; // 1-based line of the file
  int label = 0;
  std::vector<int32_t> ctx;                                 // the context's tokens
  std::array<std::vector<int32_t>, kHellaswagEndings> ends; // " " + ending, tokenized
};

// Reads up to max_examples examples (0: all) from a JSONL file in the public format, tokenized
// with `enc` (GPT-2's). Blank lines are skipped; other fields are ignored. The label may be an
// integer or a string holding one (the Hugging Face copy's). Error naming path:line on a line
// that is not a JSON object, a missing or mistyped ctx / endings / label, endings that are not
// exactly 4 strings (llm.c and hellaswag.py assume 4), a label outside 0..3, an empty context;
// and naming the file when it holds no example.
std::vector<HellaswagExample> read_hellaswag(const std::string &path, const TextEncoder &enc,
                                             long max_examples = 0);

// The tokens a row is scored on, for `block_size`: the context's last tokens and the whole
// ending, at most block_size + 1 tokens. Error naming path:line when an ending alone leaves no
// context token before it.
struct HellaswagRow {
  std::vector<int32_t> tokens; // context (possibly cropped from the left), then the ending
  int ending_begin = 0;        // index of the ending's first token in `tokens` (>= 1)
  bool cropped = false;
};
HellaswagRow hellaswag_row(const HellaswagExample &ex, int ending, int block_size,
                           const std::string &path);

struct HellaswagScore {
  long line = 0;
  int label = 0, pred = 0, pred_norm = 0; // pred: lowest summed loss; pred_norm: lowest mean
  bool cropped = false;
  std::array<int, kHellaswagEndings> tokens{}; // ending tokens scored
  std::array<double, kHellaswagEndings> sum_loss{}, mean_loss{};
};

struct HellaswagResult {
  long examples = 0, correct = 0, correct_norm = 0, cropped = 0;
  std::vector<HellaswagScore> scores; // per example, in file order
};

// The longest forward (in positions) any row of `examples` needs, for sizing the engine.
int hellaswag_max_positions(const std::vector<HellaswagExample> &examples, int block_size,
                            const std::string &path);

// Scores `examples` on `engine` (made for at least 4 * per_forward rows of
// hellaswag_max_positions(examples, block_size) positions), per_forward examples per forward,
// rows cropped to block_size (at most the model's). `progress(result)` is called after each
// forward.
HellaswagResult score_hellaswag(Engine &engine, const std::vector<HellaswagExample> &examples,
                                int per_forward, int block_size, const std::string &path,
                                const std::function<void(const HellaswagResult &)> &progress = {});

} // namespace finegpt
