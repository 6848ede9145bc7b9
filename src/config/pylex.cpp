// The config language's lexer (see pylex.h): Python tokens, string escapes and numerals.
#include "config/pylex.h"

#include "config/pyconfig.h"

#include <cctype>
#include <charconv>
#include <cstdlib>

namespace finegpt::py::detail {

std::string describe(const Token &t) {
  switch (t.kind) {
  case Tok::Name:
    return cat("'", t.text, "'");
  case Tok::Int:
    return cat("number ", t.i);
  case Tok::Float:
    return cat("number ", float_repr(t.f));
  case Tok::Str:
    return "a string";
  case Tok::Op:
    return cat("'", t.text, "'");
  case Tok::Newline:
    return "end of line";
  case Tok::End:
    return "end of file";
  case Tok::Error:
    return t.text;
  }
  return "?";
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool strip_underscores(const std::string &s, bool hex, std::string *out) {
  auto ok = [&](char c) { return is_digit(c) || (hex && std::isxdigit((unsigned char)c)); };
  out->clear();
  for (size_t k = 0; k < s.size(); ++k) {
    if (s[k] != '_') {
      *out += s[k];
      continue;
    }
    if (k == 0 || k + 1 == s.size() || !ok(s[k - 1]) || !ok(s[k + 1])) return false;
  }
  return true;
}

namespace {

void append_utf8(std::string *out, unsigned long cp) {
  if (cp < 0x80) {
    *out += char(cp);
  } else if (cp < 0x800) {
    *out += char(0xC0 | (cp >> 6));
    *out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += char(0xE0 | (cp >> 12));
    *out += char(0x80 | ((cp >> 6) & 0x3F));
    *out += char(0x80 | (cp & 0x3F));
  } else {
    *out += char(0xF0 | (cp >> 18));
    *out += char(0x80 | ((cp >> 12) & 0x3F));
    *out += char(0x80 | ((cp >> 6) & 0x3F));
    *out += char(0x80 | (cp & 0x3F));
  }
}

bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_ident(char c) { return is_ident_start(c) || is_digit(c); }

// Parses a float numeral that is already known to be well formed (no sign, no underscores).
double parse_float_numeral(const std::string &s) {
  double d = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), d);
  if (r.ec == std::errc::result_out_of_range) return std::strtod(s.c_str(), nullptr); // inf or 0
  return d;
}

class Lexer {
public:
  Lexer(const std::string &src, const Ctx &ctx) : s_(src), ctx_(ctx) {
    if (s_.starts_with("\xEF\xBB\xBF")) i_ = 3; // a UTF-8 byte-order mark, as Python skips it
  }

  std::vector<Token> run() {
    try {
      lex();
    } catch (const Error &e) {
      push(Tok::Error, e.what());
      push(Tok::End, "");
    }
    return std::move(toks_);
  }

private:
  void lex() {
    const size_t n = s_.size();
    bool line_start = true;
    std::vector<int> open_lines; // lines of unclosed brackets
    while (i_ < n) {
      char c = s_[i_];
      if (line_start && open_lines.empty()) {
        size_t j = i_;
        while (j < n && (s_[j] == ' ' || s_[j] == '\t' || s_[j] == '\f'))
          ++j;
        bool blank = j == n || s_[j] == '\n' || s_[j] == '\r' || s_[j] == '#';
        if (ctx_.lines && j > i_ && !blank)
          ctx_.error(line_, "unexpected indent (config files are flat `name = value` lines)");
        i_ = j;
        line_start = false;
        continue;
      }
      if (c == '\n') {
        if (open_lines.empty()) push(Tok::Newline, "");
        ++line_;
        ++i_;
        line_start = open_lines.empty();
      } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f') {
        ++i_;
      } else if (c == '#') {
        while (i_ < n && s_[i_] != '\n')
          ++i_;
      } else if (c == '\\') {
        size_t j = i_ + 1;
        if (j < n && s_[j] == '\r') ++j;
        if (j >= n || s_[j] != '\n')
          ctx_.error(line_, "unexpected '\\' (not at the end of a line)");
        i_ = j + 1;
        ++line_;
      } else if (is_ident_start(c)) {
        size_t j = i_;
        while (j < n && is_ident(s_[j]))
          ++j;
        std::string word = s_.substr(i_, j - i_);
        if (j < n && (s_[j] == '\'' || s_[j] == '"') && word.size() <= 2 &&
            word.find_first_not_of("rRuUbBfF") == std::string::npos) {
          i_ = j;
          read_string(word);
        } else {
          i_ = j;
          push(Tok::Name, word);
        }
      } else if (is_digit(c) || (c == '.' && i_ + 1 < n && is_digit(s_[i_ + 1]))) {
        read_number();
      } else if (c == '\'' || c == '"') {
        read_string("");
      } else {
        read_op(&open_lines);
      }
    }
    if (!open_lines.empty()) ctx_.error(open_lines.back(), "'(' was never closed");
    push(Tok::Newline, "");
    push(Tok::End, "");
  }

