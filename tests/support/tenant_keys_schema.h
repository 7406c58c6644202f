#pragma once
// For unit tests written before the key check (sqlrewrite/key_check.h), which refuses every
// tenant write while the schema is unknown: a copy of `p` with a schema snapshot that knows only
// the primary key (tenant_column, id) of each tenant table - no columns, no functions, so that
// nothing else the rewriter reads from a snapshot changes.
#include <memory>

#include "policy/policy.h"
#include "policy/schema_snapshot.h"

namespace rowguard::unit_test {

inline policy::PolicyPtr with_tenant_keys(const policy::PolicyPtr& p) {
  auto copy = std::make_shared<policy::Policy>(*p);
  auto snap = std::make_shared<policy::SchemaSnapshot>();
  snap->loaded = true;
  for (const auto& [name, rule] : p->tables) {
    if (rule.global) continue;
    policy::TableInfo t;
    t.name = name;
    policy::UniqueKey k;
    k.name = name.name + "_pkey";
    k.constraint = k.name;
    k.columns = {rule.column, "id"};
    k.primary = true;
    t.unique_keys.push_back(k);
    snap->tables[name] = t;
  }
  copy->schema = snap;
  return copy;
}

}  // namespace rowguard::unit_test
