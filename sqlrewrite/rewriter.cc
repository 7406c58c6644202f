// The rewriter: walks the whole protobuf AST of every statement, adds tenant predicates,
// checks writes, and denies every node it does not positively handle.
//
// Shape of the walk:
//   * statements are dispatched by type (SELECT, INSERT, UPDATE, DELETE, transaction control,
//     harmless SET/SHOW, EXPLAIN without ANALYZE); any other statement is denied;
//   * inside a statement, visit() reaches every message through protobuf reflection, so a node
//     type nobody thought of is still seen; it must be in kPassThrough (expressions and syntax
//     that cannot name a table or run SQL), or have its own handler, or the statement is denied;
//   * a RangeVar (a table name) is only accepted where a handler resolved it first (FROM items,
//     join trees, statement targets, CTE references): a RangeVar seen anywhere else is denied.
#include "sqlrewrite/rewriter.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <string_view>
#include <unordered_set>

#include "policy/catalogs.h"
#include "sqlrewrite/function_check.h"
#include "sqlrewrite/fk_check.h"
#include "sqlrewrite/key_check.h"
#include "sqlrewrite/referential_check.h"
#include "sqlrewrite/sequence_check.h"
#include "sqlrewrite/on_conflict_check.h"
#include "sqlrewrite/parse_stack.h"
#include "sqlrewrite/pg_query_api.h"
#include "sqlrewrite/qual_guard.h"
#include "sqlrewrite/settings_check.h"

namespace rowguard::sqlrewrite {
namespace {

// PostgreSQL's defGetBoolean for an EXPLAIN option: false is the integer 0 or the words false / off
// (any case); no argument means true. Anything else is not "false".
bool explain_option_false(const pg_query::DefElem& d) {
  if (!d.has_arg()) return false;
  const auto& a = d.arg();
  if (a.has_integer()) return a.integer().ival() == 0;
  if (!a.has_string()) return false;
  std::string v = a.string().sval();
  for (char& c : v) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return v == "false" || v == "off";
}

namespace gpb = google::protobuf;
using pg_query::Node;
using policy::QualifiedName;
using policy::TableRule;

// Internal early exit of the walk; never crosses the module boundary (rewrite() catches it).
struct Denied {
  std::string reason;
};

[[noreturn]] void deny(std::string reason) { throw Denied{"rowguard: " + std::move(reason)}; }

// Node types that only carry expressions or syntax: they cannot name a table or run SQL by
// themselves; their children are still visited. Anything not here and without a handler below
// is denied.
const std::unordered_set<std::string_view>& pass_through_types() {
  static const std::unordered_set<std::string_view> kTypes = {
      "List", "String", "Integer", "Float", "Boolean", "BitString", "A_Const", "ColumnRef",
      "A_Star", "ParamRef", "BoolExpr", "NullTest", "BooleanTest", "TypeCast", "TypeName",
      "ResTarget", "SortBy", "A_Indirection", "A_Indices", "A_ArrayExpr", "CaseExpr", "CaseWhen",
      "CoalesceExpr", "MinMaxExpr", "RowExpr", "SQLValueFunction", "SubLink", "Alias",
      "CollateClause", "WindowDef", "GroupingSet", "SetToDefault", "MultiAssignRef",
      "LockingClause", "NamedArgExpr", "JoinExpr", "RangeSubselect", "RangeFunction",
      "CTESearchClause", "CTECycleClause", "OnConflictClause", "InferClause", "IndexElem",
      "MergeWhenClause",
  };
  return kTypes;
}

// What the generic walk needs to know about one message type of pg_query.proto: its
// message-typed fields (declaration order) and whether it is in pass_through_types().
struct WalkShape {
  // The types visit() treats specially; kOther: pass_through decides.
  enum class Kind {
    kOther, kNode, kSelect, kInsert, kUpdate, kDelete, kMerge, kRangeVar, kFuncCall, kAExpr,
    kColumnRef, kIndirection, kTypeCast, kSubLink, kSortBy,  // checked, then walked like pass-through
  };
  Kind kind = Kind::kOther;
  const gpb::Reflection* reflection = nullptr;
  std::vector<const gpb::FieldDescriptor*> message_fields;
  bool pass_through = false;
};

// Built once, immutable afterwards (thread-safe to read): one WalkShape per top-level message type
// of pg_query.proto by Descriptor::index(), and Node's oneof members by field number (= node_case()).
struct WalkTables {
  const gpb::FileDescriptor* file = nullptr;
  std::vector<WalkShape> shapes;
  std::vector<const gpb::FieldDescriptor*> node_members;

  WalkTables() {
    file = Node::descriptor()->file();
    shapes.resize(static_cast<size_t>(file->message_type_count()));
    for (int i = 0; i < file->message_type_count(); ++i) {
      const gpb::Descriptor* d = file->message_type(i);
      WalkShape& shape = shapes[static_cast<size_t>(i)];
      shape.pass_through = pass_through_types().contains(d->name());
      shape.reflection = gpb::MessageFactory::generated_factory()->GetPrototype(d)->GetReflection();
      shape.kind = d == Node::descriptor()                   ? WalkShape::Kind::kNode
                   : d == pg_query::SelectStmt::descriptor() ? WalkShape::Kind::kSelect
                   : d == pg_query::InsertStmt::descriptor() ? WalkShape::Kind::kInsert
                   : d == pg_query::UpdateStmt::descriptor() ? WalkShape::Kind::kUpdate
                   : d == pg_query::DeleteStmt::descriptor() ? WalkShape::Kind::kDelete
                   : d == pg_query::MergeStmt::descriptor()  ? WalkShape::Kind::kMerge
                   : d == pg_query::RangeVar::descriptor()   ? WalkShape::Kind::kRangeVar
                   : d == pg_query::FuncCall::descriptor()   ? WalkShape::Kind::kFuncCall
                   : d == pg_query::A_Expr::descriptor()     ? WalkShape::Kind::kAExpr
                   : d == pg_query::ColumnRef::descriptor()  ? WalkShape::Kind::kColumnRef
                   : d == pg_query::A_Indirection::descriptor() ? WalkShape::Kind::kIndirection
                   : d == pg_query::TypeCast::descriptor()   ? WalkShape::Kind::kTypeCast
                   : d == pg_query::SubLink::descriptor()    ? WalkShape::Kind::kSubLink
                   : d == pg_query::SortBy::descriptor()     ? WalkShape::Kind::kSortBy
                                                             : WalkShape::Kind::kOther;
      for (int k = 0; k < d->field_count(); ++k) {
        if (d->field(k)->cpp_type() == gpb::FieldDescriptor::CPPTYPE_MESSAGE) shape.message_fields.push_back(d->field(k));
      }
    }
    const gpb::OneofDescriptor* oneof = Node::descriptor()->FindOneofByName("node");
    for (int k = 0; oneof != nullptr && k < oneof->field_count(); ++k) {
      const gpb::FieldDescriptor* f = oneof->field(k);
      if (static_cast<size_t>(f->number()) >= node_members.size()) node_members.resize(static_cast<size_t>(f->number()) + 1);
      node_members[static_cast<size_t>(f->number())] = f;
    }
  }

