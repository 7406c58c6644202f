#pragma once
// The pool of server connections of one upstream database on one worker: who gets the next
// server connection, when one is opened or closed, when a waiting client gives up. Socket-free
// and clock-free: the caller (proxy/net) passes the time in and carries out the actions the pool
// returns (open a connection under a given id, close one, hand one to a waiting client, tell a
// client its wait timed out). Unit tested without sockets (tests/unit/server_pool_test.cc).
//
// Rules (PgBouncer's, where it has one):
// - Clients wait in one FIFO queue; a released or newly opened connection goes to the oldest
//   waiter whose tenant is under its share (below). A waiter older than query_wait_timeout is
//   told so (the client gets 53300 and keeps its connection to rowguard).
// - A tenant's share (not PgBouncer's): the clients of one tenant hold at most tenant_cap()
//   connections at once (max_tenant_share of size, at least 1 and, below 1, at most size - 1),
//   so one tenant leaving transactions open cannot take every connection from the others. A
//   waiter of a tenant at its share is skipped, not dropped: it keeps its place and is served
//   as soon as its tenant is under its share again. It is capped even when nobody else waits
//   (a connection it took could not be taken back when another tenant comes). Clients without
//   a tenant (acquire with nullopt) are not counted.
// - Idle connections are reused last-in first-out (a warm set; the rest age out after
//   server_idle_timeout, down to min_size).
// - At most `size` connections exist (idle + lent + being opened); min_size are kept open.
// - A connection older than server_lifetime is closed when it is next idle, never while lent.
// - A connection released as not reusable (transaction state in doubt, error, server gone) is
//   closed, and its place may be refilled for a waiter.
// - A failed open: when nothing else could serve the waiters (no other connection lent, idle or
//   being opened) they are all failed with the open's error; otherwise they keep waiting. The
//   next open is tried no sooner than open_retry after a failure.
//
// Threading: none; one pool per worker io_context, used only from that thread.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace rowguard::pool {

using Clock = std::chrono::steady_clock;
using Duration = Clock::duration;

struct PoolLimits {
  size_t size = 20;       // connections at most (idle + lent + opening)
  size_t min_size = 0;    // connections kept open even when idle
  Duration query_wait_timeout = std::chrono::seconds(120);   // 0: wait forever
  Duration server_idle_timeout = std::chrono::seconds(600);  // 0: never close for idleness
  Duration server_lifetime = std::chrono::seconds(3600);     // 0: no limit
  Duration open_retry = std::chrono::seconds(1);             // after a failed open
  // Of `size`, the connections one tenant's clients may hold at once (ServerPool::tenant_cap);
  // 1: no cap.
  double max_tenant_share = 0.75;
};

using ServerId = uint64_t;
using WaiterId = uint64_t;

struct Action {
  enum class Kind {
    kOpen,      // open a server connection; report opened(server) or open_failed(server)
    kClose,     // close this (idle or released) server connection; nothing to report
    kGrant,     // hand `server` to `waiter`; it is lent until release(server)
    kTimedOut,  // `waiter` waited query_wait_timeout: tell the client (53300), it is forgotten
    kFailed,    // `waiter` cannot be served: the open failed and nothing else could serve it
  };
  Kind kind;
  ServerId server = 0;
  WaiterId waiter = 0;
  friend bool operator==(const Action&, const Action&) = default;
};

struct PoolStats {
  size_t idle = 0;
  size_t lent = 0;
  size_t opening = 0;
  size_t waiting = 0;
  size_t waiting_at_share = 0;  // of `waiting`: their tenant holds its share (tenant_cap)
  Duration longest_wait{};  // of the clients waiting now
  uint64_t grants = 0;      // checkouts since the pool was made
  uint64_t opened = 0;
  uint64_t closed = 0;
  uint64_t timed_out = 0;
  uint64_t open_failures = 0;
};

class ServerPool {
 public:
  explicit ServerPool(PoolLimits limits);

  // A client (of `tenant`; nullopt: not counted in any share) needs a server connection.
  // Returns its waiter id; the grant may already be among the actions (an idle connection), or
  // come later.
  WaiterId acquire(Clock::time_point now, std::vector<Action>& out,
                   const std::optional<std::string>& tenant = std::nullopt);
  // The client stopped waiting (it disconnected). Unknown or already granted ids are ignored.
  void cancel(WaiterId waiter, Clock::time_point now, std::vector<Action>& out);
  // The client is done with `server`. `reusable`: the connection is idle and clean (no
  // transaction, no cursor, no pending result); otherwise it is closed.
  void release(ServerId server, bool reusable, Clock::time_point now, std::vector<Action>& out);
  // An open asked for by kOpen succeeded / failed.
  void opened(ServerId server, Clock::time_point now, std::vector<Action>& out);
  void open_failed(ServerId server, Clock::time_point now, std::vector<Action>& out);
  // An idle connection was found dead (the server closed it): forget it.
  void lost(ServerId server, Clock::time_point now, std::vector<Action>& out);
  // Timeouts and refills; call at next_deadline() (and whenever convenient).
  void tick(Clock::time_point now, std::vector<Action>& out);
  // When tick() has something to do next (a waiter's timeout, an idle or lifetime expiry, a retry
  // of a failed open); nullopt: nothing pending.
  std::optional<Clock::time_point> next_deadline() const;

  // New limits (a reload); connections above the new size close when released or idle.
  void set_limits(const PoolLimits& limits, Clock::time_point now, std::vector<Action>& out);
  const PoolLimits& limits() const { return limits_; }
  // The connections one tenant may hold at once: size when max_tenant_share >= 1 or size < 2,
  // else floor(max_tenant_share * size) clamped to 1 .. size - 1.
  size_t tenant_cap() const;
  PoolStats stats(Clock::time_point now) const;

 private:
  enum class State { kOpening, kIdle, kLent };
  struct Server {
    State state = State::kOpening;
    Clock::time_point born{};       // when it opened
    Clock::time_point idle_since{};
    std::optional<std::string> tenant;  // while lent
  };
  struct Waiter {
    WaiterId id;
    Clock::time_point since;
    std::optional<std::string> tenant;
  };

  size_t total() const { return servers_.size(); }
  bool expired(const Server& s, Clock::time_point now) const;
  // Drops the connection from every count (idle list, lent, opening); close() also asks the
  // caller to close it, lost() does not (it is gone already).
  void forget(std::unordered_map<ServerId, Server>::iterator it);
  void close(ServerId id, std::vector<Action>& out);
  // Hands idle connections to waiters, opens what waiters and min_size need.
  void balance(Clock::time_point now, std::vector<Action>& out);
  void make_idle(ServerId id, Clock::time_point now, std::vector<Action>& out);
  // The tenant's lent count goes down (the connection was released, closed or lost).
  void unlend(Server& s);
  bool at_share(const std::optional<std::string>& tenant) const;

  PoolLimits limits_;
  std::unordered_map<ServerId, Server> servers_;
  std::vector<ServerId> idle_;  // LIFO: back is the most recently used
  std::deque<Waiter> waiters_;  // FIFO
  size_t opening_ = 0;
  size_t lent_ = 0;
  ServerId next_server_ = 1;
  WaiterId next_waiter_ = 1;
  std::optional<Clock::time_point> retry_at_;  // no open before this (after a failure)
  PoolStats counters_;
  std::unordered_map<std::string, size_t> held_;  // tenant -> connections lent to it (> 0 only)
};

}  // namespace rowguard::pool
