// Socket-free per-connection logic: startup parameter checks and the tenant statement path.
#include "proxy/session/session.h"

#include <algorithm>
#include <cctype>

#include "pg/pg_types.h"
#include "pg/sqlstate.h"
#include "sqlrewrite/function_check.h"
#include "sqlrewrite/rewriter.h"

namespace rowguard::session {
namespace {

// Parameter types declared in Parse for the tenant parameters: unspecified (0, or 705 unknown:
// the server infers the column's type) or one whose text form is the value rowguard checks.
bool checkable_declared_types(const std::vector<int>& tenant_params, const std::vector<int32_t>& types) {
  for (int p : tenant_params) {
    const auto i = static_cast<size_t>(p - 1);
    if (i >= types.size()) continue;
    switch (types[i]) {
      case pg::kInvalidOid: case pg::kUnknownOid: case pg::kInt2Oid: case pg::kInt4Oid: case pg::kInt8Oid:
      case pg::kTextOid: case pg::kVarcharOid: case pg::kBpcharOid: case pg::kUuidOid:
        break;
      default:
        return false;
    }
  }
  return true;
}

std::optional<std::string> declared_type_denial(const std::vector<int32_t>& types) {
  for (int32_t t : types) {
    if (auto why = sqlrewrite::check_parameter_type_oid(t)) return "rowguard: " + *why;
  }
  return std::nullopt;
}

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
  auto refuse = [&](std::string_view sqlstate, std::string message) {
    d.ok = false;
    d.sqlstate = sqlstate;
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
        return refuse(pg::sqlstate::kInvalidParameterValue,
                      "rowguard: client_encoding \"" + value +
                          "\" is not allowed (use UTF8): the server converts a statement in another encoding "
                          "and would read it differently from the statement checker");
      }
      d.upstream_params.emplace_back(name, value);
    } else if (harmless_startup_param(key)) {
      if (auto why = policy.setting_limits.check(key, value)) {
        return refuse(pg::sqlstate::kInsufficientPrivilege, "rowguard: startup parameter " + *why);
      }
      d.upstream_params.emplace_back(name, value);
    } else {
      return refuse(pg::sqlstate::kInsufficientPrivilege,
                    "rowguard: startup parameter \"" + name +
                        "\" is not allowed (only session formatting parameters such as "
                        "application_name, client_encoding, DateStyle, TimeZone)");
    }
  }
  if (d.user.empty()) return refuse(pg::sqlstate::kInvalidAuthorizationSpecification,
                                    "no PostgreSQL user name specified in startup packet");
  if (d.database.empty()) d.database = d.user;
  if (policy.proxy.upstream_database) d.database = *policy.proxy.upstream_database;
  d.ok = true;
  return d;
}

std::string denial_response(std::string_view reason) {
  std::string out;
  protocol::append_error_response(out, "ERROR", pg::sqlstate::kInsufficientPrivilege, reason);
  return out;
}

TenantSession::TenantSession(std::string tenant, sqlrewrite::RewriteCache& cache, std::string nonce)
    : tenant_(std::move(tenant)), cache_(cache), nonce_(std::move(nonce)) {
  channel_prefix_ = "rg" + std::to_string(tenant_.size()) + "_" + tenant_ + "_";  // as the rewriter
}

std::string_view server_name(std::string_view name) { return name.substr(0, 63); }

std::string TenantSession::refuse(std::string reason) {
  std::string marker = "rowguard_denied_" + nonce_ + "_" + std::to_string(next_marker_++);
  pending_[marker] = Pending{next_seq_, denial_response(reason)};
  return marker;
}

std::string TenantSession::refuse_with(std::string error_response) {
  std::string marker = "rowguard_denied_" + nonce_ + "_" + std::to_string(next_marker_++);
  pending_[marker] = Pending{next_seq_, std::move(error_response)};
  return marker;
}

TenantSession::Awaited& TenantSession::expect(Await kind) {
  // A message sent while the server skips to Sync is discarded by it: no entry, but an entry
  // number all the same, so that its refusal (if any) is forgotten with the skipped batch.
  static thread_local Awaited discarded{Await::kSync, 0};
  const uint64_t seq = next_seq_++;
  if (skipping_ && kind != Await::kSync) {
    discarded = Awaited{kind, seq};
    return discarded;
  }
  if (kind == Await::kSync) skipping_ = false;
  awaited_.push_back(Awaited{kind, seq});
  return awaited_.back();
}

