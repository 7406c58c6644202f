#pragma once
// Referential actions that carry a tenant's write into other tables. A foreign key that
// references a policy table runs its ON UPDATE / ON DELETE action as the constraint's owner,
// without rowguard's tenant filter or checks: ON UPDATE CASCADE / SET NULL / SET DEFAULT write
// the referencing rows, so a tenant's UPDATE of a referenced column can collide with another
// tenant's row on a unique key of the referencing table (23505 naming its value), or make the
// referencing table's own foreign keys look up another tenant's row. So a tenant UPDATE (also ON
// CONFLICT DO UPDATE, MERGE ... UPDATE) that assigns a referenced column of such a key is
// refused (rule referential_action), and so is a tenant DELETE (also MERGE ... DELETE) of a table
// referenced - directly or through a chain of ON DELETE CASCADE keys - by a key with ON DELETE
// SET DEFAULT (it writes the default into the referencing rows). ON DELETE CASCADE (deletes
// only; the chain is followed) and ON DELETE SET NULL (NULL collides with nothing in a unique key
// unless it is NULLS NOT DISTINCT, and is not looked up by foreign keys) stay allowed: residual, a
// SET NULL also recomputes the referencing table's generated columns, and a NULLS NOT DISTINCT
// key is not in the snapshot. NO ACTION / RESTRICT only read. A key listed in the target table's
// `shared_keys` is the DBA's choice and allowed. The referencing keys of partitions and
// inheritance children count too. An unknown schema is a denial. Pure: no I/O.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/schema_snapshot.h"
#include "policy/tenant_scope.h"

namespace rowguard::sqlrewrite {

inline constexpr std::string_view kRuleReferentialAction = "referential_action";

// `deletes`: a DELETE of the table's rows; else an UPDATE assigning `columns`. nullopt: no
// referential action writes another table. Otherwise the denial reason (without "rowguard: ").
std::optional<std::string> check_referential_action(std::string_view verb, bool deletes,
                                                    const std::vector<std::string>& columns,
                                                    const policy::TableRule& rule, const policy::SchemaSnapshot* schema);

}  // namespace rowguard::sqlrewrite
