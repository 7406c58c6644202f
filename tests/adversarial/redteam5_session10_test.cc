// Red team 5, session 10: attacks on transaction pooling ([pool] mode = "transaction") and on
// the schema snapshot that keeps the policy version when a read finds the same content. Every
// case runs on a real PostgreSQL through a rowguard whose pool has two server connections on one
// worker, so that the attacker's and the bystander's transactions run on the same backend, one
// after the other (two connections: a pinned client keeps one, the others share the second). Cases that pass are attacks rowguard holds, kept as regression tests.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <poll.h>

#include <chrono>

#include <memory>
#include <string>
#include <vector>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

std::string first_value(const QueryResult& r) {
  if (!r.ok || r.rows.empty() || r.rows[0].empty() || !r.rows[0][0]) return "<" + r.sqlstate + " " + r.message + ">";
  return *r.rows[0][0];
}

std::string describe(const QueryResult& r) { return r.ok ? "answered " + r.everything() : r.sqlstate + " " + r.message; }

// A pooled rowguard: two server connections (size 2, workers 1; idle ones are reused most
// recently used first, so clients that take turns run on the same backend), the example policy plus
// rt5_items (a tenant table with a serial id), pg_sleep allowed. Started on first use.
class OnePooledConnection {
 public:
  OnePooledConnection() {
    auto su = Env::get().direct_super();
    EXPECT_TRUE(su->exec("DROP TABLE IF EXISTS rt5_items").ok);
    EXPECT_TRUE(su->exec("CREATE TABLE rt5_items (id serial, tenant_id int NOT NULL, body text, "
                         "PRIMARY KEY (tenant_id, id))")
                    .ok);
    EXPECT_TRUE(su->exec("ALTER TABLE rt5_items OWNER TO app").ok);
    std::string config = example_config_template();
    const std::string proxy = "[proxy]\n";
    config.replace(config.find(proxy), proxy.size(), proxy + "workers = 1\n");
    config += "\n[tables.\"public.rt5_items\"]\n\n[functions]\nallow = [\"pg_sleep\"]\n\n[pool]\nmode = \"transaction\"\n"
              "size = 2\nquery_wait_timeout = 5\n";
    rowguard_ = std::make_unique<RowguardProcess>(config, Env::get().pg(), "info");
  }
  std::unique_ptr<Client> tenant(int n) {
    return std::make_unique<Client>(rowguard_->conninfo("t" + std::to_string(n)) + " password=pw" + std::to_string(n));
  }
  RowguardProcess& rowguard() { return *rowguard_; }

 private:
  std::unique_ptr<RowguardProcess> rowguard_;
};

OnePooledConnection& pooled() {
  static OnePooledConnection* p = new OnePooledConnection();  // lives until exit
  return *p;
}

// Breach found by this round (fixed in proxy/net/tenant_relay.cc take_lease): a backend keeps
// the values nextval() gave in the session (currval's cache), and the pool handed the backend to
// the next client as it was. Tenant 2 inserted into rt5_items (its serial default called
// nextval), then tenant 1's `SELECT currval('rt5_items_id_seq')` on the same backend answered
// tenant 2's new id, where a backend of its own answers 55000 (currval not yet defined in this
// session): another tenant's activity and row id. currval with a literal naming a tenant table's
// default sequence is allowed (sqlrewrite/sequence_check.h), and its pin came after the fact.
TEST(RedteamSession10R5, CurrvalSeesNoSequenceValueOfThePreviousClient) {
  auto t2 = pooled().tenant(2);
  QueryResult ins = t2->exec("INSERT INTO rt5_items (body) VALUES ('globex-rt5') RETURNING id");
  ASSERT_TRUE(ins.ok) << ins.message;
  {
    auto t1 = pooled().tenant(1);
    QueryResult r = t1->exec("SELECT currval('rt5_items_id_seq')");
    EXPECT_FALSE(r.ok) << "tenant 1 read tenant 2's sequence value " << first_value(r) << " (tenant 2 got "
                       << first_value(ins) << ")";
    EXPECT_EQ(r.sqlstate, "55000") << describe(r);
  }  // (t1 named currval: pinned until it disconnects)
  // In a transaction too (the previous client's value, then the client's own).
  ASSERT_TRUE(t2->exec("INSERT INTO rt5_items (body) VALUES ('globex-rt5')").ok);
  {
    auto t1 = pooled().tenant(1);
    ASSERT_TRUE(t1->exec("BEGIN").ok);
    QueryResult before = t1->exec("SELECT currval('rt5_items_id_seq')");
    EXPECT_EQ(before.sqlstate, "55000") << describe(before);
    t1->exec("ROLLBACK");
    ASSERT_TRUE(t1->exec("BEGIN").ok);
    QueryResult own = t1->exec("INSERT INTO rt5_items (body) VALUES ('acme-rt5') RETURNING id");
    ASSERT_TRUE(own.ok) << own.message;
    QueryResult after = t1->exec("SELECT currval('rt5_items_id_seq')");
    EXPECT_EQ(first_value(after), first_value(own)) << "a client's own currval in its transaction";
    EXPECT_TRUE(t1->exec("COMMIT").ok);
  }
  // A client that gets the connection back with no other client in between keeps its values
  // (as on a backend of its own): nothing is discarded needlessly.
  QueryResult again = t2->exec("INSERT INTO rt5_items (body) VALUES ('globex-rt5') RETURNING id");
  ASSERT_TRUE(again.ok) << again.message;
  QueryResult own = t2->exec("SELECT currval('rt5_items_id_seq')");
  EXPECT_EQ(first_value(own), first_value(again));
  EXPECT_TRUE(t2->alive());
}

