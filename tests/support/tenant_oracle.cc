// The independent tenant checker: see tenant_oracle.h for the rules. Merged from the two checkers
// that tests/unit/rewriter_test.cc and tests/fuzz/fuzz_rewriter.cc each had; where they differed
// the stricter rule is kept.
#include "tests/support/tenant_oracle.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <algorithm>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rowguard::test_support {
namespace {

namespace gpb = google::protobuf;
using pg_query::Node;

constexpr std::string_view kTenantColumn = "tenant_id";

bool in_public(const pg_query::RangeVar& rv) {
  return rv.catalogname().empty() && (rv.schemaname().empty() || rv.schemaname() == "public");
}

bool is_tenant_table(const pg_query::RangeVar& rv) {
  return in_public(rv) && (rv.relname() == "orders" || rv.relname() == "customers");
}

bool is_global_table(const pg_query::RangeVar& rv) { return in_public(rv) && rv.relname() == "countries"; }

bool is_system_catalog(const pg_query::RangeVar& rv) {
  return rv.catalogname().empty() && (rv.schemaname() == "pg_catalog" || rv.schemaname() == "information_schema");
}

std::string refname(const pg_query::RangeVar& rv) { return rv.has_alias() ? rv.alias().aliasname() : rv.relname(); }

std::string show(const pg_query::RangeVar& rv) {
  std::string s = rv.catalogname().empty() ? "" : rv.catalogname() + ".";
  s += rv.schemaname().empty() ? "" : rv.schemaname() + ".";
  s += rv.relname();
  if (rv.has_alias()) s += " AS " + rv.alias().aliasname();
  return s;
}

// `x.*`, `*` or `(expr).*` (also as a ResTarget's value): PostgreSQL expands it into several
// values of a VALUES row or a SELECT list.
bool is_star(const Node& item) {
  const Node& n = item.has_res_target() ? item.res_target().val() : item;
  if (n.has_column_ref()) {
    const auto& f = n.column_ref().fields();
    return !f.empty() && f[f.size() - 1].has_a_star();
  }
  if (n.has_a_indirection()) {
    const auto& ind = n.a_indirection().indirection();
    return !ind.empty() && ind[ind.size() - 1].has_a_star();
  }
  return false;
}

class Checker {
 public:
  explicit Checker(const TenantOracleOptions& o) : o_(o) {}
  std::vector<std::string> problems;

  void statement(const Node& stmt) {
    consumed_.clear();
    any_preds_.clear();
    tier1_.clear();
    walk(stmt, {});
    for (const auto* rv : tier1_) {
      if (!any_preds_.contains(refname(*rv))) {
        problem("tenant table " + show(*rv) + " has no `" + refname(*rv) + ".tenant_id = '" + o_.tenant +
                "'` anywhere in the statement");
      }
    }
  }

 private:
  using Scope = std::vector<std::string>;  // CTE names visible here

  struct LevelRV {
    const pg_query::RangeVar* rv;
    std::vector<std::pair<const pg_query::JoinExpr*, int>> path;  // joins above it: (join, side)
    bool hidden;  // inside an aliased join: the level's WHERE cannot name it
  };

  void problem(std::string what) { problems.push_back(std::move(what)); }

  // `q.tenant_id = '<tenant>'`: returns q, or "" when `e` is not such a predicate.
  std::string pred_qualifier(const pg_query::A_Expr& e) const {
    if (e.kind() != pg_query::AEXPR_OP || e.name_size() != 1 || !e.name(0).has_string() ||
        e.name(0).string().sval() != "=") {
      return "";
    }
    if (!e.has_lexpr() || !e.lexpr().has_column_ref() || !e.has_rexpr()) return "";
    const auto& f = e.lexpr().column_ref().fields();
    if (f.size() != 2 || !f[0].has_string() || !f[1].has_string() || f[1].string().sval() != kTenantColumn) return "";
    const Node& r = e.rexpr();
    const bool bound = r.has_param_ref() && std::find(o_.bound_tenant_params.begin(), o_.bound_tenant_params.end(),
                                                      r.param_ref().number()) != o_.bound_tenant_params.end();
    if (!bound &&
        (!r.has_a_const() || r.a_const().isnull() || !r.a_const().has_sval() || r.a_const().sval().sval() != o_.tenant)) {
      return "";
    }
    return f[0].string().sval();
  }

