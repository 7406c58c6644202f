// The generic walk (every message of the tree through protobuf reflection), the statement
// dispatch and what the walk reports to the template cache (RewriteTrace).
#include "sqlrewrite/walker.h"

#include <algorithm>

#include "sqlrewrite/function_check.h"
#include "sqlrewrite/walk_tables.h"
#include "sqlrewrite/refusal_rules.h"

namespace rowguard::sqlrewrite {

namespace {

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
      // XML expressions (xmlelement, xmlforest, xmlconcat, xmlparse, xmlpi, xmlroot, IS
      // DOCUMENT), XMLSERIALIZE and XMLTABLE in FROM (implicitly LATERAL, like a function in
      // FROM): builtin computations over their argument expressions, which are walked
      "XmlExpr", "XmlSerialize", "RangeTableFunc",
  };
  return kTypes;
}

}  // namespace

// What the generic walk needs to know about one message type of pg_query.proto: its
// message-typed fields (declaration order) and whether it is in pass_through_types().
struct WalkShape {
  // The types visit() treats specially; kOther: pass_through decides.
  enum class Kind {
    kOther, kNode, kSelect, kInsert, kUpdate, kDelete, kMerge, kRangeVar, kFuncCall, kAExpr,
    kColumnRef, kIndirection, kTypeCast, kSubLink, kSortBy, kTableSample, kColumnDef,
    kTableFuncCol,  // checked, then walked like pass-through
  };
  Kind kind = Kind::kOther;
  const gpb::Reflection* reflection = nullptr;
  std::vector<const gpb::FieldDescriptor*> message_fields;
  bool pass_through = false;
};

namespace {

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
                   : d == pg_query::RangeTableSample::descriptor() ? WalkShape::Kind::kTableSample
                   : d == pg_query::ColumnDef::descriptor()  ? WalkShape::Kind::kColumnDef
                   : d == pg_query::RangeTableFuncCol::descriptor() ? WalkShape::Kind::kTableFuncCol
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

}  // namespace

const std::vector<const gpb::FieldDescriptor*>* message_fields(const gpb::Descriptor* d) {
  const WalkShape* shape = walk_tables().shape(d);
  return shape == nullptr ? nullptr : &shape->message_fields;
}

const gpb::FieldDescriptor* node_member(const Node& n) { return walk_tables().node_member(n); }

StatementKind Walker::statement(Node& stmt) {
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
      set(*stmt.mutable_variable_set_stmt());
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
      deny("empty statement node" + rule_suffix(kRuleCannotCheck));
    default:
      deny(statement_name(stmt) + " is not allowed for tenants (rule: only SELECT, INSERT, "
           "UPDATE, DELETE, transaction control, SET/SHOW of session settings, DEALLOCATE and "
           "EXPLAIN)");
  }
}

namespace {

// An operand libpg_query 15-4.0's deparser writes without the parentheses it needs under the
// parents of keep_operands_delimited(): an AND / OR / NOT, an IS [NOT] DISTINCT FROM.
bool deparsed_undelimited(const Node& operand) {
  return operand.has_bool_expr() ||
         (operand.has_a_expr() && (operand.a_expr().kind() == pg_query::AEXPR_DISTINCT ||
                                   operand.a_expr().kind() == pg_query::AEXPR_NOT_DISTINCT));
}

// x AT TIME ZONE z (pg_catalog.timezone in SQL syntax), which the deparser leaves undelimited
// under a cast: "(t AT TIME ZONE 'UTC')::date" comes out as "t AT TIME ZONE 'UTC'::date".
bool at_time_zone(const Node& operand) {
  if (!operand.has_func_call()) return false;
  const pg_query::FuncCall& f = operand.func_call();
  return f.funcformat() == pg_query::COERCE_SQL_SYNTAX && f.funcname_size() > 0 &&
         f.funcname(f.funcname_size() - 1).has_string() && f.funcname(f.funcname_size() - 1).string().sval() == "timezone";
}

// Replaces `operand` by COALESCE(operand) when the deparser would write it undelimited.
// COALESCE of one argument is that argument (same value, type, typmod and collation: PostgreSQL
// resolves it like the expression itself) and is written delimited, so the text parses back into
// the tree checked; the deparser safety net (deparse_check.h) still compares all of it.
void delimit(Node* operand, bool under_cast = false) {
  if (operand == nullptr || !(deparsed_undelimited(*operand) || (under_cast && at_time_zone(*operand)))) return;
  Node inner;
  inner.Swap(operand);
  operand->mutable_coalesce_expr()->add_args()->Swap(&inner);
}

// "(a OR b) IS TRUE" is deparsed as "a OR b IS TRUE" (another tree: refused by the safety net).
// The parents whose operand the deparser does not parenthesize: IS [NOT] TRUE/FALSE/UNKNOWN,
// IS [NOT] NULL, ::, COLLATE, and BETWEEN / LIKE / ILIKE / SIMILAR TO / IN / op ANY|ALL /
// IS [NOT] DISTINCT FROM (a plain operator parenthesizes its operands, IN its list).
void keep_operands_delimited(Node& n) {
  switch (n.node_case()) {
    case Node::kBooleanTest:
      if (n.boolean_test().has_arg()) delimit(n.mutable_boolean_test()->mutable_arg());
      return;
    case Node::kNullTest:
      if (n.null_test().has_arg()) delimit(n.mutable_null_test()->mutable_arg());
      return;
    case Node::kTypeCast:
      if (n.type_cast().has_arg()) delimit(n.mutable_type_cast()->mutable_arg(), /*under_cast=*/true);
      return;
    case Node::kCollateClause:
      if (n.collate_clause().has_arg()) delimit(n.mutable_collate_clause()->mutable_arg());
      return;
    case Node::kAExpr: {
      pg_query::A_Expr& e = *n.mutable_a_expr();
      switch (e.kind()) {
        case pg_query::AEXPR_OP_ANY:
        case pg_query::AEXPR_OP_ALL:
        case pg_query::AEXPR_IN:
          if (e.has_lexpr()) delimit(e.mutable_lexpr());
          return;
        case pg_query::AEXPR_DISTINCT:
        case pg_query::AEXPR_NOT_DISTINCT:
        case pg_query::AEXPR_LIKE:
        case pg_query::AEXPR_ILIKE:
        case pg_query::AEXPR_SIMILAR:
          if (e.has_lexpr()) delimit(e.mutable_lexpr());
          if (e.has_rexpr()) delimit(e.mutable_rexpr());
          return;
        case pg_query::AEXPR_BETWEEN:
        case pg_query::AEXPR_NOT_BETWEEN:
        case pg_query::AEXPR_BETWEEN_SYM:
        case pg_query::AEXPR_NOT_BETWEEN_SYM:
          if (e.has_lexpr()) delimit(e.mutable_lexpr());
          if (e.has_rexpr() && e.rexpr().has_list()) {
            for (Node& bound : *e.mutable_rexpr()->mutable_list()->mutable_items()) delimit(&bound);
          }
          return;
        default:
          return;
      }
    }
    default:
      return;
  }
}

}  // namespace

