#pragma once
// Sequence functions for tenants. Sequences are not tenant-scoped: their state is shared.
//   setval(...)              changes what every other tenant's nextval returns: refused.
//   lastval()                names no sequence: it returns the last value of whichever sequence
//                            the session advanced last, also one a trigger advanced on a table the
//                            tenant cannot reach: refused (use currval('seq') or RETURNING).
//   nextval(s), currval(s)   allowed only when `s` is a string literal (optionally cast to
//                            regclass) naming a sequence that a column default of a tenant-scoped
//                            policy table draws from (schema snapshot); the literal is rewritten
//                            to the schema-qualified name so that search_path cannot change it.
//                            Any other argument (an expression, a parameter, an oid, a sequence
//                            of a table outside the policy such as audit_log_id_seq) is refused:
//                            its values tell the tenant about activity it cannot otherwise see.
// The leak that remains is a property of the schema: every tenant's inserts draw from the same
// sequence, so the ids a tenant gets tell how many rows other tenants inserted in between (the
// start-up report names such tables; uuid keys or per-tenant ids avoid it). Pure: no I/O.
#include <optional>
#include <string>
#include <string_view>

#include "policy/tenant_scope.h"

namespace pg_query {
class FuncCall;
}

namespace rowguard::sqlrewrite {

inline constexpr std::string_view kRuleSequences = "sequences";

// True for the functions check_sequence_call() decides (by their unqualified or pg_catalog name).
bool is_sequence_function(std::string_view name);

// nullopt: allowed (the call's literal may have been rewritten). Otherwise the denial reason,
// without the "rowguard: " prefix.
std::optional<std::string> check_sequence_call(pg_query::FuncCall& call, std::string_view name, const policy::TenantScope& scope);

}  // namespace rowguard::sqlrewrite
