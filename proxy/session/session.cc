// Socket-free per-connection logic: startup parameter checks and the tenant statement path.
#include "proxy/session/session.h"

#include <algorithm>
#include <cctype>

#include "sqlrewrite/rewriter.h"

namespace rowguard::session {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Startup parameters passed upstream unchanged: they only affect formatting of the session.
bool harmless_startup_param(const std::string& name) {
  static const std::vector<std::string> kNames = {
      "application_name", "client_encoding", "datestyle", "timezone", "extra_float_digits",
      "intervalstyle", "fallback_application_name", "lc_messages", "lc_monetary", "lc_numeric",
      "lc_time", "bytea_output", "statement_timeout", "lock_timeout",
      "idle_in_transaction_session_timeout", "client_min_messages",
  };
  return std::find(kNames.begin(), kNames.end(), name) != kNames.end();
}

}  // namespace

StartupDecision check_startup(const protocol::StartupPacket& packet, const policy::Policy& policy) {
  StartupDecision d;
  auto refuse = [&](std::string sqlstate, std::string message) {
    d.ok = false;
    d.sqlstate = std::move(sqlstate);
    d.message = std::move(message);
    return d;
  };
  for (const auto& [name, value] : packet.params) {
    std::string key = lower(name);
    if (key == "user") {
      d.user = value;
    } else if (key == "database") {
      d.database = value;
    } else if (key == "client_encoding") {
      if (!sqlrewrite::safe_client_encoding(value)) {
        return refuse("22023", "rowguard: client_encoding \"" + value +
                                   "\" is not allowed (use UTF8): it could hide quotes from the "
                                   "statement checker");
      }
      d.upstream_params.emplace_back(name, value);
    } else if (harmless_startup_param(key)) {
      d.upstream_params.emplace_back(name, value);
    } else {
      return refuse("42501", "rowguard: startup parameter \"" + name +
                                 "\" is not allowed (only session formatting parameters such as "
                                 "application_name, client_encoding, DateStyle, TimeZone)");
    }
  }
  if (d.user.empty()) return refuse("28000", "no PostgreSQL user name specified in startup packet");
  if (d.database.empty()) d.database = d.user;
  if (policy.proxy.upstream_database) d.database = *policy.proxy.upstream_database;
  d.ok = true;
  return d;
}

std::string denial_response(std::string_view reason) {
  std::string out;
  protocol::append_error_response(out, "ERROR", "42501", reason);
  return out;
}

TenantSession::TenantSession(std::string tenant, sqlrewrite::RewriteCache& cache)
    : tenant_(std::move(tenant)), cache_(cache) {}

Action TenantSession::on_message(const protocol::Frame& frame, const policy::Policy& policy,
                                 char tx_status) {
  namespace fe = protocol::fe;
  Action a;
  switch (frame.tag) {
    case fe::kQuery:
      return on_query(frame.body, policy, tx_status);
    case fe::kTerminate:
      a.kind = ActionKind::kClose;
      return a;
    case fe::kSync:
      // End of an extended-protocol batch that rowguard refused: answer like PostgreSQL.
      discard_until_sync_ = false;
      a.kind = ActionKind::kReply;
      protocol::append_ready_for_query(a.bytes, tx_status);
      return a;
    case fe::kParse:
    case fe::kBind:
    case fe::kDescribe:
    case fe::kExecute:
    case fe::kClose:
    case fe::kFlush:
    case fe::kFunctionCall:
      return not_supported(frame, tx_status);
    case fe::kCopyData:
    case fe::kCopyDone:
    case fe::kCopyFail:
      return a;  // outside COPY these are ignored, as PostgreSQL does
    default:
      a.kind = ActionKind::kClose;
      protocol::append_error_response(a.bytes, "FATAL", "08P01",
                                      std::string("invalid frontend message type ") +
                                          std::to_string(static_cast<unsigned char>(frame.tag)));
      return a;
  }
}

Action TenantSession::not_supported(const protocol::Frame& frame, char tx_status) {
  Action a;
  if (discard_until_sync_ || frame.tag == protocol::fe::kFlush) return a;
  a.kind = ActionKind::kReply;
  if (frame.tag == protocol::fe::kFunctionCall) {
    protocol::append_error_response(a.bytes, "ERROR", "0A000",
                                    "rowguard: the function call protocol is not supported");
    protocol::append_ready_for_query(a.bytes, tx_status);
    return a;
  }
  discard_until_sync_ = true;
  protocol::append_error_response(
      a.bytes, "ERROR", "0A000",
      "rowguard: the extended query protocol is not supported yet; use the simple query protocol",
      {}, "psycopg2 and psql use the simple protocol; many drivers can be configured to do so");
  return a;
}

Action TenantSession::on_query(std::string_view body, const policy::Policy& policy, char tx_status) {
  Action a;
  auto sql = protocol::parse_query(body);
  if (!sql) {
    a.kind = ActionKind::kClose;
    protocol::append_error_response(a.bytes, "FATAL", "08P01", "invalid Query message");
    return a;
  }
  a.statement = std::string(*sql);
  const sqlrewrite::RewriteResult& r = cache_.rewrite(*sql, policy, tenant_);
  if (r.allowed) {
    a.kind = ActionKind::kForward;
    protocol::append_query(a.bytes, r.sql);
    return a;
  }
  a.denial = r.reason;
  if (tx_status == 'T') {
    // Leave the server's transaction aborted, exactly as a failing statement would.
    a.kind = ActionKind::kAbortTx;
    protocol::append_query(a.bytes, kAbortStatement);
    a.error = denial_response(r.reason);
    return a;
  }
  a.kind = ActionKind::kReply;
  a.bytes = denial_response(r.reason);
  protocol::append_ready_for_query(a.bytes, tx_status);
  return a;
}

}  // namespace rowguard::session
