// The config language: the subset of Python that nanoGPT config files use. Statements are
// `name = expr` (and `name += expr` etc.), `import ...` / `from ... import ...` (ignored), comments
// and blank lines. Expressions are literals (int, float, str, True/False/None), names assigned
// earlier, arithmetic with Python's semantics (+ - * / // % **, unary +/-, parentheses), string
// concatenation and repetition, str()/int()/float() and time.time(). Anything else (def, if, for,
// lists, comparisons, unknown names) is an error "FILE:LINE: what is wrong". Integers are 64-bit
// (overflow is an error, where Python would grow). This file knows nothing of TrainConfig.
#pragma once
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace finegpt::py {

// None, bool, int, float, str.
using Value = std::variant<std::monostate, bool, long, double, std::string>;

// One evaluated assignment, in file order; `line` is the 1-based line of the assigned name.
struct Assignment {
  std::string name;
  Value value;
  int line = 0;
};

// Names an expression may refer to (besides True/False/None, str/int/float and time.time).
using Env = std::map<std::string, Value>;

// Runs a config file's text: evaluates every statement in order and returns the assignments.
// `env` holds the names visible before the first line; each assignment adds its name for the
// lines after it. Errors (Error) read "FILE:LINE: what is wrong" with FILE = `file`.
std::vector<Assignment> run(const std::string &text, const std::string &file, Env env = {});

// Evaluates one expression (the whole text must be one expression; newlines are not allowed
// outside parentheses). Errors (Error) read "WHERE: what is wrong".
Value eval(const std::string &expr, const std::string &where, const Env &env = {});

// Python's repr(): 'it''s' -> "it's" quoted as Python would, 0.1 -> 0.1, 1e-05, 1.0, True, None.
// Non-finite floats are written float('inf') / float('nan') so that eval() reads them back.
std::string repr(const Value &v);
// Python's str(): like repr() but strings are not quoted and floats print as inf / nan.
std::string str(const Value &v);
// Python's repr() of a float (shortest digits that round-trip; "inf", "nan" for non-finite).
std::string float_repr(double d);
// "None", "bool", "int", "float", "str".
const char *type_name(const Value &v);

} // namespace finegpt::py
