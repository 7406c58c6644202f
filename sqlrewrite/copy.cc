// COPY: TO STDOUT through a filtered query; FROM STDIN with a row-check plan (CopyInPlan).
#include "sqlrewrite/walker.h"
#include "sqlrewrite/refusal_rules.h"

namespace rowguard::sqlrewrite {

StatementKind Walker::copy(pg_query::CopyStmt& s) {
  if (!s.filename().empty() || s.is_program()) {
    deny(std::string("COPY ") + (s.is_from() ? "FROM" : "TO") +
         " a server file or program is not allowed (rule: tenants COPY only FROM STDIN / TO STDOUT)");
  }
  if (s.is_from()) return copy_in(s);
  // COPY t [(cols)] TO STDOUT  ->  COPY (SELECT cols FROM t) TO STDOUT: the SELECT is then
  // filtered like any other.
  if (s.has_relation()) {
    Node q;
    auto& sel = *q.mutable_select_stmt();
    sel.set_op(pg_query::SETOP_NONE);
    sel.set_limit_option(pg_query::LIMIT_OPTION_DEFAULT);
    if (s.attlist_size() == 0) {
      sel.add_target_list()->mutable_res_target()->mutable_val()->mutable_column_ref()->add_fields()->mutable_a_star();
    }
    for (const auto& col : s.attlist()) {
      if (!col.has_string()) deny("malformed COPY column list" + rule_suffix(kRuleCannotCheck));
      *sel.add_target_list()->mutable_res_target()->mutable_val()->mutable_column_ref()->add_fields() = col;
    }
    // PostgreSQL's COPY t TO copies t's own rows only (as SELECT * FROM ONLY t), not those of
    // inheritance children, and refuses a partitioned table (use COPY (SELECT ...) TO).
    auto& from = *sel.add_from_clause()->mutable_range_var();
    from = s.relation();
    from.set_inh(false);
    const QualifiedName name = resolve(from, "COPY ... TO");
    const policy::TableInfo* info = scope_.schema && scope_.schema->loaded ? scope_.schema->table(name) : nullptr;
    if (info != nullptr && info->relkind == 'p') {
      deny("cannot copy from partitioned table " + quote_ident(name.to_string()) +
           " (as PostgreSQL: use COPY (SELECT ...) TO)" + rule_suffix(kRuleCopyOptions));
    }
    s.clear_relation();
    s.clear_attlist();
    *s.mutable_query() = std::move(q);
  }
  check_copy_options(s, false);
  if (!s.has_query()) deny("malformed COPY" + rule_suffix(kRuleCannotCheck));
  visit(*s.mutable_query());
  return StatementKind::kCopyOut;
}

StatementKind Walker::copy_in(pg_query::CopyStmt& s) {
  if (!s.has_relation()) deny("malformed COPY FROM" + rule_suffix(kRuleCannotCheck));
  const TableRule& rule = write_target(*s.mutable_relation(), "COPY");
  if (s.attlist_size() == 0) {
    // Without a column list PostgreSQL reads every column but dropped and generated ones, in
    // order (copy.c CopyGetAttnums): rowguard writes that list out from the schema snapshot and
    // checks the tenant column's position in every row. The list names the columns, so a stale
    // snapshot makes PostgreSQL fail the COPY (a missing column, extra data), never shift a value
    // onto the tenant column.
    const policy::TableInfo& info =
        snapshot_columns(rule, "COPY " + quote_ident(rule.table.to_string()) + " FROM STDIN without a column list: ");
    for (const auto& c : info.columns) {
      if (!c.generated) *s.add_attlist() = make_string(c.name);
    }
  }
  CopyInPlan plan = check_copy_options(s, true);
  plan.columns = s.attlist_size();
  for (int i = 0; i < s.attlist_size(); ++i) {
    if (!s.attlist(i).has_string()) deny("malformed COPY column list" + rule_suffix(kRuleCannotCheck));
    if (s.attlist(i).string().sval() == rule.column) plan.tenant_index = i;
  }
  plan.tenant_column = rule.column;
  plan.table = rule.table.to_string();
  std::vector<std::string> copied;
  for (const auto& a : s.attlist()) copied.push_back(a.string().sval());
  check_keys("COPY", true, std::move(copied), rule);
  if (plan.null_string == compared_tenant()) {
    deny("COPY " + quote_ident(plan.table) + " FROM STDIN with NULL equal to the tenant value "
         "would store the tenant column as NULL (rule: tables.\"" + plan.table + "\".column)");
  }
  if (plan.tenant_index < 0) *s.add_attlist() = make_string(rule.column);
  copy_plan_ = plan;
  visit_children(s, {"relation", "options"});  // the WHERE clause, if any
  return StatementKind::kCopyIn;
}

// COPY options: FORMAT text/csv (binary rows cannot be checked: refused for COPY FROM),
// DELIMITER, NULL, HEADER, QUOTE, ESCAPE, FORCE_* ; ENCODING would change how the bytes are
// read: refused.
CopyInPlan Walker::check_copy_options(const pg_query::CopyStmt& s, bool from) {
  CopyInPlan plan;
  bool escape_set = false;
  for (const auto& o : s.options()) {
    if (!o.has_def_elem()) deny("malformed COPY options" + rule_suffix(kRuleCannotCheck));
    const auto& d = o.def_elem();
    const std::string& name = d.defname();
    std::string value;
    if (d.has_arg()) {
      read_constant();
      if (d.arg().has_string()) value = d.arg().string().sval();
      else if (d.arg().has_boolean()) value = d.arg().boolean().boolval() ? "true" : "false";
      else if (d.arg().has_integer()) value = std::to_string(d.arg().integer().ival());
      else if (d.arg().has_a_star()) value = "*";
      else if (d.arg().has_list()) value = "(list)";
      else deny("unsupported value for COPY option " + name + rule_suffix(kRuleCopyOptions));
    }
    auto one_byte = [&](char& out) {
      if (value.size() != 1) {
        deny("COPY option " + name + " must be a single one-byte character" + rule_suffix(kRuleCopyOptions));
      }
      out = value[0];
    };
    if (name == "format") {
      if (value == "csv") {
        plan.csv = true;
      } else if (value == "binary") {
        if (from) {
          deny("COPY FROM STDIN in binary format cannot be checked row by row; use text or csv" +
               rule_suffix(kRuleCopyOptions));
        }
      } else if (value != "text") {
        deny("unknown COPY format " + value + rule_suffix(kRuleCopyOptions));
      }
    } else if (name == "delimiter") {
      one_byte(plan.delimiter);
    } else if (name == "null") {
      plan.null_string = value;
    } else if (name == "header") {
      plan.header = value != "false" && value != "0" && value != "off";
    } else if (name == "quote") {
      one_byte(plan.quote);
    } else if (name == "escape") {
      one_byte(plan.escape);
      escape_set = true;
    } else if (name == "force_quote" || name == "force_not_null" || name == "force_null" ||
               name == "freeze") {
      // no effect on which rows or which tenant
    } else {
      deny("COPY option " + name + " is not allowed for tenants" + rule_suffix(kRuleCopyOptions));
    }
  }
  if (plan.csv) {
    bool delimiter_set = false;
    for (const auto& o : s.options()) delimiter_set = delimiter_set || o.def_elem().defname() == "delimiter";
    if (!delimiter_set) plan.delimiter = ',';
    if (!escape_set) plan.escape = plan.quote;
    bool null_set = false;
    for (const auto& o : s.options()) null_set = null_set || o.def_elem().defname() == "null";
    if (!null_set) plan.null_string = "";
  } else {
    if (!escape_set) plan.escape = '\\';
    if (plan.delimiter == '\\' || plan.delimiter == '\n' || plan.delimiter == '\r') {
      deny("unsupported COPY delimiter" + rule_suffix(kRuleCopyOptions));
    }
  }
  return plan;
}

}  // namespace rowguard::sqlrewrite
