// Internal to the config language (pyconfig.cpp, pylex.cpp): error context, tokens and the
// lexer that turns config text into Python tokens. Not part of the public API.
#pragma once
#include "core/error.h"

#include <string>
#include <vector>

namespace finegpt::py::detail {

// Where errors point: "FILE:LINE: what" for files, "WHERE: what" for a single expression.
struct Ctx {
  std::string file;
  bool lines = true;

  template <typename... Args> [[noreturn]] void error(int line, const Args &...args) const {
    if (lines) fail(file, ":", line, ": ", args...);
    fail(file, ": ", args...);
  }
};

// Error: the lexer failed here; its message is thrown when the parser reaches it, so that errors
// come out in file order.
enum class Tok { Name, Int, Float, Str, Op, Newline, End, Error };

struct Token {
  Tok kind;
  std::string text; // name, operator, or the decoded string
  long i = 0;
  double f = 0;
  int line = 0;
};

// "'name'", "number 5", "end of line", ...: a token as an error message names it.
std::string describe(const Token &t);

// The tokens of `text`, ending in Newline, End. A lexing error does not throw: it becomes an
// Error token at the place it happened (then End), thrown when the parser reaches it.
std::vector<Token> lex(const std::string &text, const Ctx &ctx);

bool is_digit(char c);
// Removes '_' from a numeral, requiring each one to sit between two digits (Python's rule);
// false when one does not.
bool strip_underscores(const std::string &s, bool hex, std::string *out);

} // namespace finegpt::py::detail
