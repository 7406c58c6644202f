// Red team 3, session 9: attacks on what landed since 2026-12-03 (TABLESAMPLE BERNOULLI as a
// fenced filtered subquery, INSERT without a column list / DEFAULT for the tenant column, the SET
// allowlist and SET TIME ZONE INTERVAL, the new builtins, the catalog masks, startup parameters)
// and on rowguard's own resources, each on a real PostgreSQL through rowguard. The cases that pass
// are attacks rowguard holds, kept as regression tests; a DISABLED_ case is a breach found by this
// round whose fix belongs to a file of another helper (its comment is the reproducer).
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <cstring>
#include <string>
#include <vector>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

std::string first_value(const QueryResult& r) {
  if (!r.ok || r.rows.empty() || r.rows[0].empty() || !r.rows[0][0]) return "<" + r.sqlstate + " " + r.message + ">";
  return *r.rows[0][0];
}

// Sends a protocol 3.0 StartupMessage with `params` to rowguard and returns what answers it: "R"
// (an authentication request), "E <sqlstate>" (an ErrorResponse), or "?" (anything else / closed).
std::string startup_answer(int port, const std::vector<std::pair<std::string, std::string>>& params) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "?";
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "?";
  }
  std::string body;
  for (uint32_t v : {htonl(0), htonl(196608)}) body.append(reinterpret_cast<const char*>(&v), 4);
  for (const auto& [k, v] : params) body.append(k).append(1, '\0').append(v).append(1, '\0');
  body.push_back('\0');
  const uint32_t len = htonl(static_cast<uint32_t>(body.size()));
  body.replace(0, 4, reinterpret_cast<const char*>(&len), 4);
  if (write(fd, body.data(), body.size()) != static_cast<ssize_t>(body.size())) {
    close(fd);
    return "?";
  }
  std::string in;
  char buf[4096];
  for (;;) {
    if (in.size() >= 5) {
      uint32_t n;
      std::memcpy(&n, in.data() + 1, 4);
      if (in.size() >= 1 + ntohl(n)) break;
    }
    ssize_t got = read(fd, buf, sizeof buf);
    if (got <= 0) break;
    in.append(buf, static_cast<size_t>(got));
  }
  close(fd);
  if (in.empty()) return "?";
  if (in[0] == 'R') return "R";
  if (in[0] != 'E') return "?";
  for (size_t i = 5; i < in.size() && in[i] != '\0';) {  // fields: type byte, text, NUL
    const char type = in[i];
    const size_t end = in.find('\0', i + 1);
    if (end == std::string::npos) break;
    if (type == 'C') return "E " + in.substr(i + 1, end - i - 1);
    i = end + 1;
  }
  return "E";
}

std::string describe(const QueryResult& r) { return r.ok ? "answered " + r.everything() : r.sqlstate + " " + r.message; }

