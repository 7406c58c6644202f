// Note: GCC 12 can destroy a temporary inside a co_await expression twice; arguments of
// co_await calls are named variables or literals here, never temporaries such as a + b.
//
// One client connection, as a C++20 coroutine on its worker's io_context:
//   startup (SSLRequest/GSSENCRequest answered 'N', CancelRequest routed) -> SCRAM-SHA-256
//   -> upstream login -> statement loop (tenant: rewrite or deny; bypass: transparent relay).
#include "proxy/net/connection.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <optional>

#include "policy/rls_sql.h"
#include "auth/scram.h"
#include "proxy/net/admin.h"
#include "proxy/net/clients.h"
#include "proxy/net/client_watch.h"
#include "proxy/net/client_auth.h"
#include "proxy/net/ddl_watch.h"
#include "proxy/net/identity_recheck.h"
#include "proxy/net/server.h"
#include "proxy/net/stream.h"
#include "proxy/net/upstream.h"
#include "proxy/protocol/codec.h"
#include "proxy/protocol/frame_scanner.h"
#include "proxy/session/session.h"

namespace rowguard::net {
namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
// Buffer bounds ([limits] in the README): a read takes at most kReadChunk bytes; a buffer holds
// at most one message (<= [limits] max_message_size / max_server_message) plus one chunk; what
// goes to the client is written once kFlushAt bytes are pending, and nothing more is read from
// the server until that write is done (backpressure). A buffer that grew past kKeepCapacity
// for a big message is given back once that message is handled.
constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kFlushAt = 256 * 1024;
constexpr size_t kKeepCapacity = 1024 * 1024;

void give_back(std::string& buf) {
  if (buf.capacity() > kKeepCapacity && buf.size() <= kKeepCapacity / 4) buf.shrink_to_fit();
}

std::string to_hex(std::string_view raw) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string endpoint_text(Stream& s, bool remote) {
  boost::system::error_code ec;
  auto ep = remote ? s.socket().remote_endpoint(ec) : s.socket().local_endpoint(ec);
  return ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
}

std::string truncate(std::string_view s, size_t n = 300) {
  if (s.size() <= n) return std::string(s);
  return std::string(s.substr(0, n)) + "...";
}

class ClientConnection : public ClientIo {
 public:
  ClientConnection(tcp::socket client, Server& server, Worker& worker)
      : client_(std::move(client)), server_(server), worker_(worker), upstream_(tcp::socket(worker.ctx)),
        auth_timer_(worker.ctx), watch_(worker.ctx, [this] {
          boost::system::error_code ignored;
          client_.socket().cancel(ignored);  // the read fails; the loops end; see finish_refused
        }) {
    id_ = server_.next_session_id();
    server_.metrics().connections_total.fetch_add(1, std::memory_order_relaxed);
    server_.metrics().connections_active.fetch_add(1, std::memory_order_relaxed);
    // SIGTERM: an idle session closes now, one in a transaction when the transaction ends.
    worker_.shutdown_hooks[id_] = [this] {
      draining_ = true;
      // Bypass sessions close at once (their tx_ is tracked for [limits] only).
      if (!tenant_ || (tx_ == 'I' && !in_flight() && (session_ == nullptr || session_->at_boundary()))) close_both();
    };
    boost::system::error_code ec;
    auto ep = client_.socket().remote_endpoint(ec);
    peer_ = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
    info_ = std::make_shared<ClientInfo>(id_, peer_);
    server_.clients().add(info_);
  }

