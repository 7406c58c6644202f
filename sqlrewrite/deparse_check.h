#pragma once
// The deparser safety net (rewriter.cc): the text rowguard forwards must parse back into exactly
// the tree it checked. When it does not, the refusal names this rule, the statement part whose
// deparse differs, where it is in the text the client sent, and what changed.
#include <string>
#include <string_view>

#include "pg_query/pg_query.pb.h"

namespace rowguard::sqlrewrite {

inline constexpr std::string_view kRuleDeparseCheck = "deparse_check";

// The refusal for a checked tree whose deparsed text `deparsed` parses back into `reparsed`
// (libpg_query's serialized ParseResult) different from `checked`, or does not parse back
// (`reparsed_ok` false, `reparse_error` the parser's message). `sql` is the text the client sent
// (the checked tree's source positions point into it).
std::string deparse_check_denial(std::string_view sql, const pg_query::ParseResult& checked, bool reparsed_ok,
                                 std::string_view reparsed, std::string_view reparse_error);

}  // namespace rowguard::sqlrewrite