// INSERT without a column list: rowguard names the columns from the schema snapshot, so every
// spelling of another tenant's value in the tenant column's position is refused, DEFAULT and a
// missing tenant column get the session tenant, and a * expansion (positions unknowable) is
// refused. Nothing of tenant 2 is written.
TEST(RedteamSession9, InsertWithoutColumnListNeverWritesAnotherTenant) {
  auto su = Env::get().direct_super();
  su->exec("DELETE FROM customers WHERE id BETWEEN 9900 AND 9930");
  su->exec("DELETE FROM orders WHERE id BETWEEN 9900 AND 9930");
  auto t1 = Env::get().tenant(1);
  const std::vector<std::string> attacks = {
      "INSERT INTO customers VALUES (9901, 2, 'rt9')",
      "INSERT INTO customers VALUES (9902, '2', 'rt9')",
      "INSERT INTO customers VALUES (9903, (SELECT 2), 'rt9')",
      "INSERT INTO customers VALUES (9904, '2'::int, 'rt9')",
      "INSERT INTO customers VALUES (9905, 1, 'rt9'), (9906, 2, 'rt9')",
      "INSERT INTO customers VALUES (9907, ' 1', 'rt9')",
      "INSERT INTO customers VALUES (9908, '01', 'rt9')",
      "INSERT INTO customers VALUES (9909, 1.0, 'rt9')",
      "INSERT INTO customers SELECT 9910, 2, 'rt9'",
      "INSERT INTO customers SELECT 9911, '1', 'rt9' UNION ALL SELECT 9912, '2', 'rt9'",
      "INSERT INTO customers (VALUES (9913, 2, 'rt9'))",
      "WITH x AS (SELECT 9914, 2, 'rt9') INSERT INTO customers SELECT * FROM x",
      "INSERT INTO customers SELECT * FROM (VALUES (9915, 2, 'rt9')) v",
      "INSERT INTO customers OVERRIDING USER VALUE VALUES (9916, 2, 'rt9')",
      "INSERT INTO orders VALUES (9917, 2)",
      "INSERT INTO customers VALUES (9918, 2, 'rt9', 'one too many')",
  };
  for (const auto& sql : attacks) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.refused()) << sql << " -> " << describe(r);
  }
  // DEFAULT for the tenant column, and a VALUES row shorter than the table, get tenant 1.
  QueryResult d = t1->exec("INSERT INTO customers VALUES (9920, DEFAULT, 'rt9') RETURNING tenant_id");
  EXPECT_EQ(first_value(d), "1");
  QueryResult s = t1->exec("INSERT INTO orders VALUES (9921) RETURNING tenant_id");
  EXPECT_TRUE(!s.ok || first_value(s) == "1") << describe(s);  // amount is NOT NULL: refused by PostgreSQL
  QueryResult m = t1->exec("INSERT INTO customers VALUES (9922, 1, 'rt9'), (9923, DEFAULT, 'rt9') RETURNING tenant_id");
  ASSERT_TRUE(m.ok) << m.message;
  for (const auto& row : m.rows) EXPECT_EQ(row[0].value_or("NULL"), "1");
  EXPECT_EQ(first_value(su->exec("SELECT count(*) FROM customers WHERE id BETWEEN 9900 AND 9930 AND tenant_id <> 1")), "0");
  EXPECT_EQ(first_value(su->exec("SELECT count(*) FROM orders WHERE id BETWEEN 9900 AND 9930 AND tenant_id <> 1")), "0");
  su->exec("DELETE FROM customers WHERE id BETWEEN 9900 AND 9930");
  su->exec("DELETE FROM orders WHERE id BETWEEN 9900 AND 9930");
}

// A column alias list renames a sampled (or plain) table's columns: `customers AS c(tenant_id)`
// calls the id column tenant_id. The tenant check must still read the real tenant column (inside
// the fenced subquery of the sample, by the table's own name), and a user qual on the renamed
// column only sees tenant 1's rows.
TEST(RedteamSession9, ColumnAliasesOfSampledTablesDoNotMoveTheTenantCheck) {
  auto t1 = Env::get().tenant(1);
  const std::vector<std::string> reads = {
      "SELECT * FROM customers AS c(tenant_id, id) WHERE c.id = 2",
      "SELECT * FROM customers c(a, tenant_id) TABLESAMPLE BERNOULLI (100) WHERE c.tenant_id = 2",
      "SELECT * FROM customers c(tenant_id) TABLESAMPLE BERNOULLI (100)",
      "SELECT c.* FROM customers c TABLESAMPLE BERNOULLI (100) NATURAL JOIN customers d",
      "SELECT * FROM (customers c TABLESAMPLE BERNOULLI (100) JOIN orders o USING (tenant_id)) j",
      "SELECT * FROM customers c TABLESAMPLE BERNOULLI ((SELECT count(*) FROM customers c2))",
      "SELECT * FROM orders o LEFT JOIN customers c(x, tenant_id) TABLESAMPLE BERNOULLI (100) ON c.x = o.customer_id",
      "SELECT c FROM customers c TABLESAMPLE BERNOULLI (100)",
      "SELECT row_to_json(c) FROM customers c(tenant_id) TABLESAMPLE BERNOULLI (100)",
  };
  for (const auto& sql : reads) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(no_leak(r)) << sql;
    EXPECT_TRUE(r.ok || r.refused()) << sql << " -> " << describe(r);
  }
  // Writes through a sampled source touch no row of tenant 2.
  auto su = Env::get().direct_super();
  const std::string before = first_value(su->exec("SELECT string_agg(name || status, ',' ORDER BY o.id) FROM orders o "
                                                  "JOIN customers c ON c.id = o.customer_id WHERE o.tenant_id = 2"));
  for (const std::string sql : {
           "DELETE FROM orders USING customers c TABLESAMPLE BERNOULLI (100) WHERE c.id = 201 RETURNING c.*",
           "MERGE INTO orders o USING customers c TABLESAMPLE BERNOULLI (100) ON c.id = o.customer_id "
           "WHEN MATCHED AND o.id = 201 THEN UPDATE SET status = c.name",
           "UPDATE orders o SET status = c.name FROM customers c TABLESAMPLE BERNOULLI (100) WHERE o.id = 202"}) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(no_leak(r)) << sql;
  }
  EXPECT_EQ(first_value(su->exec("SELECT string_agg(name || status, ',' ORDER BY o.id) FROM orders o "
                                 "JOIN customers c ON c.id = o.customer_id WHERE o.tenant_id = 2")),
            before);
}