  std::string pred_qualifier(const Node& n) const { return n.has_a_expr() ? pred_qualifier(n.a_expr()) : ""; }

  // Qualifiers of the tenant predicates that are top-level AND conjuncts of `n`.
  std::set<std::string> conjunct_preds(const Node* n) const {
    std::set<std::string> out;
    if (n == nullptr) return out;
    std::vector<const Node*> todo{n};
    while (!todo.empty()) {
      const Node* c = todo.back();
      todo.pop_back();
      if (c->has_bool_expr() && c->bool_expr().boolop() == pg_query::AND_EXPR) {
        for (const auto& a : c->bool_expr().args()) todo.push_back(&a);
      } else if (std::string q = pred_qualifier(*c); !q.empty()) {
        out.insert(q);
      }
    }
    return out;
  }

  // The session tenant as a value: '<tenant>', the integer, or a $n listed in tenant_params (the
  // session checks its value at Bind), possibly cast.
  bool is_tenant_value(const Node& n) const {
    const Node* p = &n;
    if (p->has_type_cast() && p->type_cast().has_arg()) p = &p->type_cast().arg();
    if (p->has_param_ref()) {
      const int num = p->param_ref().number();
      return num > 0 && std::find(o_.tenant_params.begin(), o_.tenant_params.end(), num) != o_.tenant_params.end();
    }
    if (!p->has_a_const() || p->a_const().isnull()) return false;
    const auto& c = p->a_const();
    if (c.has_sval()) return c.sval().sval() == o_.tenant;
    if (c.has_ival()) return std::to_string(c.ival().ival()) == o_.tenant;
    return false;
  }

  static bool cte_ref(const pg_query::RangeVar& rv, const Scope& scope) {
    return rv.schemaname().empty() && rv.catalogname().empty() &&
           std::find(scope.begin(), scope.end(), rv.relname()) != scope.end();
  }

  // A non-CTE table reference: it must be in the policy (or a readable system catalog).
  void known(const pg_query::RangeVar& rv, std::string_view where) {
    if (is_tenant_table(rv) || is_global_table(rv)) return;
    if (o_.system_catalogs && is_system_catalog(rv)) return;
    problem("table " + show(rv) + " (" + std::string(where) + ") is not in the policy");
  }

  void walk(const gpb::Message& m, const Scope& scope) {
    const gpb::Descriptor* d = m.GetDescriptor();
    if (d == Node::descriptor()) {
      const auto& n = static_cast<const Node&>(m);
      if (n.node_case() == Node::NODE_NOT_SET) return;
      const gpb::FieldDescriptor* f = m.GetReflection()->GetOneofFieldDescriptor(m, d->FindOneofByName("node"));
      if (f != nullptr && f->cpp_type() == gpb::FieldDescriptor::CPPTYPE_MESSAGE) {
        walk(m.GetReflection()->GetMessage(m, f), scope);
      }
      return;
    }
    if (d == pg_query::SelectStmt::descriptor()) return select(static_cast<const pg_query::SelectStmt&>(m), scope);
    if (d == pg_query::InsertStmt::descriptor()) return insert(static_cast<const pg_query::InsertStmt&>(m), scope);
    if (d == pg_query::UpdateStmt::descriptor()) return update(static_cast<const pg_query::UpdateStmt&>(m), scope);
    if (d == pg_query::DeleteStmt::descriptor()) return del(static_cast<const pg_query::DeleteStmt&>(m), scope);
    if (d == pg_query::MergeStmt::descriptor()) return merge(static_cast<const pg_query::MergeStmt&>(m), scope);
    if (d == pg_query::CopyStmt::descriptor()) return copy(static_cast<const pg_query::CopyStmt&>(m), scope);
    if (d == pg_query::LockingClause::descriptor()) return;  // FOR UPDATE OF <FROM item names>
    if (d == pg_query::RangeVar::descriptor()) {
      const auto& rv = static_cast<const pg_query::RangeVar&>(m);
      if (consumed_.contains(&rv) || cte_ref(rv, scope)) return;
      known(rv, "outside any FROM list or write target");
      if (is_tenant_table(rv)) {
        problem("tenant table " + show(rv) + " outside FROM/USING/write target");
        tier1_.push_back(&rv);
      }
      return;
    }
    if (d == pg_query::A_Expr::descriptor()) {
      if (std::string q = pred_qualifier(static_cast<const pg_query::A_Expr&>(m)); !q.empty()) any_preds_.insert(q);
    }
    children(m, scope, {});
  }