  asio::awaitable<void> run() {
    policy_ = server_.policy();
    // Startup and authentication must finish in time (a slow or silent client holds nothing).
    auth_timer_.expires_after(std::chrono::seconds(policy_->proxy.auth_timeout_seconds));
    // Liveness guard (as in ClientWatch): if the timer has already expired when this object is
    // destroyed, the handler is queued with success and cancel() in the destructor cannot
    // turn it into operation_aborted; it then runs after `this` is gone. `alive` expires with
    // the object, and is checked before `this` is touched. (Not unit-tested: making the
    // handler run after destruction needs the timer to fire between the last co_await and the
    // destructor on the same strand, which no test can arrange deterministically.)
    std::weak_ptr<int> alive = alive_;
    auth_timer_.async_wait([this, alive](boost::system::error_code ec) {
      if (!ec && !alive.expired()) {
        spdlog::warn("session={} client={} startup/authentication timeout", id_, peer_);
        client_.close();
      }
    });
    auto startup = co_await read_startup();
    if (!startup) co_return;
    auto decision = session::check_startup(*startup, *policy_);
    if (!decision.ok) {
      spdlog::warn("session={} client={} refused at startup: {}", id_, peer_, decision.message);
      co_await fatal(decision.sqlstate, decision.message);
      co_return;
    }
    user_ = decision.user;
    if (int limit = policy_->proxy.max_connections_per_user; limit > 0) {
      counted_user_ = true;
      if (server_.user_connections(user_, +1) > limit) {
        spdlog::warn("session={} client={} user={} refused: max_connections_per_user ({}) reached", id_, peer_, user_, limit);
        std::string msg = "too many connections for role \"" + user_ + "\"";
        co_await fatal("53300", msg);
        co_return;
      }
    }
    if (server_.tls_required() && !client_.tls()) {
      spdlog::warn("session={} client={} user={} refused: TLS is required", id_, peer_, user_);
      co_await fatal("28000", "rowguard: TLS is required for every connection (connect with sslmode=require)");
      co_return;
    }
    // ---- identity ([tenancy] identity = map | jwt | role): proxy/net/client_auth.h ----
    if (policy_->identity.mode == policy::IdentityMode::kRole && wants_console(*startup)) {
      // The console authenticates against the policy's [[bypass]] logins, which role mode has not.
      spdlog::warn("session={} client={} user={} refused: no admin console with identity = role", id_, peer_, user_);
      co_await fatal("0A000", "rowguard: the admin console is not available with [tenancy] identity = \"role\"");
      co_return;
    }
    SSL* client_ssl = client_.native_tls();
    ClientAuth who = co_await authenticate_client(*this, *policy_, user_, client_ssl);
    if (!who.ok) {
      if (!who.client_left) co_await auth_failed(who);
      co_return;
    }
    if (!who.passthrough) auth_timer_.cancel();
    if (wants_console(*startup)) {  // the admin console: answered here, never forwarded
      ConsoleClient console{client_, client_buf_, id_, user_, peer_, *info_};
      co_await serve_console(server_, console);
      co_return;
    }
    tenant_ = who.tenant;
    identity_method_ = who.method;
    jwt_token_.assign(who.jwt_token);
    wipe(who.jwt_token);
    identity_checked_version_ = policy_->version;
    if (tenant_) decision.upstream_params.emplace_back("search_path", "public");
    if (policy_->backstop == policy::Backstop::kRls) {  // policy/rls_sql.h: PostgreSQL RLS reads these settings
      auto backstop = policy::backstop_startup_params(tenant_);
      if (!backstop) {
        co_await fatal("42501", "rowguard: the tenant value cannot be set on the upstream session");
        co_return;
      }
      decision.upstream_params.insert(decision.upstream_params.end(), backstop->begin(), backstop->end());
    }
    policy::ProxySettings upstream_settings = policy_->proxy;
    std::unique_ptr<AuthRelay> relay;
    if (who.passthrough) {  // identity = "role": the client logs in upstream as its own role
      upstream_settings.upstream_user = user_;
      upstream_settings.upstream_password.clear();
      relay = make_client_relay(*this);
    }
    // ---- end identity ----

    UpstreamLogin up = co_await login_upstream(upstream_, server_.upstream_tls(), upstream_settings,
                                               decision.database, decision.upstream_params, relay.get());
    if (!up.ok && who.passthrough && !up.authenticated && !up.server_message.empty()) {
      who.ok = false;  // PostgreSQL refused the client's own credentials: relay its error
      who.sqlstate = up.sqlstate;
      who.message = up.server_message;
      who.reason = "refused by PostgreSQL (identity = role): " + up.server_message;
      co_await auth_failed(who);
      co_return;
    }
    if (!up.ok && up.client_left) {  // e.g. psql asking for the password: it reconnects
      spdlog::info("session={} client={} user={} left during authentication", id_, peer_, user_);
      co_return;
    }
    if (!up.ok) {
      server_.metrics().upstream_failures.fetch_add(1, std::memory_order_relaxed);
      spdlog::error("session={} user={} upstream login failed: {} ({})", id_, user_, up.message, up.sqlstate);
      std::string code = up.sqlstate.empty() ? "08006" : up.sqlstate;
      std::string msg = "rowguard: cannot open the upstream connection: " + up.message;
      co_await fatal(code, msg);
      co_return;
    }
    if (!who.refuse_after_auth.empty()) {
      spdlog::warn("session={} client={} user={} refused: {}", id_, peer_, user_, who.refuse_after_auth);
      co_await fatal("28000", who.refuse_after_auth);
      co_return;
    }
    auth_timer_.cancel();
    std::string out;
    if (who.passthrough) protocol::append_auth_ok(out);
    for (const auto& p : up.parameters) {
      if (tenant_ && p.name == "standard_conforming_strings" && p.value != "on") {
        co_await fatal("55000", "rowguard: the server has standard_conforming_strings off; "
                                "tenant sessions need it on");
        co_return;
      }
      protocol::append_parameter_status(out, p.name, p.value);
    }
    backend_key_ = {up.key.pid, up.key.key};
    client_key_ = server_.cancels().add({up.key.pid, up.key.key});
    protocol::append_backend_key_data(out, client_key_->first, client_key_->second);
    protocol::append_ready_for_query(out, up.tx_status);
    tx_ = up.tx_status;
    server_buf_ = std::move(up.leftover);
    spdlog::info("session={} connected user={} tenant={} client={} database={} tls={} upstream_tls={} auth={} "
                 "upstream_cbind={}",
                 id_, user_, tenant_ ? *tenant_ : std::string("(bypass)"), peer_, decision.database,
                 client_.tls() ? "on" : "off", upstream_.tls() ? "on" : "off", who.method,
                 up.channel_binding ? "on" : "off");
    if (!co_await write_client(out)) co_return;
    info_->set_login(user_, tenant_, tenant_ ? ClientInfo::Kind::kTenant : ClientInfo::Kind::kBypass);
    info_->set_upstream(endpoint_text(upstream_, true), endpoint_text(upstream_, false), decision.database,
                        up.key.pid, upstream_.tls());

    kind_gauge_ = tenant_ ? &server_.metrics().connections_tenant : &server_.metrics().connections_bypass;
    kind_gauge_->fetch_add(1, std::memory_order_relaxed);
    if (server_.shutting_down()) co_return;
    watch_.idle(tx_, policy_->limits);
    if (tenant_) {
      co_await tenant_loop();
      // The client vanished while its statement ran (a long query, a COPY): cancel it, so
      // the server backend does not keep running it for nobody (it ends on the closed socket).
      if (client_gone_ && in_flight()) co_await cancel_backend();
    } else {
      co_await bypass_loop();
    }
    watch_.stop();
    co_await finish_refused();
    spdlog::info("session={} closed user={}", id_, user_);
  }

