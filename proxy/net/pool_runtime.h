#pragma once
// Transaction pooling ([pool] mode = "transaction", issue #16): the server connections of one
// upstream database on one worker, and the ServerPool (proxy/pool/server_pool.h) that decides who
// gets them. The runtime carries out the pool's actions: it opens connections (logged in as
// upstream_user, like a tenant session's own upstream login), closes them, hands them to waiting
// clients and tells a waiter that it timed out or that no connection could be opened. A timer
// coroutine drives ServerPool::tick at next_deadline().
//
// Session settings (README "Transaction pooling"): every server connection knows the values of
// the settings a tenant may SET (kPooledSettings, read with one query when it opens); a client
// carries the values it wants. At checkout the difference is applied with one injected
// `SELECT pg_catalog.set_config(...)`, whose answers the client never sees.
//
// Threading: one runtime per worker and database, used only on that worker's thread. Size:
// ceil([pool] size / workers) connections per runtime.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "policy/policy.h"
#include "proxy/net/listener.h"
#include "proxy/net/metrics.h"
#include "proxy/net/stream.h"
#include "proxy/pool/server_pool.h"
#include "proxy/protocol/codec.h"
#include "proxy/session/server_statements.h"

namespace rowguard::net {

class Server;

// The settings that follow a client from server connection to server connection: those a
// tenant may SET (sqlrewrite/utility.cc settable()) and those a client may give at startup
// (proxy/session check_startup), lower case.
const std::vector<std::string>& pooled_settings();
using Settings = std::map<std::string, std::string>;  // name (lower case) -> value
// One query that reads pooled_settings(), one row, one column each (NULL: not on this server).
const std::string& read_settings_sql();

// One real server connection of a pool.
struct PooledServer {
  explicit PooledServer(boost::asio::io_context& ctx) : stream(boost::asio::ip::tcp::socket(ctx)) {}
  pool::ServerId id = 0;
  Stream stream;
  int32_t pid = 0;
  int32_t key = 0;
  Settings settings;  // the values of pooled_settings() on this connection, as PostgreSQL said
  // Set (under the CancelRegistry's lock) when a CancelRequest was sent for it during a lease:
  // it is then closed at release, never reused.
  std::shared_ptr<std::atomic<bool>> cancel_sent = std::make_shared<std::atomic<bool>>(false);
  std::string host;  // the server it is connected to (a CancelRequest goes there)
  uint16_t port = 0;
  uint64_t holder = 0;  // the session holding it (0: idle)
  // Set by the holder before releasing it as not reusable because the server connection failed
  // (lost, ended while idle, an injected query failed): counted as closed for "error", not "dirty".
  bool failed = false;
  std::chrono::steady_clock::time_point opened_at{};
  // The session that held it last (0: none yet). The backend keeps what nextval gave in its
  // session (currval's values): a lease by another session first sends DISCARD SEQUENCES.
  uint64_t last_holder = 0;
  // The prepared statements it holds under rowguard's names (shared by every client it serves:
  // proxy/session/server_statements.h); capacity [pool] max_prepared_statements.
  session::ServerStatements statements;
};

struct QueryAnswer {
  bool ok = false;
  std::string sqlstate, message;  // when !ok
  std::vector<std::vector<std::optional<std::string>>> rows;
};

// Runs one simple Query on `conn` (nothing else may read it meanwhile) and reads up to its
// ReadyForQuery; ParameterStatus and notices are swallowed. ok: no error and ReadyForQuery 'I'.
boost::asio::awaitable<QueryAnswer> run_injected(PooledServer& conn, std::string sql, size_t max_message);

// An idle connection handed out by the pool is still usable: nothing to read on it (a server
// that ended it sent a FATAL error, then EOF). Checked without blocking at each checkout.
bool idle_connection_alive(PooledServer& conn);

// The rowguard_pool_clients_pinned reason (PoolSample::kPinReasons) of a pin's description
// (ClientConnection::pinned()); a reason maps to itself.
std::string_view pin_category(std::string_view why);

// Quotes a string literal for PostgreSQL (standard_conforming_strings on: only ' doubles).
std::string sql_literal(std::string_view v);

// Worker::pools key: one pool per upstream (its name and address: a reload that changes the
// address of a name opens a new pool) and database.
std::string pool_key(const policy::Upstream& upstream, const std::string& database);

class PoolRuntime {
 public:
  // `upstream`: the name of the upstream in the policy ([[upstreams]], "default"); its
  // connections log in with that upstream's settings as the policy has them when each opens.
  PoolRuntime(Server& server, boost::asio::io_context& ctx, std::string upstream, std::string database,
              policy::PolicyPtr policy, int workers);
  ~PoolRuntime();

