#pragma once
// Keys that cross tenants: a tenant write must not be able to collide with another tenant's row.
//
// A unique key (primary key, unique constraint, unique index - partial or on expressions) of a
// tenant-scoped table that does not include the tenant column is checked by PostgreSQL across
// all tenants: tenant 1's INSERT of a key tenant 2 uses fails with 23505 (revealing that the key
// exists), and waits for tenant 2's open transaction that inserted it (a wait is a leak too). So
// a tenant write that gives such a key a value is refused:
//   new rows (INSERT, MERGE ... INSERT, COPY FROM)  a key is safe when one of its plain columns
//       is not given a value (omitted or DEFAULT) and its default draws from a sequence
//       (serial, identity, nextval default): we assume sequence values are fresh, i.e. no value
//       of that sequence was stored before by hand (a bypass user's explicit id, setval, CYCLE).
//       An expression index is given a value by every new row.
//   changed rows (UPDATE, ON CONFLICT DO UPDATE, MERGE ... UPDATE)  a key is at risk when one of
//       its columns is assigned; for an expression or partial index (whose expression or
//       predicate columns the snapshot does not know) every UPDATE is at risk, and so is a key
//       with a STORED GENERATED column (recomputed from columns the snapshot does not record).
//   exclusion constraints  rowguard knows neither their columns nor operators: every write.
// Keys with the tenant column among their plain columns are safe; keys listed in the table's
// `shared_keys` (by index or constraint name) are the DBA's choice and allowed. The keys of the
// table's partitions and inheritance children count too. An unknown schema is a denial.
// Pure: no I/O.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/schema_snapshot.h"
#include "policy/tenant_scope.h"

namespace google::protobuf {
template <typename T>
class RepeatedPtrField;
}
namespace pg_query {
class Node;
}

namespace rowguard::sqlrewrite {

inline constexpr std::string_view kRuleCrossTenantKey = "cross_tenant_key";

struct KeyWrite {
  std::string_view verb;             // "INSERT INTO", "UPDATE", "MERGE ... INSERT", "COPY", ...
  bool new_rows = false;             // inserts rows (else: changes existing rows)
  std::vector<std::string> columns;  // the columns given a value (DEFAULT / omitted excluded)
};

// nullopt: the write cannot collide with another tenant's row. Otherwise the denial reason
// (without the "rowguard: " prefix), naming the table, the key, the rule and the fix.
std::optional<std::string> check_key_write(const KeyWrite& write, const policy::TableRule& rule,
                                           const policy::SchemaSnapshot* schema);

// The names of a column list (INSERT, MERGE ... INSERT, UPDATE SET targets) that are given a
// value: all of them, except a column that is DEFAULT in every row of `rows` (VALUES rows, at
// the same positions; no rows: every column is given, as for INSERT ... SELECT and UPDATE).
std::vector<std::string> given_columns(const google::protobuf::RepeatedPtrField<pg_query::Node>& cols,
                                       const std::vector<const google::protobuf::RepeatedPtrField<pg_query::Node>*>& rows);

}  // namespace rowguard::sqlrewrite
