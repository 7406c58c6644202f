// Listener, worker threads, signals (SIGINT/SIGTERM stop, SIGHUP reloads the policy).
#include "proxy/net/server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <chrono>
#include <random>

#include "auth/scram.h"
#include "proxy/net/connection.h"
#include "proxy/net/http_metrics.h"
#include "proxy/net/pool_runtime.h"

namespace rowguard::net {
namespace asio = boost::asio;
using asio::ip::tcp;

std::pair<int32_t, int32_t> CancelRegistry::add(Target target) {
  std::lock_guard lock(mu_);
  for (;;) {
    std::string r = auth::random_bytes(8);
    int32_t pid = 0, key = 0;
    std::memcpy(&pid, r.data(), 4);
    std::memcpy(&key, r.data() + 4, 4);
    pid = (instance_.load() << 22) | (pid & 0x3fffff) | 1;  // positive, like a real backend pid
    auto k = std::make_pair(pid, key);
    if (map_.emplace(k, target).second) return k;
  }
}

void CancelRegistry::remove(std::pair<int32_t, int32_t> client_key) {
  std::lock_guard lock(mu_);
  map_.erase(client_key);
}

std::optional<CancelRegistry::Target> CancelRegistry::find(std::pair<int32_t, int32_t> client_key) const {
  std::lock_guard lock(mu_);
  auto it = map_.find(client_key);
  if (it == map_.end() || it->second.pid == 0) return std::nullopt;
  if (it->second.sent) it->second.sent->store(true);
  return it->second;
}

void CancelRegistry::retarget(std::pair<int32_t, int32_t> client_key, Target target) {
  std::lock_guard lock(mu_);
  auto it = map_.find(client_key);
  if (it != map_.end()) it->second = std::move(target);
}

namespace {
int64_t unix_now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

Server::Server(policy::PolicyPtr policy, std::string config_path)
    : policy_(std::move(policy)), config_path_(std::move(config_path)), policy_loaded_at_us_(unix_now_us()) {
  // rowguard_pool_*: every worker's pool of a database summed at scrape (SHOW POOLS has them apart).
  metrics_.pool_samples = [this] {
    std::map<std::string, PoolSample> by_db;
    for (const auto& w : workers_) {
      std::lock_guard lock(w->pools_mu);
      for (const auto& [key, pool] : w->pools) {  // (keyed by pool_key: upstream, address, database)
        const std::string& db = pool->database();  // summed over upstreams (SHOW POOLS has them apart)
        auto [it, fresh] = by_db.try_emplace(db);
        if (fresh) it->second.database = db;
        it->second.add(pool->sample());
      }
    }
    std::vector<PoolSample> out;
    for (auto& [db, sample] : by_db) out.push_back(std::move(sample));
    return out;
  };
}

Server::~Server() { stop(); }

void Server::stop() {
  main_ctx_.stop();
  for (auto& w : workers_) w->ctx.stop();
}

std::optional<std::string> Server::reload() {
  std::unique_lock lock(reload_mu_);
  try {
    auto old = policy_.load();
    // The new file with the snapshot read so far (its tables may differ: a read follows).
    auto loaded = std::make_shared<policy::Policy>(*policy::load_policy(config_path_));
    loaded->schema = old->schema;
    policy::PolicyPtr fresh = loaded;
    if (fresh->proxy.listen_host != old->proxy.listen_host ||
        fresh->proxy.listen_port != old->proxy.listen_port || fresh->proxy.reuse_port != old->proxy.reuse_port ||
        fresh->proxy.peer_id != old->proxy.peer_id || fresh->proxy.peer_listen_host != old->proxy.peer_listen_host ||
        fresh->proxy.peer_listen_port != old->proxy.peer_listen_port) {
      spdlog::warn("reload: [proxy] listen, reuse_port, peer_id or peer_listen changed; it takes effect only after a restart");
    }
    policy_.store(fresh);
    policy_stores_.fetch_add(1, std::memory_order_release);
    // Tenant placement: sessions check whether their tenant was moved (proxy/net/client_connection.h).
    for (auto& w : workers_) {
      asio::post(w->ctx, [wk = w.get()] {
        std::vector<std::function<void()>> hooks;
        for (auto& [id, hook] : wk->reload_hooks) hooks.push_back(hook);
        for (auto& hook : hooks) hook();
      });
    }
    metrics_.set_max_tenant_labels(fresh->metrics.max_tenant_labels);
    policy_loaded_at_us_.store(unix_now_us());
    spdlog::info("reload: policy {} loaded (version {}, {} tables, {} users)", config_path_,
                 fresh->version, fresh->tables.size(), fresh->logins.size());
    lock.unlock();
    schema_changed("reload");
    return std::nullopt;
  } catch (const std::exception& e) {
    spdlog::error("reload: policy rejected, keeping the previous one: {}", e.what());
    return std::string(e.what());
  }
}

void Server::schema_changed(std::string reason) {
  if (schema_) schema_->request(std::move(reason));
}

void Server::install_schema(std::shared_ptr<const policy::SchemaSnapshot> schema) {
  std::lock_guard lock(reload_mu_);
  policy::PolicyPtr current = policy_.load();
  // A read that found what the policy already carries changes nothing: keeping the version keeps
  // the rewrite caches and every cursor and portal the sessions hold (a new version invalidates
  // WITH HOLD cursors: see session_portals.cc). SHOW SCHEMA's age comes from the refresher.
  if (current->schema && schema && current->schema->same_content(*schema)) return;
  auto next = std::make_shared<policy::Policy>(*current);
  next->schema = std::move(schema);
  next->version = policy::next_policy_version();  // invalidates the rewrite caches
  policy_.store(std::move(next));
  policy_stores_.fetch_add(1, std::memory_order_release);
}

std::optional<SchemaStatus> Server::schema_status() const {
  if (!schema_) return std::nullopt;
  return schema_->status();
}

namespace {

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, Server& server,
                                  std::vector<std::unique_ptr<Worker>>& workers, bool peers = false) {
  size_t next = 0;
  // A failing accept (out of file descriptors: EMFILE/ENFILE; out of memory) fails again at once
  // while connections wait in the backlog: wait before the next try, 10 ms doubling up to 1 s, and
  // warn at most every 10 s with how many failed meanwhile (no busy loop, no flooded log).
  using std::chrono::milliseconds;
  milliseconds backoff{0};
  uint64_t failures = 0, unreported = 0;
  std::chrono::steady_clock::time_point warned{};
  asio::steady_timer pause(acceptor.get_executor());
  for (;;) {
    Worker& w = *workers[next++ % workers.size()];
    auto [ec, sock] = co_await acceptor.async_accept(w.ctx, asio::as_tuple(asio::use_awaitable));
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      ++failures;
      ++unreported;
      const auto now = std::chrono::steady_clock::now();
      if (warned == std::chrono::steady_clock::time_point{} || now - warned >= std::chrono::seconds(10)) {
        spdlog::warn("accept failed: {} ({} failure(s) since the last warning; retrying with back-off{})", ec.message(),
                     unreported,
                     ec == asio::error::no_descriptors ? "; raise the open-files limit (ulimit -n, LimitNOFILE)" : "");
        warned = now;
        unreported = 0;
      }
      backoff = std::min(milliseconds(1000), backoff == milliseconds(0) ? milliseconds(10) : backoff * 2);
      pause.expires_after(backoff);
      auto [timer_ec] = co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      if (timer_ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      continue;
    }
    if (failures > 0) {
      spdlog::info("accepting connections again after {} failed accept(s)", failures);
      failures = 0;
      unreported = 0;
      backoff = milliseconds(0);
      warned = {};
    }
    if (peers) {
      asio::co_spawn(w.ctx, serve_peer_cancel(std::move(sock), server, w), asio::detached);
    } else {
      asio::co_spawn(w.ctx, serve_client(std::move(sock), server, w), asio::detached);
    }
  }
}

}  // namespace

namespace {

// TLS 1.2 or newer, forward-secret AEAD suites only for TLS 1.2 (TLS 1.3 suites are all fine).
void harden(asio::ssl::context& ctx) {
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                  asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  SSL_CTX_set_cipher_list(ctx.native_handle(),
                          "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!MD5:!DSS");
}

}  // namespace

asio::ssl::context* Server::upstream_tls_for(const policy::ProxySettings& s) {
  if (s.upstream_tls == policy::UpstreamTls::kDisable) return nullptr;
  const bool verify = s.upstream_tls == policy::UpstreamTls::kVerifyFull;
  const std::string key = verify ? "verify:" + s.upstream_ca : "encrypt";
  std::lock_guard lock(upstream_tls_mu_);
  auto& ctx = upstream_tls_by_ca_[key];
  if (!ctx) {
    try {
      auto made = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
      harden(*made);
      if (verify) {
        made->load_verify_file(s.upstream_ca);
        made->set_verify_mode(asio::ssl::verify_peer);
      } else {
        made->set_verify_mode(asio::ssl::verify_none);  // "prefer"/"require": encryption only
      }
      ctx = std::move(made);
    } catch (const std::exception& e) {
      // Fail closed: a context that verifies against nothing refuses every server certificate.
      spdlog::error("upstream TLS context for CA {}: {}", s.upstream_ca, e.what());
      auto refusing = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
      harden(*refusing);
      refusing->set_verify_mode(asio::ssl::verify_peer);
      upstream_tls_by_ca_.erase(key);  // tried again next time (the CA file may be fixed)
      static std::vector<std::unique_ptr<asio::ssl::context>> kept;  // outlives its users
      kept.push_back(std::move(refusing));
      return kept.back().get();
    }
  }
  return ctx.get();
}

bool Server::setup_tls(const policy::Policy& p) {
  try {
    if (!p.tls.cert.empty() && p.tls.mode != policy::TlsMode::kDisable) {
      client_tls_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
      harden(*client_tls_);
      client_tls_->use_certificate_chain_file(p.tls.cert);
      client_tls_->use_private_key_file(p.tls.key, asio::ssl::context::pem);
      tls_required_ = p.tls.mode == policy::TlsMode::kRequire;
    }
    if (p.proxy.upstream_tls != policy::UpstreamTls::kDisable) {
      upstream_tls_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
      harden(*upstream_tls_);
      if (p.proxy.upstream_tls == policy::UpstreamTls::kVerifyFull) {
        upstream_tls_->load_verify_file(p.proxy.upstream_ca);
        upstream_tls_->set_verify_mode(asio::ssl::verify_peer);
      } else {
        upstream_tls_->set_verify_mode(asio::ssl::verify_none);  // "prefer"/"require": encryption only
      }
    }
  } catch (const std::exception& e) {
    spdlog::critical("TLS setup failed: {}", e.what());
    return false;
  }
  return true;
}

std::string Server::render_metrics() {
  uint64_t hits = 0, misses = 0, entries = 0;
  for (auto& w : workers_) {
    hits += w->cache.hits();
    misses += w->cache.misses();
    entries += w->cache.size();
  }
  return metrics_.render(hits, misses, entries);
}

int Server::run() {
  auto p = policy_.load();
  if (!setup_tls(*p)) return 1;
  metrics_.set_max_tenant_labels(p->metrics.max_tenant_labels);
  try {
    audit_ = AuditLog::open(p->audit);
  } catch (const std::exception& e) {
    spdlog::critical("cannot open the audit log {}: {}", p->audit.file, e.what());
    return 1;
  }
  int n = p->proxy.workers > 0 ? p->proxy.workers
                               : std::max(1u, std::thread::hardware_concurrency());
  // The schema snapshot: read once now, before listening (PostgreSQL unreachable: start without it, refuse what
  // needs it, retry in the background), then kept up to date on its own thread.
  schema_ = std::make_unique<SchemaRefresher>([this] { return policy_.load(); },
                                              [this](SchemaRefresher::Snapshot s) { install_schema(std::move(s)); });
  {
    // Until the first read lands, sessions see a snapshot that is not loaded (never none): what
    // needs the schema is refused rather than decided without it (sqlrewrite/function_check.h).
    policy::SchemaSnapshot unread;
    unread.error = "the schema has not been read yet";
    install_schema(std::make_shared<const policy::SchemaSnapshot>(std::move(unread)));
  }
  schema_->start();
  p = policy_.load();

  tcp::acceptor acceptor(main_ctx_);
  try {
    tcp::endpoint ep(asio::ip::make_address(p->proxy.listen_host), p->proxy.listen_port);
    acceptor.open(ep.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    if (p->proxy.reuse_port) {
      // Several rowguard processes bind this same address; the kernel spreads new connections
      // over them (each must set the option, and run as the same user).
      acceptor.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true));
    }
    acceptor.bind(ep);
    acceptor.listen(1024);
  } catch (const std::exception& e) {
    spdlog::critical("cannot listen on {}:{}: {}", p->proxy.listen_host, p->proxy.listen_port, e.what());
    return 1;
  }