  void push(Tok kind, std::string text) {
    Token t;
    t.kind = kind;
    t.text = std::move(text);
    t.line = line_;
    toks_.push_back(std::move(t));
  }

  void read_op(std::vector<int> *open_lines) {
    static const char *ops[] = {"**=", "//=", "**", "//", "+=", "-=", "*=", "/=", "%=", "==",
                                "!=",  "<=",  ">=", "->", ":=", "+",  "-",  "*",  "/",  "%",
                                "(",   ")",   "[",  "]",  "{",  "}",  ",",  ".",  "=",  ";",
                                ":",   "<",   ">",  "@",  "&",  "|",  "^",  "~",  "!"};
    for (const char *o : ops) {
      size_t len = std::char_traits<char>::length(o);
      if (s_.compare(i_, len, o) != 0) continue;
      std::string t(o);
      if (t == "(" || t == "[" || t == "{") open_lines->push_back(line_);
      if (t == ")" || t == "]" || t == "}") {
        if (open_lines->empty()) ctx_.error(line_, "unmatched '", t, "'");
        open_lines->pop_back();
      }
      i_ += len;
      push(Tok::Op, t);
      return;
    }
    unsigned char c = s_[i_];
    if (c >= 0x20 && c < 0x7f) ctx_.error(line_, "unexpected character '", char(c), "'");
    if (c >= 0x80) { // UTF-8 outside a string: a name or symbol no config key has
      size_t j = i_ + 1;
      while (j < s_.size() && (static_cast<unsigned char>(s_[j]) & 0xC0) == 0x80)
        ++j;
      ctx_.error(line_, "non-ASCII character '", s_.substr(i_, j - i_),
                 "' outside a string (config keys and values are ASCII Python; text belongs in "
                 "quotes)");
    }
    ctx_.error(line_, "unexpected byte 0x", "0123456789abcdef"[c >> 4], "0123456789abcdef"[c & 15],
               " outside a string");
  }

  void read_number() {
    const size_t n = s_.size(), start = i_;
    const int line = line_;
    auto bad = [&](const char *why) {
      size_t j = i_;
      while (j < n && (is_ident(s_[j]) || s_[j] == '.'))
        ++j;
      ctx_.error(line, "invalid number '", s_.substr(start, j - start), "'", why);
    };
    Token t;
    t.line = line;
    if (s_[i_] == '0' && i_ + 1 < n &&
        std::string("xXoObB").find(s_[i_ + 1]) != std::string::npos) {
      char p = char(std::tolower(s_[i_ + 1]));
      int base = p == 'x' ? 16 : p == 'o' ? 8 : 2;
      i_ += 2;
      size_t d0 = i_;
      while (i_ < n && (std::isxdigit((unsigned char)s_[i_]) || s_[i_] == '_'))
        ++i_;
      std::string digits, raw = s_.substr(d0, i_ - d0);
      if (!raw.empty() && raw[0] == '_') raw.erase(0, 1); // 0x_ff is valid Python
      if (raw.empty() || !strip_underscores(raw, true, &digits)) bad("");
      auto r = std::from_chars(digits.data(), digits.data() + digits.size(), t.i, base);
      if (r.ec == std::errc::result_out_of_range)
        ctx_.error(line, "integer ", s_.substr(start, i_ - start),
                   " is too large (config integers are 64-bit)");
      if (r.ptr != digits.data() + digits.size()) bad("");
      if (i_ < n && is_ident(s_[i_])) bad("");
      t.kind = Tok::Int;
      toks_.push_back(t);
      return;
    }
    bool is_float = false;
    while (i_ < n && (is_digit(s_[i_]) || s_[i_] == '_'))
      ++i_;
    if (i_ < n && s_[i_] == '.') {
      is_float = true;
      ++i_;
      while (i_ < n && (is_digit(s_[i_]) || s_[i_] == '_'))
        ++i_;
    }
    if (i_ < n && (s_[i_] == 'e' || s_[i_] == 'E')) {
      size_t j = i_ + 1;
      if (j < n && (s_[j] == '+' || s_[j] == '-')) ++j;
      if (j < n && is_digit(s_[j])) {
        is_float = true;
        i_ = j;
        while (i_ < n && (is_digit(s_[i_]) || s_[i_] == '_'))
          ++i_;
      }
    }
    if (i_ < n && (s_[i_] == 'j' || s_[i_] == 'J'))
      ctx_.error(line, "complex numbers are not supported");
    if (i_ < n && (is_ident(s_[i_]) || s_[i_] == '.')) bad("");
    std::string text = s_.substr(start, i_ - start), clean;
    // Underscores must sit between digits in each part; checking the whole text with '.', 'e'
    // and signs as non-digits gives the same answer.
    if (!strip_underscores(text, false, &clean)) bad("");
    if (is_float) {
      t.kind = Tok::Float;
      t.f = parse_float_numeral(clean);
    } else {
      if (clean.size() > 1 && clean[0] == '0' && clean.find_first_not_of('0') != std::string::npos)
        bad(" (leading zeros are not allowed in Python integers)");
      auto r = std::from_chars(clean.data(), clean.data() + clean.size(), t.i);
      if (r.ec == std::errc::result_out_of_range)
        ctx_.error(line, "integer ", text, " is too large (config integers are 64-bit)");
      t.kind = Tok::Int;
    }
    toks_.push_back(t);
  }