std::string TenantSession::room_for(std::string_view text, const policy::LimitSettings& limits) const {
  size_t count = statements_.size();
  for (const auto& a : awaited_) count += a.kind == Await::kParse ? (a.injected ? 0 : 1) : a.sql.size();
  if (count >= limits.max_prepared_statements) {
    return "rowguard: this session holds " + std::to_string(count) + " prepared statements, the most "
           "rowguard allows per session (" + std::to_string(limits.max_prepared_statements) +
           ", [limits] max_prepared_statements); close some first";
  }
  if (statement_bytes_ + text.size() > limits.max_prepared_statement_bytes) {
    return "rowguard: the texts of this session's prepared statements would exceed " +
           std::to_string(limits.max_prepared_statement_bytes) +
           " bytes, the most rowguard allows per session ([limits] max_prepared_statement_bytes); close some first";
  }
  return "";
}

std::vector<std::string_view> TenantSession::stale_texts(const policy::Policy& policy, size_t min_bytes) const {
  std::vector<std::string_view> out;
  auto add = [&](const Statement& st) {
    if (st.policy_version == policy.version || st.text.size() < min_bytes) return;
    if (std::find(out.begin(), out.end(), std::string_view(st.text)) == out.end()) out.emplace_back(st.text);
  };
  for (const auto& [name, st] : statements_) add(st);
  for (const auto& a : awaited_) {
    if (a.kind == Await::kParse && !a.refused && !a.injected) add(a.statement);
  }
  return out;
}

std::string TenantSession::recheck(Statement& st, std::string_view name, const policy::Policy& policy) {
  if (st.policy_version == policy.version) return "";
  const sqlrewrite::RewriteHandle r = cache_.rewrite(st.text, policy, tenant_);
  bool same = r->allowed && r->sql == st.rewritten;
  if (r->allowed && st.tenant_count > 0) {
    // The tenant-parameter form must still be what the server holds (its first parameter was
    // one past the client's, which asking with that many declared gives again).
    auto form = cache_.tenant_param_form(st.text, policy, static_cast<size_t>(st.tenant_first - 1));
    same = form && form->sql == st.rewritten && form->first == st.tenant_first && form->count == st.tenant_count;
  }
  if (!same) {
    return "rowguard: prepared statement \"" + std::string(name) + "\" was prepared under an older policy "
           "that a reload has since changed; prepare it again (rule: a reload applies to every statement)";
  }
  st.policy_version = policy.version;
  return "";
}

std::optional<std::string_view> TenantSession::statement_text(const protocol::Frame& frame) {
  if (frame.tag == protocol::fe::kQuery) return protocol::parse_query(frame.body);
  if (frame.tag == protocol::fe::kParse) {
    if (auto m = protocol::parse_parse(frame.body)) return m->query;
  }
  return std::nullopt;
}

