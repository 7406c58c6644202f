// See referential_check.h.
#include "sqlrewrite/referential_check.h"

#include "sqlrewrite/check_text.h"

#include <algorithm>
#include <set>

namespace rowguard::sqlrewrite {
namespace {

using policy::ReferencingKey;
using policy::SchemaSnapshot;
using policy::TableInfo;
using policy::TableRule;

using check_text::q;

using check_text::contains;

using check_text::list;

std::string action_text(char a) {
  switch (a) {
    case 'c': return "CASCADE";
    case 'n': return "SET NULL";
    case 'd': return "SET DEFAULT";
    case 'a': return "NO ACTION";
    case 'r': return "RESTRICT";
    default: return "an unknown action '" + std::string(1, a) + "'";
  }
}

// The referenced column of `rk` that the UPDATE writes, or nullopt.
std::optional<std::string> written(const ReferencingKey& rk, const TableInfo& t, const std::vector<std::string>& columns) {
  for (const auto& c : rk.referenced_columns) {
    if (contains(columns, c)) return c;
    const policy::ColumnInfo* info = t.column(c);
    // A generated column is recomputed by every UPDATE (key_check.h); unknown: fail closed.
    if ((info == nullptr || info->generated) && !columns.empty()) return c;
  }
  return std::nullopt;
}

std::optional<std::string> check_table(std::string_view verb, bool deletes, const std::vector<std::string>& columns,
                                       const TableRule& rule, const SchemaSnapshot& schema, const TableInfo& t,
                                       const std::string& head, std::set<policy::QualifiedName>& seen) {
  if (!seen.insert(t.name).second) return std::nullopt;
  for (const auto& rk : t.referenced_by) {
    if (contains(rule.shared_keys, rk.name)) continue;
    std::string why;
    if (deletes) {
      // CASCADE deletes (its chain is in referenced_by), SET NULL writes only NULL; NO ACTION /
      // RESTRICT only read. Anything else (SET DEFAULT, unknown) writes a value.
      if (rk.on_delete == 'a' || rk.on_delete == 'r' || rk.on_delete == 'c' || rk.on_delete == 'n') continue;
      why = "ON DELETE " + action_text(rk.on_delete) + std::string(rk.via_cascade ? " (reached through ON DELETE CASCADE)" : "") +
            ": deleting a row writes a value into the referencing rows";
    } else {
      if (rk.via_cascade || rk.on_update == 'a' || rk.on_update == 'r') continue;
      std::optional<std::string> column = written(rk, t, columns);
      if (!column) continue;
      why = "ON UPDATE " + action_text(rk.on_update) + ", and the statement assigns " + q(*column) +
            ": the action writes the referencing rows";
    }
    return head + "foreign key " + q(rk.name) + " of " + q(rk.table.to_string()) + " (" + list(rk.columns) +
           ") references " + q(t.name.to_string()) + " (" + list(rk.referenced_columns) + ") with " + why +
           " as the constraint's owner, without the tenant filter, so it could collide with or look up another "
           "tenant's row (rule: " + std::string(kRuleReferentialAction) + "; make the action NO ACTION / RESTRICT" +
           (deletes ? " / CASCADE / SET NULL" : "") + ", or list " + q(rk.name) + " in tables.\"" +
           rule.table.to_string() + "\".shared_keys to share it knowingly)";
  }
  for (const auto& child : t.children) {
    const TableInfo* c = schema.table(child);
    if (c == nullptr) {
      return head + "the foreign keys referencing " + q(child.to_string()) + " (a child of " + q(t.name.to_string()) +
             ") are not known (rule: " + std::string(kRuleReferentialAction) + ")";
    }
    if (auto why = check_table(verb, deletes, columns, rule, schema, *c, head, seen)) return why;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> check_referential_action(std::string_view verb, bool deletes,
                                                    const std::vector<std::string>& columns,
                                                    const TableRule& rule, const SchemaSnapshot* schema) {
  const std::string head = std::string(verb) + " " + q(rule.table.to_string()) + ": ";
  if (schema == nullptr || !schema->loaded) {
    return head + "the schema is not known yet (rowguard has not read the foreign keys referencing the table from "
           "PostgreSQL) (rule: " + std::string(kRuleReferentialAction) + ")";
  }
  const TableInfo* info = schema->table(rule.table);
  if (info == nullptr) {
    return head + "the table was not found upstream when the schema was read (rule: " +
           std::string(kRuleReferentialAction) + ")";
  }
  if (info->relkind != 'r' && info->relkind != 'p') {
    return head + "the target is not a table (relkind '" + std::string(1, info->relkind) +
           "'): the foreign keys its write reaches are those of another relation (rule: " +
           std::string(kRuleReferentialAction) + ")";
  }
  std::set<policy::QualifiedName> seen;
  return check_table(verb, deletes, columns, rule, *schema, *info, head, seen);
}

}  // namespace rowguard::sqlrewrite
