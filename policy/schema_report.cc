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
    for (const auto& v : t->views) {
      // A view reads the table as its owner, without rowguard's filter on the table: whatever the
      // policy says of the view is what tenants get.
      const std::string view = std::string(v.relkind == 'm' ? "materialized view " : "view ") + q(v.name.to_string());
      const TableRule* vr = policy.table(v.name);
      if (vr == nullptr) {
        out.warnings.push_back(view + " reads the tenant table " + table + " and is not in the policy: tenants "
                               "cannot name it (refused as an unknown table); to let them read it, list it with a "
                               "tenant column it exposes");
      } else if (vr->global) {
        out.errors.push_back(view + " reads the tenant table " + table + " but the policy lists it as global: it "
                             "would hand every tenant every tenant's rows of " + table + "; list it with its tenant "
                             "column (tables.\"" + v.name.to_string() + "\".column) or remove it from the policy");
      } else if (!contains(v.columns, vr->column)) {
        out.errors.push_back(view + " reads the tenant table " + table + " but does not expose the tenant column " +
                             q(vr->column) + " the policy lists it with: rowguard cannot filter it, and a tenant "
                             "would get every tenant's rows of " + table + " or an error");
      }
    }
    for (const auto& k : t->unique_keys) {
      const auto& plain = k.plain_columns.empty() ? k.columns : k.plain_columns;
      if (contains(plain, rule.column)) continue;
      if (contains(rule.shared_keys, k.name) || (!k.constraint.empty() && contains(rule.shared_keys, k.constraint))) {
        out.warnings.push_back(
            "table " + table + ": unique key " + q(k.name) + " (" + columns_text(k.columns) +
            ") does not include the tenant column " + q(rule.column) + " and is listed in shared_keys: a tenant's "
            "write that collides with another tenant's row fails with a unique violation (or waits for its open "
            "transaction), revealing that the value exists in another tenant");
        continue;
      }
      out.warnings.push_back(
          "table " + table + ": unique key " + q(k.name) + " (" + columns_text(k.columns) +
          ") does not include the tenant column " + q(rule.column) +
          ": tenant writes that give it a value are refused (INSERT / COPY / MERGE naming its columns, "
          "UPDATE assigning them" + std::string(k.columns.empty() || k.partial ? ", every write for an expression or partial index" : "") +
          ", rule cross_tenant_key); make it UNIQUE (" + rule.column + ", ...) or list it in tables.\"" +
          name.to_string() + "\".shared_keys");
    }
    for (const auto& x : t->exclusion_constraints) {
      if (contains(rule.shared_keys, x)) continue;
      out.warnings.push_back("table " + table + ": exclusion constraint " + q(x) +
                             " is checked across tenants: every tenant write to the table is refused "
                             "(rule cross_tenant_key) unless it is listed in shared_keys");
    }
    for (const auto& shared : rule.shared_keys) {
      bool found = contains(t->exclusion_constraints, shared);
      for (const auto& k : t->unique_keys) found = found || k.name == shared || k.constraint == shared;
      for (const auto& fk : t->foreign_keys) found = found || fk.name == shared;
      for (const auto& rk : t->referenced_by) found = found || rk.name == shared;
      if (!found) {
        out.warnings.push_back("table " + table + ": shared_keys names " + q(shared) +
                               ", which is not a unique index, unique constraint, exclusion constraint or foreign key of it");
      }
    }
    for (const auto& rk : t->referenced_by) {
      const bool update = !rk.via_cascade && rk.on_update != 'a' && rk.on_update != 'r';
      const bool del = rk.on_delete != 'a' && rk.on_delete != 'r' && rk.on_delete != 'c' && rk.on_delete != 'n';
      if ((!update && !del) || contains(rule.shared_keys, rk.name)) continue;
      out.warnings.push_back("table " + table + ": foreign key " + q(rk.name) + " of " + q(rk.table.to_string()) +
                             " references it with a referential action that writes the referencing rows past rowguard: " +
                             "tenant " + std::string(update ? "UPDATEs of its referenced columns" : "") +
                             (update && del ? " and " : "") + (del ? "DELETEs" : "") +
                             " are refused (rule referential_action) unless it is listed in shared_keys");
    }
    for (const auto& c : t->columns) {
      if (c.default_sequence.empty()) continue;
      bool in_cross_key = false;  // only a key without the tenant column relies on fresh values
      for (const auto& k : t->unique_keys) {
        const auto& plain = k.plain_columns.empty() ? k.columns : k.plain_columns;
        in_cross_key = in_cross_key || (contains(plain, c.name) && !contains(plain, rule.column));
      }
      if (c.sequence_behind && in_cross_key) {
        out.warnings.push_back("table " + table + ": column " + q(c.name) + " draws its default from the sequence " +
                               q(c.default_sequence) + ", which can still produce a value the column holds (ids stored "
                               "above it, a descending or CYCLE sequence, or a column that leads no unique index): its "
                               "default is not fresh, so tenant inserts into a unique key without the tenant column are "
                               "refused (rule cross_tenant_key); fix: SELECT setval('" + c.default_sequence + "', max(" +
                               c.name + ")) FROM " + name.to_string());
      }
      out.warnings.push_back(
          "table " + table + ": column " + q(c.name) + " draws its default from the sequence " +
          q(c.default_sequence) + ", shared by all tenants: the values a tenant's inserts get tell how many rows "
          "other tenants inserted in between (use uuid keys or per-tenant ids to avoid it)");
    }
    for (const auto& fk : t->foreign_keys) {
      const TableRule* ref = policy.table(fk.references);
      if (ref != nullptr && ref->global) continue;
      bool scoped = !fk.columns.empty();  // only the tenant column: its value is the tenant's own
      for (const auto& c : fk.columns) scoped = scoped && c == rule.column;
      for (size_t i = 0; ref != nullptr && i < fk.columns.size() && i < fk.referenced_columns.size(); ++i) {
        if (fk.columns[i] == rule.column && fk.referenced_columns[i] == ref->column) scoped = true;
      }
      if (scoped) continue;
      const std::string head = "table " + table + ": foreign key " + q(fk.name) + " (" + columns_text(fk.columns) +
                               ") references " + q(fk.references.to_string()) +
                               (ref == nullptr ? ", which is not in the policy," : " without the tenant column " + q(rule.column)) +
                               ": PostgreSQL checks it without the tenant filter";
      if (contains(rule.shared_keys, fk.name)) {
        out.warnings.push_back(head + "; it is listed in shared_keys: a tenant's write can reference, and so probe, "
                               "lock and pin, another tenant's row");
        continue;
      }
      out.warnings.push_back(head + ", so tenant writes that give it a value are refused (rule cross_tenant_fk); "
                             "make it FOREIGN KEY (" + rule.column + ", " + columns_text(fk.columns) + ") REFERENCES " +
                             fk.references.to_string() + " (" + (ref == nullptr ? std::string("tenant column") : ref->column) +
                             ", " + columns_text(fk.referenced_columns) + "), or list it in shared_keys");
    }
  }
  return out;
}

}  // namespace rowguard::policy
