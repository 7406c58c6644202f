// Socket-free per-connection logic: startup parameter checks and the tenant statement path.
#include "proxy/session/session.h"

#include <algorithm>
#include <cctype>

#include "sqlrewrite/function_check.h"
#include "sqlrewrite/rewriter.h"

namespace rowguard::session {
namespace {

std::optional<std::vector<int32_t>> parse_parameter_description(std::string_view body) {
  if (body.size() < 2) return std::nullopt;
  size_t n = (static_cast<unsigned char>(body[0]) << 8) | static_cast<unsigned char>(body[1]);
  if (body.size() != 2 + 4 * n) return std::nullopt;
  std::vector<int32_t> out;
  for (size_t i = 0; i < n; ++i) {
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) v = (v << 8) | static_cast<unsigned char>(body[2 + 4 * i + k]);
    out.push_back(static_cast<int32_t>(v));
  }
  return out;
}


// Parameter types declared in Parse for the tenant parameters: unspecified (0, or 705 unknown:
// the server infers the column's type) or one whose text form is the value rowguard checks.
bool checkable_declared_types(const std::vector<int>& tenant_params, const std::vector<int32_t>& types) {
  for (int p : tenant_params) {
    const auto i = static_cast<size_t>(p - 1);
    if (i >= types.size()) continue;
    switch (types[i]) {
      case 0: case 705: case 21: case 23: case 20: case 25: case 1043: case 1042: case 2950:
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
      if (auto why = policy.setting_limits.check(key, value)) {
        return refuse("42501", "rowguard: startup parameter " + *why);
      }
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

TenantSession::TenantSession(std::string tenant, sqlrewrite::RewriteCache& cache, std::string nonce)
    : tenant_(std::move(tenant)), cache_(cache), nonce_(std::move(nonce)) {
  channel_prefix_ = "rg" + std::to_string(tenant_.size()) + "_" + tenant_ + "_";  // as the rewriter
}

std::string TenantSession::refuse(std::string reason) {
  std::string marker = "rowguard_denied_" + nonce_ + "_" + std::to_string(next_marker_++);
  pending_[marker] = Pending{batches_sent_ + 1, denial_response(reason)};
  return marker;
}

const ClientStep& TenantSession::on_client_message(const protocol::Frame& frame, const policy::Policy& policy) {
  namespace fe = protocol::fe;
  ClientStep& step = step_;
  step.clear();
  auto forward_raw = [&] { protocol::append_frame(step.to_server, frame.tag, frame.body); };
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
      on_query(frame.body, policy, step);
      return step;
    case fe::kParse:
      on_parse(frame.body, policy, step);
      return step;
    case fe::kBind:
      on_bind(frame.body, step);
      return step;
    case fe::kClose:
      on_close(frame.body);
      forward_raw();
      return step;
    case fe::kDescribe:
      if (auto t = protocol::parse_target(frame.body); t && t->kind == 'S') {
        describes_.push_back({batches_sent_ + 1, std::string(t->name)});
      }
      forward_raw();
      return step;
    case fe::kExecute:
    case fe::kFlush:
      forward_raw();
      return step;
    case fe::kSync:
      forward_raw();
      ++batches_sent_;
      return step;
    case fe::kFunctionCall: {
      // The fast-path function call runs any function by OID: refused. A failing Query gives
      // the same response shape (ErrorResponse, ReadyForQuery).
      step.denial = "rowguard: the function call protocol (FunctionCall message) is not allowed";
      protocol::append_query(step.to_server, "SELECT " + refuse(step.denial));
      ++batches_sent_;
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
      protocol::append_error_response(step.to_client, "FATAL", "08P01",
                                      "invalid frontend message type " +
                                          std::to_string(static_cast<unsigned char>(frame.tag)));
      return step;
  }
}

void TenantSession::on_query(std::string_view body, const policy::Policy& policy, ClientStep& step) {
  auto sql = protocol::parse_query(body);
  if (!sql) {
    step.close = true;
    protocol::append_error_response(step.to_client, "FATAL", "08P01", "invalid Query message");
    return;
  }
  step.statement.assign(*sql);
  const sqlrewrite::RewriteResult& r = cache_.rewrite(*sql, policy, tenant_);
  std::string why = r.allowed ? check_sql_prepared(r.prepared) : r.reason;
  if (why.empty()) {
    note_sql_prepared(r.prepared);
    protocol::append_query(step.to_server, r.sql);
    if (r.copy_in) {
      copy_.emplace(CopyIn{CopyRowChecker(*r.copy_in, tenant_), batches_sent_ + 1});
      copy_->statement = step.statement;
    }
  } else {
    step.denial = why;
    protocol::append_query(step.to_server, "SELECT " + refuse(why));
  }
  ++batches_sent_;
}

void TenantSession::on_parse(std::string_view body, const policy::Policy& policy, ClientStep& step) {
  auto m = protocol::parse_parse(body);
  if (!m) {
    step.close = true;
    protocol::append_error_response(step.to_client, "FATAL", "08P01", "invalid Parse message");
    return;
  }
  step.statement.assign(m->query);
  const sqlrewrite::RewriteResult& r = cache_.rewrite(m->query, policy, tenant_);
  const bool sql_prepare_or_execute = std::any_of(r.prepared.begin(), r.prepared.end(), [](const auto& op) {
    return op.kind == sqlrewrite::PreparedStatementOp::Kind::kPrepare ||
           op.kind == sqlrewrite::PreparedStatementOp::Kind::kExecute;
  });
  if (r.allowed && (r.copy_in || std::count(r.kinds.begin(), r.kinds.end(), sqlrewrite::StatementKind::kCopyOut) > 0)) {
    step.denial = "rowguard: COPY is supported in the simple query protocol only";
    protocol::append_parse(step.to_server, m->statement, "SELECT " + refuse(step.denial), {});
  } else if (r.allowed && sql_prepare_or_execute) {
    // The statement would run at some later Execute, against whatever the name means then.
    step.denial = "rowguard: SQL-level PREPARE and EXECUTE are supported in the simple query "
                  "protocol only (in the extended protocol, use Parse and Bind)";
    pending_parses_.push_back({batches_sent_ + 1, std::string(m->statement), Statement{}, true});
    protocol::append_parse(step.to_server, m->statement, "SELECT " + refuse(step.denial), {});
  } else if (r.allowed && declared_type_denial(m->param_types)) {
    step.denial = *declared_type_denial(m->param_types);  // sqlrewrite/function_check.h
    pending_parses_.push_back({batches_sent_ + 1, std::string(m->statement), Statement{}, true});
    protocol::append_parse(step.to_server, m->statement, "SELECT " + refuse(step.denial), {});
  } else if (r.allowed && !checkable_declared_types(r.tenant_params, m->param_types)) {
    // A declared type converts the bound value before it reaches the tenant column (a boolean
    // '1' is stored in a text column as 'true'): the checked value would not be the stored one.
    step.denial = "rowguard: a parameter that feeds the tenant column is declared in Parse with a "
                  "type rowguard cannot check (declare it as int2/int4/int8/text/varchar/uuid, or "
                  "leave it unspecified)";
    pending_parses_.push_back({batches_sent_ + 1, std::string(m->statement), Statement{}, true});
    protocol::append_parse(step.to_server, m->statement, "SELECT " + refuse(step.denial), {});
  } else if (r.allowed) {
    pending_parses_.push_back({batches_sent_ + 1, std::string(m->statement), Statement{r.tenant_params, m->param_types}});
    protocol::append_parse(step.to_server, m->statement, r.sql, m->param_types);
  } else {
    // The refusal fails on the server, which then skips the rest of the batch.
    step.denial = r.reason;
    pending_parses_.push_back({batches_sent_ + 1, std::string(m->statement), Statement{}, true});
    protocol::append_parse(step.to_server, m->statement, "SELECT " + refuse(r.reason), {});
  }
}

void TenantSession::on_bind(std::string_view body, ClientStep& step) {
  auto m = protocol::parse_bind(body);
  if (!m) {
    step.close = true;
    protocol::append_error_response(step.to_client, "FATAL", "08P01", "invalid Bind message");
    return;
  }
  // Every statement the server may hold under this name when it runs the Bind. A Parse of this
  // name earlier in the same batch decides alone: if it fails, the server skips the Bind too.
  std::vector<const Statement*> candidates;
  const PendingParse* same_batch = nullptr;
  for (const auto& pp : pending_parses_) {
    if (pp.name == m->statement && pp.batch == batches_sent_ + 1) same_batch = &pp;
  }
  if (same_batch != nullptr) {
    if (!same_batch->refused) candidates.push_back(&same_batch->statement);
  } else {
    candidates = this->candidates(m->statement);
  }
  for (const Statement* st : candidates) {
    for (int p : st->tenant_params) {
      size_t i = static_cast<size_t>(p - 1);
      if (i >= m->params.size()) continue;  // wrong parameter count: the server refuses it
      int32_t oid = i < st->param_types.size() ? st->param_types[i] : 0;
      std::string why = check_tenant_param(m->params[i], m->format_of(i), oid, tenant_, p);
      if (!why.empty()) {
        step.denial = why;
        step.statement = "Bind of prepared statement \"" + std::string(m->statement) + "\"";
        protocol::append_bind_empty(step.to_server, m->portal, refuse(why));
        return;
      }
    }
  }
  protocol::append_frame(step.to_server, protocol::fe::kBind, body);
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
    protocol::append_frame(step.to_server, fe::kCopyFail, refuse(why) + std::string(1, '\0'));
    copy_->failed = true;
  } else {
    step.statement.clear();  // only refusals are logged with the statement
  }
}

void TenantSession::on_close(std::string_view body) {
  auto t = protocol::parse_target(body);
  if (t) pending_closes_.push_back({batches_sent_ + 1, t->kind, std::string(t->name)});
}

ServerStep TenantSession::on_server_message(const protocol::Frame& f, std::string_view raw,
                                            std::string& to_client) {
  namespace be = protocol::be;
  ServerStep step;
  switch (f.tag) {
    case be::kErrorResponse: {
      const std::string prefix = "rowguard_denied_" + nonce_ + "_";
      if (raw.find(prefix) != std::string_view::npos) {
        auto e = protocol::parse_error_fields(f.body);
        std::string msg = e ? e->get('M') : "";
        size_t at = msg.find(prefix);
        if (at != std::string::npos) {
          size_t end = at + prefix.size();
          while (end < msg.size() && std::isdigit(static_cast<unsigned char>(msg[end]))) ++end;
          auto it = pending_.find(msg.substr(at, end - at));
          if (it != pending_.end()) {
            to_client += it->second.error;
            pending_.erase(it);
            return step;
          }
        }
      }
      to_client.append(raw);
      return step;
    }
    case be::kReadyForQuery: {
      auto z = protocol::parse_ready_for_query(f.body);
      if (!z) {
        step.close = true;
        step.reason = "malformed ReadyForQuery from the server";
        return step;
      }
      tx_status_ = z->status;
      ++batches_done_;
      if (copy_ && copy_->answered_by <= batches_done_) copy_.reset();
      // Parses / Closes of finished batches that got no confirmation were skipped by the server.
      std::erase_if(pending_parses_, [&](const PendingParse& p) { return p.batch <= batches_done_; });
      std::erase_if(pending_closes_, [&](const PendingClose& c) { return c.batch <= batches_done_; });
      std::erase_if(pending_sql_, [&](const PendingSql& p) { return p.batch <= batches_done_; });
      // Refusals of a finished batch that the server never reached (it was already skipping
      // to Sync, or the transaction was aborted) are answered: forget them.
      std::erase_if(pending_, [&](const auto& kv) { return kv.second.answered_by <= batches_done_; });
      to_client.append(raw);
      return step;
    }
    case be::kParseComplete: {
      // Confirms the oldest Parse of the current batch still in flight.
      while (!pending_parses_.empty() && pending_parses_.front().batch <= batches_done_) pending_parses_.pop_front();
      if (!pending_parses_.empty()) {
        if (!pending_parses_.front().refused) {
          statements_[pending_parses_.front().name] = std::move(pending_parses_.front().statement);
        }
        pending_parses_.pop_front();
      }
      to_client.append(raw);
      return step;
    }
    case be::kCommandComplete:
      on_command_complete(f.body);
      to_client.append(raw);
      return step;
    case be::kCloseComplete: {
      while (!pending_closes_.empty() && pending_closes_.front().batch <= batches_done_) pending_closes_.pop_front();
      if (!pending_closes_.empty()) {
        if (pending_closes_.front().kind == 'S') statements_.erase(pending_closes_.front().name);
        pending_closes_.pop_front();
      }
      to_client.append(raw);
      return step;
    }
    case be::kParameterDescription: {
      // Answers the oldest Describe(statement) of the current batch; older ones were skipped
      // by an error earlier in their batch.
      while (!describes_.empty() && describes_.front().batch <= batches_done_) describes_.pop_front();
      if (!describes_.empty()) {
        auto it = statements_.find(describes_.front().statement);
        auto types = parse_parameter_description(f.body);
        if (it != statements_.end() && types) {
          auto& declared = it->second.param_types;
          if (declared.size() < types->size()) declared.resize(types->size(), 0);
          for (size_t i = 0; i < types->size(); ++i) {
            if (declared[i] == 0) declared[i] = (*types)[i];
          }
        }
        describes_.pop_front();
      }
      to_client.append(raw);
      return step;
    }
    case be::kCopyInResponse:
      if (!copy_) {
        step.close = true;
        step.reason = "the server asked for COPY data rowguard did not expect";
        return step;
      }
      to_client.append(raw);
      return step;
    case be::kCopyOutResponse:  // COPY ... TO STDOUT: the query was rewritten like a SELECT
      to_client.append(raw);
      return step;
    case be::kCopyBothResponse:
      step.close = true;
      step.reason = "the server entered COPY BOTH mode (replication) for a tenant";
      return step;
    case be::kNotificationResponse: {
      // Deliver only this tenant's channels, under the name the client used.
      if (f.body.size() < 4) return step;
      std::string_view rest = f.body.substr(4);
      if (rest.substr(0, channel_prefix_.size()) != channel_prefix_) return step;
      std::string body(f.body.substr(0, 4));
      body.append(rest.substr(channel_prefix_.size()));
      protocol::append_frame(to_client, be::kNotificationResponse, body);
      return step;
    }
    case be::kParameterStatus: {
      auto p = protocol::parse_parameter_status(f.body);
      if (p && p->name == "standard_conforming_strings" && p->value != "on") {
        step.close = true;
        step.reason = "standard_conforming_strings was turned off";
        return step;
      }
      to_client.append(raw);
      return step;
    }
    default:
      to_client.append(raw);
      return step;
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
  switch (type_oid) {
    case 21:  // int2
    case 23:  // int4
    case 20:  // int8
      if (value->size() != (type_oid == 21 ? 2u : type_oid == 23 ? 4u : 8u)) {
        return "rowguard: " + which + " has a malformed binary integer";
      }
      decoded = std::to_string(read_be(*value));
      break;
    case 25:    // text
    case 1043:  // varchar
    case 1042:  // bpchar
      decoded = std::string(*value);
      break;
    case 2950:  // uuid
      if (value->size() != 16) return "rowguard: " + which + " has a malformed binary uuid";
      decoded = format_uuid(*value);
      return lower(decoded) == lower(tenant) ? "" : "rowguard: " + which + " is not the session tenant";
    default:
      return "rowguard: " + which + " is sent in binary format with a type rowguard cannot check "
             "(declare it as int2/int4/int8/text/varchar/uuid in Parse, or send it as text)";
  }
  return decoded == tenant ? "" : "rowguard: " + which + " is not the session tenant";
}

}  // namespace rowguard::session