// Runs a named protocol statement (Bind / Describe / Execute / Sync, the statement prepared
// earlier): "ok <tag> <first value>" or "<sqlstate> <message>".
std::string exec_prepared(Client& c, const std::string& name) {
  PGresult* res = PQexecPrepared(c.raw(), name.c_str(), 0, nullptr, nullptr, nullptr, 0);
  std::string out;
  const ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    out = std::string("ok ") + PQcmdStatus(res);
    if (PQntuples(res) > 0 && PQnfields(res) > 0) out += std::string(" ") + PQgetvalue(res, 0, 0);
  } else {
    const char* code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    out = std::string(code ? code : "?") + " " + PQresultErrorMessage(res);
  }
  PQclear(res);
  return out;
}

std::string prepare(Client& c, const std::string& name, const std::string& sql) {
  PGresult* res = PQprepare(c.raw(), name.c_str(), sql.c_str(), 0, nullptr);
  std::string out = PQresultStatus(res) == PGRES_COMMAND_OK ? "ok" : PQresultErrorMessage(res);
  PQclear(res);
  return out;
}

std::string exec_params(Client& c, const std::string& sql) {
  QueryResult r = c.exec_params(sql, {});
  return r.ok ? "ok" : r.sqlstate + " " + r.message;
}

// Breach found by this round (fixed in proxy/net/tenant_relay.cc): what a lease changed was
// judged from the client's message AFTER its bytes were erased from the receive buffer
// (Frame::body points into it), so a Parse sent with its Bind / Execute / Sync in one write (any
// PQexecParams, every JDBC / psycopg3 / asyncpg statement) was read as the bytes that followed:
// a SET through the extended protocol was not noticed, not read back, and stayed on the server
// connection for the next client: tenant 1's `SET default_transaction_read_only = on` made
// tenant 2's INSERT fail with 25006, `SET statement_timeout = 1` its statements with 57014; any
// settable setting leaked the same way (DateStyle, lock_timeout, bytea_output, ...).
TEST(RedteamSession10R5, SetThroughTheExtendedProtocolStaysWithTheClient) {
  auto t1 = pooled().tenant(1);
  auto t2 = pooled().tenant(2);
  ASSERT_EQ(exec_params(*t1, "SET DateStyle = 'SQL, DMY'"), "ok");
  ASSERT_EQ(exec_params(*t1, "SET lock_timeout = 1"), "ok");
  ASSERT_EQ(exec_params(*t1, "SET default_transaction_read_only = on"), "ok");
  EXPECT_EQ(first_value(t2->exec("SHOW DateStyle")), "ISO, MDY");
  EXPECT_EQ(first_value(t2->exec("SHOW lock_timeout")), "0");
  QueryResult ins = t2->exec("INSERT INTO rt5_items (body) VALUES ('globex-rt5')");
  EXPECT_TRUE(ins.ok) << "tenant 1's default_transaction_read_only reached tenant 2: " << describe(ins);
  // ... and they follow tenant 1.
  EXPECT_EQ(first_value(t1->exec("SHOW DateStyle")), "SQL, DMY");
  EXPECT_EQ(first_value(t1->exec("SHOW lock_timeout")), "1ms");
  EXPECT_EQ(t1->exec("INSERT INTO rt5_items (body) VALUES ('acme-rt5')").sqlstate, "25006");
}

