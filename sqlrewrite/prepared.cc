// SQL-level prepared statements: PREPARE / EXECUTE / DEALLOCATE / DISCARD ALL.
#include "sqlrewrite/walker.h"

#include "sqlrewrite/function_check.h"
#include "sqlrewrite/refusal_rules.h"

namespace rowguard::sqlrewrite {

// The session keeps the map of prepared statements (one namespace with the protocol's Parse)
// and checks EXECUTE arguments against it; the rewriter describes each statement.
// PREPARE name [(types)] AS <statement>: the statement is rewritten and checked exactly like
// the text of a Parse message; its $n that feed a tenant column are checked at EXECUTE / Bind.
void Walker::prepare(pg_query::PrepareStmt& s) {
  Node& q = *s.mutable_query();
  switch (q.node_case()) {
    case Node::kSelectStmt:
    case Node::kInsertStmt:
    case Node::kUpdateStmt:
    case Node::kDeleteStmt:
    case Node::kMergeStmt:
      break;
    default:
      deny("PREPARE of " + statement_name(q) + " is not allowed for tenants" + rule_suffix(kRuleStatementKinds));
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
    if (!t.has_type_name()) deny("malformed PREPARE parameter types" + rule_suffix(kRuleCannotCheck));
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
           "(declare it as int2/int4/int8/text/varchar/uuid, or leave it undeclared)" +
           rule_suffix(kRuleTenantParameterTypes));
    }
  }
  visit_children(s, {"query"});  // the type names
  prepared_op_ = std::move(op);
}

// The OID of a declared parameter type rowguard can check (as a Bind value), else 0.
int32_t Walker::param_type_oid(const pg_query::TypeName& t) {
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
void Walker::execute(pg_query::ExecuteStmt& s) {
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
std::optional<std::string> Walker::constant_value(const Node& n) {
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

void Walker::deallocate(const pg_query::DeallocateStmt& s) {
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
void Walker::discard(const pg_query::DiscardStmt& s) {
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
      deny("unknown DISCARD form" + rule_suffix(kRuleCannotCheck));
  }
}

}  // namespace rowguard::sqlrewrite
