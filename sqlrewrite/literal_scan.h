#pragma once
// A conservative scanner for the literal constants of a SQL text, for the constant-template
// cache (rewrite_cache.h): statements that differ only in their integer and string constants
// (`... WHERE aid = 17` / `... WHERE aid = 42`, as pgbench -M simple and most ORMs send them)
// share one cache entry, with the constants spliced back in.
//
// It models only the part of PostgreSQL 15's lexer (src/backend/parser/scan.l) needed to find
// token boundaries: whitespace, -- and nested /* */ comments, identifiers, "quoted identifiers",
// $n parameters, operators and punctuation, integers and standard '...' strings. Whatever it
// does not model makes it give up on the whole text (the cache then keys by the exact text):
// dollar quoting, E''/B''/X''/N''/U&'' strings, a string holding a backslash (its meaning
// depends on standard_conforming_strings), a string continued on the next line, numbers with a
// exponent, a leading or trailing '.', or trailing identifier characters, control characters, a lone backslash.
// Giving up is always safe; a wrong token boundary is what must not happen, and the cache also
// checks its first use of each template against a fresh rewrite.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rowguard::sqlrewrite {

struct Literal {
  // kInteger: digits only; kNumeric: digits '.' digits (the parser keeps its text as written).
  enum class Kind : uint8_t { kInteger, kNumeric, kString };
  Kind kind = Kind::kInteger;
  // What the literal is the first token of: `IN (` (kInList) or `VALUES (` (kValues), the
  // keyword not preceded by '.' (a function named in/values) -- where the rewrite cache looks for
  // lists of constants it may fold (rewrite_cache.h).
  enum class Opens : uint8_t { kNone, kInList, kValues };
  Opens opens = Opens::kNone;
  uint32_t begin = 0;  // byte offsets of the whole token in the text (quotes included)
  uint32_t end = 0;
};

// Fills `out` with the integer, numeric and string literal tokens of `sql`, in text order. Returns false
// (and `out` is then meaningless) when the text holds anything the scanner does not model.
bool scan_literals(std::string_view sql, std::vector<Literal>& out);

// The value of a string literal token found by scan_literals ('it''s' -> it's).
std::string string_literal_value(std::string_view token);
// Whether that value is `value` (without building it).
bool string_literal_equals(std::string_view token, std::string_view value);

// Whether c continues an identifier in PostgreSQL (letters, digits, '_', '$', bytes >= 0x80).
bool identifier_char(unsigned char c);

// Appends `sql` to `out` with each literal of `lits` (scan_literals order) handed to
// replace(out, index, literal, token), which appends what stands in its place.
template <class Replace>
void replace_literals(std::string& out, std::string_view sql, const std::vector<Literal>& lits, Replace&& replace) {
  size_t from = 0;
  for (size_t k = 0; k < lits.size(); ++k) {
    const Literal& l = lits[k];
    out.append(sql.substr(from, l.begin - from));
    replace(out, k, l, sql.substr(l.begin, l.end - l.begin));
    from = l.end;
  }
  out.append(sql.substr(from));
}

}  // namespace rowguard::sqlrewrite
