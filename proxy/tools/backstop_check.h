#pragma once
// [tenancy] backstop = "rls" at start-up: is the RLS backstop (policy/rls_sql.h) in place upstream?
#include <string>
#include <vector>

#include "policy/policy.h"

namespace rowguard::tools {

struct BackstopCheck {
  std::vector<std::string> errors;    // the backstop is not in place (or could not be checked)
  std::vector<std::string> warnings;  // global tables without their write policy, views
};

// Connects with libpq as [proxy] upstream_user to upstream_database (both needed) and checks
// that the upstream role is neither a superuser nor BYPASSRLS, and that every tenant table has
// RLS enabled and forced, the permissive policy rowguard_tenant for all commands reading
// current_setting('rowguard.tenant'), and no other permissive policy (policies are OR-ed: one
// more could widen what a tenant sees).
BackstopCheck check_backstop(const policy::Policy& policy);

}  // namespace rowguard::tools
