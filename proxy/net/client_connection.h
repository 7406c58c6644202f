#pragma once
// One client connection, as a C++20 coroutine on its worker's io_context (private to proxy/net;
// the entry point is serve_client in connection.h). Its phases live in their own files:
//   connection_startup.cc  SSLRequest/GSSENCRequest/CancelRequest, startup checks, client
//                          authentication, upstream login, up to the first ReadyForQuery;
//   tenant_relay.cc        tenant sessions: every client message through proxy/session (rewrite
//                          or deny), the server's answers checked against its model;
//   bypass_relay.cc        bypass sessions: bytes relayed unchanged, frames scanned for limits;
//   connection.cc          what every phase shares: I/O helpers, limits, the closing error.
// Note: GCC 12 can destroy a temporary inside a co_await expression twice; arguments of
// co_await calls are named variables or literals here, never temporaries such as a + b.
// GCC 12 also miscompiled `if (!co_await establish())` in run() (SIGILL on the first resume):
// the result is named first.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/policy.h"
#include "proxy/net/client_auth.h"
#include "proxy/net/client_watch.h"
#include "proxy/net/clients.h"
#include "proxy/net/identity_recheck.h"
#include "proxy/net/listener.h"
#include "proxy/net/pool_runtime.h"
#include "proxy/net/server.h"
#include "proxy/net/stream.h"
#include "proxy/net/upstream.h"
#include "proxy/protocol/codec.h"
#include "proxy/protocol/frame_scanner.h"
#include "proxy/session/session.h"

namespace rowguard::net {

// Buffer bounds ([limits] in the README): a read takes at most kReadChunk bytes; a buffer holds
// at most one message (<= [limits] max_message_size / max_server_message) plus one chunk; what
// goes to the client is written once kFlushAt bytes are pending, and nothing more is read from
// the server until that write is done (backpressure). A buffer that grew past kKeepCapacity
// for a big message is given back once that message is handled.
inline constexpr size_t kReadChunk = 16 * 1024;
inline constexpr size_t kFlushAt = 256 * 1024;
inline constexpr size_t kKeepCapacity = 1024 * 1024;

void give_back(std::string& buf);

class ClientConnection : public ClientIo, public NotificationSink {
 public:
  ClientConnection(boost::asio::ip::tcp::socket client, Server& server, Worker& worker);
  ~ClientConnection();

  boost::asio::awaitable<void> run();

 private:
  // ---- startup (connection_startup.cc) --------------------------------------------------------

  // What the timed part of the startup (up to the client's authentication) hands on.
  struct Authenticated {
    protocol::StartupPacket startup;
    session::StartupDecision decision;
    ClientAuth who;
    std::optional<UpstreamLogin> up;  // identity = "role": the login PostgreSQL authenticated
  };

  // Up to and including the first ReadyForQuery sent to the client; false: the connection is
  // over (refused, failed, timed out, or it was the admin console), the client told if it can be.
  boost::asio::awaitable<bool> establish();
  // The part [proxy] auth_timeout bounds; nullopt: the connection is over (already answered).
  boost::asio::awaitable<std::optional<Authenticated>> authenticate();
  boost::asio::awaitable<void> auth_deadline();
  // The upstream login for `who`; nullopt: failed (the client already answered).
  boost::asio::awaitable<std::optional<UpstreamLogin>> open_upstream(ClientAuth& who,
                                                                     session::StartupDecision& decision);
  boost::asio::awaitable<std::optional<protocol::StartupPacket>> read_startup();
  void take_identity(ClientAuth& who);
  boost::asio::awaitable<void> auth_failed(const ClientAuth& who);
  boost::asio::awaitable<std::optional<ClientMessage>> next_client_message(size_t max) override;
  boost::asio::awaitable<void> forward_cancel(int32_t pid, int32_t key);

