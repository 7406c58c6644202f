// MERGE: target filtered in the join condition, source tables as filtered subqueries.
#include "sqlrewrite/walker.h"

#include "sqlrewrite/key_check.h"
#include "sqlrewrite/refusal_rules.h"

namespace rowguard::sqlrewrite {

// MERGE: the target is filtered in the join condition (another tenant's row never matches),
// every tenant table of the source becomes a filtered subquery (so no other tenant's row can
// be copied in), inserted rows are checked like INSERT, updates cannot move a row.
void Walker::merge(pg_query::MergeStmt& s) {
  const CteScope scope(ctes_, relations_);
  if (s.has_with_clause()) with(*s.mutable_with_clause());
  const TableRule& rule = write_target(*s.mutable_relation(), "MERGE INTO");
  std::vector<Pred> source = from_item(*s.mutable_source_relation(), "USING of MERGE");
  for (auto& p : source) wrap(p);
  std::vector<Pred> target{relation_pred(s.relation(), rule)};
  if (s.has_join_condition()) guard_.guard_where(*s.mutable_join_condition(), {guard_.relation(s.relation(), rule, false)});
  filter(s, target);
  for (auto& w : *s.mutable_merge_when_clauses()) {
    if (!w.has_merge_when_clause()) deny("malformed MERGE" + rule_suffix(kRuleCannotCheck));
    auto& clause = *w.mutable_merge_when_clause();
    switch (clause.command_type()) {
      case pg_query::CMD_UPDATE:
        check_no_tenant_assignment(clause.target_list(), rule, "MERGE ... UPDATE");
        check_keys("MERGE ... UPDATE", false, given_columns(clause.target_list(), {}), rule);
        break;
      case pg_query::CMD_INSERT: {
        // Without a column list the values go to the table's first columns (named from the
        // schema snapshot, as for INSERT); DEFAULT VALUES (no values) gets the tenant column only.
        if (clause.target_list_size() == 0 && clause.values_size() > 0) {
          name_columns_in_order(*clause.mutable_target_list(), clause.values(), rule, "MERGE ... INSERT into");
        }
        int index = tenant_column_index(clause.target_list(), rule, "MERGE ... INSERT");
        check_keys("MERGE ... INSERT", true, given_columns(clause.target_list(), {&clause.values()}), rule);
        check_or_fill_row(*clause.mutable_values(), index, rule, "MERGE ... INSERT");
        if (index < 0) clause.add_target_list()->mutable_res_target()->set_name(rule.column);
        break;
      }
      case pg_query::CMD_DELETE:
        check_referential("MERGE ... DELETE", true, {}, rule);
        break;
      case pg_query::CMD_NOTHING:
        break;
      default:
        deny("unknown MERGE action" + rule_suffix(kRuleCannotCheck));
    }
  }
  visit_children(s, {"with_clause"});
}

}  // namespace rowguard::sqlrewrite
