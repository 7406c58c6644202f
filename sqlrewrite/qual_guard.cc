// Tenant checks run first: see qual_guard.h for the design and why it is safe.
#include "sqlrewrite/qual_guard.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <algorithm>
#include <string_view>

#include "pg/pg_types.h"
#include "sqlrewrite/walk_tables.h"
#include "sqlrewrite/walker.h"

namespace rowguard::sqlrewrite {
namespace {

namespace gpb = google::protobuf;
using pg_query::Node;

// Types whose comparisons with a value of their own type cannot fail on any value (their
// pg_proc comparison functions are leakproof, or, for numeric, raise no errors) and whose
// input from a string literal happens at plan time.
bool scalar_type(uint32_t oid) {
  switch (oid) {
    case pg::kBoolOid: case pg::kCharOid: case pg::kNameOid: case pg::kInt8Oid: case pg::kInt2Oid:
    case pg::kInt4Oid: case pg::kTextOid: case pg::kOidOid:
    case pg::kFloat4Oid: case pg::kFloat8Oid: case pg::kNumericOid: case pg::kBpcharOid: case pg::kVarcharOid:
    case pg::kDateOid: case pg::kTimestampOid: case pg::kTimestamptzOid: case pg::kUuidOid:
      return true;
    default:
      return false;
  }
}

// Column types for which a parameter of any declared type that compares with them does so
// without a cast of the column that can fail (a date column against a timestamp parameter is
// cast, and overflows for some dates; numeric against float8 overflows).
bool parameter_safe_type(uint32_t oid) {
  switch (oid) {
    case pg::kBoolOid: case pg::kInt8Oid: case pg::kInt2Oid: case pg::kInt4Oid: case pg::kTextOid:
    case pg::kBpcharOid: case pg::kVarcharOid: case pg::kUuidOid:
      return true;
    default:
      return false;
  }
}

int type_family(uint32_t oid) {
  switch (oid) {
    case pg::kInt8Oid: case pg::kInt2Oid: case pg::kInt4Oid: return 1;
    case pg::kNameOid: case pg::kTextOid: case pg::kBpcharOid: case pg::kVarcharOid: return 2;
    default: return 0;
  }
}

bool comparison(const pg_query::A_Expr& e) {
  if (e.name_size() != 1 || !e.name(0).has_string()) return false;
  static const std::vector<std::string_view> kOps = {"=", "<>", "!=", "<", "<=", ">", ">="};
  const std::string& op = e.name(0).string().sval();
  return std::find(kOps.begin(), kOps.end(), op) != kOps.end();
}

// A column reference: 1-3 names, no star, no subscripts (those are A_Indirection).
bool plain_column(const Node& n) {
  if (!n.has_column_ref()) return false;
  const auto& f = n.column_ref().fields();
  if (f.empty() || f.size() > 3) return false;
  for (const auto& part : f) {
    if (!part.has_string()) return false;
  }
  return true;
}

bool constant(const Node& n) {
  return (n.has_a_const()) || (n.has_param_ref() && n.param_ref().number() > 0);
}

Node make_and(std::vector<Node> terms) {
  if (terms.size() == 1) return std::move(terms[0]);
  Node n;
  auto& b = *n.mutable_bool_expr();
  b.set_boolop(pg_query::AND_EXPR);
  for (auto& t : terms) *b.add_args() = std::move(t);
  return n;
}

// CASE WHEN cond THEN term END
Node make_case(Node cond, Node term) {
  Node n;
  auto& c = *n.mutable_case_expr();
  auto& w = *c.add_args()->mutable_case_when();
  *w.mutable_expr() = std::move(cond);
  *w.mutable_result() = std::move(term);
  return n;
}

// Every ColumnRef below a node, and whether a SubLink occurs. A SubLink makes the conjunct
// reference every relation, so its subquery is not scanned: each nesting level is scanned once,
// and nested EXISTS chains stay linear (scanning subqueries made them quadratic in the depth).
// Typed: the walk's field tables, not reflection's ListFields (which sorted every message's set
// fields and cost ~16 % of an uncached rewrite of a three-way join). A member rowguard does not
// know counts as a SubLink (it references every relation: the strictest grouping).
void scan(const gpb::Message& m, const gpb::Descriptor* d, std::vector<const pg_query::ColumnRef*>& refs,
          bool& sublink) {
  if (d == Node::descriptor()) {
    const auto& n = static_cast<const Node&>(m);
    switch (n.node_case()) {
      case Node::NODE_NOT_SET:
        return;
      case Node::kColumnRef:
        refs.push_back(&n.column_ref());  // its fields are names (String, A_Star): nothing below
        return;
      case Node::kSubLink:
        sublink = true;
        return;
      default:
        break;
    }
    const gpb::FieldDescriptor* f = node_member(n);
    if (f == nullptr || f->cpp_type() != gpb::FieldDescriptor::CPPTYPE_MESSAGE) {
      sublink = true;
      return;
    }
    scan(n.GetReflection()->GetMessage(n, f), f->message_type(), refs, sublink);
    return;
  }
  const std::vector<const gpb::FieldDescriptor*>* fields = message_fields(d);
  if (fields == nullptr) {
    sublink = true;
    return;
  }
  const gpb::Reflection* r = m.GetReflection();
  for (const gpb::FieldDescriptor* f : *fields) {
    if (f->is_repeated()) {
      const int size = r->FieldSize(m, f);
      for (int i = 0; i < size; ++i) scan(r->GetRepeatedMessage(m, f, i), f->message_type(), refs, sublink);
    } else if (r->HasField(m, f)) {
      scan(r->GetMessage(m, f), f->message_type(), refs, sublink);
    }
  }
}

}  // namespace

QualGuard::QualGuard(const policy::TenantScope& scope, RuleOf rule_of, TenantLiteral literal)
    : schema_(scope.schema && scope.schema->loaded ? scope.schema : nullptr),
      rule_of_(std::move(rule_of)),
      literal_(std::move(literal)) {}

GuardRelation QualGuard::relation(const pg_query::RangeVar& rv, const policy::TableRule& rule, bool nullable) const {
  GuardRelation g;
  g.ref = rv.has_alias() ? rv.alias().aliasname() : rv.relname();
  g.column = rule.column;
  g.nullable = nullable;
  g.info = schema_ ? schema_->table(rule.table) : nullptr;
  return g;
}

void QualGuard::collect(const Node& item, bool nullable, std::vector<GuardRelation>& out) const {
  if (item.has_range_var()) {
    if (const policy::TableRule* rule = rule_of_(item.range_var()); rule != nullptr && !rule->global) {
      out.push_back(relation(item.range_var(), *rule, nullable));
    }
    return;
  }
  if (!item.has_join_expr()) return;  // subqueries and functions are fenced or row-independent
  const auto& j = item.join_expr();
  if (j.has_alias()) return;  // its tenant tables are fenced subqueries (the rewriter's join())
  const bool left_nullable = nullable || j.jointype() == pg_query::JOIN_RIGHT || j.jointype() == pg_query::JOIN_FULL;
  const bool right_nullable = nullable || j.jointype() != pg_query::JOIN_INNER;
  collect(j.larg(), left_nullable, out);
  collect(j.rarg(), right_nullable, out);
}

void QualGuard::guard_where(Node& clause, const std::vector<GuardRelation>& rels) const {
  if (rels.empty()) return;
  if (!clause.has_bool_expr() || clause.bool_expr().boolop() != pg_query::AND_EXPR) {
    guard_term(clause, rels);
    return;
  }
  // Conjuncts that need more than kGroupGuardsAbove relations' checks are grouped by that set
  // (one CASE per set, at the place of its first conjunct); the others are guarded in place.
  auto& args = *clause.mutable_bool_expr()->mutable_args();
  struct Group {
    std::vector<const GuardRelation*> refs;
    int at;  // the index in args of its first conjunct
    std::vector<Node> terms;
  };
  std::vector<Group> groups;
  std::vector<bool> moved(static_cast<size_t>(args.size()), false);
  for (int i = 0; i < args.size(); ++i) {
    Node& t = args[i];
    if (leakproof(t, rels)) continue;
    std::vector<const GuardRelation*> refs = referenced(t, rels);
    if (refs.empty()) continue;  // only outer rows (already checked) or non-tenant relations
    if (refs.size() <= kGroupGuardsAbove) {
      t = guarded(refs, std::move(t));
      continue;
    }
    auto g = std::find_if(groups.begin(), groups.end(), [&](const Group& x) { return x.refs == refs; });
    if (g == groups.end()) {
      groups.push_back({std::move(refs), i, {}});
      g = groups.end() - 1;
    } else {
      moved[static_cast<size_t>(i)] = true;
    }
    g->terms.push_back(std::move(t));
  }
  for (Group& g : groups) args[g.at] = guarded(g.refs, make_and(std::move(g.terms)));
  for (int i = args.size() - 1; i >= 0; --i) {
    if (moved[static_cast<size_t>(i)]) args.DeleteSubrange(i, 1);
  }
}

void QualGuard::guard_term(Node& term, const std::vector<GuardRelation>& rels) const {
  if (leakproof(term, rels)) return;
  std::vector<const GuardRelation*> refs = referenced(term, rels);
  if (refs.empty()) return;  // only outer rows (already checked) or non-tenant relations
  term = guarded(refs, std::move(term));
}

Node QualGuard::guarded(const std::vector<const GuardRelation*>& refs, Node term) const {
  checks_ += refs.size();
  if (checks_ > kMaxGuardChecks) {
    deny("the statement would need more than " + std::to_string(kMaxGuardChecks) +
         " tenant checks ahead of its conditions (rule: statement size; conditions x tenant tables that each "
         "condition may read; name the tables' columns with their alias, or split the statement)");
  }
  std::vector<Node> checks;
  for (const auto* r : refs) checks.push_back(check(*r));
  return make_case(make_and(std::move(checks)), std::move(term));
}

void QualGuard::guard_having(Node& clause, const std::vector<GuardRelation>& rels) const {
  if (rels.empty()) return;
  auto guard = [&](Node& term) {
    if (leakproof(term, rels)) return;
    // count(*) >= 0 is true for every group; the aggregate keeps the conjunct in HAVING.
    Node agg;
    auto& f = *agg.mutable_func_call();
    *f.add_funcname() = make_string("count");
    f.set_agg_star(true);
    f.set_funcformat(pg_query::COERCE_EXPLICIT_CALL);
    Node cond;
    auto& e = *cond.mutable_a_expr();
    e.set_kind(pg_query::AEXPR_OP);
    *e.add_name() = make_string(">=");
    *e.mutable_lexpr() = std::move(agg);
    e.mutable_rexpr()->mutable_a_const()->mutable_ival()->set_ival(0);
    term = make_case(std::move(cond), std::move(term));
  };
  if (clause.has_bool_expr() && clause.bool_expr().boolop() == pg_query::AND_EXPR) {
    for (auto& t : *clause.mutable_bool_expr()->mutable_args()) guard(t);
    return;
  }
  guard(clause);
}

void QualGuard::fence(pg_query::SelectStmt& s) {
  if (s.has_limit_offset() || s.has_limit_count()) return;
  s.mutable_limit_offset()->mutable_a_const()->mutable_ival()->set_ival(0);
  s.set_limit_option(pg_query::LIMIT_OPTION_COUNT);  // as PostgreSQL's parser sets it for OFFSET
}

// ---- leakproof shapes ------------------------------------------------------------------------

bool QualGuard::leakproof(const Node& n, const std::vector<GuardRelation>& rels) const {
  switch (n.node_case()) {
    case Node::kBoolExpr:
      for (const auto& a : n.bool_expr().args()) {
        if (!leakproof(a, rels)) return false;
      }
      return true;
    case Node::kNullTest:
      return plain_column(n.null_test().arg());
    case Node::kBooleanTest:
      return plain_column(n.boolean_test().arg());
    case Node::kColumnRef:  // a boolean column
      return plain_column(n);
    case Node::kAConst:
      return true;
    case Node::kAExpr: {
      const auto& e = n.a_expr();
      if (!comparison(e)) return false;
      if (e.kind() == pg_query::AEXPR_OP) {
        if (plain_column(e.lexpr()) && constant(e.rexpr())) return constant_ok(e.lexpr(), e.rexpr(), rels);
        if (constant(e.lexpr()) && plain_column(e.rexpr())) return constant_ok(e.rexpr(), e.lexpr(), rels);
        if (plain_column(e.lexpr()) && plain_column(e.rexpr())) {
          const uint32_t l = column_type(e.lexpr(), rels);
          const uint32_t r = column_type(e.rexpr(), rels);
          if (l == 0 || r == 0 || !scalar_type(l) || !scalar_type(r)) return false;
          return l == r || (type_family(l) != 0 && type_family(l) == type_family(r));
        }
        return false;
      }
      if (e.kind() == pg_query::AEXPR_IN && plain_column(e.lexpr()) && e.rexpr().has_list()) {
        for (const auto& item : e.rexpr().list().items()) {
          if (!constant(item) || !constant_ok(e.lexpr(), item, rels)) return false;
        }
        return true;
      }
      return false;
    }
    default:
      return false;
  }
}

bool QualGuard::constant_ok(const Node& column, const Node& c, const std::vector<GuardRelation>& rels) const {
  const uint32_t type = column_type(column, rels);
  if (c.has_a_const()) {
    const auto& k = c.a_const();
    // A number or boolean: the columns that compare with it are numeric or boolean, and their
    // casts to each other cannot fail; anything else fails at plan time, for every row alike.
    if (k.isnull() || k.has_ival() || k.has_fval() || k.has_boolval()) return type == 0 || scalar_type(type);
    if (k.has_sval()) return type != 0 && scalar_type(type);  // read as the column's type
    return false;
  }
  return type != 0 && parameter_safe_type(type);
}

// The column's type from the schema snapshot, 0 when unknown.
uint32_t QualGuard::column_type(const Node& column, const std::vector<GuardRelation>& rels) const {
  if (schema_ == nullptr) return 0;
  const auto& f = column.column_ref().fields();
  const std::string& name = f[f.size() - 1].string().sval();
  const policy::ColumnInfo* found = nullptr;
  if (f.size() >= 2) {
    const std::string& ref = f[f.size() - 2].string().sval();
    for (const auto& r : rels) {
      if (r.ref == ref) found = r.info ? r.info->column(name) : nullptr;
    }
    return found ? found->type_oid : 0;
  }
  int matches = 0;
  for (const auto& r : rels) {
    if (r.info == nullptr) return 0;
    if (const auto* c = r.info->column(name)) {
      found = c;
      ++matches;
    }
  }
  return matches == 1 ? found->type_oid : 0;
}

// The tenant relations a conjunct may read: those its column references name; for an
// unqualified column, the ones that have it (schema snapshot) or else all; all of them when it
// holds a subquery (which may reference them in any way).
std::vector<const GuardRelation*> QualGuard::referenced(const Node& term, const std::vector<GuardRelation>& rels) const {
  std::vector<const pg_query::ColumnRef*> refs;
  bool sublink = false;
  scan(term, Node::descriptor(), refs, sublink);
  std::vector<bool> used(rels.size(), false);
  if (sublink) {
    std::vector<const GuardRelation*> all;
    for (const auto& r : rels) all.push_back(&r);
    return all;
  }
  for (const auto* c : refs) {
    const auto& f = c->fields();
    if (f.empty()) continue;
    const bool star = f[f.size() - 1].has_a_star();
    if (f.size() == 1 && star) {  // *
      used.assign(rels.size(), true);
      continue;
    }
    if (!f[0].has_string()) continue;
    if (f.size() >= 2) {  // ref.col, ref.*, schema.ref.col
      const std::string& ref = f[f.size() - 2].has_string() ? f[f.size() - 2].string().sval() : "";
      for (size_t i = 0; i < rels.size(); ++i) used[i] = used[i] || rels[i].ref == ref;
      continue;
    }
    // An unqualified name: a column of any relation here, or a whole-row reference.
    const std::string& name = f[0].string().sval();
    bool all_known = true;
    for (const auto& r : rels) all_known = all_known && r.info != nullptr;
    bool found = false;
    for (size_t i = 0; i < rels.size(); ++i) {
      const bool has = !all_known || rels[i].info->column(name) != nullptr || rels[i].ref == name;
      used[i] = used[i] || has;
      found = found || has;
    }
    // A name no known relation has: the snapshot may be older than the table (a column added
    // outside rowguard since the last read), so it may be any relation's: fail closed.
    if (!found) used.assign(rels.size(), true);
  }
  std::vector<const GuardRelation*> out;
  for (size_t i = 0; i < rels.size(); ++i) {
    if (used[i]) out.push_back(&rels[i]);
  }
  return out;
}

// ref.column = '<tenant>', or (ref.column = '<tenant>' OR ref.* IS NULL) on a nullable side.
Node QualGuard::check(const GuardRelation& r) const {
  Node eq;
  auto& e = *eq.mutable_a_expr();
  e.set_kind(pg_query::AEXPR_OP);
  *e.add_name() = make_string("=");
  auto& col = *e.mutable_lexpr()->mutable_column_ref();
  *col.add_fields() = make_string(r.ref);
  *col.add_fields() = make_string(r.column);
  *e.mutable_rexpr() = literal_();
  if (!r.nullable) return eq;
  Node null_row;
  auto& nt = *null_row.mutable_null_test();
  auto& whole = *nt.mutable_arg()->mutable_column_ref();
  *whole.add_fields() = make_string(r.ref);
  whole.add_fields()->mutable_a_star();
  nt.set_nulltesttype(pg_query::IS_NULL);
  Node either;
  auto& b = *either.mutable_bool_expr();
  b.set_boolop(pg_query::OR_EXPR);
  *b.add_args() = std::move(eq);
  *b.add_args() = std::move(null_row);
  return either;
}

}  // namespace rowguard::sqlrewrite
