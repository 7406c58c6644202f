// Tenant sessions: two loops, one per direction. Every client message goes through the
// socket-free session (proxy/session: rewrite or deny); the server's answers are checked
// against the session's model of what is owed.
#include <spdlog/spdlog.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pg/sqlstate.h"
#include "auth/scram.h"
#include "proxy/net/client_connection.h"

namespace rowguard::net {
namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

namespace {

std::string to_hex(std::string_view raw) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string truncate(std::string_view s, size_t n = 300) {
  if (s.size() <= n) return std::string(s);
  return std::string(s.substr(0, n)) + "...";
}

}  // namespace

// The session lives as long as the connection: after the loops it still says whether an answer
// was owed (in_flight, cancel_backend).
asio::awaitable<void> ClientConnection::tenant_loop() {
  session::TenantSession& session =
      tenant_relay_.session.emplace(*tenant_, worker_.cache, to_hex(auth::random_bytes(6)));
  // Transaction pooling: named protocol statements follow the client from one server
  // connection to the next (proxy/session/server_statements.h).
  if (tx_pool_.on) {
    session.set_pooled(true);
    co_await (client_to_server(session) || server_to_client(session) || notification_pump(session));
  } else {
    co_await (client_to_server(session) || server_to_client(session));
  }
}

asio::awaitable<void> ClientConnection::client_to_server(session::TenantSession& session) {
  struct SetOnExit {
    bool& flag;
    ~SetOnExit() { flag = true; }
  } done{tx_pool_.client_done};  // (transaction pooling: server_to_client may wait for a lease)
  std::string out;
  for (;;) {
    // Handle every complete message already received, then forward them in one write.
    bool complete = false;
    for (;;) {
      auto r = protocol::decode_frame(client_buf_, policy_->limits.max_message_size);
      if (r.status == protocol::DecodeStatus::kNeedMore) break;
      if (r.too_long) {
        refuse_too_long(client_buf_[0], r.length);
        co_return;
      }
      if (r.status == protocol::DecodeStatus::kMalformed) {
        spdlog::warn("session={} client={} malformed message: {}", id_, peer_, r.error);
        std::string msg = "invalid message: " + r.error;
        co_await fatal(pg::sqlstate::kProtocolViolation, msg);
        co_return;
      }
      if (tx_pool_.on && (tx_pool_.skip_to_sync || r.frame.tag == protocol::fe::kTerminate)) {
        // Terminate is not forwarded: the server connection is the pool's (run() gives it back).
        // After an error answered without a server, an extended batch is skipped up to its Sync.
        const char tag = r.frame.tag;
        client_buf_.erase(0, r.frame.size);
        complete = true;
        if (tag == protocol::fe::kTerminate) {
          tenant_relay_.client_closing = true;
          co_return;
        }
        if (tag == protocol::fe::kSync) {
          tx_pool_.skip_to_sync = false;
          std::string z;
          protocol::append_ready_for_query(z, 'I');
          if (!co_await write_client_between(z)) co_return;
        }
        continue;
      }
      if (session.tx_status() == 'I' && session.at_boundary() && r.frame.tag != protocol::fe::kTerminate) {
        co_await server_.pause_gate().at_boundary(*info_);  // PAUSE holds new transactions here
      }
      if (session.tx_status() == 'I') {  // reloads apply between transactions
        const policy::PolicyPtr& latest = server_.policy(worker_);
        if (latest != policy_) policy_ = latest;
      }
      if (policy_->version != tenant_relay_.prechecked_version) {
        // A new policy: the session's long prepared statements are re-checked at their next use
        // (Bind, EXECUTE, a portal). Rewrite them on the parse pool now, so that the re-check is
        // a cache hit and a session holding many MB of prepared text never holds the worker.
        tenant_relay_.prechecked_version = policy_->version;
        co_await precheck_on_pool(session);
        if (session.tx_status() == 'I' && server_.policy(worker_)->version != policy_->version) continue;
      }
      if (r.frame.tag != protocol::fe::kTerminate) {
        // A reload that removed this login (or moved it to another tenant) ends the session at
        // its next message, in or out of a transaction (proxy/net/identity_recheck.h).
        if (std::string why = identity_revoked(); !why.empty()) {
          spdlog::warn("session={} user={} tenant={} ended: {}", id_, user_, *tenant_, why);
          audit("(session ended by a policy reload)", false, why);
          tenant_relay_.client_closing = true;
          std::string bye;
          protocol::append_terminate(bye);
          co_await write_server(bye);
          co_await fatal(pg::sqlstate::kInvalidAuthorizationSpecification, why);
          co_return;
        }
      }
      // A long statement not in this worker's cache is rewritten on the parse pool meanwhile
      // this worker serves its other sessions; this session handles nothing else until then (its messages keep their order).
      std::optional<sqlrewrite::RewriteResult> pooled;
      if (r.frame.size >= policy_->limits.offload_parse_bytes && server_.parse_pool() != nullptr) {
        auto text = session::TenantSession::statement_text(r.frame);
        // A text this worker's cache already holds costs a lookup here: no thread hop for it.
        if (text && !worker_.cache.would_hit(*text, *policy_, *tenant_)) {
          std::string job_text(*text);
          std::string job_tenant = *tenant_;
          pooled = co_await server_.parse_pool()->async_rewrite(std::move(job_text), policy_, std::move(job_tenant),
                                                                 asio::use_awaitable);
          // A reload that landed while the text was on the pool applies to it (outside a
          // transaction, as everywhere): the message is handled again from the top, with the
          // new policy and the identity re-check, and rewritten again.
          if (session.tx_status() == 'I' && server_.policy(worker_)->version != policy_->version) continue;
          if (pooled) worker_.cache.adopt(*text, *policy_, *tenant_, *pooled);
        }
      }
      if (tx_pool_.on && !tx_pool_.lease) {
        // The first message that needs the server: take a connection from the pool (FIFO).
        bool got = false;
        if (!tx_pool_.error_pending) got = co_await take_lease(out);
        if (!got) {
          std::string reply;
          refuse_without_server(r.frame.tag, reply);
          client_buf_.erase(0, r.frame.size);
          complete = true;
          if (!co_await write_client_between(reply)) co_return;
          continue;
        }
      }
      auto t0 = std::chrono::steady_clock::now();
      const session::ClientStep& step = session.on_client_message(r.frame, *policy_, pooled ? &*pooled : nullptr);
      server_.metrics().observe_rewrite(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count()));
      if (r.frame.tag == protocol::fe::kQuery || r.frame.tag == protocol::fe::kSync) {
        info_->set_tx(session.tx_status(), true);
        if (!tenant_relay_.upstream_wait) tenant_relay_.upstream_wait = t0;
      }
      if (tx_pool_.on && step.denial.empty()) note_statements_run(session, r.frame, pooled ? &*pooled : nullptr);
      client_buf_.erase(0, r.frame.size);
      if (!step.statement.empty()) info_->count_statement();
      complete = true;
      if (!step.denial.empty()) {
        spdlog::warn("session={} denied user={} tenant={} client={}: {} | statement: {}", id_,
                     user_, *tenant_, peer_, step.denial, truncate(step.statement));
        server_.metrics().count_denial(step.denial, *tenant_);
        audit(step.statement, false, step.denial);
      } else if (!step.statement.empty()) {
        // (step.statement: the text; r.frame's bytes are gone from client_buf_ by now)
        if (tx_pool_.on && (r.frame.tag == protocol::fe::kQuery || r.frame.tag == protocol::fe::kParse)) {
          note_session_state(step.statement, pooled ? &*pooled : nullptr);
        }
        // The level test first: no string copy per statement unless debug logging is on.
        if (spdlog::should_log(spdlog::level::debug)) {
          spdlog::debug("session={} forward: {}", id_, truncate(step.statement));
        }
        server_.metrics().count_allowed(*tenant_);
        audit(step.statement, true, {});
      }
      out += step.to_server;
      if (step.close) {
        tenant_relay_.client_closing = true;  // Terminate (or a fatal refusal): the server closing is expected
        if (!out.empty()) co_await write_server(out);
        if (!step.to_client.empty()) co_await write_client(step.to_client);
        co_return;
      }
    }
    if (!out.empty()) {
      while (tx_pool_.busy) {  // end_of_lease is reading settings back on the connection
        busy_signal_.expires_at(asio::steady_timer::time_point::max());
        co_await busy_signal_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (tenant_relay_.server_done) co_return;
      }
      // Transaction pooling: a connection that died is server_to_client's to report (08006).
      const bool wrote = co_await write_server(out);
      if (!wrote && !tx_pool_.on) co_return;
      out.clear();
      give_back(out);
    }
    give_back(client_buf_);
    watch_.client_bytes(complete, !client_buf_.empty(), policy_->limits);
    if (!co_await read_more(client_, client_buf_)) {
      tenant_relay_.client_gone = !tenant_relay_.server_done;  // (not when this read was cancelled because the server side ended)
      co_return;
    }
  }
}

