// The startup of a client connection: SSLRequest (TLS) / GSSENCRequest (answered 'N'),
// CancelRequest (routed to its backend), the startup packet's checks, the client's
// authentication ([tenancy] identity, client_auth.h), the upstream login, and the login's
// answer up to the first ReadyForQuery. [proxy] auth_timeout bounds it up to the client's
// authentication (for identity = "role", which PostgreSQL authenticates, the upstream login too).
#include <spdlog/spdlog.h>

#include <atomic>
#include <cctype>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <optional>
#include <vector>

#include "pg/sqlstate.h"
#include "policy/rls_sql.h"
#include "proxy/net/admin.h"
#include "proxy/net/client_connection.h"
#include "proxy/net/connection.h"
#include "proxy/net/server.h"
#include "sqlrewrite/rewriter.h"

namespace rowguard::net {
namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

namespace {

std::string endpoint_text(Stream& s, bool remote) {
  boost::system::error_code ec;
  auto ep = remote ? s.socket().remote_endpoint(ec) : s.socket().local_endpoint(ec);
  return ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
}

}  // namespace

asio::awaitable<bool> ClientConnection::establish() {
  // Startup and authentication must finish in time (a slow or silent client holds nothing):
  // when the deadline comes first, the authentication is cancelled where it waits.
  auto raced = co_await (authenticate() || auth_deadline());
  if (raced.index() == 1) {
    spdlog::warn("session={} client={} startup/authentication timeout", id_, peer_);
    client_.close();
    co_return false;
  }
  std::optional<Authenticated> authed = std::move(std::get<0>(raced));
  if (!authed) co_return false;
  ClientAuth& who = authed->who;
  session::StartupDecision& decision = authed->decision;
  if (!who.passthrough) {
    if (wants_console(authed->startup)) {  // the admin console: answered here, never forwarded
      ConsoleClient console{client_, client_buf_, id_, user_, peer_, *info_};
      co_await serve_console(server_, console);
      co_return false;
    }
    if (policy_->pool.mode == policy::PoolMode::kTransaction && who.tenant) {
      authed->up = co_await open_pooled(who, decision);  // tenant sessions only: bypass keeps its own backend
    } else {
      authed->up = co_await open_upstream(who, decision);
    }
    if (!authed->up) co_return false;
  }
  UpstreamLogin& up = *authed->up;
  std::string out;
  if (who.passthrough) protocol::append_auth_ok(out);
  for (const auto& p : up.parameters) {
    if (tenant_ && p.name == "standard_conforming_strings" && p.value != "on") {
      co_await fatal(pg::sqlstate::kObjectNotInPrerequisiteState,
                     "rowguard: the server has standard_conforming_strings off; "
                     "tenant sessions need it on");
      co_return false;
    }
    // rowguard checks statement text as UTF8. A server of another encoding converts that text
    // and cuts names at 63 bytes of its own encoding, so two names rowguard holds apart (prepared
    // statements, cursors) could be one name upstream: refused for tenants. (SQL_ASCII would
    // not validate the bytes at all.)
    if (tenant_ && p.name == "server_encoding" && p.value != "UTF8") {
      co_await fatal(pg::sqlstate::kObjectNotInPrerequisiteState,
                     "rowguard: the database's server_encoding is " + p.value +
                         "; tenant sessions need a UTF8 database (rowguard checks statements as UTF8)");
      co_return false;
    }
    protocol::append_parameter_status(out, p.name, p.value);
  }
  backend_key_ = {up.key.pid, up.key.key};
  client_key_ = server_.cancels().add({up.key.pid, up.key.key, nullptr, upstream_host_, upstream_port_});
  protocol::append_backend_key_data(out, client_key_->first, client_key_->second);
  protocol::append_ready_for_query(out, up.tx_status);
  tx_ = up.tx_status;
  server_buf_ = std::move(up.leftover);
  spdlog::info("session={} connected user={} tenant={} client={} upstream={} database={} tls={} upstream_tls={} auth={} "
               "upstream_cbind={}",
               id_, user_, tenant_ ? *tenant_ : std::string("(bypass)"), peer_, upstream_name_, database_,
               client_.tls() ? "on" : "off", upstream_.tls() ? "on" : "off", to_string(who.method),
               up.channel_binding ? "on" : "off");
  if (!co_await write_client(out)) co_return false;
  info_->set_login(user_, tenant_, tenant_ ? ClientInfo::Kind::kTenant : ClientInfo::Kind::kBypass);
  if (tx_pool_.on) {  // SHOW SERVERS: the backend of the connection held at the time (0: none)
    const policy::Upstream* where = policy_->upstream(upstream_name_);
    info_->set_upstream(upstream_host_ + ":" + std::to_string(upstream_port_), "(pooled)", database_, 0,
                        where && where->settings.upstream_tls != policy::UpstreamTls::kDisable, upstream_name_);
  } else {
    info_->set_upstream(endpoint_text(upstream_, true), endpoint_text(upstream_, false), database_, up.key.pid,
                        upstream_.tls(), upstream_name_);
  }
  if (tenant_) {
    // Tenant placement: a reload that moves this tenant drains this session (placement_changed).
    worker_.reload_hooks[id_] = [this] { placement_changed(); };
    placement_changed();  // a reload that landed during the login
  }
  co_return true;
}

asio::awaitable<void> ClientConnection::auth_deadline() {
  asio::steady_timer timer(worker_.ctx);
  timer.expires_after(std::chrono::seconds(policy_->proxy.auth_timeout_seconds));
  co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));  // cancelled: authenticated in time
}

