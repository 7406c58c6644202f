#pragma once
// Per-connection protocol logic without sockets: given a message from the client (and the
// session's tenant, policy snapshot and transaction status), decide what to do. The network
// layer (proxy/net) executes the decision. Unit-tested on byte strings.
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "policy/policy.h"
#include "proxy/protocol/codec.h"
#include "proxy/session/copy_checker.h"
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

class TenantSession {
 public:
  TenantSession(std::string tenant, sqlrewrite::RewriteCache& cache, std::string nonce);

  // One message from the client. The step is reused by the next call (its buffers keep their
  // capacity, so steady-state traffic does not allocate): copy what must outlive it.
  const ClientStep& on_client_message(const protocol::Frame& frame, const policy::Policy& policy);

  // One message from the server (`raw` = its bytes); appends what the client gets to `to_client`.
  ServerStep on_server_message(const protocol::Frame& frame, std::string_view raw,
                               std::string& to_client);

  const std::string& tenant() const { return tenant_; }
  char tx_status() const { return tx_status_; }

 private:
  void on_query(std::string_view body, const policy::Policy& policy, ClientStep& step);
  void on_parse(std::string_view body, const policy::Policy& policy, ClientStep& step);
  void on_bind(std::string_view body, ClientStep& step);
  void on_close(std::string_view body);
  // SQL-level PREPARE / EXECUTE / DEALLOCATE / DISCARD ALL of a Query (session_prepared.cc):
  // "" when the Query may run, else the reason to refuse it.
  std::string check_sql_prepared(const std::vector<sqlrewrite::PreparedStatementOp>& ops) const;
  void note_sql_prepared(const std::vector<sqlrewrite::PreparedStatementOp>& ops);
  void on_command_complete(std::string_view body);
  // Registers a refusal; returns the marker the server's error will carry.
  std::string refuse(std::string reason);

  struct Statement {
    std::vector<int> tenant_params;
    std::vector<int32_t> param_types;
  };

  std::string tenant_;
  sqlrewrite::RewriteCache& cache_;
  std::string nonce_;        // per session, lower-case hex: markers cannot be guessed
  uint64_t next_marker_ = 0;
  struct Pending {
    uint64_t answered_by;    // the ReadyForQuery (count) that closes the batch it belongs to
    std::string error;       // the ErrorResponse the client gets instead of the server's
  };
  std::map<std::string, Pending> pending_;  // marker -> refusal
  uint64_t batches_sent_ = 0;               // Query and Sync messages forwarded
  uint64_t batches_done_ = 0;               // ReadyForQuery messages seen
  // Prepared statements as the SERVER has them, protocol and SQL-level alike (one namespace in
  // PostgreSQL): a Parse or Close counts only once the server confirms it (ParseComplete /
  // CloseComplete), a SQL PREPARE / DEALLOCATE / DISCARD ALL once its CommandComplete arrives.
  // One in flight is a candidate too: a Bind or EXECUTE is checked against every statement the
  // server may run under that name.
  std::map<std::string, Statement, std::less<>> statements_;
  struct PendingParse {
    uint64_t batch;
    std::string name;
    Statement statement;
    bool refused = false;  // rowguard sent a failing Parse instead
  };
  std::deque<PendingParse> pending_parses_;
  struct PendingClose {
    uint64_t batch;
    char kind;
    std::string name;
  };
  std::deque<PendingClose> pending_closes_;
  // Every statement the server may hold under `name` when it runs a statement sent now: the
  // confirmed one and those of Parses / SQL PREPAREs in flight.
  std::vector<const Statement*> candidates(std::string_view name) const;
  // SQL PREPARE / DEALLOCATE / DISCARD ALL in flight, in the order of the Query that sent them;
  // each counts once the server's CommandComplete with its tag confirms it.
  struct PendingSql {
    uint64_t batch;
    sqlrewrite::PreparedStatementOp::Kind kind;
    std::string name;
    std::string tag;
    Statement statement;  // kPrepare
  };
  std::deque<PendingSql> pending_sql_;
  bool extended_open_ = false;  // extended-protocol messages sent since the last Sync
  // Describe(statement) requests in flight: the server's ParameterDescription for each one tells
  // the parameter types the client did not declare (needed to read binary Bind values).
  struct DescribeRequest {
    uint64_t batch;  // the ReadyForQuery (count) that ends its batch
    std::string statement;
  };
  std::deque<DescribeRequest> describes_;
  // A COPY ... FROM STDIN in progress: the client's rows go through the checker.
  struct CopyIn {
    CopyRowChecker checker;
    uint64_t answered_by;  // the ReadyForQuery (count) that ends the COPY
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
  char tx_status_ = 'I';
};

std::string denial_response(std::string_view reason);  // ErrorResponse 42501

// Checks a Bind parameter feeding a tenant column. `type_oid` is the type the client declared
// in Parse (0 = unknown). Returns "" when the value is the tenant, else the reason to refuse.
std::string check_tenant_param(const std::optional<std::string_view>& value, int16_t format,
                               int32_t type_oid, std::string_view tenant, int param_number);

}  // namespace rowguard::session