const ClientStep& TenantSession::on_client_message(const protocol::Frame& frame, const policy::Policy& policy,
                                                   const sqlrewrite::RewriteResult* precomputed) {
  namespace fe = protocol::fe;
  ClientStep& step = step_;
  step.clear();
  auto forward_raw = [&] { protocol::append_frame(step.to_server, frame.tag, frame.body); };
  if (awaited_.size() >= policy.limits.max_pipelined_messages && frame.tag != fe::kTerminate) {
    step.close = true;
    protocol::append_error_response(step.to_client, "FATAL", pg::sqlstate::kProgramLimitExceeded,
                                    "rowguard: more than " + std::to_string(policy.limits.max_pipelined_messages) +
                                        " messages await the server's answer (read the answers; [limits] "
                                        "max_pipelined_messages)");
    return step;
  }
  if (copy_ && !copy_->done && !copy_->failed && frame.tag != fe::kCopyData && frame.tag != fe::kCopyDone &&
      frame.tag != fe::kCopyFail && frame.tag != fe::kTerminate) {
    // In COPY FROM STDIN PostgreSQL fails the COPY on any other message and drops that message
    // (a Sync or Flush it ignores): the model would await an answer that never comes.
    step.close = true;
    protocol::append_error_response(step.to_client, "FATAL", pg::sqlstate::kProtocolViolation,
                                    "rowguard: only CopyData, CopyDone or CopyFail may follow COPY FROM STDIN");
    return step;
  }
  switch (frame.tag) {
    case fe::kParse:
    case fe::kBind:
    case fe::kDescribe:
    case fe::kExecute:
    case fe::kClose:
    case fe::kFlush:
      extended_open_ = true;
      break;
    case fe::kSync:
      extended_open_ = false;
      break;
    default:
      break;
  }
  switch (frame.tag) {
    case fe::kQuery:
      on_query(frame.body, policy, step, precomputed);
      return step;
    case fe::kParse:
      on_parse(frame.body, policy, step, precomputed);
      return step;
    case fe::kBind:
      on_bind(frame.body, policy, step);
      return step;
    case fe::kClose: {
      // Closing a statement the server does not have does nothing there (CloseComplete), so
      // no name is refused here; the statement counts as gone once CloseComplete arrives.
      auto t = protocol::parse_target(frame.body);
      if (!t || (t->kind != 'S' && t->kind != 'P')) {
        step.close = true;
        protocol::append_error_response(step.to_client, "FATAL", pg::sqlstate::kProtocolViolation,
                                        "invalid Close message");
        return step;
      }
      if (pooled_ && t->kind == 'S' && !t->name.empty()) {
        // The client's statement goes when the stand-in's CloseComplete arrives (not if the
        // server skips to Sync first); the connection's statement stays, shared. A SQL-level
        // prepared statement is the server's under the client's name (the client is pinned).
        const std::string name(server_name(t->name));
        const Statement* st = skipping_ ? nullptr : resolve(name);
        if (st == nullptr || st->id != 0) {
          Awaited& a = stand_in(Await::kClose, step);
          a.close_kind = 'S';
          a.name = name;
          protocol::append_frame(a.answer, protocol::be::kCloseComplete, {});
          return step;
        }
      }
      Awaited& a = expect(Await::kClose);
      a.close_kind = t->kind;
      a.name = server_name(t->name);
      forward_raw();
      return step;
    }
    case fe::kDescribe:
      on_describe(frame.body, policy, step);
      return step;
    case fe::kExecute:
      on_execute(frame.body, policy, step);
      return step;
    case fe::kFlush:
      forward_raw();
      return step;
    case fe::kSync:
      expect(Await::kSync);
      if (conn_ != nullptr) batch_tick_ = conn_->tick();  // what the next batch uses is spared from eviction
      forward_raw();
      return step;
    case fe::kFunctionCall: {
      // The fast-path function call runs any function by OID: refused. A failing Query gives
      // the same response shape (ErrorResponse, ReadyForQuery).
      step.denial = "rowguard: the function call protocol (FunctionCall message) is not allowed";
      protocol::append_query(step.to_server, "SELECT " + refuse(step.denial));
      expect(Await::kQuery);
      return step;
    }
    case fe::kCopyData:
    case fe::kCopyDone:
    case fe::kCopyFail:
      on_copy_message(frame, step);
      return step;
    case fe::kTerminate:
      forward_raw();
      step.close = true;
      return step;
    default:
      step.close = true;
      protocol::append_error_response(step.to_client, "FATAL", pg::sqlstate::kProtocolViolation,
                                      "invalid frontend message type " +
                                          std::to_string(static_cast<unsigned char>(frame.tag)));
      return step;
  }
}

void TenantSession::on_query(std::string_view body, const policy::Policy& policy, ClientStep& step,
                             const sqlrewrite::RewriteResult* precomputed) {
  auto sql = protocol::parse_query(body);
  if (!sql) {
    step.close = true;
    protocol::append_error_response(step.to_client, "FATAL", pg::sqlstate::kProtocolViolation, "invalid Query message");
    return;
  }
  step.statement.assign(*sql);
  // Held to the end: an EXECUTE's re-check (check_sql_prepared) uses the cache again.
  sqlrewrite::RewriteHandle held;
  if (!precomputed) held = cache_.rewrite(*sql, policy, tenant_);
  const sqlrewrite::RewriteResult& r = precomputed ? *precomputed : *held;
  if (pooled_ && r.allowed && !r.prepared.empty()) {
    pooled_query(r, *sql, policy, step);  // session_prepared.cc
    return;
  }
  std::string why = r.allowed ? check_sql_prepared(r.prepared, policy) : r.reason;
  if (why.empty() && std::any_of(r.prepared.begin(), r.prepared.end(), [](const auto& op) {
        return op.kind == sqlrewrite::PreparedStatementOp::Kind::kPrepare;
      })) {
    why = room_for(*sql, policy.limits);
  }
  if (why.empty() && !r.cursors.empty()) why = check_cursors(r.cursors, policy);
  if (why.empty()) {
    std::vector<SqlOp> ops = sql_ops(r.prepared, *sql, r.sql, policy.version);
    protocol::append_query(step.to_server, r.sql);
    const bool copy_in = r.copy_in.has_value();
    if (copy_in) {
      copy_.emplace(CopyIn{CopyRowChecker(*r.copy_in, tenant_), next_seq_});
      copy_->statement = step.statement;
    }
    const bool discarded = skipping_;  // the server skips it: nothing is recorded
    Awaited& a = expect(Await::kQuery);
    a.copy = copy_in;
    a.sql = std::move(ops);
    if (!r.cursors.empty() && !discarded) send_cursors(r.cursors, policy.version, a);
  } else {
    step.denial = why;
    protocol::append_query(step.to_server, "SELECT " + refuse(why));
    expect(Await::kQuery);
  }
}

