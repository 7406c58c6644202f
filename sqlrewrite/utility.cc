// Utility statements: transaction control, SET, EXPLAIN, cursors, LISTEN / NOTIFY channels.
#include "sqlrewrite/walker.h"

#include <cctype>

#include "sqlrewrite/function_check.h"
#include "sqlrewrite/settings_check.h"
#include "sqlrewrite/refusal_rules.h"

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

// Settings a tenant may SET / SET LOCAL / SET SESSION / RESET (and SHOW): they change
// formatting or limits of its own session only. Two more are allowed with one value only
// (restricted_setting_refusal): standard_conforming_strings (on) and search_path (the path
// rowguard pins). README.md "Session settings" lists them and the reason for each refusal.
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

constexpr std::string_view kSettingsRule = "(rule: only session settings that cannot change name resolution, "
                                           "identity, string parsing or the tenant)";

// Why a setting outside the allowlist is refused, for the ones drivers and frameworks are known
// to send or that matter for isolation; "" for the rest.
std::string refused_setting_reason(std::string_view name) {
  if (name == "role" || name == "session_authorization") {
    return ": it changes the identity the server checks privileges against";
  }
  if (name == "backslash_quote" || name == "escape_string_warning") {
    return ": it changes how the server reads string literals, rowguard's tenant literals included";
  }
  if (name == "session_replication_role") return ": it turns triggers and rules off";
  if (name.find('.') != std::string_view::npos) {
    return ": a custom setting (the RLS backstop reads the tenant from rowguard.tenant)";
  }
  if (name == "default_tablespace" || name == "temp_tablespaces" || name == "check_function_bodies" ||
      name == "default_with_oids") {
    return ": it only matters for DDL, which tenants cannot run";
  }
  return "";
}

// The value of SET name = <one constant>, lowercased; nullopt for a list or an expression.
std::optional<std::string> one_constant(const pg_query::VariableSetStmt& s, bool lower) {
  if (s.args_size() != 1 || !s.args(0).has_a_const()) return std::nullopt;
  const auto& k = s.args(0).a_const();
  std::string v;
  if (k.has_sval()) {
    v = k.sval().sval();
  } else if (k.has_ival()) {
    v = std::to_string(k.ival().ival());
  } else {
    return std::nullopt;
  }
  if (lower) {
    for (char& c : v) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  return v;
}

// Settings allowed with one value only. RESET, SET ... TO DEFAULT and SET ... FROM CURRENT keep
// (or go back to) the session's start value, which rowguard chose: search_path is the startup
// parameter rowguard sends (proxy/net/connection_startup.cc), standard_conforming_strings was on
// when the session started (checked at login, and rowguard closes a tenant session whose server
// reports it off). nullopt: allowed; a reason: refused; not one of them: also nullopt.
std::optional<std::string> restricted_setting_refusal(const pg_query::VariableSetStmt& s) {
  if (s.name() == "standard_conforming_strings") {
    if (s.kind() != pg_query::VAR_SET_VALUE) return std::nullopt;
    auto v = one_constant(s, true);
    if (v && (*v == "on" || *v == "true" || *v == "yes" || *v == "1")) return std::nullopt;
    return "SET standard_conforming_strings may only be set to on (the value rowguard requires): off would change "
           "how the server reads backslashes in string literals, rowguard's own tenant literals included " +
           std::string(kSettingsRule);
  }
  if (s.name() == "search_path") {
    if (s.kind() != pg_query::VAR_SET_VALUE) return std::nullopt;
    // public, "public" and 'public' all give the path public; "Public" or 'a, b' do not.
    auto v = one_constant(s, false);
    if (v && *v == "public" && s.args(0).a_const().has_sval()) return std::nullopt;
    return "SET search_path may only be set to public, the path rowguard pins for tenant sessions: another path "
           "would change which tables and functions unqualified names resolve to " +
           std::string(kSettingsRule);
  }
  return std::nullopt;
}

// SET TIME ZONE INTERVAL '+05:30' HOUR TO MINUTE (Sequelize sends it at every connect). libpg_query's
// deparser drops the value of this form (it writes "SET timezone TO "), so the node is replaced by
// one it writes: PostgreSQL turns the interval into the setting's text "INTERVAL '<interval_out>'"
// (guc.c, flatten_set_variable_args) and check_timezone reads that back with interval_in, without
// a typmod. For [+-]H:MM or [+-]HH:MM with no range or HOUR TO MINUTE both readings are the same
// hours and minutes, so SET timezone TO 'INTERVAL ''<value>''' sets the same zone. Other values
// (a bare number, which a range reads in its last field; HOUR alone, which truncates the minutes;
// a precision; days) are refused. Called for SET timezone with one TypeCast argument.
void rewrite_time_zone_interval(pg_query::VariableSetStmt& s) {
  const auto& cast = s.args(0).type_cast();
  constexpr int64_t kHourToMinute = (int64_t{1} << 10) | (int64_t{1} << 11);  // INTERVAL_MASK(HOUR | MINUTE)
  const auto& type = cast.type_name();
  bool is_interval = type.names_size() == 2 && type.names(0).has_string() && type.names(1).has_string() &&
                     type.names(0).string().sval() == "pg_catalog" && type.names(1).string().sval() == "interval";
  bool range_ok = type.typmods_size() == 0 ||
                  (type.typmods_size() == 1 && type.typmods(0).has_a_const() && type.typmods(0).a_const().has_ival() &&
                   type.typmods(0).a_const().ival().ival() == kHourToMinute);
  const std::string value =
      cast.has_arg() && cast.arg().has_a_const() && cast.arg().a_const().has_sval() ? cast.arg().a_const().sval().sval() : "";
  size_t i = value.empty() || (value[0] != '+' && value[0] != '-') ? 0 : 1;
  size_t hours = 0;
  while (i < value.size() && std::isdigit(static_cast<unsigned char>(value[i]))) ++i, ++hours;
  bool shape_ok = hours >= 1 && hours <= 2 && i + 3 == value.size() && value[i] == ':' &&
                  std::isdigit(static_cast<unsigned char>(value[i + 1])) &&
                  std::isdigit(static_cast<unsigned char>(value[i + 2]));
  if (!is_interval || !range_ok || !shape_ok || type.array_bounds_size() != 0) {
    deny("SET TIME ZONE INTERVAL is allowed only as INTERVAL '[+-]HH:MM' [HOUR TO MINUTE] (rowguard cannot "
         "forward other forms unchanged); use SET TIME ZONE '<zone name>' " + std::string(kSettingsRule));
  }
  pg_query::Node text;
  text.mutable_a_const()->mutable_sval()->set_sval("INTERVAL '" + value + "'");
  *s.mutable_args(0) = std::move(text);
}

}  // namespace

