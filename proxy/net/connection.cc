// One client connection: what its phases share (client_connection.h lists the files), and
// serve_client, the entry point.
#include "proxy/net/connection.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <optional>

#include "pg/sqlstate.h"
#include "proxy/net/client_connection.h"

namespace rowguard::net {
namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {
constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
}  // namespace

void give_back(std::string& buf) {
  if (buf.capacity() > kKeepCapacity && buf.size() <= kKeepCapacity / 4) buf.shrink_to_fit();
}

ClientConnection::ClientConnection(tcp::socket client, Server& server, Worker& worker)
    : client_(std::move(client)), server_(server), worker_(worker), upstream_(tcp::socket(worker.ctx)),
      watch_(worker.ctx, [this] {
        boost::system::error_code ignored;
        client_.socket().cancel(ignored);  // the read fails; the loops end; see finish_refused
      }),
      lease_signal_(worker.ctx),
      busy_signal_(worker.ctx),
      write_signal_(worker.ctx),
      notify_signal_(worker.ctx) {
  id_ = server_.next_session_id();
  server_.metrics().connections_total.fetch_add(1, std::memory_order_relaxed);
  server_.metrics().connections_active.fetch_add(1, std::memory_order_relaxed);
  // SIGTERM: an idle session closes now, one in a transaction when the transaction ends.
  worker_.shutdown_hooks[id_] = [this] {
    draining_ = true;
    // Bypass sessions close at once (their tx_ is tracked for [limits] only).
    const auto& session = tenant_relay_.session;
    const char tx = session ? session->tx_status() : tx_;
    if (!tenant_ || (tx == 'I' && !in_flight() && (!session || session->at_boundary()))) close_both();
  };
  boost::system::error_code ec;
  auto ep = client_.socket().remote_endpoint(ec);
  peer_ = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
  info_ = std::make_shared<ClientInfo>(id_, peer_);
  server_.clients().add(info_);
}

asio::awaitable<void> ClientConnection::run() {
  policy_ = server_.policy();
  const bool established = co_await establish();
  if (!established) co_return;
  kind_gauge_ = tenant_ ? &server_.metrics().connections_tenant : &server_.metrics().connections_bypass;
  kind_gauge_->fetch_add(1, std::memory_order_relaxed);
  if (server_.shutting_down()) co_return;
  watch_.idle(tx_, policy_->limits);
  // The timeouts run beside the loops and end with them (proxy/net/client_watch.h).
  if (tenant_) {
    co_await (tenant_loop() || watch_.run());
    // The client vanished while its statement ran (a long query, a COPY): cancel it, so
    // the server backend does not keep running it for nobody (it ends on the closed socket).
    if (tenant_relay_.client_gone && in_flight()) co_await cancel_backend();
    if (tx_pool_.on) {
      // A lease still held here ends mid-transaction, pinned, or at an error: closed, never reused.
      co_await finish_refused();
      drop_lease(false);
      spdlog::info("session={} closed user={}", id_, user_);
      co_return;
    }
  } else {
    co_await (bypass_loop() || watch_.run());
  }
  co_await finish_refused();
  spdlog::info("session={} closed user={}", id_, user_);
}

ClientConnection::~ClientConnection() {
  drop_lease(false);
  drop_listens();  // a client gone listens no more (listener.h)
  if (tx_pool_.counted_pinned) tx_pool_.pool->pinned(-1, tx_pool_.counted_pin_reason);
  if (counted_user_) server_.user_connections(user_, -1);
  worker_.shutdown_hooks.erase(id_);
  worker_.reload_hooks.erase(id_);
  server_.metrics().connections_active.fetch_sub(1, std::memory_order_relaxed);
  if (kind_gauge_) kind_gauge_->fetch_sub(1, std::memory_order_relaxed);
  if (client_key_) server_.cancels().remove(*client_key_);
  server_.clients().remove(id_);
}

// ---- limits: what ends a session early ----------------------------------------------------

// A client message whose length word is over [limits] max_message_size: nothing of it is
// read further or forwarded; finish_refused tells the client and closes.
void ClientConnection::refuse_too_long(char tag, uint32_t length) {
  std::string name = protocol::frontend_message_name(tag);
  spdlog::warn("session={} client={} user={} {} of {} bytes refused: over [limits] max_message_size ({})", id_,
               peer_, user_, name, length, policy_->limits.max_message_size);
  refusal_ = "rowguard: " + name + " message of " + std::to_string(length) + " bytes exceeds the limit of " +
             std::to_string(policy_->limits.max_message_size) + " bytes ([limits] max_message_size)";
}

// After the statement loops: the FATAL error for a limit or timeout that ended them.
asio::awaitable<void> ClientConnection::finish_refused() {
  if (!revoked_.empty()) {
    co_await fatal(pg::sqlstate::kInvalidAuthorizationSpecification, revoked_);
    co_return;
  }
  if (!moved_.empty()) {  // tenant placement: its tenant now lives on another upstream
    if (!in_flight()) {
      std::string bye;
      protocol::append_terminate(bye);  // the server rolls back an open transaction and ends
      co_await write_server(bye);
    }
    co_await fatal(pg::sqlstate::kAdminShutdown, moved_);
    co_return;
  }
  if (!refusal_.empty()) {
    co_await fatal(pg::sqlstate::kProtocolViolation, refusal_);
    co_return;
  }
  if (bypass_relay_.server_fault == ServerFault::kTooLong) {
    co_await fatal(pg::sqlstate::kProgramLimitExceeded,
                   "rowguard: a message from the server exceeds [limits] max_server_message");
    co_return;
  }
  if (bypass_relay_.server_fault != ServerFault::kNone) {
    co_await fatal(pg::sqlstate::kProtocolViolation, "rowguard: malformed message from the server");
    co_return;
  }
  const ClientWatch::Reason why = watch_.expired();
  if (why == ClientWatch::Reason::kNone) co_return;
  const std::string after = std::to_string(watch_.expired_after()) + " s";
  std::string code, msg, detail;
  switch (why) {
    case ClientWatch::Reason::kIdle:
      code = pg::sqlstate::kIdleSessionTimeout;
      msg = "terminating connection due to idle-session timeout";
      detail = "rowguard: no request for " + after + " outside a transaction ([limits] idle_client_timeout)";
      break;
    case ClientWatch::Reason::kIdleInTransaction:
      code = pg::sqlstate::kIdleInTransactionSessionTimeout;
      msg = "terminating connection due to idle-in-transaction timeout";
      detail = "rowguard: no request for " + after + " inside a transaction ([limits] idle_in_transaction_timeout); "
               "the transaction is rolled back";
      break;
    case ClientWatch::Reason::kPoolIdleInTransaction:  // (transaction pooling: its server connection is closed)
      code = pg::sqlstate::kIdleInTransactionSessionTimeout;
      msg = "terminating connection due to idle-in-transaction timeout";
      detail = "rowguard: no request for " + after + " inside a transaction holding a pooled server connection "
               "([pool] idle_transaction_timeout); the transaction is rolled back";
      break;
    default:
      code = pg::sqlstate::kProtocolViolation;
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

// ---- I/O helpers ------------------------------------------------------------------------------

asio::awaitable<bool> ClientConnection::read_more(Stream& stream, std::string& buf) {
  if (&stream == &client_ && watch_.expired() != ClientWatch::Reason::kNone) co_return false;
  if (&stream == &client_ && !moved_.empty()) co_return false;  // tenant placement: drained
  size_t old = buf.size();
  buf.resize(old + kReadChunk);
  auto [ec, n] = co_await stream.read_some(asio::buffer(buf.data() + old, kReadChunk));
  buf.resize(old + (ec ? 0 : n));
  if (!ec && &stream == &client_) server_.metrics().bytes_from_clients.fetch_add(n, std::memory_order_relaxed);
  co_return !ec;
}

// The next complete client message (pointing into client_buf_; the caller erases it).
asio::awaitable<std::optional<protocol::Frame>> ClientConnection::read_client_frame(size_t max) {
  for (;;) {
    auto r = protocol::decode_frame(client_buf_, max);
    if (r.status == protocol::DecodeStatus::kComplete) co_return r.frame;
    if (r.status == protocol::DecodeStatus::kMalformed) {
      spdlog::warn("session={} client={} malformed message: {}", id_, peer_, r.error);
      std::string msg = "invalid message: " + r.error;
      co_await fatal(pg::sqlstate::kProtocolViolation, msg);
      co_return std::nullopt;
    }
    if (!co_await read_more(client_, client_buf_)) co_return std::nullopt;
  }
}

asio::awaitable<bool> ClientConnection::write_client(std::string_view bytes) {
  auto [ec, n] = co_await client_.write(asio::buffer(bytes.data(), bytes.size()));
  if (!ec) server_.metrics().bytes_to_clients.fetch_add(n, std::memory_order_relaxed);
  co_return !ec;
}

asio::awaitable<bool> ClientConnection::write_server(std::string_view bytes) {
  auto [ec, n] = co_await up().write(asio::buffer(bytes.data(), bytes.size()));
  co_return !ec;
}

// Tenant sessions: the model of the server's state (proxy/session) says whether an answer is
// still owed; bypass sessions count Query/Sync against ReadyForQuery.
bool ClientConnection::in_flight() const {
  if (tenant_relay_.session) return !tenant_relay_.session->idle();
  if (tenant_) return false;  // the relay has not started
  return bypass_relay_.batches_in < bypass_relay_.batches_out;
}

// "" while the current policy still maps this login to its tenant, else why it no longer does.
std::string ClientConnection::identity_revoked() {
  const policy::PolicyPtr& latest = server_.policy(worker_);
  if (latest->version == identity_checked_version_) return "";
  identity_checked_version_ = latest->version;
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  return login_revoked(*latest, identity_method_, user_, tenant_, jwt_token_, now);
}

void ClientConnection::close_both() {
  client_.close();
  upstream_.close();
  if (tx_pool_.lease) tx_pool_.lease->stream.close();
}

void ClientConnection::audit(const std::string& statement, bool allowed, const std::string& reason) {
  AuditLog* log = server_.audit();
  if (log == nullptr || !log->wants(allowed) || statement.empty()) return;
  AuditEvent e{user_, tenant_.value_or(""), peer_, id_, statement, allowed, reason};
  std::shared_ptr<const sqlrewrite::AuditText> kept;  // parsed once per cache entry, not per execution
  if (tenant_) {
    kept = worker_.cache.audit_text(statement, *tenant_, log->masks_literals());
    e.fingerprint = &kept->fingerprint;
    if (log->masks_literals()) e.normalized = &kept->normalized;
  }
  log->record(e);
}

asio::awaitable<void> ClientConnection::fatal(std::string_view sqlstate, std::string_view message) {
  std::string out;
  protocol::append_error_response(out, "FATAL", sqlstate, message);
  co_await write_client(out);
}

// A CancelRequest on a new upstream connection (errors ignored: best effort, as in libpq).
asio::awaitable<void> ClientConnection::send_cancel(int32_t pid, int32_t key) {
  // The server the backend runs on: the held pooled connection's, else this session's own.
  std::string host = tx_pool_.lease ? tx_pool_.lease->host : upstream_host_;
  uint16_t port = tx_pool_.lease ? tx_pool_.lease->port : upstream_port_;
  if (host.empty()) {
    host = policy_->proxy.upstream_host;
    port = policy_->proxy.upstream_port;
  }
  co_await send_cancel_to(worker_.ctx, host, port, pid, key);
}

asio::awaitable<void> serve_client(tcp::socket client, Server& server, Worker& worker) {
  boost::system::error_code ec;
  client.set_option(tcp::no_delay(true), ec);
  if (server.metrics().connections_active.load() >= server.policy()->proxy.max_client_connections) {
    // Refused before reading anything, as PostgreSQL does past max_connections.
    std::string out;
    protocol::append_error_response(out, "FATAL", pg::sqlstate::kTooManyConnections, "sorry, too many clients already");
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