// SET TIME ZONE INTERVAL: only '[+-]HH:MM' [HOUR TO MINUTE] is rewritten; a value that tries to
// close the quoted setting text and add another setting, and other interval shapes, are refused.
// The search_path and standard_conforming_strings spellings keep their pinned values.
TEST(RedteamSession9, SetTimeZoneIntervalCannotSmuggleAnotherSetting) {
  auto t1 = Env::get().tenant(1);
  for (const std::string sql : {
           "SET TIME ZONE INTERVAL '+05:30'' search_path=x' HOUR TO MINUTE",
           "SET TIME ZONE INTERVAL '+05:30'', public' HOUR TO MINUTE",
           "SET TIME ZONE INTERVAL '-5:3'",
           "SET TIME ZONE INTERVAL '+005:30'",
           "SET TIME ZONE INTERVAL '+05:30' HOUR",
           "SET TIME ZONE INTERVAL '+05:30' DAY TO SECOND",
           "SET TIME ZONE INTERVAL(2) '+05:30'",
           "SET TIME ZONE INTERVAL '1 day'",
           "SET TIME ZONE INTERVAL '+05:30'::text",
           "SET search_path = public, pg_temp",
           "SET search_path = 'public, pg_temp'",
           "SET standard_conforming_strings = off",
           "SET \"TimeZone\" = 'UTC'",
           "SET TRANSACTION SNAPSHOT '00000003-00000002-1'",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.refused()) << sql << " -> " << describe(r);
  }
  ASSERT_TRUE(t1->exec("SET TIME ZONE INTERVAL '+05:30' HOUR TO MINUTE").ok);
  EXPECT_EQ(first_value(t1->exec("SHOW timezone")), "<+05:30>-05:30");
  // A quote inside an ordinary zone value stays inside it (PostgreSQL rejects the zone).
  QueryResult q = t1->exec("SET timezone = 'x'', search_path = ''y'");
  EXPECT_FALSE(q.ok);
  for (const std::string sql : {"SET search_path = E'public'", "SET search_path = \"public\"",
                                "SET standard_conforming_strings = 'ON'", "RESET standard_conforming_strings",
                                "SET search_path TO DEFAULT"}) {
    EXPECT_TRUE(t1->exec(sql).ok) << sql;
  }
  EXPECT_EQ(first_value(t1->exec("SHOW search_path")), "public");
  EXPECT_EQ(first_value(t1->exec("SHOW standard_conforming_strings")), "on");
}