void Walker::transaction(const pg_query::TransactionStmt& s) {
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
           "not allowed for tenants" + rule_suffix(kRuleStatementKinds));
  }
}

void Walker::set(pg_query::VariableSetStmt& s) {
  switch (s.kind()) {
    case pg_query::VAR_SET_MULTI:
      if (s.name() == "TRANSACTION" || s.name() == "SESSION CHARACTERISTICS") return;
      deny("SET " + s.name() + " is not allowed for tenants " + std::string(kSettingsRule));
    case pg_query::VAR_RESET_ALL:
      deny("RESET ALL is not allowed for tenants (reset settings one by one) " + std::string(kSettingsRule));
    case pg_query::VAR_SET_VALUE:
    case pg_query::VAR_SET_DEFAULT:
    case pg_query::VAR_SET_CURRENT:
    case pg_query::VAR_RESET:
      break;
    default:
      deny("unknown SET form" + rule_suffix(kRuleCannotCheck));
  }
  if (s.name() == "standard_conforming_strings" || s.name() == "search_path") {
    if (s.kind() == pg_query::VAR_SET_VALUE) read_constant();  // the outcome depends on the value
    if (auto why = restricted_setting_refusal(s)) deny(*why);
    return;
  }
  if (!settable(s.name())) {
    deny("SET " + s.name() + " is not allowed for tenants" + refused_setting_reason(s.name()) + " " +
         std::string(kSettingsRule));
  }
  if (s.kind() == pg_query::VAR_SET_VALUE && scope_.setting_limits.find(s.name()) != nullptr) {
    read_constant();  // settings_check.h: the outcome depends on the value
    if (auto why = setting_ceiling_violation(s, scope_.setting_limits)) deny(*why + rule_suffix(kRuleSettingLimits));
  }
  if (s.name() == "timezone" && s.kind() == pg_query::VAR_SET_VALUE && s.args_size() == 1 && s.args(0).has_type_cast()) {
    read_constant();  // the outcome depends on the value
    rewrite_time_zone_interval(s);
  }
  if (s.name() == "client_min_messages" && s.kind() == pg_query::VAR_SET_VALUE) {
    read_constant();  // the outcome depends on the value
    auto v = one_constant(s, false);
    if (!v || !safe_client_min_messages(*v)) {
      deny("SET client_min_messages may only be info, notice, warning or error: the debug levels and log send the "
           "session's debug and log lines, which show transaction ids (they count every tenant's write "
           "transactions) and other sessions' process ids (rule: " + std::string(kRuleTransactionIds) + ")");
    }
  }
  if (s.name() == "client_encoding" && s.kind() == pg_query::VAR_SET_VALUE) {
    read_constant();
    for (const auto& a : s.args()) {
      if (!a.has_a_const() || !a.a_const().has_sval() ||
          !safe_client_encoding(a.a_const().sval().sval())) {
        deny("client_encoding must be UTF8 (or SQL_ASCII): the server converts a statement in another encoding and would read its names and literals differently from the statement checker " + std::string(kSettingsRule));
      }
    }
  }
}