  cancels_.set_instance(p->proxy.peer_id);
  // [proxy] peer_listen: forwarded cancels from the other instances; open while draining too (a
  // draining session can still be cancelled through another instance).
  tcp::acceptor peer_acceptor(main_ctx_);
  if (!p->proxy.peer_listen_host.empty()) {
    try {
      tcp::endpoint ep(asio::ip::make_address(p->proxy.peer_listen_host), p->proxy.peer_listen_port);
      peer_acceptor.open(ep.protocol());
      peer_acceptor.set_option(tcp::acceptor::reuse_address(true));
      peer_acceptor.bind(ep);
      peer_acceptor.listen();
    } catch (const std::exception& e) {
      spdlog::critical("cannot listen for peers on {}:{}: {}", p->proxy.peer_listen_host, p->proxy.peer_listen_port,
                       e.what());
      return 1;
    }
  }

  for (int i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>());
  parse_pool_ = std::make_unique<ParsePool>(static_cast<size_t>(p->limits.parse_threads), metrics_);
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  for (auto& w : workers_) {
    // Warm up each worker's parser and protobuf descriptors so the first client does not pay.
    asio::post(w->ctx, [wk = w.get(), p] { (void)wk->cache.rewrite("SELECT 1", *p, "warmup"); });
    guards.push_back(asio::make_work_guard(w->ctx));
    w->thread = std::thread([ctx = &w->ctx] { ctx->run(); });
  }

