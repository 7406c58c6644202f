#pragma once
// What the rewriter (sqlrewrite/) reads of a policy, and nothing else (no logins, TLS, listen
// addresses): the tables with their tenant columns, global tables and shared keys, the allowed
// functions, the [limits.settings] ceilings, the [cache] bounds, the schema snapshot and the
// policy version.
//
// A TenantScope is a view: a few pointers into one Policy, valid while that Policy lives (the
// caller holds its PolicyPtr for the whole rewrite). It is made from a `const Policy&`
// implicitly, so `rewrite(sql, *policy, tenant)` reads as before; making one costs nothing
// worth caching.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "policy/modes.h"
#include "policy/qualified_name.h"
#include "policy/schema_snapshot.h"
#include "policy/setting_limits.h"

namespace rowguard::policy {

class Policy;

struct TableRule {
  QualifiedName table;
  bool global = false;     // readable by every tenant; tenant writes denied
  std::string column;      // tenant column (empty when global)
  // Unique keys / indexes / exclusion constraints (by index or constraint name) that the DBA
  // knowingly shares across tenants: tenant writes to their columns are allowed and reveal
  // whether a value exists in another tenant (sqlrewrite/key_check.h).
  std::vector<std::string> shared_keys;
};

// [cache]: the rewrite cache (sqlrewrite/rewrite_cache.h). Each worker thread has its own cache
// with these bounds, so rowguard holds up to workers x max_bytes of cached rewrites.
struct CacheSettings {
  size_t max_entries = 10000;    // statement texts (+ per-tenant entries) per worker; >= 1
  size_t max_bytes = 64u << 20;  // approximate heap held per worker
};

class TenantScope {
 public:
  TenantScope(const Policy& policy);  // implicit on purpose: a view of `policy` (see above)

  // nullptr when the table is not in the policy.
  const TableRule* table(const QualifiedName& name) const {
    auto it = tables_->find(name);
    return it == tables_->end() ? nullptr : &it->second;
  }
  // [functions] allow.
  bool function_allowed(const QualifiedName& name) const;

  // What rowguard read about the upstream schema (policy/schema_snapshot.h); null: unknown.
  const SchemaSnapshot* schema;
  const SettingLimits& setting_limits;  // [limits.settings]: ceilings on tenant SET values
  const CacheSettings& cache;           // [cache]
  uint64_t version;                     // Policy::version: a new one invalidates rewrite caches
  Explain explain;                      // [tenancy] explain

 private:
  const std::map<QualifiedName, TableRule>* tables_;
  const std::vector<QualifiedName>* allowed_functions_;
};

}  // namespace rowguard::policy
