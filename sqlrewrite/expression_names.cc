// Names that may call functions (sqlrewrite/function_check.h): function calls, operators,
// attribute notation (x.f means f(x)), system columns.
#include "sqlrewrite/walker.h"

#include "sqlrewrite/advisory_locks.h"
#include "sqlrewrite/function_check.h"
#include "sqlrewrite/sequence_check.h"
#include "sqlrewrite/refusal_rules.h"

namespace rowguard::sqlrewrite {

void Walker::check_function(pg_query::FuncCall& f) {
  std::vector<std::string> parts;
  for (const auto& n : f.funcname()) {
    if (!n.has_string()) deny("malformed function name" + rule_suffix(kRuleCannotCheck));
    parts.push_back(n.string().sval());
  }
  std::string shown;
  for (const auto& p : parts) shown += (shown.empty() ? "" : ".") + p;
  const std::string& base = parts.empty() ? shown : parts.back();
  if (base == "pg_notify" && (parts.size() == 1 || parts[0] == "pg_catalog")) {
    read_constant();
    // pg_notify('channel', payload): the channel is made tenant-private like NOTIFY's.
    if (f.args_size() != 2 || !f.args(0).has_a_const() || !f.args(0).a_const().has_sval()) {
      deny("pg_notify needs a literal channel name" + rule_suffix(kRuleChannels));
    }
    auto& sval = *f.mutable_args(0)->mutable_a_const()->mutable_sval();
    sval.set_sval(channel(sval.sval()));
    return;
  }
  if (is_sequence_function(base) && (parts.size() == 1 || parts[0] == "pg_catalog")) {
    read_constant();  // the decision depends on the sequence named (sqlrewrite/sequence_check.h)
    if (auto why = check_sequence_call(f, base, scope_)) deny(*why);
    return;
  }
  if (is_advisory_lock_function(base) && (parts.size() == 1 || parts[0] == "pg_catalog")) {
    // Rewritten into the tenant's key space (advisory_locks.h); the original key expressions
    // end up inside the new argument, which the Walker visits next.
    if (auto why = rewrite_advisory_lock_call(f, base, [this] { return tenant_literal(); })) deny(*why);
    return;
  }
  // The arguments PostgreSQL matches against pg_proc: an ordered-set aggregate's WITHIN GROUP
  // (ORDER BY ...) expressions come after its direct arguments; count(*) has none.
  const int nargs = f.args_size() + (f.agg_within_group() ? f.agg_order_size() : 0);
  if (auto why = check_function_name(parts, scope_, nargs)) deny(*why);
  // libpg_query's deparser writes pg_catalog.overlay(a, b, c, d) in SQL syntax, OVERLAY(a PLACING
  // b FROM c FOR d), which PostgreSQL parses into the same call of pg_catalog.overlay with the same
  // arguments, marked COERCE_SQL_SYNTAX (how ruleutils displays it; nothing else reads it). Marked
  // so here, the checked tree is the one the text parses back into, and the deparser safety net
  // (deparse_check.h) still compares everything else.
  if (parts.size() == 2 && parts[0] == "pg_catalog" && parts[1] == "overlay" && f.args_size() == 4 &&
      f.funcformat() == pg_query::COERCE_EXPLICIT_CALL) {
    f.set_funcformat(pg_query::COERCE_SQL_SYNTAX);
  }
}

void Walker::check_operator(const pg_query::A_Expr& e) {
  switch (e.kind()) {
    case pg_query::AEXPR_BETWEEN:  // named by keyword; compares with the type's < and >
    case pg_query::AEXPR_NOT_BETWEEN:
    case pg_query::AEXPR_BETWEEN_SYM:
    case pg_query::AEXPR_NOT_BETWEEN_SYM:
      if (e.name_size() != 1) deny("malformed BETWEEN" + rule_suffix(kRuleCannotCheck));
      return;
    default:
      // A prefix operator (-x, ~x) has no left operand.
      if (auto why = check_operator_name(e.name(), e.kind() == pg_query::AEXPR_OP ? std::optional<bool>(!e.has_lexpr())
                                                                                  : std::nullopt)) {
        deny(*why);
      }
  }
}

// True when `qualifier` names a relation in scope whose known columns include `column`.
bool Walker::known_column(std::string_view qualifier, std::string_view column) const {
  for (auto it = relations_.rbegin(); it != relations_.rend(); ++it) {
    if (it->name == qualifier) {
      return (!it->tenant_column.empty() && it->tenant_column == column) ||
             (it->info != nullptr && it->info->column(column) != nullptr);
    }
  }
  return false;
}

void Walker::deny_attribute(const std::string& shown, const std::string& name) const {
  deny(quote_ident(shown) + " may call the function " + quote_ident(name) +
       " (attribute notation: x.f means f(x) when x has no column f) and is not a column rowguard "
       "knows" + (scope_.schema && scope_.schema->loaded ? "" : " (the schema snapshot is not loaded)") +
       "; write a column of a policy table, or call an allowed function (rule: " +
       std::string(kRuleAttributeNotation) + ")");
}

void Walker::deny_system_column(const std::string& name) {
  deny("system column " + quote_ident(name) + " is not allowed: it reveals other tenants' writes " +
       "(row positions, transaction ids); use a version column (rule: " + std::string(kRuleSystemColumns) + ")");
}

// x, x.y, x.y.z, x.y.z.w: only the last name can be a function (ParseFuncOrColumn on the
// relation's whole row or on a composite column), or a system column.
void Walker::check_column_ref(const pg_query::ColumnRef& c) {
  const auto& f = c.fields();
  if (f.empty() || !f[f.size() - 1].has_string()) return;  // x.* or *
  const std::string& name = f[f.size() - 1].string().sval();
  if (refused_system_column(name)) deny_system_column(name);
  if (f.size() < 2 || !attribute_may_call_denied(name, scope_)) return;
  const Node& q = f[f.size() - 2];
  if (q.has_string() && known_column(q.string().sval(), name)) return;
  std::string shown;
  for (const auto& n : f) shown += (shown.empty() ? "" : ".") + (n.has_string() ? n.string().sval() : "*");
  deny_attribute(shown, name);
}

// (expr).a.b[1].c: every name is a field of a composite or a function call on what precedes it.
void Walker::check_indirection(const pg_query::A_Indirection& ind) {
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
      if (attribute_may_call_denied(name, scope_) && !(first && !qualifier.empty() && known_column(qualifier, name))) {
        deny_attribute("(" + (qualifier.empty() ? std::string("...") : qualifier) + ")." + name, name);
      }
    }
    first = false;
  }
}

}  // namespace rowguard::sqlrewrite
