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

#include "proxy/auth/scram.h"
#include "proxy/net/server.h"
#include "proxy/net/stream.h"
#include "proxy/net/upstream.h"
#include "proxy/protocol/codec.h"
#include "proxy/session/session.h"

namespace rowguard::net {
namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxStartupPacket = 64 * 1024;
constexpr size_t kMaxAuthMessage = 64 * 1024;
constexpr size_t kMaxMessage = size_t{1} << 30;  // 1 GiB, PostgreSQL's own limit
constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kFlushAt = 256 * 1024;

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

class ClientConnection {
 public:
  ClientConnection(tcp::socket client, Server& server, Worker& worker)
      : client_(std::move(client)), server_(server), worker_(worker), upstream_(tcp::socket(worker.ctx)),
        auth_timer_(worker.ctx) {
    id_ = server_.next_session_id();
    server_.metrics().connections_total.fetch_add(1, std::memory_order_relaxed);
    server_.metrics().connections_active.fetch_add(1, std::memory_order_relaxed);
    // SIGTERM: an idle session closes now, one in a transaction when the transaction ends.
    worker_.shutdown_hooks[id_] = [this] {
      draining_ = true;
      if (tx_ == 'I' && !in_flight()) close_both();
    };
    boost::system::error_code ec;
    auto ep = client_.socket().remote_endpoint(ec);
    peer_ = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  asio::awaitable<void> run() {
    policy_ = server_.policy();
    // Startup and authentication must finish in time (a slow or silent client holds nothing).
    auth_timer_.expires_after(std::chrono::seconds(policy_->proxy.auth_timeout_seconds));
    auth_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) {
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
    if (!co_await scram_exchange()) co_return;
    auth_timer_.cancel();
    const policy::Login* login = policy_->login(user_);
    tenant_ = login->tenant;
    if (tenant_) decision.upstream_params.emplace_back("search_path", "public");

    UpstreamLogin up = co_await login_upstream(upstream_, server_.upstream_tls(), policy_->proxy,
                                               decision.database, decision.upstream_params);
    if (!up.ok) {
      server_.metrics().upstream_failures.fetch_add(1, std::memory_order_relaxed);
      spdlog::error("session={} user={} upstream login failed: {} ({})", id_, user_, up.message, up.sqlstate);
      std::string code = up.sqlstate.empty() ? "08006" : up.sqlstate;
      std::string msg = "rowguard: cannot open the upstream connection: " + up.message;
      co_await fatal(code, msg);
      co_return;
    }
    std::string out;
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
    spdlog::info("session={} connected user={} tenant={} client={} database={} tls={} upstream_tls={}",
                 id_, user_, tenant_ ? *tenant_ : std::string("(bypass)"), peer_, decision.database,
                 client_.tls() ? "on" : "off", upstream_.tls() ? "on" : "off");
    if (!co_await write_client(out)) co_return;

    kind_gauge_ = tenant_ ? &server_.metrics().connections_tenant : &server_.metrics().connections_bypass;
    kind_gauge_->fetch_add(1, std::memory_order_relaxed);
    if (server_.shutting_down()) co_return;
    if (tenant_) {
      co_await tenant_loop();
      // The client vanished while its statement ran (a long query, a COPY): cancel it, so
      // the server backend does not keep running it for nobody (it ends on the closed socket).
      if (client_gone_ && in_flight()) co_await cancel_backend();
    } else {
      co_await (pump(client_, upstream_, client_buf_) || pump(upstream_, client_, server_buf_));
    }
    spdlog::info("session={} closed user={}", id_, user_);
  }

  ~ClientConnection() {
    if (counted_user_) server_.user_connections(user_, -1);
    worker_.shutdown_hooks.erase(id_);
    server_.metrics().connections_active.fetch_sub(1, std::memory_order_relaxed);
    if (kind_gauge_) kind_gauge_->fetch_sub(1, std::memory_order_relaxed);
    if (client_key_) server_.cancels().remove(*client_key_);
  }

 private:
  // ---- startup and authentication ----------------------------------------------------------

  asio::awaitable<std::optional<protocol::StartupPacket>> read_startup() {
    for (;;) {
      auto r = protocol::decode_startup(client_buf_, kMaxStartupPacket);
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

  asio::awaitable<bool> scram_exchange() {
    const policy::Login* login = policy_->login(user_);
    auth::ScramVerifier verifier = auth::mock_verifier(user_);
    if (login && login->password.starts_with("SCRAM-SHA-256$")) {
      auto parsed = auth::ScramVerifier::parse(login->password);
      if (!parsed) {
        spdlog::error("session={} user={}: the stored SCRAM verifier does not decode", id_, user_);
        co_return co_await auth_failed("bad stored verifier");
      }
      verifier = *parsed;
    } else if (login) {
      verifier = auth::ScramVerifier::from_password(login->password, auth::random_bytes(16));
    }
    auth::ScramServer scram(std::move(verifier));
    std::string out;
    protocol::append_auth_sasl(out, {"SCRAM-SHA-256"});
    if (!co_await write_client(out)) co_return false;

    auto first = co_await read_client_frame(kMaxAuthMessage);
    if (!first) co_return false;
    if (first->tag != protocol::fe::kPasswordMessage) co_return co_await auth_failed("expected SASLInitialResponse");
    auto init = protocol::parse_sasl_initial_response(first->body);
    client_buf_.erase(0, first->size);
    if (!init || init->mechanism != "SCRAM-SHA-256") co_return co_await auth_failed("bad SASL mechanism");
    auto server_first = scram.handle_client_first(init->data);
    if (!server_first) co_return co_await auth_failed("malformed SCRAM client-first message");
    out.clear();
    protocol::append_auth_sasl_continue(out, *server_first);
    if (!co_await write_client(out)) co_return false;

    auto fin = co_await read_client_frame(kMaxAuthMessage);
    if (!fin) co_return false;
    if (fin->tag != protocol::fe::kPasswordMessage) co_return co_await auth_failed("expected SASLResponse");
    std::string client_final(fin->body);
    client_buf_.erase(0, fin->size);
    auto server_final = scram.handle_client_final(client_final);
    if (!server_final || login == nullptr) {
      const char* why = login ? "wrong password" : "unknown user";
      co_return co_await auth_failed(why);
    }
    out.clear();
    protocol::append_auth_sasl_final(out, *server_final);
    protocol::append_auth_ok(out);
    co_return co_await write_client(out);
  }

  asio::awaitable<bool> auth_failed(std::string_view why) {
    server_.metrics().auth_failures.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("session={} client={} user={} authentication failed: {}", id_, peer_, user_, why);
    std::string msg = "password authentication failed for user \"" + user_ + "\"";
    co_await fatal("28P01", msg);
    co_return false;
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
    co_await (client_to_server(session) || server_to_client(session));
  }

  asio::awaitable<void> client_to_server(session::TenantSession& session) {
    std::string out;
    for (;;) {
      // Handle every complete message already received, then forward them in one write.
      for (;;) {
        auto r = protocol::decode_frame(client_buf_, kMaxMessage);
        if (r.status == protocol::DecodeStatus::kNeedMore) break;
        if (r.status == protocol::DecodeStatus::kMalformed) {
          spdlog::warn("session={} client={} malformed message: {}", id_, peer_, r.error);
          std::string msg = "invalid message: " + r.error;
          co_await fatal("08P01", msg);
          co_return;
        }
        if (session.tx_status() == 'I') policy_ = server_.policy();  // reloads apply between transactions
        auto t0 = std::chrono::steady_clock::now();
        session::ClientStep step = session.on_client_message(r.frame, *policy_);
        server_.metrics().observe_rewrite(static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count()));
        if (r.frame.tag == protocol::fe::kQuery || r.frame.tag == protocol::fe::kSync) {
          ++batches_out_;
          if (!upstream_wait_) upstream_wait_ = t0;
        }
        client_buf_.erase(0, r.frame.size);
        if (!step.denial.empty()) {
          spdlog::warn("session={} denied user={} tenant={} client={}: {} | statement: {}", id_,
                       user_, *tenant_, peer_, step.denial, truncate(step.statement));
          server_.metrics().count_denial(step.denial);
          audit(step.statement, false, step.denial);
        } else if (!step.statement.empty()) {
          spdlog::debug("session={} forward: {}", id_, truncate(step.statement));
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
      }
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
        auto r = protocol::decode_frame(std::string_view(server_buf_).substr(pos), kMaxMessage);
        if (r.status == protocol::DecodeStatus::kNeedMore) break;
        if (r.status == protocol::DecodeStatus::kMalformed) {
          spdlog::error("session={} malformed message from the server: {}", id_, r.error);
          co_await write_client(out);
          co_await fatal("08P01", "rowguard: malformed message from the server");
          co_return;
        }
        std::string_view raw = std::string_view(server_buf_).substr(pos, r.frame.size);
        pos += r.frame.size;
        last_server_tag_ = r.frame.tag;
        session::ServerStep step = session.on_server_message(r.frame, raw, out);
        if (r.frame.tag == protocol::be::kReadyForQuery) {
          ++batches_in_;
          tx_ = session.tx_status();
          if (draining_ && tx_ == 'I' && !in_flight()) {
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
      }
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

  asio::awaitable<void> pump(Stream& from, Stream& to, std::string& pending) {
    if (!pending.empty()) {
      auto [ec, n] = co_await to.write(asio::buffer(pending));
      if (ec) co_return;
      pending.clear();
    }
    std::vector<char> buf(kReadChunk);
    for (;;) {
      auto [ec, n] = co_await from.read_some(asio::buffer(buf));
      if (ec) co_return;
      auto [wec, wn] = co_await to.write(asio::buffer(buf.data(), n));
      if (wec) co_return;
    }
  }

  // ---- I/O helpers ---------------------------------------------------------------------------

  asio::awaitable<bool> read_more(Stream& stream, std::string& buf) {
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

  asio::awaitable<bool> write_client(std::string_view bytes) {
    auto [ec, n] = co_await client_.write(asio::buffer(bytes.data(), bytes.size()));
    if (!ec) server_.metrics().bytes_to_clients.fetch_add(n, std::memory_order_relaxed);
    co_return !ec;
  }

  asio::awaitable<bool> write_server(std::string_view bytes) {
    auto [ec, n] = co_await upstream_.write(asio::buffer(bytes.data(), bytes.size()));
    co_return !ec;
  }

  bool in_flight() const { return batches_in_ < batches_out_; }

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
  uint64_t batches_out_ = 0;  // Query/Sync forwarded (tenant sessions)
  uint64_t batches_in_ = 0;   // ReadyForQuery relayed
  std::optional<std::chrono::steady_clock::time_point> upstream_wait_;
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
