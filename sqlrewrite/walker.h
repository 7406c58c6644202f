#pragma once
// The rewriter's walker (internal to sqlrewrite/): one Walker per statement visits the whole
// protobuf AST, adds tenant predicates, checks writes, and denies every node it does not
// positively handle. Its member functions live in the files named in the groups below.
//
// Shape of the walk:
//   * statements are dispatched by type (SELECT, INSERT, UPDATE, DELETE, transaction control,
//     harmless SET/SHOW, EXPLAIN without ANALYZE); any other statement is denied;
//   * inside a statement, visit() reaches every message through protobuf reflection, so a node
//     type nobody thought of is still seen; it must be in kPassThrough (expressions and syntax
//     that cannot name a table or run SQL), or have its own handler, or the statement is denied;
//   * a RangeVar (a table name) is only accepted where a handler resolved it first (FROM items,
//     join trees, statement targets, CTE references): a RangeVar seen anywhere else is denied.
//
// Denials are thrown as Denied inside the walk only; rewrite() (rewriter.cc) turns them into a
// RewriteResult: nothing is thrown across the module boundary.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <vector>

#include "policy/tenant_scope.h"
#include "sqlrewrite/cte_scope.h"
#include "sqlrewrite/pg_query_api.h"
#include "sqlrewrite/qual_guard.h"
#include "sqlrewrite/rewriter.h"

namespace rowguard::sqlrewrite {

namespace gpb = google::protobuf;
using pg_query::Node;
using policy::QualifiedName;
using policy::TableRule;

// Internal early exit of the walk; never crosses the module boundary (rewrite() catches it).
struct Denied {
  std::string reason;
};

[[noreturn]] inline void deny(std::string reason) { throw Denied{"rowguard: " + std::move(reason)}; }

inline std::string quote_ident(std::string_view s) { return "\"" + std::string(s) + "\""; }

inline Node make_string(std::string_view s) {
  Node n;
  n.mutable_string()->set_sval(std::string(s));
  return n;
}

struct WalkShape;  // walker.cc: what the generic walk knows about one message type

class Walker {
 public:
  Walker(const policy::TenantScope& scope, std::string_view tenant, RewriteTrace* trace)
      : scope_(scope), tenant_(tenant), trace_(trace) {}

  StatementKind statement(Node& stmt);

  std::vector<int> tenant_params_;
  std::optional<CopyInPlan> copy_plan_;
  std::optional<PreparedStatementOp> prepared_op_;
  std::optional<CursorOp> cursor_op_;

 private:
  struct Pred {
    Node* holder = nullptr;                        // a FROM item: the Node holding the RangeVar
    const pg_query::RangeVar* target = nullptr;    // or a statement target (UPDATE/DELETE)
    const TableRule* rule = nullptr;
    const pg_query::RangeVar& range_var() const { return holder ? holder->range_var() : *target; }
  };

  // ---- the generic walk, statement dispatch, trace (walker.cc)
  void visit(gpb::Message& m) { visit(m, m.GetDescriptor()); }
  void visit(gpb::Message& m, const gpb::Descriptor* d);
  void visit_children(gpb::Message& m, std::initializer_list<std::string_view> skip);
  void visit_fields(gpb::Message& m, const WalkShape& shape, std::initializer_list<std::string_view> skip);
  static std::string statement_name(const Node& n);
  void read_constant() const;
  const std::string& compared_tenant() const;
  Node tenant_literal() const;
  // The same constant as the right side of a tenant filter `<ref>.<column> = '<tenant>'`
  // (RewriteTrace::tenant_filter_literals).
  Node tenant_filter_literal() const;

  // ---- SELECT and FROM / join placement of tenant predicates (from_clause.cc)
  void select(pg_query::SelectStmt& s);
  std::vector<Pred> from_item(Node& item, std::string_view part);
  std::vector<Pred> join(pg_query::JoinExpr& j, std::string_view part);
  void fence_tables(Node& item);
  std::vector<Pred> table_sample(Node& item, std::string_view part);
  void wrap_sample(Node& item);
  void place_in_join(pg_query::JoinExpr& j, std::vector<Pred>& preds);
  void wrap(Pred& p);
  static Pred relation_pred(const pg_query::RangeVar& rv, const TableRule& rule);
  Node make_pred(const pg_query::RangeVar& rv, const TableRule& rule);
  void add_to_where(Node* where, bool has_where, std::vector<Pred>& preds);
  // ANDs the tenant predicates `preds` (if any) into the clause of `s` that filters its rows:
  // the WHERE of a SELECT / UPDATE / DELETE / ON CONFLICT DO UPDATE, the join condition of a
  // MERGE, the ON clause of a join.
  template <class Statement>
  void filter(Statement& s, std::vector<Pred>& preds) {
    if (preds.empty()) return;
    if constexpr (std::is_same_v<Statement, pg_query::MergeStmt>) {
      const bool had = s.has_join_condition();  // before mutable_ creates the field
      add_to_where(s.mutable_join_condition(), had, preds);
    } else if constexpr (std::is_same_v<Statement, pg_query::JoinExpr>) {
      const bool had = s.has_quals();
      add_to_where(s.mutable_quals(), had, preds);
    } else {
      const bool had = s.has_where_clause();
      add_to_where(s.mutable_where_clause(), had, preds);
    }
  }
  static void append(std::vector<Pred>& to, std::vector<Pred> more);