asio::awaitable<std::optional<ClientConnection::Authenticated>> ClientConnection::authenticate() {
  auto startup = co_await read_startup();
  if (!startup) co_return std::nullopt;
  take_upstream_choice(*startup);
  auto decision = session::check_startup(*startup, *policy_);
  if (!decision.ok) {
    spdlog::warn("session={} client={} refused at startup: {}", id_, peer_, decision.message);
    co_await fatal(decision.sqlstate, decision.message);
    co_return std::nullopt;
  }
  for (const auto& [name, value] : decision.upstream_params) {
    // The debug levels and log send the backend's debug and log lines: transaction ids (they count
    // every tenant's writes), other sessions' pids (sqlrewrite/rewriter.h). Refused for every login:
    // whether it is a tenant's is known only after authentication, and bypass users may SET it.
    std::string key;
    for (char c : name) key.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    if (key == "client_min_messages" && !sqlrewrite::safe_client_min_messages(value)) {
      spdlog::warn("session={} client={} refused at startup: client_min_messages \"{}\"", id_, peer_, value);
      co_await fatal(pg::sqlstate::kInsufficientPrivilege,
                     "rowguard: startup parameter client_min_messages \"" + value +
                         "\" is not allowed: only info, notice, warning or error (the debug levels and log send "
                         "the session's debug and log lines, which show transaction ids; rule: transaction_ids)");
      co_return std::nullopt;
    }
  }
  user_ = decision.user;
  if (int limit = policy_->proxy.max_connections_per_user; limit > 0) {
    counted_user_ = true;
    if (server_.user_connections(user_, +1) > limit) {
      spdlog::warn("session={} client={} user={} refused: max_connections_per_user ({}) reached", id_, peer_, user_, limit);
      std::string msg = "too many connections for role \"" + user_ + "\"";
      co_await fatal(pg::sqlstate::kTooManyConnections, msg);
      co_return std::nullopt;
    }
  }
  if (server_.tls_required() && !client_.tls()) {
    spdlog::warn("session={} client={} user={} refused: TLS is required", id_, peer_, user_);
    co_await fatal(pg::sqlstate::kInvalidAuthorizationSpecification,
                   "rowguard: TLS is required for every connection (connect with sslmode=require)");
    co_return std::nullopt;
  }
  // ---- identity ([tenancy] identity = map | jwt | role): proxy/net/client_auth.h ----
  if (policy_->identity.mode == policy::IdentityMode::kRole && wants_console(*startup)) {
    // The console authenticates against the policy's [[bypass]] logins, which role mode has not.
    spdlog::warn("session={} client={} user={} refused: no admin console with identity = role", id_, peer_, user_);
    co_await fatal(pg::sqlstate::kFeatureNotSupported,
                   "rowguard: the admin console is not available with [tenancy] identity = \"role\"");
    co_return std::nullopt;
  }
  SSL* client_ssl = client_.native_tls();
  ClientAuth who = co_await authenticate_client(*this, *policy_, user_, client_ssl);
  if (!who.ok) {
    if (!who.client_left) co_await auth_failed(who);
    co_return std::nullopt;
  }
  Authenticated authed{std::move(*startup), std::move(decision), std::move(who), std::nullopt};
  if (authed.who.passthrough) {  // PostgreSQL authenticates the client: the login is part of it
    authed.up = co_await open_upstream(authed.who, authed.decision);
    if (!authed.up) co_return std::nullopt;
  }
  co_return std::move(authed);
}

