#pragma once
// Transaction pooling ([pool] mode = "transaction", proxy/session): a client's SQL-level
// prepared statements live on the server connections under names rowguard owns (`rg_<n>`).
// These pure functions work on texts the rewriter already produced (allowed, deparsed) and
// change only names in the tree, never the text; nullopt means "cannot": the caller refuses.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rowguard::sqlrewrite {

// The top-level statements of a rewritten text, each deparsed alone (sent one after the other
// in one Query, they are that Query), or nullopt when the text does not parse or deparse.
std::optional<std::vector<std::string>> split_statements(std::string_view sql);

// `statement` (one statement) with the name of its PREPARE, EXECUTE (also under EXPLAIN or
// CREATE TABLE AS) or DEALLOCATE set to `name`; nullopt when it names no prepared statement.
std::optional<std::string> rename_prepared(std::string_view statement, std::string_view name);

// The statement a PREPARE prepares (its AS part, deparsed), or nullopt.
std::optional<std::string> prepared_query(std::string_view prepare_statement);

// PREPARE name (types) AS statement, for a statement prepared through Parse with these declared
// parameter types (0: unspecified, written `unknown`, which PREPARE infers the same way), or
// nullopt when a type is not one rowguard can name (it then cannot be prepared in SQL).
std::optional<std::string> prepare_sql(std::string_view name, const std::vector<int32_t>& types,
                                       std::string_view statement);

}  // namespace rowguard::sqlrewrite