// Breach found by this round (fixed in proxy/net/tenant_relay.cc): a named protocol statement
// runs in a later transaction with a Bind alone, which carries no text, so a SET (or LISTEN,
// pg_advisory_lock, DISCARD, RESET; or a SQL EXECUTE of a PREPAREd pg_advisory_lock) prepared
// in one transaction and executed in another was never noticed: `PQprepare(t1, "s", "SET
// statement_timeout = 1")` then `PQexecPrepared(t1, "s")` left 1 ms on the server connection
// for tenant 2 (57014 on its next statements).
TEST(RedteamSession10R5, SetInANamedStatementRunLaterStaysWithTheClient) {
  auto t1 = pooled().tenant(1);
  auto t2 = pooled().tenant(2);
  ASSERT_EQ(prepare(*t1, "s_set", "SET default_transaction_read_only = on"), "ok");
  ASSERT_EQ(prepare(*t1, "s_reset", "RESET default_transaction_read_only"), "ok");
  EXPECT_EQ(exec_prepared(*t1, "s_set"), "ok SET");
  EXPECT_EQ(first_value(t2->exec("SHOW default_transaction_read_only")), "off");
  QueryResult ins = t2->exec("INSERT INTO rt5_items (body) VALUES ('globex-rt5')");
  EXPECT_TRUE(ins.ok) << "tenant 1's default_transaction_read_only reached tenant 2: " << describe(ins);
  EXPECT_EQ(first_value(t1->exec("SHOW default_transaction_read_only")), "on");
  EXPECT_EQ(exec_prepared(*t1, "s_reset"), "ok RESET");
  EXPECT_EQ(first_value(t1->exec("SHOW default_transaction_read_only")), "off");
}

// Waits up to `seconds` for a notification on `channel` (the client's own name for it).
bool notified(Client& c, const std::string& channel, int seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (PQconsumeInput(c.raw()) != 1) return false;
    while (PGnotify* n = PQnotifies(c.raw())) {
      const bool match = channel == n->relname;
      PQfreemem(n);
      if (match) return true;
    }
    pollfd p{PQsocket(c.raw()), POLLIN, 0};
    poll(&p, 1, 50);
  }
  return false;
}

// The same hole for state that must follow the client: a LISTEN prepared in one transaction and
// executed in another (or sent with the extended protocol) must be noticed (the client's listens
// move to rowguard's listener connection: it gets the notifications while holding no backend),
// and an advisory lock taken by a SQL EXECUTE must pin the client to its backend (else the next
// client gets a backend that holds tenant 1's lock). With two server connections, a pinned
// tenant 1 keeps its backend and tenant 2 gets the other one.
TEST(RedteamSession10R5, ListenInANamedStatementRunLaterIsNoticed) {
  auto t1 = pooled().tenant(1);
  auto t1b = pooled().tenant(1);
  ASSERT_EQ(prepare(*t1, "s_listen", "LISTEN rt5chan"), "ok");
  EXPECT_EQ(exec_prepared(*t1, "s_listen"), "ok LISTEN");
  ASSERT_TRUE(t1b->exec("NOTIFY rt5chan").ok);
  EXPECT_TRUE(notified(*t1, "rt5chan", 5)) << "a LISTEN run as a named statement was not noticed";
  // A LISTEN through the extended protocol (Parse / Bind / Execute / Sync in one write).
  auto t3 = pooled().tenant(3);
  auto t3b = pooled().tenant(3);
  ASSERT_EQ(exec_params(*t3, "LISTEN rt5chan3"), "ok");
  ASSERT_TRUE(t3b->exec("NOTIFY rt5chan3").ok);
  EXPECT_TRUE(notified(*t3, "rt5chan3", 5)) << "a LISTEN through the extended protocol was not noticed";
  // Another tenant on the same channel name hears nothing of tenant 1's.
  auto t2 = pooled().tenant(2);
  ASSERT_TRUE(t2->exec("LISTEN rt5chan").ok);
  ASSERT_TRUE(t1b->exec("NOTIFY rt5chan").ok);
  EXPECT_TRUE(notified(*t1, "rt5chan", 5));
  EXPECT_FALSE(notified(*t2, "rt5chan", 1)) << "tenant 2 heard tenant 1's notification";
  t1.reset();
  t1b.reset();
  t3.reset();
  t3b.reset();
  // A session-level advisory lock taken by a SQL EXECUTE (DEALLOCATE unpins only if PostgreSQL
  // says no lock is held).
  auto t4 = pooled().tenant(1);
  ASSERT_TRUE(t4->exec("PREPARE rt5_lock AS SELECT pg_advisory_lock(5)").ok);
  QueryResult locked = t4->exec("EXECUTE rt5_lock");
  ASSERT_TRUE(locked.ok) << describe(locked);
  ASSERT_TRUE(t4->exec("DEALLOCATE rt5_lock").ok);
  const std::string pid4 = first_value(t4->exec("SELECT pg_backend_pid()"));
  QueryResult third = t2->exec("SELECT pg_backend_pid()");
  ASSERT_TRUE(third.ok) << describe(third);
  EXPECT_NE(first_value(third), pid4) << "tenant 2 got the backend that holds tenant 1's advisory lock";
}