  // nullptr for a type not declared at the top level of pg_query.proto (none today).
  const WalkShape* shape(const gpb::Descriptor* d) const {
    if (d->file() != file || d->containing_type() != nullptr) return nullptr;
    return &shapes[static_cast<size_t>(d->index())];
  }
  // The FieldDescriptor of the Node's set member, nullptr when unknown.
  const gpb::FieldDescriptor* node_member(const Node& n) const {
    const auto c = static_cast<size_t>(n.node_case());
    return c < node_members.size() ? node_members[c] : nullptr;
  }
};

const WalkTables& walk_tables() {
  static const WalkTables kTables;
  return kTables;
}

// Settings a tenant may SET / RESET: they change formatting or limits of its own session only.
// Not here, on purpose: search_path (would change name resolution), role and
// session_authorization, standard_conforming_strings / backslash_quote (would change how the
// server reads string literals), and anything server-wide.
bool settable(std::string_view name) {
  static const std::unordered_set<std::string_view> kNames = {
      "application_name", "client_encoding", "datestyle", "timezone", "extra_float_digits",
      "intervalstyle", "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
      "client_min_messages", "bytea_output", "transaction_isolation", "transaction_read_only",
      "transaction_deferrable", "default_transaction_isolation", "default_transaction_read_only",
      "default_transaction_deferrable", "work_mem", "jit", "enable_seqscan", "enable_indexscan",
      "enable_bitmapscan", "enable_hashjoin", "enable_mergejoin", "enable_nestloop",
      "random_page_cost", "synchronous_commit", "lc_messages", "lc_monetary", "lc_numeric",
      "lc_time", "geqo", "xmloption", "row_security",
  };
  return kNames.contains(name);
}

std::string quote_ident(std::string_view s) { return "\"" + std::string(s) + "\""; }

Node make_string(std::string_view s) {
  Node n;
  n.mutable_string()->set_sval(std::string(s));
  return n;
}

class Walker {
 public:
  Walker(const policy::Policy& policy, std::string_view tenant, RewriteTrace* trace)
      : policy_(policy), tenant_(tenant), trace_(trace) {}

  StatementKind statement(Node& stmt) {
    switch (stmt.node_case()) {
      case Node::kSelectStmt:
        select(*stmt.mutable_select_stmt());
        return StatementKind::kSelect;
      case Node::kInsertStmt:
        insert(*stmt.mutable_insert_stmt());
        return StatementKind::kInsert;
      case Node::kUpdateStmt:
        update(*stmt.mutable_update_stmt());
        return StatementKind::kUpdate;
      case Node::kDeleteStmt:
        del(*stmt.mutable_delete_stmt());
        return StatementKind::kDelete;
      case Node::kMergeStmt:
        merge(*stmt.mutable_merge_stmt());
        return StatementKind::kMerge;
      case Node::kTransactionStmt:
        transaction(stmt.transaction_stmt());
        return StatementKind::kTransaction;
      case Node::kVariableSetStmt:
        set(stmt.variable_set_stmt());
        return StatementKind::kSet;
      case Node::kVariableShowStmt:
        return StatementKind::kShow;
      case Node::kCopyStmt:
        return copy(*stmt.mutable_copy_stmt());
      case Node::kListenStmt:
        stmt.mutable_listen_stmt()->set_conditionname(channel(stmt.listen_stmt().conditionname()));
        return StatementKind::kListen;
      case Node::kUnlistenStmt:
        if (!stmt.unlisten_stmt().conditionname().empty()) {  // UNLISTEN * stays as it is
          stmt.mutable_unlisten_stmt()->set_conditionname(channel(stmt.unlisten_stmt().conditionname()));
        }
        return StatementKind::kListen;
      case Node::kNotifyStmt:
        stmt.mutable_notify_stmt()->set_conditionname(channel(stmt.notify_stmt().conditionname()));
        return StatementKind::kListen;
      case Node::kDeallocateStmt:  // drops the session's own prepared statements only
        deallocate(stmt.deallocate_stmt());
        return StatementKind::kOther;
      case Node::kPrepareStmt:
        prepare(*stmt.mutable_prepare_stmt());
        return StatementKind::kOther;
      case Node::kExecuteStmt:
        execute(*stmt.mutable_execute_stmt());
        return StatementKind::kOther;
      case Node::kDiscardStmt:
        discard(stmt.discard_stmt());
        return StatementKind::kOther;
      case Node::kExplainStmt:
        explain(*stmt.mutable_explain_stmt());
        return StatementKind::kExplain;
      case Node::kDeclareCursorStmt:
      case Node::kFetchStmt:
      case Node::kClosePortalStmt:
        return cursor(stmt);
      case Node::NODE_NOT_SET:
        deny("empty statement node");
      default:
        deny(statement_name(stmt) + " is not allowed for tenants (rule: only SELECT, INSERT, "
             "UPDATE, DELETE, transaction control, SET/SHOW of session settings, DEALLOCATE and "
             "EXPLAIN)");
    }
  }

 private:
  struct Pred {
    Node* holder = nullptr;                        // a FROM item: the Node holding the RangeVar
    const pg_query::RangeVar* target = nullptr;    // or a statement target (UPDATE/DELETE)
    const TableRule* rule = nullptr;
    const pg_query::RangeVar& range_var() const { return holder ? holder->range_var() : *target; }
  };

  // ---- statements -----------------------------------------------------------------------

  void select(pg_query::SelectStmt& s) {
    if (s.has_into_clause()) deny("SELECT ... INTO creates a table (rule: no DDL for tenants)");
    size_t scope = ctes_.size();
    size_t relations = relations_.size();
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
      if (!preds.empty()) {
      const bool had = s.has_where_clause();  // before mutable_ creates the field
      add_to_where(s.mutable_where_clause(), had, preds);
    }
    } else if (s.op() != pg_query::SETOP_UNION && s.op() != pg_query::SETOP_INTERSECT &&
               s.op() != pg_query::SETOP_EXCEPT) {
      deny("unknown set operation");
    }
    visit_children(s, {"with_clause"});
    ctes_.resize(scope);
    relations_.resize(relations);
  }

  void insert(pg_query::InsertStmt& s) {
    size_t scope = ctes_.size();
    size_t relations = relations_.size();
    if (s.has_with_clause()) with(*s.mutable_with_clause());
    const TableRule& rule = write_target(*s.mutable_relation(), "INSERT INTO");
    const std::string table = rule.table.to_string();
    if (!s.has_select_stmt()) {
      deny("INSERT INTO " + quote_ident(table) + " DEFAULT VALUES cannot set the tenant column " +
           quote_ident(rule.column));
    }
    if (s.cols_size() == 0) {
      deny("INSERT INTO " + quote_ident(table) +
           " needs a column list, so that rowguard can check the tenant column " +
           quote_ident(rule.column));
    }
    const int index = tenant_column_index(s.cols(), rule, "INSERT INTO");
    if (!s.select_stmt().has_select_stmt()) deny("malformed INSERT source");
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
    if (s.has_on_conflict_clause()) relations_.push_back({"excluded", relations_.back().info});
    if (s.has_on_conflict_clause()) on_conflict(*s.mutable_on_conflict_clause(), *s.mutable_relation(), rule);
    visit_children(s, {"with_clause"});
    check_keys("INSERT INTO", true, given_columns(s.cols(), values_rows(s.select_stmt().select_stmt())), rule);
    ctes_.resize(scope);
    relations_.resize(relations);
  }

  // ON CONFLICT DO NOTHING needs nothing more once its arbiters are checked. DO UPDATE may only touch the tenant's own row:
  // the conflicting row is filtered by the tenant predicate in the DO UPDATE WHERE clause
  // (otherwise an id collision would update another tenant's row), and cannot move it.
  void on_conflict(pg_query::OnConflictClause& oc, const pg_query::RangeVar& target, const TableRule& rule) {
    if (oc.action() != pg_query::ONCONFLICT_NOTHING && oc.action() != pg_query::ONCONFLICT_UPDATE) {
      deny("unknown ON CONFLICT action");
    }
    check_no_tenant_assignment(oc.target_list(), rule, "INSERT ... ON CONFLICT DO UPDATE");
    // Every arbiter index must include the tenant column (sqlrewrite/on_conflict_check.h).
    if (auto why = check_on_conflict(oc, rule, policy_.schema.get())) deny(std::move(*why));
    check_keys("INSERT ... ON CONFLICT DO UPDATE", false, given_columns(oc.target_list(), {}), rule);
    if (oc.action() == pg_query::ONCONFLICT_NOTHING) return;
    std::vector<Pred> preds{relation_pred(target, rule)};
    if (oc.has_where_clause()) guard_.guard_where(*oc.mutable_where_clause(), {guard_.relation(target, rule, false)});
    if (!preds.empty()) {
      const bool had = oc.has_where_clause();  // before mutable_ creates the field
      add_to_where(oc.mutable_where_clause(), had, preds);
    }
  }