  ~ClientConnection() {
    if (counted_user_) server_.user_connections(user_, -1);
    worker_.shutdown_hooks.erase(id_);
    server_.metrics().connections_active.fetch_sub(1, std::memory_order_relaxed);
    if (kind_gauge_) kind_gauge_->fetch_sub(1, std::memory_order_relaxed);
    if (client_key_) server_.cancels().remove(*client_key_);
    server_.clients().remove(id_);
  }

 private:
  // ---- startup and authentication ----------------------------------------------------------

  asio::awaitable<std::optional<protocol::StartupPacket>> read_startup() {
    for (;;) {
      auto r = protocol::decode_startup(client_buf_, policy_->limits.max_startup_packet);
      if (r.status == protocol::DecodeStatus::kMalformed && r.too_long) {
        spdlog::warn("client={} startup packet over [limits] max_startup_packet: {}", peer_, r.error);
        std::string msg = "invalid length of startup packet: " + r.error + " bytes ([limits] max_startup_packet)";
        co_await fatal("08P01", msg);
        co_return std::nullopt;
      }
      if (r.status == protocol::DecodeStatus::kMalformed) {
        spdlog::warn("client={} malformed startup packet: {}", peer_, r.error);
        std::string msg = "invalid startup packet: " + r.error;
        co_await fatal("08P01", msg);
        co_return std::nullopt;
      }
      if (r.status == protocol::DecodeStatus::kNeedMore) {
        if (!co_await read_more(client_, client_buf_)) co_return std::nullopt;
        continue;
      }
      client_buf_.erase(0, r.size);
      switch (r.packet.kind) {
        case protocol::StartupPacket::Kind::kSSLRequest:
          if (server_.client_tls() == nullptr || client_.tls()) {
            if (!co_await write_client("N")) co_return std::nullopt;
            continue;
          }
          if (!client_buf_.empty()) {
            // Bytes sent before the TLS handshake could be injected by a man in the middle.
            spdlog::warn("client={} sent data after SSLRequest before TLS; closing", peer_);
            co_return std::nullopt;
          }
          if (!co_await write_client("S")) co_return std::nullopt;
          if (auto ec = co_await client_.handshake(*server_.client_tls(), asio::ssl::stream_base::server)) {
            spdlog::warn("client={} TLS handshake failed: {}", peer_, ec.message());
            co_return std::nullopt;
          }
          continue;
        case protocol::StartupPacket::Kind::kGSSENCRequest:
          if (!co_await write_client("N")) co_return std::nullopt;  // GSSAPI encryption: no
          continue;
        case protocol::StartupPacket::Kind::kCancelRequest:
          co_await forward_cancel(r.packet.cancel_pid, r.packet.cancel_key);
          co_return std::nullopt;
        case protocol::StartupPacket::Kind::kStartup:
          if ((r.packet.protocol_version & 0xFFFF) != 0) {
            // Speak 3.0: tell the client so, as PostgreSQL does for a newer minor version.
            std::string body(8, '\0');
            std::string out;
            protocol::append_frame(out, protocol::be::kNegotiateProtocolVersion, body);
            if (!co_await write_client(out)) co_return std::nullopt;
          }
          co_return std::move(r.packet);
      }
    }
  }