  // ---- tenant placement ([[upstreams]], connection_startup.cc) -------------------------------
  //
  // A tenant's sessions go to its placement's upstream; a bypass session to the one it names
  // with database "name@upstream" (else "default"). A reload that moves the tenant: a pooled
  // session's next transaction leases from the new upstream's pool (follow_placement); a session
  // with its own backend on the old upstream is closed placement_drain_timeout later (57P01).

  // Takes "database@upstream" apart (the startup packet's database, before check_startup).
  void take_upstream_choice(protocol::StartupPacket& startup);
  // The upstream this session should be on under `policy`; nullptr: the one a bypass session
  // named is not in the policy.
  const policy::Upstream* wanted_upstream(const policy::Policy& policy) const;
  // Worker::reload_hooks: starts (or, when the tenant is moved back, stops) the drain.
  void placement_changed();
  boost::asio::awaitable<void> placement_drain(std::shared_ptr<boost::asio::steady_timer> timer,
                                              std::weak_ptr<bool> alive);
  // Transaction pooling, before a lease: the pool of the tenant's upstream under policy_.
  void follow_placement();

  // ---- tenant relay (tenant_relay.cc) ---------------------------------------------------------

  boost::asio::awaitable<void> tenant_loop();
  boost::asio::awaitable<void> client_to_server(session::TenantSession& session);
  boost::asio::awaitable<void> server_to_client(session::TenantSession& session);
  boost::asio::awaitable<void> precheck_on_pool(session::TenantSession& session);
  boost::asio::awaitable<void> cancel_backend();

  // ---- transaction pooling ([pool] mode = "transaction", tenant_relay.cc) --------------------
  //
  // A tenant session holds no server connection between transactions: the first message that
  // needs the server takes one from its worker's pool (take_lease; the session's settings are
  // applied there), the server's ReadyForQuery 'I' at a boundary gives it back (end_of_lease),
  // unless something the next connection would not have pins the client (pinned()).

  // The login answered from the pool's baseline instead of an upstream login of its own.
  boost::asio::awaitable<std::optional<UpstreamLogin>> open_pooled(ClientAuth& who,
                                                                   session::StartupDecision& decision);
  // false: no connection (tx_pool_.error says why; the client is told by refuse_without_server).
  boost::asio::awaitable<bool> take_lease(std::string& out);
  // At ReadyForQuery 'I' with nothing owed: reads settings back if the transaction changed
  // any, then releases the connection unless the client is pinned.
  boost::asio::awaitable<void> end_of_lease(session::TenantSession& session);
  void drop_lease(bool reusable);
  // The server connection died while leased: the client gets 08006, its session goes on.
  void lease_lost(session::TenantSession& session, std::string& to_client);
  // A message that cannot be served (no server connection): the client gets the error (then,
  // in an extended batch, everything up to Sync is skipped), as PostgreSQL would answer it.
  void refuse_without_server(char tag, std::string& to_client);
  // What in a statement the client runs now the next server connection would not have: `text`
  // is the client's text (a Query's, a Parse's, or the statement a Bind / EXECUTE runs);
  // `pooled` its rewrite when the parse pool made it.
  void note_session_state(std::string_view text, const sqlrewrite::RewriteResult* pooled);
  // The same for the named statements a Bind (protocol) or an EXECUTE (SQL) runs: their text
  // came in an earlier message, maybe an earlier transaction.
  void note_statements_run(session::TenantSession& session, const protocol::Frame& frame,
                           const sqlrewrite::RewriteResult* pooled);
 public:
  // Why this pooled client keeps its server connection between transactions ("" when it does
  // not): state of its session that cannot follow it to another connection (README
  // "Transaction pooling": named prepared statements, WITH HOLD cursors, session-level advisory
  // locks, LISTEN, currval/lastval).
  std::string pinned() const;
  // LISTEN in transaction pooling (listener.h): a notification for one of this client's
  // channels, queued and delivered between transactions (deliver_notifications).
  void notified(int32_t server_pid, std::string_view server_channel, std::string_view payload) override;