asio::awaitable<void> ClientConnection::server_to_client(session::TenantSession& session) {
  struct SetOnExit {
    bool& flag;
    ~SetOnExit() { flag = true; }
  } done{tenant_relay_.server_done};  // however this loop ends: the client's side is then not "gone"
  std::string out;
  bool lost = false;  // transaction pooling: the server ended the leased connection
  for (;;) {
    if (lost) {
      lost = false;
      lease_lost(session, out);
      if (!out.empty() && !co_await write_client_between(out)) co_return;
      out.clear();
      continue;
    }
    if (tx_pool_.on && !tx_pool_.lease) {  // between transactions: nothing to read
      if (tx_pool_.client_done) co_return;
      if (!co_await deliver_notifications(session)) co_return;  // (LISTEN: what came meanwhile)
      if (tx_pool_.lease || tx_pool_.client_done) continue;
      lease_signal_.expires_at(asio::steady_timer::time_point::max());
      co_await lease_signal_.async_wait(asio::as_tuple(asio::use_awaitable));
      if (tx_pool_.client_done) co_return;
      continue;
    }
    size_t pos = 0;
    for (;;) {
      auto r = protocol::decode_frame(std::string_view(server_buf_).substr(pos), policy_->limits.max_server_message);
      if (r.status == protocol::DecodeStatus::kNeedMore) break;
      if (r.too_long) {
        spdlog::error("session={} message from the server over [limits] max_server_message: {}", id_, r.error);
        co_await write_client(out);
        co_await fatal(pg::sqlstate::kProgramLimitExceeded,
                       "rowguard: a message from the server exceeds [limits] max_server_message");
        co_return;
      }
      if (r.status == protocol::DecodeStatus::kMalformed) {
        spdlog::error("session={} malformed message from the server: {}", id_, r.error);
        co_await write_client(out);
        co_await fatal(pg::sqlstate::kProtocolViolation, "rowguard: malformed message from the server");
        co_return;
      }
      if (tx_pool_.on && r.frame.tag == protocol::be::kErrorResponse) {
        // A FATAL error ends the server connection (pg_terminate_backend, a shutdown): the
        // session goes on without it (lease_lost: 08006, then the next transaction elsewhere).
        auto e = protocol::parse_error_fields(r.frame.body);
        const std::string severity = !e ? "" : e->get('V').empty() ? e->get('S') : e->get('V');
        if (severity == "FATAL" || severity == "PANIC") {
          spdlog::warn("session={} user={} the server ended the pooled connection: {}", id_, user_, e->get('M'));
          lost = true;
          break;
        }
      }
      if (tx_pool_.on && tx_pool_.swallow > 0) {  // the answers of take_lease's DISCARD SEQUENCES
        if (r.frame.tag == protocol::be::kErrorResponse) {  // (never seen): fail closed, the connection goes
          spdlog::warn("session={} user={} DISCARD SEQUENCES failed on a pooled connection", id_, user_);
          lost = true;
          break;
        }
        pos += r.frame.size;
        if (r.frame.tag == protocol::be::kReadyForQuery) --tx_pool_.swallow;
        continue;
      }
      std::string_view raw = std::string_view(server_buf_).substr(pos, r.frame.size);
      pos += r.frame.size;
      tenant_relay_.last_server_tag = r.frame.tag;
      const bool was_idle = session.idle();
      session::ServerStep step = session.on_server_message(r.frame, raw, out);
      if (!was_idle && session.idle()) {  // every forwarded message is answered
        const char tx = session.tx_status();
        info_->set_tx(tx, false);
        info_->set_prepared(session.prepared_count(), session.prepared_bytes(), session.portal_count());
        watch_.idle(tx, policy_->limits);
        if (draining_ && tx == 'I' && session.at_boundary()) {
          co_await write_client(out);
          co_await fatal(pg::sqlstate::kAdminShutdown,
                         "terminating connection due to administrator command (rowguard is shutting down)");
          co_return;
        }
      }
      if (step.close) {
        spdlog::error("session={} closing: {}", id_, step.reason);
        co_await write_client(out);
        std::string msg = "rowguard: " + step.reason;
        co_await fatal(pg::sqlstate::kProtocolViolation, msg);
        co_return;
      }
      if (out.size() >= kFlushAt) {
        if (!co_await write_client_between(out)) co_return;
        out.clear();
      }
    }
    if (lost) continue;  // (what the loop relayed before the FATAL error goes out with the 08006)
    server_buf_.erase(0, pos);
    if (tx_pool_.on && tx_pool_.lease && tx_pool_.swallow == 0 && session.idle() && session.tx_status() == 'I' &&
        session.at_boundary()) {
      co_await end_of_lease(session);  // before the client sees ReadyForQuery
    }
    if (tx_pool_.on && !tx_pool_.notes.empty() && session.idle() && session.tx_status() == 'I' &&
        session.at_boundary() && !tx_pool_.skip_to_sync) {
      out += take_notes();  // notifications: between transactions, after its ReadyForQuery
    }
    if (!out.empty()) {
      if (!co_await write_client_between(out)) co_return;
      out.clear();
      give_back(out);
    }
    if (tx_pool_.on && !tx_pool_.lease) continue;  // given back: nothing more to read from it
    give_back(server_buf_);
    if (!co_await read_more(up(), server_buf_)) {
      if (tenant_relay_.client_closing || tx_pool_.client_done) co_return;
      if (tx_pool_.on) {
        std::string reply;
        lease_lost(session, reply);
        if (!reply.empty() && !co_await write_client_between(reply)) co_return;
        continue;
      }
      // A server that ends a session says why in a FATAL ErrorResponse (relayed above); one
      // that crashed, was killed or cut off a message did not: tell the client.
      spdlog::warn("session={} user={} the server closed the connection{}", id_, user_,
                   server_buf_.empty() ? "" : " in the middle of a message");
      if (tenant_relay_.last_server_tag != protocol::be::kErrorResponse || !server_buf_.empty()) {
        co_await fatal(pg::sqlstate::kConnectionFailure, "rowguard: the connection to the server was lost");
      }
      co_return;
    }
    if (tenant_relay_.upstream_wait) {
      server_.metrics().observe_upstream(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                                   std::chrono::steady_clock::now() - *tenant_relay_.upstream_wait)
                                                                   .count()),
                                        *tenant_);
      tenant_relay_.upstream_wait.reset();
    }
  }
}

