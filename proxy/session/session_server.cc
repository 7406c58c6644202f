// The server's side of a tenant session: a model of what PostgreSQL owes the client.
//
// Every forwarded message the server answers has an entry in `awaited_`, in order (Parse ->
// ParseComplete, Bind -> BindComplete, Describe -> [ParameterDescription] RowDescription |
// NoData, Execute -> DataRow* CommandComplete | EmptyQueryResponse | PortalSuspended, Close ->
// CloseComplete, Sync -> ReadyForQuery, Query -> ... ReadyForQuery; Flush has none). An error
// while the server handles an extended-protocol message makes it discard every message until
// the next Sync, a simple Query too (PostgreSQL's postgres.c: doing_extended_query_message,
// ignore_till_sync), and answer that Sync with one ReadyForQuery: the model drops those entries,
// and messages the client sends while the server skips get none. An error in a Query or at a
// Sync (a failing COMMIT) does not skip. Confirmations (ParseComplete, CloseComplete, a SQL
// PREPARE's CommandComplete) and refusal markers belong to their entry, never to a count.
// A message the model did not predict ends the session: rowguard's bookkeeping must never
// drift from the server's.
#include <cctype>

#include "proxy/session/session.h"

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

std::string message_name(char tag) {
  switch (tag) {
    case protocol::be::kReadyForQuery: return "ReadyForQuery";
    case protocol::be::kErrorResponse: return "ErrorResponse";
    case protocol::be::kRowDescription: return "RowDescription";
    case protocol::be::kDataRow: return "DataRow";
    case protocol::be::kCommandComplete: return "CommandComplete";
    case protocol::be::kEmptyQueryResponse: return "EmptyQueryResponse";
    case protocol::be::kCopyInResponse: return "CopyInResponse";
    case protocol::be::kCopyOutResponse: return "CopyOutResponse";
    case protocol::be::kParameterDescription: return "ParameterDescription";
    case protocol::be::kParseComplete: return "ParseComplete";
    case protocol::be::kBindComplete: return "BindComplete";
    case protocol::be::kCloseComplete: return "CloseComplete";
    case protocol::be::kNoData: return "NoData";
    case protocol::be::kPortalSuspended: return "PortalSuspended";
    default: return "message type " + std::to_string(static_cast<unsigned char>(tag));
  }
}

// Server errors and notices name things a tenant may not learn (rules system_columns and
// transaction_ids): a lock wait's context "while updating tuple (0,23) in relation ..." is the
// row's ctid, and a deadlock's detail "Process 32484 waits for ShareLock on transaction 806;
// blocked by process 32490" carries transaction ids and real backend pids. In the Where ('W') and
// Detail ('D') fields, "tuple (b,o)" becomes "tuple", "transaction N" becomes "transaction" and
// "process N" becomes "process". nullopt: nothing to change (the common case: one scan of the
// body for the three words).
std::optional<std::string> redact_error_body(std::string_view body) {
  if (body.find("tuple (") == std::string_view::npos && body.find("transaction ") == std::string_view::npos &&
      body.find("rocess ") == std::string_view::npos) {
    return std::nullopt;
  }
  auto e = protocol::parse_error_fields(body);
  if (!e) return std::nullopt;  // (the caller relays or refuses it as before)
  auto digits = [](std::string_view s, size_t at) {
    size_t end = at;
    while (end < s.size() && s[end] >= '0' && s[end] <= '9') ++end;
    return end - at;
  };
  // The length of "<word><digits>" at the start of `rest` (0: not there).
  auto numbered = [&](std::string_view rest, std::string_view word) -> size_t {
    if (!rest.starts_with(word)) return 0;
    const size_t n = digits(rest, word.size());
    return n > 0 ? word.size() + n : 0;
  };
  auto scrub = [&](std::string& v) {
    std::string out;
    out.reserve(v.size());
    for (size_t i = 0; i < v.size();) {
      const std::string_view rest = std::string_view(v).substr(i);
      if (size_t a = numbered(rest, "tuple ("); a > 0 && a < rest.size() && rest[a] == ',') {
        if (size_t b = numbered(rest.substr(a), ","); b > 0 && a + b < rest.size() && rest[a + b] == ')') {
          out += "tuple";  // tuple (<block>,<offset>)
          i += a + b + 1;
          continue;
        }
      }
      size_t skip = 0;
      for (std::string_view word : {std::string_view("transaction "), std::string_view("process "),
                                    std::string_view("Process ")}) {
        if (size_t n = numbered(rest, word); n > 0) {
          out.append(word.substr(0, word.size() - 1));
          skip = n;
          break;
        }
      }
      if (skip > 0) {
        i += skip;
      } else {
        out.push_back(v[i++]);
      }
    }
    const bool changed = out != v;
    v = std::move(out);
    return changed;
  };
  bool changed = false;
  for (auto& [code, value] : e->fields) {
    if (code == 'W' || code == 'D') changed = scrub(value) || changed;
  }
  if (!changed) return std::nullopt;
  std::string rebuilt;
  for (const auto& [code, value] : e->fields) {
    rebuilt.push_back(code);
    rebuilt.append(value);
    rebuilt.push_back('\0');
  }
  rebuilt.push_back('\0');
  return rebuilt;
}