// array_in(cstring, oid, int4) is on the builtin allowlist. With the oid of xid (28) or xid8
// (5069) it makes an array of transaction ids without naming the type the transaction_ids rule
// refuses; the value is an anyarray PostgreSQL cannot subscript, unnest, compare or pass to age()
// (it cannot resolve its element type), so it reads no transaction counter. Kept so that a new
// allowed function taking anyarray (or a cast from it) is noticed.
TEST(RedteamSession9, ArrayInOfTransactionIdsReadsNoCounter) {
  auto t1 = Env::get().tenant(1);
  for (const std::string sql : {
           "SELECT age(unnest(array_in('{5}', 28, -1)))",
           "SELECT x FROM unnest(array_in('{5}', 28, -1)) x",
           "SELECT (array_in('{5}', 28, -1))[1]",
           "SELECT array_in('{5}', 28, -1) = array_in('{6}', 28, -1)",
           "SELECT array_in('{5}', 28, -1)::text::xid[]",
           "SELECT age((array_in('{5}'::cstring, 'xid'::regtype, -1))[1])",
           "SELECT max(x) FROM unnest(array_in('{5}', 5069, -1)) x",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_FALSE(r.ok) << sql << " -> " << describe(r);
  }
}

// The catalogs tenants may read are masked where they count every tenant's rows: pg_class's
// reltuples / relpages after ANALYZE, statistics views, sequences' values.
TEST(RedteamSession9, CatalogCountersOfTenantTablesAreMasked) {
  auto su = Env::get().direct_super();
  ASSERT_TRUE(su->exec("ANALYZE customers").ok);
  auto t1 = Env::get().tenant(1);
  QueryResult r = t1->exec("SELECT reltuples::int, relpages FROM pg_class WHERE relname = 'customers'");
  ASSERT_TRUE(r.ok) << r.message;
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0][0].value_or("NULL"), "-1");
  EXPECT_EQ(r.rows[0][1].value_or("NULL"), "0");
  for (const std::string sql : {
           "SELECT most_common_vals FROM pg_stats WHERE tablename = 'customers'",
           "SELECT * FROM pg_catalog.pg_statistic",
           "SELECT * FROM pg_stats_ext",
           "SELECT n_tup_ins FROM pg_stat_user_tables",
           "SELECT last_value FROM pg_sequences",
           "SELECT pg_sequence_last_value('audit_log_id_seq')",
           "SELECT * FROM pg_stat_database",
           "SELECT (SELECT c FROM pg_class c WHERE relname = 'customers')",
       }) {
    QueryResult q = t1->exec(sql);
    if (q.ok) {
      EXPECT_EQ(q.everything().find("globex"), std::string::npos) << sql;
      EXPECT_TRUE(sql.find("SELECT c FROM pg_class") != std::string::npos) << sql << " -> " << describe(q);
    } else {
      EXPECT_TRUE(q.refused()) << sql << " -> " << describe(q);
    }
  }
}

// Startup parameters: "_pq_." protocol options are answered in NegotiateProtocolVersion and never
// reach PostgreSQL; settings outside the startup allowlist ("options", search_path, role) are
// refused, whatever their case, and a converting client_encoding too.
TEST(RedteamSession9, StartupParametersOutsideTheAllowlistAreRefused) {
  RowguardProcess& rg = Env::get().rowguard();
  const std::string base = "host=127.0.0.1 port=" + std::to_string(rg.port()) + " user=t1 password=pw1 dbname=appdb sslmode=disable";
  for (const std::string extra : {" options='-c search_path=evil'", " options='-c row_security=off'",
                                  " client_encoding=LATIN1", " replication=database"}) {
    PGconn* c = PQconnectdb((base + extra).c_str());
    EXPECT_NE(PQstatus(c), CONNECTION_OK) << extra;
    PQfinish(c);
  }
  PGconn* ok = PQconnectdb((base + " application_name=rt9").c_str());
  ASSERT_EQ(PQstatus(ok), CONNECTION_OK) << PQerrorMessage(ok);
  PGresult* r = PQexec(ok, "SHOW search_path");
  ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK);
  EXPECT_STREQ(PQgetvalue(r, 0, 0), "public");
  PQclear(r);
  PQfinish(ok);
}

