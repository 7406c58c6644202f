#pragma once
// The listener and its worker threads: one io_context per thread, connections assigned
// round-robin and pinned to their worker (each worker owns its rewrite cache: no locks).
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <unordered_map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "policy/policy.h"
#include "proxy/net/audit.h"
#include "proxy/net/clients.h"
#include "proxy/net/metrics.h"
#include "proxy/net/parse_pool.h"
#include "proxy/net/schema_refresher.h"
#include "sqlrewrite/rewrite_cache.h"

namespace rowguard::net {

class PoolRuntime;

struct Worker {
  boost::asio::io_context ctx{1};
  sqlrewrite::RewriteCache cache;
  std::thread thread;
  // Called on this worker's thread when rowguard starts shutting down, one per session.
  std::unordered_map<uint64_t, std::function<void()>> shutdown_hooks;
  // The policy as this worker's sessions last saw it (Server::policy(Worker&)), and the count of
  // policy stores it was read after.
  std::shared_ptr<const policy::Policy> policy;
  uint64_t policy_seen = 0;
  // Transaction pooling: this worker's pool per upstream and database (pool_runtime.h), keyed
  // by pool_key().
  std::map<std::string, std::shared_ptr<PoolRuntime>> pools;
  // Called on this worker's thread after every policy reload, one per session (tenant
  // placement: a session on an upstream its tenant was moved away from starts its drain).
  std::unordered_map<uint64_t, std::function<void()>> reload_hooks;
  std::mutex pools_mu;  // pools is read by the admin console (SHOW POOLS) from any worker
};

// Which upstream backend a client's (pid, key) stands for, so that a CancelRequest only ever
// reaches that client's own server backend. The pid carries the instance id ([proxy] peer_id,
// bits 22..29) so that another instance of the fleet knows where to forward a cancel; the other
// 53 bits (21 of the pid, 32 of the key) are random.
class CancelRegistry {
 public:
  static int instance_of(int32_t client_pid) { return (client_pid >> 22) & 0xff; }
  void set_instance(int id) { instance_ = id; }
  int instance() const { return instance_; }
  struct Target {
    int32_t pid = 0;  // 0: no backend (a pooled client between transactions): cancels nothing
    int32_t key = 0;
    // Transaction pooling: set (under the lock, by find) when a cancel is sent for this target,
    // so that the server connection is closed at release instead of reused.
    std::shared_ptr<std::atomic<bool>> sent;
    // The PostgreSQL server the backend runs on (tenant placement: [[upstreams]]); empty: the
    // policy's default upstream at the time of the cancel.
    std::string host;
    uint16_t port = 0;
  };
  // Registers a new client key for `target`; returns the (pid, key) to hand to the client.
  std::pair<int32_t, int32_t> add(Target target);
  void remove(std::pair<int32_t, int32_t> client_key);
  // Transaction pooling: the backend a client key stands for changes per lease (set at grant,
  // cleared at release; under the same lock as find, so a cancel is either marked on the
  // connection before its release or finds nothing).
  void retarget(std::pair<int32_t, int32_t> client_key, Target target);
  std::optional<Target> find(std::pair<int32_t, int32_t> client_key) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<int32_t, int32_t>, Target> map_;
  std::atomic<int> instance_{0};
};

class Server {
 public:
  Server(policy::PolicyPtr policy, std::string config_path);
  ~Server();

  // Binds, starts the workers and blocks until stop() (SIGINT/SIGTERM). Returns an exit code.
  int run();
  void stop();            // immediately