asio::awaitable<void> ClientConnection::precheck_on_pool(session::TenantSession& session) {
  if (server_.parse_pool() == nullptr) co_return;
  const policy::PolicyPtr policy = policy_;
  // Copies: the session's statements may change while this coroutine waits (answers arrive).
  std::vector<std::string> texts;
  for (std::string_view t : session.stale_texts(*policy, policy->limits.offload_parse_bytes)) texts.emplace_back(t);
  for (std::string& text : texts) {
    if (worker_.cache.would_hit(text, *policy, *tenant_)) continue;
    std::string job_text = text;
    std::string job_tenant = *tenant_;
    sqlrewrite::RewriteResult r = co_await server_.parse_pool()->async_rewrite(
        std::move(job_text), policy, std::move(job_tenant), asio::use_awaitable);
    if (server_.policy()->version != policy->version) co_return;  // another reload: its own pass
    worker_.cache.adopt(text, *policy, *tenant_, r);
  }
}

asio::awaitable<void> ClientConnection::cancel_backend() {
  spdlog::info("session={} user={} client gone while a statement ran: cancelling it upstream", id_, user_);
  co_await send_cancel(backend_key_.first, backend_key_.second);
}

// ---- transaction pooling ------------------------------------------------------------------------

namespace {

bool contains_ci(std::string_view text, std::string_view word) {  // `word` in lower case
  if (word.size() > text.size()) return false;
  for (size_t i = 0; i + word.size() <= text.size(); ++i) {
    size_t j = 0;
    while (j < word.size()) {
      char c = text[i + j];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != word[j]) break;
      ++j;
    }
    if (j == word.size()) return true;
  }
  return false;
}

}  // namespace

