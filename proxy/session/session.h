#pragma once
// Per-connection protocol logic without sockets: given a message from the client (and the
// session's tenant, policy snapshot and transaction status), decide what to do. The network
// layer (proxy/net) executes the decision. Unit-tested on byte strings.
#include <string>
#include <utility>
#include <vector>

#include "policy/policy.h"
#include "proxy/protocol/codec.h"
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

enum class ActionKind {
  kForward,  // send `bytes` to the server, relay its answer up to ReadyForQuery
  kReply,    // send `bytes` to the client, nothing to the server
  kAbortTx,  // deny inside a transaction block: send `bytes` (a statement that fails) to the
             // server so that its transaction ends up aborted as PostgreSQL would leave it; the
             // server's ErrorResponse is replaced by `error` for the client
  kIgnore,   // nothing to do
  kClose,    // send `bytes` (if any) to the client and close the connection
};

struct Action {
  ActionKind kind = ActionKind::kIgnore;
  std::string bytes;
  std::string error;   // kAbortTx: the ErrorResponse to show instead of the server's
  std::string denial;  // a denial reason, for the log
  std::string statement;  // the client's statement text (for the log), when there is one
};

class TenantSession {
 public:
  TenantSession(std::string tenant, sqlrewrite::RewriteCache& cache);

  // tx_status: the last ReadyForQuery status ('I', 'T' or 'E').
  Action on_message(const protocol::Frame& frame, const policy::Policy& policy, char tx_status);

  const std::string& tenant() const { return tenant_; }

 private:
  Action on_query(std::string_view body, const policy::Policy& policy, char tx_status);
  Action not_supported(const protocol::Frame& frame, char tx_status);

  std::string tenant_;
  sqlrewrite::RewriteCache& cache_;
  bool discard_until_sync_ = false;  // after an error in an extended-protocol batch
};

// The statement rowguard sends to make the server abort the current transaction block.
inline constexpr std::string_view kAbortStatement = "SELECT 1/0 AS rowguard_denied";

std::string denial_response(std::string_view reason);  // ErrorResponse 42501

}  // namespace rowguard::session