// Appends the server's ErrorResponse / NoticeResponse `raw` (tag `tag`, body `body`) for the
// client, redacted (above) when needed.
void relay_error(char tag, std::string_view raw, std::string_view body, std::string& to_client) {
  if (auto redacted = redact_error_body(body)) {
    protocol::append_frame(to_client, tag, *redacted);
  } else {
    to_client.append(raw);
  }
}

}  // namespace

void TenantSession::forget_answered(uint64_t seq) {
  if (pending_.empty()) return;
  std::erase_if(pending_, [&](const auto& kv) { return kv.second.seq <= seq; });
}

void TenantSession::pop_front() {
  const Awaited& a = awaited_.front();
  if (a.copy && copy_ && copy_->seq == a.seq) copy_.reset();
  forget_answered(a.seq);
  awaited_.pop_front();
}

void TenantSession::skip_to_sync() {
  while (!awaited_.empty() && awaited_.front().kind != Await::kSync) {
    const Awaited& a = awaited_.front();
    if (conn_ != nullptr && !a.server_stmt.empty()) {  // pooled: what the server did not do
      if (a.kind == Await::kParse) conn_->parse_failed(a.server_stmt);
      if (a.kind == Await::kClose) conn_->close_skipped(a.server_stmt);
    }
    pop_front();
  }
  if (awaited_.empty()) skipping_ = true;  // the client has not sent that Sync yet
}

void TenantSession::commit_statement(const std::string& name, Statement st) {
  drop_statement(name);
  statement_bytes_ += st.text.size() + st.rewritten.size() + st.sql_template.size() + st.sql_query.size();
  statements_[name] = std::move(st);
}

void TenantSession::drop_statement(std::string_view name) {
  auto it = statements_.find(name);
  if (it == statements_.end()) return;
  statement_bytes_ -= it->second.text.size() + it->second.rewritten.size() + it->second.sql_template.size() +
                      it->second.sql_query.size();
  statements_.erase(it);
}

