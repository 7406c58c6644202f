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
  co_await (client_to_server(session) || server_to_client(session));
}

asio::awaitable<void> ClientConnection::client_to_server(session::TenantSession& session) {
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
      if (session.tx_status() == 'I' && session.at_boundary() && r.frame.tag != protocol::fe::kTerminate) {
        co_await server_.pause_gate().at_boundary(*info_);  // PAUSE holds new transactions here
      }
      if (session.tx_status() == 'I') policy_ = server_.policy();  // reloads apply between transactions
      if (policy_->version != tenant_relay_.prechecked_version) {
        // A new policy: the session's long prepared statements are re-checked at their next use
        // (Bind, EXECUTE, a portal). Rewrite them on the parse pool now, so that the re-check is
        // a cache hit and a session holding many MB of prepared text never holds the worker.
        tenant_relay_.prechecked_version = policy_->version;
        co_await precheck_on_pool(session);
        if (session.tx_status() == 'I' && server_.policy()->version != policy_->version) continue;
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
          if (session.tx_status() == 'I' && server_.policy()->version != policy_->version) continue;
          if (pooled) worker_.cache.adopt(*text, *policy_, *tenant_, *pooled);
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
      client_buf_.erase(0, r.frame.size);
      if (!step.statement.empty()) info_->count_statement();
      complete = true;
      if (!step.denial.empty()) {
        spdlog::warn("session={} denied user={} tenant={} client={}: {} | statement: {}", id_,
                     user_, *tenant_, peer_, step.denial, truncate(step.statement));
        server_.metrics().count_denial(step.denial, *tenant_);
        audit(step.statement, false, step.denial);
      } else if (!step.statement.empty()) {
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
      if (!co_await write_server(out)) co_return;
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
  for (;;) {
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
        if (!co_await write_client(out)) co_return;
        out.clear();
      }
    }
    server_buf_.erase(0, pos);
    if (!out.empty()) {
      if (!co_await write_client(out)) co_return;
      out.clear();
      give_back(out);
    }
    give_back(server_buf_);
    if (!co_await read_more(upstream_, server_buf_)) {
      if (tenant_relay_.client_closing) co_return;
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

}  // namespace rowguard::net
