#pragma once
// What a tenant may read of PostgreSQL's own catalogs (pg_catalog, information_schema): the
// structure drivers and psql introspect is readable; what reveals other tenants' data (row
// counts, statistics, other sessions' queries, locks, sequence values, large objects) is denied
// or served through a sanitized substitute with the same columns.
#include <string_view>

namespace rowguard::policy {

struct CatalogRule {
  enum class Kind { kReadable, kMasked, kDenied };
  Kind kind = Kind::kDenied;
  // kMasked: a SELECT over the same relation returning the same columns, statistics masked.
  std::string_view substitute;
  // Why (for kDenied and kMasked): shown in denials and in docs.
  std::string_view why;
};

// nullptr when `schema.name` is not a catalog relation rowguard knows (then it is denied).
const CatalogRule* catalog_rule(std::string_view schema, std::string_view name);

// True when pg_catalog holds a relation of this name in PostgreSQL 15 (an unqualified name
// resolves there first, before "public").
bool is_pg_catalog_relation(std::string_view name);

}  // namespace rowguard::policy
