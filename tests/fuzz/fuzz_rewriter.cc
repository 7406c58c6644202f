// Fuzz target: sqlrewrite::rewrite() on arbitrary SQL text, with an independent checker of
// every ALLOWED result.
//
// Input: SQL text as is; or, when the first byte is 0x00 (NUL never occurs in a statement
// text, so no SQL input is lost), the remaining bytes drive a small SQL generator (joins, CTEs,
// subqueries, set operations, writes, ON CONFLICT, MERGE, ...), which reaches deep statement
// shapes far faster than byte mutation of text. Set ROWGUARD_FUZZ_PRINT=1 to print each
// generated statement and its rewrite.
//
// Properties (abort() with the SQL on violation):
//   * rewrite() returns allowed or denied (with a reason), never crashes or throws;
//   * an allowed rewrite re-parses (parse_sql) into as many statements as the input;
//   * in the re-parsed output, checked by a walk written here from PostgreSQL's rules and not
//     from rewriter.cc (fixed policy: tenant tables public.orders and public.customers, tenant
//     column tenant_id, session tenant '1'):
//       - CTE scoping as PostgreSQL does it (WITH: each CTE sees the earlier ones; WITH
//         RECURSIVE: all of them; schema-qualified names and write targets are never CTEs);
//       - every table that is not a CTE reference is in the policy; writes never target the
//         global table;
//       - [brief's rule] every RangeVar naming a tenant table has, somewhere in the same
//         statement, `<alias or relname>.tenant_id = '1'`;
//       - [placement] ...and that predicate is a top-level AND conjunct of the WHERE of the
//         query level whose FROM holds the table, or of the ON clause of a join above it in that
//         FROM tree where the table is not on the preserved side (inner join, right side of
//         LEFT, left side of RIGHT); UPDATE/DELETE targets: their WHERE; MERGE target: its join
//         condition; MERGE source tables: only inside the source itself (a predicate in the MERGE
//         join condition does not stop NOT MATCHED rows from being copied);
//       - INSERT (and MERGE ... INSERT) into a tenant table names tenant_id in its column list
//         and the value feeding it is '1' (or 1, or a $n parameter checked at Bind), mapped as
//         PostgreSQL maps it: `x.*` / `(expr).*` in VALUES or in a SELECT list expand to several
//         columns, so positions after a star are counted from the end;
//       - UPDATE / ON CONFLICT DO UPDATE / MERGE UPDATE assign tenant_id nothing but '1' (or a
//         $n listed in tenant_params); ON CONFLICT DO UPDATE carries the target's predicate in
//         its WHERE;
//       - a $n accepted as the tenant value is listed in RewriteResult::tenant_params (the
//         session checks those at Bind);
//       - COPY: a table goes TO the client only through a filtered query; COPY FROM STDIN into
//         a tenant table comes with a row-check plan pointing at tenant_id in the column list.
//   * the template rewrite cache gives exactly the fresh result, for tenant '1' and for a tenant
//     whose value holds a quote and a backslash.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/message.h>
#include <pg_query.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"
#include "sqlrewrite/literal_scan.h"
#include "sqlrewrite/pg_query_api.h"
#include "sqlrewrite/rewrite_cache.h"
#include "sqlrewrite/parse_stack.h"
#include "sqlrewrite/rewriter.h"

namespace rowguard::fuzz {
const policy::Policy& fixed_policy();
}