// client_min_messages below NOTICE sends the session's own DEBUG and LOG messages to the client.
// At debug5 PostgreSQL reports every transaction's state, "CommitTransaction(1) ...
// xid/subid/cid: 797/1/1": the transaction id of each write, which counts the write transactions
// of every tenant (the leak rule transaction_ids refuses xid casts for: red team 3 read ids 797 and
// 798 of two consecutive writes of its own); at log it gets LOG lines such as log_lock_waits'
// "Process holding the lock: <pid>" of other sessions. Only info, notice, warning and error are
// allowed, in SET and as a startup parameter.
TEST(RedteamSession9, ClientMinMessagesBelowNoticeIsRefused) {
  auto t1 = Env::get().tenant(1);
  std::vector<std::string> notices;
  PQsetNoticeReceiver(
      t1->raw(),
      [](void* arg, const PGresult* r) {
        static_cast<std::vector<std::string>*>(arg)->push_back(PQresultErrorMessage(r));
      },
      &notices);
  for (const std::string sql : {
           "SET client_min_messages = debug5", "SET client_min_messages TO 'DEBUG1'", "SET client_min_messages = debug",
           "SET LOCAL client_min_messages TO debug2", "SET SESSION client_min_messages = log",
           "SET client_min_messages = 'Log'", "SET client_min_messages = 5", "SET client_min_messages = notice, debug5",
           "SET \"client_min_messages\" = debug3",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.refused()) << sql << " -> " << describe(r);
  }
  for (const std::string sql : {"SET client_min_messages = warning", "SET client_min_messages TO 'NOTICE'",
                                "SET LOCAL client_min_messages = error", "SET client_min_messages = info",
                                "RESET client_min_messages", "SET client_min_messages TO DEFAULT"}) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.ok) << sql << " -> " << describe(r);
  }
  auto su = Env::get().direct_super();
  su->exec("DELETE FROM customers WHERE id = 9950");
  ASSERT_TRUE(t1->exec("BEGIN").ok);
  ASSERT_TRUE(t1->exec("INSERT INTO customers (id, name) VALUES (9950, 'rt9-debug')").ok);
  ASSERT_TRUE(t1->exec("COMMIT").ok);
  ASSERT_TRUE(t1->exec("DELETE FROM customers WHERE id = 9950").ok);
  for (const auto& n : notices) EXPECT_EQ(n.find("xid/subid/cid"), std::string::npos) << n;
  EXPECT_EQ(first_value(t1->exec("SHOW client_min_messages")), "notice");

  RowguardProcess& rg = Env::get().rowguard();
  const std::string base = "host=127.0.0.1 port=" + std::to_string(rg.port()) + " user=t1 password=pw1 dbname=appdb sslmode=disable";
  // libpq sends no client_min_messages startup parameter of its own: a raw StartupMessage.
  for (const std::string level : {"debug5", "DEBUG1", "log"}) {
    EXPECT_EQ(startup_answer(rg.port(), {{"user", "t1"}, {"database", "appdb"}, {"client_min_messages", level}}),
              "E 42501")
        << level;
  }
  EXPECT_EQ(startup_answer(rg.port(), {{"user", "t1"}, {"database", "appdb"}, {"client_min_messages", "warning"}}),
            "R")  // the authentication request: the parameter passed
      << "warning";
}

// A non-recursive CTE is not visible in its own body nor in the bodies of the CTEs before it:
// there the name is the table. Each such read is filtered; pg_toast (every tenant's toasted
// values) and a catalog-schema spelling of a policy table are refused.
TEST(RedteamSession9, CteShadowingAndToastNamesResolveAsPostgreSQLDoes) {
  auto t1 = Env::get().tenant(1);
  for (const std::string sql : {
           "WITH customers AS (SELECT * FROM customers) SELECT id, tenant_id, name FROM customers",
           "WITH a AS (SELECT * FROM customers), customers AS (SELECT 1 AS id, 1 AS tenant_id) SELECT * FROM a",
           "WITH customers AS MATERIALIZED (SELECT * FROM customers) SELECT * FROM customers",
           "WITH x AS (WITH customers AS (SELECT 1) SELECT * FROM customers), y AS (SELECT * FROM customers) "
           "SELECT * FROM y",
       }) {
    QueryResult r = t1->exec(sql);
    ASSERT_TRUE(r.ok) << sql << " -> " << describe(r);
    EXPECT_TRUE(no_leak(r)) << sql;
    EXPECT_FALSE(r.rows.empty()) << sql;
  }
  auto su = Env::get().direct_super();
  const std::string toast = first_value(su->exec("SELECT reltoastrelid::regclass::text FROM pg_class WHERE relname = 'customers'"));
  ASSERT_EQ(toast.rfind("pg_toast.", 0), 0u) << toast;
  for (const std::string& sql : std::vector<std::string>{"SELECT * FROM " + toast, "SELECT * FROM pg_catalog.customers",
                                "SELECT * FROM information_schema.customers", "SELECT * FROM pg_temp.customers"}) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.refused()) << sql << " -> " << describe(r);
  }
}