  void children(const gpb::Message& m, const Scope& scope, std::initializer_list<std::string_view> skip) {
    const gpb::Descriptor* d = m.GetDescriptor();
    const gpb::Reflection* r = m.GetReflection();
    for (int i = 0; i < d->field_count(); ++i) {
      const gpb::FieldDescriptor* f = d->field(i);
      if (f->cpp_type() != gpb::FieldDescriptor::CPPTYPE_MESSAGE) continue;
      if (std::find(skip.begin(), skip.end(), f->name()) != skip.end()) continue;
      if (f->is_repeated()) {
        for (int k = 0; k < r->FieldSize(m, f); ++k) walk(r->GetRepeatedMessage(m, f, k), scope);
      } else if (r->HasField(m, f)) {
        walk(r->GetMessage(m, f), scope);
      }
    }
  }

  // WITH: walks the CTE bodies with PostgreSQL's visibility; returns the names visible in the
  // statement body.
  Scope with(const pg_query::WithClause& w, const Scope& outer) {
    Scope running = outer;
    if (w.recursive()) {
      for (const auto& c : w.ctes()) {
        if (c.has_common_table_expr()) running.push_back(c.common_table_expr().ctename());
      }
      for (const auto& c : w.ctes()) walk(c, running);
    } else {
      for (const auto& c : w.ctes()) {
        walk(c, running);
        if (c.has_common_table_expr()) running.push_back(c.common_table_expr().ctename());
      }
    }
    return running;
  }

  void collect(const Node& item, std::vector<std::pair<const pg_query::JoinExpr*, int>> path, bool hidden,
               std::vector<LevelRV>& out) {
    if (item.has_range_var()) {
      out.push_back({&item.range_var(), path, hidden});
      consumed_.insert(&item.range_var());
    } else if (item.has_range_table_sample() && item.range_table_sample().has_relation()) {
      // `t TABLESAMPLE ...`: PostgreSQL applies the level's quals to the sampled rows, so the
      // sampled table is a FROM item of this level like a plain one.
      collect(item.range_table_sample().relation(), path, hidden, out);
    } else if (item.has_join_expr()) {
      const auto& j = item.join_expr();
      const bool h = hidden || j.has_alias();
      auto left = path;
      left.emplace_back(&j, 0);
      if (j.has_larg()) collect(j.larg(), left, h, out);
      path.emplace_back(&j, 1);
      if (j.has_rarg()) collect(j.rarg(), path, h, out);
    }
    // Subqueries, functions, ...: their own query levels, reached by the generic walk.
  }

