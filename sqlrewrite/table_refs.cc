// Table references: policy tables (resolved as PostgreSQL does with the pinned search_path),
// system catalogs (readable, masked by a substitute, or denied), write targets.
#include "sqlrewrite/walker.h"
#include "sqlrewrite/refusal_rules.h"

#include "policy/catalogs.h"

namespace rowguard::sqlrewrite {

QualifiedName Walker::resolve(pg_query::RangeVar& rv, std::string_view part) {
  if (!rv.catalogname().empty()) {
    deny("cross-database reference " + quote_ident(rv.catalogname()) + " in " + std::string(part) +
         rule_suffix(kRuleCrossDatabase));
  }
  if (!rv.schemaname().empty()) return QualifiedName{rv.schemaname(), rv.relname()};
  // Unqualified names resolve as PostgreSQL does with rowguard's pinned search_path: pg_catalog
  // first (it is always searched first), then "public".
  return QualifiedName{policy::is_pg_catalog_relation(rv.relname()) ? "pg_catalog" : "public",
                       rv.relname()};
}

const TableRule& Walker::known_table(const QualifiedName& q, std::string_view part) {
  const TableRule* rule = scope_.table(q);
  if (rule == nullptr) {
    deny("table " + quote_ident(q.to_string()) + " is not in the policy (" + std::string(part) +
         "; rule: unknown_tables = \"deny\")");
  }
  return *rule;
}

// A table read in FROM / USING / a join tree. Returns a predicate to place, if any.
std::vector<Walker::Pred> Walker::read_table(Node& holder, std::string_view part) {
  auto& rv = *holder.mutable_range_var();
  if (handled_.contains(&rv)) return {};  // inside a catalog substitute built by rowguard
  if (rv.schemaname().empty() && rv.catalogname().empty() && cte_visible(rv.relname())) {
    handled_.insert(&rv);  // a reference to a CTE, whose body was checked on its own
    return {};
  }
  QualifiedName q = resolve(rv, part);
  if (is_catalog_schema(q.schema)) {
    read_catalog(holder, q, part);
    return {};
  }
  const TableRule& rule = known_table(q, part);
  rv.set_schemaname(rule.table.schema);  // pin resolution to the table the policy names
  handled_.insert(&rv);
  add_relation(rv, rule);
  if (rule.global && locking_) {
    deny(std::string(part) + ": SELECT ... FOR UPDATE/SHARE would lock rows of the global table \"" +
         rule.table.to_string() + "\", which every tenant shares: a row lock is a write, it blocks other "
         "tenants and NOWAIT/SKIP LOCKED would show their activity (rule: tables.\"" + rule.table.to_string() +
         "\".global = true; read the global table in a query without FOR UPDATE/SHARE)");
  }
  if (rule.global) return {};
  Pred p{&holder, nullptr, &rule};
  if (rv.has_alias() && rv.alias().colnames_size() > 0) {
    // "orders AS o(a, b, tenant_id)" renames columns by position: o.tenant_id may be another
    // column. Filter inside a subquery, where the real column name is used.
    wrap(p);
    return {};
  }
  return {p};
}

bool Walker::is_catalog_schema(std::string_view schema) {
  return schema == "pg_catalog" || schema == "information_schema";
}

// A system catalog: readable, served through a sanitized substitute, or denied.
void Walker::read_catalog(Node& holder, const QualifiedName& q, std::string_view part) {
  const policy::CatalogRule* rule = policy::catalog_rule(q.schema, q.name);
  if (rule == nullptr) {
    deny("catalog " + quote_ident(q.to_string()) + " is not in rowguard's catalog allowlist (" +
         std::string(part) + "; rule: " + std::string(kRuleCatalogAllowlist) + ")");
  }
  if (rule->kind == policy::CatalogRule::Kind::kDenied) {
    deny("catalog " + quote_ident(q.to_string()) + " is denied: " + std::string(rule->why) +
         " (" + std::string(part) + "; rule: " + std::string(kRuleCatalogAllowlist) + ")");
  }
  auto& rv = *holder.mutable_range_var();
  rv.set_schemaname(q.schema);
  if (rule->kind == policy::CatalogRule::Kind::kReadable) {
    handled_.insert(&rv);
    return;
  }
  // kMasked: relation [AS alias]  ->  (substitute) AS alias
  ParseOutput sub = parse_sql(rule->substitute);
  if (!sub.ok || sub.tree.stmts_size() != 1 || !sub.tree.stmts(0).stmt().has_select_stmt()) {
    deny("internal error: bad catalog substitute for " + q.to_string() + rule_suffix(kRuleCannotCheck));
  }
  pg_query::Alias alias = rv.has_alias() ? rv.alias() : pg_query::Alias();
  if (!rv.has_alias()) alias.set_aliasname(rv.relname());
  Node wrapped;
  auto& rs = *wrapped.mutable_range_subselect();
  *rs.mutable_subquery() = sub.tree.stmts(0).stmt();
  *rs.mutable_alias() = std::move(alias);
  *rs.mutable_subquery()->mutable_select_stmt()->mutable_from_clause(0)->mutable_range_var()->mutable_schemaname() = q.schema;
  handled_.erase(&rv);
  holder = std::move(wrapped);
  handled_.insert(&holder.range_subselect().subquery().select_stmt().from_clause(0).range_var());
}

const TableRule& Walker::write_target(pg_query::RangeVar& rv, std::string_view verb) {
  QualifiedName q = resolve(rv, std::string(verb) + " target");
  if (is_catalog_schema(q.schema)) {
    deny(std::string(verb) + " " + quote_ident(q.to_string()) + ": tenants cannot write to system catalogs" +
         rule_suffix(kRuleCatalogAllowlist));
  }
  const TableRule& rule = known_table(q, std::string(verb) + " target");
  if (rule.global) {
    deny(std::string(verb) + " " + quote_ident(rule.table.to_string()) +
         ": tenants cannot write to a global table (rule: tables.\"" + rule.table.to_string() +
         "\".global = true)");
  }
  rv.set_schemaname(rule.table.schema);
  handled_.insert(&rv);
  add_relation(rv, rule);
  return rule;
}

void Walker::add_relation(const pg_query::RangeVar& rv, const TableRule& rule) {
  const policy::TableInfo* info = scope_.schema && scope_.schema->loaded ? scope_.schema->table(rule.table) : nullptr;
  relations_.push_back({rv.has_alias() ? rv.alias().aliasname() : rv.relname(), info, rule.column});
}

// The tenant rule of a FROM table reference read_table() resolved (its schema is then set).
const TableRule* Walker::guard_rule(const pg_query::RangeVar& rv) const {
  if (rv.schemaname().empty() || is_catalog_schema(rv.schemaname()) || !handled_.contains(&rv)) return nullptr;
  return scope_.table(QualifiedName{rv.schemaname(), rv.relname()});
}

}  // namespace rowguard::sqlrewrite
