// See key_check.h.
#include "sqlrewrite/key_check.h"

#include "sqlrewrite/check_text.h"

#include "pg_query/pg_query.pb.h"

#include <algorithm>
#include <set>

namespace rowguard::sqlrewrite {
namespace {

using policy::SchemaSnapshot;
using policy::TableInfo;
using policy::TableRule;
using policy::UniqueKey;

using check_text::q;

using check_text::contains;

const std::vector<std::string>& plain(const UniqueKey& k) {
  return k.plain_columns.empty() ? k.columns : k.plain_columns;
}

bool shared(const TableRule& rule, const std::string& name) {
  return !name.empty() && contains(rule.shared_keys, name);
}

std::string fix_text(const TableRule& rule, std::string_view name) {
  return "(rule: " + std::string(kRuleCrossTenantKey) + ": a key without the tenant column is checked across tenants, "
         "so the write could reveal or wait on another tenant's row; make it a composite key (" + rule.column +
         ", ...), or list " + q(name) + " in tables.\"" + rule.table.to_string() + "\".shared_keys to share it knowingly)";
}

std::string key_text(const UniqueKey& k) {
  std::string cols;
  for (const auto& c : k.columns) cols += (cols.empty() ? "" : ", ") + (c.empty() ? std::string("<expression>") : c);
  if (k.columns.empty() || contains(k.columns, "")) cols = k.plain_columns.empty() ? "an expression" : cols;
  return q(k.name) + " (" + cols + ")";
}

// True when a new row gives `k` a fresh value through an omitted sequence-default column.
bool fresh_by_default(const UniqueKey& k, const TableInfo& t, const std::vector<std::string>& written) {
  if (k.columns.empty() || contains(k.columns, "")) return false;  // an expression: always computed from the row
  for (const auto& c : k.columns) {
    const policy::ColumnInfo* info = t.column(c);
    if (info != nullptr && !info->generated && !info->default_sequence.empty() && !info->sequence_behind &&
        !contains(written, c)) {
      return true;
    }
  }
  return false;
}

std::optional<std::string> check_table(const KeyWrite& w, const TableRule& rule, const SchemaSnapshot& schema,
                                       const TableInfo& t, const std::string& head, std::set<policy::QualifiedName>& seen) {
  if (!seen.insert(t.name).second) return std::nullopt;
  const std::string where = " of " + q(t.name.to_string());
  for (const auto& k : t.unique_keys) {
    if (contains(plain(k), rule.column) || shared(rule, k.name) || shared(rule, k.constraint)) continue;
    const bool expression = k.columns.empty() || contains(k.columns, "");
    std::string why;
    if (w.new_rows) {
      // A key column that is omitted gets its default: a fresh sequence value never collides;
      // a constant default collides like a given value, and NULL (no default) does not, but would
      // in a NULLS NOT DISTINCT index, which the snapshot does not record: so only a sequence helps.
      if (fresh_by_default(k, t, w.columns)) continue;
      why = expression ? "every new row gives it a value"
                       : "the row's values for it are not drawn from a sequence (given, or a default that is not a sequence)";
    } else {
      bool assigned = expression || k.partial;
      bool generated = false;
      for (const auto& c : k.columns) {
        assigned = assigned || contains(w.columns, c);
        // A STORED GENERATED column is recomputed from the columns its expression reads, which
        // the snapshot does not record: any assignment may change it (fail closed).
        const policy::ColumnInfo* info = t.column(c);
        if (!assigned && info != nullptr && info->generated && !w.columns.empty()) assigned = generated = true;
      }
      if (!assigned) continue;
      why = expression || k.partial ? "rowguard does not know which columns its " + std::string(expression ? "expressions" : "predicate") + " use"
            : generated ? "a generated column of it is recomputed by every UPDATE (rowguard does not know which columns its expression reads)"
                        : "the statement assigns a column of it";
    }
    return head + "unique key " + key_text(k) + where + " does not include the tenant column " + q(rule.column) +
           " and " + why + " " + fix_text(rule, k.constraint.empty() ? k.name : k.constraint);
  }
  for (const auto& x : t.exclusion_constraints) {
    if (shared(rule, x)) continue;
    return head + "exclusion constraint " + q(x) + where + " is checked across tenants and rowguard does not know its "
           "columns and operators " + fix_text(rule, x);
  }
  for (const auto& child : t.children) {
    const TableInfo* c = schema.table(child);
    if (c == nullptr) {
      return head + "the keys of " + q(child.to_string()) + " (a child of " + q(t.name.to_string()) + ") are not known " +
             fix_text(rule, "...");
    }
    if (auto why = check_table(w, rule, schema, *c, head, seen)) return why;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> check_key_write(const KeyWrite& w, const TableRule& rule, const SchemaSnapshot* schema) {
  const std::string head = std::string(w.verb) + " " + q(rule.table.to_string()) + ": ";
  if (schema == nullptr || !schema->loaded) {
    return head + "the schema is not known yet (rowguard has not read the table's unique keys from PostgreSQL) (rule: " +
           std::string(kRuleCrossTenantKey) + ")";
  }
  const TableInfo* info = schema->table(rule.table);
  if (info == nullptr) {
    return head + "the table was not found upstream when the schema was read (rule: " + std::string(kRuleCrossTenantKey) + ")";
  }
  if (info->relkind != 'r' && info->relkind != 'p') {
    return head + "the target is not a table (relkind '" + std::string(1, info->relkind) +
           "'): the keys it writes are those of another relation (rule: " + std::string(kRuleCrossTenantKey) + ")";
  }
  std::set<policy::QualifiedName> seen;
  return check_table(w, rule, *schema, *info, head, seen);
}

std::vector<std::string> given_columns(const google::protobuf::RepeatedPtrField<pg_query::Node>& cols,
                                       const std::vector<const google::protobuf::RepeatedPtrField<pg_query::Node>*>& rows) {
  bool shifted = false;  // a * expansion makes positions unknowable: every column is given
  for (const auto* row : rows) {
    for (const auto& item : *row) {
      if (item.has_column_ref() && item.column_ref().fields_size() > 0 &&
          item.column_ref().fields(item.column_ref().fields_size() - 1).has_a_star()) {
        shifted = true;
      }
      if (item.has_a_indirection()) shifted = true;
    }
  }
  std::vector<std::string> out;
  for (int i = 0; i < cols.size(); ++i) {
    if (!cols[i].has_res_target()) continue;  // refused by the caller
    bool given = rows.empty() || shifted;
    for (const auto* row : rows) {
      if (i >= row->size() || !(*row)[i].has_set_to_default()) given = true;
    }
    if (given) out.push_back(cols[i].res_target().name());
  }
  return out;
}

}  // namespace rowguard::sqlrewrite