std::string ClientConnection::pinned() const {
  if (!tx_pool_.on) return "";
  if (!tx_pool_.pin.empty()) return tx_pool_.pin;
  if (tx_pool_.advisory) return "a session-level advisory lock";
  const auto& s = tenant_relay_.session;
  if (!s) return "";
  if (s->pooled() ? s->needs_pin() : s->has_named_statements()) {
    return s->pooled() ? s->pin_reason() : "a named prepared statement";
  }
  if (s->portal_count() > 0 && tx_pool_.cursors) return "a cursor WITH HOLD";
  return "";
}

void ClientConnection::note_statements_run(session::TenantSession& session, const protocol::Frame& frame,
                                           const sqlrewrite::RewriteResult* pooled) {
  std::vector<std::string> names;
  if (frame.tag == protocol::fe::kBind) {
    auto m = protocol::parse_bind(frame.body);
    if (m && !m->statement.empty()) names.emplace_back(m->statement);
  } else if (frame.tag == protocol::fe::kQuery) {
    auto text = session::TenantSession::statement_text(frame);
    if (!text || !contains_ci(*text, "execute")) return;  // (no rewrite looked up for the rest)
    sqlrewrite::RewriteHandle held;
    const sqlrewrite::RewriteResult* r = pooled;
    if (r == nullptr) {
      held = worker_.cache.rewrite(*text, *policy_, *tenant_);  // a hit: the session just rewrote it
      r = held.get();
    }
    if (!r->allowed) return;
    for (const auto& op : r->prepared) {
      if (op.kind == sqlrewrite::PreparedStatementOp::Kind::kExecute) names.push_back(op.name);
    }
  }
  for (const std::string& name : names) {
    // (after on_client_message: the statement a Parse / PREPARE of the same batch made counts)
    const std::string text = session.statement_text_of(name);
    if (text.empty()) continue;
    if (text.size() < policy_->limits.offload_parse_bytes || worker_.cache.would_hit(text, *policy_, *tenant_)) {
      note_session_state(text, nullptr);
    } else {
      // A long text the worker's cache no longer holds is not rewritten here (the parse pool's
      // job): fail closed, PostgreSQL is asked after the transaction.
      tx_pool_.settings_touched = tx_pool_.state_touched = true;
      if (tx_pool_.pin.empty() && (contains_ci(text, "currval") || contains_ci(text, "lastval"))) {
        tx_pool_.pin = "currval/lastval (sequence values of the session)";
      }
    }
  }
}

