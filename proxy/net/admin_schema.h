#pragma once
// SHOW SCHEMA in the admin console: the schema snapshot of the policy in force, one row per
// policy table. Socket-free (unit-tested); proxy/net/admin.cc sends it.
#include <cstdint>

#include "policy/policy.h"
#include "proxy/net/admin_format.h"
#include "proxy/net/schema_refresher.h"

namespace rowguard::net::admin {

// Columns: table, tenant_column, found, relkind, columns, unique_keys, keys_without_tenant_column,
// foreign_keys, children, snapshot (loaded | error), error, age_seconds, last_read_reason.
// `status` may be null (no refresher, e.g. in tests). `now_us`: unix time, microseconds.
ResultSet schema_result(const policy::Policy& p, const SchemaStatus* status, int64_t now_us);

int64_t unix_now_us();

}  // namespace rowguard::net::admin
