#pragma once
// LISTEN in transaction pooling ([pool] mode = "transaction", issue #16): a pooled client holds
// no server connection between transactions, so what it listens on is rowguard's record, and one
// listener connection per worker and upstream database (logged in as upstream_user, like the
// pool's; not counted in [pool] size) LISTENs to the union of the server channels its clients
// listen on. A channel is LISTENed when its first client comes and UNLISTENed when its last one
// goes (reference counts); every NotificationResponse is handed to the clients listening on that
// server channel, which deliver it between transactions (tenant_relay.cc).
//
// The listener connection lost: it reconnects with back-off (0.1 s doubling to 10 s) and
// LISTENs every channel again; notifications sent meanwhile cannot be recovered (logged, counted
// as rowguard_listener_disconnects_total: one gap each).
//
// Threading: one listener per worker and database, used only on that worker's thread (the
// sender registry below is process-wide, under a mutex).
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"
#include "proxy/net/stream.h"

namespace rowguard::net {

class Server;

// A pooled tenant session that listens (ClientConnection).
class NotificationSink {
 public:
  virtual ~NotificationSink() = default;
  // On the worker's thread, from the listener's read loop: queue it, never write or block.
  virtual void notified(int32_t server_pid, std::string_view server_channel, std::string_view payload) = 0;
};

// Which client a pooled server backend ran a transaction for last (process-wide: a
// notification's sender may hold a server connection of another worker). A notification
// names its sender by its server backend's pid; the listening client is shown the sender's
// rowguard pid (its BackendKeyData) instead, so that a client that NOTIFYs a channel it listens
// on sees its own pid, as PostgreSQL shows it (libpq's `be_pid == PQbackendPID` self test).
void note_server_holder(int32_t server_pid, const std::string& tenant, int32_t client_pid);
// The client pid of the last holder of `server_pid` if it was a session of `tenant`.
std::optional<int32_t> server_holder(int32_t server_pid, const std::string& tenant);

// A channel name as an identifier for LISTEN / UNLISTEN: exactly this name, whatever it holds.
std::string quote_channel(std::string_view name);

// A client listens on at most this many channels (rowguard's record and the listener's are
// bounded by it; a LISTEN past it is ignored with a WARNING).
inline constexpr size_t kMaxChannelsPerClient = 1000;

class NotificationListener {
 public:
  // Listens on `upstream` (tenant placement: the upstream of the pool it belongs to).
  NotificationListener(Server& server, boost::asio::io_context& ctx, std::string upstream, std::string database,
                       policy::PolicyPtr policy);
  ~NotificationListener();
  NotificationListener(const NotificationListener&) = delete;
  NotificationListener& operator=(const NotificationListener&) = delete;

  // `sink` listens on `server_channel`. The first listener of a channel: returns once the
  // listener connection's LISTEN is done (connecting first if needed), or after 10 s (the
  // channel is LISTENed whenever the connection is back).
  boost::asio::awaitable<void> listen(NotificationSink* sink, std::string server_channel);
  void unlisten(NotificationSink* sink, const std::string& server_channel);
  // Reloads: the login of the next (re)connection.
  void apply_policy(const policy::PolicyPtr& policy) { policy_ = policy; }

  size_t channels() const { return channels_.size(); }
  bool connected() const { return stream_ != nullptr; }

 private:
  struct Ack {
    explicit Ack(boost::asio::io_context& ctx) : timer(ctx) {}
    boost::asio::steady_timer timer;
    bool done = false;
  };
  boost::asio::awaitable<void> run();
  boost::asio::awaitable<void> writer();
  void send(const std::string& sql, std::shared_ptr<Ack> ack);
  void release_acks();
  void dispatch(std::string_view body);

  Server& server_;
  boost::asio::io_context& ctx_;
  std::string upstream_;
  std::string database_;
  policy::PolicyPtr policy_;
  std::map<std::string, std::set<NotificationSink*>> channels_;  // server channel -> its listeners
  std::shared_ptr<Stream> stream_;   // null: not connected
  std::string outbox_;               // Query messages not written yet
  bool writing_ = false;
  std::deque<std::shared_ptr<Ack>> acks_;  // one per Query sent, popped at its ReadyForQuery
  std::vector<std::shared_ptr<Ack>> connect_waiters_;  // first LISTENs while not connected
  bool started_ = false;
  boost::asio::steady_timer backoff_timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace rowguard::net