// d is m's type (known from the field that holds m: no per-node descriptor lookup).
void Walker::visit(gpb::Message& m, const gpb::Descriptor* d) {
  const WalkShape* shape = walk_tables().shape(d);
  if (shape == nullptr) deny("malformed parse tree" + rule_suffix(kRuleCannotCheck));
  switch (shape->kind) {
    case WalkShape::Kind::kNode: {
      auto& n = static_cast<Node&>(m);
      if (n.node_case() == Node::NODE_NOT_SET) return;  // NIL marker (e.g. plain DISTINCT)
      keep_operands_delimited(n);
      const gpb::FieldDescriptor* f = walk_tables().node_member(n);
      if (f == nullptr || f->cpp_type() != gpb::FieldDescriptor::CPPTYPE_MESSAGE) {
        deny("malformed parse tree" + rule_suffix(kRuleCannotCheck));
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
        deny("table reference " + quote_ident(rv.relname()) + " in an unsupported position" +
             rule_suffix(kRuleCannotCheck));
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
    case WalkShape::Kind::kTableSample:
      // Its relation is a RangeVar: accepted only where from_item() resolved it.
      if (auto why = check_sample_method(static_cast<const pg_query::RangeTableSample&>(m))) deny(*why);
      break;
    case WalkShape::Kind::kColumnDef: {
      // Only in the column definition list of a function in FROM (`f(...) AS (a int)`, ROWS FROM):
      // the statement dispatch refuses DDL. Its type converts the function's output like a cast.
      const auto& def = static_cast<const pg_query::ColumnDef&>(m);
      if (def.has_raw_default() || def.has_cooked_default() || def.constraints_size() > 0 ||
          def.fdwoptions_size() > 0 || def.has_identity_sequence() || !def.generated().empty() ||
          !def.identity().empty()) {
        deny("malformed column definition list" + rule_suffix(kRuleCannotCheck));
      }
      if (auto why = check_column_type(def.type_name())) deny(*why);
      break;
    }
    case WalkShape::Kind::kTableFuncCol: {  // an XMLTABLE column: its type converts the XML text like a cast
      const auto& col = static_cast<const pg_query::RangeTableFuncCol&>(m);
      if (col.for_ordinality() != !col.has_type_name()) {
        deny("malformed XMLTABLE column" + rule_suffix(kRuleCannotCheck));
      }
      if (col.has_type_name()) {
        if (auto why = check_column_type(col.type_name())) deny(*why);
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

void Walker::visit_children(gpb::Message& m, std::initializer_list<std::string_view> skip) {
  const WalkShape* shape = walk_tables().shape(m.GetDescriptor());
  if (shape == nullptr) deny("malformed parse tree" + rule_suffix(kRuleCannotCheck));
  visit_fields(m, *shape, skip);
}

// Visits every message-typed field of m (the shape of m's type), except those named in skip.
void Walker::visit_fields(gpb::Message& m, const WalkShape& shape, std::initializer_list<std::string_view> skip) {
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

std::string Walker::statement_name(const Node& n) {
  if (n.node_case() == Node::NODE_NOT_SET) return "an empty statement";
  const gpb::Reflection* r = n.GetReflection();
  const gpb::FieldDescriptor* f = r->GetOneofFieldDescriptor(n, Node::descriptor()->FindOneofByName("node"));
  return f ? f->message_type()->name() : "an unknown statement";
}

// A decision on the value of a constant of the statement: the result is not a constant template.
void Walker::read_constant() const {
  if (trace_ != nullptr) trace_->constant_read = true;
}

// The tenant for a decision (not a constant to insert): the result then cannot be a template.
const std::string& Walker::compared_tenant() const {
  if (trace_ != nullptr) trace_->tenant_compared = true;
  return tenant_;
}

Node Walker::tenant_literal() const {
  if (trace_ != nullptr) ++trace_->tenant_literals;
  Node n;
  n.mutable_a_const()->mutable_sval()->set_sval(tenant_);
  return n;
}

Node Walker::tenant_filter_literal() const {
  if (trace_ != nullptr) ++trace_->tenant_filter_literals;
  return tenant_literal();
}

}  // namespace rowguard::sqlrewrite
