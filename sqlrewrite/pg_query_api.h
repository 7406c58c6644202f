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
ParseOutput parse_sql(std::string_view sql);

struct DeparseOutput {
  bool ok = false;
  std::string sql;
  std::string error;
};
DeparseOutput deparse_sql(const pg_query::ParseResult& tree);

// libpg_query's statement fingerprint (hex), "" when the text does not parse.
std::string fingerprint_sql(std::string_view sql);
// The text with literals replaced by $n placeholders (pg_query_normalize), "" on error.
std::string normalize_sql(std::string_view sql);

}  // namespace rowguard::sqlrewrite
