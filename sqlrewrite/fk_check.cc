// See fk_check.h.
#include "sqlrewrite/fk_check.h"

#include "sqlrewrite/check_text.h"

#include <algorithm>
#include <set>

namespace rowguard::sqlrewrite {
namespace {

using policy::ForeignKey;
using policy::TenantScope;
using policy::TableInfo;
using policy::TableRule;

using check_text::q;

using check_text::contains;

using check_text::list;

// The referencing column of `fk` that the write gives a value, or nullopt.
std::optional<std::string> given(const KeyWrite& w, const ForeignKey& fk, const TableInfo& t) {
  for (const auto& c : fk.columns) {
    if (contains(w.columns, c)) return c;
    const policy::ColumnInfo* info = t.column(c);
    if (!w.new_rows) {
      // A STORED GENERATED column is recomputed by an UPDATE of any column its expression reads,
      // which the snapshot does not record: any assignment may change it (fail closed).
      if ((info == nullptr || info->generated) && !w.columns.empty()) return c;
      continue;
    }
    // Unknown column: fail closed. Omitted with a default (or generated): the row gets a value.
    if (info == nullptr || info->has_default || info->generated || info->identity) return c;
  }
  return std::nullopt;
}

std::optional<std::string> check_table(const KeyWrite& w, const TableRule& rule, const TenantScope& scope,
                                       const TableInfo& t, const std::string& head, std::set<policy::QualifiedName>& seen) {
  if (!seen.insert(t.name).second) return std::nullopt;
  for (const auto& fk : t.foreign_keys) {
    if (contains(rule.shared_keys, fk.name) || fk_stays_in_tenant(fk, rule.column, scope)) continue;
    std::optional<std::string> column = given(w, fk, t);
    if (!column) continue;
    const TableRule* ref = scope.table(fk.references);
    const std::string target = q(fk.references.to_string());
    std::string why = ref == nullptr
        ? "references " + target + ", which is not in the policy (rows no tenant may read)"
        : "references the tenant table " + target + " without the tenant column (" + q(rule.column) + " -> " +
              q(ref->column) + ")";
    return head + "foreign key " + q(fk.name) + " (" + list(fk.columns) + ") of " + q(t.name.to_string()) + " " + why +
           ", and the statement gives " + q(*column) + " a value: PostgreSQL checks the referenced row without the "
           "tenant filter, so the write could reveal, lock or pin another tenant's row (rule: " +
           std::string(kRuleCrossTenantFk) + "; make it a composite foreign key (" + rule.column + ", " +
           list(fk.columns) + ") REFERENCES " + fk.references.to_string() + " (" +
           (ref == nullptr || ref->column.empty() ? std::string("tenant column") : ref->column) + ", " +
           list(fk.referenced_columns) + "), or list " + q(fk.name) + " in tables.\"" + rule.table.to_string() +
           "\".shared_keys to share it knowingly)";
  }
  const policy::SchemaSnapshot& schema = *scope.schema;
  for (const auto& child : t.children) {
    const TableInfo* c = schema.table(child);
    if (c == nullptr) {
      return head + "the foreign keys of " + q(child.to_string()) + " (a child of " + q(t.name.to_string()) +
             ") are not known (rule: " + std::string(kRuleCrossTenantFk) + ")";
    }
    if (auto why = check_table(w, rule, scope, *c, head, seen)) return why;
  }
  return std::nullopt;
}

}  // namespace

bool fk_stays_in_tenant(const ForeignKey& fk, const std::string& column, const TenantScope& scope) {
  // Only the tenant column (tenant_id REFERENCES tenants (id)): rowguard fixes its value to the
  // tenant's own, so the check can only reach the row of the tenant itself.
  bool only_tenant = !fk.columns.empty();
  for (const auto& c : fk.columns) only_tenant = only_tenant && c == column;
  if (only_tenant) return true;
  const TableRule* ref = scope.table(fk.references);
  if (ref == nullptr) return false;
  if (ref->global) return true;
  for (size_t i = 0; i < fk.columns.size() && i < fk.referenced_columns.size(); ++i) {
    if (fk.columns[i] == column && fk.referenced_columns[i] == ref->column) return true;
  }
  return false;
}

std::optional<std::string> check_fk_write(const KeyWrite& w, const TableRule& rule, const TenantScope& scope) {
  const std::string head = std::string(w.verb) + " " + q(rule.table.to_string()) + ": ";
  if (scope.schema == nullptr || !scope.schema->loaded) {
    return head + "the schema is not known yet (rowguard has not read the table's foreign keys from PostgreSQL) (rule: " +
           std::string(kRuleCrossTenantFk) + ")";
  }
  const TableInfo* info = scope.schema->table(rule.table);
  if (info == nullptr) {
    return head + "the table was not found upstream when the schema was read (rule: " + std::string(kRuleCrossTenantFk) + ")";
  }
  std::set<policy::QualifiedName> seen;
  return check_table(w, rule, scope, *info, head, seen);
}

}  // namespace rowguard::sqlrewrite