  asio::signal_set stop_signals(main_ctx_, SIGINT, SIGTERM);
  asio::steady_timer drain_timer(main_ctx_);
  auto deadline = std::chrono::steady_clock::now();
  std::function<void(boost::system::error_code)> check_drained = [&](boost::system::error_code ec) {
    if (ec) return;
    int64_t open = metrics_.connections_active.load();
    if (open <= 0 || std::chrono::steady_clock::now() >= deadline) {
      if (open > 0) spdlog::warn("shutdown: {} sessions still open after the timeout; closing them", open);
      stop();
      return;
    }
    drain_timer.expires_after(std::chrono::milliseconds(100));
    drain_timer.async_wait(check_drained);
  };
  std::function<void(boost::system::error_code, int)> on_stop = [&](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (shutting_down_.exchange(true)) {
      spdlog::info("signal {} again: stopping now", sig);
      stop();
      return;
    }
    spdlog::info("signal {}: shutting down; no new connections, open transactions may finish "
                 "(up to {} s; send the signal again to stop now)", sig, p->proxy.shutdown_timeout_seconds);
    boost::system::error_code ignored;
    acceptor.close(ignored);
    pause_.resume();  // paused sessions must be able to finish
    for (auto& w : workers_) {
      asio::post(w->ctx, [wk = w.get()] {
        for (auto& [id, hook] : wk->shutdown_hooks) hook();
      });
    }
    deadline = std::chrono::steady_clock::now() + std::chrono::seconds(p->proxy.shutdown_timeout_seconds);
    check_drained({});
    stop_signals.async_wait(on_stop);
  };
  stop_signals.async_wait(on_stop);
  asio::signal_set hup(main_ctx_, SIGHUP);
  std::function<void(boost::system::error_code, int)> on_hup = [&](boost::system::error_code ec, int) {
    if (ec) return;
    spdlog::info("SIGHUP: reloading {}", config_path_);
    reload();
    hup.async_wait(on_hup);
  };
  hup.async_wait(on_hup);

