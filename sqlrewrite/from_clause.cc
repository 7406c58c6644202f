// SELECT, and where a FROM item's tenant predicate goes: the WHERE of its level, the ON clause
// of an outer join, or a filtered subquery that replaces the table.
#include "sqlrewrite/function_check.h"
#include "sqlrewrite/walker.h"
#include "sqlrewrite/refusal_rules.h"

#include <functional>

namespace rowguard::sqlrewrite {

void Walker::select(pg_query::SelectStmt& s) {
  if (s.has_into_clause()) deny("SELECT ... INTO creates a table (rule: no DDL for tenants)");
  const CteScope scope(ctes_, relations_);
  if (s.has_with_clause()) with(*s.mutable_with_clause());
  if (s.op() == pg_query::SETOP_NONE) {
    for (auto& lc : *s.mutable_locking_clause()) {
      // FOR UPDATE OF x names FROM items already in scope, not new tables.
      for (auto& rel : *lc.mutable_locking_clause()->mutable_locked_rels()) {
        if (rel.has_range_var()) handled_.insert(&rel.range_var());
      }
    }
    std::vector<Pred> preds;
    // FOR UPDATE / SHARE locks the rows of the FROM tables (and of subqueries there): a lock is
    // a write, so a global table there is refused in read_table().
    const bool locking_outer = locking_;
    locking_ = locking_ || s.locking_clause_size() > 0 || locked_subqueries_.contains(&s);
    if (locking_) {
      // A lock reaches into the subqueries of FROM (PostgreSQL: "applied to a sub-query, it
      // affects all tables used in the sub-query"), which are walked later.
      std::function<void(const Node&)> mark = [&](const Node& item) {
        if (item.has_join_expr()) {
          mark(item.join_expr().larg());
          mark(item.join_expr().rarg());
        } else if (item.has_range_subselect() && item.range_subselect().subquery().has_select_stmt()) {
          locked_subqueries_.insert(&item.range_subselect().subquery().select_stmt());
        }
      };
      for (const auto& item : s.from_clause()) mark(item);
    }
    for (auto& item : *s.mutable_from_clause()) append(preds, from_item(item, "FROM of SELECT"));
    locking_ = locking_outer;
    std::vector<GuardRelation> rels;  // user quals run only on rows that passed these checks
    for (const auto& item : s.from_clause()) guard_.collect(item, false, rels);
    if (s.has_where_clause()) guard_.guard_where(*s.mutable_where_clause(), rels);
    if (s.has_having_clause()) guard_.guard_having(*s.mutable_having_clause(), rels);
    filter(s, preds);
  } else if (s.op() != pg_query::SETOP_UNION && s.op() != pg_query::SETOP_INTERSECT &&
             s.op() != pg_query::SETOP_EXCEPT) {
    deny("unknown set operation" + rule_suffix(kRuleCannotCheck));
  }
  visit_children(s, {"with_clause"});
}

std::vector<Walker::Pred> Walker::from_item(Node& item, std::string_view part) {
  switch (item.node_case()) {
    case Node::kRangeVar:
      return read_table(item, part);
    case Node::kJoinExpr:
      return join(*item.mutable_join_expr(), part);
    case Node::kRangeTableSample:
      return table_sample(item, part);
    case Node::kRangeSubselect: {
      // A planner fence: the subquery's expressions cannot move into the outer query's scans,
      // ahead of their tenant checks, nor outer quals into its scans (sqlrewrite/qual_guard.h).
      auto& q = *item.mutable_range_subselect()->mutable_subquery();
      if (q.has_select_stmt() && q.select_stmt().values_lists_size() == 0) QualGuard::fence(*q.mutable_select_stmt());
      return {};
    }
    default:
      return {};  // functions, ...: visited (and judged) by the generic walk
  }
}

// Predicates of a join tree go where they keep the join's meaning: a table that is never on
// the nullable side of an outer join is filtered in WHERE; one on the nullable side of a
// LEFT/RIGHT join with an ON clause is filtered in that ON clause; otherwise (FULL join,
// USING/NATURAL, an aliased join hiding its tables) the table becomes a filtered subquery.
std::vector<Walker::Pred> Walker::join(pg_query::JoinExpr& j, std::string_view part) {
  std::vector<Pred> left = from_item(*j.mutable_larg(), part);
  std::vector<Pred> right = from_item(*j.mutable_rarg(), part);
  // User quals of ON run only on rows that passed the checks. A FULL join's ON stays as
  // written: it is evaluated at the join only (never pushed into a side), on rows of sides
  // that are filtered subqueries or already filtered below, and must stay hash/merge-joinable.
  if (j.has_quals() && j.jointype() != pg_query::JOIN_FULL) {
    std::vector<GuardRelation> rels;
    guard_.collect(j.larg(), false, rels);
    guard_.collect(j.rarg(), false, rels);
    guard_.guard_where(*j.mutable_quals(), rels);
  }
  std::vector<Pred> up;
  switch (j.jointype()) {
    case pg_query::JOIN_INNER:
      up = std::move(left);
      append(up, std::move(right));
      break;
    case pg_query::JOIN_LEFT:
      place_in_join(j, right);
      up = std::move(left);
      break;
    case pg_query::JOIN_RIGHT:
      place_in_join(j, left);
      up = std::move(right);
      break;
    case pg_query::JOIN_FULL:
      for (auto& p : left) wrap(p);
      for (auto& p : right) wrap(p);
      break;
    default:
      deny("unsupported join type in " + std::string(part) + rule_suffix(kRuleCannotCheck));
  }
  if (j.has_alias()) {
    for (auto& p : up) wrap(p);  // "(a JOIN b) AS j" hides a and b from the outer WHERE
    up.clear();
    // The outer level cannot name them in a tenant check either: every tenant table inside
    // becomes a fenced filtered subquery (those filtered in an ON keep that check too).
    fence_tables(*j.mutable_larg());
    fence_tables(*j.mutable_rarg());
  }
  return up;
}

// `t TABLESAMPLE method (args) [REPEATABLE (seed)]`: PostgreSQL samples the relation's blocks
// (SYSTEM) or rows (BERNOULLI), then applies the quals to the sampled rows, which is also what
// row-level security does. A tenant table becomes a fenced filtered subquery of the sample:
//   orders o TABLESAMPLE BERNOULLI (10)  ->  (SELECT * FROM public.orders TABLESAMPLE bernoulli (10)
//                                             WHERE orders.tenant_id = '<tenant>' OFFSET 0) o
// SYSTEM (whole pages) and REPEATABLE (a seed: a function of each row's position) are refused on
// tenant tables: both reveal where rows lie, which counts other tenants' writes.
// so the outer level's quals (and joins) only see the tenant's sampled rows. The method is checked
// by visit() (check_sample_method), the arguments by the generic walk like any expression.
std::vector<Walker::Pred> Walker::table_sample(Node& item, std::string_view part) {
  auto& sample = *item.mutable_range_table_sample();
  if (!sample.has_relation() || !sample.relation().has_range_var()) {
    deny("malformed TABLESAMPLE" + rule_suffix(kRuleCannotCheck));
  }
  if (sampled_.contains(&sample)) {
    // The sample inside a subquery wrap_sample() built: filtered in its WHERE.
    return read_table(*sample.mutable_relation(), part);
  }
  auto& rv = *sample.mutable_relation()->mutable_range_var();
  const bool cte = rv.schemaname().empty() && rv.catalogname().empty() && cte_visible(rv.relname());
  if (!cte) {
    const QualifiedName q = resolve(rv, part);
    if (is_catalog_schema(q.schema)) {
      deny("TABLESAMPLE of the catalog " + quote_ident(q.to_string()) + " is not supported (" + std::string(part) +
           "; rule: tenants sample policy tables only)");
    }
    if (!known_table(q, part).global) {
      if (sample.has_repeatable()) {
        // The seed makes the sample a function of each row's position: whether a row is in it for
        // seeds 1..n fingerprints its ctid (BERNOULLI) or block (SYSTEM), which counts the row
        // versions other tenants wrote before it (what the system_columns rule refuses ctid for).
        deny("TABLESAMPLE ... REPEATABLE of the tenant table " + quote_ident(q.to_string()) + " is not allowed (" +
             std::string(part) + "): a fixed seed reveals the positions of rows, which count other tenants' " +
             "writes; sample without REPEATABLE (rule: " + std::string(kRuleSystemColumns) + ")");
      }
      // (Other methods than SYSTEM and BERNOULLI are refused by check_sample_method in the walk.)
      const auto& method = sample.method();
      const bool builtin = method.size() == 1 || (method.size() == 2 && method.begin()->has_string() &&
                                                  method.begin()->string().sval() == "pg_catalog");
      if (builtin && !method.empty() && method.rbegin()->has_string() && method.rbegin()->string().sval() == "system") {
        // SYSTEM samples whole pages: which of the tenant's own rows come out together tells which
        // share a page, a page-sized measure of the rows other tenants wrote in between (the
        // system_columns rule's leak, coarser). BERNOULLI decides per row, independently of position.
        deny("TABLESAMPLE SYSTEM of the tenant table " + quote_ident(q.to_string()) + " is not allowed (" +
             std::string(part) + "): it samples whole pages, and which rows come out together reveals how "
             "other tenants' rows lie between them; use TABLESAMPLE BERNOULLI (rule: " +
             std::string(kRuleSystemColumns) + ")");
      }
      wrap_sample(item);
      return {};
    }
  }
  return read_table(*sample.mutable_relation(), part);  // a global table or a CTE: nothing to filter
}

void Walker::wrap_sample(Node& item) {
  Node moved = std::move(item);
  auto& rv = *moved.mutable_range_table_sample()->mutable_relation()->mutable_range_var();
  handled_.erase(&rv);  // resolved again (and filtered) when the subquery is walked
  pg_query::Alias alias = rv.has_alias() ? rv.alias() : pg_query::Alias();
  if (!rv.has_alias()) alias.set_aliasname(rv.relname());
  rv.clear_alias();

  Node sub;
  auto& sel = *sub.mutable_select_stmt();
  sel.set_op(pg_query::SETOP_NONE);
  sel.set_limit_option(pg_query::LIMIT_OPTION_DEFAULT);
  sel.add_target_list()->mutable_res_target()->mutable_val()->mutable_column_ref()->add_fields()->mutable_a_star();
  *sel.add_from_clause() = std::move(moved);
  QualGuard::fence(sel);

  Node wrapped;
  auto& rs = *wrapped.mutable_range_subselect();
  *rs.mutable_subquery() = std::move(sub);
  *rs.mutable_alias() = std::move(alias);
  item = std::move(wrapped);
  sampled_.insert(&item.range_subselect().subquery().select_stmt().from_clause(0).range_table_sample());
}

void Walker::fence_tables(Node& item) {
  if (item.has_range_var()) {
    if (const TableRule* rule = guard_rule(item.range_var()); rule != nullptr && !rule->global) {
      Pred p{&item, nullptr, rule};
      wrap(p);
    }
  } else if (item.has_join_expr()) {
    fence_tables(*item.mutable_join_expr()->mutable_larg());
    fence_tables(*item.mutable_join_expr()->mutable_rarg());
  }
}

void Walker::place_in_join(pg_query::JoinExpr& j, std::vector<Pred>& preds) {
  if (preds.empty()) return;
  if (j.has_quals() && !j.is_natural() && j.using_clause_size() == 0) {
    filter(j, preds);
  } else {
    for (auto& p : preds) wrap(p);
  }
}

// table [AS alias]  ->  (SELECT * FROM schema.table) AS alias; the subquery is walked later
// like any other, which adds the tenant predicate inside it.
void Walker::wrap(Pred& p) {
  pg_query::RangeVar inner = p.holder->range_var();
  handled_.erase(&p.holder->range_var());
  pg_query::Alias alias = inner.has_alias() ? inner.alias() : pg_query::Alias();
  if (!inner.has_alias()) alias.set_aliasname(inner.relname());
  inner.clear_alias();

  Node sub;
  auto& sel = *sub.mutable_select_stmt();
  sel.set_op(pg_query::SETOP_NONE);
  sel.set_limit_option(pg_query::LIMIT_OPTION_DEFAULT);
  auto& target = *sel.add_target_list()->mutable_res_target();
  target.mutable_val()->mutable_column_ref()->add_fields()->mutable_a_star();
  *sel.add_from_clause()->mutable_range_var() = std::move(inner);
  QualGuard::fence(sel);

  Node wrapped;
  auto& rs = *wrapped.mutable_range_subselect();
  *rs.mutable_subquery() = std::move(sub);
  *rs.mutable_alias() = std::move(alias);
  *p.holder = std::move(wrapped);
}

Walker::Pred Walker::relation_pred(const pg_query::RangeVar& rv, const TableRule& rule) {
  return Pred{nullptr, &rv, &rule};
}

Node Walker::make_pred(const pg_query::RangeVar& rv, const TableRule& rule) {
  Node n;
  auto& e = *n.mutable_a_expr();
  e.set_kind(pg_query::AEXPR_OP);
  *e.add_name() = make_string("=");
  auto& col = *e.mutable_lexpr()->mutable_column_ref();
  *col.add_fields() = make_string(rv.has_alias() ? rv.alias().aliasname() : rv.relname());
  *col.add_fields() = make_string(rule.column);
  *e.mutable_rexpr() = tenant_filter_literal();
  return n;
}

// Call only with preds non-empty: `where` was made to exist by mutable_*().
void Walker::add_to_where(Node* where, bool has_where, std::vector<Pred>& preds) {
  if (preds.empty()) return;
  std::vector<Node> terms;
  for (auto& p : preds) terms.push_back(make_pred(p.range_var(), *p.rule));
  if (!has_where && terms.size() == 1) {
    *where = std::move(terms[0]);
    return;
  }
  if (has_where && where->has_bool_expr() && where->bool_expr().boolop() == pg_query::AND_EXPR) {
    // "a AND b" gets "AND p": one flat AND, as PostgreSQL's parser builds it (the deparsed text
    // must parse back into the same tree).
    for (auto& t : terms) *where->mutable_bool_expr()->add_args() = std::move(t);
    return;
  }
  Node conj;
  auto& b = *conj.mutable_bool_expr();
  b.set_boolop(pg_query::AND_EXPR);
  if (has_where) *b.add_args() = std::move(*where);
  for (auto& t : terms) *b.add_args() = std::move(t);
  *where = std::move(conj);
}

void Walker::append(std::vector<Pred>& to, std::vector<Pred> more) {
  to.insert(to.end(), more.begin(), more.end());
}

}  // namespace rowguard::sqlrewrite