  // MERGE: the target is filtered in the join condition (another tenant's row never matches),
  // every tenant table of the source becomes a filtered subquery (so no other tenant's row can
  // be copied in), inserted rows are checked like INSERT, updates cannot move a row.
  void merge(pg_query::MergeStmt& s) {
    size_t scope = ctes_.size();
    size_t relations = relations_.size();
    if (s.has_with_clause()) with(*s.mutable_with_clause());
    const TableRule& rule = write_target(*s.mutable_relation(), "MERGE INTO");
    std::vector<Pred> source = from_item(*s.mutable_source_relation(), "USING of MERGE");
    for (auto& p : source) wrap(p);
    std::vector<Pred> target{relation_pred(s.relation(), rule)};
    if (s.has_join_condition()) guard_.guard_where(*s.mutable_join_condition(), {guard_.relation(s.relation(), rule, false)});
    if (!target.empty()) {
      const bool had = s.has_join_condition();  // before mutable_ creates the field
      add_to_where(s.mutable_join_condition(), had, target);
    }
    for (auto& w : *s.mutable_merge_when_clauses()) {
      if (!w.has_merge_when_clause()) deny("malformed MERGE");
      auto& clause = *w.mutable_merge_when_clause();
      switch (clause.command_type()) {
        case pg_query::CMD_UPDATE:
          check_no_tenant_assignment(clause.target_list(), rule, "MERGE ... UPDATE");
          check_keys("MERGE ... UPDATE", false, given_columns(clause.target_list(), {}), rule);
          break;
        case pg_query::CMD_INSERT: {
          if (clause.target_list_size() == 0) {
            deny("MERGE ... INSERT into " + quote_ident(rule.table.to_string()) +
                 " needs a column list, so that rowguard can check the tenant column " +
                 quote_ident(rule.column));
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
          deny("unknown MERGE action");
      }
    }
    visit_children(s, {"with_clause"});
    ctes_.resize(scope);
    relations_.resize(relations);
  }

  // A write that could collide with another tenant's row on a key without the tenant column
  // is refused (sqlrewrite/key_check.h), and so is one that could reference another tenant's row
  // through a foreign key without the tenant column (sqlrewrite/fk_check.h).
  void check_keys(std::string_view verb, bool new_rows, std::vector<std::string> columns, const TableRule& rule) {
    const KeyWrite write{verb, new_rows, std::move(columns)};
    if (auto why = check_key_write(write, rule, policy_.schema.get())) deny(std::move(*why));
    if (auto why = check_fk_write(write, rule, policy_)) deny(std::move(*why));
    if (!new_rows) check_referential(verb, false, write.columns, rule);
  }

  // A referential action of a foreign key referencing the table must not carry the write into
  // another table (sqlrewrite/referential_check.h).
  void check_referential(std::string_view verb, bool deletes, const std::vector<std::string>& columns,
                         const TableRule& rule) {
    if (auto why = check_referential_action(verb, deletes, columns, rule, policy_.schema.get())) deny(std::move(*why));
  }

  // The VALUES rows of an INSERT source (none for INSERT ... SELECT: every column is given).
  static std::vector<const gpb::RepeatedPtrField<Node>*> values_rows(const pg_query::SelectStmt& src) {
    std::vector<const gpb::RepeatedPtrField<Node>*> rows;
    if (src.values_lists_size() == 0 || src.op() != pg_query::SETOP_NONE || src.has_with_clause()) return rows;
    for (const auto& row : src.values_lists()) {
      if (!row.has_list()) return {};
      rows.push_back(&row.list().items());
    }
    return rows;
  }

  // Position of the tenant column in an INSERT column list, -1 when absent.
  int tenant_column_index(const gpb::RepeatedPtrField<Node>& cols, const TableRule& rule,
                          std::string_view verb) {
    int index = -1;
    for (int i = 0; i < cols.size(); ++i) {
      if (!cols[i].has_res_target()) deny("malformed column list");
      const auto& col = cols[i].res_target();
      if (col.name() == rule.column) {
        if (col.indirection_size() > 0 || index >= 0) {
          deny(std::string(verb) + " " + quote_ident(rule.table.to_string()) +
               " assigns the tenant column in an unsupported way");
        }
        index = i;
      }
    }
    return index;
  }

  // SET tenant_col = ... : allowed only to the session tenant itself (a no-op on rows that are
  // already filtered to the tenant; ORMs such as Django write every column on save), as a
  // literal or as a parameter checked at Bind. Anything else could move a row to another tenant.
  void check_no_tenant_assignment(const gpb::RepeatedPtrField<Node>& targets, const TableRule& rule,
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
  static bool expands(const Node& n) {
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

  static bool any_expands(const gpb::RepeatedPtrField<Node>& items, int upto) {
    for (int i = 0; i < items.size() && i <= upto; ++i) {
      if (expands(items[i])) return true;
    }
    return false;
  }

  // One VALUES row: the tenant column's value must be the tenant (a literal, or a parameter
  // checked at Bind); when the column list lacks it, the tenant literal is appended.
  void check_or_fill_row(gpb::RepeatedPtrField<Node>& items, int index, const TableRule& rule,
                         std::string_view verb) {
    if (index < 0) {
      *items.Add() = tenant_literal();
      return;
    }
    if (any_expands(items, index)) {
      deny(std::string(verb) + " " + quote_ident(rule.table.to_string()) +
           ": a * expansion before the tenant column makes its position unknowable");
    }
    if (index >= items.size() || !accept_tenant_value(items[index])) {
      deny(std::string(verb) + " " + quote_ident(rule.table.to_string()) + " sets " +
           quote_ident(rule.column) + " to a value other than the session tenant '" + tenant_ +
           "' (rule: tables.\"" + rule.table.to_string() + "\".column)");
    }
  }

  // The tenant literal, or a parameter whose value is checked at Bind.
  bool accept_tenant_value(const Node& value) {
    if (int param = tenant_param(value); param > 0) {
      tenant_params_.push_back(param);
      return true;
    }
    return is_tenant_literal(value);
  }

  void update(pg_query::UpdateStmt& s) {
    size_t scope = ctes_.size();
    size_t relations = relations_.size();
    if (s.has_with_clause()) with(*s.mutable_with_clause());
    const TableRule& rule = write_target(*s.mutable_relation(), "UPDATE");
    check_no_tenant_assignment(s.target_list(), rule, "UPDATE");
    std::vector<Pred> preds;
    preds.push_back(relation_pred(*s.mutable_relation(), rule));
    for (auto& item : *s.mutable_from_clause()) append(preds, from_item(item, "FROM of UPDATE"));
    std::vector<GuardRelation> rels{guard_.relation(s.relation(), rule, false)};
    for (const auto& item : s.from_clause()) guard_.collect(item, false, rels);
    if (s.has_where_clause()) guard_.guard_where(*s.mutable_where_clause(), rels);
    if (!preds.empty()) {
      const bool had = s.has_where_clause();  // before mutable_ creates the field
      add_to_where(s.mutable_where_clause(), had, preds);
    }
    visit_children(s, {"with_clause"});
    check_keys("UPDATE", false, given_columns(s.target_list(), {}), rule);
    ctes_.resize(scope);
    relations_.resize(relations);
  }

  void del(pg_query::DeleteStmt& s) {
    size_t scope = ctes_.size();
    size_t relations = relations_.size();
    if (s.has_with_clause()) with(*s.mutable_with_clause());
    const TableRule& rule = write_target(*s.mutable_relation(), "DELETE FROM");
    std::vector<Pred> preds;
    preds.push_back(relation_pred(*s.mutable_relation(), rule));
    for (auto& item : *s.mutable_using_clause()) append(preds, from_item(item, "USING of DELETE"));
    std::vector<GuardRelation> rels{guard_.relation(s.relation(), rule, false)};
    for (const auto& item : s.using_clause()) guard_.collect(item, false, rels);
    if (s.has_where_clause()) guard_.guard_where(*s.mutable_where_clause(), rels);
    if (!preds.empty()) {
      const bool had = s.has_where_clause();  // before mutable_ creates the field
      add_to_where(s.mutable_where_clause(), had, preds);
    }
    visit_children(s, {"with_clause"});
    check_referential("DELETE FROM", true, {}, rule);
    ctes_.resize(scope);
    relations_.resize(relations);
  }

  void transaction(const pg_query::TransactionStmt& s) {
    switch (s.kind()) {
      case pg_query::TRANS_STMT_BEGIN:
      case pg_query::TRANS_STMT_START:
      case pg_query::TRANS_STMT_COMMIT:
      case pg_query::TRANS_STMT_ROLLBACK:
      case pg_query::TRANS_STMT_SAVEPOINT:
      case pg_query::TRANS_STMT_RELEASE:
      case pg_query::TRANS_STMT_ROLLBACK_TO:
        return;
      default:
        deny("two-phase commit (PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED) is "
             "not allowed for tenants");
    }
  }

  void set(const pg_query::VariableSetStmt& s) {
    switch (s.kind()) {
      case pg_query::VAR_SET_MULTI:
        if (s.name() == "TRANSACTION" || s.name() == "SESSION CHARACTERISTICS") return;
        deny("SET " + s.name() + " is not allowed for tenants");
      case pg_query::VAR_RESET_ALL:
        deny("RESET ALL is not allowed for tenants (reset settings one by one)");
      case pg_query::VAR_SET_VALUE:
      case pg_query::VAR_SET_DEFAULT:
      case pg_query::VAR_SET_CURRENT:
      case pg_query::VAR_RESET:
        break;
      default:
        deny("unknown SET form");
    }
    if (!settable(s.name())) {
      deny("SET " + s.name() + " is not allowed for tenants (rule: only session settings that "
           "cannot change name resolution, identity or string parsing)");
    }
    if (s.kind() == pg_query::VAR_SET_VALUE && policy_.setting_limits.find(s.name()) != nullptr) {
      read_constant();  // settings_check.h: the outcome depends on the value
      if (auto why = setting_ceiling_violation(s, policy_.setting_limits)) deny(*why);
    }
    if (s.name() == "client_encoding" && s.kind() == pg_query::VAR_SET_VALUE) {
      read_constant();
      for (const auto& a : s.args()) {
        if (!a.has_a_const() || !a.a_const().has_sval() ||
            !safe_client_encoding(a.a_const().sval().sval())) {
          deny("client_encoding must be an ASCII-safe encoding such as UTF8");
        }
      }
    }
  }

  // EXPLAIN's numbers come from the whole table: ANALYZE counts other tenants' rows (Rows Removed
  // by Filter), and the planner's row estimates and costs come from statistics over every
  // tenant's rows (pg_statistic's most common values and histograms). Tenants get the plan with
  // COSTS OFF only; every other option than VERBOSE / FORMAT / SETTINGS is refused.
  void explain(pg_query::ExplainStmt& s) {
    if (policy_.explain == policy::Policy::Explain::kRefuse) {
      deny("EXPLAIN shows the plan the planner chose from statistics over every tenant's rows (which "
           "index, which join order tell how common a value is among other tenants); the policy allows "
           "it with [tenancy] explain = \"costs_off\" (rule: explain)");
    }
    bool costs_off = false;
    for (const auto& o : s.options()) {
      if (!o.has_def_elem()) {
        deny("EXPLAIN option not understood");
        return;
      }
      const auto& d = o.def_elem();
      if (d.defname() == "analyze") {
        deny("EXPLAIN ANALYZE shows other tenants' row counts (Rows Removed by Filter); "
             "use EXPLAIN without ANALYZE (rule: no EXPLAIN ANALYZE for tenants)");
        return;
      }
      if (d.defname() == "costs") {
        costs_off = explain_option_false(d);  // PostgreSQL takes the last one
      } else if (d.defname() != "verbose" && d.defname() != "format" && d.defname() != "settings") {
        deny("EXPLAIN option " + d.defname() + " is not allowed for tenants (allowed: COSTS OFF, VERBOSE, "
             "FORMAT, SETTINGS; rule: explain_costs_off)");
        return;
      }
    }
    if (!costs_off) {
      deny("EXPLAIN shows row estimates and costs computed from every tenant's rows; use EXPLAIN (COSTS OFF) "
           "(rule: explain_costs_off)");
      return;
    }
    Node& q = *s.mutable_query();
    switch (q.node_case()) {
      case Node::kSelectStmt:
      case Node::kInsertStmt:
      case Node::kUpdateStmt:
      case Node::kDeleteStmt:
      case Node::kMergeStmt:
      case Node::kDeclareCursorStmt:
        statement(q);
        cursor_op_.reset();  // EXPLAIN DECLARE declares nothing
        return;
      case Node::kExecuteStmt:
        execute(*q.mutable_execute_stmt());
        return;
      default:
        deny("EXPLAIN of " + statement_name(q) + " is not allowed for tenants");
    }
  }

  // ---- cursors ---------------------------------------------------------------------------
  //
  // DECLARE name [BINARY] [INSENSITIVE] [[NO] SCROLL] CURSOR [WITH HOLD] FOR <query>: the query
  // is a SELECT (PostgreSQL's grammar allows nothing else) and is filtered like any other, at
  // every depth; the cursor options only change how rows are fetched, not which. FETCH / MOVE
  // (a direction, a count and a cursor name) and CLOSE name | ALL carry no expression and no
  // table: they can only reach portals of this session (rowguard gives every client its own
  // server connection), and every portal of a tenant session was made from a checked statement
  // (a DECLARE rewritten here, or a Bind of a rewritten Parse). WHERE CURRENT OF stays denied
  // (CurrentOfExpr is not in pass_through_types()).
  StatementKind cursor(Node& stmt) {
    if (stmt.has_declare_cursor_stmt()) {
      Node& q = *stmt.mutable_declare_cursor_stmt()->mutable_query();
      if (!q.has_select_stmt()) deny("DECLARE CURSOR of " + statement_name(q) + " is not allowed for tenants");
      select(*q.mutable_select_stmt());
    }
    CursorOp op;  // the session records which policy each cursor was declared under
    if (stmt.has_declare_cursor_stmt()) {
      constexpr int kCursorOptHold = 0x0020;  // CURSOR_OPT_HOLD, parsenodes.h
      op.kind = CursorOp::Kind::kDeclare;
      op.name = stmt.declare_cursor_stmt().portalname();
      op.hold = (stmt.declare_cursor_stmt().options() & kCursorOptHold) != 0;
      op.command_tag = "DECLARE CURSOR";
    } else if (stmt.has_fetch_stmt()) {
      op.kind = CursorOp::Kind::kFetch;
      op.name = stmt.fetch_stmt().portalname();
    } else if (stmt.close_portal_stmt().portalname().empty()) {
      op.kind = CursorOp::Kind::kCloseAll;
      op.command_tag = "CLOSE CURSOR ALL";
    } else {
      op.kind = CursorOp::Kind::kClose;
      op.name = stmt.close_portal_stmt().portalname();
      op.command_tag = "CLOSE CURSOR";
    }
    cursor_op_ = std::move(op);
    return StatementKind::kOther;
  }

  // ---- COPY ------------------------------------------------------------------------------

  StatementKind copy(pg_query::CopyStmt& s) {
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
        if (!col.has_string()) deny("malformed COPY column list");
        *sel.add_target_list()->mutable_res_target()->mutable_val()->mutable_column_ref()->add_fields() = col;
      }
      *sel.add_from_clause()->mutable_range_var() = s.relation();
      s.clear_relation();
      s.clear_attlist();
      *s.mutable_query() = std::move(q);
    }
    check_copy_options(s, false);
    if (!s.has_query()) deny("malformed COPY");
    visit(*s.mutable_query());
    return StatementKind::kCopyOut;
  }

  StatementKind copy_in(pg_query::CopyStmt& s) {
    if (!s.has_relation()) deny("malformed COPY FROM");
    const TableRule& rule = write_target(*s.mutable_relation(), "COPY");
    if (s.attlist_size() == 0) {
      deny("COPY " + quote_ident(rule.table.to_string()) + " FROM STDIN needs a column list, so that "
           "rowguard can check the tenant column " + quote_ident(rule.column));
    }
    CopyInPlan plan = check_copy_options(s, true);
    plan.columns = s.attlist_size();
    for (int i = 0; i < s.attlist_size(); ++i) {
      if (!s.attlist(i).has_string()) deny("malformed COPY column list");
      if (s.attlist(i).string().sval() == rule.column) plan.tenant_index = i;
    }
    plan.tenant_column = rule.column;
    plan.table = rule.table.to_string();
    std::vector<std::string> copied;
    for (const auto& a : s.attlist()) copied.push_back(a.string().sval());
    check_keys("COPY", true, std::move(copied), rule);
    if (plan.null_string == compared_tenant()) {
      deny("COPY " + quote_ident(plan.table) + " FROM STDIN with NULL equal to the tenant value "
           "would store the tenant column as NULL");
    }
    if (plan.tenant_index < 0) *s.add_attlist() = make_string(rule.column);
    copy_plan_ = plan;
    visit_children(s, {"relation", "options"});  // the WHERE clause, if any
    return StatementKind::kCopyIn;
  }

  // COPY options: FORMAT text/csv (binary rows cannot be checked: refused for COPY FROM),
  // DELIMITER, NULL, HEADER, QUOTE, ESCAPE, FORCE_* ; ENCODING would change how the bytes are
  // read: refused.
  CopyInPlan check_copy_options(const pg_query::CopyStmt& s, bool from) {
    CopyInPlan plan;
    bool escape_set = false;
    for (const auto& o : s.options()) {
      if (!o.has_def_elem()) deny("malformed COPY options");
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
        else deny("unsupported value for COPY option " + name);
      }
      auto one_byte = [&](char& out) {
        if (value.size() != 1) deny("COPY option " + name + " must be a single one-byte character");
        out = value[0];
      };
      if (name == "format") {
        if (value == "csv") {
          plan.csv = true;
        } else if (value == "binary") {
          if (from) deny("COPY FROM STDIN in binary format cannot be checked row by row; use text or csv");
        } else if (value != "text") {
          deny("unknown COPY format " + value);
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
        deny("COPY option " + name + " is not allowed for tenants");
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
        deny("unsupported COPY delimiter");
      }
    }
    return plan;
  }

  // LISTEN/NOTIFY channels are private to a tenant: "jobs" of tenant 1 is "rg1_1_jobs" upstream
  // (the length prefix keeps tenants "1" + channel "2_x" and tenant "1_2" + channel "x" apart).
  std::string channel(const std::string& name) const {
    const std::string& tenant = compared_tenant();
    std::string c = "rg" + std::to_string(tenant.size()) + "_" + tenant + "_" + name;
    if (c.size() > 63) deny("channel name " + quote_ident(name) + " is too long for a tenant channel");
    return c;
  }

  // ---- SQL-level prepared statements ----------------------------------------------------
  // The session keeps the map of prepared statements (one namespace with the protocol's Parse)
  // and checks EXECUTE arguments against it; the rewriter describes each statement.

  // PREPARE name [(types)] AS <statement>: the statement is rewritten and checked exactly like
  // the text of a Parse message; its $n that feed a tenant column are checked at EXECUTE / Bind.
  void prepare(pg_query::PrepareStmt& s) {
    Node& q = *s.mutable_query();
    switch (q.node_case()) {
      case Node::kSelectStmt:
      case Node::kInsertStmt:
      case Node::kUpdateStmt:
      case Node::kDeleteStmt:
      case Node::kMergeStmt:
        break;
      default:
        deny("PREPARE of " + statement_name(q) + " is not allowed for tenants");
    }
    std::vector<int> outer = std::move(tenant_params_);
    tenant_params_.clear();
    statement(q);
    PreparedStatementOp op;
    op.kind = PreparedStatementOp::Kind::kPrepare;
    op.name = s.name();
    op.command_tag = "PREPARE";
    op.tenant_params = std::move(tenant_params_);
    tenant_params_ = std::move(outer);
    for (const auto& t : s.argtypes()) {
      if (!t.has_type_name()) deny("malformed PREPARE parameter types");
      if (auto why = check_parameter_type(t.type_name())) deny(*why);
      op.param_types.push_back(param_type_oid(t.type_name()));
    }
    for (int p : op.tenant_params) {
      // A declared type converts the value before it reaches the tenant column (a boolean '1'
      // is stored as 'true'): only types whose text form is the value rowguard checks.
      const auto i = static_cast<size_t>(p - 1);
      if (i < op.param_types.size() && op.param_types[i] == 0) {
        deny("PREPARE " + quote_ident(op.name) + ": parameter $" + std::to_string(p) +
             " feeds the tenant column but is declared with a type rowguard cannot check "
             "(declare it as int2/int4/int8/text/varchar/uuid, or leave it undeclared)");
      }
    }
    visit_children(s, {"query"});  // the type names
    prepared_op_ = std::move(op);
  }

  // The OID of a declared parameter type rowguard can check (as a Bind value), else 0.
  static int32_t param_type_oid(const pg_query::TypeName& t) {
    if (t.setof() || t.pct_type() || t.array_bounds_size() > 0) return 0;
    const auto& n = t.names();
    if (n.empty() || n.size() > 2) return 0;
    for (const auto& part : n) {
      if (!part.has_string()) return 0;
    }
    if (n.size() == 2 && n[0].string().sval() != "pg_catalog") return 0;
    const std::string& base = n[n.size() - 1].string().sval();
    if (base == "int2") return 21;
    if (base == "int4") return 23;
    if (base == "int8") return 20;
    if (base == "text") return 25;
    if (base == "varchar") return 1043;
    if (base == "bpchar") return 1042;
    if (base == "uuid") return 2950;
    return 0;
  }

  // EXECUTE name [(args)]: the arguments are expressions like any other (walked: subqueries
  // filtered, functions checked); the session compares the constant ones with the tenant.
  void execute(pg_query::ExecuteStmt& s) {
    PreparedStatementOp op;
    op.kind = PreparedStatementOp::Kind::kExecute;
    op.name = s.name();
    if (s.params_size() > 0) read_constant();
    for (const auto& a : s.params()) op.args.push_back(constant_value(a));
    for (auto& a : *s.mutable_params()) visit(a);
    prepared_op_ = std::move(op);
  }

  // A string or integer literal, optionally cast to text or varchar (which keep its text), as
  // the text a Bind would carry; nullopt for anything else.
  static std::optional<std::string> constant_value(const Node& n) {
    if (n.has_type_cast() && n.type_cast().has_arg() && n.type_cast().has_type_name()) {
      const auto& t = n.type_cast().type_name();
      const int32_t oid = param_type_oid(t);
      if ((oid != 25 && oid != 1043) || t.typmods_size() > 0) return std::nullopt;
      const Node& arg = n.type_cast().arg();
      return arg.has_a_const() ? constant_value(arg) : std::nullopt;
    }
    if (!n.has_a_const() || n.a_const().isnull()) return std::nullopt;
    const auto& c = n.a_const();
    if (c.has_sval()) return c.sval().sval();
    if (c.has_ival()) return std::to_string(c.ival().ival());
    return std::nullopt;
  }

  void deallocate(const pg_query::DeallocateStmt& s) {
    PreparedStatementOp op;
    op.kind = s.name().empty() ? PreparedStatementOp::Kind::kDeallocateAll
                               : PreparedStatementOp::Kind::kDeallocate;
    op.name = s.name();
    op.command_tag = s.name().empty() ? "DEALLOCATE ALL" : "DEALLOCATE";
    prepared_op_ = std::move(op);
  }

  // DISCARD ALL also resets settings to their values at session start (rowguard's pinned
  // search_path is a startup parameter, so it stays), unlistens and closes cursors: nothing that
  // widens what the tenant sees. PLANS / SEQUENCES / TEMP are harmless.
  void discard(const pg_query::DiscardStmt& s) {
    switch (s.target()) {
      case pg_query::DISCARD_ALL: {
        PreparedStatementOp op;
        op.kind = PreparedStatementOp::Kind::kDeallocateAll;
        op.command_tag = "DISCARD ALL";
        prepared_op_ = std::move(op);
        return;
      }
      case pg_query::DISCARD_PLANS:
      case pg_query::DISCARD_SEQUENCES:
      case pg_query::DISCARD_TEMP:
        return;
      default:
        deny("unknown DISCARD form");
    }
  }

  // ---- WITH: CTE names shadow unqualified table names, with PostgreSQL's scoping ---------

  void with(pg_query::WithClause& w) {
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
  static void fence_cte(pg_query::CommonTableExpr& cte) {
    if (cte.ctequery().has_select_stmt()) cte.set_ctematerialized(pg_query::CTEMaterializeAlways);
  }

  static const pg_query::CommonTableExpr& cte_of(const Node& n) {
    if (!n.has_common_table_expr()) deny("malformed WITH clause");
    return n.common_table_expr();
  }

  bool cte_visible(const std::string& name) const {
    return std::find(ctes_.begin(), ctes_.end(), name) != ctes_.end();
  }

  // ---- table references ------------------------------------------------------------------

  QualifiedName resolve(pg_query::RangeVar& rv, std::string_view part) {
    if (!rv.catalogname().empty()) {
      deny("cross-database reference " + quote_ident(rv.catalogname()) + " in " + std::string(part));
    }
    if (!rv.schemaname().empty()) return QualifiedName{rv.schemaname(), rv.relname()};
    // Unqualified names resolve as PostgreSQL does with rowguard's pinned search_path: pg_catalog
    // first (it is always searched first), then "public".
    return QualifiedName{policy::is_pg_catalog_relation(rv.relname()) ? "pg_catalog" : "public",
                         rv.relname()};
  }

  const TableRule& known_table(const QualifiedName& q, std::string_view part) {
    const TableRule* rule = policy_.table(q);
    if (rule == nullptr) {
      deny("table " + quote_ident(q.to_string()) + " is not in the policy (" + std::string(part) +
           "; rule: unknown_tables = \"deny\")");
    }
    return *rule;
  }

  // A table read in FROM / USING / a join tree. Returns a predicate to place, if any.
  std::vector<Pred> read_table(Node& holder, std::string_view part) {
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

  static bool is_catalog_schema(std::string_view schema) {
    return schema == "pg_catalog" || schema == "information_schema";
  }

  // A system catalog: readable, served through a sanitized substitute, or denied.
  void read_catalog(Node& holder, const QualifiedName& q, std::string_view part) {
    const policy::CatalogRule* rule = policy::catalog_rule(q.schema, q.name);
    if (rule == nullptr) {
      deny("catalog " + quote_ident(q.to_string()) + " is not in rowguard's catalog allowlist (" +
           std::string(part) + ")");
    }
    if (rule->kind == policy::CatalogRule::Kind::kDenied) {
      deny("catalog " + quote_ident(q.to_string()) + " is denied: " + std::string(rule->why) +
           " (" + std::string(part) + ")");
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
      deny("internal error: bad catalog substitute for " + q.to_string());
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

  const TableRule& write_target(pg_query::RangeVar& rv, std::string_view verb) {
    QualifiedName q = resolve(rv, std::string(verb) + " target");
    if (is_catalog_schema(q.schema)) {
      deny(std::string(verb) + " " + quote_ident(q.to_string()) + ": tenants cannot write to system catalogs");
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

  std::vector<Pred> from_item(Node& item, std::string_view part) {
    switch (item.node_case()) {
      case Node::kRangeVar:
        return read_table(item, part);
      case Node::kJoinExpr:
        return join(*item.mutable_join_expr(), part);
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
  std::vector<Pred> join(pg_query::JoinExpr& j, std::string_view part) {
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
        deny("unsupported join type in " + std::string(part));
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

  void fence_tables(Node& item) {
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

  void place_in_join(pg_query::JoinExpr& j, std::vector<Pred>& preds) {
    if (preds.empty()) return;
    if (j.has_quals() && !j.is_natural() && j.using_clause_size() == 0) {
      add_to_where(j.mutable_quals(), true, preds);
    } else {
      for (auto& p : preds) wrap(p);
    }
  }

  // table [AS alias]  ->  (SELECT * FROM schema.table) AS alias; the subquery is walked later
  // like any other, which adds the tenant predicate inside it.
  void wrap(Pred& p) {
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

  static Pred relation_pred(const pg_query::RangeVar& rv, const TableRule& rule) {
    return Pred{nullptr, &rv, &rule};
  }

  Node make_pred(const pg_query::RangeVar& rv, const TableRule& rule) {
    Node n;
    auto& e = *n.mutable_a_expr();
    e.set_kind(pg_query::AEXPR_OP);
    *e.add_name() = make_string("=");
    auto& col = *e.mutable_lexpr()->mutable_column_ref();
    *col.add_fields() = make_string(rv.has_alias() ? rv.alias().aliasname() : rv.relname());
    *col.add_fields() = make_string(rule.column);
    *e.mutable_rexpr() = tenant_literal();
    return n;
  }

  Node tenant_literal() const {
    if (trace_ != nullptr) ++trace_->tenant_literals;
    Node n;
    n.mutable_a_const()->mutable_sval()->set_sval(tenant_);
    return n;
  }

  bool is_tenant_literal(const Node& n) const {
    if (!n.has_a_const() || n.a_const().isnull()) return false;
    const auto& c = n.a_const();
    if (c.has_sval()) return c.sval().sval() == compared_tenant();
    if (c.has_ival()) return std::to_string(c.ival().ival()) == compared_tenant();
    return false;
  }

  // $n or $n::type: the value arrives at Bind and is checked there.
  static int tenant_param(const Node& n) {
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

  // Call only with preds non-empty: `where` was made to exist by mutable_*().
  void add_to_where(Node* where, bool has_where, std::vector<Pred>& preds) {
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

  static void append(std::vector<Pred>& to, std::vector<Pred> more) {
    to.insert(to.end(), more.begin(), more.end());
  }

  // ---- the generic walk ------------------------------------------------------------------

  void visit(gpb::Message& m) { visit(m, m.GetDescriptor()); }

  // d is m's type (known from the field that holds m: no per-node descriptor lookup).
  void visit(gpb::Message& m, const gpb::Descriptor* d) {
    const WalkShape* shape = walk_tables().shape(d);
    if (shape == nullptr) deny("malformed parse tree");
    switch (shape->kind) {
      case WalkShape::Kind::kNode: {
        auto& n = static_cast<Node&>(m);
        if (n.node_case() == Node::NODE_NOT_SET) return;  // NIL marker (e.g. plain DISTINCT)
        const gpb::FieldDescriptor* f = walk_tables().node_member(n);
        if (f == nullptr || f->cpp_type() != gpb::FieldDescriptor::CPPTYPE_MESSAGE) {
          deny("malformed parse tree");
        }
        visit(*shape->reflection->MutableMessage(&m, f), f->message_type());
        return;
      }
      case WalkShape::Kind::kSelect: return select(static_cast<pg_query::SelectStmt&>(m));
      case WalkShape::Kind::kInsert: return insert(static_cast<pg_query::InsertStmt&>(m));
      case WalkShape::Kind::kUpdate: return update(static_cast<pg_query::UpdateStmt&>(m));
      case WalkShape::Kind::kDelete: return del(static_cast<pg_query::DeleteStmt&>(m));
      case WalkShape::Kind::kMerge: return merge(static_cast<pg_query::MergeStmt&>(m));
      case WalkShape::Kind::kRangeVar: {
        const auto& rv = static_cast<const pg_query::RangeVar&>(m);
        if (!handled_.contains(&rv)) {
          deny("table reference " + quote_ident(rv.relname()) + " in an unsupported position");
        }
        return;
      }
      case WalkShape::Kind::kFuncCall:
        check_function(static_cast<pg_query::FuncCall&>(m));
        break;
      case WalkShape::Kind::kAExpr:
        check_operator(static_cast<const pg_query::A_Expr&>(m));
        break;
      case WalkShape::Kind::kColumnRef:
        check_column_ref(static_cast<const pg_query::ColumnRef&>(m));
        break;
      case WalkShape::Kind::kIndirection:
        check_indirection(static_cast<const pg_query::A_Indirection&>(m));
        break;
      case WalkShape::Kind::kTypeCast:
        if (auto why = check_cast(static_cast<const pg_query::TypeCast&>(m))) deny(*why);
        break;
      case WalkShape::Kind::kSubLink: {
        const auto& link = static_cast<const pg_query::SubLink&>(m);
        if (link.oper_name_size() > 0) {
          if (auto why = check_operator_name(link.oper_name())) deny(*why);
        }
        break;
      }
      case WalkShape::Kind::kSortBy: {
        const auto& by = static_cast<const pg_query::SortBy&>(m);
        if (by.use_op_size() > 0) {
          if (auto why = check_operator_name(by.use_op())) deny(*why);
        }
        break;
      }
      case WalkShape::Kind::kOther:
        if (!shape->pass_through) {
          deny("unsupported SQL construct " + d->name() +
               " (rule: rowguard denies what it cannot check)");
        }
        break;
    }
    visit_fields(m, *shape, {});
  }

  void visit_children(gpb::Message& m, std::initializer_list<std::string_view> skip) {
    const WalkShape* shape = walk_tables().shape(m.GetDescriptor());
    if (shape == nullptr) deny("malformed parse tree");
    visit_fields(m, *shape, skip);
  }

  // Visits every message-typed field of m (the shape of m's type), except those named in skip.
  void visit_fields(gpb::Message& m, const WalkShape& shape, std::initializer_list<std::string_view> skip) {
    const gpb::Reflection* r = shape.reflection;
    for (const gpb::FieldDescriptor* f : shape.message_fields) {
      if (skip.size() != 0 && std::find(skip.begin(), skip.end(), f->name()) != skip.end()) continue;
      if (f->is_repeated()) {
        int n = r->FieldSize(m, f);
        for (int k = 0; k < n; ++k) visit(*r->MutableRepeatedMessage(&m, f, k), f->message_type());
      } else if (r->HasField(m, f)) {
        visit(*r->MutableMessage(&m, f), f->message_type());
      }
    }
  }

  void check_function(pg_query::FuncCall& f) {
    std::vector<std::string> parts;
    for (const auto& n : f.funcname()) {
      if (!n.has_string()) deny("malformed function name");
      parts.push_back(n.string().sval());
    }
    std::string shown;
    for (const auto& p : parts) shown += (shown.empty() ? "" : ".") + p;
    const std::string& base = parts.empty() ? shown : parts.back();
    if (base == "pg_notify" && (parts.size() == 1 || parts[0] == "pg_catalog")) {
      read_constant();
      // pg_notify('channel', payload): the channel is made tenant-private like NOTIFY's.
      if (f.args_size() != 2 || !f.args(0).has_a_const() || !f.args(0).a_const().has_sval()) {
        deny("pg_notify needs a literal channel name (rule: channels are private to a tenant)");
      }
      auto& sval = *f.mutable_args(0)->mutable_a_const()->mutable_sval();
      sval.set_sval(channel(sval.sval()));
      return;
    }
    if (is_sequence_function(base) && (parts.size() == 1 || parts[0] == "pg_catalog")) {
      read_constant();  // the decision depends on the sequence named (sqlrewrite/sequence_check.h)
      if (auto why = check_sequence_call(f, base, policy_)) deny(*why);
      return;
    }
    if (auto why = check_function_name(parts, policy_)) deny(*why);
  }

  void check_operator(const pg_query::A_Expr& e) {
    switch (e.kind()) {
      case pg_query::AEXPR_BETWEEN:  // named by keyword; compares with the type's < and >
      case pg_query::AEXPR_NOT_BETWEEN:
      case pg_query::AEXPR_BETWEEN_SYM:
      case pg_query::AEXPR_NOT_BETWEEN_SYM:
        if (e.name_size() != 1) deny("malformed BETWEEN");
        return;
      default:
        if (auto why = check_operator_name(e.name())) deny(*why);
    }
  }

  // ---- names that may call functions (sqlrewrite/function_check.h) ---------------------------

  // A relation of a FROM list or a statement target, by the name the statement uses for it,
  // with its columns when the schema snapshot knows them.
  struct Relation {
    std::string name;
    const policy::TableInfo* info = nullptr;
    std::string tenant_column;  // the policy's word, also without a snapshot (rowguard's own qual)
  };

  void add_relation(const pg_query::RangeVar& rv, const TableRule& rule) {
    const policy::TableInfo* info = policy_.schema && policy_.schema->loaded ? policy_.schema->table(rule.table) : nullptr;
    relations_.push_back({rv.has_alias() ? rv.alias().aliasname() : rv.relname(), info, rule.column});
  }

  // True when `qualifier` names a relation in scope whose known columns include `column`.
  bool known_column(std::string_view qualifier, std::string_view column) const {
    for (auto it = relations_.rbegin(); it != relations_.rend(); ++it) {
      if (it->name == qualifier) {
        return (!it->tenant_column.empty() && it->tenant_column == column) ||
               (it->info != nullptr && it->info->column(column) != nullptr);
      }
    }
    return false;
  }

  [[noreturn]] void deny_attribute(const std::string& shown, const std::string& name) const {
    deny(quote_ident(shown) + " may call the function " + quote_ident(name) +
         " (attribute notation: x.f means f(x) when x has no column f) and is not a column rowguard "
         "knows" + (policy_.schema && policy_.schema->loaded ? "" : " (the schema snapshot is not loaded)") +
         "; write a column of a policy table, or call an allowed function (rule: " +
         std::string(kRuleAttributeNotation) + ")");
  }

  static void deny_system_column(const std::string& name) {
    deny("system column " + quote_ident(name) + " is not allowed: it reveals other tenants' writes " +
         "(row positions, transaction ids); use a version column (rule: " + std::string(kRuleSystemColumns) + ")");
  }

  // x, x.y, x.y.z, x.y.z.w: only the last name can be a function (ParseFuncOrColumn on the
  // relation's whole row or on a composite column), or a system column.
  void check_column_ref(const pg_query::ColumnRef& c) {
    const auto& f = c.fields();
    if (f.empty() || !f[f.size() - 1].has_string()) return;  // x.* or *
    const std::string& name = f[f.size() - 1].string().sval();
    if (refused_system_column(name)) deny_system_column(name);
    if (f.size() < 2 || !attribute_may_call_denied(name, policy_)) return;
    const Node& q = f[f.size() - 2];
    if (q.has_string() && known_column(q.string().sval(), name)) return;
    std::string shown;
    for (const auto& n : f) shown += (shown.empty() ? "" : ".") + (n.has_string() ? n.string().sval() : "*");
    deny_attribute(shown, name);
  }

  // (expr).a.b[1].c: every name is a field of a composite or a function call on what precedes it.
  void check_indirection(const pg_query::A_Indirection& ind) {
    // (rel).col where rel is a relation in scope: the first name may be its known column.
    std::string qualifier;
    if (ind.has_arg() && ind.arg().has_column_ref() && ind.arg().column_ref().fields_size() == 1 &&
        ind.arg().column_ref().fields(0).has_string()) {
      qualifier = ind.arg().column_ref().fields(0).string().sval();
    }
    bool first = true;
    for (const auto& n : ind.indirection()) {
      if (n.has_string()) {
        const std::string& name = n.string().sval();
        if (refused_system_column(name)) deny_system_column(name);
        if (attribute_may_call_denied(name, policy_) && !(first && !qualifier.empty() && known_column(qualifier, name))) {
          deny_attribute("(" + (qualifier.empty() ? std::string("...") : qualifier) + ")." + name, name);
        }
      }
      first = false;
    }
  }

  static std::string statement_name(const Node& n) {
    if (n.node_case() == Node::NODE_NOT_SET) return "an empty statement";
    const gpb::Reflection* r = n.GetReflection();
    const gpb::FieldDescriptor* f = r->GetOneofFieldDescriptor(n, Node::descriptor()->FindOneofByName("node"));
    return f ? f->message_type()->name() : "an unknown statement";
  }

  // A decision on the value of a constant of the statement: the result is not a constant template.
  void read_constant() const {
    if (trace_ != nullptr) trace_->constant_read = true;
  }

  // The tenant for a decision (not a constant to insert): the result then cannot be a template.
  const std::string& compared_tenant() const {
    if (trace_ != nullptr) trace_->tenant_compared = true;
    return tenant_;
  }

  const policy::Policy& policy_;
  std::string tenant_;
  RewriteTrace* trace_;

 public:
  std::vector<int> tenant_params_;
  std::optional<CopyInPlan> copy_plan_;
  std::optional<PreparedStatementOp> prepared_op_;
  std::optional<CursorOp> cursor_op_;

 private:
  std::unordered_set<const pg_query::RangeVar*> handled_;
  std::vector<std::string> ctes_;  // CTE names in scope, innermost last
  bool locking_ = false;           // reading the FROM items of a SELECT with FOR UPDATE / SHARE
  std::unordered_set<const pg_query::SelectStmt*> locked_subqueries_;  // FROM subqueries under a lock
  std::vector<Relation> relations_;  // relations in scope (FROM items, targets), innermost last
  // The tenant rule of a FROM table reference read_table() resolved (its schema is then set).
  const TableRule* guard_rule(const pg_query::RangeVar& rv) const {
    if (rv.schemaname().empty() || is_catalog_schema(rv.schemaname()) || !handled_.contains(&rv)) return nullptr;
    return policy_.table(QualifiedName{rv.schemaname(), rv.relname()});
  }
  QualGuard guard_{policy_, [this](const pg_query::RangeVar& rv) { return guard_rule(rv); },
                   [this] { return tenant_literal(); }};
};

}  // namespace

bool safe_client_encoding(std::string_view name) {
  std::string n;
  for (char c : name) {
    if (c == '_' || c == '-' || c == '\'' || c == '"') continue;  // asyncpg sends 'utf-8'
    n.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  static const std::unordered_set<std::string_view> kSafe = {
      "UTF8", "UNICODE", "SQLASCII", "LATIN1", "LATIN2", "LATIN3", "LATIN4", "LATIN5", "LATIN6",
      "LATIN7", "LATIN8", "LATIN9", "LATIN10", "ISO88591", "ISO88592", "ISO88593", "ISO88594",
      "ISO88595", "ISO88596", "ISO88597", "ISO88598", "ISO88599", "ISO885910", "ISO885913",
      "ISO885914", "ISO885915", "ISO885916", "WIN1250", "WIN1251", "WIN1252", "WIN1253",
      "WIN1254", "WIN1255", "WIN1256", "WIN1257", "WIN1258", "WIN866", "WIN874", "KOI8R",
      "KOI8U", "EUCJP", "EUCCN", "EUCKR", "EUCTW", "EUCJIS2004", "MULEINTERNAL",
  };
  return kSafe.contains(n);
}

namespace {
RewriteResult rewrite_here(std::string_view sql, const policy::Policy& policy, std::string_view tenant,
                           RewriteTrace* trace) {
  RewriteResult out;
  ParseOutput parsed = parse_sql(sql);
  if (!parsed.ok) {
    out.reason = "rowguard: the statement does not parse: " + parsed.error;
    return out;
  }
  try {
    for (auto& raw : *parsed.tree.mutable_stmts()) {
      Walker w(policy, tenant, trace);
      out.kinds.push_back(w.statement(*raw.mutable_stmt()));
      out.tenant_params.insert(out.tenant_params.end(), w.tenant_params_.begin(), w.tenant_params_.end());
      if (w.prepared_op_) out.prepared.push_back(std::move(*w.prepared_op_));
      if (w.cursor_op_) out.cursors.push_back(std::move(*w.cursor_op_));
      if (w.copy_plan_) {
        if (parsed.tree.stmts_size() != 1) deny("COPY must be the only statement of its Query");
        out.copy_in = w.copy_plan_;
      }
    }
  } catch (const Denied& d) {
    out.kinds.clear();
    out.prepared.clear();
    out.cursors.clear();
    out.reason = d.reason;
    return out;
  } catch (const std::exception& e) {
    out.kinds.clear();
    out.prepared.clear();
    out.cursors.clear();
    out.reason = std::string("rowguard: internal error while checking the statement: ") + e.what();
    return out;
  }
  if (parsed.tree.stmts_size() == 0) {
    out.allowed = true;  // only comments / whitespace: the server answers EmptyQueryResponse
    return out;
  }
  std::string checked;  // the checked tree, serialized: deparsed, then compared with the reparse
  DeparseOutput dep = deparse_sql(parsed.tree, &checked);
  if (!dep.ok) {
    out.kinds.clear();
    out.prepared.clear();
    out.cursors.clear();
    out.reason = "rowguard: cannot rebuild the rewritten statement: " + dep.error;
    return out;
  }
  // The deparser is not trusted: the text rowguard forwards must parse back into exactly the
  // tree it checked (libpg_query 15-4.0 drops needed parentheses in some expressions, e.g.
  // "(a OR b) IS TRUE"). Any difference: deny.
  // Compared as encodings, source positions skipped (sqlrewrite::same_tree_bytes).
  ProtobufParseOutput reparsed = parse_sql_protobuf(dep.sql);
  if (!reparsed.ok || !same_tree_bytes(checked, reparsed.bytes)) {
    out.kinds.clear();
    out.prepared.clear();
    out.cursors.clear();
    out.reason = "rowguard: the rewritten statement would not mean what was checked (SQL deparser "
                 "limitation); rewrite the statement, e.g. with explicit parentheses or fewer nested "
                 "boolean tests";
    return out;
  }
  out.allowed = true;
  out.sql = std::move(dep.sql);
  return out;
}
}  // namespace

// The walk, the deparse and the tree's destruction recurse per tree level: all of it runs on the
// parse stack (parse_stack.h), like the parse.
RewriteResult rewrite(std::string_view sql, const policy::Policy& policy, std::string_view tenant,
                      RewriteTrace* trace) {
  return run_on_parse_stack([&] { return rewrite_here(sql, policy, tenant, trace); });
}

}  // namespace rowguard::sqlrewrite