  asio::co_spawn(main_ctx_, accept_loop(acceptor, *this, workers_), asio::detached);
  if (peer_acceptor.is_open()) {
    asio::co_spawn(main_ctx_, accept_loop(peer_acceptor, *this, workers_, true), asio::detached);
    spdlog::info("fleet: instance {} takes forwarded cancels on {}:{}; {} peers", p->proxy.peer_id,
                 p->proxy.peer_listen_host, p->proxy.peer_listen_port, p->peers.size());
  }

  tcp::acceptor metrics_acceptor(main_ctx_);
  if (!p->metrics.listen_host.empty()) {
    try {
      tcp::endpoint ep(asio::ip::make_address(p->metrics.listen_host), p->metrics.listen_port);
      metrics_acceptor.open(ep.protocol());
      metrics_acceptor.set_option(tcp::acceptor::reuse_address(true));
      metrics_acceptor.bind(ep);
      metrics_acceptor.listen();
      asio::co_spawn(main_ctx_, serve_metrics(
                                                 metrics_acceptor, [this] { return render_metrics(); },
                                                 [this] { return !shutting_down(); }),
                     asio::detached);
      spdlog::info("metrics on http://{0}:{1}/metrics, health check on http://{0}:{1}/health",
                   p->metrics.listen_host, p->metrics.listen_port);
    } catch (const std::exception& e) {
      spdlog::critical("cannot listen for metrics on {}:{}: {}", p->metrics.listen_host, p->metrics.listen_port, e.what());
      return 1;
    }
  }
  if (audit_) spdlog::info("audit log {} (mode {})", p->audit.file, policy::to_string(p->audit.mode));
  for (const auto& [name, u] : p->upstreams) {
    if (name == policy::kDefaultUpstream) continue;
    size_t placed = 0;
    for (const auto& [tenant, where] : p->placement) placed += where == name ? 1 : 0;
    spdlog::info("upstream \"{}\": {}:{} ({} tenants placed)", name, u.settings.upstream_host, u.settings.upstream_port,
                 placed);
  }