void TenantSession::on_parse(std::string_view body, const policy::Policy& policy, ClientStep& step,
                             const sqlrewrite::RewriteResult* precomputed) {
  auto m = protocol::parse_parse(body);
  if (!m) {
    step.close = true;
    protocol::append_error_response(step.to_client, "FATAL", pg::sqlstate::kProtocolViolation, "invalid Parse message");
    return;
  }
  step.statement.assign(m->query);
  sqlrewrite::RewriteHandle held;
  if (!precomputed) held = cache_.rewrite(m->query, policy, tenant_);
  const sqlrewrite::RewriteResult& r = precomputed ? *precomputed : *held;
  const bool sql_prepare_or_execute = std::any_of(r.prepared.begin(), r.prepared.end(), [](const auto& op) {
    return op.kind == sqlrewrite::PreparedStatementOp::Kind::kPrepare ||
           op.kind == sqlrewrite::PreparedStatementOp::Kind::kExecute;
  });
  std::string why;
  if (!r.allowed) {
    why = r.reason;
  } else if (r.copy_in || std::count(r.kinds.begin(), r.kinds.end(), sqlrewrite::StatementKind::kCopyOut) > 0) {
    why = "rowguard: COPY is supported in the simple query protocol only";
  } else if (sql_prepare_or_execute) {
    // The statement would run at some later Execute, against whatever the name means then.
    why = "rowguard: SQL-level PREPARE and EXECUTE are supported in the simple query "
          "protocol only (in the extended protocol, use Parse and Bind)";
  } else if (auto type_denial = declared_type_denial(m->param_types)) {
    why = *type_denial;  // sqlrewrite/function_check.h
  } else if (!checkable_declared_types(r.tenant_params, m->param_types)) {
    // A declared type converts the bound value before it reaches the tenant column (a boolean
    // '1' is stored in a text column as 'true'): the checked value would not be the stored one.
    why = "rowguard: a parameter that feeds the tenant column is declared in Parse with a "
          "type rowguard cannot check (declare it as int2/int4/int8/text/varchar/uuid, or "
          "leave it unspecified)";
  } else {
    why = room_for(m->query, policy.limits);
  }
  if (why.empty() && pooled_ && !m->statement.empty()) {
    Statement st{r.tenant_params, m->param_types, std::string(m->query), policy.version, r.sql, r.cursors,
                 next_statement_id_++, m->param_types};
    use_tenant_params(st, policy);
    pooled_parse(server_name(m->statement), std::move(st), step);
    return;
  }
  if (why.empty()) {
    protocol::append_parse(step.to_server, m->statement, r.sql, m->param_types);
    Awaited& a = expect(Await::kParse);
    a.name = server_name(m->statement);
    a.statement = Statement{r.tenant_params, m->param_types, std::string(m->query), policy.version, r.sql, r.cursors,
                            next_statement_id_++, {}};
    return;
  }
  // The refusal fails on the server, which then skips the rest of the batch.
  step.denial = why;
  const std::string marker = refuse(why);
  // Pooled: a client name is never a server name (the failing Parse must not meet rowguard's).
  protocol::append_parse(step.to_server, pooled_ && !m->statement.empty() ? std::string_view(marker) : m->statement,
                         "SELECT " + marker, {});
  Awaited& a = expect(Await::kParse);
  a.name = server_name(m->statement);
  a.refused = true;
}

