// WITH: CTE names shadow unqualified table names, with PostgreSQL's scoping.
#include "sqlrewrite/walker.h"
#include "sqlrewrite/refusal_rules.h"

#include <algorithm>

namespace rowguard::sqlrewrite {

void Walker::with(pg_query::WithClause& w) {
  if (w.recursive()) {
    // Every CTE of WITH RECURSIVE sees all names of the list, itself included.
    for (const auto& c : w.ctes()) ctes_.push_back(cte_of(c).ctename());
    for (auto& c : *w.mutable_ctes()) {
      fence_cte(*c.mutable_common_table_expr());
      visit_children(*c.mutable_common_table_expr(), {});
    }
  } else {
    // A plain WITH: each CTE sees only the ones before it. A later name used earlier is a table.
    for (auto& c : *w.mutable_ctes()) {
      auto& cte = *c.mutable_common_table_expr();
      (void)cte_of(c);
      fence_cte(cte);
      visit_children(cte, {});
      ctes_.push_back(cte.ctename());
    }
  }
}

// A SELECT body is MATERIALIZED: an inlined CTE would let the planner move its expressions
// into the outer query's scans, ahead of the tenant checks (sqlrewrite/qual_guard.h).
void Walker::fence_cte(pg_query::CommonTableExpr& cte) {
  if (cte.ctequery().has_select_stmt()) cte.set_ctematerialized(pg_query::CTEMaterializeAlways);
}

const pg_query::CommonTableExpr& Walker::cte_of(const Node& n) {
  if (!n.has_common_table_expr()) deny("malformed WITH clause" + rule_suffix(kRuleCannotCheck));
  return n.common_table_expr();
}

bool Walker::cte_visible(const std::string& name) const {
  return std::find(ctes_.begin(), ctes_.end(), name) != ctes_.end();
}

}  // namespace rowguard::sqlrewrite