  size_t tenants = 0, bypass = 0, global = 0;
  for (const auto& [u, l] : p->logins) (l.bypass() ? bypass : tenants)++;
  for (const auto& [t, r] : p->tables) global += r.global ? 1 : 0;
  spdlog::info("rowguard listening on {}:{} (tls {}) -> upstream {}:{} as \"{}\" (upstream_tls {}); "
               "{} workers; policy {}: {} tenant users, {} bypass users, {} tenant tables, {} global tables",
               p->proxy.listen_host, p->proxy.listen_port, policy::to_string(p->tls.mode), p->proxy.upstream_host,
               p->proxy.upstream_port, p->proxy.upstream_user, policy::to_string(p->proxy.upstream_tls), n, config_path_,
               tenants, bypass, p->tables.size() - global, global);

  if (!p->plaintext_users.empty()) {
    std::string users;
    for (const auto& u : p->plaintext_users) users += (users.empty() ? "" : ", ") + u;
    spdlog::warn("policy {}: plaintext passwords for {}; store SCRAM verifiers instead "
                 "(`rowguard passwd USER`)", config_path_, users);
  }
  // [tenancy] identity (policy/identity.h)
  if (p->identity.mode != policy::IdentityMode::kMap) spdlog::info("identity = \"{}\"", policy::to_string(p->identity.mode));
  if (p->identity.jwt_secret_in_file) {
    spdlog::warn("policy {}: jwt_secret is stored in the policy file; prefer jwt_secret_env", config_path_);
  }
  if (p->identity.mode == policy::IdentityMode::kJwt && p->identity.jwt_allow_without_tls) {
    spdlog::warn("policy {}: jwt_allow_without_tls = true: tokens may cross the network in cleartext", config_path_);
  }
  main_ctx_.run();
  for (auto& w : workers_) w->ctx.stop();
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  parse_pool_.reset();  // a job in flight finishes; its result is dropped with the stopped worker
  schema_.reset();
  spdlog::info("rowguard stopped");
  return 0;
}

}  // namespace rowguard::net