// The authenticated login becomes the session's: its tenant, how it was authenticated, its JWT
// (kept for reloads, wiped from `who`) and the policy version it was checked under.
void ClientConnection::take_identity(ClientAuth& who) {
  tenant_ = who.tenant;
  identity_method_ = who.method;
  jwt_token_.assign(who.jwt_token);
  wipe(who.jwt_token);
  identity_checked_version_ = policy_->version;
}

asio::awaitable<std::optional<UpstreamLogin>> ClientConnection::open_upstream(ClientAuth& who,
                                                                              session::StartupDecision& decision) {
  take_identity(who);
  if (tenant_) decision.upstream_params.emplace_back("search_path", "public");
  if (policy_->backstop == policy::Backstop::kRls) {  // policy/rls_sql.h: PostgreSQL RLS reads these settings
    auto backstop = policy::backstop_startup_params(tenant_);
    if (!backstop) {
      co_await fatal(pg::sqlstate::kInsufficientPrivilege,
                     "rowguard: the tenant value cannot be set on the upstream session");
      co_return std::nullopt;
    }
    decision.upstream_params.insert(decision.upstream_params.end(), backstop->begin(), backstop->end());
  }
  if (tenant_ && !upstream_choice_.empty()) {
    spdlog::warn("session={} client={} user={} refused: a tenant named upstream \"{}\"", id_, peer_, user_,
                 upstream_choice_);
    const std::string msg = "rowguard: database \"...@" + upstream_choice_ +
                            "\" chooses an upstream, which only bypass users may do; a tenant's sessions go to "
                            "the upstream its placement names (rule: placement)";
    co_await fatal(pg::sqlstate::kInsufficientPrivilege, msg);
    co_return std::nullopt;
  }
  const policy::Upstream* where = wanted_upstream(*policy_);
  if (where == nullptr) {
    const std::string msg = "rowguard: the upstream \"" + upstream_choice_ + "\" is not in the policy";
    co_await fatal(pg::sqlstate::kConnectionFailure, msg);
    co_return std::nullopt;
  }
  upstream_name_ = where->name;
  upstream_host_ = where->settings.upstream_host;
  upstream_port_ = where->settings.upstream_port;
  if (where->settings.upstream_database) decision.database = *where->settings.upstream_database;
  database_ = decision.database;
  policy::ProxySettings upstream_settings = where->settings;
  asio::ssl::context* upstream_tls = where->name == policy::kDefaultUpstream ? server_.upstream_tls()
                                                                             : server_.upstream_tls_for(where->settings);
  std::unique_ptr<AuthRelay> relay;
  if (who.passthrough) {  // identity = "role": the client logs in upstream as its own role
    upstream_settings.upstream_user = user_;
    upstream_settings.upstream_password.clear();
    relay = make_client_relay(*this);
  }
  // ---- end identity ----

  UpstreamLogin up = co_await login_upstream(upstream_, upstream_tls, upstream_settings,
                                             decision.database, decision.upstream_params, relay.get());
  if (!up.ok && who.passthrough && !up.authenticated && !up.server_message.empty()) {
    who.ok = false;  // PostgreSQL refused the client's own credentials: relay its error
    who.sqlstate = up.sqlstate;
    who.message = up.server_message;
    who.reason = "refused by PostgreSQL (identity = role): " + up.server_message;
    co_await auth_failed(who);
    co_return std::nullopt;
  }
  if (!up.ok && up.client_left) {  // e.g. psql asking for the password: it reconnects
    spdlog::info("session={} client={} user={} left during authentication", id_, peer_, user_);
    co_return std::nullopt;
  }
  if (!up.ok) {
    server_.metrics().upstream_failures.fetch_add(1, std::memory_order_relaxed);
    spdlog::error("session={} user={} upstream login failed: {} ({})", id_, user_, up.message, up.sqlstate);
    std::string_view code = up.sqlstate.empty() ? pg::sqlstate::kConnectionFailure : std::string_view(up.sqlstate);
    std::string msg = "rowguard: cannot open the upstream connection: " + up.message;
    co_await fatal(code, msg);
    co_return std::nullopt;
  }
  if (!who.refuse_after_auth.empty()) {
    spdlog::warn("session={} client={} user={} refused: {}", id_, peer_, user_, who.refuse_after_auth);
    co_await fatal(pg::sqlstate::kInvalidAuthorizationSpecification, who.refuse_after_auth);
    co_return std::nullopt;
  }
  co_return std::move(up);
}

