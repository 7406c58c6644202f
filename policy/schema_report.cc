// See schema_report.h.
#include "policy/schema_report.h"

#include <algorithm>

namespace rowguard::policy {
namespace {

std::string q(const std::string& s) { return "\"" + s + "\""; }

std::string columns_text(const std::vector<std::string>& cols) {
  if (cols.empty()) return "an expression";
  std::string out;
  for (const auto& c : cols) out += (out.empty() ? "" : ", ") + c;
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

SchemaReport report_schema(const Policy& policy, const SchemaSnapshot& schema) {
  SchemaReport out;
  if (!schema.loaded) return out;
  for (const auto& [name, rule] : policy.tables) {
    const TableInfo* t = schema.table(name);
    const std::string table = q(name.to_string());
    if (t == nullptr) {
      out.errors.push_back("table " + table + " does not exist upstream");
      continue;
    }
    if (rule.global) continue;
    if (t->column(rule.column) == nullptr) {
      out.errors.push_back("table " + table + " has no tenant column " + q(rule.column));
      continue;
    }
    for (const auto& k : t->unique_keys) {
      if (contains(k.columns, rule.column)) continue;
      out.warnings.push_back(
          "table " + table + ": unique key " + q(k.name) + " (" + columns_text(k.columns) +
          ") does not include the tenant column " + q(rule.column) +
          ": a tenant's INSERT that collides with another tenant's row fails with a unique violation, "
          "revealing that the key exists; INSERT ... ON CONFLICT with this key as arbiter is refused "
          "(make it UNIQUE (" + rule.column + ", ...))");
    }
    for (const auto& x : t->exclusion_constraints) {
      out.warnings.push_back("table " + table + ": exclusion constraint " + q(x) +
                             " is checked across tenants (a conflict reveals another tenant's row); "
                             "a bare INSERT ... ON CONFLICT DO NOTHING on this table is refused");
    }
    for (const auto& fk : t->foreign_keys) {
      const TableRule* ref = policy.table(fk.references);
      if (ref == nullptr || ref->global) continue;
      bool scoped = false;
      for (size_t i = 0; i < fk.columns.size() && i < fk.referenced_columns.size(); ++i) {
        if (fk.columns[i] == rule.column && fk.referenced_columns[i] == ref->column) scoped = true;
      }
      if (scoped) continue;
      out.warnings.push_back("table " + table + ": foreign key " + q(fk.name) + " (" + columns_text(fk.columns) +
                             ") references " + q(fk.references.to_string()) + " without the tenant column " +
                             q(rule.column) + ": a tenant can reference another tenant's row, and tell "
                             "from the foreign-key check whether it exists (make it FOREIGN KEY (" +
                             rule.column + ", ...) REFERENCES " + fk.references.to_string() + " (" +
                             ref->column + ", ...))");
    }
  }
  return out;
}

}  // namespace rowguard::policy