// COPY ... HEADER: PostgreSQL reads 'OFF' / 'False' (any case) as no header, the copy checker
// only the lowercase words; a first line it took for a header would go unchecked. These spellings
// are refused (the deparser writes the value as an identifier, which reads back lowercased, and the
// re-parse check fails), so no line of tenant 2 is written.
TEST(RedteamSession9, CopyHeaderSpellingsCannotHideAFirstRow) {
  auto su = Env::get().direct_super();
  su->exec("DELETE FROM customers WHERE id = 9960");
  auto t1 = Env::get().tenant(1);
  for (const std::string opt : {"(HEADER 'OFF')", "(HEADER 'False')", "(HEADER \"Off\")", "(FORMAT csv, HEADER 'FALSE')"}) {
    const std::string sql = "COPY customers (id, tenant_id, name) FROM STDIN WITH " + opt;
    PGresult* r = PQexec(t1->raw(), sql.c_str());
    if (PQresultStatus(r) == PGRES_COPY_IN) {
      const std::string line = opt.find("csv") != std::string::npos ? "9960,2,rt9-header\n" : "9960\t2\trt9-header\n";
      PQputCopyData(t1->raw(), line.data(), static_cast<int>(line.size()));
      PQputCopyEnd(t1->raw(), nullptr);
      PQclear(r);
      while ((r = PQgetResult(t1->raw())) != nullptr) PQclear(r);
      ADD_FAILURE() << sql << ": COPY started";
    } else {
      const char* st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      EXPECT_STREQ(st ? st : "", "42501") << sql << " " << PQresultErrorMessage(r);
      PQclear(r);
    }
  }
  EXPECT_EQ(first_value(su->exec("SELECT count(*) FROM customers WHERE id = 9960")), "0");
  su->exec("DELETE FROM customers WHERE id = 9960");
}

// BREACH (red team 3, unfixed: policy/catalogs.cc). The pg_class / pg_database masks read their
// transaction-id columns as '0'::xid: still of type xid, so an untyped literal or parameter
// unified with one (COALESCE, CASE, NULLIF, ARRAY, VALUES) becomes an xid of the tenant's choosing
// without any cast the transaction_ids rule sees, and age() of it is the transaction counter,
// which counts every tenant's write transactions:
//   SELECT age(COALESCE('3', relfrozenxid)) FROM pg_class LIMIT 1   -> 805 (txid_current() 808)
// also with a Parse of "SELECT age(COALESCE($1, relfrozenxid)) ..." and $1 untyped (OID 0), as
// drivers send it. Enable when the masks give those columns a type that is not xid (or drop them).
TEST(RedteamSession9, MaskedXidColumnsMakeNoTransactionIdOfALiteral) {
  auto t1 = Env::get().tenant(1);
  for (const std::string sql : {
           "SELECT age(COALESCE('3', relfrozenxid)) FROM pg_class LIMIT 1",
           "SELECT age(CASE WHEN false THEN relfrozenxid ELSE '3' END) FROM pg_class LIMIT 1",
           "SELECT age(NULLIF('3', relfrozenxid)) FROM pg_class LIMIT 1",
           "SELECT age((ARRAY[relminmxid, '3'])[2]) FROM pg_class LIMIT 1",
           "SELECT age(COALESCE('3', datfrozenxid)) FROM pg_database LIMIT 1",
       }) {
    QueryResult r = t1->exec(sql);
    // The counter minus 3 would be a large number; a constant (or a refusal / an error) is fine.
    EXPECT_TRUE(!r.ok || first_value(r) == "2147483647" || first_value(r) == "0") << sql << " -> " << describe(r);
  }
  QueryResult p = t1->exec_params("SELECT age(COALESCE($1, relfrozenxid)) FROM pg_class LIMIT 1", {"3"});
  EXPECT_TRUE(!p.ok || first_value(p) == "2147483647") << describe(p);
}