// Transaction pooling: no upstream login of its own. The client gets the ParameterStatus of the
// pool's first server connection (one is opened if none is yet) with its own startup settings
// over them, and a BackendKeyData that stands for whichever connection it holds at the time.
asio::awaitable<std::optional<UpstreamLogin>> ClientConnection::open_pooled(ClientAuth& who,
                                                                            session::StartupDecision& decision) {
  take_identity(who);
  if (!who.refuse_after_auth.empty()) {
    spdlog::warn("session={} client={} user={} refused: {}", id_, peer_, user_, who.refuse_after_auth);
    co_await fatal(pg::sqlstate::kInvalidAuthorizationSpecification, who.refuse_after_auth);
    co_return std::nullopt;
  }
  if (!upstream_choice_.empty()) {  // (tenant sessions only here)
    const std::string msg = "rowguard: database \"...@" + upstream_choice_ +
                            "\" chooses an upstream, which only bypass users may do; a tenant's sessions go to "
                            "the upstream its placement names (rule: placement)";
    co_await fatal(pg::sqlstate::kInsufficientPrivilege, msg);
    co_return std::nullopt;
  }
  client_database_ = decision.database;
  follow_placement();
  decision.database = database_;
  PoolRuntime::Baseline base = co_await tx_pool_.pool->baseline();
  if (!base.ok) {
    server_.metrics().upstream_failures.fetch_add(1, std::memory_order_relaxed);
    spdlog::error("session={} user={} no pooled server connection: {} ({})", id_, user_, base.message, base.sqlstate);
    co_await fatal(base.sqlstate, base.message);
    co_return std::nullopt;
  }
  tx_pool_.on = true;
  tx_pool_.wanted = base.settings;
  auto lower = [](std::string v) {
    for (char& c : v) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return v;
  };
  std::map<std::string, std::string> given;  // the client's startup settings, lower-case names
  for (const auto& [name, value] : decision.upstream_params) given[lower(name)] = value;
  if (!given.count("application_name") && given.count("fallback_application_name")) {
    given["application_name"] = given["fallback_application_name"];
  }
  for (const auto& [name, value] : given) {
    if (tx_pool_.wanted.count(name)) tx_pool_.wanted[name] = value;
  }
  UpstreamLogin up;
  up.ok = true;
  up.authenticated = true;
  for (protocol::ParameterStatus p : base.parameters) {
    if (auto it = given.find(lower(p.name)); it != given.end() && tx_pool_.wanted.count(it->first)) p.value = it->second;
    up.parameters.push_back(std::move(p));
  }
  up.key = {0, 0};  // cancels nothing until the client holds a connection
  up.tx_status = 'I';
  co_return up;
}

asio::awaitable<std::optional<protocol::StartupPacket>> ClientConnection::read_startup() {
  for (;;) {
    auto r = protocol::decode_startup(client_buf_, policy_->limits.max_startup_packet);
    if (r.status == protocol::DecodeStatus::kMalformed && r.too_long) {
      spdlog::warn("client={} startup packet over [limits] max_startup_packet: {}", peer_, r.error);
      std::string msg = "invalid length of startup packet: " + r.error + " bytes ([limits] max_startup_packet)";
      co_await fatal(pg::sqlstate::kProtocolViolation, msg);
      co_return std::nullopt;
    }
    if (r.status == protocol::DecodeStatus::kMalformed) {
      spdlog::warn("client={} malformed startup packet: {}", peer_, r.error);
      std::string msg = "invalid startup packet: " + r.error;
      co_await fatal(pg::sqlstate::kProtocolViolation, msg);
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
      case protocol::StartupPacket::Kind::kStartup: {
        if (auto out = negotiate_protocol(r.packet)) {
          if (!co_await write_client(*out)) co_return std::nullopt;
        }
        co_return std::move(r.packet);
      }
    }
  }
}

asio::awaitable<void> ClientConnection::auth_failed(const ClientAuth& who) {
  server_.metrics().auth_failures.fetch_add(1, std::memory_order_relaxed);
  spdlog::warn("session={} client={} user={} authentication failed: {}", id_, peer_, user_, who.reason);
  co_await fatal(who.sqlstate, who.message);
}