void ClientConnection::note_session_state(std::string_view text, const sqlrewrite::RewriteResult* pooled) {
  sqlrewrite::RewriteHandle held;
  const sqlrewrite::RewriteResult* r = pooled;
  if (r == nullptr) {
    held = worker_.cache.rewrite(text, *policy_, *tenant_);  // a hit: the session rewrote it
    r = held.get();
  }
  if (!r->allowed) return;
  for (sqlrewrite::StatementKind k : r->kinds) {
    if (k == sqlrewrite::StatementKind::kSet) tx_pool_.settings_touched = true;
    if (k == sqlrewrite::StatementKind::kListen) tx_pool_.state_touched = true;
  }
  // What PostgreSQL is asked after the transaction (end_of_lease). Fail closed: a word in a
  // string literal asks too (it only costs a query).
  if (contains_ci(r->sql, "discard")) tx_pool_.settings_touched = tx_pool_.state_touched = true;
  if (contains_ci(r->sql, "reset")) tx_pool_.settings_touched = true;
  if (contains_ci(r->sql, "listen") || contains_ci(r->sql, "advisory")) tx_pool_.state_touched = true;
  if (contains_ci(r->sql, "advisory")) tx_pool_.advisory_touched = true;
  if (tx_pool_.pin.empty() && (contains_ci(r->sql, "currval") || contains_ci(r->sql, "lastval"))) {
    tx_pool_.pin = "currval/lastval (sequence values of the session)";
  }
}

asio::awaitable<bool> ClientConnection::take_lease(std::string& out) {
  out.clear();  // (anything here was meant for a connection that was lost)
  follow_placement();  // a reload that moved the tenant: this transaction goes to its new upstream
  if (!tx_pool_.relisten.empty()) {
    std::vector<std::string> channels(tx_pool_.relisten.begin(), tx_pool_.relisten.end());
    tx_pool_.relisten.clear();
    co_await update_listens(channels);
  }
  tx_pool_.pool->apply_policy(policy_, server_.worker_count());  // a reload's [pool] size and timeouts
  PoolRuntime::Lease lease;
  for (int tries = 0;; ++tries) {
    lease = co_await tx_pool_.pool->acquire(id_, tenant_);  // within the tenant's share ([pool] max_tenant_share)
    if (!lease.conn || tries >= 16 || idle_connection_alive(*lease.conn)) break;
    // The server ended it while it was idle in the pool (a restart, pg_terminate_backend,
    // idle_session_timeout): closed, and the next one is tried.
    spdlog::info("session={} pooled server connection (backend pid {}) ended while idle: closed", id_, lease.conn->pid);
    lease.conn->failed = true;
    tx_pool_.pool->release(lease.conn, false);
  }
  if (!lease.conn) {
    tx_pool_.error_pending = true;
    tx_pool_.error_sqlstate = lease.sqlstate;
    tx_pool_.error_message = lease.message;
    if (lease.sqlstate == pg::sqlstate::kTooManyConnections) {
      spdlog::warn("session={} user={} waited [pool] query_wait_timeout for a server connection", id_, user_);
    }
    co_return false;
  }
  PooledServer* c = lease.conn;
  // The client's settings on this connection: one injected query for what differs.
  std::string sql;
  std::vector<std::string> names;
  for (const auto& [name, value] : tx_pool_.wanted) {
    auto it = c->settings.find(name);
    if (it != c->settings.end() && it->second == value) continue;
    sql += sql.empty() ? "SELECT " : ", ";
    sql += "pg_catalog.set_config(" + sql_literal(name) + ", " + sql_literal(value) + ", false)";
    names.push_back(name);
  }
  // LISTEN: the client's channels on this connection for the transaction (PostgreSQL then
  // decides what it does to them); read back and UNLISTENed at its end (end_of_lease).
  std::string mirror;
  for (const std::string& channel : tx_pool_.listens) mirror += "LISTEN " + quote_channel(channel) + "; ";
  if (!sql.empty() || !mirror.empty()) {
    const bool select = !sql.empty();
    sql = mirror + sql;
    QueryAnswer a = co_await run_injected(*c, sql, policy_->limits.max_server_message);
    if (!a.ok || a.rows.size() != (select ? 1u : 0u) || (select && a.rows[0].size() != names.size())) {
      c->failed = true;
      tx_pool_.pool->release(c, false);
      tx_pool_.error_pending = true;
      tx_pool_.error_sqlstate = a.sqlstate.empty() ? std::string(pg::sqlstate::kConnectionFailure) : a.sqlstate;
      tx_pool_.error_message = "rowguard: cannot apply this session's settings on a server connection: " + a.message;
      spdlog::warn("session={} user={} {}", id_, user_, tx_pool_.error_message);
      co_return false;
    }
    for (size_t i = 0; i < names.size(); ++i) {
      if (!a.rows[0][i]) continue;
      c->settings[names[i]] = *a.rows[0][i];  // set_config answers with PostgreSQL's spelling
      tx_pool_.wanted[names[i]] = *a.rows[0][i];
    }
  }
  // The backend keeps the values nextval gave in its session: currval of another session's
  // sequence value would answer it (55000 on a backend of one's own). A connection that changes
  // hands forgets them first, with a DISCARD SEQUENCES sent ahead of the client's first message
  // (no round trip of its own; server_to_client swallows its answers before the client's).
  if (c->last_holder != 0 && c->last_holder != id_) {
    protocol::append_query(out, "DISCARD SEQUENCES");
    tx_pool_.swallow = 1;
  }
  c->last_holder = id_;
  tx_pool_.lease = c;
  tx_pool_.mirrored = !mirror.empty();
  tx_pool_.advisory_touched = false;
  if (client_key_) note_server_holder(c->pid, *tenant_, client_key_->first);  // (notifications' sender pid)
  // Idle inside a transaction past [pool] idle_transaction_timeout: 25P03, as PostgreSQL's
  // idle_in_transaction_session_timeout; the connection is closed, never reused (run()).
  watch_.set_pool_idle_transaction(policy_->pool.idle_transaction_timeout_seconds);
  c->statements.set_capacity(policy_->pool.max_prepared_statements);  // (a reload may change it)
  if (tenant_relay_.session) tenant_relay_.session->attach(&c->statements);
  tx_pool_.settings_touched = tx_pool_.state_touched = false;
  server_buf_.clear();
  backend_key_ = {c->pid, c->key};
  if (client_key_) server_.cancels().retarget(*client_key_, {c->pid, c->key, c->cancel_sent, c->host, c->port});
  info_->set_backend_pid(c->pid);
  lease_signal_.cancel();  // server_to_client reads from it now
  co_return true;
}

