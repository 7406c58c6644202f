#pragma once
// How deep a statement's parse tree can be, bounded from its text in one pass before
// libpg_query sees it. libpg_query 15-4.0 has no working stack-depth check (its
// stack_is_too_deep() always answers false) and its tree output, its deparser, protobuf's
// decoder and the rewriter all recurse once or more per tree level; the bound lets rowguard
// refuse a tree too deep for the parse stack (parse_stack.h) instead of crashing.
//
// The bound: a light tokenizer (PostgreSQL 15's scan.l for comments, strings, E'' strings,
// quoted identifiers, dollar quotes, operators) keeps, for each open '(' '[' or CASE, the count
// of words and operators since the last ',' ';' AND OR WHEN THEN ELSE at that level. A tree level
// needs a word, an operator or an opening bracket, except below AND/OR (flattened into one list by
// the grammar), commas (lists) and CASE branches (lists), which the reset accounts for with one
// level each. Literals, parameters and quoted identifiers are leaves. The bound is the largest
// sum along the open levels; it over-counts (a column name is counted as a level) and never
// under-counts a left-deep chain such as 1+1+...+1, a JOIN or UNION chain, or a cast chain.
#include <cstddef>
#include <string_view>

namespace rowguard::sqlrewrite {

// The largest nesting bound rowguard parses. PostgreSQL 15 (max_stack_depth = 2MB) evaluates an
// operator chain of ~4,400 terms and parses ~9,000 parentheses; this leaves room for those and
// fits the parse stack with a margin (pg_query_api_test measures the stack used per level).
inline constexpr size_t kMaxNestingBound = 25000;

// protobuf messages nest a few times per tree level: the decoder's recursion limit (and the
// depth same_tree_bytes compares) for trees within kMaxNestingBound.
inline constexpr int kProtobufRecursionLimit = static_cast<int>(kMaxNestingBound) * 8;

// The nesting bound of `sql` (see above). Stops counting once it exceeds `stop_above`.
size_t nesting_bound(std::string_view sql, size_t stop_above = kMaxNestingBound);

// What the same pass learns about the cost of libpg_query's lexer (PostgreSQL's scan.l), which is
// quadratic on some texts that parse: an operator-character run with "/*" openers inside a
// comment ("/*/*/*..." rescans the rest of the run at each opener), or a long run of + and -
// (split one operator at a time, each time rescanning the run). `lexer_rescans` bounds the
// characters the lexer rescans.
struct StatementShape {
  size_t nesting = 0;
  size_t lexer_rescans = 0;
};
StatementShape scan_statement(std::string_view sql, size_t stop_above = kMaxNestingBound);

// The rescans allowed for a text of `size` bytes: linear in its size.
inline size_t max_lexer_rescans(size_t size) { return 16 * size + 65536; }

}  // namespace rowguard::sqlrewrite
