#pragma once
// Per-connection protocol logic without sockets: given a message from the client (and the
// session's tenant, policy snapshot and transaction status), decide what to do. The network
// layer (proxy/net) executes the decision. Unit-tested on byte strings.
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string_view>
#include <string>
#include <utility>
#include <vector>

#include "policy/policy.h"
#include "proxy/protocol/codec.h"
#include "proxy/session/copy_checker.h"
#include "proxy/session/server_statements.h"
#include "sqlrewrite/rewrite_cache.h"

namespace rowguard::session {

// ---- startup ------------------------------------------------------------------------------

struct StartupDecision {
  bool ok = false;
  std::string sqlstate;  // when !ok
  std::string message;   // when !ok
  std::string user;
  std::string database;  // the database to open upstream
  std::vector<std::pair<std::string, std::string>> upstream_params;  // harmless client params
};

// Checks the client's startup parameters. Harmless ones (application_name, client_encoding,
// DateStyle, TimeZone, extra_float_digits, IntervalStyle, ...) are passed upstream;
// options, replication, search_path, role and unknown ones are refused.
StartupDecision check_startup(const protocol::StartupPacket& packet, const policy::Policy& policy);

// ---- a tenant's statements ------------------------------------------------------------------
//
// rowguard never answers a tenant's statement by itself while the server may still be answering
// earlier ones: a refused message is replaced by one that fails on the server at the same point
// of the stream (a Query or Parse naming a column that cannot exist, a Bind naming a statement
// that does not exist), and the server's error for it is replaced by rowguard's 42501 on the way
// back. So the server keeps the real transaction state (an aborted transaction block stays
// aborted, an extended-protocol batch is skipped until Sync) and pipelined responses stay in order.

struct ClientStep {
  std::string to_server;     // bytes to forward (possibly nothing)
  bool close = false;        // stop after forwarding; `to_client` holds a FATAL error if any
  std::string to_client;
  std::string denial;        // the reason of a refusal, for the log
  std::string statement;     // the statement text involved, for the log