asio::awaitable<void> ClientConnection::end_of_lease(session::TenantSession& session) {
  PooledServer* c = tx_pool_.lease;
  bool reusable = server_buf_.empty();
  if (tx_pool_.settings_touched || tx_pool_.state_touched || tx_pool_.mirrored || session.portal_count() > 0) {
    // The transaction ran SET / RESET / DISCARD / LISTEN / UNLISTEN or named an advisory lock:
    // ask PostgreSQL what the settings are now, whether the connection listens and whether it
    // holds a session-level advisory lock (a rolled-back SET or LISTEN, SET LOCAL, savepoints and
    // an xact lock come out right by construction). LISTEN: the channels it listens on now are
    // the client's (listener.h); UNLISTEN * in the same round trip when the connection will
    // go back to the pool (a pooled connection listens on nothing between transactions).
    static const std::string kSql =
        read_settings_sql() +
        ", (SELECT count(*) FROM pg_catalog.pg_listening_channels())"
        ", (SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid())"
        ", (SELECT count(*) FROM pg_catalog.pg_cursors)"
        "; SELECT c FROM pg_catalog.pg_listening_channels() c";
    const bool unlisten = pinned().empty() && !tx_pool_.advisory_touched && session.portal_count() == 0;
    const size_t n = pooled_settings().size();
    tx_pool_.busy = true;
    std::string sql = unlisten ? kSql + "; UNLISTEN *" : kSql;
    QueryAnswer a = co_await run_injected(*c, sql, policy_->limits.max_server_message);
    tx_pool_.busy = false;
    busy_signal_.cancel();
    bool shape = a.ok && !a.rows.empty() && a.rows[0].size() == n + 3 && a.rows[0][n] && a.rows[0][n + 1] &&
                 a.rows[0][n + 2];
    std::vector<std::string> channels;
    for (size_t i = 1; shape && i < a.rows.size(); ++i) {
      if (a.rows[i].size() != 1 || !a.rows[i][0]) shape = false;
      else channels.push_back(*a.rows[i][0]);
    }
    if (shape) {
      for (size_t i = 0; i < n; ++i) {
        if (!a.rows[0][i]) continue;
        c->settings[pooled_settings()[i]] = *a.rows[0][i];
        tx_pool_.wanted[pooled_settings()[i]] = *a.rows[0][i];
      }
      tx_pool_.listening = !unlisten && *a.rows[0][n] != "0";
      tx_pool_.mirrored = tx_pool_.listening;
      tx_pool_.advisory = *a.rows[0][n + 1] != "0";
      // The session's model may still list a cursor PostgreSQL dropped (a WITH HOLD cursor of a
      // transaction that rolled back): the pin follows PostgreSQL's answer.
      tx_pool_.cursors = *a.rows[0][n + 2] != "0";
      tx_pool_.settings_touched = tx_pool_.state_touched = tx_pool_.advisory_touched = false;
      co_await update_listens(channels);  // (the listener LISTENs before the client sees ReadyForQuery)
    } else {
      spdlog::warn("session={} user={} cannot read the session settings back: {}", id_, user_, a.message);
      reusable = false;
    }
    if (tx_pool_.lease != c) co_return;
    // The client went on meanwhile (pipelining): the connection stays with it.
    if (!(session.idle() && session.tx_status() == 'I' && session.at_boundary())) co_return;
    // Rare: the pin guess above was wrong. A connection the client keeps listens on its
    // channels (its next transaction starts without take_lease); one given back on none.
    const bool keep = !pinned().empty();
    std::string fix;
    if (reusable && keep && !tx_pool_.mirrored) {
      for (const std::string& channel : tx_pool_.listens) fix += "LISTEN " + quote_channel(channel) + "; ";
    } else if (reusable && !keep && tx_pool_.listening) {
      fix = "UNLISTEN *";
    }
    if (!fix.empty()) {
      tx_pool_.busy = true;
      QueryAnswer f = co_await run_injected(*c, fix, policy_->limits.max_server_message);
      tx_pool_.busy = false;
      busy_signal_.cancel();
      if (!f.ok) reusable = false;
      tx_pool_.listening = tx_pool_.mirrored = keep;
      if (tx_pool_.lease != c) co_return;
      if (!(session.idle() && session.tx_status() == 'I' && session.at_boundary())) co_return;
    }
  }
  const std::string why = pinned();
  const bool pin = !why.empty();
  const std::string_view category = pin ? pin_category(why) : std::string_view();
  if (pin != tx_pool_.counted_pinned || category != tx_pool_.counted_pin_reason) {
    if (tx_pool_.counted_pinned) tx_pool_.pool->pinned(-1, tx_pool_.counted_pin_reason);
    if (pin) tx_pool_.pool->pinned(+1, category);
    tx_pool_.counted_pin_reason = category;
    const bool newly = pin && !tx_pool_.counted_pinned;
    tx_pool_.counted_pinned = pin;
    if (newly) {
      spdlog::info("session={} user={} pinned to its server connection: {}", id_, user_, pinned());
    }
  }
  if (pin && reusable) co_return;
  drop_lease(reusable);
}