namespace {

namespace gpb = google::protobuf;
using pg_query::Node;

constexpr std::string_view kTenant = "1";
constexpr std::string_view kTenantColumn = "tenant_id";

// ---------------------------------------------------------------------------------------------
// The checker

bool is_tenant_table(const pg_query::RangeVar& rv) {
  return rv.catalogname().empty() && (rv.schemaname().empty() || rv.schemaname() == "public") &&
         (rv.relname() == "orders" || rv.relname() == "customers");
}

bool is_global_table(const pg_query::RangeVar& rv) {
  return rv.catalogname().empty() && (rv.schemaname().empty() || rv.schemaname() == "public") &&
         rv.relname() == "countries";
}

std::string refname(const pg_query::RangeVar& rv) {
  return rv.has_alias() ? rv.alias().aliasname() : rv.relname();
}

std::string show(const pg_query::RangeVar& rv) {
  std::string s = rv.catalogname().empty() ? "" : rv.catalogname() + ".";
  s += rv.schemaname().empty() ? "" : rv.schemaname() + ".";
  s += rv.relname();
  if (rv.has_alias()) s += " AS " + rv.alias().aliasname();
  return s;
}

// `q.tenant_id = '1'`: returns q, or "" when `n` is not such a predicate.
std::string pred_qualifier(const pg_query::A_Expr& e) {
  if (e.kind() != pg_query::AEXPR_OP || e.name_size() != 1 || !e.name(0).has_string() ||
      e.name(0).string().sval() != "=") {
    return "";
  }
  if (!e.has_lexpr() || !e.lexpr().has_column_ref() || !e.has_rexpr()) return "";
  const auto& f = e.lexpr().column_ref().fields();
  if (f.size() != 2 || !f[0].has_string() || !f[1].has_string() ||
      f[1].string().sval() != kTenantColumn) {
    return "";
  }
  const Node& r = e.rexpr();
  if (!r.has_a_const() || r.a_const().isnull() || !r.a_const().has_sval() ||
      r.a_const().sval().sval() != kTenant) {
    return "";
  }
  return f[0].string().sval().empty() ? "" : f[0].string().sval();
}

std::string pred_qualifier(const Node& n) { return n.has_a_expr() ? pred_qualifier(n.a_expr()) : ""; }

// Qualifiers of the tenant predicates that are top-level AND conjuncts of `n`.
std::set<std::string> conjunct_preds(const Node* n) {
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

// `x.*` or `(expr).*`: expands to several columns in a VALUES row or a SELECT list.
bool is_star(const Node& n) {
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
  explicit Checker(const rowguard::sqlrewrite::RewriteResult& r) : result_(r) {}
  std::vector<std::string> problems;

  void statement(const Node& stmt) {
    consumed_.clear();
    any_preds_.clear();
    tier1_.clear();
    walk(stmt, {});
    for (const auto* rv : tier1_) {
      if (!any_preds_.contains(refname(*rv))) {
        problem("[brief rule] tenant table " + show(*rv) + " has no `" + refname(*rv) +
                ".tenant_id = '1'` anywhere in the statement");
      }
    }
  }

 private:
  using Scope = std::vector<std::string>;  // CTE names visible here

  struct LevelRV {
    const pg_query::RangeVar* rv;
    std::vector<std::pair<const pg_query::JoinExpr*, int>> path;  // joins above it: (join, side)
  };

  void problem(std::string what) { problems.push_back(std::move(what)); }

  // The session tenant as a value: '1', 1, or $n (possibly cast) that the rewrite lists in
  // tenant_params, so that the session checks its value at Bind.
  bool is_tenant_value(const Node& n) const {
    const Node* p = &n;
    if (p->has_type_cast() && p->type_cast().has_arg()) p = &p->type_cast().arg();
    if (p->has_param_ref()) {
      const int num = p->param_ref().number();
      return num > 0 && std::find(result_.tenant_params.begin(), result_.tenant_params.end(), num) !=
                            result_.tenant_params.end();
    }
    if (!p->has_a_const() || p->a_const().isnull()) return false;
    const auto& c = p->a_const();
    if (c.has_sval()) return c.sval().sval() == kTenant;
    if (c.has_ival()) return std::to_string(c.ival().ival()) == kTenant;
    return false;
  }

  static bool cte_ref(const pg_query::RangeVar& rv, const Scope& scope) {
    return rv.schemaname().empty() && rv.catalogname().empty() &&
           std::find(scope.begin(), scope.end(), rv.relname()) != scope.end();
  }

  // A non-CTE table reference: it must be in the policy.
  void known(const pg_query::RangeVar& rv, std::string_view where) {
    if (!is_tenant_table(rv) && !is_global_table(rv)) {
      problem("table " + show(rv) + " (" + std::string(where) + ") is not in the policy");
    }
  }

  void walk(const gpb::Message& m, const Scope& scope) {
    const gpb::Descriptor* d = m.GetDescriptor();
    if (d == Node::descriptor()) {
      const auto& n = static_cast<const Node&>(m);
      if (n.node_case() == Node::NODE_NOT_SET) return;
      const gpb::FieldDescriptor* f =
          m.GetReflection()->GetOneofFieldDescriptor(m, d->FindOneofByName("node"));
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
      if (is_tenant_table(rv)) tier1_.push_back(&rv);
      return;
    }
    if (d == pg_query::A_Expr::descriptor()) {
      if (std::string q = pred_qualifier(static_cast<const pg_query::A_Expr&>(m)); !q.empty()) {
        any_preds_.insert(q);
      }
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

  void collect(const Node& item, std::vector<std::pair<const pg_query::JoinExpr*, int>> path,
               std::vector<LevelRV>& out) {
    if (item.has_range_var()) {
      out.push_back({&item.range_var(), path});
      consumed_.insert(&item.range_var());
    } else if (item.has_join_expr()) {
      const auto& j = item.join_expr();
      auto left = path;
      left.emplace_back(&j, 0);
      if (j.has_larg()) collect(j.larg(), left, out);
      path.emplace_back(&j, 1);
      if (j.has_rarg()) collect(j.rarg(), path, out);
    }
    // Subqueries, functions, ...: their own query levels, reached by the generic walk.
  }

  // Every tenant table of a FROM tree is filtered at its own level.
  void judge(const std::vector<LevelRV>& level, const std::set<std::string>& where,
             const Scope& scope, std::string_view what) {
    for (const auto& l : level) {
      const auto& rv = *l.rv;
      if (cte_ref(rv, scope)) continue;
      known(rv, what);
      if (!is_tenant_table(rv)) continue;
      tier1_.push_back(&rv);
      const std::string q = refname(rv);
      if (where.contains(q)) continue;
      bool ok = false;
      for (const auto& [j, side] : l.path) {
        const bool filters = j->jointype() == pg_query::JOIN_INNER ||
                             (j->jointype() == pg_query::JOIN_LEFT && side == 1) ||
                             (j->jointype() == pg_query::JOIN_RIGHT && side == 0);
        if (filters && j->has_quals() && conjunct_preds(&j->quals()).contains(q)) ok = true;
      }
      if (!ok) {
        problem("[placement] tenant table " + show(rv) + " in " + std::string(what) +
                " has no `" + q + ".tenant_id = '1'` conjunct in its level's WHERE or in the ON "
                "of a join where it is not on the preserved side");
      }
    }
  }

  void select(const pg_query::SelectStmt& s, const Scope& outer) {
    const Scope scope = s.has_with_clause() ? with(s.with_clause(), outer) : outer;
    if (s.op() == pg_query::SETOP_NONE) {
      std::vector<LevelRV> level;
      for (const auto& item : s.from_clause()) collect(item, {}, level);
      judge(level, conjunct_preds(s.has_where_clause() ? &s.where_clause() : nullptr), scope,
            "FROM of SELECT");
    }
    children(s, scope, {"with_clause"});
  }

  // A write target: never a CTE; must be a tenant table (writes to the global table are denied).
  bool write_target(const pg_query::RangeVar& rv, std::string_view verb) {
    consumed_.insert(&rv);
    known(rv, std::string(verb) + " target");
    if (is_global_table(rv)) problem(std::string(verb) + " writes to the global table " + show(rv));
    return is_tenant_table(rv);
  }

  // An UPDATE may set tenant_id only to the tenant itself (a no-op on the tenant's rows).
  void no_tenant_assignment(const gpb::RepeatedPtrField<Node>& targets, std::string_view verb) {
    for (const auto& t : targets) {
      if (!t.has_res_target() || t.res_target().name() != kTenantColumn) continue;
      const auto& rt = t.res_target();
      if (rt.indirection_size() > 0 || !rt.has_val() || rt.val().has_multi_assign_ref() ||
          !is_tenant_value(rt.val())) {
        problem(std::string(verb) + " assigns tenant_id something other than '1' or a checked $n");
      }
    }
  }

  // The value feeding the tenant column (index `col` of `ncols` target columns) among `items`.
  void mapped_value(const std::vector<const Node*>& items, int col, int ncols, std::string_view verb) {
    const int n = static_cast<int>(items.size());
    int first_star = n, last_star = -1;
    for (int k = 0; k < n; ++k) {
      if (!is_star(*items[k])) continue;
      first_star = std::min(first_star, k);
      last_star = k;
    }
    // PostgreSQL rejects an INSERT whose expression count (after `*` expansion) differs from
    // its column count: without stars that is decidable here, and such a statement writes
    // nothing.
    // A star expands to zero or more columns, so more non-star items than columns is rejected too.
    int stars = 0;
    for (const Node* it : items) stars += is_star(*it) ? 1 : 0;
    if ((last_star < 0 && n != ncols) || n - stars > ncols) return;
    const Node* value = nullptr;
    if (col < first_star) {
      // Nothing before it expands: the position is the column's (when it exists at all).
      if (col < n) value = items[col];
    } else {
      // PostgreSQL requires as many expressions (after expansion) as target columns: count
      // from the end, possible only when no star comes at or after that position.
      const int pos = n - 1 - (ncols - 1 - col);
      if (pos < 0 || last_star >= pos) {
        problem(std::string(verb) + ": a `*` expansion before the tenant column makes its value "
                "unknown (column " + std::to_string(col + 1) + " of " + std::to_string(ncols) + ")");
        return;
      }
      value = items[pos];
    }
    if (value == nullptr) {
      problem(std::string(verb) + ": no value for tenant_id");
    } else if (!is_tenant_value(*value)) {
      problem(std::string(verb) + ": tenant_id is set to something other than '1' or $n");
    }
  }

  // Index of tenant_id in an INSERT column list (ResTargets), -1 when absent (a problem), -2
  // when PostgreSQL rejects the list.
  int tenant_col(const gpb::RepeatedPtrField<Node>& cols, std::string_view verb) {
    int index = -1;
    for (int i = 0; i < cols.size(); ++i) {
      if (cols[i].has_res_target() && cols[i].res_target().name() == kTenantColumn) {
        // Named twice, or with a subscript on the integer column: PostgreSQL refuses it.
        if (index >= 0 || cols[i].res_target().indirection_size() > 0) return -2;
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
            if (row.has_list()) for (const auto& i : row.list().items()) items.push_back(&i);
            mapped_value(items, col, ncols, "INSERT ... VALUES");
          }
        } else {
          std::vector<const Node*> items;
          for (const auto& t : src.target_list()) {
            if (t.has_res_target() && t.res_target().has_val()) items.push_back(&t.res_target().val());
          }
          mapped_value(items, col, ncols, "INSERT ... SELECT");
        }
      }
      if (s.has_on_conflict_clause() && s.on_conflict_clause().action() == pg_query::ONCONFLICT_UPDATE) {
        const auto& oc = s.on_conflict_clause();
        no_tenant_assignment(oc.target_list(), "ON CONFLICT DO UPDATE");
        if (!conjunct_preds(oc.has_where_clause() ? &oc.where_clause() : nullptr)
                 .contains(refname(s.relation()))) {
          problem("[placement] ON CONFLICT DO UPDATE of " + show(s.relation()) +
                  " has no tenant predicate conjunct in its WHERE");
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
        problem("[placement] UPDATE target " + show(s.relation()) + " has no tenant predicate conjunct in WHERE");
      }
    }
    std::vector<LevelRV> level;
    for (const auto& item : s.from_clause()) collect(item, {}, level);
    judge(level, where, scope, "FROM of UPDATE");
    children(s, scope, {"with_clause"});
  }

  void del(const pg_query::DeleteStmt& s, const Scope& outer) {
    const Scope scope = s.has_with_clause() ? with(s.with_clause(), outer) : outer;
    const auto where = conjunct_preds(s.has_where_clause() ? &s.where_clause() : nullptr);
    if (s.has_relation() && write_target(s.relation(), "DELETE")) {
      tier1_.push_back(&s.relation());
      if (!where.contains(refname(s.relation()))) {
        problem("[placement] DELETE target " + show(s.relation()) + " has no tenant predicate conjunct in WHERE");
      }
    }
    std::vector<LevelRV> level;
    for (const auto& item : s.using_clause()) collect(item, {}, level);
    judge(level, where, scope, "USING of DELETE");
    children(s, scope, {"with_clause"});
  }

  void merge(const pg_query::MergeStmt& s, const Scope& outer) {
    const Scope scope = s.has_with_clause() ? with(s.with_clause(), outer) : outer;
    if (s.has_relation() && write_target(s.relation(), "MERGE")) {
      tier1_.push_back(&s.relation());
      if (!conjunct_preds(s.has_join_condition() ? &s.join_condition() : nullptr)
               .contains(refname(s.relation()))) {
        problem("[placement] MERGE target " + show(s.relation()) + " has no tenant predicate conjunct in the join condition");
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
    if (s.has_source_relation()) collect(s.source_relation(), {}, level);
    judge(level, {}, scope, "USING of MERGE");
    children(s, scope, {"with_clause"});
  }

  // COPY: a table is only copied TO the client through a query (then checked as a SELECT);
  // COPY FROM STDIN into a tenant table is checked row by row by the session, with the plan
  // the rewrite returns: it must point at the tenant column as PostgreSQL will read the rows.
  void copy(const pg_query::CopyStmt& s, const Scope& scope) {
    if (s.has_relation()) {
      const auto& rv = s.relation();
      if (!s.is_from()) {
        consumed_.insert(&rv);
        known(rv, "COPY TO");
        if (is_tenant_table(rv)) problem("COPY " + show(rv) + " TO copies a tenant table without a filter");
      } else if (write_target(rv, "COPY FROM")) {
        if (s.is_program() || !s.filename().empty()) problem("COPY FROM a server file or program");
        const auto& plan = result_.copy_in;
        int idx = -1, count = 0;
        for (int i = 0; i < s.attlist_size(); ++i) {
          if (s.attlist(i).has_string() && s.attlist(i).string().sval() == kTenantColumn) {
            idx = i;
            ++count;
          }
        }
        const int n = s.attlist_size();
        if (count > 1) {
          // PostgreSQL refuses a column named twice ("specified more than once").
        } else if (!plan) {
          problem("COPY FROM into a tenant table without a row check plan");
        } else if (count != 1) {
          problem("COPY FROM column list does not name tenant_id");
        } else if (plan->tenant_index >= 0 ? (plan->tenant_index != idx || plan->columns != n)
                                           : (idx != n - 1 || plan->columns != n - 1)) {
          problem("COPY FROM row check plan (tenant_index " + std::to_string(plan->tenant_index) +
                  ", columns " + std::to_string(plan->columns) + ") does not match the column list (tenant_id at " +
                  std::to_string(idx) + " of " + std::to_string(n) + ")");
        } else if (plan->null_string == kTenant) {
          problem("COPY FROM with NULL equal to the tenant value");
        }
      }
    }
    children(s, scope, {"relation"});
  }

  const rowguard::sqlrewrite::RewriteResult& result_;
  std::set<const gpb::Message*> consumed_;   // RangeVars judged where they stand
  std::set<std::string> any_preds_;           // every `q.tenant_id = '1'` of the statement
  std::vector<const pg_query::RangeVar*> tier1_;
};

// ---------------------------------------------------------------------------------------------
// Re-parsing the output

enum class Reparse { kOk, kTooDeep, kError };

// parse_sql, falling back to a protobuf decode with a higher nesting limit: the rewrite adds
// a few levels (subquery wrapping, AND nodes), and protobuf's default limit of 100 is the
// wrapper's limit, not PostgreSQL's.
Reparse reparse(const std::string& sql, pg_query::ParseResult& out, std::string& error) {
  auto p = rowguard::sqlrewrite::parse_sql(sql);
  if (p.ok) {
    out = std::move(p.tree);
    return Reparse::kOk;
  }
  error = p.error;
  if (error.find("stack depth") != std::string::npos) return Reparse::kTooDeep;
  if (error != "cannot decode the parse tree") return Reparse::kError;
  PgQueryProtobufParseResult r = pg_query_parse_protobuf(sql.c_str());
  Reparse result = Reparse::kError;
  if (r.error == nullptr) {
    gpb::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(r.parse_tree.data),
                                 static_cast<int>(r.parse_tree.len));
    in.SetRecursionLimit(100000);
    result = out.ParseFromCodedStream(&in) ? Reparse::kOk : Reparse::kError;
  }
  pg_query_free_protobuf_parse_result(r);
  return result;
}

// ---------------------------------------------------------------------------------------------
// The generator (input bytes -> one or more statements)

class Gen {
 public:
  Gen(const uint8_t* data, size_t size) : d_(data), n_(size) {}

  std::string statements() {
    std::string s = stmt();
    for (int i = 0; i < 3 && pick(4) == 3; ++i) s += "; " + stmt();
    return s;
  }

 private:
  unsigned pick(unsigned k) {
    if (k <= 1 || i_ >= n_) return 0;
    return d_[i_++] % k;
  }
  bool coin() { return pick(2) == 1; }
  template <size_t N>
  std::string one(const char* const (&a)[N]) { return a[pick(N)]; }

  struct Depth {
    explicit Depth(int& d) : d_(d) { ++d_; }
    ~Depth() { --d_; }
    int& d_;
  };
  bool deep() const { return depth_ > 4; }

  std::string table() {
    static const char* const k[] = {"orders", "public.orders", "customers", "public.customers",
                                    "countries", "ONLY orders", "orders *", "\"orders\"", "c1",
                                    "c2", "audit_log", "public.countries", "x"};
    return one(k);
  }
  std::string alias() {
    static const char* const k[] = {"", " o", " AS o", " c", " AS orders", " customers", " \"O\"",
                                    " AS x(a, b)", " t", " AS c1", " j", " s"};
    return one(k);
  }
  std::string sub_alias() {
    static const char* const k[] = {" AS s", " s", " AS orders", " t(a)", " AS o", " x", " c1"};
    return one(k);
  }
  std::string col() {
    static const char* const k[] = {"id", "tenant_id", "customer_id", "amount", "status", "name",
                                    "o.id", "o.tenant_id", "orders.id", "orders.tenant_id", "c.id",
                                    "customers.tenant_id", "t.id", "x.a", "\"O\".id", "j.id",
                                    "s.id", "c1.id", "excluded.amount", "n"};
    return one(k);
  }
  std::string lit() {
    static const char* const k[] = {"1", "'1'", "2", "'2'", "NULL", "$1", "$2", "now()", "'x'",
                                    "1.5", "TRUE", "$1::int", "'1'::int", "DEFAULT"};
    return one(k);
  }
  std::string value() {  // a VALUES item
    switch (pick(6)) {
      case 0: return lit();
      case 1: return expr();
      case 2: return "(ROW(7, 2)).*";
      case 3: return "s.*";
      case 4: return "(ROW(2)).*";
      default: return lit();
    }
  }
  std::string expr() {
    Depth g(depth_);
    if (deep()) return col();
    switch (pick(11)) {
      case 0: return col();
      case 1: return lit();
      case 2: return col() + " + 1";
      case 3: return "(" + query() + ")";
      case 4: return "coalesce(" + col() + ", " + lit() + ")";
      case 5: return "CASE WHEN " + cond() + " THEN 1 ELSE 2 END";
      case 6: return "count(*)";
      case 7: return "lower(" + col() + ")";
      case 8: return "ARRAY(" + query() + ")";
      case 9: return col() + "::text";
      default: return "(" + expr() + ")";
    }
  }
  std::string cond() {
    Depth g(depth_);
    if (deep()) return col() + " = " + lit();
    static const char* const ops[] = {" = ", " < ", " <> ", " >= ", " LIKE ", " IS DISTINCT FROM "};
    switch (pick(16)) {
      case 0: return col() + one(ops) + expr();
      case 1: return cond() + " AND " + cond();
      case 2: return cond() + " OR " + cond();
      case 3: return "NOT (" + cond() + ")";
      case 4: return "EXISTS (" + query() + ")";
      case 5: return col() + " IN (" + query() + ")";
      case 6: return col() + " IN (1, 2)";
      case 7: return col() + " = ANY (ARRAY[1, 2])";
      case 8: return col() + " IS NULL";
      case 9: return "TRUE";
      case 10: return col() + " BETWEEN 1 AND 2";
      case 11: return "(" + col() + ", " + col() + ") = (1, 2)";
      case 12: return col() + " = (" + query() + ")";
      case 13: return "tenant_id = '2'";
      case 14: return "(" + cond() + ")";
      default: return "CASE WHEN " + cond() + " THEN TRUE ELSE FALSE END";
    }
  }
  std::string target() {
    switch (pick(9)) {
      case 0: return "*";
      case 1: return expr();
      case 2: return expr() + " AS v";
      case 3: return "o.*";
      case 4: return "count(*)";
      case 5: return "row_number() OVER (PARTITION BY " + col() + " ORDER BY id)";
      case 6: return "s.*";
      case 7: return "'1'";
      default: return col();
    }
  }
  std::string targets() {
    std::string s = target();
    while (pick(3) == 2) s += ", " + target();
    return s;
  }
  std::string join_kind() {
    static const char* const k[] = {" JOIN ", " INNER JOIN ", " LEFT JOIN ", " LEFT OUTER JOIN ",
                                    " RIGHT JOIN ", " FULL JOIN ", " FULL OUTER JOIN "};
    return one(k);
  }
  std::string from_item() {
    Depth g(depth_);
    if (deep()) return table() + alias();
    switch (pick(12)) {
      case 0: return table() + alias();
      case 1: return "(" + query() + ")" + sub_alias();
      case 2: return "LATERAL (" + query() + ")" + sub_alias();
      case 3: return from_item() + join_kind() + from_item() + " ON " + cond();
      case 4: return from_item() + " CROSS JOIN " + from_item();
      case 5: return from_item() + (coin() ? " NATURAL JOIN " : " NATURAL LEFT JOIN ") + from_item();
      case 6: return from_item() + join_kind() + from_item() + " USING (id)";
      case 7: return "(" + from_item() + join_kind() + from_item() + " ON " + cond() + ")" + (coin() ? " AS j" : "");
      case 8: return "generate_series(1, 3) AS g";
      case 9: return "unnest(ARRAY[1, 2]) WITH ORDINALITY AS u(a, n)";
      case 10: return table() + alias();
      default: return "(" + from_item() + (coin() ? " LEFT JOIN " : " RIGHT JOIN ") + from_item() +
                      " ON " + cond() + ")" + (coin() ? " AS j" : "");
    }
  }
  std::string from_list() {
    std::string s = from_item();
    while (pick(3) == 2) s += ", " + from_item();
    return s;
  }
  std::string core() {
    switch (pick(8)) {
      case 0: case 1: {
        std::string s = std::string("SELECT ") + (pick(4) == 3 ? "DISTINCT " : "") + targets() +
                        " FROM " + from_list();
        if (coin()) s += " WHERE " + cond();
        if (pick(4) == 3) s += " GROUP BY " + col() + (coin() ? " HAVING " + cond() : "");
        return s;
      }
      case 2: return "SELECT " + targets();
      case 3: return "TABLE " + table();
      case 4: return "VALUES (1, '1'), (2, '2')";
      case 5: return "SELECT " + targets() + " FROM " + from_list() + " WHERE " + cond();
      case 6: return "(" + query() + ")";
      default: return "SELECT " + targets() + " FROM " + table() + alias();
    }
  }
  std::string cte_body() {
    switch (pick(6)) {
      case 0: case 1: case 2: return query();
      case 3: return "DELETE FROM " + write_table() + (coin() ? " WHERE " + cond() : "") + " RETURNING *";
      case 4: return "UPDATE " + write_table() + " SET amount = 1" + (coin() ? " WHERE " + cond() : "") + " RETURNING *";
      default: return "INSERT INTO " + write_table() + " (" + cols() + ") VALUES " + rows() + " RETURNING *";
    }
  }
  std::string with_clause() {
    static const char* const names[] = {"c1", "c2", "orders", "customers", "x"};
    const bool recursive = pick(4) == 3;
    std::string s = recursive ? "WITH RECURSIVE " : "WITH ";
    int n = 0;
    do {
      if (n++) s += ", ";
      if (recursive && coin()) {
        std::string name = one(names);
        s += name + "(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM " + name + " WHERE n < 3)";
      } else {
        static const char* const mat[] = {"", "", "MATERIALIZED ", "NOT MATERIALIZED "};
        s += one(names) + std::string(coin() ? "(id)" : "") + " AS " + one(mat) + "(" + cte_body() + ")";
      }
    } while (n < 3 && pick(3) == 2);
    return s + " ";
  }
  std::string query() {
    Depth g(depth_);
    if (deep()) return "SELECT 1";
    std::string s = pick(5) == 4 ? with_clause() : "";
    s += core();
    static const char* const setops[] = {" UNION ", " UNION ALL ", " INTERSECT ", " EXCEPT "};
    while (pick(4) == 3) s += one(setops) + core();
    static const char* const tails[] = {"", "", "", " ORDER BY 1", " LIMIT 1", " OFFSET 1",
                                        " FOR UPDATE", " FOR SHARE", " FOR UPDATE OF o",
                                        " FOR NO KEY UPDATE SKIP LOCKED", " FETCH FIRST 1 ROWS ONLY"};
    return s + one(tails);
  }
  std::string write_table() {
    static const char* const k[] = {"orders", "public.orders", "customers", "countries",
                                    "ONLY orders", "orders AS o", "customers AS c", "orders o",
                                    "customers AS orders", "c1"};
    return one(k);
  }
  std::string cols() {
    static const char* const k[] = {"id, amount", "id, tenant_id, amount", "tenant_id, id",
                                    "id, amount, tenant_id", "id", "tenant_id", "id, customer_id, tenant_id, amount"};
    return one(k);
  }
  std::string row() {
    std::string s = "(" + value();
    while (pick(3) != 0) s += ", " + value();
    return s + ")";
  }
  std::string rows() {
    std::string s = row();
    while (pick(4) == 3) s += ", " + row();
    return s;
  }
  std::string set_list() {
    static const char* const k[] = {"amount = 1", "status = 'x', amount = amount + 1",
                                    "(amount, status) = (1, 'x')", "tenant_id = '2'",
                                    "status = DEFAULT", "(amount, status) = (ROW(1, 'x'))"};
    switch (pick(3)) {
      case 0: return one(k);
      case 1: return "amount = (" + query() + ")";
      default: return "(amount, status) = (" + query() + ")";
    }
  }
  std::string dml() {
    switch (pick(4)) {
      case 0: {
        std::string s = "UPDATE " + write_table() + " SET " + set_list();
        if (coin()) s += " FROM " + from_list();
        if (coin()) s += " WHERE " + cond();
        return s + (pick(4) == 3 ? " RETURNING *" : "");
      }
      case 1: {
        std::string s = "DELETE FROM " + write_table();
        if (coin()) s += " USING " + from_list();
        if (coin()) s += " WHERE " + cond();
        return s + (pick(4) == 3 ? " RETURNING id" : "");
      }
      case 2: {
        std::string s = "INSERT INTO " + write_table() + " (" + cols() + ") ";
        switch (pick(4)) {
          case 0: s += "VALUES " + rows(); break;
          case 1: s += "SELECT " + targets() + (coin() ? " FROM " + from_list() : ""); break;
          case 2: s += query(); break;
          default: s += "SELECT s.*, '1' FROM (SELECT 7, 2) AS s"; break;
        }
        static const char* const oc[] = {"", "", " ON CONFLICT DO NOTHING",
                                         " ON CONFLICT (id) DO UPDATE SET amount = excluded.amount",
                                         " ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id",
                                         " ON CONFLICT (id) DO UPDATE SET amount = 1 WHERE amount > 0"};
        return s + one(oc) + (pick(4) == 3 ? " RETURNING *" : "");
      }
      default: {
        std::string s = "MERGE INTO " + write_table() + " USING " + from_item() + " ON " + cond();
        int n = 0;
        do {
          switch (pick(6)) {
            case 0: s += " WHEN MATCHED THEN UPDATE SET amount = 1"; break;
            case 1: s += " WHEN MATCHED AND " + cond() + " THEN DELETE"; break;
            case 2: s += " WHEN NOT MATCHED THEN INSERT (" + cols() + ") VALUES " + row(); break;
            case 3: s += " WHEN NOT MATCHED THEN DO NOTHING"; break;
            case 4: s += " WHEN MATCHED THEN UPDATE SET tenant_id = 2"; break;
            default: s += " WHEN NOT MATCHED THEN INSERT DEFAULT VALUES"; break;
          }
        } while (++n < 3 && coin());
        return s;
      }
    }
  }
  std::string stmt() {
    switch (pick(11)) {
      case 0: case 1: case 2: return query();
      case 3: case 4: case 5: return dml();
      case 6: return with_clause() + dml();
      case 7: return "EXPLAIN " + (coin() ? query() : dml());
      case 8: {
        static const char* const k[] = {"BEGIN", "COMMIT", "ROLLBACK", "SET statement_timeout = 0",
                                        "SHOW timezone", "DEALLOCATE ALL", "SAVEPOINT a",
                                        "SET search_path = x", "RESET ALL", "-- only a comment",
                                        "COPY orders (id, amount) FROM STDIN",
                                        "COPY customers (id, tenant_id, name) FROM STDIN WITH (FORMAT csv)",
                                        "COPY orders (tenant_id, id) FROM STDIN WITH (NULL '1')",
                                        "COPY orders TO STDOUT", "COPY customers (id, name) TO STDOUT WITH (FORMAT csv)",
                                        "LISTEN x", "COPY orders (id, tenant_id, tenant_id) FROM STDIN"};
        return one(k);
      }
      case 9: return with_clause() + query();
      default: return "COPY (" + query() + ") TO STDOUT";
    }
  }

  const uint8_t* d_;
  size_t n_;
  size_t i_ = 0;
  int depth_ = 0;
};

[[noreturn]] void fail(const std::string& sql, const rowguard::sqlrewrite::RewriteResult& r,
                       const std::vector<std::string>& problems) {
  std::fprintf(stderr, "\n==== fuzz_rewriter: INVARIANT VIOLATION ====\ninput SQL:\n%s\n", sql.c_str());
  std::fprintf(stderr, "rewrite: %s\n%s\n", r.allowed ? "ALLOWED" : "DENIED",
               r.allowed ? r.sql.c_str() : r.reason.c_str());
  for (const auto& p : problems) std::fprintf(stderr, "  - %s\n", p.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace

namespace {
int check_one(const uint8_t* data, size_t size);
}  // namespace

// The independent checker walks the tree recursively, as deep as rowguard accepts (25,000 levels):
// it runs on the parse stack (sqlrewrite/parse_stack.h), not on the 8 MB main stack.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return rowguard::sqlrewrite::run_on_parse_stack([&] { return check_one(data, size); });
}

namespace {
int check_one(const uint8_t* data, size_t size) {
  std::string sql;
  if (size > 0 && data[0] == 0) {
    sql = Gen(data + 1, size - 1).statements();
  } else {
    sql.assign(reinterpret_cast<const char*>(data), size);
  }
  static const bool print = std::getenv("ROWGUARD_FUZZ_PRINT") != nullptr;
  const auto& policy = rowguard::fuzz::fixed_policy();

  if (print) std::fprintf(stderr, "SQL: %s\n", sql.c_str());
  const rowguard::sqlrewrite::RewriteResult r = rowguard::sqlrewrite::rewrite(sql, policy, kTenant);
  if (print) {
    std::fprintf(stderr, "  -> %s: %s\n", r.allowed ? "allowed" : "denied",
                 r.allowed ? r.sql.c_str() : r.reason.c_str());
  }
  // The template cache must give exactly the fresh result, for this tenant and for a tenant whose
  // value needs quoting (the template is made by whichever call comes first).
  {
    static rowguard::sqlrewrite::RewriteCache cache(64, 1 << 20);
    const std::string other = "o'b\\";
    const rowguard::sqlrewrite::RewriteResult other_fresh = rowguard::sqlrewrite::rewrite(sql, policy, other);
    for (int i = 0; i < 2; ++i) {
      const std::string_view tenant = i == 0 ? std::string_view(other) : kTenant;
      const rowguard::sqlrewrite::RewriteResult& fresh = i == 0 ? other_fresh : r;
      const rowguard::sqlrewrite::RewriteResult& c = cache.rewrite(sql, policy, tenant);
      if (c.allowed != fresh.allowed || c.sql != fresh.sql || c.reason != fresh.reason ||
          c.kinds != fresh.kinds || c.tenant_params != fresh.tenant_params ||
          c.copy_in.has_value() != fresh.copy_in.has_value()) {
        fail(sql, r, {"the rewrite cache differs from a fresh rewrite for tenant " + std::string(tenant) +
                      ": cached " + (c.allowed ? c.sql : c.reason) + " / fresh " +
                      (fresh.allowed ? fresh.sql : fresh.reason)});
      }
    }
  }
  // Constant templates: the same statement with other literals (integers changed, strings
  // changed, a string turned into the tenant's value, strings turned into 'f') must get from the cache exactly its own
  // fresh rewrite, whichever text made the entry.
  {
    static rowguard::sqlrewrite::RewriteCache cache(64, 1 << 20);
    std::vector<rowguard::sqlrewrite::Literal> lits;
    if (rowguard::sqlrewrite::scan_literals(sql, lits) && !lits.empty()) {
      cache.rewrite(sql, policy, kTenant);
      for (int variant = 0; variant < 3; ++variant) {
        std::string varied;
        bool tenant_done = false;
        rowguard::sqlrewrite::replace_literals(
            varied, sql, lits,
            [&](std::string& out, size_t, const rowguard::sqlrewrite::Literal& l, std::string_view token) {
              if (l.kind == rowguard::sqlrewrite::Literal::Kind::kInteger) {
                out.append(token.size() < 8 ? token : token.substr(0, token.size() - 1));
                if (token.size() < 8) out.push_back('7');
              } else if (l.kind == rowguard::sqlrewrite::Literal::Kind::kNumeric) {
                out.append("9").append(token);
              } else if (variant == 1 && !tenant_done) {
                rowguard::sqlrewrite::append_string_literal(out, kTenant);
                tenant_done = true;
              } else if (variant == 2) {
                out.append("'f'");  // a value the deparser spells differently in some places
              } else {
                out.append("'v").append(token.substr(1));
              }
            });
        const rowguard::sqlrewrite::RewriteResult fresh = rowguard::sqlrewrite::rewrite(varied, policy, kTenant);
        const rowguard::sqlrewrite::RewriteResult& c = cache.rewrite(varied, policy, kTenant);
        if (c.allowed != fresh.allowed || c.sql != fresh.sql || c.reason != fresh.reason ||
            c.kinds != fresh.kinds || c.tenant_params != fresh.tenant_params ||
            c.copy_in.has_value() != fresh.copy_in.has_value()) {
          fail(varied, fresh, {"a constant template differs from a fresh rewrite: cached " +
                               (c.allowed ? c.sql : c.reason) + " / fresh " +
                               (fresh.allowed ? fresh.sql : fresh.reason)});
        }
      }
    }
  }
  if (!r.allowed) {
    if (r.reason.empty()) fail(sql, r, {"denied without a reason"});
    return 0;
  }

  std::vector<std::string> problems;
  auto original = rowguard::sqlrewrite::parse_sql(sql);
  pg_query::ParseResult tree;
  std::string error;
  switch (reparse(r.sql, tree, error)) {
    case Reparse::kTooDeep:
      return 0;  // nesting beyond libpg_query's stack limit: not a property of the rewrite
    case Reparse::kError:
      fail(sql, r, {"the rewritten SQL does not parse: " + error});
    case Reparse::kOk:
      break;
  }
  if (original.ok && original.tree.stmts_size() != tree.stmts_size()) {
    problems.push_back("statement count changed: " + std::to_string(original.tree.stmts_size()) +
                       " -> " + std::to_string(tree.stmts_size()));
  }
  if (r.kinds.size() != static_cast<size_t>(tree.stmts_size())) {
    problems.push_back("kinds has " + std::to_string(r.kinds.size()) + " entries for " +
                       std::to_string(tree.stmts_size()) + " statements");
  }
  Checker checker(r);
  for (const auto& raw : tree.stmts()) {
    if (raw.has_stmt()) checker.statement(raw.stmt());
  }
  problems.insert(problems.end(), checker.problems.begin(), checker.problems.end());
  if (!problems.empty()) fail(sql, r, problems);
  return 0;
}
}  // namespace