// ClientIo (the authentication exchanges of client_auth.h)
asio::awaitable<std::optional<ClientMessage>> ClientConnection::next_client_message(size_t max) {
  auto frame = co_await read_client_frame(max);
  if (!frame) co_return std::nullopt;
  ClientMessage m{frame->tag, std::string(frame->body)};
  client_buf_.erase(0, frame->size);
  co_return m;
}

asio::awaitable<void> ClientConnection::forward_cancel(int32_t pid, int32_t key) {
  const int owner = CancelRegistry::instance_of(pid);
  if (owner != server_.cancels().instance()) {
    // Another instance of the fleet handed out this key: forward it there, once.
    for (const auto& peer : policy_->peers) {
      if (peer.id != owner) continue;
      co_await send_cancel_to(worker_.ctx, peer.host, peer.port, pid, key);
      spdlog::info("client={} cancel request forwarded to peer {} ({}:{})", peer_, peer.id, peer.host, peer.port);
      co_return;
    }
    spdlog::info("client={} cancel request for instance {}, which is not a configured peer, ignored", peer_, owner);
    co_return;
  }
  auto target = server_.cancels().find({pid, key});
  if (!target) {
    spdlog::info("client={} cancel request with an unknown key ignored", peer_);
    co_return;
  }
  std::string host = target->host.empty() ? policy_->proxy.upstream_host : target->host;
  uint16_t port = target->host.empty() ? policy_->proxy.upstream_port : target->port;
  co_await send_cancel_to(worker_.ctx, host, port, target->pid, target->key);
  spdlog::info("client={} cancel forwarded to its backend ({}:{})", peer_, host, port);
}

// ---- tenant placement -----------------------------------------------------------------------

void ClientConnection::take_upstream_choice(protocol::StartupPacket& startup) {
  for (auto& [name, value] : startup.params) {
    if (name != "database") continue;
    const auto at = value.rfind('@');
    if (at == std::string::npos || at == 0) return;
    const std::string upstream = value.substr(at + 1);
    // Only a name the policy has: "x@y" is otherwise a database name like any other.
    if (policy_->upstream(upstream) == nullptr) return;
    upstream_choice_ = upstream;
    value.resize(at);
    return;
  }
}

const policy::Upstream* ClientConnection::wanted_upstream(const policy::Policy& policy) const {
  if (tenant_) return &policy.upstream_of(*tenant_);
  return policy.upstream(upstream_choice_.empty() ? policy::kDefaultUpstream : std::string_view(upstream_choice_));
}

// Session mode: the session's backend is on upstream_name_. Transaction pooling: only a held
// lease is (a client pinned to its server connection, or a transaction under way); without one
// the next transaction follows the placement by itself (follow_placement).
void ClientConnection::placement_changed() {
  if (!tenant_ || upstream_host_.empty() || !moved_.empty()) return;
  policy::PolicyPtr latest = server_.policy();
  const policy::Upstream* want = wanted_upstream(*latest);
  if (want != nullptr && want->name == upstream_name_) {
    if (placement_timer_) {  // moved back before the drain ended: the session stays
      spdlog::info("session={} tenant={} placed on upstream {} again: drain stopped", id_, *tenant_, upstream_name_);
      placement_timer_->cancel();
      placement_timer_.reset();
    }
    return;
  }
  if (placement_timer_) return;  // draining already
  if (tx_pool_.on && tx_pool_.lease == nullptr) return;
  const int seconds = latest->proxy.placement_drain_timeout_seconds;
  spdlog::info("session={} tenant={} moved from upstream {} to {}: this session closes in {} s "
               "([proxy] placement_drain_timeout)", id_, *tenant_, upstream_name_, want ? want->name : "?", seconds);
  placement_timer_ = std::make_shared<asio::steady_timer>(worker_.ctx);
  placement_timer_->expires_after(std::chrono::seconds(seconds));
  asio::co_spawn(worker_.ctx, placement_drain(placement_timer_, alive_), asio::detached);
}