// SET SESSION CHARACTERISTICS (default_transaction_read_only / isolation) follows the client.
TEST(RedteamSession10R5, SessionCharacteristicsFollowTheClient) {
  auto t1 = pooled().tenant(1);
  auto t2 = pooled().tenant(2);
  ASSERT_TRUE(t1->exec("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY").ok);
  ASSERT_TRUE(t1->exec("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE").ok);
  QueryResult ins = t2->exec("INSERT INTO rt5_items (body) VALUES ('globex-rt5')");
  EXPECT_TRUE(ins.ok) << describe(ins);
  EXPECT_EQ(first_value(t2->exec("SHOW transaction_isolation")), "read committed");
  EXPECT_EQ(t1->exec("INSERT INTO rt5_items (body) VALUES ('acme-rt5')").sqlstate, "25006");
  EXPECT_EQ(first_value(t1->exec("SHOW transaction_isolation")), "serializable");
}

// Cancel: tenant 1's BackendKeyData stands for the connection it holds NOW. Tenant 1 ran on the
// backend before; tenant 2 runs pg_sleep on it now; tenant 1's CancelRequest (it holds no
// connection) must cancel nothing.
TEST(RedteamSession10R5, CancelOfAClientBetweenTransactionsCancelsNothing) {
  auto t1 = pooled().tenant(1);
  auto t2 = pooled().tenant(2);
  const std::string pid = first_value(t1->exec("SELECT pg_backend_pid()"));
  ASSERT_EQ(PQsendQuery(t2->raw(), "SELECT pg_backend_pid(), pg_sleep(0.4)"), 1);
  auto su = Env::get().direct_super();
  ASSERT_TRUE(wait_until(
      [&] {
        QueryResult r = su->exec("SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(0.4)%' "
                                 "AND pid <> pg_backend_pid()");
        return r.ok && !r.rows.empty();
      },
      std::chrono::seconds(10)));
  PGcancel* cancel = PQgetCancel(t1->raw());
  char err[256];
  EXPECT_EQ(PQcancel(cancel, err, sizeof err), 1) << err;
  PQfreeCancel(cancel);
  PGresult* res = PQgetResult(t2->raw());
  EXPECT_EQ(PQresultStatus(res), PGRES_TUPLES_OK) << "tenant 1 cancelled tenant 2's statement: "
                                                  << PQresultErrorMessage(res);
  if (PQresultStatus(res) == PGRES_TUPLES_OK) EXPECT_EQ(std::string(PQgetvalue(res, 0, 0)), pid) << "(not the same backend)";
  PQclear(res);
  while ((res = PQgetResult(t2->raw())) != nullptr) PQclear(res);
  EXPECT_TRUE(t2->alive());
  EXPECT_TRUE(t1->alive());
}

