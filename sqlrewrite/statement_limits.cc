// The one-pass nesting bound of a statement text (statement_limits.h).
#include "sqlrewrite/statement_limits.h"

#include <algorithm>
#include <vector>

namespace rowguard::sqlrewrite {
namespace {

// ASCII classes as PostgreSQL's scanner has them (no locale).
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool ident_start(unsigned char c) { return is_alpha(c) || c == '_' || c >= 0x80; }
bool ident_cont(unsigned char c) { return ident_start(c) || is_digit(c) || c == '$'; }
char to_upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }
bool op_char(unsigned char c) {
  switch (c) {
    case '~': case '!': case '@': case '#': case '^': case '&': case '|': case '`': case '?':
    case '+': case '-': case '*': case '/': case '%': case '<': case '>': case '=': case ':':
      return true;
    default:
      return false;
  }
}

bool word_is(std::string_view w, std::string_view upper) {
  if (w.size() != upper.size()) return false;
  for (size_t i = 0; i < w.size(); ++i) {
    if (to_upper(w[i]) != upper[i]) return false;
  }
  return true;
}

// Skips a quoted token whose opening quote is at s[i]; `backslash` for E'' strings. Unterminated:
// to the end (libpg_query refuses the text).
size_t skip_quoted(std::string_view s, size_t i, char quote, bool backslash) {
  for (++i; i < s.size(); ++i) {
    if (backslash && s[i] == '\\') {
      ++i;
    } else if (s[i] == quote) {
      if (i + 1 < s.size() && s[i + 1] == quote) {
        ++i;
      } else {
        return i + 1;
      }
    }
  }
  return s.size();
}

struct Level {
  size_t base = 0;    // depth at its opening bracket
  size_t sticky = 0;  // UNION / INTERSECT / EXCEPT of this level: a left-deep chain across commas
  size_t count = 0;   // words and operator characters since the last list separator
  bool is_case = false;
  size_t depth() const { return base + sticky + count; }
};

}  // namespace

size_t nesting_bound(std::string_view s, size_t stop_above) { return scan_statement(s, stop_above).nesting; }

StatementShape scan_statement(std::string_view s, size_t stop_above) {
  StatementShape shape;
  size_t& lexer = shape.lexer_rescans;
  std::vector<Level> levels(1);
  size_t best = 0;
  const size_t n = s.size();
  auto bump = [&](size_t k) {
    levels.back().count += k;
    best = std::max(best, levels.back().depth());
  };
  auto open = [&](bool is_case) {
    Level l;
    l.base = levels.back().depth() + 1;
    l.is_case = is_case;
    levels.push_back(l);
    best = std::max(best, l.base);
  };
  size_t i = 0;
  while (i < n && best <= stop_above) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (is_space(c)) {
      ++i;
    } else if (c == '-' && i + 1 < n && s[i + 1] == '-') {
      while (i < n && s[i] != '\n' && s[i] != '\r') ++i;
    } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
      int depth = 0;  // /* comments nest
      size_t run_end = 0;  // end of the operator-character run holding i
      while (i < n) {
        if (i + 1 < n && s[i] == '/' && s[i + 1] == '*') {
          // scan.l's xcstart is "/*" plus every operator character after it, put back but two:
          // each opener rescans the rest of its run.
          if (run_end <= i) {
            run_end = i;
            while (run_end < n && op_char(static_cast<unsigned char>(s[run_end]))) ++run_end;
          }
          lexer += run_end - i;
          ++depth;
          i += 2;
        } else if (i + 1 < n && s[i] == '*' && s[i + 1] == '/') {
          i += 2;
          if (--depth == 0) break;
        } else {
          ++i;
        }
      }
    } else if (c == '\'') {
      i = skip_quoted(s, i, '\'', false);  // libpg_query: standard_conforming_strings on
    } else if (c == '"') {
      i = skip_quoted(s, i, '"', false);
      bump(1);
    } else if (ident_start(c)) {
      const size_t begin = i;
      while (i < n && ident_cont(static_cast<unsigned char>(s[i]))) ++i;
      const std::string_view w = s.substr(begin, i - begin);
      if (i < n && s[i] == '\'' && w.size() == 1) {
        // E'...' escapes with backslashes; B'', X'', N'' are plain strings.
        i = skip_quoted(s, i, '\'', word_is(w, "E"));
      } else if (i + 1 < n && s[i] == '&' && (s[i + 1] == '\'' || s[i + 1] == '"') && word_is(w, "U")) {
        i = skip_quoted(s, i + 1, s[i + 1], false);  // U&'...' / U&"..."
      } else if (word_is(w, "UNION") || word_is(w, "INTERSECT") || word_is(w, "EXCEPT")) {
        ++levels.back().sticky;
        best = std::max(best, levels.back().depth());
      } else if (word_is(w, "CASE")) {
        bump(1);
        open(true);
      } else if (word_is(w, "END") && levels.back().is_case) {
        levels.pop_back();
      } else if (levels.back().is_case && (word_is(w, "WHEN") || word_is(w, "THEN") || word_is(w, "ELSE"))) {
        levels.back().count = 1;  // a branch of the CASE list
      } else {
        bump(1);
      }
    } else if (is_digit(c) || (c == '.' && i + 1 < n && is_digit(static_cast<unsigned char>(s[i + 1])))) {
      // A number is a leaf; letters glued to it ("1JOIN") are a word of their own, as in scan.l.
      while (i < n && (is_digit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
      if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (s[j] == '+' || s[j] == '-')) ++j;
        if (j < n && is_digit(static_cast<unsigned char>(s[j]))) {
          i = j;
          while (i < n && is_digit(static_cast<unsigned char>(s[i]))) ++i;
        }
      }
    } else if (c == '$') {
      ++i;
      if (i < n && is_digit(static_cast<unsigned char>(s[i]))) {
        while (i < n && is_digit(static_cast<unsigned char>(s[i]))) ++i;  // $n
        continue;
      }
      // $tag$ ... $tag$
      size_t t = i;
      while (t < n && s[t] != '$' && ident_cont(static_cast<unsigned char>(s[t]))) ++t;
      if (t < n && s[t] == '$') {
        const std::string_view delim = s.substr(i - 1, t - i + 2);
        const size_t close = s.find(delim, t + 1);
        i = close == std::string_view::npos ? n : close + delim.size();
      } else {
        bump(1);
      }
    } else if (c == '(' || c == '[') {
      ++i;
      open(false);
    } else if (c == ')' || c == ']') {
      ++i;
      while (levels.size() > 1 && levels.back().is_case) levels.pop_back();  // an unclosed CASE
      if (levels.size() > 1) levels.pop_back();
    } else if (c == ',') {
      ++i;
      levels.back().count = 0;
    } else if (c == ';') {
      ++i;
      levels.resize(1);
      levels.back() = Level{};
    } else if (op_char(c)) {
      // Every character of an operator counts: the lexer splits runs such as "+-+-" into prefix
      // operators.
      // scan.l matches the whole run and puts back all but the first operator when it trims
      // trailing + and -: a run of length L can cost L*L.
      const size_t run = i;
      while (i < n && op_char(static_cast<unsigned char>(s[i])) &&
             !(i + 1 < n && ((s[i] == '-' && s[i + 1] == '-') || (s[i] == '/' && s[i + 1] == '*')))) {
        ++i;
        bump(1);
      }
      lexer += (i - run) * (i - run);
    } else {
      ++i;
      bump(1);
    }
  }
  shape.nesting = best;
  return shape;
}

}  // namespace rowguard::sqlrewrite