  asio::awaitable<void> auth_failed(const ClientAuth& who) {
    server_.metrics().auth_failures.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("session={} client={} user={} authentication failed: {}", id_, peer_, user_, who.reason);
    co_await fatal(who.sqlstate, who.message);
  }

  // ClientIo (the authentication exchanges of client_auth.h)
  asio::awaitable<std::optional<ClientMessage>> next_client_message(size_t max) override {
    auto frame = co_await read_client_frame(max);
    if (!frame) co_return std::nullopt;
    ClientMessage m{frame->tag, std::string(frame->body)};
    client_buf_.erase(0, frame->size);
    co_return m;
  }

  asio::awaitable<void> forward_cancel(int32_t pid, int32_t key) {
    auto target = server_.cancels().find({pid, key});
    if (!target) {
      spdlog::info("client={} cancel request with an unknown key ignored", peer_);
      co_return;
    }
    co_await send_cancel(target->pid, target->key);
    spdlog::info("client={} cancel forwarded to its backend", peer_);
  }

  asio::awaitable<void> cancel_backend() {
    spdlog::info("session={} user={} client gone while a statement ran: cancelling it upstream", id_, user_);
    co_await send_cancel(backend_key_.first, backend_key_.second);
  }

  // A CancelRequest on a new upstream connection (errors ignored: best effort, as in libpq).
  asio::awaitable<void> send_cancel(int32_t pid, int32_t key) {
    const auto& s = policy_->proxy;
    tcp::resolver resolver(worker_.ctx);
    std::string port = std::to_string(s.upstream_port);
    auto [rec, eps] = co_await resolver.async_resolve(s.upstream_host, port, kUse);
    if (rec) co_return;
    tcp::socket sock(worker_.ctx);
    auto [cec, ep] = co_await asio::async_connect(sock, eps, kUse);
    if (cec) co_return;
    std::string out;
    protocol::append_cancel_request(out, pid, key);
    co_await asio::async_write(sock, asio::buffer(out), kUse);
  }

  // ---- the tenant statement path: two loops, one per direction -----------------------------

  asio::awaitable<void> tenant_loop() {
    session::TenantSession session(*tenant_, worker_.cache, to_hex(auth::random_bytes(6)));
    session_ = &session;
    co_await (client_to_server(session) || server_to_client(session));
    ended_in_flight_ = !session.idle();
    session_ = nullptr;
  }