// rowguard's server names (rg_<n>) are not the client's: tenant 1 cannot Bind, Describe,
// EXECUTE or DEALLOCATE tenant 2's statements on the backend they share, its own "rg_1" is its
// own, and its DEALLOCATE ALL / DISCARD ALL on that backend does not break tenant 2's
// statements.
TEST(RedteamSession10R5, ServerStatementNamesAreNotReachable) {
  auto t1 = pooled().tenant(1);
  auto t2 = pooled().tenant(2);
  ASSERT_EQ(prepare(*t2, "s2", "SELECT name FROM customers ORDER BY id"), "ok");
  ASSERT_EQ(exec_prepared(*t2, "s2"), "ok SELECT 3 globex-hank");
  for (int n = 0; n <= 12; ++n) {
    const std::string name = "rg_" + std::to_string(n);
    const std::string out = exec_prepared(*t1, name);
    EXPECT_EQ(out.substr(0, 5), "26000") << name << " -> " << out;
    EXPECT_FALSE(has_other_tenant_marker(out)) << name << " -> " << out;
    QueryResult e = t1->exec("EXECUTE " + name);
    EXPECT_FALSE(e.ok) << "EXECUTE " << name << " -> " << describe(e);
    EXPECT_TRUE(no_leak(e)) << name;
    // Unknown in the client's namespace (26000), or refused as rowguard's name (42501).
    QueryResult d = t1->exec("DEALLOCATE " + name);
    EXPECT_TRUE(!d.ok && (d.sqlstate == "26000" || d.sqlstate == "42501")) << name << " -> " << describe(d);
  }
  ASSERT_EQ(prepare(*t1, "rg_1", "SELECT name FROM customers ORDER BY id"), "ok");
  EXPECT_EQ(exec_prepared(*t1, "rg_1"), "ok SELECT 3 acme-anvils");
  EXPECT_TRUE(t1->exec("DEALLOCATE ALL").ok);
  EXPECT_EQ(exec_prepared(*t2, "s2"), "ok SELECT 3 globex-hank");
  EXPECT_TRUE(t1->exec("DISCARD ALL").ok);
  EXPECT_EQ(exec_prepared(*t2, "s2"), "ok SELECT 3 globex-hank");
  EXPECT_EQ(exec_prepared(*t1, "rg_1").substr(0, 5), "26000");  // DEALLOCATE ALL dropped it
}

// Setting values are injected into `SELECT pg_catalog.set_config('name', 'value', false)` at
// checkout: quotes and backslashes in a client's value (startup parameter or SET) stay a value of
// that client, and nothing of it reaches the other tenant.
TEST(RedteamSession10R5, HostileSettingValuesStayValues) {
  // libpq conninfo: inside '...', \' is a quote and \\ a backslash.
  Client t1(pooled().rowguard().conninfo("t1") + R"( password=pw1 application_name='x\\\', \'y\')--')");
  auto t2 = pooled().tenant(2);
  EXPECT_EQ(first_value(t1.exec("SHOW application_name")), R"(x\', 'y')--)");
  EXPECT_EQ(first_value(t2->exec("SHOW application_name")), "");
  const std::string hostile = R"(x', 'y'), pg_sleep(1), ('\)";
  std::string quoted;
  for (char c : hostile) quoted += c == '\'' ? std::string("''") : std::string(1, c);
  QueryResult set = t1.exec("SET application_name = '" + quoted + "'");
  EXPECT_TRUE(set.ok) << describe(set);
  for (int i = 0; i < 2; ++i) {  // each a checkout of the shared backend
    EXPECT_EQ(first_value(t2->exec("SHOW application_name")), "");
    EXPECT_EQ(first_value(t1.exec("SHOW application_name")), hostile);
  }
}

// A client that vanishes in the middle of a COPY FROM STDIN or of an extended batch without Sync
// (holding its connection) leaves a pool that serves the next client, and none of its rows.
TEST(RedteamSession10R5, ClientGoneMidCopyOrMidBatchLeavesAWorkingPool) {
  auto su = Env::get().direct_super();
  {
    auto t1 = pooled().tenant(1);
    PGresult* res = PQexec(t1->raw(), "COPY rt5_items (body) FROM STDIN");
    ASSERT_EQ(PQresultStatus(res), PGRES_COPY_IN) << PQresultErrorMessage(res);
    PQclear(res);
    ASSERT_EQ(PQputCopyData(t1->raw(), "acme-partial\n", 13), 1);
    ASSERT_EQ(PQflush(t1->raw()), 0);
  }  // gone without CopyDone
  {
    auto t1 = pooled().tenant(1);
    ASSERT_EQ(PQenterPipelineMode(t1->raw()), 1);
    ASSERT_EQ(PQsendQueryParams(t1->raw(), "SELECT 1", 0, nullptr, nullptr, nullptr, nullptr, 0), 1);
    ASSERT_EQ(PQsendFlushRequest(t1->raw()), 1);
    ASSERT_EQ(PQflush(t1->raw()), 0);
    PGresult* res = PQgetResult(t1->raw());  // answered without a Sync: the batch stays open
    EXPECT_EQ(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);
  }  // gone mid-batch
  auto t2 = pooled().tenant(2);
  auto t3 = pooled().tenant(3);
  EXPECT_TRUE(t2->alive());
  EXPECT_TRUE(t3->alive());
  QueryResult r = su->exec("SELECT count(*) FROM rt5_items WHERE body = 'acme-partial'");
  EXPECT_EQ(first_value(r), "0");
}

