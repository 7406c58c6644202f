#pragma once
// Foreign keys that cross tenants. PostgreSQL checks a foreign key as the referenced table's
// owner, without row-level security and without rowguard's tenant filter (ri_triggers.c
// RI_FKey_check: SELECT 1 FROM ONLY pk WHERE key = $1 FOR KEY SHARE). So a tenant write that
// gives a referencing column a value could reference another tenant's row: success vs 23503
// tells that the row exists, the KEY SHARE lock makes the other tenant's DELETE wait, and a
// committed reference blocks its DELETE (RESTRICT / NO ACTION) or lets its DELETE cascade into
// this tenant's rows. rowguard cannot add a tenant filter to that check, so it refuses (rule
// cross_tenant_fk) a tenant write that gives a value to a referencing column of a foreign key
//   - whose referenced table is tenant-scoped and whose column pairs do not include
//     (tenant column -> the referenced table's tenant column), or
//   - whose referenced table is not in the policy (rows no tenant may read; fail closed),
// unless the constraint is listed in the table's `shared_keys`. A foreign key to a global table
// is fine (its rows are readable by every tenant), and so is one whose only referencing column is
// the tenant column (`tenant_id REFERENCES tenants (id)`: rowguard fixes its value to the tenant's).
// "Gives a value": new rows - a referencing column that is given, or omitted but has a default
// (or is generated); an omitted column without a default is NULL, and a foreign key with a NULL
// column is not looked up (MATCH SIMPLE: not checked; MATCH FULL: all NULL is not checked, some
// NULL fails without a lookup), so it cannot reach another tenant's row. Changed rows - a
// referencing column that is assigned, or a STORED GENERATED one (recomputed from columns the
// snapshot does not record) whenever the UPDATE assigns anything. The foreign keys of partitions and inheritance children
// count too. An unknown schema is a denial. Pure: no I/O.
#include <optional>
#include <string>
#include <string_view>

#include "policy/tenant_scope.h"
#include "sqlrewrite/key_check.h"

namespace rowguard::sqlrewrite {

inline constexpr std::string_view kRuleCrossTenantFk = "cross_tenant_fk";

// nullopt: the write cannot reference another tenant's row. Otherwise the denial reason
// (without the "rowguard: " prefix), naming the table, the constraint, the referenced table,
// the rule and the fix.
std::optional<std::string> check_fk_write(const KeyWrite& write, const policy::TableRule& rule,
                                          const policy::TenantScope& scope);

// True when `fk` of a table with tenant column `column` reaches only rows every tenant may read
// or rows of the same tenant: its only column is `column`, its referenced table is global, or
// tenant-scoped and the pairs include (column -> its tenant column). False also for a referenced
// table not in the policy.
bool fk_stays_in_tenant(const policy::ForeignKey& fk, const std::string& column, const policy::TenantScope& scope);

}  // namespace rowguard::sqlrewrite
