// The seeded state-leak harness of issue #16 item 6 (used by state_leak_test.cc).
//
// A synchronous driver runs a seeded random sequence of operations over many libpq clients of
// several tenants, interleaved, and after every operation compares what the client sees with a
// model of "this client alone on a private PostgreSQL session": its settings (SHOW,
// current_setting, ParameterStatus), its transaction status, its prepared statements (SQL and
// protocol names share one namespace), its cursors, the notifications of its tenant's channels
// it listens on, and the rows of its tenant (count + checksum, with its own uncommitted changes).
// Anything a pooler leaks from one client's session into another's makes the model and the
// client disagree: the run stops at the first disagreement and reports it with the seed.
//
// The schema is examples/schema.sql: every client inserts, updates and deletes only rows of its
// own id range in public.orders (ids >= kFirstLeakId), so no client ever waits for another's
// row lock and the driver cannot deadlock itself.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>

namespace rowguard::testing::adversarial::leak {

inline constexpr int64_t kFirstLeakId = 1000000;

// Client states that hold (pin) a server connection in a transaction pooler.
// kPrepared: any named statement pins; kSqlPrepared: only SQL PREPARE does (protocol-level ones
// follow the client, as rowguard's transaction pooling does).
enum class Pin { kTransaction, kHoldCursor, kListen, kPrepared, kSqlPrepared };

struct RunConfig {
  std::string name;           // for the summary
  uint64_t seed = 20261205;   // ROWGUARD_LEAK_SEED overrides it (see seed_from_env)
  int ops = 10000;
  int tenants = 3;            // users t1..tN, password pwN
  int clients = 21;           // client i belongs to tenant (i % tenants) + 1
  // At most this many clients at once are in a state listed in `pins`: a synchronous driver must
  // never wait for a server connection another of its clients holds, so with a pool of N server
  // connections this is N - 1 (one stays free for everybody's autocommit statements).
  int max_pinned = 1;
  std::set<Pin> pins = {Pin::kTransaction, Pin::kHoldCursor};
  // rowguard refuses RESET ALL for tenants today (42501, sqlrewrite/utility.cc): the model then
  // expects that refusal. Set to true once RESET ALL is allowed (issue #16 item 2).
  bool reset_all_allowed = false;
  // Answers 53300 (no server connection within query_wait_timeout) count as "did not happen";
  // more than this share of operations fails the run.
  double max_53300_share = 0.03;
  // A cancel of an idle client must cancel nothing. Through rowguard today it can cancel the
  // client's NEXT statement (57014): rowguard closes the client's cancel connection as soon as it
  // has written the CancelRequest upstream, before PostgreSQL has acted on it (libpq's PQcancel
  // waits for that; proxy/net/connection_startup.cc send_cancel_to does not). When true, the first
  // 57014 a client gets after its idle cancel is counted (RunResult::late_cancels) and modelled
  // as that statement failing (not happening; its transaction aborted) instead of failing the
  // run. A 57014 of a client that sent no cancel (another client's cancel reaching it) still fails.
  // SQL EXECUTE / DEALLOCATE name statements made by protocol Parse (PostgreSQL: one namespace).
  // false expects 26000 there (a pooler that keeps protocol statements apart from SQL ones).
  bool sql_sees_protocol_statements = true;
  bool tolerate_late_cancel = false;
  int op_timeout_ms = 10000;         // an answer later than this is a wedge: the run fails
  int notify_timeout_ms = 3000;      // how long a listener may take to receive a notification
  // When not empty, only these operations (names as in RunResult::ops_by_kind) are generated,
  // plus what a client needs to leave a state (COMMIT/ROLLBACK, and nothing else when none fits):
  // a negative control can aim at one kind of state.
  std::set<std::string> only;
  int first_failure_context = 8;     // operations of the failing client shown before the failure
};

// ROWGUARD_LEAK_SEED when set (decimal), else `fallback`.
uint64_t seed_from_env(uint64_t fallback);
// ROWGUARD_LEAK_OPS when set (a longer soak of the same run), else `fallback`.
int ops_from_env(int fallback);

struct RunResult {
  int ops_done = 0;                  // operations attempted (including the failing one)
  bool failed = false;
  // The first disagreement: what the model expected and what the client saw.
  std::string failure;
  // What kind of disagreement: "setting", "parameter_status", "rows", "prepared", "cursor",
  // "notification", "transaction", "error", "wedge", "connection".
  std::string failure_kind;
  int failure_op = -1;
  std::map<std::string, int> ops_by_kind;
  int answers_53300 = 0;
  int late_cancels = 0;  // see RunConfig::tolerate_late_cancel
  std::string summary;  // one paragraph: seed, ops by kind, 53300 count, outcome
};

// conninfo(tenant) is a libpq connection string logging in as that tenant (1-based).
RunResult run(const RunConfig& config, const std::function<std::string(int tenant)>& conninfo);

}  // namespace rowguard::testing::adversarial::leak