void TenantSession::on_execute(std::string_view body, const policy::Policy& policy, ClientStep& step) {
  // Execute: the portal name, NUL, then the row limit (Int32).
  const size_t nul = body.find('\0');
  if (nul == std::string_view::npos || body.size() != nul + 5) {
    step.close = true;
    protocol::append_error_response(step.to_client, "FATAL", pg::sqlstate::kProtocolViolation,
                                    "invalid Execute message");
    return;
  }
  const std::string_view portal = body.substr(0, nul);
  if (std::string why = stale_portal(portal, policy); !why.empty()) {
    // Executing a portal that does not exist fails on the server at the same point.
    step.denial = why;
    step.statement = "Execute of portal \"" + std::string(portal) + "\"";
    std::string body2 = refuse(why);
    body2.append(body.substr(nul));
    protocol::append_frame(step.to_server, protocol::fe::kExecute, body2);
  } else {
    protocol::append_frame(step.to_server, protocol::fe::kExecute, body);
  }
  expect(Await::kExecute);
}

void TenantSession::on_describe(std::string_view body, const policy::Policy& policy, ClientStep& step) {
  auto t = protocol::parse_target(body);
  if (!t || (t->kind != 'S' && t->kind != 'P')) {
    step.close = true;
    protocol::append_error_response(step.to_client, "FATAL", pg::sqlstate::kProtocolViolation,
                                    "invalid Describe message");
    return;
  }
  if (t->kind == 'P') {
    if (std::string why = stale_portal(t->name, policy); !why.empty()) {
      step.denial = why;
      step.statement = "Describe of portal \"" + std::string(t->name) + "\"";
      std::string body2(1, 'P');
      body2 += refuse(why);
      body2.push_back('\0');
      protocol::append_frame(step.to_server, protocol::fe::kDescribe, body2);
    } else {
      protocol::append_frame(step.to_server, protocol::fe::kDescribe, body);
    }
    expect(Await::kDescribePortal);
    return;
  }
  const std::string name(server_name(t->name));
  if (pooled_ && !name.empty() && !skipping_) {
    if (conn_ == nullptr) {
      no_connection(step);
      return;
    }
    std::string body2(1, 'S');
    int hidden = 0;
    if (Statement* st = resolve(name); st == nullptr) {
      body2 += refuse_with(undefined_statement(name));  // PostgreSQL's 26000, at the same point
    } else {
      hidden = st->tenant_count;  // (read before ensure_on_server, which may move *st)
      body2 += ensure_on_server(*st, name, step);
    }
    body2.push_back('\0');
    protocol::append_frame(step.to_server, protocol::fe::kDescribe, body2);
    Awaited& a = expect(Await::kDescribeStatement);
    a.name = name;
    a.hidden_params = hidden;
    return;
  }
  if (candidates(name).empty() && !(pooled_ && skipping_)) {
    // Fail closed on a name rowguard does not know; a Describe of a statement that does not
    // exist fails on the server at the same point.
    step.denial = "rowguard: Describe of prepared statement \"" + std::string(t->name) +
                  "\", which this session has not prepared (rule: fail closed on unknown statements)";
    step.statement = "Describe of prepared statement \"" + std::string(t->name) + "\"";
    std::string body2(1, 'S');
    body2 += refuse(step.denial);
    body2.push_back('\0');
    protocol::append_frame(step.to_server, protocol::fe::kDescribe, body2);
  } else {
    protocol::append_frame(step.to_server, protocol::fe::kDescribe, body);
  }
  expect(Await::kDescribeStatement).name = name;
}

