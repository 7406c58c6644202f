#pragma once
// The one file that wraps pg_query.h: parse SQL into the protobuf AST (as generated C++ classes)
// and deparse an AST back to SQL. Every libpg_query result is freed by RAII.
#include <string>
#include <string_view>

#include "pg_query/pg_query.pb.h"

namespace rowguard::sqlrewrite {

struct ParseOutput {
  bool ok = false;
  pg_query::ParseResult tree;
  std::string error;  // parser message when !ok
  int error_cursor = 0;
};
// Runs on the thread's parse stack (parse_stack.h); a text whose nesting bound exceeds
// kMaxNestingBound (statement_limits.h) is refused before libpg_query sees it.
ParseOutput parse_sql(std::string_view sql);

struct DeparseOutput {
  bool ok = false;
  std::string sql;
  std::string error;
};
// `encoded`, when given, receives the serialized tree that was deparsed (for same_tree_bytes).
DeparseOutput deparse_sql(const pg_query::ParseResult& tree, std::string* encoded = nullptr);

// The parse tree as libpg_query's serialized pg_query.ParseResult, not decoded into C++ objects
// (for a comparison with same_tree_bytes()).
struct ProtobufParseOutput {
  bool ok = false;
  std::string bytes;
  std::string error;  // parser message when !ok
};
ProtobufParseOutput parse_sql_protobuf(std::string_view sql);
// Deparses a serialized pg_query.ParseResult (e.g. tree.SerializeAsString()).
DeparseOutput deparse_protobuf(std::string_view bytes);

// True when two serialized pg_query.ParseResult trees are the same tree apart from source
// positions (the scalar fields `location`, `stmt_location` and `stmt_len`, which legitimately
// differ between two texts of one statement). Every other field, including unknown ones, must be
// byte-identical in the same order; a malformed encoding, or a tree nested deeper than the C++
// classes decode (kProtobufRecursionLimit), compares unequal. The encoders of
// libpg_query (protobuf-c) and of the C++ classes write fields in field-number order with proto3
// defaults omitted, so equal trees encode equally; any encoding difference only makes the
// comparison stricter.
bool same_tree_bytes(std::string_view a, std::string_view b);

// libpg_query's statement fingerprint (hex), "" when the text does not parse.
std::string fingerprint_sql(std::string_view sql);
// The text with literals replaced by $n placeholders (pg_query_normalize), "" on error.
std::string normalize_sql(std::string_view sql);

}  // namespace rowguard::sqlrewrite