  // Every tenant table of a FROM tree is filtered at its own level.
  void judge(const std::vector<LevelRV>& level, const std::set<std::string>& where, const Scope& scope,
             std::string_view what) {
    for (const auto& l : level) {
      const auto& rv = *l.rv;
      if (cte_ref(rv, scope)) continue;
      known(rv, what);
      if (!is_tenant_table(rv)) continue;
      tier1_.push_back(&rv);
      if (rv.has_alias() && rv.alias().colnames_size() > 0) {
        problem("tenant table " + show(rv) + " in " + std::string(what) +
                " has a column alias list, so <alias>.tenant_id may not be the tenant column");
        continue;
      }
      const std::string q = refname(rv);
      if (!l.hidden && where.contains(q)) continue;
      bool ok = false;
      for (const auto& [j, side] : l.path) {
        const bool filters = j->jointype() == pg_query::JOIN_INNER ||
                             (j->jointype() == pg_query::JOIN_LEFT && side == 1) ||
                             (j->jointype() == pg_query::JOIN_RIGHT && side == 0);
        if (filters && j->has_quals() && conjunct_preds(&j->quals()).contains(q)) ok = true;
      }
      if (!ok) {
        problem("tenant table " + show(rv) + " in " + std::string(what) + " has no `" + q + ".tenant_id = '" +
                o_.tenant + "'` conjunct in its level's WHERE (that can name it) or in the ON of a join where it "
                "is not on the preserved side");
      }
    }
  }

  void select(const pg_query::SelectStmt& s, const Scope& outer) {
    const Scope scope = s.has_with_clause() ? with(s.with_clause(), outer) : outer;
    std::vector<LevelRV> level;
    for (const auto& item : s.from_clause()) collect(item, {}, false, level);
    judge(level, conjunct_preds(s.has_where_clause() ? &s.where_clause() : nullptr), scope, "FROM of SELECT");
    children(s, scope, {"with_clause"});
  }

  // A write target: never a CTE; must be a tenant table (writes to the global table are denied).
  bool write_target(const pg_query::RangeVar& rv, std::string_view verb) {
    consumed_.insert(&rv);
    known(rv, std::string(verb) + " target");
    if (is_global_table(rv)) problem(std::string(verb) + " writes to the global table " + show(rv));
    return is_tenant_table(rv);
  }

  // Nothing assigns the tenant column (rowguard refuses any SET of it).
  void no_tenant_assignment(const gpb::RepeatedPtrField<Node>& targets, std::string_view verb) {
    for (const auto& t : targets) {
      if (t.has_res_target() && t.res_target().name() == kTenantColumn) problem(std::string(verb) + " sets tenant_id");
    }
  }

  // One row of values for `ncols` target columns, tenant column at `col`: the tenant value must
  // land on the tenant column however star items expand, so it is aligned from the start with no
  // star before it, or from the end with no star after it.
  void mapped_value(const std::vector<const Node*>& items, int col, int ncols, std::string_view verb) {
    const int n = static_cast<int>(items.size());
    bool prefix = col < n && is_tenant_value(*value_of(*items[col]));
    for (int i = 0; prefix && i < col; ++i) prefix = !is_star(*items[i]);
    const int j = n - (ncols - col);
    bool suffix = j >= 0 && j < n && is_tenant_value(*value_of(*items[j]));
    for (int i = j + 1; suffix && i < n; ++i) suffix = !is_star(*items[i]);
    if (!prefix && !suffix) {
      problem(std::string(verb) + ": the value for tenant_id (column " + std::to_string(col + 1) + " of " +
              std::to_string(ncols) + ") is not '" + o_.tenant + "' or a checked $n at a position no `*` "
              "expansion can shift");
    }
  }

  static const Node* value_of(const Node& n) { return n.has_res_target() ? &n.res_target().val() : &n; }

  // Index of tenant_id in an INSERT column list (ResTargets), -1 when absent or named twice.
  int tenant_col(const gpb::RepeatedPtrField<Node>& cols, std::string_view verb) {
    int index = -1;
    for (int i = 0; i < cols.size(); ++i) {
      if (cols[i].has_res_target() && cols[i].res_target().name() == kTenantColumn) {
        if (index >= 0 || cols[i].res_target().indirection_size() > 0) {
          problem(std::string(verb) + " names tenant_id twice or with a subscript");
          return -1;
        }
        index = i;
      }
    }
    if (index < 0) problem(std::string(verb) + ": tenant_id is not in the column list (its DEFAULT would apply)");
    return index;
  }

