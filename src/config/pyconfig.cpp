// The config language (see pyconfig.h): a recursive-descent parser over pylex.h's tokens that
// evaluates as it parses, and Python's arithmetic and formatting rules for the values.
#include "config/pyconfig.h"

#include "config/pylex.h"
#include "core/error.h"

#include <cctype>
#include <charconv>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <set>

namespace finegpt::py {
namespace {

using namespace detail;

const std::set<std::string> &keywords() {
  static const std::set<std::string> k = {
      "False", "None",     "True",  "and",    "as",   "assert", "async",  "await",    "break",
      "class", "continue", "def",   "del",    "elif", "else",   "except", "finally",  "for",
      "from",  "global",   "if",    "import", "in",   "is",     "lambda", "nonlocal", "not",
      "or",    "pass",     "raise", "return", "try",  "while",  "with",   "yield"};
  return k;
}

// ---------------------------------------------------------------------------------------------
// Values and Python's arithmetic

bool is_number(const Value &v) {
  return std::holds_alternative<bool>(v) || std::holds_alternative<long>(v) ||
         std::holds_alternative<double>(v);
}
bool is_intlike(const Value &v) {
  return std::holds_alternative<bool>(v) || std::holds_alternative<long>(v);
}
long as_long(const Value &v) {
  if (auto *b = std::get_if<bool>(&v)) return *b ? 1 : 0;
  return std::get<long>(v);
}
double as_double(const Value &v) {
  if (auto *d = std::get_if<double>(&v)) return *d;
  return double(as_long(v));
}

std::string strip(const std::string &s) {
  size_t a = s.find_first_not_of(" \t\n\r\f\v"), b = s.find_last_not_of(" \t\n\r\f\v");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

Value to_int(const Value &v, const Ctx &ctx, int line) {
  if (is_intlike(v)) return as_long(v);
  if (auto *d = std::get_if<double>(&v)) {
    if (std::isnan(*d)) ctx.error(line, "cannot convert float NaN to integer");
    double t = std::trunc(*d);
    if (!(t >= -9223372036854775808.0 && t < 9223372036854775808.0))
      ctx.error(line, "int(", float_repr(*d), ") does not fit in 64 bits");
    return long(t);
  }
  if (auto *s = std::get_if<std::string>(&v)) {
    std::string t = strip(*s), digits;
    bool neg = !t.empty() && t[0] == '-';
    if (!t.empty() && (t[0] == '-' || t[0] == '+')) t.erase(0, 1);
    long out = 0;
    if (t.empty() || !is_digit(t[0]) || !strip_underscores(t, false, &digits))
      ctx.error(line, "invalid literal for int(): ", repr(v));
    auto r = std::from_chars(digits.data(), digits.data() + digits.size(), out);
    if (r.ptr != digits.data() + digits.size())
      ctx.error(line, "invalid literal for int(): ", repr(v));
    if (r.ec == std::errc::result_out_of_range)
      ctx.error(line, "int(", repr(v), ") does not fit in 64 bits");
    return neg ? -out : out;
  }
  ctx.error(line, "int() argument must be a string or a number, not None");
}

Value to_float(const Value &v, const Ctx &ctx, int line) {
  if (is_number(v)) return as_double(v);
  if (auto *s = std::get_if<std::string>(&v)) {
    std::string t = strip(*s), lower, clean;
    bool neg = !t.empty() && t[0] == '-';
    if (!t.empty() && (t[0] == '-' || t[0] == '+')) t.erase(0, 1);
    for (char c : t)
      lower += char(std::tolower((unsigned char)c));
    double d = 0;
    if (lower == "inf" || lower == "infinity") {
      d = HUGE_VAL;
    } else if (lower == "nan") {
      d = NAN;
    } else {
      bool ok = !t.empty() && (is_digit(t[0]) || t[0] == '.') &&
                t.find_first_not_of("0123456789._eE+-") == std::string::npos &&
                strip_underscores(t, false, &clean);
      auto r = ok ? std::from_chars(clean.data(), clean.data() + clean.size(), d)
                  : std::from_chars_result{clean.data(), std::errc::invalid_argument};
      if (r.ec == std::errc::result_out_of_range)
        d = std::strtod(clean.c_str(), nullptr);
      else if (!ok || r.ec != std::errc() || r.ptr != clean.data() + clean.size())
        ctx.error(line, "could not convert string to float: ", repr(v));
    }
    return neg ? -d : d;
  }
  ctx.error(line, "float() argument must be a string or a number, not None");
}

bool truthy(const Value &v) {
  if (std::holds_alternative<std::monostate>(v)) return false;
  if (auto *s = std::get_if<std::string>(&v)) return !s->empty();
  if (auto *d = std::get_if<double>(&v)) return *d != 0;
  return as_long(v) != 0;
}

long int_pow(long a, long b, const Ctx &ctx, int line) {
  long r = 1;
  while (b > 0) {
    if ((b & 1) && __builtin_mul_overflow(r, a, &r)) ctx.error(line, "integer overflow in **");
    b >>= 1;
    if (b > 0 && __builtin_mul_overflow(a, a, &a)) ctx.error(line, "integer overflow in **");
  }
  return r;
}

Value binop(const std::string &op, const Value &a, const Value &b, const Ctx &ctx, int line) {
  auto unsupported = [&]() {
    bool str_num = (std::holds_alternative<std::string>(a) && is_number(b)) ||
                   (std::holds_alternative<std::string>(b) && is_number(a));
    ctx.error(line, "unsupported operand types for ", op, ": ", type_name(a), " and ", type_name(b),
              str_num && op == "+" ? " (use str(x) to join a number to a string)" : "");
  };
  auto *sa = std::get_if<std::string>(&a);
  auto *sb = std::get_if<std::string>(&b);
  if (sa || sb) {
    if (op == "+" && sa && sb) return *sa + *sb;
    if (op == "*" && (sa ? is_intlike(b) : is_intlike(a))) {
      const std::string &s = sa ? *sa : *sb;
      long k = sa ? as_long(b) : as_long(a);
      if (k > 0 && s.size() * double(k) > 1e8) ctx.error(line, "string repetition is too long");
      std::string out;
      for (long j = 0; j < k; ++j)
        out += s;
      return out;
    }
    unsupported();
  }
  if (!is_number(a) || !is_number(b)) unsupported();
  if (is_intlike(a) && is_intlike(b)) {
    long x = as_long(a), y = as_long(b), r = 0;
    if (op == "+" && !__builtin_add_overflow(x, y, &r)) return r;
    if (op == "-" && !__builtin_sub_overflow(x, y, &r)) return r;
    if (op == "*" && !__builtin_mul_overflow(x, y, &r)) return r;
    if (op == "+" || op == "-" || op == "*") ctx.error(line, "integer overflow in ", op);
    if ((op == "/" || op == "//" || op == "%") && y == 0) ctx.error(line, "division by zero");
    if (op == "/") return double(x) / double(y);
    if (op == "//") {
      if (x == LONG_MIN && y == -1) ctx.error(line, "integer overflow in //");
      long q = x / y;
      if (x % y != 0 && ((x < 0) != (y < 0))) --q;
      return q;
    }
    if (op == "%") {
      if (y == -1) return 0L;
      long m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      return m;
    }
    if (op == "**") {
      if (y >= 0) return int_pow(x, y, ctx, line);
      if (x == 0) ctx.error(line, "0 cannot be raised to a negative power");
      return std::pow(double(x), double(y));
    }
  }
  double x = as_double(a), y = as_double(b);
  if (op == "+") return x + y;
  if (op == "-") return x - y;
  if (op == "*") return x * y;
  if ((op == "/" || op == "//" || op == "%") && y == 0) ctx.error(line, "float division by zero");
  if (op == "/") return x / y;
  if (op == "%" || op == "//") { // CPython's float_divmod
    double mod = std::fmod(x, y), div = (x - mod) / y;
    if (mod != 0) {
      if ((y < 0) != (mod < 0)) {
        mod += y;
        div -= 1.0;
      }
    } else {
      mod = std::copysign(0.0, y);
    }
    if (op == "%") return mod;
    if (div == 0) return std::copysign(0.0, x / y);
    double fl = std::floor(div);
    return div - fl > 0.5 ? fl + 1.0 : fl;
  }
  // op == "**"
  if (x == 0 && y < 0) ctx.error(line, "0.0 cannot be raised to a negative power");
  if (x < 0 && std::isfinite(y) && y != std::floor(y))
    ctx.error(line, "a negative number to a fractional power is complex (not supported)");
  double r = std::pow(x, y);
  if (std::isinf(r) && std::isfinite(x) && std::isfinite(y)) ctx.error(line, "** result too large");
  return r;
}

// ---------------------------------------------------------------------------------------------
// Parser (evaluates as it parses)

class Parser {
public:
  Parser(const std::vector<Token> &toks, const Ctx &ctx, Env *env)
      : t_(toks), ctx_(ctx), env_(env) {}
  static constexpr int kMaxDepth = 200;

  std::vector<Assignment> statements() {
    std::vector<Assignment> out;
    while (peek().kind != Tok::End) {
      const Token &tok = peek();
      if (tok.kind == Tok::Newline) {
        ++p_;
        continue;
      }
      if (tok.kind != Tok::Name)
        ctx_.error(tok.line, "expected `name = value`, found ", describe(tok));
      if (tok.text == "import" || tok.text == "from") { // modules mean nothing here
        while (peek().kind != Tok::Newline && !is_op(";"))
          ++p_;
        end_statement();
        continue;
      }
      if (keywords().count(tok.text))
        ctx_.error(tok.line, "'", tok.text,
                   "' is not supported in config files (only `name = value` lines)");
      const Token &next = at(p_ + 1);
      if (next.kind == Tok::Op && next.text == "(")
        ctx_.error(tok.line, "calling ", tok.text,
                   "() is not supported (only `name = value` lines)");
      if (next.kind != Tok::Op || (next.text != "=" && !is_augmented(next.text)))
        ctx_.error(next.line, "expected `", tok.text, " = value`, found ", describe(next));
      p_ += 2;
      Value v = expr();
      if (next.text != "=") {
        auto it = env_->find(tok.text);
        if (it == env_->end()) ctx_.error(tok.line, "name '", tok.text, "' is not defined");
        v = binop(next.text.substr(0, next.text.size() - 1), it->second, v, ctx_, next.line);
      }
      (*env_)[tok.text] = v;
      out.push_back({tok.text, std::move(v), tok.line});
      end_statement();
    }
    return out;
  }

  Value single_expression() {
    Value v = expr();
    if (peek().kind != Tok::Newline || at(p_ + 1).kind != Tok::End) unexpected_after();
    return v;
  }

private:
  // Token i, or the lexer's error when lexing stopped there.
  const Token &at(size_t i) const {
    if (t_[i].kind == Tok::Error) throw Error(t_[i].text);
    return t_[i];
  }
  const Token &peek() const { return at(p_); }
  bool is_op(const char *o) const { return peek().kind == Tok::Op && peek().text == o; }
  static bool is_augmented(const std::string &o) {
    return o == "+=" || o == "-=" || o == "*=" || o == "/=" || o == "//=" || o == "%=" ||
           o == "**=";
  }

  [[noreturn]] void unexpected_after() const {
    const Token &tok = peek();
    if (tok.kind == Tok::Op && tok.text == ",")
      ctx_.error(tok.line, "tuples are not supported (one value per key)");
    if (tok.kind == Tok::Op && (tok.text == "=" || tok.text == "=="))
      ctx_.error(tok.line, "unexpected '", tok.text, "' (one `name = value` per line)");
    ctx_.error(tok.line, "unexpected ", describe(tok), " after the value");
  }

  void end_statement() {
    if (is_op(";")) {
      ++p_;
      return;
    }
    if (peek().kind != Tok::Newline) unexpected_after();
    ++p_;
  }

  Value expr() { // arith: term (('+' | '-') term)*
    Value v = term();
    while (is_op("+") || is_op("-")) {
      const Token &o = at(p_++);
      Value r = term();
      v = binop(o.text, v, r, ctx_, o.line);
    }
    return v;
  }

  Value term() {
    Value v = factor();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token &o = at(p_++);
      Value r = factor();
      v = binop(o.text, v, r, ctx_, o.line);
    }
    return v;
  }

  Value factor() {
    // Every level of nesting (parentheses, signs, **, call arguments) passes here: a bound, as
    // CPython's parser has, instead of a stack overflow on '((((...1...))))'.
    if (depth_ >= kMaxDepth)
      ctx_.error(peek().line, "expression nested too deeply (more than ", kMaxDepth, " levels)");
    struct Level {
      int &depth;
      explicit Level(int &d) : depth(++d) {}
      ~Level() { --depth; }
    } level(depth_);
    if (is_op("-") || is_op("+")) {
      const Token &o = at(p_++);
      Value v = factor();
      if (!is_number(v))
        ctx_.error(o.line, "bad operand type for unary ", o.text, ": ", type_name(v));
      if (auto *d = std::get_if<double>(&v)) return o.text == "-" ? -*d : *d;
      long x = as_long(v);
      if (o.text == "-" && x == LONG_MIN) ctx_.error(o.line, "integer overflow in unary -");
      return o.text == "-" ? -x : x;
    }
    return power();
  }

  Value power() { // power: primary ['**' factor]  (right-associative, binds tighter than unary -)
    Value v = primary();
    if (is_op("**")) {
      const Token &o = at(p_++);
      Value r = factor();
      v = binop("**", v, r, ctx_, o.line);
    }
    return v;
  }

  Value primary() {
    const Token &tok = at(p_);
    switch (tok.kind) {
    case Tok::Int:
      ++p_;
      return tok.i;
    case Tok::Float:
      ++p_;
      return tok.f;
    case Tok::Str: {
      std::string s;
      while (peek().kind == Tok::Str)
        s += at(p_++).text; // 'a' 'b' == 'ab'
      return s;
    }
    case Tok::Op:
      if (tok.text == "(") {
        ++p_;
        Value v = expr();
        if (is_op(",")) ctx_.error(peek().line, "tuples are not supported (one value per key)");
        if (!is_op(")")) ctx_.error(peek().line, "expected ')', found ", describe(peek()));
        ++p_;
        return v;
      }
      if (tok.text == "[") ctx_.error(tok.line, "lists are not supported (one value per key)");
      if (tok.text == "{") ctx_.error(tok.line, "dicts and sets are not supported");
      ctx_.error(tok.line, "expected a value, found ", describe(tok));
    case Tok::Name:
      return name();
    default:
      ctx_.error(tok.line, "expected a value, found ", describe(tok));
    }
  }

  Value name() {
    const Token &tok = at(p_++);
    if (tok.text == "True") return true;
    if (tok.text == "False") return false;
    if (tok.text == "None") return std::monostate{};
    if (keywords().count(tok.text))
      ctx_.error(tok.line, "'", tok.text, "' is not supported in config values");
    std::string dotted = tok.text;
    while (is_op(".") && at(p_ + 1).kind == Tok::Name) {
      dotted += "." + at(p_ + 1).text;
      p_ += 2;
    }
    if (is_op("(")) return call(dotted, tok.line);
    if (dotted != tok.text)
      ctx_.error(tok.line, "'", dotted, "' is not supported (only time.time() of modules)");
    auto it = env_->find(tok.text);
    if (it == env_->end()) ctx_.error(tok.line, "name '", tok.text, "' is not defined");
    return it->second;
  }

  Value call(const std::string &fn, int line) {
    ++p_; // '('
    std::vector<Value> args;
    while (!is_op(")")) {
      if (peek().kind == Tok::Name && at(p_ + 1).kind == Tok::Op && at(p_ + 1).text == "=")
        ctx_.error(line, fn, "(): keyword arguments are not supported");
      args.push_back(expr());
      if (is_op(","))
        ++p_;
      else if (!is_op(")"))
        ctx_.error(peek().line, "expected ')' in call to ", fn, "()");
    }
    ++p_;
    auto arity = [&](size_t most) {
      if (args.size() > most)
        ctx_.error(line, fn, "() takes at most ", most, " argument", most == 1 ? "" : "s");
    };
    if (fn == "time.time") {
      arity(0);
      auto now = std::chrono::system_clock::now().time_since_epoch();
      return std::chrono::duration<double>(now).count();
    }
    if (fn == "str") {
      arity(1);
      return args.empty() ? std::string() : str(args[0]);
    }
    if (fn == "int") {
      arity(1);
      return args.empty() ? Value(0L) : to_int(args[0], ctx_, line);
    }
    if (fn == "float") {
      arity(1);
      return args.empty() ? Value(0.0) : to_float(args[0], ctx_, line);
    }
    if (fn == "bool") {
      arity(1);
      return !args.empty() && truthy(args[0]);
    }
    ctx_.error(line, "function ", fn,
               "() is not supported (config values may use str(), int(), float(), bool(), "
               "time.time())");
  }

  const std::vector<Token> &t_;
  const Ctx &ctx_;
  Env *env_;
  size_t p_ = 0;
  int depth_ = 0; // nesting of factor(), bounded by kMaxDepth
};

} // namespace

std::vector<Assignment> run(const std::string &text, const std::string &file, Env env) {
  Ctx ctx{file, true};
  std::vector<Token> toks = lex(text, ctx);
  return Parser(toks, ctx, &env).statements();
}

Value eval(const std::string &expr, const std::string &where, const Env &env) {
  Ctx ctx{where, false};
  std::vector<Token> toks = lex(expr, ctx);
  Env copy = env;
  return Parser(toks, ctx, &copy).single_expression();
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific); // shortest
  std::string s(buf, r.ptr);
  std::string sign = s[0] == '-' ? "-" : "";
  if (!sign.empty()) s.erase(0, 1);
  size_t e = s.find('e');
  int exp = std::atoi(s.c_str() + e + 1);
  std::string digits;
  for (size_t k = 0; k < e; ++k)
    if (s[k] != '.') digits += s[k];
  std::string out;
  if (exp >= -4 && exp < 16) { // Python's repr switches to exponents outside 1e-4 .. 1e16
    if (exp < 0) {
      out = "0." + std::string(-exp - 1, '0') + digits;
    } else if (digits.size() <= size_t(exp) + 1) {
      out = digits + std::string(exp + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, exp + 1) + "." + digits.substr(exp + 1);
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    int a = exp < 0 ? -exp : exp;
    out += cat("e", exp < 0 ? "-" : "+", a < 10 ? "0" : "", a);
  }
  return sign + out;
}

std::string str(const Value &v) {
  if (std::holds_alternative<std::monostate>(v)) return "None";
  if (auto *b = std::get_if<bool>(&v)) return *b ? "True" : "False";
  if (auto *i = std::get_if<long>(&v)) return std::to_string(*i);
  if (auto *d = std::get_if<double>(&v)) return float_repr(*d);
  return std::get<std::string>(v);
}

std::string repr(const Value &v) {
  if (auto *d = std::get_if<double>(&v)) {
    if (std::isfinite(*d)) return float_repr(*d);
    return cat("float('", float_repr(*d), "')");
  }
  auto *s = std::get_if<std::string>(&v);
  if (!s) return str(v);
  char q = s->find('\'') != std::string::npos && s->find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : *s) {
    if (c == '\\' || c == (unsigned char)q) {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += cat("\\x", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15]);
    } else {
      out += char(c); // printable ASCII and UTF-8 bytes, as Python 3 prints them
    }
  }
  return out + q;
}

const char *type_name(const Value &v) {
  static const char *names[] = {"None", "bool", "int", "float", "str"};
  return names[v.index()];
}

} // namespace finegpt::py