  unsigned long hex_escape(int digits, int line) {
    if (i_ + digits > s_.size()) ctx_.error(line, "truncated \\x/\\u escape in a string");
    unsigned long v = 0;
    for (int k = 0; k < digits; ++k) {
      char c = s_[i_ + k];
      if (!std::isxdigit((unsigned char)c)) ctx_.error(line, "bad \\x/\\u escape in a string");
      v = v * 16 + (is_digit(c) ? c - '0' : std::tolower(c) - 'a' + 10);
    }
    i_ += digits;
    return v;
  }

  void read_string(const std::string &prefix) {
    const int line = line_;
    if (prefix.find_first_of("fF") != std::string::npos)
      ctx_.error(line, "f-strings are not supported (use 'a' + str(x))");
    if (prefix.find_first_of("bB") != std::string::npos)
      ctx_.error(line, "bytes literals are not supported");
    const bool raw = prefix.find_first_of("rR") != std::string::npos;
    const size_t n = s_.size();
    const char q = s_[i_];
    const std::string q3(3, q);
    const bool triple = s_.compare(i_, 3, q3) == 0;
    i_ += triple ? 3 : 1;
    std::string out;
    for (;;) {
      if (i_ >= n) ctx_.error(line, "unterminated string");
      char c = s_[i_];
      if (c == '\n' && !triple) ctx_.error(line, "unterminated string (a newline inside quotes)");
      if (c == q && (!triple || s_.compare(i_, 3, q3) == 0)) {
        i_ += triple ? 3 : 1;
        break;
      }
      if (c != '\\' || i_ + 1 >= n) {
        if (c == '\n') ++line_;
        out += c;
        ++i_;
        continue;
      }
      char e = s_[i_ + 1];
      if (raw) { // a raw string keeps the backslash; it still cannot end the string
        out += c;
        out += e;
        if (e == '\n') ++line_;
        i_ += 2;
        continue;
      }
      i_ += 2;
      switch (e) {
      case '\n':
        ++line_;
        break; // line continuation inside the string
      case '\\':
        out += '\\';
        break;
      case '\'':
        out += '\'';
        break;
      case '"':
        out += '"';
        break;
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'v':
        out += '\v';
        break;
      case 'x':
        append_utf8(&out, hex_escape(2, line));
        break;
      case 'u':
        append_utf8(&out, hex_escape(4, line));
        break;
      case 'U': {
        unsigned long cp = hex_escape(8, line);
        if (cp > 0x10FFFF) ctx_.error(line, "\\U escape beyond U+10FFFF");
        append_utf8(&out, cp);
        break;
      }
      case 'N':
        ctx_.error(line, "\\N{...} escapes are not supported");
      default:
        if (e >= '0' && e <= '7') {
          unsigned long v = e - '0';
          for (int k = 0; k < 2 && i_ < n && s_[i_] >= '0' && s_[i_] <= '7'; ++k)
            v = v * 8 + (s_[i_++] - '0');
          append_utf8(&out, v);
        } else { // Python keeps unknown escapes as written
          out += '\\';
          out += e;
        }
      }
    }
    Token t;
    t.kind = Tok::Str;
    t.text = std::move(out);
    t.line = line;
    toks_.push_back(std::move(t));
  }

  const std::string &s_;
  const Ctx &ctx_;
  size_t i_ = 0;
  int line_ = 1;
  std::vector<Token> toks_;
};

} // namespace

std::vector<Token> lex(const std::string &text, const Ctx &ctx) { return Lexer(text, ctx).run(); }

} // namespace finegpt::py::detail