  void insert(const pg_query::InsertStmt& s, const Scope& outer) {
    const Scope scope = s.has_with_clause() ? with(s.with_clause(), outer) : outer;
    if (s.has_relation() && write_target(s.relation(), "INSERT")) {
      const int ncols = s.cols_size();
      const int col = tenant_col(s.cols(), "INSERT");
      if (!s.has_select_stmt() || !s.select_stmt().has_select_stmt()) {
        problem("INSERT into a tenant table without a VALUES/SELECT source");
      } else if (col >= 0) {
        const auto& src = s.select_stmt().select_stmt();
        if (src.op() != pg_query::SETOP_NONE) {
          problem("INSERT ... <set operation> into a tenant table: tenant_id value not checkable");
        } else if (src.values_lists_size() > 0) {
          for (const auto& row : src.values_lists()) {
            std::vector<const Node*> items;
            if (row.has_list()) {
              for (const auto& i : row.list().items()) items.push_back(&i);
            }
            mapped_value(items, col, ncols, "INSERT ... VALUES");
          }
        } else {
          std::vector<const Node*> items;
          for (const auto& t : src.target_list()) items.push_back(&t);
          mapped_value(items, col, ncols, "INSERT ... SELECT");
        }
      }
      if (s.has_on_conflict_clause() && s.on_conflict_clause().action() == pg_query::ONCONFLICT_UPDATE) {
        const auto& oc = s.on_conflict_clause();
        no_tenant_assignment(oc.target_list(), "ON CONFLICT DO UPDATE");
        if (!conjunct_preds(oc.has_where_clause() ? &oc.where_clause() : nullptr).contains(refname(s.relation()))) {
          problem("ON CONFLICT DO UPDATE of " + show(s.relation()) + " has no tenant predicate conjunct in its WHERE");
        }
      }
    }
    children(s, scope, {"with_clause"});
  }

  void update(const pg_query::UpdateStmt& s, const Scope& outer) {
    const Scope scope = s.has_with_clause() ? with(s.with_clause(), outer) : outer;
    const auto where = conjunct_preds(s.has_where_clause() ? &s.where_clause() : nullptr);
    if (s.has_relation() && write_target(s.relation(), "UPDATE")) {
      tier1_.push_back(&s.relation());
      no_tenant_assignment(s.target_list(), "UPDATE");
      if (!where.contains(refname(s.relation()))) {
        problem("UPDATE target " + show(s.relation()) + " has no tenant predicate conjunct in WHERE");
      }
    }
    std::vector<LevelRV> level;
    for (const auto& item : s.from_clause()) collect(item, {}, false, level);
    judge(level, where, scope, "FROM of UPDATE");
    children(s, scope, {"with_clause"});
  }

  void del(const pg_query::DeleteStmt& s, const Scope& outer) {
    const Scope scope = s.has_with_clause() ? with(s.with_clause(), outer) : outer;
    const auto where = conjunct_preds(s.has_where_clause() ? &s.where_clause() : nullptr);
    if (s.has_relation() && write_target(s.relation(), "DELETE")) {
      tier1_.push_back(&s.relation());
      if (!where.contains(refname(s.relation()))) {
        problem("DELETE target " + show(s.relation()) + " has no tenant predicate conjunct in WHERE");
      }
    }
    std::vector<LevelRV> level;
    for (const auto& item : s.using_clause()) collect(item, {}, false, level);
    judge(level, where, scope, "USING of DELETE");
    children(s, scope, {"with_clause"});
  }