void TenantSession::on_bind(std::string_view body, const policy::Policy& policy, ClientStep& step) {
  auto m = protocol::parse_bind(body);
  if (!m) {
    step.close = true;
    protocol::append_error_response(step.to_client, "FATAL", pg::sqlstate::kProtocolViolation, "invalid Bind message");
    return;
  }
  const std::string_view name = server_name(m->statement);
  const bool translate = pooled_ && !name.empty() && !skipping_;
  if (translate && conn_ == nullptr) {
    no_connection(step);
    return;
  }
  std::vector<Statement*> cands;
  if (translate) {
    Statement* st = resolve(name);
    if (st == nullptr) {
      // PostgreSQL's 26000, at the same point (a Bind of a statement that does not exist).
      protocol::append_bind_empty(step.to_server, m->portal, refuse_with(undefined_statement(name)));
      expect(Await::kBind);
      return;
    }
    cands.push_back(st);
  } else if (pooled_ && !name.empty()) {
    // The server skips to Sync: it discards this Bind.
    protocol::append_frame(step.to_server, protocol::fe::kBind, body);
    expect(Await::kBind);
    return;
  } else {
    cands = candidates(name);
  }
  std::string why;
  if (cands.empty()) {
    why = "rowguard: Bind of prepared statement \"" + std::string(m->statement) +
          "\", which this session has not prepared (rule: fail closed on unknown statements)";
  }
  if (!cands.empty()) why = room_for_portal(m->portal, policy.limits);
  for (Statement* st : cands) {
    if (why.empty()) why = recheck(*st, m->statement, policy);
    if (why.empty() && !st->cursors.empty()) why = bind_cursors(*st, policy, next_seq_);
    for (int p : st->tenant_params) {
      if (!why.empty()) break;
      size_t i = static_cast<size_t>(p - 1);
      if (i >= m->params.size()) continue;  // wrong parameter count: the server refuses it
      int32_t oid = i < st->param_types.size() ? st->param_types[i] : 0;
      why = check_tenant_param(m->params[i], m->format_of(i), oid, tenant_, p);
    }
    if (!why.empty()) break;
  }
  if (!why.empty()) {
    step.denial = why;
    step.statement = "Bind of prepared statement \"" + std::string(m->statement) + "\"";
    protocol::append_bind_empty(step.to_server, m->portal, refuse(why));
    expect(Await::kBind);
    return;
  }
  const bool discarded = skipping_;  // the server skips it: nothing is recorded
  // Before expect(): `cands` may point into awaited_ (a Parse not yet confirmed), which it grows.
  const uint64_t statement_id = cands.size() == 1 ? cands.front()->id : 0;
  if (translate && cands.front()->tenant_count > 0) {
    // The tenant as parameters: the client's values, then the tenant's.
    const auto client_params = static_cast<size_t>(cands.front()->tenant_first - 1);
    const int tenant_params = cands.front()->tenant_count;
    if (m->params.size() != client_params) {
      // PostgreSQL's answer for the client's statement, at the same point (the server would
      // count rowguard's parameters too). A client never supplies the tenant's.
      std::string error;
      protocol::append_error_response(error, "ERROR", pg::sqlstate::kProtocolViolation,
                                      "bind message supplies " + std::to_string(m->params.size()) +
                                          " parameters, but prepared statement \"" + std::string(m->statement) +
                                          "\" requires " + std::to_string(client_params));
      protocol::append_bind_empty(step.to_server, m->portal, refuse_with(std::move(error)));
      expect(Await::kBind);
      return;
    }
    const std::string on_server = ensure_on_server(*cands.front(), name, step);  // (may move cands' target)
    cands.clear();
    append_tenant_bind(*m, on_server, tenant_params, step.to_server);
  } else if (translate) {
    // The statement under the connection's name (a Parse injected first when it lacks it).
    const std::string on_server = ensure_on_server(*cands.front(), name, step);
    cands.clear();
    const size_t p1 = body.find('\0');
    const size_t p2 = body.find('\0', p1 + 1);
    std::string body2(body.substr(0, p1 + 1));
    body2 += on_server;
    body2.append(body.substr(p2));
    protocol::append_frame(step.to_server, protocol::fe::kBind, body2);
  } else {
    protocol::append_frame(step.to_server, protocol::fe::kBind, body);
  }
  Awaited& a = expect(Await::kBind);
  if (discarded) return;
  a.name = server_name(m->portal);
  a.policy_version = policy.version;
  a.statement_id = statement_id;
  // Recorded now, so that an Execute pipelined behind it is checked against it. A named portal
  // recorded before keeps its record until BindComplete: if it still exists (a WITH HOLD cursor
  // of that name), the Bind fails and the old one stays. The unnamed portal is replaced by a
  // Bind that succeeds, and when the Bind fails the server skips to Sync: the new record holds.
  if (a.name.empty()) {
    portals_[a.name] = Portal{policy.version, a.seq, false, a.statement_id};
  } else {
    portals_.try_emplace(a.name, Portal{policy.version, a.seq, false, a.statement_id});
  }
}