  // ---- table references: policy tables, catalogs, write targets (table_refs.cc)
  QualifiedName resolve(pg_query::RangeVar& rv, std::string_view part);
  const TableRule& known_table(const QualifiedName& q, std::string_view part);
  std::vector<Pred> read_table(Node& holder, std::string_view part);
  static bool is_catalog_schema(std::string_view schema);
  void read_catalog(Node& holder, const QualifiedName& q, std::string_view part);
  const TableRule& write_target(pg_query::RangeVar& rv, std::string_view verb);
  void add_relation(const pg_query::RangeVar& rv, const TableRule& rule);
  const TableRule* guard_rule(const pg_query::RangeVar& rv) const;

  // ---- INSERT / UPDATE / DELETE / ON CONFLICT and tenant values (writes.cc)
  void insert(pg_query::InsertStmt& s);
  void name_columns(pg_query::InsertStmt& s, const TableRule& rule);
  const policy::TableInfo& snapshot_columns(const TableRule& rule, const std::string& head);
  void name_columns_in_order(gpb::RepeatedPtrField<Node>& cols, const gpb::RepeatedPtrField<Node>& items,
                             const TableRule& rule, std::string_view what);
  void on_conflict(pg_query::OnConflictClause& oc, const pg_query::RangeVar& target, const TableRule& rule);
  void update(pg_query::UpdateStmt& s);
  void del(pg_query::DeleteStmt& s);
  void check_keys(std::string_view verb, bool new_rows, std::vector<std::string> columns, const TableRule& rule);
  void check_referential(std::string_view verb, bool deletes, const std::vector<std::string>& columns,
                         const TableRule& rule);
  static std::vector<const gpb::RepeatedPtrField<Node>*> values_rows(const pg_query::SelectStmt& src);
  int tenant_column_index(const gpb::RepeatedPtrField<Node>& cols, const TableRule& rule,
                          std::string_view verb);
  void check_no_tenant_assignment(const gpb::RepeatedPtrField<Node>& targets, const TableRule& rule,
                                  std::string_view verb);
  static bool expands(const Node& n);
  static bool any_expands(const gpb::RepeatedPtrField<Node>& items, int upto);
  void check_or_fill_row(gpb::RepeatedPtrField<Node>& items, int index, const TableRule& rule,
                         std::string_view verb);
  bool accept_tenant_value(const Node& value);
  bool is_tenant_literal(const Node& n) const;
  static int tenant_param(const Node& n);

  // ---- MERGE (merge.cc)
  void merge(pg_query::MergeStmt& s);

  // ---- COPY (copy.cc)
  StatementKind copy(pg_query::CopyStmt& s);
  StatementKind copy_in(pg_query::CopyStmt& s);
  CopyInPlan check_copy_options(const pg_query::CopyStmt& s, bool from);

  // ---- transaction control, SET, EXPLAIN, cursors, LISTEN/NOTIFY channels (utility.cc)
  void transaction(const pg_query::TransactionStmt& s);
  void set(pg_query::VariableSetStmt& s);
  void explain(pg_query::ExplainStmt& s);
  StatementKind cursor(Node& stmt);
  std::string channel(const std::string& name) const;

  // ---- SQL-level PREPARE / EXECUTE / DEALLOCATE / DISCARD (prepared.cc)
  void prepare(pg_query::PrepareStmt& s);
  static int32_t param_type_oid(const pg_query::TypeName& t);
  void execute(pg_query::ExecuteStmt& s);
  static std::optional<std::string> constant_value(const Node& n);
  void deallocate(const pg_query::DeallocateStmt& s);
  void discard(const pg_query::DiscardStmt& s);

  // ---- WITH: CTE names in scope (cte_scope.cc)
  void with(pg_query::WithClause& w);
  static void fence_cte(pg_query::CommonTableExpr& cte);
  static const pg_query::CommonTableExpr& cte_of(const Node& n);
  bool cte_visible(const std::string& name) const;

  // ---- names that may call functions, system columns (expression_names.cc)
  void check_function(pg_query::FuncCall& f);
  void check_operator(const pg_query::A_Expr& e);
  bool known_column(std::string_view qualifier, std::string_view column) const;
  [[noreturn]] void deny_attribute(const std::string& shown, const std::string& name) const;
  static void deny_system_column(const std::string& name);
  void check_column_ref(const pg_query::ColumnRef& c);
  void check_indirection(const pg_query::A_Indirection& ind);

  const policy::TenantScope scope_;  // a view of the policy (a few pointers)
  std::string tenant_;
  RewriteTrace* trace_;
  std::unordered_set<const pg_query::RangeVar*> handled_;
  std::vector<std::string> ctes_;  // CTE names in scope, innermost last
  bool locking_ = false;           // reading the FROM items of a SELECT with FOR UPDATE / SHARE
  std::unordered_set<const pg_query::SelectStmt*> locked_subqueries_;  // FROM subqueries under a lock
  // TABLESAMPLE items inside the filtered subqueries wrap_sample() built: filtered in place.
  std::unordered_set<const pg_query::RangeTableSample*> sampled_;
  std::vector<Relation> relations_;  // relations in scope (FROM items, targets), innermost last
  QualGuard guard_{scope_, [this](const pg_query::RangeVar& rv) { return guard_rule(rv); },
                   [this] { return tenant_filter_literal(); }};
};

}  // namespace rowguard::sqlrewrite