  // Empty again, keeping the strings' capacity (the session reuses one step per message).
  void clear() {
    to_server.clear();
    close = false;
    to_client.clear();
    denial.clear();
    statement.clear();
  }
};

struct ServerStep {
  bool close = false;        // the server did something rowguard cannot relay safely
  std::string reason;        // when close
};

// Per-session bounds are the policy's [limits] max_prepared_statements,
// max_prepared_statement_bytes and max_pipelined_messages (policy::LimitSettings), read at each
// message from the policy the session runs under.

// PostgreSQL keys prepared statements and portals by their first NAMEDATALEN - 1 = 63 bytes
// (a protocol name longer than that names the same statement as its first 63 bytes).
std::string_view server_name(std::string_view name);

// A FIFO that keeps its storage: steady-state traffic pushes and pops without allocating
// (std::deque frees and allocates a block every few entries).
template <class T>
class Fifo {
 public:
  bool empty() const { return head_ == items_.size(); }
  size_t size() const { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  const T& front() const { return items_[head_]; }
  T& back() { return items_.back(); }
  void push_back(T v) { items_.push_back(std::move(v)); }
  void pop_front() {
    if (++head_ == items_.size()) {
      items_.clear();
      head_ = 0;
    } else if (head_ >= 64 && 2 * head_ >= items_.size()) {
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  auto begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  auto end() { return items_.end(); }
  auto begin() const { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  auto end() const { return items_.end(); }
  auto rbegin() { return items_.rbegin(); }
  auto rend() { return items_.rend() - static_cast<std::ptrdiff_t>(head_); }

 private:
  std::vector<T> items_;
  size_t head_ = 0;
};

class TenantSession {
 public:
  TenantSession(std::string tenant, sqlrewrite::RewriteCache& cache, std::string nonce);

  // One message from the client. The step is reused by the next call (its buffers keep their
  // capacity, so steady-state traffic does not allocate): copy what must outlive it.
  // `precomputed`: the rewrite of this Query's / Parse's text for this session's tenant under
  // `policy`, made elsewhere (the parse pool, proxy/net/parse_pool.h); used instead of the cache.
  const ClientStep& on_client_message(const protocol::Frame& frame, const policy::Policy& policy,
                                      const sqlrewrite::RewriteResult* precomputed = nullptr);
  // The statement text a Query or Parse message carries (what on_client_message rewrites), or
  // nullopt for other messages and malformed ones.
  static std::optional<std::string_view> statement_text(const protocol::Frame& frame);

  // One message from the server (`raw` = its bytes); appends what the client gets to `to_client`.
  // A message the model of the server's state did not predict ends the session (close).
  ServerStep on_server_message(const protocol::Frame& frame, std::string_view raw,
                               std::string& to_client);

  // ---- transaction pooling ------------------------------------------------------------------
  //
  // Pooled (transaction mode): the session's server connection changes between transactions,
  // so a named protocol statement (Parse / Bind / Describe 'S' / Close 'S' with a name) follows
  // the client: the session keeps the client's statements (client name -> text, types, tenant
  // parameters, policy version) in its own table (`statements_`), and the server connection
  // attached for the transaction holds them under rowguard's names (ServerStatements: `rg_<n>`,
  // one per distinct rewritten text and declared parameter types, LRU-bounded). Client names
  // never reach the server.
  // - Parse "x": the connection gets a Parse under its name for the text only if it lacks it;
  //   otherwise the client's ParseComplete is rowguard's, in order: a stand-in message that
  //   does nothing on the server (Close of statement rg_0) takes the Parse's place in the
  //   stream, and its CloseComplete becomes the client's ParseComplete. So rowguard never
  //   answers ahead of the server, every answer reaches the client through on_server_message
  //   (the network layer writes nothing else), and when an error makes the server skip to
  //   Sync the stand-in is skipped with the rest (the client's statement is then not made).
  // - Bind / Describe 'S' of "x": under the connection's name; when the connection lacks it
  //   (another connection, or evicted) a Parse is injected first, its ParseComplete swallowed;
  //   if that Parse fails (a dropped table) its error is the client's answer in place of the
  //   Bind's / Describe's and the server skips to Sync, as PostgreSQL fails the Bind.
  // - Close 'S' "x": the client's statement goes (when the stand-in's answer arrives); the
  //   connection's stays, shared. Parse over an existing name: 42P05; Bind / Describe of an
  //   unknown name: 26000, as PostgreSQL (a message that fails on the server at the same point
  //   carries the answer, so the server skips the batch).
  // - Eviction at the bound: rowguard sends Close of the least recently used statement not
  //   used in the current batch, its CloseComplete swallowed.
  // - The tenant as parameters (use_tenant_params): when the rewrite cache offers the statement's
  //   tenant-parameter form (sqlrewrite::TenantParamForm: every tenant constant a pure filter),
  //   the connection's text has $n (after the client's parameters) where the tenant constants
  //   were, the same for every tenant, so one server statement serves all of them. A Bind gets
  //   the session tenant appended for them (text format; one binary format code is spelled out
  //   per parameter); a Bind with another number of values than the client's statement has gets
  //   PostgreSQL's 08P01 (a client never supplies them); a Describe 'S' answer drops them.
  // - Unnamed statements and all portals are unchanged.
  // - SQL-level PREPARE / EXECUTE / DEALLOCATE / DISCARD ALL of a Query (pooled_query) use the
  //   same table (one namespace, as PostgreSQL: 42P05 on a duplicate, 26000 on an unknown
  //   name). The Query is sent statement by statement with its names translated: the client's
  //   PREPARE x becomes PREPARE rg_<n> (always a new name, so the server still checks the
  //   text and answers it); EXECUTE x becomes EXECUTE rg_<n>, after a PREPARE rg_<n> put in
  //   just before it when the connection lacks it (a statement made by Parse is prepared in
  //   SQL with its declared types written as type names); DEALLOCATE [ALL] drops only the
  //   client's record, a SELECT WHERE false taking its place whose answer is made the
  //   DEALLOCATE's; DISCARD ALL runs (the connection's statements are gone). The answers to
  //   rowguard's statements are swallowed. A Bind / Describe of a SQL-prepared name on a
  //   connection that lacks it gets a Parse of its AS statement when rowguard knows every
  //   declared type's OID, else it is refused. An EXECUTE of a statement whose server text has
  //   the tenant as parameters is refused (its arguments would bind them). A client may not
  //   PREPARE / EXECUTE / DEALLOCATE names rg_* (rowguard's).
  //
  // Known differences from one private backend per client:
  // - Batches in flight are assumed to succeed: a Bind / Parse / Close of "x" sent while an
  //   EARLIER batch (before a Sync) that prepares or closes "x" is unanswered is translated as
  //   if that batch succeeds (if it fails, "x" means what the batch would have made). Within
  //   one batch the server's skip-to-Sync keeps it exact.
  // - A Parse whose text the connection already holds gets ParseComplete even if the text
  //   would now fail (a dropped table): the error comes at the Bind (as with PgBouncer).
  // - Parse over an existing name whose text also fails: 42P05 rather than the text's error.
  // - Describe 'S' whose injected Parse fails: the error alone (PostgreSQL sends the
  //   ParameterDescription first, then fails on the RowDescription).
  void set_pooled(bool pooled) { pooled_ = pooled; }  // at a boundary (idle)
  bool pooled() const { return pooled_; }
  // The server connection's statements, for the transaction (nullptr: released). Attach before
  // forwarding the transaction's first message; detach only when idle() (ReadyForQuery 'I').
  void attach(ServerStatements* conn);
  ServerStatements* attached() const { return conn_; }
  // Pooled: the client must stay on its server connection (it holds a SQL-level prepared
  // statement made in session mode under its own name). pin_reason(): why, for SHOW POOLS /
  // logs ("" when needs_pin() is false).
  bool needs_pin() const { return !pin_reason().empty(); }
  std::string pin_reason() const;

  const std::string& tenant() const { return tenant_; }
  // LISTEN/NOTIFY: the name the client uses for a server channel of this tenant (nullopt: not
  // one of this tenant's channels). Pooled sessions get their notifications from rowguard's
  // listener connection (proxy/net/listener.h), never from the server connection they hold.
  std::optional<std::string_view> client_channel(std::string_view server_channel) const {
    if (server_channel.substr(0, channel_prefix_.size()) != channel_prefix_) return std::nullopt;
    return server_channel.substr(channel_prefix_.size());
  }
  char tx_status() const { return tx_status_; }
  // Nothing is awaited from the server (every forwarded message is answered or skipped).
  bool idle() const { return awaited_.empty(); }
  // Idle, and no extended-protocol batch is open (a place where a transaction may start).
  bool at_boundary() const { return awaited_.empty() && !extended_open_; }
  // The server skips everything until the next Sync (an error in an extended batch).
  bool server_skipping() const { return skipping_; }
  size_t awaited() const { return awaited_.size(); }
  // Prepared statements the server holds (as confirmed to rowguard), by server name.
  size_t prepared_count() const { return statements_.size(); }
  size_t prepared_bytes() const { return statement_bytes_; }
  // The distinct texts of this session's prepared statements (held or awaiting their
  // ParseComplete) of at least `min_bytes` that were checked under another policy version than
  // `policy`'s: what a use after a reload re-checks. The connection has them rewritten on the
  // parse pool first, so that the re-check is a cache hit on the worker.
  std::vector<std::string_view> stale_texts(const policy::Policy& policy, size_t min_bytes) const;
  // Portals and cursors the server may hold (session_portals.cc).
  size_t portal_count() const { return portals_.size(); }
  bool has_statement(std::string_view name) const { return statements_.count(server_name(name)) > 0; }
  // The client's text of the prepared statement a message sent now names (a Parse or PREPARE in
  // flight included; a SQL PREPARE's is its whole Query), "" when there is none.
  std::string statement_text_of(std::string_view name) {
    const Statement* st = resolve(name);
    return st == nullptr ? std::string() : st->text;
  }

  // ---- transaction pooling ([pool] mode = "transaction", proxy/net/pool_runtime.h) ----
  // Named prepared statements (protocol Parse or SQL PREPARE) the server holds: they pin the
  // client to its server connection (the unnamed one does not: see forget_unnamed_statement).
  bool has_named_statements() const { return statements_.size() > (statements_.count("") > 0 ? 1u : 0u); }
  // The server connection goes back to the pool: the next one does not hold this session's
  // unnamed statement (a Bind of it without a Parse is then refused, never run on another
  // client's statement).
  void forget_unnamed_statement() { drop_statement(""); }
  // Extended-protocol messages were sent since the last Sync (the client still owes a Sync).
  bool batch_open() const { return extended_open_; }
  // The server connection was lost (or the session is moved to a new one after an error):
  // nothing is owed any more; no transaction, statement, portal or COPY survives.
  void server_lost();

 private:
  struct Statement {
    std::vector<int> tenant_params;
    std::vector<int32_t> param_types;
    // What a reload re-checks: the client's text, the policy version it was checked under and
    // the rewritten text the server holds.
    std::string text;
    uint64_t policy_version = 0;
    std::string rewritten;
    std::vector<sqlrewrite::CursorOp> cursors;  // a DECLARE / FETCH / CLOSE text (extended protocol)
    uint64_t id = 0;  // unique in the session (0: a SQL PREPARE in session mode)
    std::vector<int32_t> parse_types;  // pooled: the types the Parse declared (the server key)
    // Pooled, named: the tenant as parameters (sqlrewrite::TenantParamForm): `rewritten` holds
    // $tenant_first .. $tenant_first + tenant_count - 1 where the literal form holds '<tenant>',
    // so its text (and server statement) is the same for every tenant; every Bind gets this
    // session's tenant appended for them (text format), and the client sees tenant_first - 1
    // parameters. 0: the tenant is a constant in `rewritten`.
    int tenant_first = 0;
    int tenant_count = 0;
    // Pooled SQL PREPARE: the PREPARE under the placeholder name rg_0 (the server key, with its
    // declared type names) and its AS statement (for a Parse on a connection that lacks it).
    std::string sql_template;
    std::string sql_query;
  };
  // A DECLARE / CLOSE / CLOSE ALL of a Query, applied to `portals_` when its CommandComplete
  // tag confirms it (session_portals.cc).
  struct CursorChange {
    sqlrewrite::CursorOp::Kind kind;
    std::string name;
    bool hold = false;
    bool inserted = false;  // kDeclare: the record was made when the Query was sent
    uint64_t policy_version = 0;
  };
  // SQL PREPARE / DEALLOCATE / DISCARD ALL of a Query, confirmed by its CommandComplete tag.
  struct SqlOp {
    sqlrewrite::PreparedStatementOp::Kind kind;
    std::string name;
    std::string tag;
    Statement statement;  // kPrepare
    size_t index = SIZE_MAX;  // pooled: its place among the Query's statements as sent
  };
  // Pooled: a statement of a Query rowguard put in (or in place of the client's), by its place
  // among the Query's statements as sent (each answers one CommandComplete, or the error that
  // ends the Query).
  struct QueryPiece {
    enum Kind : uint8_t {
      kPrepare,  // PREPARE rg_<n>: the client's PREPARE (`client`) or one before an EXECUTE
      kEvict,    // DEALLOCATE rg_<n>: the connection's least recently used statement
      kStandIn,  // SELECT WHERE false in place of a client's DEALLOCATE [ALL]: answered `tag`
    } kind;
    size_t index;
    std::string server_stmt;  // kPrepare / kEvict
    std::string tag;          // kStandIn
    bool client = false;      // kPrepare: the client's own PREPARE (its CommandComplete is the client's)
  };
  // One forwarded message whose answer the server still owes (or skips).
  enum class Await : uint8_t { kParse, kBind, kDescribeStatement, kDescribePortal, kExecute, kClose, kSync, kQuery };
  struct Awaited {
    Await kind;
    uint64_t seq;
    bool refused = false;  // Parse: rowguard sent a failing one
    bool started = false;  // Describe S: ParameterDescription seen; Query: its first answer seen
    bool copy = false;     // Query: the COPY FROM STDIN of copy_
    char close_kind = 0;   // Close
    std::string name;      // Parse / Describe S / Close: the statement's server name
    Statement statement;   // Parse
    std::vector<SqlOp> sql;  // Query: its PREPARE / DEALLOCATE / DISCARD ALL, in order
    std::vector<CursorChange> cursors;  // Query: its DECLARE / CLOSE, in order
    uint64_t policy_version = 0;        // Bind: the policy its portal is made under
    uint64_t statement_id = 0;          // Bind: the statement it binds (Statement::id), 0 if unsure
    // Pooled: `synthetic` entries are answered by rowguard (`answer`, in place of the answer to
    // a stand-in: stand_in()) (a Parse whose text the connection holds, a Close 'S'); `injected` ones are rowguard's own
    // messages whose answers the client does not get (a Parse before a Bind / Describe, a Close
    // evicting a statement); `server_stmt`: the connection's name a Parse / eviction Close sent.
    bool synthetic = false;
    bool injected = false;
    std::string answer;
    std::string server_stmt;
    // Describe 'S' of a statement with the tenant as parameters: how many parameter types the
    // ParameterDescription ends with that are rowguard's (the client does not see them).
    int hidden_params = 0;
    // Pooled Query with SQL-level PREPARE / EXECUTE / DEALLOCATE / DISCARD ALL (pooled_query):
    // `sql` is matched by index; `completed` counts its CommandCompletes.
    bool pooled_query = false;
    size_t completed = 0;
    std::vector<QueryPiece> pieces;
    std::vector<std::pair<std::string, std::string>> names;  // server name -> client name, for its errors
  };

  void on_query(std::string_view body, const policy::Policy& policy, ClientStep& step,
                const sqlrewrite::RewriteResult* precomputed);
  void on_parse(std::string_view body, const policy::Policy& policy, ClientStep& step,
                const sqlrewrite::RewriteResult* precomputed);
  void on_bind(std::string_view body, const policy::Policy& policy, ClientStep& step);
  void on_describe(std::string_view body, const policy::Policy& policy, ClientStep& step);
  void on_execute(std::string_view body, const policy::Policy& policy, ClientStep& step);
  // SQL-level PREPARE / EXECUTE / DEALLOCATE / DISCARD ALL of a Query (session_prepared.cc):
  // "" when the Query may run, else the reason to refuse it.
  std::string check_sql_prepared(const std::vector<sqlrewrite::PreparedStatementOp>& ops,
                                 const policy::Policy& policy);
  std::vector<SqlOp> sql_ops(const std::vector<sqlrewrite::PreparedStatementOp>& ops, std::string_view text,
                             const std::string& rewritten, uint64_t policy_version) const;
  void on_command_complete(std::string_view body);
  // Pooled (transaction mode): a Query with SQL-level PREPARE / EXECUTE / DEALLOCATE / DISCARD
  // ALL, its names translated to the connection's (session_prepared.cc).
  void pooled_query(const sqlrewrite::RewriteResult& r, std::string_view text, const policy::Policy& policy,
                    ClientStep& step);
  // A RowDescription of such a Query: false when the client does not get it (a stand-in's). A
  // CommandComplete: applied, and relayed to `to_client` (or swallowed, or its tag replaced).
  bool pooled_query_answer(Awaited& a, char tag, std::string_view body, std::string_view raw, std::string& to_client);
  void pooled_query_failed(Awaited& a);  // an error ended it: what its pieces did not do
  // "" when `st` (prepared under an older policy) still rewrites to what the server holds under
  // `policy` (then it is marked current), else the reason to refuse its use.
  std::string recheck(Statement& st, std::string_view name, const policy::Policy& policy);
  // Portals and cursors (session_portals.cc): "" when `name` may be used under `policy`, else
  // the reason to refuse (it was made under an older policy).
  // A portal of a Parse'd statement whose rewrite is still the same under `policy` is re-checked
  // instead (and made current).
  std::string stale_portal(std::string_view name, const policy::Policy& policy);
  // A Query's DECLARE / FETCH / MOVE / CLOSE: "" when it may run, else the reason to refuse.
  std::string check_cursors(const std::vector<sqlrewrite::CursorOp>& ops, const policy::Policy& policy);
  // The Query (entry `a`) is sent: DECLAREs are recorded now (a FETCH pipelined behind them is
  // checked against them), CLOSEs when confirmed.
  void send_cursors(const std::vector<sqlrewrite::CursorOp>& ops, uint64_t policy_version, Awaited& a);
  // A Bind of a statement whose text is a DECLARE / FETCH / CLOSE: "" or the reason to refuse;
  // records its DECLAREs.
  std::string bind_cursors(const Statement& st, const policy::Policy& policy, uint64_t seq);
  std::string room_for_portal(std::string_view name, const policy::LimitSettings& limits) const;
  void confirm_cursor(std::string_view tag, Awaited& a);  // a CommandComplete of the Query `a`
  void cursors_failed(Awaited& a);                         // an error ended the Query `a`
  void portal_bound(const Awaited& a);                     // BindComplete
  void transaction_ended(uint64_t seq);                    // ReadyForQuery 'I' for message `seq`
  // Bounds: "" when one more statement of `text` may be prepared, else the reason to refuse.
  std::string room_for(std::string_view text, const policy::LimitSettings& limits) const;
  // Registers a refusal for the message about to be forwarded; returns the marker its error
  // will carry.
  std::string refuse(std::string reason);
  std::string refuse_with(std::string error_response);  // the client gets this ErrorResponse
  // Pooled (see set_pooled()).
  void pooled_parse(std::string_view name, Statement st, ClientStep& step);
  // Pooled: `st` (rewritten with the tenant as a constant) gets the tenant-parameter form when
  // the cache offers one (one server statement for every tenant); "" on success or when it
  // stays a constant. recheck(): the rewrite `st` must still have under the current policy.
  void use_tenant_params(Statement& st, const policy::Policy& policy);
  // Pooled Bind of a statement with the tenant as its last `tenant_params` parameters, under the
  // connection's name `on_server`: the client's values (as many as the client's statement has:
  // checked by the caller), then the tenant's in text format, the format codes expanded to match.
  void append_tenant_bind(const protocol::BindMessage& m, std::string_view on_server, int tenant_params,
                          std::string& out) const;
  // What a client statement name means for a message sent now (the latest Parse / Close /
  // PREPARE / DEALLOCATE in flight, else the table), or nullptr.
  Statement* resolve(std::string_view name);
  // The connection's name for `st`, after queueing a Parse (and an eviction) when it lacks it.
  std::string ensure_on_server(const Statement& st, std::string_view client_name, ClientStep& step);
  void queue_eviction(ClientStep& step);
  // An entry answered by rowguard: a stand-in message (Close of statement rg_0, which does
  // nothing) is sent in its place, and its CloseComplete becomes `answer`.
  Awaited& stand_in(Await kind, ClientStep& step);
  void no_connection(ClientStep& step);          // pooled, nothing attached: a FATAL error
  static std::string undefined_statement(std::string_view name);  // PostgreSQL's 26000


  // The server will answer (or skip) the message forwarded now.
  Awaited& expect(Await kind);
  // Server side of the model (session_server.cc).
  void pop_front();                 // the front's answer is complete
  void skip_to_sync();              // an error in an extended batch: the server skips to Sync
  void forget_answered(uint64_t seq);  // refusals of messages up to seq are answered or skipped
  void commit_statement(const std::string& name, Statement st);
  void drop_statement(std::string_view name);

  std::string tenant_;
  sqlrewrite::RewriteCache& cache_;
  std::string nonce_;        // per session, lower-case hex: markers cannot be guessed
  uint64_t next_marker_ = 0;
  struct Pending {
    uint64_t seq;            // the awaited message it belongs to
    std::string error;       // the ErrorResponse the client gets instead of the server's
  };
  std::map<std::string, Pending> pending_;  // marker -> refusal
  // The model of the server: every forwarded message it will answer, in order. A message sent
  // while the server skips to Sync (`skipping_`) gets no entry: the server discards it.
  Fifo<Awaited> awaited_;
  uint64_t next_seq_ = 1;
  bool skipping_ = false;
  // Prepared statements as the SERVER has them, protocol and SQL-level alike (one namespace in
  // PostgreSQL), by server name: a Parse or Close counts only once the server confirms it
  // (ParseComplete / CloseComplete), a SQL PREPARE / DEALLOCATE / DISCARD ALL once its
  // CommandComplete arrives. One in flight is a candidate too: a Bind or EXECUTE is checked
  // against every statement the server may run under that name.
  std::map<std::string, Statement, std::less<>> statements_;
  size_t statement_bytes_ = 0;
  // Every statement the server may hold under `name` when it runs a statement sent now: the
  // confirmed one and those of Parses / SQL PREPAREs in flight.
  std::vector<Statement*> candidates(std::string_view name);
  bool extended_open_ = false;  // extended-protocol messages sent since the last Sync
  // Portals and SQL cursors (a cursor is a portal) the server may hold, by server name, with
  // the policy each was made under: a reload that lands while one is open (a WITH HOLD cursor
  // survives COMMIT; a portal of a pipelined batch lives to its Sync) makes it unusable.
  // Recorded when sent (a DECLARE, a Bind), made current when confirmed; non-holdable ones are
  // forgotten when their transaction ends; bounded by [limits] max_prepared_statements.
  struct Portal {
    uint64_t policy_version = 0;
    uint64_t seq = 0;   // the message that made it
    bool hold = false;  // WITH HOLD: outlives its transaction
    uint64_t statement_id = 0;  // a Bind's statement (Statement::id), for a re-check; 0: none
  };
  uint64_t next_statement_id_ = 1;
  std::map<std::string, Portal, std::less<>> portals_;
  // A COPY ... FROM STDIN in progress: the client's rows go through the checker.
  struct CopyIn {
    CopyRowChecker checker;
    uint64_t seq;          // the Query that runs the COPY
    bool failed = false;   // refused: the client's remaining data is dropped
    bool done = false;     // the client ended its data (CopyDone/CopyFail); kept until the
                           // COPY's ReadyForQuery, since a client may send all its data before
                           // the server's CopyInResponse arrives (asyncpg does)
    std::string statement;  // for the log
  };
  std::optional<CopyIn> copy_;
  std::string channel_prefix_;  // LISTEN/NOTIFY: this tenant's channels upstream
  void on_copy_message(const protocol::Frame& frame, ClientStep& step);
  ClientStep step_;  // what on_client_message returns, reused
  bool pooled_ = false;
  ServerStatements* conn_ = nullptr;
  uint64_t batch_tick_ = 0;  // conn_->tick() when the current batch began (eviction spares later uses)
  char tx_status_ = 'I';
};

std::string denial_response(std::string_view reason);  // ErrorResponse 42501

// Checks a Bind parameter feeding a tenant column. `type_oid` is the type the client declared
// in Parse (0 = unknown). Returns "" when the value is the tenant, else the reason to refuse.
std::string check_tenant_param(const std::optional<std::string_view>& value, int16_t format,
                               int32_t type_oid, std::string_view tenant, int param_number);

}  // namespace rowguard::session