  asio::awaitable<void> client_to_server(session::TenantSession& session) {
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
          co_await fatal("08P01", msg);
          co_return;
        }
        if (session.tx_status() == 'I' && session.at_boundary() && r.frame.tag != protocol::fe::kTerminate) {
          co_await server_.pause_gate().at_boundary(*info_);  // PAUSE holds new transactions here
        }
        if (session.tx_status() == 'I') policy_ = server_.policy();  // reloads apply between transactions
        if (policy_->version != prechecked_version_) {
          // A new policy: the session's long prepared statements are re-checked at their next use
          // (Bind, EXECUTE, a portal). Rewrite them on the parse pool now, so that the re-check is
          // a cache hit and a session holding many MB of prepared text never holds the worker.
          prechecked_version_ = policy_->version;
          co_await precheck_on_pool(session);
          if (session.tx_status() == 'I' && server_.policy()->version != policy_->version) continue;
        }
        if (r.frame.tag != protocol::fe::kTerminate) {
          // A reload that removed this login (or moved it to another tenant) ends the session at
          // its next message, in or out of a transaction (proxy/net/identity_recheck.h).
          if (std::string why = identity_revoked(); !why.empty()) {
            spdlog::warn("session={} user={} tenant={} ended: {}", id_, user_, *tenant_, why);
            audit("(session ended by a policy reload)", false, why);
            client_closing_ = true;
            std::string bye;
            protocol::append_terminate(bye);
            co_await write_server(bye);
            co_await fatal("28000", why);
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
          if (!upstream_wait_) upstream_wait_ = t0;
        }
        client_buf_.erase(0, r.frame.size);
        if (!step.statement.empty()) info_->count_statement();
        complete = true;
        if (!step.denial.empty()) {
          spdlog::warn("session={} denied user={} tenant={} client={}: {} | statement: {}", id_,
                       user_, *tenant_, peer_, step.denial, truncate(step.statement));
          server_.metrics().count_denial(step.denial);
          audit(step.statement, false, step.denial);
        } else if (!step.statement.empty()) {
          // The level test first: no string copy per statement unless debug logging is on.
          if (spdlog::should_log(spdlog::level::debug)) {
            spdlog::debug("session={} forward: {}", id_, truncate(step.statement));
          }
          server_.metrics().statements_allowed.fetch_add(1, std::memory_order_relaxed);
          audit(step.statement, true, {});
        }
        out += step.to_server;
        if (step.close) {
          client_closing_ = true;  // Terminate (or a fatal refusal): the server closing is expected
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
        client_gone_ = !server_done_;  // (not when this read was cancelled because the server side ended)
        co_return;
      }
    }
  }

