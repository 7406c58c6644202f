#pragma once
// Reads the schema snapshot (policy/schema_snapshot.h) of a policy's tables over a libpq
// connection: columns, unique indexes (with constraint names and the partial flag), exclusion
// constraints, foreign keys, inheritance children and partitions (recursively: a child's keys
// are arbiters of a bare ON CONFLICT on its partitioned parent), and the function names of
// pg_catalog and public. Blocking: call it from a thread of its own (proxy/net/schema_refresher.h)
// or from a command-line tool, never from a worker's io_context.
#include <string>
#include <vector>

#include "policy/policy.h"
#include "policy/schema_snapshot.h"

namespace rowguard::tools {

// libpq connection parameters (keyword, value) for the policy's upstream as upstream_user:
// host, port, user, password, dbname (upstream_database), sslmode from upstream_tls.
std::vector<std::pair<std::string, std::string>> upstream_params(const policy::ProxySettings& proxy,
                                                                 int connect_timeout_seconds);

// Never throws. On failure: loaded = false and `error` says why (connection or query failure).
policy::SchemaSnapshot read_schema(const policy::Policy& policy,
                                   const std::vector<std::pair<std::string, std::string>>& params);
// The same with a libpq connection string or postgresql:// URL (rowguard check --against).
policy::SchemaSnapshot read_schema(const policy::Policy& policy, const std::string& conninfo);

}  // namespace rowguard::tools
