#pragma once
// Tenant checks run first (issue #13 item 2).
//
// The tenant predicate the rewriter adds (`t.tenant_id = '<tenant>'`) is an ordinary qual, and
// PostgreSQL orders a scan's quals by cost (createplan.c order_qual_clauses; the EquivalenceClass
// clause derived from it is appended after the other quals). A user qual as cheap as it would run
// first on other tenants' rows, and its error (division by zero, a failing cast, a strict
// jsonpath) would tell whether a value exists there. PostgreSQL's RLS avoids this with
// security-barrier quals and LEAKPROOF functions; a rewrite cannot mark quals, so:
//
//   * every user-written WHERE / JOIN ON / ON CONFLICT WHERE / MERGE ON conjunct that is not of a
//     known-leakproof shape becomes `CASE WHEN <tenant checks> THEN (<conjunct>) END`, the checks
//     of the tenant relations it may reference (CASE fixes the evaluation order at run time; what
//     the planner folds at plan time is row-independent). On a row of another tenant the CASE
//     is NULL without evaluating the conjunct, and the row is dropped by the tenant predicate
//     anyway, so the result is unchanged;
//   * a relation on the nullable side of an outer join is checked as
//     `(r.tenant_id = '<tenant>' OR r.* IS NULL)`, so a null-extended row keeps its meaning;
//   * HAVING conjuncts (the planner moves those without aggregates into WHERE) become
//     `CASE WHEN count(*) >= 0 THEN (<conjunct>) END`, which keeps them above the aggregation;
//   * subqueries in FROM and CTE bodies are fenced (`OFFSET 0`, `MATERIALIZED`) so the planner
//     cannot pull their target expressions into the outer query's scans, nor push outer quals
//     into them; tables the rewriter turns into filtered subqueries are fenced the same way, and
//     so is every tenant table inside an aliased join (the outer level cannot name it);
//   * a FULL join's ON stays as written: it is evaluated only at the join, on sides whose rows
//     are already filtered, and must stay hash/merge-joinable;
//   * other expressions (target lists, ORDER BY, window functions, DISTINCT ON, UPDATE SET,
//     RETURNING, MERGE WHEN conditions) run only on rows that passed every qual, and a correlated
//     subquery runs only inside a guarded conjunct or on such rows, so outer references need no
//     check of their own;
//   * known-leakproof shapes stay unwrapped so btree index use stays: `column op constant`,
//     `column IN (constants)`, `column IS [NOT] NULL`, a boolean column, and AND/OR/NOT of these,
//     op one of = <> != < <= > >=. A numeric or boolean literal is fine for any column (no
//     column type compares with it through a cast that can fail on a value); a string literal or
//     a parameter only when the schema snapshot says the column has a plain scalar type (not a
//     composite, array or json type, whose comparisons can fail on some values); column op
//     column only when both types are known and of one family (integers, or text types).
#include <functional>
#include <vector>

#include "policy/tenant_scope.h"
#include "sqlrewrite/pg_query_api.h"

namespace rowguard::sqlrewrite {

// A tenant-table reference seen by a clause.
struct GuardRelation {
  std::string ref;       // what qualifies its columns there: the alias, else the table name
  std::string column;    // its tenant column
  bool nullable = false;  // may be null-extended where the clause is evaluated
  const policy::TableInfo* info = nullptr;  // from the schema snapshot; null when unknown
};

// The tenant rule of a FROM-clause table reference the rewriter resolved, nullptr for anything
// that is not a tenant table (a global table, a CTE, a catalog).
using RuleOf = std::function<const policy::TableRule*(const pg_query::RangeVar&)>;
// A new tenant string constant (the rewriter counts them for the template cache).
using TenantLiteral = std::function<pg_query::Node()>;

// Size: the checks a conjunct gets are those of the relations it references, so a statement's
// guards grow with its own size, except where a conjunct references relations it does not name
// (a subquery, `*`, an unqualified column): those conjuncts are grouped by the set of relations
// they need, one CASE per set (`CASE WHEN <checks> THEN (a AND b ...) END`, the same truth value
// as guarding each). A statement that would still get more than kMaxGuardChecks checks is refused
// (rule: statement size) rather than grow quadratically (300 relations x 300 conjuncts made a
// 27 MB statement before the grouping).
inline constexpr size_t kMaxGuardChecks = 10000;
// Conjuncts needing the checks of more relations than this are grouped by their set.
inline constexpr size_t kGroupGuardsAbove = 2;

class QualGuard {
 public:
  QualGuard(const policy::TenantScope& scope, RuleOf rule_of, TenantLiteral literal);

  // The tenant tables of a FROM item (through its join tree); `nullable` for an item that may be
  // null-extended where the clause is evaluated.
  void collect(const pg_query::Node& item, bool nullable, std::vector<GuardRelation>& out) const;
  GuardRelation relation(const pg_query::RangeVar& rv, const policy::TableRule& rule, bool nullable) const;

  // Guards each AND-term of a WHERE / ON clause (before the rewriter appends its predicates).
  void guard_where(pg_query::Node& clause, const std::vector<GuardRelation>& rels) const;
  // Guards each AND-term of a HAVING clause.
  void guard_having(pg_query::Node& clause, const std::vector<GuardRelation>& rels) const;

  // OFFSET 0 on a subquery without LIMIT / OFFSET: a planner fence.
  static void fence(pg_query::SelectStmt& s);

 private:
  void guard_term(pg_query::Node& term, const std::vector<GuardRelation>& rels) const;
  bool leakproof(const pg_query::Node& n, const std::vector<GuardRelation>& rels) const;
  bool constant_ok(const pg_query::Node& column, const pg_query::Node& constant,
                   const std::vector<GuardRelation>& rels) const;
  uint32_t column_type(const pg_query::Node& column, const std::vector<GuardRelation>& rels) const;
  std::vector<const GuardRelation*> referenced(const pg_query::Node& term,
                                               const std::vector<GuardRelation>& rels) const;
  pg_query::Node check(const GuardRelation& r) const;
  // CASE WHEN <checks of refs> THEN <term> END; counts the checks against kMaxGuardChecks.
  pg_query::Node guarded(const std::vector<const GuardRelation*>& refs, pg_query::Node term) const;

  const policy::SchemaSnapshot* schema_;  // null when unknown
  mutable size_t checks_ = 0;              // tenant checks added to this statement so far
  RuleOf rule_of_;
  TenantLiteral literal_;
};

}  // namespace rowguard::sqlrewrite
