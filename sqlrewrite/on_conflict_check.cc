// See on_conflict_check.h.
#include "sqlrewrite/on_conflict_check.h"

#include "sqlrewrite/check_text.h"

#include "pg_query/pg_query.pb.h"

#include <algorithm>
#include <set>
#include <vector>

namespace rowguard::sqlrewrite {
namespace {

using policy::SchemaSnapshot;
using policy::TableInfo;
using policy::TableRule;
using policy::UniqueKey;

using check_text::q;

std::string rule_text() {
  return "(rule: every ON CONFLICT arbiter index must include the tenant column, so that the "
         "statement cannot lock, wait on or reveal another tenant's row)";
}

std::string key_text(const UniqueKey& k) {
  std::string cols;
  for (const auto& c : k.columns) cols += (cols.empty() ? "" : ", ") + c;
  return q(k.name) + " (" + (k.columns.empty() ? std::string("an expression") : cols) + ")";
}

bool has_column(const UniqueKey& k, const std::string& column) {
  return std::find(k.columns.begin(), k.columns.end(), column) != k.columns.end();
}

// Every unique index (and exclusion constraint) of `table` and of its descendants, for a
// bare ON CONFLICT DO NOTHING. A descendant missing from the snapshot is a denial.
std::optional<std::string> all_keys_include(const SchemaSnapshot& schema, const TableInfo& table,
                                            const TableRule& rule, const std::string& head,
                                            std::set<policy::QualifiedName>& seen) {
  if (!seen.insert(table.name).second) return std::nullopt;
  for (const auto& k : table.unique_keys) {
    if (!has_column(k, rule.column)) {
      return head + "arbiter unique key " + key_text(k) + " of " + q(table.name.to_string()) +
             " does not include the tenant column " + q(rule.column) + " " + rule_text();
    }
  }
  if (!table.exclusion_constraints.empty()) {
    return head + "exclusion constraint " + q(table.exclusion_constraints.front()) + " of " +
           q(table.name.to_string()) + " is an arbiter and rowguard does not check its operators " +
           rule_text();
  }
  for (const auto& child : table.children) {
    const TableInfo* c = schema.table(child);
    if (c == nullptr) {
      return head + "the keys of " + q(child.to_string()) + " (a child of " + q(table.name.to_string()) +
             ") are not known " + rule_text();
    }
    if (auto why = all_keys_include(schema, *c, rule, head, seen)) return why;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> check_on_conflict(const pg_query::OnConflictClause& clause, const TableRule& rule,
                                             const SchemaSnapshot* schema) {
  const std::string table = rule.table.to_string();
  const std::string head = "INSERT ... ON CONFLICT on " + q(table) + ": ";
  if (schema == nullptr || !schema->loaded) {
    return head + "the schema is not known yet (rowguard has not read the table's keys from PostgreSQL) " + rule_text();
  }
  const TableInfo* info = schema->table(rule.table);
  if (info == nullptr) return head + "the table was not found upstream when the schema was read " + rule_text();
  if (info->relkind != 'r' && info->relkind != 'p') {
    return head + "the target is not a table (relkind '" + std::string(1, info->relkind) +
           "'): its arbiter indexes are those of another relation " + rule_text();
  }
  if (!clause.has_infer()) {
    // No conflict target (only DO NOTHING allows it): every unique index is an arbiter.
    std::set<policy::QualifiedName> seen;
    return all_keys_include(*schema, *info, rule, head, seen);
  }
  const auto& infer = clause.infer();
  if (!infer.conname().empty()) {
    for (const auto& k : info->unique_keys) {
      if (k.constraint != infer.conname()) continue;
      if (has_column(k, rule.column)) return std::nullopt;
      return head + "arbiter constraint " + key_text(k) + " does not include the tenant column " +
             q(rule.column) + " " + rule_text();
    }
    return head + "constraint " + q(infer.conname()) + " is not a known unique constraint of " + q(table) +
           " " + rule_text();
  }
  // ON CONFLICT (elems): an index is an arbiter only when its plain key columns are exactly the
  // plain columns among `elems` (plancat.c: bms_equal(indexedAttrs, inferAttrs)); so with the
  // tenant column among them, every arbiter has it.
  std::set<std::string> plain;
  bool expressions = false;
  for (const auto& e : infer.index_elems()) {
    if (!e.has_index_elem()) return head + "malformed conflict target " + rule_text();
    if (e.index_elem().has_expr() || e.index_elem().name().empty()) {
      expressions = true;
    } else {
      plain.insert(e.index_elem().name());
    }
  }
  if (plain.count(rule.column) > 0) return std::nullopt;
  // Name the key that would be the arbiter, when the snapshot has one.
  for (const auto& k : info->unique_keys) {
    if (expressions || k.columns.empty()) continue;
    if (std::set<std::string>(k.columns.begin(), k.columns.end()) == plain) {
      return head + "arbiter unique key " + key_text(k) + " does not include the tenant column " + q(rule.column) +
             " " + rule_text();
    }
  }
  return head + "the conflict target does not name the tenant column " + q(rule.column) + " " + rule_text();
}

}  // namespace rowguard::sqlrewrite
