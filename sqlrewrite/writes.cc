// INSERT, UPDATE, DELETE and ON CONFLICT: the tenant column's value, key and foreign-key checks.
#include "sqlrewrite/walker.h"

#include "sqlrewrite/fk_check.h"
#include "sqlrewrite/key_check.h"
#include "sqlrewrite/on_conflict_check.h"
#include "sqlrewrite/referential_check.h"
#include "sqlrewrite/refusal_rules.h"

namespace rowguard::sqlrewrite {

void Walker::insert(pg_query::InsertStmt& s) {
  const CteScope scope(ctes_, relations_);
  if (s.has_with_clause()) with(*s.mutable_with_clause());
  const TableRule& rule = write_target(*s.mutable_relation(), "INSERT INTO");
  const std::string table = rule.table.to_string();
  if (!s.has_select_stmt()) {
    // DEFAULT VALUES: every column takes its default, and the tenant column is filled in as
    // when a column list leaves it out:  INSERT INTO t (tenant_col) VALUES ('<tenant>').
    auto& values = *s.mutable_select_stmt()->mutable_select_stmt();
    values.set_op(pg_query::SETOP_NONE);
    values.set_limit_option(pg_query::LIMIT_OPTION_DEFAULT);
    values.add_values_lists()->mutable_list()->add_items()->mutable_set_to_default();
    s.add_cols()->mutable_res_target()->set_name(rule.column);
  }
  if (s.cols_size() == 0) name_columns(s, rule);
  const int index = tenant_column_index(s.cols(), rule, "INSERT INTO");
  if (!s.select_stmt().has_select_stmt()) deny("malformed INSERT source" + rule_suffix(kRuleCannotCheck));
  auto& src = *s.mutable_select_stmt()->mutable_select_stmt();
  if (src.values_lists_size() > 0 && src.op() == pg_query::SETOP_NONE && !src.has_with_clause()) {
    for (auto& row : *src.mutable_values_lists()) {
      check_or_fill_row(*row.mutable_list()->mutable_items(), index, rule, "INSERT INTO");
    }
  } else if (index >= 0) {
    // INSERT ... SELECT naming the tenant column: its expression must be the tenant itself.
    if (src.op() != pg_query::SETOP_NONE || src.values_lists_size() > 0 ||
        index >= src.target_list_size() || any_expands(src.target_list(), index) ||
        !src.target_list(index).has_res_target() ||
        !accept_tenant_value(src.target_list(index).res_target().val())) {
      deny("INSERT INTO " + quote_ident(table) + " ... SELECT sets " + quote_ident(rule.column) +
           " to something other than the session tenant '" + tenant_ + "' (rule: tables.\"" +
           table + "\".column)");
    }
  } else {
    // INSERT ... SELECT without the tenant column: append it to every row of the source.
    //   INSERT INTO t (cols) <select>  ->  INSERT INTO t (cols, tenant_col)
    //     SELECT rowguard_src.*, '<tenant>' FROM (<select>) AS rowguard_src
    Node source = std::move(*s.mutable_select_stmt());
    Node outer;
    auto& sel = *outer.mutable_select_stmt();
    sel.set_op(pg_query::SETOP_NONE);
    sel.set_limit_option(pg_query::LIMIT_OPTION_DEFAULT);
    auto& star = *sel.add_target_list()->mutable_res_target()->mutable_val()->mutable_column_ref();
    *star.add_fields() = make_string("rowguard_src");
    star.add_fields()->mutable_a_star();
    *sel.add_target_list()->mutable_res_target()->mutable_val() = tenant_literal();
    auto& rs = *sel.add_from_clause()->mutable_range_subselect();
    *rs.mutable_subquery() = std::move(source);
    rs.mutable_alias()->set_aliasname("rowguard_src");
    *s.mutable_select_stmt() = std::move(outer);
  }
  if (index < 0) {
    Node col;
    col.mutable_res_target()->set_name(rule.column);
    *s.mutable_cols()->Add() = std::move(col);
  }
  if (s.has_on_conflict_clause()) relations_.push_back({"excluded", relations_.back().info, relations_.back().tenant_column});
  if (s.has_on_conflict_clause()) on_conflict(*s.mutable_on_conflict_clause(), *s.mutable_relation(), rule);
  visit_children(s, {"with_clause"});
  check_keys("INSERT INTO", true, given_columns(s.cols(), values_rows(s.select_stmt().select_stmt())), rule);
}

// INSERT INTO t VALUES (...) / INSERT INTO t SELECT ... without a column list assigns the
// table's first N columns in order (N values per row), as PostgreSQL's transformInsertStmt does.
// With the schema snapshot's column order rowguard writes that list out, and the statement is
// then checked like one with a column list: the value landing on the tenant column must be the
// tenant, or the tenant column is appended. The list names columns, so a stale snapshot cannot
// move a value onto the tenant column (PostgreSQL then assigns by those names or fails).
void Walker::name_columns(pg_query::InsertStmt& s, const TableRule& rule) {
  if (!s.select_stmt().has_select_stmt()) deny("malformed INSERT source" + rule_suffix(kRuleCannotCheck));
  // The leftmost query of a set operation decides the number of columns.
  const pg_query::SelectStmt* first = &s.select_stmt().select_stmt();
  while (first->op() != pg_query::SETOP_NONE) {
    if (!first->has_larg()) deny("malformed INSERT source" + rule_suffix(kRuleCannotCheck));
    first = &first->larg();
  }
  const gpb::RepeatedPtrField<Node>* items = &first->target_list();
  if (first->values_lists_size() > 0) {
    if (!first->values_lists(0).has_list()) deny("malformed VALUES" + rule_suffix(kRuleCannotCheck));
    items = &first->values_lists(0).list().items();
  }
  name_columns_in_order(*s.mutable_cols(), *items, rule, "INSERT INTO");
}

// The schema snapshot's columns of `rule`'s table, or a denial `head` + why they are not known.
const policy::TableInfo& Walker::snapshot_columns(const TableRule& rule, const std::string& head) {
  const bool loaded = scope_.schema && scope_.schema->loaded;
  const policy::TableInfo* info = loaded ? scope_.schema->table(rule.table) : nullptr;
  if (info == nullptr || info->columns.empty()) {
    deny(head +
         (loaded ? std::string("the schema snapshot does not know the table's columns")
                 : std::string("the schema is not known yet (rowguard has not read the table's columns from "
                               "PostgreSQL)")) +
         "; name the columns, so that rowguard can check the tenant column " + quote_ident(rule.column) +
         " (rule: tables.\"" + rule.table.to_string() + "\".column)");
  }
  return *info;
}

// Writes out the column list PostgreSQL assigns `items` to when a statement has none: the
// table's first items.size() columns, in the schema snapshot's order.
void Walker::name_columns_in_order(gpb::RepeatedPtrField<Node>& cols, const gpb::RepeatedPtrField<Node>& items,
                                   const TableRule& rule, std::string_view what) {
  const std::string table = rule.table.to_string();
  const std::string head = std::string(what) + " " + quote_ident(table) + " without a column list: ";
  const policy::TableInfo& info = snapshot_columns(rule, head);
  if (any_expands(items, items.size())) {
    deny(head + "a * expansion makes the column positions unknowable; name the columns, so that rowguard can " +
         "check the tenant column " + quote_ident(rule.column) + " (rule: tables.\"" + table + "\".column)");
  }
  if (items.size() > static_cast<int>(info.columns.size())) {
    deny(std::string(what) + " " + quote_ident(table) + " has more expressions than the table has columns (" +
         std::to_string(info.columns.size()) + " in the schema snapshot; rule: tables.\"" + table + "\".column)");
  }
  for (int i = 0; i < items.size(); ++i) {
    cols.Add()->mutable_res_target()->set_name(info.columns[static_cast<size_t>(i)].name);
  }
}

// ON CONFLICT DO NOTHING needs nothing more once its arbiters are checked. DO UPDATE may only touch the tenant's own row:
// the conflicting row is filtered by the tenant predicate in the DO UPDATE WHERE clause
// (otherwise an id collision would update another tenant's row), and cannot move it.
void Walker::on_conflict(pg_query::OnConflictClause& oc, const pg_query::RangeVar& target, const TableRule& rule) {
  if (oc.action() != pg_query::ONCONFLICT_NOTHING && oc.action() != pg_query::ONCONFLICT_UPDATE) {
    deny("unknown ON CONFLICT action" + rule_suffix(kRuleCannotCheck));
  }
  check_no_tenant_assignment(oc.target_list(), rule, "INSERT ... ON CONFLICT DO UPDATE");
  // Every arbiter index must include the tenant column (sqlrewrite/on_conflict_check.h).
  if (auto why = check_on_conflict(oc, rule, scope_.schema)) deny(std::move(*why));
  check_keys("INSERT ... ON CONFLICT DO UPDATE", false, given_columns(oc.target_list(), {}), rule);
  if (oc.action() == pg_query::ONCONFLICT_NOTHING) return;
  std::vector<Pred> preds{relation_pred(target, rule)};
  if (oc.has_where_clause()) guard_.guard_where(*oc.mutable_where_clause(), {guard_.relation(target, rule, false)});
  filter(oc, preds);
}

void Walker::update(pg_query::UpdateStmt& s) {
  const CteScope scope(ctes_, relations_);
  if (s.has_with_clause()) with(*s.mutable_with_clause());
  const TableRule& rule = write_target(*s.mutable_relation(), "UPDATE");
  check_no_tenant_assignment(s.target_list(), rule, "UPDATE");
  std::vector<Pred> preds;
  preds.push_back(relation_pred(*s.mutable_relation(), rule));
  for (auto& item : *s.mutable_from_clause()) append(preds, from_item(item, "FROM of UPDATE"));
  std::vector<GuardRelation> rels{guard_.relation(s.relation(), rule, false)};
  for (const auto& item : s.from_clause()) guard_.collect(item, false, rels);
  if (s.has_where_clause()) guard_.guard_where(*s.mutable_where_clause(), rels);
  filter(s, preds);
  visit_children(s, {"with_clause"});
  check_keys("UPDATE", false, given_columns(s.target_list(), {}), rule);
}

void Walker::del(pg_query::DeleteStmt& s) {
  const CteScope scope(ctes_, relations_);
  if (s.has_with_clause()) with(*s.mutable_with_clause());
  const TableRule& rule = write_target(*s.mutable_relation(), "DELETE FROM");
  std::vector<Pred> preds;
  preds.push_back(relation_pred(*s.mutable_relation(), rule));
  for (auto& item : *s.mutable_using_clause()) append(preds, from_item(item, "USING of DELETE"));
  std::vector<GuardRelation> rels{guard_.relation(s.relation(), rule, false)};
  for (const auto& item : s.using_clause()) guard_.collect(item, false, rels);
  if (s.has_where_clause()) guard_.guard_where(*s.mutable_where_clause(), rels);
  filter(s, preds);
  visit_children(s, {"with_clause"});
  check_referential("DELETE FROM", true, {}, rule);
}

// A write that could collide with another tenant's row on a key without the tenant column
// is refused (sqlrewrite/key_check.h), and so is one that could reference another tenant's row
// through a foreign key without the tenant column (sqlrewrite/fk_check.h).
void Walker::check_keys(std::string_view verb, bool new_rows, std::vector<std::string> columns, const TableRule& rule) {
  const KeyWrite write{verb, new_rows, std::move(columns)};
  if (auto why = check_key_write(write, rule, scope_.schema)) deny(std::move(*why));
  if (auto why = check_fk_write(write, rule, scope_)) deny(std::move(*why));
  if (!new_rows) check_referential(verb, false, write.columns, rule);
}

// A referential action of a foreign key referencing the table must not carry the write into
// another table (sqlrewrite/referential_check.h).
void Walker::check_referential(std::string_view verb, bool deletes, const std::vector<std::string>& columns,
                       const TableRule& rule) {
  if (auto why = check_referential_action(verb, deletes, columns, rule, scope_.schema)) deny(std::move(*why));
}

// The VALUES rows of an INSERT source (none for INSERT ... SELECT: every column is given).
std::vector<const gpb::RepeatedPtrField<Node>*> Walker::values_rows(const pg_query::SelectStmt& src) {
  std::vector<const gpb::RepeatedPtrField<Node>*> rows;
  if (src.values_lists_size() == 0 || src.op() != pg_query::SETOP_NONE || src.has_with_clause()) return rows;
  for (const auto& row : src.values_lists()) {
    if (!row.has_list()) return {};
    rows.push_back(&row.list().items());
  }
  return rows;
}

// Position of the tenant column in an INSERT column list, -1 when absent.
int Walker::tenant_column_index(const gpb::RepeatedPtrField<Node>& cols, const TableRule& rule,
                        std::string_view verb) {
  int index = -1;
  for (int i = 0; i < cols.size(); ++i) {
    if (!cols[i].has_res_target()) deny("malformed column list" + rule_suffix(kRuleCannotCheck));
    const auto& col = cols[i].res_target();
    if (col.name() == rule.column) {
      if (col.indirection_size() > 0 || index >= 0) {
        deny(std::string(verb) + " " + quote_ident(rule.table.to_string()) +
             " assigns the tenant column in an unsupported way (rule: tables.\"" + rule.table.to_string() +
             "\".column)");
      }
      index = i;
    }
  }
  return index;
}

// SET tenant_col = ... : allowed only to the session tenant itself (a no-op on rows that are
// already filtered to the tenant; ORMs such as Django write every column on save), as a
// literal or as a parameter checked at Bind. Anything else could move a row to another tenant.
void Walker::check_no_tenant_assignment(const gpb::RepeatedPtrField<Node>& targets, const TableRule& rule,
                                std::string_view verb) {
  for (const auto& t : targets) {
    if (!t.has_res_target() || t.res_target().name() != rule.column) continue;
    const auto& rt = t.res_target();
    if (rt.indirection_size() == 0 && rt.has_val() && !rt.val().has_multi_assign_ref() &&
        accept_tenant_value(rt.val())) {
      continue;
    }
    deny(std::string(verb) + " " + quote_ident(rule.table.to_string()) + " SET " +
         quote_ident(rule.column) + ": the tenant column cannot be changed (rule: tables.\"" +
         rule.table.to_string() + "\".column)");
  }
}

// x.* and (row).* expand to several values, shifting positions after them.
bool Walker::expands(const Node& n) {
  if (n.has_column_ref()) {
    const auto& f = n.column_ref().fields();
    return f.size() > 0 && f[f.size() - 1].has_a_star();
  }
  if (n.has_a_indirection()) {
    const auto& ind = n.a_indirection().indirection();
    return ind.size() > 0 && ind[ind.size() - 1].has_a_star();
  }
  if (n.has_res_target() && n.res_target().has_val()) return expands(n.res_target().val());
  return false;
}

bool Walker::any_expands(const gpb::RepeatedPtrField<Node>& items, int upto) {
  for (int i = 0; i < items.size() && i <= upto; ++i) {
    if (expands(items[i])) return true;
  }
  return false;
}

// One VALUES row: the tenant column's value must be the tenant (a literal, or a parameter
// checked at Bind); when the column list lacks it, the tenant literal is appended.
void Walker::check_or_fill_row(gpb::RepeatedPtrField<Node>& items, int index, const TableRule& rule,
                       std::string_view verb) {
  if (index < 0) {
    *items.Add() = tenant_literal();
    return;
  }
  if (any_expands(items, index)) {
    deny(std::string(verb) + " " + quote_ident(rule.table.to_string()) +
         ": a * expansion before the tenant column makes its position unknowable (rule: tables.\"" +
         rule.table.to_string() + "\".column)");
  }
  if (index < items.size() && items[index].has_set_to_default()) {
    items[index] = tenant_literal();  // DEFAULT for the tenant column: filled in as when left out
    return;
  }
  if (index >= items.size() || !accept_tenant_value(items[index])) {
    deny(std::string(verb) + " " + quote_ident(rule.table.to_string()) + " sets " +
         quote_ident(rule.column) + " to a value other than the session tenant '" + tenant_ +
         "' (rule: tables.\"" + rule.table.to_string() + "\".column)");
  }
}

// The tenant literal, or a parameter whose value is checked at Bind.
bool Walker::accept_tenant_value(const Node& value) {
  if (int param = tenant_param(value); param > 0) {
    tenant_params_.push_back(param);
    return true;
  }
  return is_tenant_literal(value);
}

bool Walker::is_tenant_literal(const Node& n) const {
  if (!n.has_a_const() || n.a_const().isnull()) return false;
  const auto& c = n.a_const();
  if (c.has_sval()) return c.sval().sval() == compared_tenant();
  if (c.has_ival()) return std::to_string(c.ival().ival()) == compared_tenant();
  return false;
}

// $n or $n::type: the value arrives at Bind and is checked there.
int Walker::tenant_param(const Node& n) {
  const Node* p = &n;
  if (p->has_type_cast() && p->type_cast().has_arg()) {
    // A type modifier (varchar(2), numeric(3,0)) could change the checked value on the server,
    // and so could a type whose text form is not the value checked at Bind (a boolean '1' is
    // stored in a text column as 'true').
    if (!p->type_cast().has_type_name() || p->type_cast().type_name().typmods_size() > 0 ||
        param_type_oid(p->type_cast().type_name()) == 0) {
      return 0;
    }
    p = &p->type_cast().arg();
  }
  if (p->has_param_ref() && p->param_ref().number() > 0) return p->param_ref().number();
  return 0;
}

}  // namespace rowguard::sqlrewrite