  void merge(const pg_query::MergeStmt& s, const Scope& outer) {
    const Scope scope = s.has_with_clause() ? with(s.with_clause(), outer) : outer;
    if (s.has_relation() && write_target(s.relation(), "MERGE")) {
      tier1_.push_back(&s.relation());
      if (!conjunct_preds(s.has_join_condition() ? &s.join_condition() : nullptr).contains(refname(s.relation()))) {
        problem("MERGE target " + show(s.relation()) + " has no tenant predicate conjunct in the join condition");
      }
      for (const auto& w : s.merge_when_clauses()) {
        if (!w.has_merge_when_clause()) continue;
        const auto& c = w.merge_when_clause();
        if (c.command_type() == pg_query::CMD_UPDATE) no_tenant_assignment(c.target_list(), "MERGE UPDATE");
        if (c.command_type() == pg_query::CMD_INSERT) {
          const int col = tenant_col(c.target_list(), "MERGE INSERT");
          if (col >= 0) {
            std::vector<const Node*> items;
            for (const auto& v : c.values()) items.push_back(&v);
            mapped_value(items, col, c.target_list_size(), "MERGE INSERT VALUES");
          }
        }
      }
    }
    // The source: its tenant tables must be filtered inside the source (not by the join
    // condition, which only decides MATCHED / NOT MATCHED).
    std::vector<LevelRV> level;
    if (s.has_source_relation()) collect(s.source_relation(), {}, true, level);
    judge(level, {}, scope, "USING of MERGE");
    children(s, scope, {"with_clause"});
  }

  // COPY: a table is only copied TO the client through a query (then checked as a SELECT);
  // COPY FROM STDIN into a tenant table is checked row by row by the session, with the plan the
  // rewrite returns: it must point at the tenant column as PostgreSQL will read the rows.
  void copy(const pg_query::CopyStmt& s, const Scope& scope) {
    if (s.has_relation()) {
      const auto& rv = s.relation();
      if (!s.is_from()) {
        consumed_.insert(&rv);
        known(rv, "COPY TO");
        if (is_tenant_table(rv)) problem("COPY " + show(rv) + " TO copies a tenant table without a filter");
      } else if (write_target(rv, "COPY FROM")) {
        if (s.is_program() || !s.filename().empty()) problem("COPY FROM a server file or program");
        int idx = -1, count = 0;
        for (int i = 0; i < s.attlist_size(); ++i) {
          if (s.attlist(i).has_string() && s.attlist(i).string().sval() == kTenantColumn) {
            idx = i;
            ++count;
          }
        }
        const int n = s.attlist_size();
        const auto& plan = o_.copy_in;
        if (count != 1) {
          problem("COPY FROM column list does not name tenant_id exactly once");
        } else if (o_.rewrite_known && !plan) {
          problem("COPY FROM into a tenant table without a row check plan");
        } else if (plan && (plan->tenant_index >= 0 ? (plan->tenant_index != idx || plan->columns != n)
                                                    : (idx != n - 1 || plan->columns != n - 1))) {
          problem("COPY FROM row check plan (tenant_index " + std::to_string(plan->tenant_index) + ", columns " +
                  std::to_string(plan->columns) + ") does not match the column list (tenant_id at " +
                  std::to_string(idx) + " of " + std::to_string(n) + ")");
        } else if (plan && plan->null_string == o_.tenant) {
          problem("COPY FROM with NULL equal to the tenant value");
        }
      }
    }
    children(s, scope, {"relation"});
  }

  const TenantOracleOptions& o_;
  std::set<const gpb::Message*> consumed_;  // RangeVars judged where they stand
  std::set<std::string> any_preds_;          // every `q.tenant_id = '<tenant>'` of the statement
  std::vector<const pg_query::RangeVar*> tier1_;
};

}  // namespace

std::vector<std::string> tenant_problems(const pg_query::Node& statement, const TenantOracleOptions& options) {
  Checker c(options);
  c.statement(statement);
  return c.problems;
}

std::vector<std::string> tenant_problems(const pg_query::ParseResult& tree, const TenantOracleOptions& options) {
  Checker c(options);
  for (const auto& raw : tree.stmts()) {
    if (raw.has_stmt()) c.statement(raw.stmt());
  }
  return c.problems;
}

}  // namespace rowguard::test_support