  asio::awaitable<void> server_to_client(session::TenantSession& session) {
    struct SetOnExit {
      bool& flag;
      ~SetOnExit() { flag = true; }
    } done{server_done_};  // however this loop ends: the client's side is then not "gone"
    std::string out;
    for (;;) {
      size_t pos = 0;
      for (;;) {
        auto r = protocol::decode_frame(std::string_view(server_buf_).substr(pos), policy_->limits.max_server_message);
        if (r.status == protocol::DecodeStatus::kNeedMore) break;
        if (r.too_long) {
          spdlog::error("session={} message from the server over [limits] max_server_message: {}", id_, r.error);
          co_await write_client(out);
          co_await fatal("54000", "rowguard: a message from the server exceeds [limits] max_server_message");
          co_return;
        }
        if (r.status == protocol::DecodeStatus::kMalformed) {
          spdlog::error("session={} malformed message from the server: {}", id_, r.error);
          co_await write_client(out);
          co_await fatal("08P01", "rowguard: malformed message from the server");
          co_return;
        }
        std::string_view raw = std::string_view(server_buf_).substr(pos, r.frame.size);
        pos += r.frame.size;
        last_server_tag_ = r.frame.tag;
        const bool was_idle = session.idle();
        session::ServerStep step = session.on_server_message(r.frame, raw, out);
        if (!was_idle && session.idle()) {  // every forwarded message is answered
          tx_ = session.tx_status();
          info_->set_tx(tx_, false);
          info_->set_prepared(session.prepared_count(), session.prepared_bytes(), session.portal_count());
          watch_.idle(tx_, policy_->limits);
          if (draining_ && tx_ == 'I' && session.at_boundary()) {
            co_await write_client(out);
            co_await fatal("57P01", "terminating connection due to administrator command (rowguard is shutting down)");
            co_return;
          }
        }
        if (step.close) {
          spdlog::error("session={} closing: {}", id_, step.reason);
          co_await write_client(out);
          std::string msg = "rowguard: " + step.reason;
          co_await fatal("08P01", msg);
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
        if (client_closing_) co_return;
        // A server that ends a session says why in a FATAL ErrorResponse (relayed above); one
        // that crashed, was killed or cut off a message did not: tell the client.
        spdlog::warn("session={} user={} the server closed the connection{}", id_, user_,
                     server_buf_.empty() ? "" : " in the middle of a message");
        if (last_server_tag_ != protocol::be::kErrorResponse || !server_buf_.empty()) {
          co_await fatal("08006", "rowguard: the connection to the server was lost");
        }
        co_return;
      }
      if (upstream_wait_) {
        server_.metrics().observe_upstream(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                                     std::chrono::steady_clock::now() - *upstream_wait_)
                                                                     .count()));
        upstream_wait_.reset();
      }
    }
  }

  // ---- bypass: bytes as they come, both ways ---------------------------------------------
  // The bytes are relayed unchanged; two FrameScanners follow the message boundaries so that
  // the length limits, the idle timeouts and message_timeout hold for bypass sessions too.

  asio::awaitable<void> bypass_loop() {
    protocol::FrameScanner from_client(policy_->limits.max_message_size);
    protocol::FrameScanner from_server(policy_->limits.max_server_message);
    co_await (pump(client_, upstream_, client_buf_, from_client, true) ||
              pump(upstream_, client_, server_buf_, from_server, false));
  }

  asio::awaitable<void> pump(Stream& from, Stream& to, std::string& data, protocol::FrameScanner& scanner,
                             bool from_client) {
    // `data` starts with what was received during login; afterwards it holds one read (at most
    // kReadChunk bytes) behind at most 4 bytes of a header the scanner has not consumed yet.
    for (;;) {
      // A reload that removed this bypass login ends the session before any byte read after it
      // is relayed (the same rule as a tenant session's, proxy/net/identity_recheck.h).
      if (from_client && !data.empty()) {
        if (std::string why = identity_revoked(); !why.empty()) {
          spdlog::warn("session={} bypass user={} ended: {}", id_, user_, why);
          audit("(session ended by a policy reload)", false, why);
          revoked_ = why;
          co_return;
        }
      }
      bool complete = false;
      const size_t ok = scanner.feed(data, [&](char tag, char first) {
        if (from_client) {
          complete = true;
          if (tag == protocol::fe::kQuery || tag == protocol::fe::kSync) ++batches_out_;
        } else if (tag == protocol::be::kReadyForQuery) {
          ++batches_in_;
          tx_ = first;
          if (!in_flight()) watch_.idle(tx_, policy_->limits);
          if (ddl_pending_ && first == 'I') {  // committed (or rolled back): re-read the schema
            ddl_pending_ = false;
            server_.schema_changed("DDL by bypass session " + std::to_string(id_));
          }
        } else if (tag == protocol::be::kCommandComplete) {
          const size_t body = scanner.frame_length() - 4;
          const bool whole = scanner.frame_end() >= body;
          ddl_pending_ |= schema_changing_command(
              first, whole ? std::optional<std::string_view>(std::string_view(data).substr(scanner.frame_end() - body, body))
                           : std::nullopt);
        }
      });
      if (ok > 0) {
        auto [wec, wn] = co_await to.write(asio::buffer(data.data(), ok));
        if (wec) co_return;
        if (!from_client) server_.metrics().bytes_to_clients.fetch_add(wn, std::memory_order_relaxed);
      }
      if (scanner.failed()) {
        if (!from_client) {
          spdlog::error("session={} bypass: bad message from the server: {}", id_, scanner.error());
          server_refusal_ = scanner.too_long() ? "54000" : "08P01";
        } else if (scanner.too_long()) {
          refuse_too_long(scanner.failed_tag(), scanner.failed_length());
        } else {
          spdlog::warn("session={} client={} malformed message: {}", id_, peer_, scanner.error());
          refusal_ = "invalid message: " + scanner.error();
        }
        co_return;
      }
      data.erase(0, ok);
      give_back(data);
      if (from_client) watch_.client_bytes(complete, scanner.mid_message(), policy_->limits);
      if (!co_await read_more(from, data)) co_return;
    }
  }

  // ---- limits: what ends a session early ---------------------------------------------------

  // A client message whose length word is over [limits] max_message_size: nothing of it is
  // read further or forwarded; finish_refused tells the client and closes.
  void refuse_too_long(char tag, uint32_t length) {
    std::string name = protocol::frontend_message_name(tag);
    spdlog::warn("session={} client={} user={} {} of {} bytes refused: over [limits] max_message_size ({})", id_,
                 peer_, user_, name, length, policy_->limits.max_message_size);
    refusal_ = "rowguard: " + name + " message of " + std::to_string(length) + " bytes exceeds the limit of " +
               std::to_string(policy_->limits.max_message_size) + " bytes ([limits] max_message_size)";
  }

  // After the statement loops: the FATAL error for a limit or timeout that ended them.
  asio::awaitable<void> finish_refused() {
    if (!revoked_.empty()) {
      co_await fatal("28000", revoked_);
      co_return;
    }
    if (!refusal_.empty()) {
      co_await fatal("08P01", refusal_);
      co_return;
    }
    if (server_refusal_ == "54000") {
      co_await fatal("54000", "rowguard: a message from the server exceeds [limits] max_server_message");
      co_return;
    }
    if (!server_refusal_.empty()) {
      co_await fatal("08P01", "rowguard: malformed message from the server");
      co_return;
    }
    const ClientWatch::Reason why = watch_.expired();
    if (why == ClientWatch::Reason::kNone) co_return;
    const std::string after = std::to_string(watch_.expired_after()) + " s";
    std::string code, msg, detail;
    switch (why) {
      case ClientWatch::Reason::kIdle:
        code = "57P05";
        msg = "terminating connection due to idle-session timeout";
        detail = "rowguard: no request for " + after + " outside a transaction ([limits] idle_client_timeout)";
        break;
      case ClientWatch::Reason::kIdleInTransaction:
        code = "25P03";
        msg = "terminating connection due to idle-in-transaction timeout";
        detail = "rowguard: no request for " + after + " inside a transaction ([limits] idle_in_transaction_timeout); "
                 "the transaction is rolled back";
        break;
      default:
        code = "08P01";
        msg = "rowguard: terminating connection: a message was not received whole within " + after;
        detail = "[limits] message_timeout";
        break;
    }
    spdlog::warn("session={} client={} user={} {} ({})", id_, peer_, user_, msg, detail);
    if (!in_flight()) {
      std::string bye;
      protocol::append_terminate(bye);  // the server rolls back an open transaction and ends
      co_await write_server(bye);
    }
    std::string out;
    protocol::append_error_response(out, "FATAL", code, msg, detail);
    co_await write_client(out);
  }

  // ---- I/O helpers ---------------------------------------------------------------------------

  asio::awaitable<bool> read_more(Stream& stream, std::string& buf) {
    if (&stream == &client_ && watch_.expired() != ClientWatch::Reason::kNone) co_return false;
    size_t old = buf.size();
    buf.resize(old + kReadChunk);
    auto [ec, n] = co_await stream.read_some(asio::buffer(buf.data() + old, kReadChunk));
    buf.resize(old + (ec ? 0 : n));
    if (!ec && &stream == &client_) server_.metrics().bytes_from_clients.fetch_add(n, std::memory_order_relaxed);
    co_return !ec;
  }

  // The next complete client message (pointing into client_buf_; the caller erases it).
  asio::awaitable<std::optional<protocol::Frame>> read_client_frame(size_t max) {
    for (;;) {
      auto r = protocol::decode_frame(client_buf_, max);
      if (r.status == protocol::DecodeStatus::kComplete) co_return r.frame;
      if (r.status == protocol::DecodeStatus::kMalformed) {
        spdlog::warn("session={} client={} malformed message: {}", id_, peer_, r.error);
        std::string msg = "invalid message: " + r.error;
        co_await fatal("08P01", msg);
        co_return std::nullopt;
      }
      if (!co_await read_more(client_, client_buf_)) co_return std::nullopt;
    }
  }

  asio::awaitable<bool> write_client(std::string_view bytes) override {
    auto [ec, n] = co_await client_.write(asio::buffer(bytes.data(), bytes.size()));
    if (!ec) server_.metrics().bytes_to_clients.fetch_add(n, std::memory_order_relaxed);
    co_return !ec;
  }

  asio::awaitable<bool> write_server(std::string_view bytes) {
    auto [ec, n] = co_await upstream_.write(asio::buffer(bytes.data(), bytes.size()));
    co_return !ec;
  }

  // Tenant sessions: the model of the server's state (proxy/session) says whether an answer is
  // still owed; bypass sessions count Query/Sync against ReadyForQuery.
  bool in_flight() const {
    if (session_ != nullptr) return !session_->idle();
    return tenant_ ? ended_in_flight_ : batches_in_ < batches_out_;
  }

  // "" while the current policy still maps this login to its tenant, else why it no longer does.
  asio::awaitable<void> precheck_on_pool(session::TenantSession& session) {
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

  std::string identity_revoked() {
    policy::PolicyPtr latest = server_.policy();
    if (latest->version == identity_checked_version_) return "";
    identity_checked_version_ = latest->version;
    const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
    return login_revoked(*latest, identity_method_, user_, tenant_, jwt_token_, now);
  }

  void close_both() {
    client_.close();
    upstream_.close();
  }

  void audit(const std::string& statement, bool allowed, const std::string& reason) {
    AuditLog* log = server_.audit();
    if (log == nullptr || !log->wants(allowed) || statement.empty()) return;
    log->record(AuditEvent{user_, tenant_.value_or(""), peer_, id_, statement, allowed, reason});
  }

  asio::awaitable<void> fatal(std::string_view sqlstate, std::string_view message) {
    std::string out;
    protocol::append_error_response(out, "FATAL", sqlstate, message);
    co_await write_client(out);
  }

  Stream client_;
  Server& server_;
  Worker& worker_;
  Stream upstream_;
  std::string client_buf_;
  std::string server_buf_;
  uint64_t id_ = 0;
  std::string peer_;
  std::string user_;
  std::optional<std::string> tenant_;
  policy::PolicyPtr policy_;
  char tx_ = 'I';
  std::optional<std::pair<int32_t, int32_t>> client_key_;
  std::pair<int32_t, int32_t> backend_key_{0, 0};  // the server backend's (pid, key)
  bool client_closing_ = false;                    // the client sent Terminate (tenant sessions)
  bool server_done_ = false;                       // server_to_client has ended (tenant sessions)
  bool client_gone_ = false;                       // the client closed its socket (tenant sessions)
  char last_server_tag_ = 0;                       // the last message relayed from the server
  std::atomic<int64_t>* kind_gauge_ = nullptr;
  bool draining_ = false;    // rowguard is shutting down: close at the next idle point
  bool counted_user_ = false;
  asio::steady_timer auth_timer_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // expires with this object (auth_timer_ handler)
  ClientWatch watch_;            // [limits] idle timeouts and message_timeout
  uint64_t prechecked_version_ = 0;  // the policy version whose re-checks were prepared on the pool
  std::string revoked_;          // bypass: a reload removed this login (FATAL 28000)
  std::string refusal_;          // set when a client message broke a [limits] size
  std::string server_refusal_;   // bypass: the server sent an oversized (54000) or malformed (08P01) message
  uint64_t batches_out_ = 0;  // Query/Sync forwarded (bypass sessions)
  uint64_t batches_in_ = 0;   // ReadyForQuery relayed (bypass sessions)
  session::TenantSession* session_ = nullptr;  // tenant sessions, while the statement loops run
  bool ended_in_flight_ = false;                // tenant sessions: an answer was still owed when they ended
  std::string identity_method_;                 // how the login was authenticated (client_auth.h)
  SecretString jwt_token_;                        // identity = "jwt": the login's token, for reloads
  uint64_t identity_checked_version_ = 0;       // the policy version the login was last checked under
  bool ddl_pending_ = false;  // bypass: DDL completed; re-read the schema at the next idle ReadyForQuery
  std::optional<std::chrono::steady_clock::time_point> upstream_wait_;
  std::shared_ptr<ClientInfo> info_;  // what the admin console shows
};

}  // namespace

asio::awaitable<void> serve_client(tcp::socket client, Server& server, Worker& worker) {
  boost::system::error_code ec;
  client.set_option(tcp::no_delay(true), ec);
  if (server.metrics().connections_active.load() >= server.policy()->proxy.max_client_connections) {
    // Refused before reading anything, as PostgreSQL does past max_connections.
    std::string out;
    protocol::append_error_response(out, "FATAL", "53300", "sorry, too many clients already");
    co_await asio::async_write(client, asio::buffer(out), kUse);
    spdlog::warn("connection refused: max_client_connections reached");
    co_return;
  }
  ClientConnection conn(std::move(client), server, worker);
  try {
    co_await conn.run();
  } catch (const std::exception& e) {
    spdlog::error("connection ended by an exception: {}", e.what());
  }
}

}  // namespace rowguard::net