asio::awaitable<void> ClientConnection::placement_drain(std::shared_ptr<asio::steady_timer> timer,
                                                        std::weak_ptr<bool> alive) {
  auto [ec] = co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
  if (ec || alive.expired() || placement_timer_ != timer) co_return;  // cancelled, or the session ended
  policy::PolicyPtr latest = server_.policy();
  const policy::Upstream* want = wanted_upstream(*latest);
  if (want != nullptr && want->name == upstream_name_) co_return;
  if (tx_pool_.on && tx_pool_.lease == nullptr) {  // (it let go of its server connection meanwhile)
    placement_timer_.reset();
    co_return;
  }
  moved_ = "rowguard: tenant \"" + *tenant_ + "\" was moved to upstream \"" + (want ? want->name : "?") +
           "\" by a policy reload; this session's server connection is on \"" + upstream_name_ +
           "\" and was closed after [proxy] placement_drain_timeout (" +
           std::to_string(latest->proxy.placement_drain_timeout_seconds) + " s); reconnect";
  spdlog::warn("session={} user={} tenant={} closed: moved from upstream {} to {}", id_, user_, *tenant_,
               upstream_name_, want ? want->name : "?");
  boost::system::error_code ignored;
  client_.socket().cancel(ignored);  // the loops end; finish_refused sends the FATAL
}

void ClientConnection::follow_placement() {
  const policy::Upstream& want = policy_->upstream_of(*tenant_);
  const std::string database = want.settings.upstream_database.value_or(client_database_);
  if (tx_pool_.pool && want.name == upstream_name_ && want.settings.upstream_host == upstream_host_ &&
      want.settings.upstream_port == upstream_port_ && database == database_) {
    return;
  }
  std::shared_ptr<PoolRuntime> next;
  {
    std::lock_guard lock(worker_.pools_mu);
    std::shared_ptr<PoolRuntime>& pool = worker_.pools[pool_key(want, database)];
    if (!pool) pool = std::make_shared<PoolRuntime>(server_, worker_.ctx, want.name, database, policy_, server_.worker_count());
    next = pool;
  }
  if (tx_pool_.pool) {
    spdlog::info("session={} tenant={} moved from upstream {} to {}: its transactions go there from now on", id_,
                 *tenant_, upstream_name_, want.name);
    if (tx_pool_.counted_pinned) {
      tx_pool_.pool->pinned(-1, tx_pool_.counted_pin_reason);
      next->pinned(+1, tx_pool_.counted_pin_reason);
    }
    // Its LISTENs move to the new upstream's listener (take_lease LISTENs them there): the old
    // listener must not keep this connection as a sink.
    if (!tx_pool_.listens.empty()) {
      std::set<std::string> moved = tx_pool_.listens;
      drop_listens();
      tx_pool_.relisten = std::move(moved);
    }
  }
  tx_pool_.pool = std::move(next);
  upstream_name_ = want.name;
  upstream_host_ = want.settings.upstream_host;
  upstream_port_ = want.settings.upstream_port;
  database_ = database;
  if (tx_pool_.on) {
    info_->set_upstream(upstream_host_ + ":" + std::to_string(upstream_port_), "(pooled)", database_, 0,
                        want.settings.upstream_tls != policy::UpstreamTls::kDisable, upstream_name_);
  }
}

}  // namespace rowguard::net

namespace rowguard::net {

std::optional<std::string> negotiate_protocol(protocol::StartupPacket& packet) {
  // Protocol options ("_pq_." parameters, none of which rowguard knows) are not session
  // parameters: as PostgreSQL, list them as unrecognized rather than refuse the startup.
  std::vector<std::string> unrecognized;
  std::erase_if(packet.params, [&](const auto& kv) {
    if (!kv.first.starts_with("_pq_.")) return false;
    unrecognized.push_back(kv.first);
    return true;
  });
  if ((packet.protocol_version & 0xFFFF) == 0 && unrecognized.empty()) return std::nullopt;
  // Speak 3.0: tell the client so, as PostgreSQL does for a newer minor version (3.2, 3.9999):
  // the newest minor version supported, then the options not recognized.
  std::string body;
  auto put_i32 = [&](uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) body.push_back(static_cast<char>((v >> shift) & 0xff));
  };
  put_i32(0);
  put_i32(static_cast<uint32_t>(unrecognized.size()));
  for (const auto& name : unrecognized) body.append(name).push_back('\0');
  std::string out;
  protocol::append_frame(out, protocol::be::kNegotiateProtocolVersion, body);
  return out;
}

