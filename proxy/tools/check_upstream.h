#pragma once
// `rowguard check FILE --against URL`: compares a policy with the real database schema.
#include <string>
#include <vector>

#include "policy/policy.h"

namespace rowguard::tools {

struct UpstreamCheck {
  std::string connect_error;          // non-empty: nothing was checked
  std::vector<std::string> errors;    // a listed table or its tenant column missing upstream
  std::vector<std::string> warnings;  // keys that cross tenants (policy/schema_report.h); tables
                                      // with a tenant column that the policy does not list
};

// Connects with libpq (`conninfo` is a connection string or a postgresql:// URL) and checks
// that every [tables] entry exists (table, view, partitioned table, ...) with its tenant column,
// and lists the tables that have a column named like a tenant column (default_column or any
// configured one) but are not in the policy, and warns about unique and foreign keys of tenant
// tables that do not include the tenant column (policy/schema_report.h).
UpstreamCheck check_against(const policy::Policy& policy, const std::string& conninfo);

}  // namespace rowguard::tools