  policy::PolicyPtr policy() const { return policy_.load(); }
  // The same, for a session on worker `w` (on w's thread): w's own copy, read again only after a
  // store (RELOAD, a schema snapshot). Per statement this is one load of a counter, where
  // policy() takes the atomic shared_ptr's lock bit and updates its reference count, on cache
  // lines every worker shares.
  const policy::PolicyPtr& policy(Worker& w) const {
    const uint64_t stores = policy_stores_.load(std::memory_order_acquire);
    if (stores != w.policy_seen || !w.policy) {
      w.policy = policy_.load();
      w.policy_seen = stores;
    }
    return w.policy;
  }
  // TLS contexts, made once at start-up from the policy ([tls], [proxy] upstream_tls).
  boost::asio::ssl::context* client_tls() { return client_tls_.get(); }
  boost::asio::ssl::context* upstream_tls() { return upstream_tls_.get(); }
  // The TLS context for an upstream's settings (tenant placement: [[upstreams]] tls, ca): null
  // for tls = "disable"; made on first use and kept (any thread).
  boost::asio::ssl::context* upstream_tls_for(const policy::ProxySettings& settings);
  bool tls_required() const { return tls_required_; }
  Metrics& metrics() { return metrics_; }
  AuditLog* audit() { return audit_.get(); }
  bool shutting_down() const { return shutting_down_.load(); }
  std::string render_metrics();
  CancelRegistry& cancels() { return cancels_; }
  // Admin console: connections, PAUSE/RESUME, per-worker caches, RELOAD.
  ClientRegistry& clients() { return clients_; }
  PauseGate& pause_gate() { return pause_; }
  const std::vector<std::unique_ptr<Worker>>& workers() const { return workers_; }
  int worker_count() const { return static_cast<int>(workers_.size()); }
  // Re-reads the policy file (SIGHUP, RELOAD); returns the reason when the file is rejected
  // (the previous policy stays). Safe to call from any thread.
  std::optional<std::string> reload();
  int64_t policy_loaded_at_us() const { return policy_loaded_at_us_.load(); }
  // The schema snapshot (proxy/net/schema_refresher.h): schedule a read (DDL by a bypass session,
  // RELOAD); never blocks. install_schema makes a new policy version carrying `schema`.
  void schema_changed(std::string reason);
  void install_schema(std::shared_ptr<const policy::SchemaSnapshot> schema);
  std::optional<SchemaStatus> schema_status() const;
  uint64_t next_session_id() { return ++session_ids_; }
  // Where long statements are rewritten (parse_pool.h); null before run().
  ParsePool* parse_pool() { return parse_pool_.get(); }
  // Per-user connection counting for [proxy] max_connections_per_user.
  int user_connections(const std::string& user, int delta) {
    std::lock_guard lock(users_mu_);
    int& n = user_connections_[user];
    n += delta;
    int now = n;
    if (n <= 0) user_connections_.erase(user);
    return now;
  }

 private:

  bool setup_tls(const policy::Policy& p);

  std::atomic<policy::PolicyPtr> policy_;
  std::atomic<uint64_t> policy_stores_{0};  // counted after each policy_.store (policy(Worker&))
  std::unique_ptr<boost::asio::ssl::context> client_tls_;
  std::unique_ptr<boost::asio::ssl::context> upstream_tls_;
  std::mutex upstream_tls_mu_;
  std::map<std::string, std::unique_ptr<boost::asio::ssl::context>> upstream_tls_by_ca_;  // upstream_tls_for
  bool tls_required_ = false;
  Metrics metrics_;
  std::unique_ptr<AuditLog> audit_;
  std::atomic<bool> shutting_down_{false};
  std::mutex users_mu_;
  std::map<std::string, int> user_connections_;
  std::string config_path_;
  // Destroyed in reverse order: main_ctx_ first (a pending accept it still holds owns a socket
  // of a worker's io_context), then the workers (destroying a session's coroutine frame runs
  // its destructor, which uses cancels_, metrics_ and the rest above).
  CancelRegistry cancels_;
  std::atomic<uint64_t> session_ids_{0};
  ClientRegistry clients_;
  PauseGate pause_;
  std::mutex reload_mu_;
  std::atomic<int64_t> policy_loaded_at_us_{0};
  std::vector<std::unique_ptr<Worker>> workers_;
  boost::asio::io_context main_ctx_{1};
  // After the workers: destroyed (joined) before their io_contexts, to which its jobs post.
  std::unique_ptr<ParsePool> parse_pool_;
  // Last: destroyed first (its thread installs policies into the members above).
  std::unique_ptr<SchemaRefresher> schema_;
};

}  // namespace rowguard::net
