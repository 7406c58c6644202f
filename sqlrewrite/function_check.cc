#include "sqlrewrite/function_check.h"
#include "sqlrewrite/refusal_rules.h"

#include <algorithm>
#include <array>

#include "pg/pg_types.h"

namespace rowguard::sqlrewrite {
namespace {

using policy::QualifiedName;

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Functions that read or compute transaction ids and snapshots. Not in the allowlist; listed
// again so that attribute notation refuses them even where they are immutable (xid(xid8),
// pg_snapshot_xmin(pg_snapshot)).
bool transaction_id_function(std::string_view name) {
  static constexpr auto kPrefixes = std::to_array<std::string_view>({"txid_", "pg_snapshot_", "pg_current_", "pg_xact_"});
  static constexpr auto kNames = std::to_array<std::string_view>({"xid", "xid8", "mxid_age", "pg_last_committed_xact", "pg_get_multixact_members"});
  for (auto p : kPrefixes) {
    if (name.starts_with(p)) return true;
  }
  return std::find(kNames.begin(), kNames.end(), name) != kNames.end();
}

// An array type is also named by its element type's name with a leading underscore (`_xid` is
// xid[]): '{3}'::_xid, `AS x(a _xid)` and PREPARE p(_xid) make transaction ids out of text too.
std::string_view element_type_name(std::string_view name) {
  if (name.starts_with('_')) name.remove_prefix(1);
  return name;
}

bool transaction_id_type(std::string_view name) {
  name = element_type_name(name);
  return name == "xid" || name == "xid8" || name == "txid_snapshot" || name == "pg_snapshot";
}

// The row types of the catalogs with transaction-id columns: jsonb_populate_record(NULL::pg_database,
// '{"datfrozenxid": "5"}') or ROW(...)::pg_class would make an xid out of text like a cast.
bool transaction_id_row_type(std::string_view name) {
  name = element_type_name(name);
  static constexpr auto kNames = std::to_array<std::string_view>({
      "pg_class", "pg_database", "pg_locks", "pg_prepared_xacts", "pg_stat_activity",
      "pg_stat_replication", "pg_replication_slots"});
  return std::find(kNames.begin(), kNames.end(), name) != kNames.end();
}

}  // namespace

std::optional<std::string> check_function_name(const std::vector<std::string>& parts, const policy::TenantScope& scope,
                                               std::optional<int> nargs) {
  std::string shown;
  for (const auto& p : parts) shown += (shown.empty() ? "" : ".") + p;
  // No builtin of that name takes that many arguments, but every one of another count is allowed:
  // only a DBA's overload in public (trusted, as before) or nothing (PostgreSQL refuses the call)
  // can answer it. The name alone decides, as the hand list did.
  const auto decide = [&](std::string_view name) {
    policy::BuiltinCall call = policy::builtin_call(name, nargs);
    if (call.verdict == policy::BuiltinCall::Verdict::kNotBuiltin && nargs) {
      const policy::BuiltinCall any = policy::builtin_call(name, std::nullopt);
      if (any.verdict == policy::BuiltinCall::Verdict::kAllowed) return any;
    }
    return call;
  };
  policy::BuiltinCall builtin;
  bool ok = false;
  if (parts.size() == 1) {
    builtin = decide(parts[0]);
    ok = builtin.verdict == policy::BuiltinCall::Verdict::kAllowed ||
         scope.function_allowed(QualifiedName{"public", parts[0]});
  } else if (parts.size() == 2) {
    if (parts[0] == "pg_catalog") builtin = decide(parts[1]);
    ok = builtin.verdict == policy::BuiltinCall::Verdict::kAllowed || scope.function_allowed(QualifiedName{parts[0], parts[1]});
  }
  if (ok) return std::nullopt;
  if (!parts.empty() && transaction_id_function(parts.back())) {
    return "function " + quoted(shown) + " is not allowed: transaction ids and snapshots count other tenants' " +
           "write transactions (rule: " + std::string(kRuleTransactionIds) + ")";
  }
  return "function " + quoted(shown) + " is not allowed (rule: " + std::string(kRuleFunctions) + ")";
}

bool attribute_may_call_denied(std::string_view name, const policy::TenantScope& scope) {
  if (transaction_id_function(name)) return true;
  const policy::BuiltinCall builtin = policy::builtin_call(name, 1);  // x.name means name(x)
  if (builtin.verdict == policy::BuiltinCall::Verdict::kAllowed || scope.function_allowed(QualifiedName{"public", std::string(name)}) ||
      scope.function_allowed(QualifiedName{"pg_catalog", std::string(name)})) {
    return false;
  }
  if (builtin.verdict == policy::BuiltinCall::Verdict::kDenied) return true;
  // pg_catalog functions of that name exist but no call reaches them (they take `internal`, or a
  // transaction-id type: int4recv, xidout, ...): the name is not a function a tenant can call.
  for (const policy::BuiltinFunction& f : policy::builtin_functions_named(name)) {
    if (f.accepts(1)) return false;
  }
  // Not a pg_catalog function callable with one argument. With a loaded snapshot, any function
  // of the database by that name counts. A snapshot that is not loaded (no upstream_database,
  // PostgreSQL unreachable, the first read still running) cannot rule out a function a DBA
  // created over a policy table's row type: it may call. The proxy always has a snapshot
  // (proxy/net/server.cc installs a "not read yet" one before listening); no snapshot at all is
  // the pure rewriter of tests and `rowguard explain`, which keep the names the builtins allow.
  const auto& snapshot = scope.schema;
  if (snapshot == nullptr) return false;
  return !snapshot->loaded || snapshot->function_names.contains(name);
}

bool refused_system_column(std::string_view name) {
  return name == "ctid" || name == "xmin" || name == "xmax" || name == "cmin" || name == "cmax";
}

std::optional<std::string> check_cast(const pg_query::TypeCast& cast) {
  if (!cast.has_type_name()) return "malformed cast" + rule_suffix(kRuleCannotCheck);
  const auto& names = cast.type_name().names();
  if (names.empty() || !names[names.size() - 1].has_string()) return "malformed cast" + rule_suffix(kRuleCannotCheck);
  const std::string& type = names[names.size() - 1].string().sval();
  if (transaction_id_row_type(type)) {
    return "a cast to the row type " + quoted(type) + " is not allowed: it holds transaction ids, which count other " +
           "tenants' write transactions (rule: " + std::string(kRuleTransactionIds) + ")";
  }
  if (!transaction_id_type(type)) return std::nullopt;
  if (cast.has_arg() && cast.arg().has_a_const()) {
    const auto& c = cast.arg().a_const();
    if (c.isnull() || (c.has_sval() && c.sval().sval() == "0") || (c.has_ival() && c.ival().ival() == 0)) {
      return std::nullopt;  // NULL, or the invalid id 0 (age() of it is a constant)
    }
  }
  return "a cast to " + quoted(type) + " is not allowed: transaction ids and snapshots count other tenants' " +
         "write transactions (rule: " + std::string(kRuleTransactionIds) + ")";
}

std::optional<std::string> check_column_type(const pg_query::TypeName& type) {
  const auto& names = type.names();
  if (names.empty() || !names[names.size() - 1].has_string()) return "malformed column definition" + rule_suffix(kRuleCannotCheck);
  const std::string& name = names[names.size() - 1].string().sval();
  if (transaction_id_type(name) || transaction_id_row_type(name)) {
    return "a column defined as " + quoted(name) + " is not allowed: transaction ids and snapshots count other " +
           "tenants' write transactions (rule: " + std::string(kRuleTransactionIds) + ")";
  }
  return std::nullopt;
}

namespace {
std::string parameter_denial(std::string_view type) {
  return "a parameter declared as " + quoted(type) + " is not allowed: transaction ids and snapshots count other " +
         "tenants' write transactions (rule: " + std::string(kRuleTransactionIds) + ")";
}
}  // namespace

std::optional<std::string> check_parameter_type(const pg_query::TypeName& type) {
  const auto& names = type.names();
  if (names.empty() || !names[names.size() - 1].has_string()) return "malformed parameter type" + rule_suffix(kRuleCannotCheck);
  const std::string& name = names[names.size() - 1].string().sval();
  if (transaction_id_type(name) || transaction_id_row_type(name)) return parameter_denial(name);
  return std::nullopt;
}

std::optional<std::string> check_parameter_type_oid(int32_t oid) {
  switch (static_cast<pg::Oid>(oid)) {
    case pg::kXidOid: return parameter_denial("xid");
    case pg::kXid8Oid: return parameter_denial("xid8");
    case pg::kTxidSnapshotOid: return parameter_denial("txid_snapshot");
    case pg::kPgSnapshotOid: return parameter_denial("pg_snapshot");
    case pg::kXidArrayOid: return parameter_denial("xid[]");
    case pg::kXid8ArrayOid: return parameter_denial("xid8[]");
    case pg::kTxidSnapshotArrayOid: return parameter_denial("txid_snapshot[]");
    case pg::kPgSnapshotArrayOid: return parameter_denial("pg_snapshot[]");
    case pg::kRelationRelationRowtypeId: return parameter_denial("pg_class");
    case pg::kPgClassArrayOid: return parameter_denial("pg_class[]");
    case pg::kDatabaseRelationRowtypeId: return parameter_denial("pg_database");
    default:
      // Types made by initdb (FirstGenbkiObjectId .. FirstNormalObjectId): the row types of the
      // system catalogs and views (pg_locks, pg_stat_activity, ... hold xids) and
      // information_schema's domains; no driver declares them.
      if (oid >= static_cast<int32_t>(pg::kFirstGenbkiObjectId) && oid < static_cast<int32_t>(pg::kFirstNormalObjectId)) {
        return parameter_denial("type " + std::to_string(oid) + " (a system row type)");
      }
      return std::nullopt;
  }
}

std::optional<std::string> check_sample_method(const pg_query::RangeTableSample& sample) {
  std::vector<std::string> parts;
  for (const auto& n : sample.method()) {
    if (!n.has_string()) return "malformed TABLESAMPLE method" + rule_suffix(kRuleCannotCheck);
    parts.push_back(n.string().sval());
  }
  const bool builtin = parts.size() == 1 || (parts.size() == 2 && parts[0] == "pg_catalog");
  if (builtin && (parts.back() == "system" || parts.back() == "bernoulli")) return std::nullopt;
  std::string shown;
  for (const auto& p : parts) shown += (shown.empty() ? "" : ".") + p;
  return "TABLESAMPLE method " + quoted(shown) + " is not allowed: only SYSTEM and BERNOULLI (rule: " +
         std::string(kRuleFunctions) + ")";
}

std::optional<std::string> check_operator_name(const google::protobuf::RepeatedPtrField<pg_query::Node>& name,
                                               std::optional<bool> prefix) {
  std::vector<std::string> parts;
  for (const auto& n : name) {
    if (!n.has_string()) return "malformed operator name" + rule_suffix(kRuleCannotCheck);
    parts.push_back(n.string().sval());
  }
  if (parts.empty() || parts.size() > 2) return "malformed operator name" + rule_suffix(kRuleCannotCheck);
  std::string shown = parts.size() == 2 ? "OPERATOR(" + parts[0] + "." + parts[1] + ")" : parts[0];
  if (parts.size() == 2 && parts[0] != "pg_catalog") {
    return "operator " + shown + " is not allowed: only pg_catalog's operators (rule: " + std::string(kRuleOperators) + ")";
  }
  // A name pg_catalog has no operator of (of any kind: a DBA's overload in public of a builtin
  // name is trusted, as for functions) can only be a user-defined operator.
  if (!policy::builtin_operator(parts.back())) {
    return "operator " + shown + " is not one of pg_catalog's operators: a user-defined operator runs user code (rule: " +
           std::string(kRuleOperators) + ")";
  }
  const std::optional<policy::BuiltinOperatorCheck> op = policy::builtin_operator(parts.back(), prefix);
  if (op && !op->allowed) {
    const policy::BuiltinOperator& o = *op->denied;
    return "operator " + shown + " is not allowed: its function pg_catalog." + std::string(o.function) + " is of class " +
           std::string(policy::function_class_name(o.cls)) + " (rule: " + std::string(kRuleOperators) + ")";
  }
  return std::nullopt;
}

}  // namespace rowguard::sqlrewrite