ServerStep TenantSession::on_server_message(const protocol::Frame& f, std::string_view raw,
                                            std::string& to_client) {
  namespace be = protocol::be;
  ServerStep step;
  auto unexpected = [&]() -> ServerStep {
    step.close = true;
    step.reason = "the server sent " + message_name(f.tag) + " where rowguard expected " +
                  (awaited_.empty() ? std::string("nothing") : "the answer to another message") +
                  " (protocol out of step)";
    return step;
  };
  // Asynchronous messages: any time.
  switch (f.tag) {
    case be::kNoticeResponse:
      relay_error(be::kNoticeResponse, raw, f.body, to_client);
      return step;
    case be::kNotificationResponse: {
      // Deliver only this tenant's channels, under the name the client used. Pooled: the
      // server connection listens on the client's channels during its transactions only
      // (proxy/net/tenant_relay.cc); the listener connection delivers, once.
      if (pooled_ || f.body.size() < 4) return step;
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
    case be::kCopyBothResponse:
      step.close = true;
      step.reason = "the server entered COPY BOTH mode (replication) for a tenant";
      return step;
    default:
      break;
  }
  if (f.tag == be::kErrorResponse) {
    auto e = protocol::parse_error_fields(f.body);
    if (!e) {
      step.close = true;
      step.reason = "malformed ErrorResponse from the server";
      return step;
    }
    const std::string severity = e->get('V').empty() ? e->get('S') : e->get('V');
    if (severity == "FATAL" || severity == "PANIC") {  // the server ends the session
      relay_error(be::kErrorResponse, raw, f.body, to_client);
      return step;
    }
    if (awaited_.empty()) return unexpected();
    Awaited& front = awaited_.front();
    // A refusal: the client gets rowguard's 42501 instead of the server's error.
    bool replaced = false;
    const std::string prefix = "rowguard_denied_" + nonce_ + "_";
    const std::string msg = e->get('M');
    if (size_t at = msg.find(prefix); at != std::string::npos) {
      size_t end = at + prefix.size();
      while (end < msg.size() && std::isdigit(static_cast<unsigned char>(msg[end]))) ++end;
      auto it = pending_.find(msg.substr(at, end - at));
      if (it != pending_.end()) {
        to_client += it->second.error;
        pending_.erase(it);
        replaced = true;
      }
    }
    if (!replaced && front.kind == Await::kQuery && front.pooled_query && !front.names.empty()) {
      // Pooled: an error worded with rowguard's statement name ("wrong number of parameters for
      // prepared statement \"rg_3\"") names the client's statement instead.
      bool renamed = false;
      for (auto& [code, value] : e->fields) {
        if (code != 'M' && code != 'D' && code != 'W') continue;
        for (const auto& [server, client] : front.names) {
          const std::string from = "\"" + server + "\"", to = "\"" + client + "\"";
          for (size_t at = value.find(from); at != std::string::npos; at = value.find(from, at + to.size())) {
            value.replace(at, from.size(), to);
            renamed = true;
          }
        }
      }
      if (renamed) {
        std::string frame;
        protocol::append_error_fields(frame, be::kErrorResponse, *e);
        const protocol::FrameResult r = protocol::decode_frame(frame, frame.size());
        relay_error(be::kErrorResponse, frame, r.frame.body, to_client);
        replaced = true;
      }
    }
    if (!replaced) relay_error(be::kErrorResponse, raw, f.body, to_client);
    switch (front.kind) {
      case Await::kQuery:
        if (!front.started) drop_statement("");  // exec_simple_query drops the unnamed statement
        front.started = true;                    // the rest of the Query is not run
        if (front.pooled_query) pooled_query_failed(front);
        front.sql.clear();
        cursors_failed(front);
        return step;
      case Await::kSync:  // the commit at Sync failed: ReadyForQuery follows, nothing skipped
        return step;
      case Await::kParse:
        // The unnamed statement is dropped before the new text is parsed.
        if (front.name.empty() && !front.injected) drop_statement("");
        skip_to_sync();
        return step;
      default:
        skip_to_sync();
        return step;
    }
  }
  if (awaited_.empty()) return unexpected();
  Awaited& front = awaited_.front();
  if (front.kind == Await::kQuery && !front.started) {
    front.started = true;
    drop_statement("");  // exec_simple_query drops the unnamed statement first
  }
  switch (f.tag) {
    case be::kReadyForQuery: {
      if (front.kind != Await::kSync && front.kind != Await::kQuery) return unexpected();
      auto z = protocol::parse_ready_for_query(f.body);
      if (!z) {
        step.close = true;
        step.reason = "malformed ReadyForQuery from the server";
        return step;
      }
      tx_status_ = z->status;
      if (z->status == 'I') transaction_ended(front.seq);
      pop_front();
      to_client.append(raw);
      return step;
    }
    case be::kParseComplete:
      if (front.kind != Await::kParse || front.synthetic) return unexpected();
      if (front.refused) {
        step.close = true;
        step.reason = "the server accepted a Parse that rowguard had replaced by a failing one";
        return step;
      }
      if (conn_ != nullptr && !front.server_stmt.empty()) conn_->parsed(front.server_stmt);
      if (front.injected) {  // rowguard's own Parse (before a Bind / Describe): not the client's
        pop_front();
        return step;
      }
      commit_statement(front.name, std::move(front.statement));
      pop_front();
      to_client.append(raw);
      return step;
    case be::kBindComplete:
      if (front.kind != Await::kBind) return unexpected();
      portal_bound(front);
      pop_front();
      to_client.append(raw);
      return step;
    case be::kCloseComplete:
      if (front.synthetic) {  // a stand-in: the client gets rowguard's answer to its message
        if (front.kind == Await::kParse) commit_statement(front.name, std::move(front.statement));
        if (front.kind == Await::kClose) drop_statement(front.name);
        to_client += front.answer;
        pop_front();
        return step;
      }
      if (front.kind != Await::kClose) return unexpected();
      if (front.injected) {  // an eviction: the client did not ask
        if (conn_ != nullptr) conn_->closed(front.server_stmt);
        pop_front();
        return step;
      }
      if (front.close_kind == 'S') drop_statement(front.name);
      if (front.close_kind == 'P') portals_.erase(front.name);
      pop_front();
      to_client.append(raw);
      return step;
    case be::kParameterDescription: {
      if (front.kind != Await::kDescribeStatement || front.started) return unexpected();
      front.started = true;
      auto types = parse_parameter_description(f.body);
      if (front.hidden_params > 0) {
        // The statement's last parameters are the tenant's, rowguard's: the client sees its own.
        if (!types || types->size() < static_cast<size_t>(front.hidden_params)) {
          step.close = true;
          step.reason = "the server described a statement with fewer parameters than rowguard binds";
          return step;
        }
        types->resize(types->size() - static_cast<size_t>(front.hidden_params));
      }
      // The parameter types the client did not declare (needed to read binary Bind values).
      auto it = statements_.find(front.name);
      if (it != statements_.end() && types) {
        auto& declared = it->second.param_types;
        if (declared.size() < types->size()) declared.resize(types->size(), 0);
        for (size_t i = 0; i < types->size(); ++i) {
          if (declared[i] == 0) declared[i] = (*types)[i];
        }
      }
      if (front.hidden_params == 0) {
        to_client.append(raw);
        return step;
      }
      std::string body;
      body.push_back(static_cast<char>((types->size() >> 8) & 0xff));
      body.push_back(static_cast<char>(types->size() & 0xff));
      for (int32_t t : *types) {
        const auto u = static_cast<uint32_t>(t);
        for (int shift = 24; shift >= 0; shift -= 8) body.push_back(static_cast<char>((u >> shift) & 0xff));
      }
      protocol::append_frame(to_client, be::kParameterDescription, body);
      return step;
    }
    case be::kRowDescription:
    case be::kNoData:
      if (front.kind == Await::kQuery && front.pooled_query && f.tag == be::kRowDescription &&
          !pooled_query_answer(front, f.tag, f.body, raw, to_client)) {
        return step;  // a stand-in's
      }
      if ((front.kind == Await::kDescribeStatement && front.started) || front.kind == Await::kDescribePortal) {
        pop_front();
      } else if (!(front.kind == Await::kQuery && f.tag == be::kRowDescription)) {
        return unexpected();
      }
      to_client.append(raw);
      return step;
    case be::kDataRow:
      if (front.kind != Await::kExecute && front.kind != Await::kQuery) return unexpected();
      to_client.append(raw);
      return step;
    case be::kCommandComplete:
    case be::kEmptyQueryResponse:
    case be::kPortalSuspended:
      if (front.kind == Await::kExecute) {
        pop_front();
      } else if (front.kind == Await::kQuery && f.tag == be::kCommandComplete && front.pooled_query) {
        pooled_query_answer(front, f.tag, f.body, raw, to_client);  // (relays what the client gets)
        return step;
      } else if (front.kind == Await::kQuery && f.tag != be::kPortalSuspended) {
        if (f.tag == be::kCommandComplete) {
          on_command_complete(f.body);
          confirm_cursor(f.body.substr(0, f.body.find('\0')), front);
        }
      } else {
        return unexpected();
      }
      to_client.append(raw);
      return step;
    case be::kCopyInResponse:
      if (front.kind != Await::kQuery || !front.copy || !copy_ || copy_->seq != front.seq) {
        step.close = true;
        step.reason = "the server asked for COPY data rowguard did not expect";
        return step;
      }
      to_client.append(raw);
      return step;
    case be::kCopyOutResponse:  // COPY ... TO STDOUT: the query was rewritten like a SELECT
    case protocol::fe::kCopyData:
    case protocol::fe::kCopyDone:
      if (front.kind != Await::kQuery) return unexpected();
      to_client.append(raw);
      return step;
    default:
      return unexpected();
  }
}

}  // namespace rowguard::session
