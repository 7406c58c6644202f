#pragma once
// What a schema snapshot says about a policy: errors (a policy table missing upstream, a tenant
// table without its tenant column) and warnings (keys that cross tenants: a unique key or
// exclusion constraint of a tenant table without the tenant column lets one tenant learn that
// another uses a key value, through a unique violation or ON CONFLICT; a foreign key from a
// tenant table to a tenant table that does not carry the tenant column, or to a table not in the
// policy, lets a tenant reference, and so probe, another tenant's rows: the writes that give it a
// value are refused, rule cross_tenant_fk, unless it is in shared_keys). Used at start-up, after every snapshot read, and by
// `rowguard check --against`. Pure: no I/O.
#include <string>
#include <vector>

#include "policy/policy.h"
#include "policy/schema_snapshot.h"

namespace rowguard::policy {

struct SchemaReport {
  std::vector<std::string> errors;
  std::vector<std::string> warnings;
};

SchemaReport report_schema(const Policy& policy, const SchemaSnapshot& schema);

}  // namespace rowguard::policy