 private:
  // Pooled LISTEN: the channels PostgreSQL says the client's transaction left it listening on
  // (`channels`, server names) become its record and the listener's.
  boost::asio::awaitable<void> update_listens(const std::vector<std::string>& channels);
  void drop_listens();
  // Between transactions, nothing else being written: the queued notifications go out.
  boost::asio::awaitable<bool> deliver_notifications(session::TenantSession& session);
  boost::asio::awaitable<bool> write_client_between(std::string_view bytes);
  std::string take_notes();
  boost::asio::awaitable<void> notification_pump(session::TenantSession& session);
  Stream& up() { return tx_pool_.lease ? tx_pool_.lease->stream : upstream_; }

  // ---- bypass relay (bypass_relay.cc) ---------------------------------------------------------

  boost::asio::awaitable<void> bypass_loop();
  boost::asio::awaitable<void> pump(Stream& from, Stream& to, std::string& data, protocol::FrameScanner& scanner,
                                    bool from_client);

  // ---- shared (connection.cc) -----------------------------------------------------------------

  void refuse_too_long(char tag, uint32_t length);
  boost::asio::awaitable<void> finish_refused();
  boost::asio::awaitable<bool> read_more(Stream& stream, std::string& buf);
  boost::asio::awaitable<std::optional<protocol::Frame>> read_client_frame(size_t max);
  boost::asio::awaitable<bool> write_client(std::string_view bytes) override;
  boost::asio::awaitable<bool> write_server(std::string_view bytes);
  boost::asio::awaitable<void> send_cancel(int32_t pid, int32_t key);
  bool in_flight() const;
  std::string identity_revoked();
  void close_both();
  void audit(const std::string& statement, bool allowed, const std::string& reason);
  boost::asio::awaitable<void> fatal(std::string_view sqlstate, std::string_view message);

  // A message from the server that ended a bypass session (the relay cannot tell the client
  // in the middle of the server's byte stream; finish_refused does).
  enum class ServerFault : uint8_t { kNone, kTooLong, kMalformed };

  // In-flight state of a tenant session's relay. Batches and the transaction status are the
  // session's (proxy/session); the connection asks it.
  struct TenantRelay {
    std::optional<session::TenantSession> session;  // from the start of the relay on
    bool client_closing = false;  // the client sent Terminate: the server closing is expected
    bool server_done = false;     // server_to_client has ended
    bool client_gone = false;     // the client closed its socket
    char last_server_tag = 0;     // the last message relayed from the server
    uint64_t prechecked_version = 0;  // the policy version whose re-checks were prepared on the pool
    std::optional<std::chrono::steady_clock::time_point> upstream_wait;
  };

  struct TxPool {
    bool on = false;                   // this session is pooled
    std::shared_ptr<PoolRuntime> pool;
    PooledServer* lease = nullptr;     // the server connection held now
    Settings wanted;                   // the settings this client has (PostgreSQL's spelling)
    std::string pin;                   // sticky: pins until the client disconnects
    bool settings_touched = false;     // this lease ran a SET / RESET / DISCARD
    bool state_touched = false;        // ... or LISTEN / UNLISTEN / advisory locks / DISCARD
    bool listening = false;            // PostgreSQL said: the connection listens on a channel
    // LISTEN (listener.h): the server channels this client listens on (rowguard's record, after
    // the transactions that committed), re-LISTENed on the server connection of each of its
    // transactions (`mirrored`) so that PostgreSQL decides what COMMIT / ROLLBACK / a savepoint
    // does to them; then read back and UNLISTENed before the connection goes back to the pool.
    std::set<std::string> listens;
    std::set<std::string> relisten;  // listens to take up on a new upstream's listener (follow_placement)
    bool mirrored = false;
    bool advisory_touched = false;     // this lease named an advisory lock
    // NotificationResponses (and notices: channel "") not delivered yet. A channel the client
    // no longer listens on when they go out is dropped, as PostgreSQL checks at delivery.
    struct PendingNote {
      std::string channel;
      std::string frame;
    };
    std::vector<PendingNote> notes;
    size_t notes_bytes = 0;
    bool client_writing = false;       // a write to the client between transactions is under way
    bool advisory = false;             // PostgreSQL said: it holds a session-level advisory lock
    bool cursors = false;              // PostgreSQL said: a cursor (WITH HOLD) is open
    bool skip_to_sync = false;         // an extended batch failed here: drop messages up to Sync
    bool busy = false;                 // end_of_lease is using the connection
    bool counted_pinned = false;
    std::string counted_pin_reason;    // its pin_category() (rowguard_pool_clients_pinned{reason})
    bool client_done = false;          // client_to_server has ended
    std::string error_sqlstate, error_message;  // the error for the next message (pending)
    bool error_pending = false;
    // ReadyForQuery still to swallow: the answers of the DISCARD SEQUENCES take_lease sent ahead
    // of the client's first message on a connection another session held last.
    int swallow = 0;
  };

