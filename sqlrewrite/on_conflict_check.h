#pragma once
// INSERT ... ON CONFLICT for a tenant: every arbiter index must include the tenant column.
//
// An arbiter index that lacks the tenant column (a primary key on `id` alone) makes a tenant's
// INSERT ... ON CONFLICT find, lock and wait on another tenant's row with the same key: DO
// UPDATE locks the row before its WHERE clause (which carries the tenant filter) is evaluated,
// DO NOTHING silently skips the row, and both tell the tenant that the key exists. So the
// arbiters are worked out as PostgreSQL does (optimizer/util/plancat.c infer_arbiter_indexes):
//   ON CONFLICT (cols) [WHERE ...]   every unique index whose key columns are exactly `cols`;
//                                    with the tenant column among `cols` as a plain column,
//                                    every such index has it as a key column;
//   ON CONFLICT ON CONSTRAINT name   that constraint of the target table (from the snapshot);
//   ON CONFLICT DO NOTHING           every unique index and exclusion constraint of the table
//                                    (of each partition, for a partitioned table).
// Anything the snapshot cannot answer (unknown schema, a view, an unknown constraint, an
// expression index, an exclusion constraint) is refused. Pure: no I/O.
#include <optional>
#include <string>

#include "policy/schema_snapshot.h"
#include "policy/tenant_scope.h"

namespace pg_query {
class OnConflictClause;
}

namespace rowguard::sqlrewrite {

// nullopt: the ON CONFLICT clause cannot reach another tenant's row. Otherwise the denial
// reason (without the "rowguard: " prefix), naming the rule and the key.
std::optional<std::string> check_on_conflict(const pg_query::OnConflictClause& clause,
                                             const policy::TableRule& rule,
                                             const policy::SchemaSnapshot* schema);

}  // namespace rowguard::sqlrewrite