asio::awaitable<void> send_cancel_to(asio::io_context& ctx, std::string host, uint16_t port, int32_t pid,
                                     int32_t key) {
  // (Bounded by `limit`: a server or peer that never closes holds this for 10 s at most.)
  constexpr auto use = asio::as_tuple(asio::use_awaitable);
  asio::ip::tcp::resolver resolver(ctx);
  auto [rec, eps] = co_await resolver.async_resolve(host, std::to_string(port), use);
  if (rec) co_return;
  asio::ip::tcp::socket sock(ctx);
  asio::steady_timer limit(ctx, std::chrono::seconds(10));
  auto attempt = [&]() -> asio::awaitable<bool> {
    auto [cec, ep] = co_await asio::async_connect(sock, eps, use);
    if (cec) co_return false;
    std::string out;
    protocol::append_cancel_request(out, pid, key);
    auto [wec, n] = co_await asio::async_write(sock, asio::buffer(out), use);
    if (wec) co_return false;
    // Done only when the server closes the connection: it has then signalled the backend (as
    // libpq's PQcancel waits). The client's cancel connection is closed after this returns, so a
    // client that goes on at once cannot overtake its cancel: an idle session's cancel lands while
    // the backend waits for a command (where PostgreSQL drops it), not in the next statement.
    char sink[64];
    for (;;) {
      auto [rec2, got] = co_await sock.async_read_some(asio::buffer(sink), use);
      if (rec2) co_return true;
    }
  };
  auto expire = [&]() -> asio::awaitable<void> { co_await limit.async_wait(use); };
  co_await (attempt() || expire());
}

namespace {
// Connections open on [proxy] peer_listen (every worker): anyone who reaches the listener can open
// them without authenticating, so they are bounded, or idle ones would take every file descriptor
// (tenant logins and upstream connections then fail). A forwarded cancel is one 16-byte write
// followed by a close; beyond the bound a connection is closed at once.
constexpr int kMaxPeerConnections = 64;
std::atomic<int> peer_connections{0};
}  // namespace

asio::awaitable<void> serve_peer_cancel(asio::ip::tcp::socket peer, Server& server, Worker& worker) {
  constexpr auto use = asio::as_tuple(asio::use_awaitable);
  struct Slot {
    const bool taken = peer_connections.fetch_add(1) < kMaxPeerConnections;
    ~Slot() { peer_connections.fetch_sub(1); }
  } slot;
  if (!slot.taken) {
    spdlog::debug("peer listener: {} connections open, one more closed", kMaxPeerConnections);
    co_return;
  }
  std::string from = "?";
  {
    boost::system::error_code ec;
    auto ep = peer.remote_endpoint(ec);
    if (!ec) from = ep.address().to_string() + ":" + std::to_string(ep.port());
  }
  // Exactly one CancelRequest: length 16, code 80877102, pid, key; within 10 s.
  unsigned char buf[16];
  asio::steady_timer limit(worker.ctx, std::chrono::seconds(10));
  auto read = [&]() -> asio::awaitable<bool> {
    auto [ec, n] = co_await asio::async_read(peer, asio::buffer(buf), use);
    co_return !ec && n == sizeof buf;
  };
  auto expire = [&]() -> asio::awaitable<void> { co_await limit.async_wait(use); };
  auto got = co_await (read() || expire());
  if (got.index() != 0 || !std::get<0>(got)) co_return;
  auto i32 = [&](int at) {
    return static_cast<int32_t>((uint32_t{buf[at]} << 24) | (uint32_t{buf[at + 1]} << 16) |
                                (uint32_t{buf[at + 2]} << 8) | uint32_t{buf[at + 3]});
  };
  if (i32(0) != 16 || i32(4) != protocol::kCancelRequestCode) {
    spdlog::warn("peer={} sent something other than a CancelRequest on the peer listener; closed", from);
    co_return;
  }
  const int32_t pid = i32(8), key = i32(12);
  // Never forwarded again: a key naming another instance, or unknown here, cancels nothing.
  auto target = CancelRegistry::instance_of(pid) == server.cancels().instance()
                    ? server.cancels().find({pid, key})
                    : std::nullopt;
  if (!target) {
    spdlog::info("peer={} forwarded cancel request with an unknown key ignored", from);
    co_return;
  }
  auto p = server.policy();
  std::string host = target->host.empty() ? p->proxy.upstream_host : target->host;
  uint16_t port = target->host.empty() ? p->proxy.upstream_port : target->port;
  co_await send_cancel_to(worker.ctx, host, port, target->pid, target->key);
  spdlog::info("peer={} forwarded cancel request sent to its backend", from);
}

}  // namespace rowguard::net