// The DISCARD SEQUENCES rowguard sends ahead of a new holder's first message has its answers
// swallowed: when that first message is a lone Sync or Flush (nothing else owed), or a refused
// statement, the connection must not go back to the pool with those answers unread (the next
// client would read them as its own).
TEST(RedteamSession10R5, FirstMessageOfALeaseThatOwesLittleKeepsTheStreamInStep) {
  auto t1 = pooled().tenant(1);
  auto t2 = pooled().tenant(2);
  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(t2->exec("SELECT 1").ok);  // the backend changes hands before each of t1's messages
    ASSERT_EQ(PQenterPipelineMode(t1->raw()), 1);
    ASSERT_EQ(PQsendFlushRequest(t1->raw()), 1);
    ASSERT_EQ(PQflush(t1->raw()), 0);
    ASSERT_TRUE(t2->exec("SELECT 2").ok);
    ASSERT_EQ(PQpipelineSync(t1->raw()), 1);
    PGresult* res = PQgetResult(t1->raw());
    EXPECT_EQ(PQresultStatus(res), PGRES_PIPELINE_SYNC) << PQresultErrorMessage(res);
    PQclear(res);
    ASSERT_EQ(PQexitPipelineMode(t1->raw()), 1) << PQerrorMessage(t1->raw());
    ASSERT_TRUE(t2->exec("SELECT 3").ok);
    EXPECT_TRUE(t1->exec("SELECT * FROM audit_log").refused());
    QueryResult mine = t2->exec("SELECT name FROM customers ORDER BY id LIMIT 1");
    EXPECT_EQ(first_value(mine), "globex-hank");
    EXPECT_EQ(first_value(t1->exec("SELECT name FROM customers ORDER BY id LIMIT 1")), "acme-anvils");
  }
}

// Breach found by this round (fixed in proxy/pool/server_pool.cc, [pool] max_tenant_share): one
// tenant could take every server connection of the pool and keep them, and the other tenants
// waited [pool] query_wait_timeout, then got 53300, for as long as it liked: a transaction left
// open (BEGIN, then nothing) holds its connection; the server's
// idle_in_transaction_session_timeout is PostgreSQL's default 0 unless the DBA set one, and
// [limits] idle_in_transaction_timeout is off by default. Reproducer (size 2): tenant 1 opens
// two sessions and runs BEGIN in each; tenant 2's SELECT 1 got 53300 after 5 s. Now a tenant
// holds at most its share (default 0.75 of size, never all: one connection of two here); its
// next client waits in line without holding up the others, and is served once the tenant is
// under its share again. (A transaction left open is also ended after [pool]
// idle_transaction_timeout, 60 s by default: TxPoolE2e.IdleTransactionTimeout...)
TEST(RedteamSession10R5, OneTenantCannotTakeEveryServerConnection) {
  auto a = pooled().tenant(1);
  auto b = pooled().tenant(1);
  ASSERT_TRUE(a->exec("BEGIN").ok);
  ASSERT_EQ(PQsendQuery(b->raw(), "BEGIN"), 1);  // waits: tenant 1 holds its share
  auto t2 = pooled().tenant(2);
  QueryResult r = t2->exec("SELECT 1");
  EXPECT_TRUE(r.ok) << describe(r);
  // Tenant 1 is under its share again: its waiting client is served.
  ASSERT_TRUE(a->exec("COMMIT").ok);
  bool began = false;
  std::string error;
  while (PGresult* res = PQgetResult(b->raw())) {
    if (PQresultStatus(res) == PGRES_COMMAND_OK) began = true;
    if (PQresultStatus(res) == PGRES_FATAL_ERROR) error = PQresultErrorMessage(res);
    PQclear(res);
  }
  EXPECT_TRUE(began) << error;
  EXPECT_EQ(first_value(b->exec("SELECT 1")), "1");
  EXPECT_TRUE(b->exec("COMMIT").ok);
}

}  // namespace
}  // namespace rowguard::testing::adversarial