// ---- LISTEN in transaction pooling (listener.h) ----------------------------------------------

asio::awaitable<void> ClientConnection::update_listens(const std::vector<std::string>& channels) {
  const session::TenantSession& session = *tenant_relay_.session;
  std::set<std::string> now;
  size_t ignored = 0;
  for (const std::string& channel : channels) {  // (the client's own first: a LISTEN past the bound is the one ignored)
    if (!session.client_channel(channel)) continue;  // (not this tenant's: cannot be, but never followed)
    if (tx_pool_.listens.contains(channel)) now.insert(channel);
  }
  for (const std::string& channel : channels) {
    if (!session.client_channel(channel) || now.contains(channel)) continue;
    if (now.size() >= kMaxChannelsPerClient) {
      ++ignored;
      continue;
    }
    now.insert(channel);
  }
  if (ignored > 0) {
    spdlog::warn("session={} user={} listens on {} channels: {} more LISTEN ignored", id_, user_, now.size(), ignored);
    const std::string msg = "rowguard: a session listens on at most " + std::to_string(kMaxChannelsPerClient) +
                            " channels; " + std::to_string(ignored) + " LISTEN ignored";
    std::string frame;
    protocol::append_notice_response(frame, pg::sqlstate::kProgramLimitExceeded, msg);
    tx_pool_.notes_bytes += frame.size();
    tx_pool_.notes.push_back({"", std::move(frame)});
  }
  if (now == tx_pool_.listens) co_return;
  NotificationListener& listener = tx_pool_.pool->listener();
  for (const std::string& channel : tx_pool_.listens) {
    if (!now.contains(channel)) listener.unlisten(this, channel);
  }
  std::vector<std::string> added;
  for (const std::string& channel : now) {
    if (!tx_pool_.listens.contains(channel)) added.push_back(channel);
  }
  tx_pool_.listens = std::move(now);  // (first: a client gone meanwhile drops them all)
  for (std::string& channel : added) co_await listener.listen(this, std::move(channel));
}

void ClientConnection::drop_listens() {
  if (tx_pool_.listens.empty() || !tx_pool_.pool) return;
  NotificationListener& listener = tx_pool_.pool->listener();
  for (const std::string& channel : tx_pool_.listens) listener.unlisten(this, channel);
  tx_pool_.listens.clear();
}

void ClientConnection::notified(int32_t server_pid, std::string_view server_channel, std::string_view payload) {
  if (!tenant_relay_.session || tx_pool_.client_done) return;
  auto name = tenant_relay_.session->client_channel(server_channel);
  if (!name) return;
  // The sender as the client knows it: its rowguard pid (its own for a self-notification).
  const int32_t pid = server_holder(server_pid, *tenant_).value_or(server_pid);
  if (tx_pool_.notes_bytes + name->size() + payload.size() > kKeepCapacity) {
    server_.metrics().notifications_dropped.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("session={} user={} notification on \"{}\" dropped: {} bytes of notifications not delivered yet",
                 id_, user_, *name, tx_pool_.notes_bytes);
    return;
  }
  std::string body;
  for (int shift = 24; shift >= 0; shift -= 8) body.push_back(static_cast<char>((static_cast<uint32_t>(pid) >> shift) & 0xff));
  body.append(*name);
  body.push_back('\0');
  body.append(payload);
  body.push_back('\0');
  std::string frame;
  protocol::append_frame(frame, protocol::be::kNotificationResponse, body);
  tx_pool_.notes_bytes += frame.size();
  tx_pool_.notes.push_back({std::string(server_channel), std::move(frame)});
  lease_signal_.cancel();  // server_to_client delivers it if the client is between transactions
  notify_signal_.cancel();  // ... or notification_pump, if it is pinned to an idle connection
}

