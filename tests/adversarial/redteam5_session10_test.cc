// Red team 5, session 10: attacks on transaction pooling ([pool] mode = "transaction") and on
// the schema snapshot that keeps the policy version when a read finds the same content. Every
// case runs on a real PostgreSQL through a rowguard whose pool has two server connections on one
// worker, so that the attacker's and the bystander's transactions run on the same backend, one
// after the other (two connections: a pinned client keeps one, the others share the second). Cases that pass are attacks rowguard holds, kept as regression tests.
#include <gtest/gtest.h>
#include <libpq-fe.h>

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

// The same hole for the state that pins: a LISTEN prepared in one transaction and executed in
// another must pin the client to its backend (else the next client gets a backend that listens
// on tenant 1's channel). With two server connections, a pinned tenant 1 keeps its backend and
// tenant 2 gets the other one.
TEST(RedteamSession10R5, ListenInANamedStatementRunLaterPins) {
  auto t1 = pooled().tenant(1);
  auto t2 = pooled().tenant(2);
  ASSERT_EQ(prepare(*t1, "s_listen", "LISTEN rt5chan"), "ok");
  EXPECT_EQ(exec_prepared(*t1, "s_listen"), "ok LISTEN");
  const std::string pid1 = first_value(t1->exec("SELECT pg_backend_pid()"));
  const std::string pid2 = first_value(t2->exec("SELECT pg_backend_pid()"));
  EXPECT_NE(pid1, pid2) << "tenant 2 got the backend that listens for tenant 1";
  EXPECT_EQ(first_value(t1->exec("SELECT pg_backend_pid()")), pid1) << "tenant 1 was not pinned";
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

}  // namespace
}  // namespace rowguard::testing::adversarial