// EXPLAIN's numbers come from the whole table: ANALYZE counts other tenants' rows (Rows Removed
// by Filter), and the planner's row estimates and costs come from statistics over every
// tenant's rows (pg_statistic's most common values and histograms), and even the plan's shape
// without them is the planner's choice from those statistics: refused unless the policy says
// [tenancy] explain = "costs_off"; then tenants get the plan with COSTS OFF only, and every other
// option than VERBOSE / FORMAT / SETTINGS is refused.
void Walker::explain(pg_query::ExplainStmt& s) {
  if (scope_.explain == policy::Explain::kRefuse) {
    deny("EXPLAIN shows the plan the planner chose from statistics over every tenant's rows (which "
         "index, which join order tell how common a value is among other tenants); the policy allows "
         "it with [tenancy] explain = \"costs_off\" (rule: explain)");
  }
  bool costs_off = false;
  for (const auto& o : s.options()) {
    if (!o.has_def_elem()) {
      deny("EXPLAIN option not understood" + rule_suffix(kRuleCannotCheck));
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
      deny("EXPLAIN of " + statement_name(q) + " is not allowed for tenants" + rule_suffix(kRuleStatementKinds));
  }
}

//
// DECLARE name [BINARY] [INSENSITIVE] [[NO] SCROLL] CURSOR [WITH HOLD] FOR <query>: the query
// is a SELECT (PostgreSQL's grammar allows nothing else) and is filtered like any other, at
// every depth; the cursor options only change how rows are fetched, not which. FETCH / MOVE
// (a direction, a count and a cursor name) and CLOSE name | ALL carry no expression and no
// table: they can only reach portals of this session (rowguard gives every client its own
// server connection), and every portal of a tenant session was made from a checked statement
// (a DECLARE rewritten here, or a Bind of a rewritten Parse). WHERE CURRENT OF stays denied
// (CurrentOfExpr is not in pass_through_types()).
StatementKind Walker::cursor(Node& stmt) {
  if (stmt.has_declare_cursor_stmt()) {
    Node& q = *stmt.mutable_declare_cursor_stmt()->mutable_query();
    if (!q.has_select_stmt()) {
      deny("DECLARE CURSOR of " + statement_name(q) + " is not allowed for tenants" +
           rule_suffix(kRuleStatementKinds));
    }
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

// LISTEN/NOTIFY channels are private to a tenant: "jobs" of tenant 1 is "rg1_1_jobs" upstream
// (the length prefix keeps tenants "1" + channel "2_x" and tenant "1_2" + channel "x" apart).
std::string Walker::channel(const std::string& name) const {
  const std::string& tenant = compared_tenant();
  std::string c = "rg" + std::to_string(tenant.size()) + "_" + tenant + "_" + name;
  if (c.size() > 63) {
    deny("channel name " + quote_ident(name) + " is too long for a tenant channel" + rule_suffix(kRuleChannels));
  }
  return c;
}


bool safe_client_encoding(std::string_view name) {
  std::string n;
  for (char c : name) {
    if (c == '_' || c == '-' || c == '\'' || c == '"') continue;  // asyncpg sends 'utf-8'
    n.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  // Not LATIN1, WIN1252, EUC_JP, ... either: the server converts their text to UTF8 before it
  // reads it, so bytes rowguard reads as one name are another name upstream, and names are cut
  // to 63 bytes after the conversion (red team: in LATIN1, "s"x61 + C3 A9 and "s"x61 + C3 83 are
  // two statement names for rowguard and one for the server; an EXECUTE of the first, checked
  // as a harmless SELECT, ran an INSERT into another tenant prepared under the second).
  static const std::unordered_set<std::string_view> kSafe = {"UTF8", "UNICODE", "SQLASCII"};
  return kSafe.contains(n);
}

bool safe_client_min_messages(std::string_view level) {
  std::string v;
  for (char c : level) v.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return v == "info" || v == "notice" || v == "warning" || v == "error";
}

}  // namespace rowguard::sqlrewrite