// A client pinned to its server connection for another reason is idle while server_to_client
// waits on that connection: its notifications go out from here (the client's writes are
// serialised by write_client_between). Ends with the relay (`||`).
asio::awaitable<void> ClientConnection::notification_pump(session::TenantSession& session) {
  for (;;) {
    notify_signal_.expires_at(asio::steady_timer::time_point::max());
    co_await notify_signal_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (tenant_relay_.server_done || tx_pool_.client_done) co_return;
    if (!tx_pool_.lease || tx_pool_.busy) continue;  // (server_to_client / end_of_lease deliver)
    while (!tx_pool_.notes.empty() && tx_pool_.lease && !tx_pool_.busy && session.idle() &&
           session.tx_status() == 'I' && session.at_boundary() && !tx_pool_.skip_to_sync) {
      std::string notes = take_notes();
      if (!notes.empty() && !co_await write_client_between(notes)) co_return;
    }
  }
}

asio::awaitable<bool> ClientConnection::deliver_notifications(session::TenantSession& session) {
  while (!tx_pool_.notes.empty() && !tx_pool_.lease && session.idle() && session.tx_status() == 'I' &&
         session.at_boundary() && !tx_pool_.skip_to_sync && !tx_pool_.client_writing) {
    std::string notes = take_notes();
    if (!notes.empty() && !co_await write_client_between(notes)) co_return false;
  }
  co_return true;
}

std::string ClientConnection::take_notes() {
  std::string out;
  for (const auto& n : tx_pool_.notes) {
    if (n.channel.empty() || tx_pool_.listens.contains(n.channel)) out += n.frame;
  }
  tx_pool_.notes.clear();
  tx_pool_.notes_bytes = 0;
  return out;
}

// Between transactions both loops may write to the client (client_to_server its answers
// without a server, server_to_client notifications): one at a time.
asio::awaitable<bool> ClientConnection::write_client_between(std::string_view bytes) {
  while (tx_pool_.client_writing) {
    write_signal_.expires_at(asio::steady_timer::time_point::max());
    co_await write_signal_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (tenant_relay_.server_done || tx_pool_.client_done) co_return false;
  }
  tx_pool_.client_writing = true;
  const bool ok = co_await write_client(bytes);
  tx_pool_.client_writing = false;
  write_signal_.cancel();
  if (!tx_pool_.notes.empty()) {  // (notifications held back meanwhile)
    lease_signal_.cancel();
    notify_signal_.cancel();
  }
  co_return ok;
}

void ClientConnection::drop_lease(bool reusable) {
  PooledServer* c = tx_pool_.lease;
  if (c == nullptr) return;
  tx_pool_.lease = nullptr;
  tx_pool_.mirrored = tx_pool_.listening = false;  // (given back clean, or closed)
  // Under the registry's lock: a cancel either marked the connection already (then it is
  // closed, not reused) or finds nothing from now on.
  if (client_key_) server_.cancels().retarget(*client_key_, {});
  backend_key_ = {0, 0};
  if (info_) info_->set_backend_pid(0);
  if (tenant_relay_.session) {
    tenant_relay_.session->forget_unnamed_statement();
    tenant_relay_.session->attach(nullptr);  // (idle here: at ReadyForQuery 'I', or after server_lost)
  }
  tx_pool_.pool->release(c, reusable);
}

void ClientConnection::lease_lost(session::TenantSession& session, std::string& to_client) {
  spdlog::warn("session={} user={} the pooled server connection was lost{}", id_, user_,
               session.tx_status() != 'I' || !session.idle() ? " mid-transaction" : "");
  const bool waiting = !session.idle();
  const bool batch_open = session.batch_open();
  const bool had_state = !pinned().empty() || session.tx_status() != 'I';
  session.server_lost();
  server_buf_.clear();
  tx_pool_.pin.clear();
  tx_pool_.swallow = 0;
  tx_pool_.listening = tx_pool_.advisory = tx_pool_.cursors = false;
  tx_pool_.settings_touched = tx_pool_.state_touched = false;
  if (tx_pool_.lease) tx_pool_.lease->failed = true;  // (closed as "error", not "dirty")
  drop_lease(false);
  const std::string msg = "rowguard: the connection to the server was lost; the transaction (if any) is rolled back";
  if (waiting) {
    protocol::append_error_response(to_client, "ERROR", pg::sqlstate::kConnectionFailure, msg);
    if (batch_open) {
      tx_pool_.skip_to_sync = true;
    } else {
      protocol::append_ready_for_query(to_client, 'I');
    }
  } else if (had_state) {  // told at its next message
    tx_pool_.error_pending = true;
    tx_pool_.error_sqlstate = std::string(pg::sqlstate::kConnectionFailure);
    tx_pool_.error_message = msg;
  }
  info_->set_tx('I', false);
}

void ClientConnection::refuse_without_server(char tag, std::string& to_client) {
  tx_pool_.error_pending = false;
  protocol::append_error_response(to_client, "ERROR", tx_pool_.error_sqlstate, tx_pool_.error_message);
  if (tag == protocol::fe::kQuery || tag == protocol::fe::kSync) {
    protocol::append_ready_for_query(to_client, 'I');
  } else {
    tx_pool_.skip_to_sync = true;  // PostgreSQL skips an extended batch to its Sync after an error
  }
}

}  // namespace rowguard::net