// Red team 3, fixed by redacting server errors and notices (proxy/session/session_server.cc
// redact_error_body). A row-lock wait that ends in an error carried PostgreSQL's context line
// "while updating tuple (0,23) in relation \"customers\"" (also locking / deleting / checking
// uniqueness of ...): the ctid of the tenant's own row, which the system_columns rule refuses
// because it counts the rows other tenants wrote before it. A tenant makes the wait itself with a
// second session (lock_timeout, statement_timeout or its own cancel end it). A deadlock between
// its two sessions adds "Process 32484 waits for ShareLock on transaction 806; blocked by process
// 32490. ...": transaction ids (rule transaction_ids) and real backend pids.
TEST(RedteamSession9, LockWaitErrorsShowNoTuplePositionOrTransactionId) {
  auto holder = Env::get().tenant(1);
  auto waiter = Env::get().tenant(1);
  ASSERT_TRUE(holder->exec("BEGIN").ok);
  ASSERT_TRUE(holder->exec("UPDATE customers SET name = name WHERE id = 101").ok);
  ASSERT_TRUE(waiter->exec("SET lock_timeout = '100ms'").ok);
  for (const std::string sql : {"UPDATE customers SET name = name WHERE id = 101",
                                "SELECT id FROM customers WHERE id = 101 FOR UPDATE",
                                "DELETE FROM customers WHERE id = 101 AND name <> ''"}) {
    QueryResult r = waiter->exec(sql);
    ASSERT_FALSE(r.ok) << sql;
    EXPECT_EQ(r.sqlstate, "55P03") << sql << " " << r.message;
    EXPECT_EQ(r.message.find("tuple ("), std::string::npos) << sql << " -> " << r.message;
  }
  ASSERT_TRUE(holder->exec("ROLLBACK").ok);
  // A deadlock between the tenant's own two sessions.
  ASSERT_TRUE(waiter->exec("RESET lock_timeout").ok);
  ASSERT_TRUE(holder->exec("BEGIN").ok);
  ASSERT_TRUE(waiter->exec("BEGIN").ok);
  ASSERT_TRUE(holder->exec("UPDATE customers SET name = name WHERE id = 101").ok);
  ASSERT_TRUE(waiter->exec("UPDATE customers SET name = name WHERE id = 102").ok);
  ASSERT_EQ(PQsendQuery(holder->raw(), "UPDATE customers SET name = name WHERE id = 102"), 1);
  auto su = Env::get().direct_super();
  ASSERT_TRUE(wait_until([&] {
    QueryResult w = su->exec("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                             "AND query LIKE '%WHERE id = 102%'");
    return w.ok && !w.rows.empty() && w.rows[0][0] == std::optional<std::string>("1");
  }, std::chrono::seconds(10)));
  QueryResult dead = waiter->exec("UPDATE customers SET name = name WHERE id = 101");
  std::string held_side;
  while (PGresult* r = PQgetResult(holder->raw())) {
    if (PQresultStatus(r) == PGRES_FATAL_ERROR) held_side = PQresultErrorMessage(r);
    PQclear(r);
  }
  const std::string both = dead.message + held_side;
  EXPECT_NE(both.find("deadlock"), std::string::npos) << both;
  EXPECT_FALSE(std::regex_search(both, std::regex("transaction [0-9]"))) << both;
  EXPECT_FALSE(std::regex_search(both, std::regex("[Pp]rocess [0-9]"))) << both;
  EXPECT_EQ(both.find("tuple ("), std::string::npos) << both;
  holder->exec("ROLLBACK");
  waiter->exec("ROLLBACK");
}

// BREACH (red team 3, unfixed: sqlrewrite/qual_guard.cc). The qual guard wraps each user conjunct
// that may reference every relation of its level (a subquery, an unqualified column) in
// CASE WHEN <the tenant check of every tenant relation of the level> THEN ... END, so the
// rewritten text grows with relations x conjuncts:
//   SELECT 1 FROM customers c0, ..., customers c{R-1} WHERE (SELECT 1) = 1 AND ... (C times)
// R = C = 300 (10 kB) became a 27 MB statement and took ~10 s; R = C = 1000 (35 kB) took rowguard
// from 47 MB to 2.97 GB resident and ~110 s of a parse-pool thread (the session's
// message_timeout closed it); a ~70 kB statement needs ~12 GB: the proxy is OOM-killed and every
// tenant's session drops. README "Statement size and depth" says nothing is quadratic. Enable
// when the guard's size is linear (or bounded and refused with 42501).
TEST(RedteamSession9, GuardOfManyRelationsAndConjunctsStaysLinear) {
  const int n = 300;
  std::string from, where;
  for (int i = 0; i < n; ++i) {
    from += (i ? ", customers c" : "customers c") + std::to_string(i);
    where += (i ? " AND " : "") + std::string("(SELECT 1) = 1");
  }
  // 'x'::int fails at PostgreSQL's parse analysis: no 300-way join is planned.
  const std::string sql = "SELECT 1 FROM " + from + " WHERE " + where + " AND 1 = 'x'::int LIMIT 0";
  auto t1 = Env::get().tenant(1);
  const auto start = std::chrono::steady_clock::now();
  QueryResult r = t1->exec(sql);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(r.refused() || r.sqlstate == "22P02") << describe(r);
  EXPECT_LT(seconds, 3.0) << "a 10 kB statement took " << seconds << " s to rewrite";
}

}  // namespace
}  // namespace rowguard::testing::adversarial