  struct Lease {
    PooledServer* conn = nullptr;  // null: not granted
    std::string sqlstate, message;  // when not granted: why (53300 timeout, the open's error)
  };
  // Waits for a server connection (FIFO, within `tenant`'s share of the pool: [pool]
  // max_tenant_share; nullopt: not counted). Cancelled (the client went away): no lease.
  boost::asio::awaitable<Lease> acquire(uint64_t session, std::optional<std::string> tenant = std::nullopt);
  // Gives `conn` back; `reusable`: idle, clean (else it is closed).
  void release(PooledServer* conn, bool reusable);

  // The ParameterStatus of the pool's first connection (one is opened if none was yet), the
  // baseline of pooled_settings(); nullopt (sqlstate, message set): no connection could be opened.
  struct Baseline {
    bool ok = false;
    std::string sqlstate, message;
    std::vector<protocol::ParameterStatus> parameters;
    Settings settings;
  };
  boost::asio::awaitable<Baseline> baseline();

  void set_limits(const policy::PoolSettings& pool, int workers);
  // A reload: [pool] limits (size, timeouts) and the upstream login of new connections follow
  // `policy` from now on (connections above a smaller size close when released or idle).
  void apply_policy(const policy::PolicyPtr& policy, int workers);
  const std::string& database() const { return database_; }
  const std::string& upstream() const { return upstream_; }
  // LISTEN of this database's pooled clients (listener.h), created at the first use.
  NotificationListener& listener();
  // A client became pinned (+1) or stopped being pinned (-1) (SHOW POOLS); `category`:
  // pin_category() of why (rowguard_pool_clients_pinned{reason}).
  void pinned(int delta, std::string_view category);

  // What SHOW POOLS shows; any thread (published by the worker after every change).
  struct Snapshot {
    pool::PoolStats stats;
    size_t size = 0;       // this runtime's share of [pool] size
    uint64_t pinned = 0;   // pinned clients now
    pool::Clock::time_point oldest_wait_since{};  // of the longest-waiting client (when waiting > 0)
    size_t tenant_cap = 0;  // connections one tenant may hold ([pool] max_tenant_share)
  };
  // stats.longest_wait is computed now (how long the oldest waiter has been waiting so far).
  Snapshot snapshot() const;
  // The counters and gauges of rowguard_pool_* (metrics.h); any thread.
  PoolSample sample() const;

 private:
  struct Waiting {
    boost::asio::steady_timer* wake;
    Lease lease;
    bool done = false;
  };
  void run(std::vector<pool::Action>& actions);
  boost::asio::awaitable<void> open(pool::ServerId id);
  boost::asio::awaitable<void> ticker();
  void rearm();
  void publish();
  void count_close(pool::ServerId id, const PooledServer& conn);
  void observe_wait(pool::Clock::time_point since, bool immediate);

  // rowguard_pool_*: written only by this runtime's worker thread (relaxed load + store), read at
  // scrape (sample()).
  enum class Closed : size_t { kIdleTimeout, kLifetime, kCancel, kError, kDirty, kResize };
  struct Meters {
    std::atomic<uint64_t> checkouts{0}, wait_timeouts{0}, wait_failures{0}, opened{0}, wait_sum_us{0};
    std::array<std::atomic<uint64_t>, PoolSample::kCloseReasons.size()> closed{};
    std::array<std::atomic<uint64_t>, PoolSample::kWaitBucketsUs.size() + 1> wait{};
    std::array<std::atomic<uint64_t>, PoolSample::kPinReasons.size()> pinned{};
  } meters_;
  std::unordered_map<pool::ServerId, Closed> close_as_;  // release() as not reusable: why
  bool ticking_ = false;                                 // kClose from tick(): idle or lifetime

  Server& server_;
  boost::asio::io_context& ctx_;
  std::string upstream_;
  std::string database_;
  policy::PolicyPtr policy_;
  pool::ServerPool pool_;
  std::unordered_map<pool::ServerId, std::unique_ptr<PooledServer>> conns_;
  std::unordered_map<pool::WaiterId, Waiting*> waiting_;
  std::unordered_map<pool::ServerId, uint64_t> lent_to_;
  std::optional<Baseline> baseline_;
  std::vector<boost::asio::steady_timer*> baseline_waiters_;
  std::string last_open_error_;
  std::string last_open_sqlstate_;
  boost::asio::steady_timer tick_timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  uint64_t pinned_ = 0;
  std::unique_ptr<NotificationListener> listener_;
  mutable std::mutex snapshot_mu_;
  Snapshot snapshot_;
};

}  // namespace rowguard::net
