// The conservative literal scanner (see literal_scan.h), after PostgreSQL 15's scan.l.
#include "sqlrewrite/literal_scan.h"

#include <array>

namespace rowguard::sqlrewrite {
namespace {

// Character classes, one table lookup each (the scanner runs on every statement text that misses
// the exact-text cache, so it must cost well under the splice it enables).
enum : uint8_t { kIdentStart = 1, kDigit = 2, kIdentContOnly = 4, kSpace = 8, kPunct = 16 };

constexpr std::array<uint8_t, 256> make_classes() {
  std::array<uint8_t, 256> t{};
  for (int c = 'A'; c <= 'Z'; ++c) t[c] |= kIdentStart;
  for (int c = 'a'; c <= 'z'; ++c) t[c] |= kIdentStart;
  for (int c = 0x80; c <= 0xff; ++c) t[c] |= kIdentStart;
  t['_'] |= kIdentStart;
  for (int c = '0'; c <= '9'; ++c) t[c] |= kDigit;
  t['$'] |= kIdentContOnly;
  for (char c : {' ', '\t', '\n', '\r', '\f'}) t[static_cast<unsigned char>(c)] |= kSpace;
  // scan.l's op_chars and self, minus the characters handled on their own ('.', '$', quotes).
  for (char c : {'~', '!', '@', '#', '^', '&', '|', '`', '?', '+', '-', '*', '/', '%', '<', '>', '=', ',',
                 '(', ')', '[', ']', ';', ':'}) {
    t[static_cast<unsigned char>(c)] |= kPunct;
  }
  return t;
}
constexpr std::array<uint8_t, 256> kClasses = make_classes();

bool ident_start(unsigned char c) { return kClasses[c] & kIdentStart; }
bool ident_cont(unsigned char c) { return kClasses[c] & (kIdentStart | kDigit | kIdentContOnly); }
bool digit(unsigned char c) { return kClasses[c] & kDigit; }
bool space(unsigned char c) { return kClasses[c] & kSpace; }
bool punctuation(unsigned char c) { return kClasses[c] & kPunct; }

// Skips whitespace and comments from `i`; false on an unterminated /* comment.
bool skip_blank(std::string_view s, size_t& i) {
  const size_t n = s.size();
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (space(c)) {
      ++i;
    } else if (c == '-' && i + 1 < n && s[i + 1] == '-') {
      while (i < n && s[i] != '\n' && s[i] != '\r') ++i;
    } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
      int depth = 0;  // /* comments nest in PostgreSQL
      while (true) {
        if (i + 1 >= n) return false;
        if (s[i] == '/' && s[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (s[i] == '*' && s[i + 1] == '/') {
          i += 2;
          if (--depth == 0) break;
        } else {
          ++i;
        }
      }
    } else {
      break;
    }
  }
  return true;
}

// Skips the quoted token starting at s[i] (a ' string or a " identifier; a doubled quote stands
// for one). False when it is unterminated, or when a string holds a backslash (its meaning
// depends on standard_conforming_strings).
bool skip_quoted(std::string_view s, size_t& i, char quote) {
  for (++i; i < s.size(); ++i) {
    if (quote == '\'' && s[i] == '\\') return false;
    if (s[i] != quote) continue;
    if (i + 1 < s.size() && s[i + 1] == quote) {
      ++i;
      continue;
    }
    ++i;
    return true;
  }
  return false;
}

// The last three significant tokens, as far as the list context of a literal goes.
enum class Tok : uint8_t { kOther, kIn, kValues, kDot, kOpen };

bool word_is(std::string_view w, std::string_view kw) {
  if (w.size() != kw.size()) return false;
  for (size_t i = 0; i < w.size(); ++i) {
    if ((w[i] | 0x20) != kw[i]) return false;
  }
  return true;
}

}  // namespace

bool scan_literals(std::string_view s, std::vector<Literal>& out) {
  out.clear();
  const size_t n = s.size();
  if (n > (1u << 24)) return false;  // offsets are 32-bit; such texts are not worth normalizing
  size_t i = 0;
  uint32_t prev = 0;  // the last three tokens' Tok, the latest in the low byte
  auto push = [&](Tok t) { prev = (prev << 8) | static_cast<uint8_t>(t); };
  // Literal::opens of a literal starting now.
  auto opens = [&]() {
    constexpr auto b = [](Tok t, int i) { return static_cast<uint32_t>(t) << (8 * i); };
    const uint32_t last3 = prev & 0xffffff;
    if ((last3 & 0xff) != b(Tok::kOpen, 0) || (last3 & 0xff0000) == b(Tok::kDot, 2)) return Literal::Opens::kNone;
    if ((last3 & 0xff00) == b(Tok::kIn, 1)) return Literal::Opens::kInList;
    if ((last3 & 0xff00) == b(Tok::kValues, 1)) return Literal::Opens::kValues;
    return Literal::Opens::kNone;
  };
  while (true) {
    if (!skip_blank(s, i)) return false;
    if (i >= n) return true;
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\'') {
      // Only a standard string: not E'', B'', X'', N'', U&'' (or a type name glued to it).
      if (i > 0 && (ident_cont(static_cast<unsigned char>(s[i - 1])) || s[i - 1] == '&')) return false;
      const size_t begin = i;
      if (!skip_quoted(s, i, '\'')) return false;
      out.push_back({Literal::Kind::kString, opens(), static_cast<uint32_t>(begin), static_cast<uint32_t>(i)});
      push(Tok::kOther);
      size_t j = i;  // 'a'<newline>'b' is one string in PostgreSQL: not modelled
      if (!skip_blank(s, j)) return false;
      if (j < n && s[j] == '\'') return false;
    } else if (c == '"') {
      if (!skip_quoted(s, i, '"')) return false;
      push(Tok::kOther);
    } else if (c == '$') {
      // $n; anything else ($$ quoting, $tag$) is not modelled.
      ++i;
      if (i >= n || !digit(static_cast<unsigned char>(s[i]))) return false;
      while (i < n && digit(static_cast<unsigned char>(s[i]))) ++i;
      if (i < n && ident_cont(static_cast<unsigned char>(s[i]))) return false;
      push(Tok::kOther);
    } else if (ident_start(c)) {
      const size_t begin = i;
      while (i < n && ident_cont(static_cast<unsigned char>(s[i]))) ++i;
      const size_t len = i - begin;
      push(len == 2 && word_is(s.substr(begin, 2), "in")       ? Tok::kIn
           : len == 6 && word_is(s.substr(begin, 6), "values") ? Tok::kValues
                                                               : Tok::kOther);
    } else if (digit(c)) {
      const size_t begin = i;
      Literal::Kind kind = Literal::Kind::kInteger;
      while (i < n && digit(static_cast<unsigned char>(s[i]))) ++i;
      if (i + 1 < n && s[i] == '.' && digit(static_cast<unsigned char>(s[i + 1]))) {
        kind = Literal::Kind::kNumeric;  // 12.50
        ++i;
        while (i < n && digit(static_cast<unsigned char>(s[i]))) ++i;
      }
      // 1e5, 1.5e3, 1., 1..2, 1.2.3, 123abc: not modelled.
      if (i < n && (s[i] == '.' || ident_cont(static_cast<unsigned char>(s[i])))) return false;
      out.push_back({kind, opens(), static_cast<uint32_t>(begin), static_cast<uint32_t>(i)});
      push(Tok::kOther);
    } else if (c == '.') {
      if (i + 1 < n && digit(static_cast<unsigned char>(s[i + 1]))) return false;  // .5
      ++i;
      push(Tok::kDot);
    } else if (punctuation(c)) {
      ++i;  // a comment starting inside an operator is found by skip_blank at the next position
      push(c == '(' ? Tok::kOpen : Tok::kOther);
    } else {
      return false;  // a backslash, a control character, {, }, ...
    }
  }
}

std::string string_literal_value(std::string_view token) {
  std::string v;
  if (token.size() < 2) return v;
  v.reserve(token.size() - 2);
  for (size_t i = 1; i + 1 < token.size(); ++i) {
    v.push_back(token[i]);
    if (token[i] == '\'') ++i;  // '' inside stands for one quote
  }
  return v;
}

bool identifier_char(unsigned char c) { return ident_cont(c); }

bool string_literal_equals(std::string_view token, std::string_view value) {
  if (token.size() < 2) return false;
  size_t v = 0;
  for (size_t i = 1; i + 1 < token.size(); ++i) {
    if (v >= value.size() || token[i] != value[v++]) return false;
    if (token[i] == '\'') ++i;
  }
  return v == value.size();
}

}  // namespace rowguard::sqlrewrite