  // What a bypass session's relay follows of the byte streams it relays.
  struct BypassRelay {
    uint64_t batches_out = 0;  // Query/Sync forwarded
    uint64_t batches_in = 0;   // ReadyForQuery relayed
    bool ddl_pending = false;  // DDL completed; re-read the schema at the next idle ReadyForQuery
    ServerFault server_fault = ServerFault::kNone;
  };

  Stream client_;
  Server& server_;
  Worker& worker_;
  Stream upstream_;
  std::string client_buf_;
  std::string server_buf_;
  uint64_t id_ = 0;
  std::string peer_;
  std::string user_;
  std::optional<std::string> tenant_;  // nullopt: bypass (or not logged in yet)
  policy::PolicyPtr policy_;
  char tx_ = 'I';  // bypass sessions, and tenant sessions before their relay starts
  std::optional<std::pair<int32_t, int32_t>> client_key_;
  std::pair<int32_t, int32_t> backend_key_{0, 0};  // the server backend's (pid, key)
  std::atomic<int64_t>* kind_gauge_ = nullptr;
  bool draining_ = false;  // rowguard is shutting down: close at the next idle point
  bool counted_user_ = false;
  ClientWatch watch_;       // [limits] idle timeouts and message_timeout
  std::string revoked_;     // a reload removed this login (FATAL 28000)
  std::string refusal_;     // set when a client message broke a [limits] size
  TenantRelay tenant_relay_;
  TxPool tx_pool_;
  boost::asio::steady_timer lease_signal_;  // wakes server_to_client when a lease is taken
  boost::asio::steady_timer busy_signal_;   // wakes client_to_server when end_of_lease is done
  boost::asio::steady_timer write_signal_;  // wakes a writer waiting for client_writing
  boost::asio::steady_timer notify_signal_;  // wakes notification_pump
  BypassRelay bypass_relay_;
  AuthMethod identity_method_ = AuthMethod::kNone;  // how the login was authenticated (client_auth.h)
  SecretString jwt_token_;                 // identity = "jwt": the login's token, for reloads
  uint64_t identity_checked_version_ = 0;  // the policy version the login was last checked under
  std::shared_ptr<ClientInfo> info_;       // what the admin console shows
  std::string upstream_choice_;            // bypass: the upstream named by "database@upstream"
  std::string upstream_name_ = std::string(policy::kDefaultUpstream);  // where this session's server is
  std::string upstream_host_;              // ... its address (session mode: cancels go there)
  uint16_t upstream_port_ = 0;
  std::string database_;                   // the upstream database (pools are keyed by it)
  std::string client_database_;            // the database the startup asked for (check_startup)
  std::shared_ptr<boost::asio::steady_timer> placement_timer_;  // a drain under way
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // expires with the connection
  std::string moved_;                      // why a drain ended this session (FATAL 57P01)
};

}  // namespace rowguard::net