void TenantSession::on_copy_message(const protocol::Frame& frame, ClientStep& step) {
  namespace fe = protocol::fe;
  if (!copy_) return;  // outside COPY these are ignored, as PostgreSQL does
  step.statement = copy_->statement;
  if (copy_->failed || copy_->done) {
    if (frame.tag != fe::kCopyData) copy_->done = true;
    step.statement.clear();
    return;
  }
  std::string rows;
  std::string why;
  switch (frame.tag) {
    case fe::kCopyData:
      why = copy_->checker.feed(frame.body, rows);
      if (!rows.empty()) protocol::append_frame(step.to_server, fe::kCopyData, rows);
      break;
    case fe::kCopyDone:
      why = copy_->checker.finish(rows);
      if (!rows.empty()) protocol::append_frame(step.to_server, fe::kCopyData, rows);
      if (why.empty()) protocol::append_frame(step.to_server, fe::kCopyDone, {});
      copy_->done = true;
      break;
    default:  // CopyFail from the client
      protocol::append_frame(step.to_server, fe::kCopyFail, frame.body);
      copy_->done = true;
      return;
  }
  if (!why.empty()) {
    // Abort the COPY upstream: nothing of it is committed. The server's error names the
    // marker, which the relay replaces with the refusal.
    step.denial = why;
    step.to_server.clear();
    const std::string marker = refuse(why);
    pending_[marker].seq = copy_->seq;  // answered within the COPY's Query
    protocol::append_frame(step.to_server, fe::kCopyFail, marker + std::string(1, '\0'));
    copy_->failed = true;
  } else {
    step.statement.clear();  // only refusals are logged with the statement
  }
}

namespace {

std::string format_uuid(std::string_view b) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    auto c = static_cast<unsigned char>(b[i]);
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

int64_t read_be(std::string_view b) {
  uint64_t v = 0;
  for (char c : b) v = (v << 8) | static_cast<unsigned char>(c);
  // sign-extend
  if (!b.empty() && b.size() < 8 && (static_cast<unsigned char>(b[0]) & 0x80)) {
    v |= ~uint64_t{0} << (8 * b.size());
  }
  return static_cast<int64_t>(v);
}

}  // namespace

std::string check_tenant_param(const std::optional<std::string_view>& value, int16_t format,
                               int32_t type_oid, std::string_view tenant, int param_number) {
  const std::string which = "parameter $" + std::to_string(param_number) + " (the tenant column)";
  if (!value) return "rowguard: " + which + " is NULL, not the session tenant";
  if (format == 0) {
    if (*value == tenant) return "";
    return "rowguard: " + which + " is not the session tenant";
  }
  std::string decoded;
  const auto oid = static_cast<pg::Oid>(type_oid);
  switch (oid) {
    case pg::kInt2Oid:
    case pg::kInt4Oid:
    case pg::kInt8Oid:
      if (value->size() != (oid == pg::kInt2Oid ? 2u : oid == pg::kInt4Oid ? 4u : 8u)) {
        return "rowguard: " + which + " has a malformed binary integer";
      }
      decoded = std::to_string(read_be(*value));
      break;
    case pg::kTextOid:
    case pg::kVarcharOid:
    case pg::kBpcharOid:
      decoded = std::string(*value);
      break;
    case pg::kUuidOid:
      if (value->size() != 16) return "rowguard: " + which + " has a malformed binary uuid";
      decoded = format_uuid(*value);
      return lower(decoded) == lower(tenant) ? "" : "rowguard: " + which + " is not the session tenant";
    default:
      return "rowguard: " + which + " is sent in binary format with a type rowguard cannot check "
             "(declare it as int2/int4/int8/text/varchar/uuid in Parse, or send it as text)";
  }
  return decoded == tenant ? "" : "rowguard: " + which + " is not the session tenant";
}

void TenantSession::server_lost() {
  awaited_ = Fifo<Awaited>();
  pending_.clear();
  skipping_ = false;
  extended_open_ = false;
  if (pooled_) {
    // Pooled: the client's named statements (Parse and SQL PREPARE) are its own (prepared on the
    // next connection at their next use); what lived on the lost connection only (a SQL PREPARE
    // made before the session was pooled, the unnamed statement) is gone with it.
    std::erase_if(statements_, [](const auto& kv) { return kv.second.id == 0 || kv.first.empty(); });
    statement_bytes_ = 0;
    for (const auto& [name, st] : statements_) {
      statement_bytes_ += st.text.size() + st.rewritten.size() + st.sql_template.size() + st.sql_query.size();
    }
    conn_ = nullptr;
  } else {
    statements_.clear();
    statement_bytes_ = 0;
  }
  portals_.clear();
  copy_.reset();
  tx_status_ = 'I';
}

}  // namespace rowguard::session
