// Red team 4, session 9: attacks on what landed on main on 2026-12-05 after 03:00 (every builtin
// classified from pg_proc, the qual guard's grouping and bound, MERGE ... INSERT and COPY FROM
// without a column list named from the schema snapshot, cancel forwarding that waits for the
// server), each on a real PostgreSQL through rowguard. Cases that pass are attacks rowguard holds,
// kept as regression tests.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

std::string first_value(const QueryResult& r) {
  if (!r.ok || r.rows.empty() || r.rows[0].empty() || !r.rows[0][0]) return "<" + r.sqlstate + " " + r.message + ">";
  return *r.rows[0][0];
}

std::string describe(const QueryResult& r) { return r.ok ? "answered " + r.everything() : r.sqlstate + " " + r.message; }

// Breach found by this round (fixed in policy/builtin_function_overrides.txt): the type input
// functions xidin(cstring) and xid8in(cstring) are immutable, so the generator's rules made them
// pure, and a cstring argument is reachable from a literal. `SELECT age(xidin('3'))` answered 733:
// the distance from xid 3 to the next transaction id, i.e. the count of every tenant's write
// transactions (age(xid) is skipped as unreachable by builtin_call, so age() of one argument is
// allowed by its timestamp overloads). The casts '3'::xid / ::xid8 were refused by the
// transaction_ids rule; calling the input function directly was not.
TEST(RedteamSession9R4, TransactionIdInputFunctionsReadNoCounter) {
  auto t1 = Env::get().tenant(1);
  for (const std::string sql : {
           "SELECT age(xidin('3'))",
           "SELECT age(pg_catalog.xidin('3'))",
           "SELECT age(x) FROM (SELECT xidin('3') AS x) s",
           "SELECT (xidin('3')).age",
           "SELECT age(xidin(textout('3')))",
           "SELECT age(xidin('3'::text::cstring))",
           "SELECT xidin('3')",
           "SELECT xid8in('3')",
           "SELECT max(xid8in('3'))",
           "SELECT ('3'::cstring).xidin",
           "SELECT age(xid8in('3'))",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.refused()) << sql << " -> " << describe(r);
  }
  // Spellings that were already refused stay so.
  for (const std::string sql : {
           "SELECT age(a) FROM xmltable('/r' PASSING '<r><a>3</a></r>' COLUMNS a xid PATH 'a') x",
           "SELECT age(jsonb_populate_record(NULL::pg_stat_activity, '{\"backend_xid\":\"3\"}'))",
           "SELECT pg_snapshot_in('3:5:')",
           "SELECT txid_snapshot_in('3:5:')",
           "SELECT mxid_age(xidin('3'))",
           "SELECT age(xidin(cstring('3')))",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.refused()) << sql << " -> " << describe(r);
  }
  // The timestamp overloads of age() stay callable.
  EXPECT_TRUE(t1->exec("SELECT age(now()), age(now(), now())").ok);
}

// Newly allowed builtins (pure or session) applied to a tenant table's rows, or taking SQL text
// through named arguments, show nothing of tenant 2 or 3.
TEST(RedteamSession9R4, NewlyAllowedBuiltinsShowNoOtherTenantsRows) {
  auto t1 = Env::get().tenant(1);
  for (const std::string sql : {
           "SELECT row_to_json(c) FROM customers c",
           "SELECT json_agg(c) FROM customers c",
           "SELECT jsonb_agg(o) FROM orders o",
           "SELECT to_jsonb(c), record_out(c) FROM customers c",
           "SELECT format('%s', c), concat(c), concat_ws(',', c, c.*) FROM customers c",
           "SELECT quote_literal(c), quote_nullable(o) FROM customers c, orders o",
           "SELECT pg_column_size(c), pg_typeof(c), pg_collation_for(c.name) FROM customers c",
           "SELECT array_to_string(array_agg(c.name), ',') FROM customers c",
           "SELECT xmlelement(name x, c.name) FROM customers c",
           "SELECT ts_headline(c.name, to_tsquery('globex')) FROM customers c",
           "SELECT * FROM json_populate_recordset(NULL::customers, (SELECT json_agg(c) FROM customers c))",
           "SELECT (jsonb_populate_record(c, '{\"tenant_id\":2}')).* FROM customers c",
           "SELECT count(*) FROM customers c WHERE to_tsvector(c.name) @@ plainto_tsquery('globex')",
           "SELECT current_query()",
           "SELECT * FROM ts_debug((SELECT string_agg(name, ' ') FROM customers))",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(no_leak(r)) << sql;
    EXPECT_TRUE(r.ok || r.refused()) << sql << " -> " << describe(r);
  }
  // The XML functions (pure) expand no external entity or DTD: PostgreSQL's entity loader gives
  // libxml nothing, so no server file is read.
  for (const std::string sql : {
           "SELECT xpath('/x/text()', xmlparse(document '<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>'))",
           "SELECT * FROM xmltable('/x' PASSING xmlparse(document '<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]>"
           "<x>&e;</x>') COLUMNS v text PATH '.')",
           "SELECT xpath('/x/text()', '<!DOCTYPE x SYSTEM \"file:///etc/passwd\"><x>a</x>'::xml)",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_EQ(r.everything().find("root:"), std::string::npos) << sql << " -> " << describe(r);
  }
  // ts_rewrite(tsquery, text) runs its text as a SELECT: refused with positional and named
  // arguments alike (the parser already rejects `select =>`).
  for (const std::string sql : {
           "SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, name::tsquery FROM customers')",
           "SELECT ts_rewrite(query => 'a'::tsquery, \"select\" => 'SELECT ''a''::tsquery, name::tsquery FROM customers')",
           "SELECT ts_stat('SELECT to_tsvector(name) FROM customers')",
           "SELECT query_to_xml('SELECT * FROM customers', true, false, '')",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_FALSE(r.ok) << sql << " -> " << describe(r);
    EXPECT_TRUE(no_leak(r)) << sql;
  }
}

// The qual guard groups conjuncts that need more than two relations' checks into one CASE. A
// conjunct whose evaluation errors with the row's values (a failed cast) must still only see
// tenant 1's rows, grouped or not, through AND, OR, NOT, JOIN ON, HAVING and nested levels.
TEST(RedteamSession9R4, GroupedGuardsShowNoOtherTenantsValueInErrors) {
  auto t1 = Env::get().tenant(1);
  const std::string three = "FROM customers a, customers b, orders o ";
  for (const std::string& sql : std::vector<std::string>{
           "SELECT 1 " + three + "WHERE (a.name || b.name || o.status)::int > 0 AND a.id > 0",
           "SELECT 1 " + three + "WHERE a.id > 0 AND (a.name || b.name || o.status)::int > 0 AND (o.status || a.name || b.name)::int > 0",
           "SELECT 1 " + three + "WHERE (a.name || b.name || o.status)::int > 0 AND b.id = 0 AND (o.status || b.name || a.name)::numeric > 0",
           "SELECT 1 " + three + "WHERE (a.name || b.name || o.status)::int > 0 OR a.id::text = b.name",
           "SELECT 1 " + three + "WHERE NOT ((a.name || b.name || o.status)::int > 0 AND a.id = b.id)",
           "SELECT 1 FROM customers a JOIN customers b ON (a.name || b.name)::int > 0 JOIN orders o ON (a.name || b.name || o.status)::int > 0",
           "SELECT 1 FROM customers a LEFT JOIN (customers b JOIN orders o ON (b.name || o.status)::int > 0) ON (a.name || b.name || o.status)::int > 0",
           "SELECT a.id " + three + "GROUP BY a.id HAVING max(a.name || b.name || o.status)::int > 0",
           "SELECT (SELECT 1 " + three + "WHERE (a.name || b.name || o.status || x.name)::int > 0 LIMIT 1) FROM customers x",
           "SELECT 1 " + three + "WHERE (SELECT (a.name || b.name || o.status)::int) > 0 AND (a.name || b.name || o.status)::int > 0",
           "SELECT 1 " + three + "WHERE ((a.name || b.name || o.status)::int > 0) IS NOT TRUE",
           "SELECT 1 " + three + "WHERE CASE WHEN a.id > 0 THEN (a.name || b.name || o.status)::int > 0 END",
           "SELECT 1 FROM customers a, customers b, orders o, orders p WHERE (a.name || b.name || o.status)::int > 0 "
           "AND (a.name || b.name || p.status)::int > 0 AND (a.name || o.status || p.status)::int > 0",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(no_leak(r)) << sql;
  }
  // The same through the conditions of writes (three relations: target, source, one more).
  for (const std::string& sql : std::vector<std::string>{
           "MERGE INTO orders o USING customers c JOIN customers d ON true ON (o.status || c.name || d.name)::int > 0 "
           "WHEN MATCHED THEN DO NOTHING",
           "MERGE INTO orders o USING (SELECT c.name AS n FROM customers c, customers d WHERE (c.name || d.name)::int > 0) s "
           "ON o.id > 0 WHEN MATCHED THEN DO NOTHING",
           "MERGE INTO orders o USING customers c ON o.customer_id = c.id "
           "WHEN MATCHED AND (o.status || c.name)::int > 0 THEN DO NOTHING",
           "UPDATE orders o SET status = o.status FROM customers c, customers d WHERE (o.status || c.name || d.name)::int > 0",
           "DELETE FROM orders o USING customers c, customers d WHERE (o.status || c.name || d.name)::int > 0 AND o.id < 0",
       }) {
    QueryResult r = t1->exec("BEGIN");
    r = t1->exec(sql);
    EXPECT_TRUE(no_leak(r)) << sql;
    t1->exec("ROLLBACK");
  }
  // A statement past the bound is refused before it reaches the server: grouping shares a CASE
  // only between conjuncts needing the same set of relations, so conjuncts that each name a
  // different set (sizes 3 .. 150: 11,322 checks) are not shrunk by it. (Conjuncts with a sublink
  // all need every relation's check: they share one CASE, and such a statement is not refused.)
  std::string from = "SELECT 1 FROM customers c0";
  for (int i = 1; i < 150; ++i) from += ", customers c" + std::to_string(i);
  std::string where = " WHERE true";
  std::string args = "c0.id, c1.id";
  for (int i = 2; i < 150; ++i) {
    args += ", c" + std::to_string(i) + ".id";
    where += " AND num_nonnulls(" + args + ") > 0";
  }
  where += " LIMIT 0";
  QueryResult big = t1->exec(from + where);
  EXPECT_TRUE(big.refused()) << describe(big).substr(0, 300);
  EXPECT_TRUE(t1->alive());
}

// MERGE ... INSERT VALUES and COPY FROM without a column list are named from the schema
// snapshot. After DDL that bypasses rowguard (a column added at the end; a column before the
// tenant column dropped and added back, which moves it), the snapshot may be stale: whatever
// rowguard names, the value it checks is the one PostgreSQL stores in the tenant column, so no
// row of tenant 2 is written.
TEST(RedteamSession9R4, StaleSnapshotNamesNoOtherTenantsRow) {
  auto su = Env::get().direct_super();
  su->exec("DELETE FROM customers WHERE id BETWEEN 9950 AND 9999");
  auto t1 = Env::get().tenant(1);
  ASSERT_TRUE(su->exec("ALTER TABLE customers ADD COLUMN rt4_extra int").ok);
  std::vector<std::string> outcomes;
  outcomes.push_back(copy_in(*t1, "COPY customers FROM STDIN", "9951\t2\tstale\t7\n"));
  outcomes.push_back(copy_in(*t1, "COPY customers FROM STDIN", "9952\t1\tstale\t2\n"));
  outcomes.push_back(copy_in(*t1, "COPY customers FROM STDIN WITH (FORMAT csv)", "9953,2,stale,7\n"));
  for (const std::string sql : {
           "MERGE INTO customers c USING (SELECT 9954 AS id) s ON c.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (9954, 2, 'stale', 7)",
           "MERGE INTO customers c USING (SELECT 9955 AS id) s ON c.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (9955, 1, 'stale', 2)",
           "INSERT INTO customers VALUES (9956, 2, 'stale', 7)",
       }) {
    outcomes.push_back(describe(t1->exec(sql)));
  }
  ASSERT_TRUE(su->exec("ALTER TABLE customers DROP COLUMN rt4_extra").ok);
  // The tenant column moves one place to the right of where a stale snapshot has it.
  ASSERT_TRUE(su->exec("ALTER TABLE orders ADD COLUMN rt4_first int").ok);
  outcomes.push_back(copy_in(*t1, "COPY orders FROM STDIN", "9957\t2\n"));
  outcomes.push_back(describe(t1->exec(
      "MERGE INTO orders o USING (SELECT 9958 AS id) s ON o.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (9958, 2)")));
  ASSERT_TRUE(su->exec("ALTER TABLE orders DROP COLUMN rt4_first").ok);
  EXPECT_EQ(first_value(su->exec("SELECT count(*) FROM customers WHERE id BETWEEN 9950 AND 9999 AND tenant_id <> 1")), "0");
  EXPECT_EQ(first_value(su->exec("SELECT count(*) FROM orders WHERE id BETWEEN 9950 AND 9999 AND tenant_id <> 1")), "0");
  for (const auto& o : outcomes) EXPECT_FALSE(has_other_tenant_marker(o)) << o;
  su->exec("DELETE FROM customers WHERE id BETWEEN 9950 AND 9999");
  su->exec("DELETE FROM orders WHERE id BETWEEN 9950 AND 9999");
  EXPECT_TRUE(t1->alive());
}

// MERGE ... WHEN NOT MATCHED THEN INSERT VALUES without a column list: every spelling of
// another tenant's value in the tenant column's position (from the source row, a subquery, a CTE,
// text, arithmetic, a second WHEN clause) is refused; DEFAULT and DEFAULT VALUES get tenant 1.
TEST(RedteamSession9R4, MergeInsertWithoutColumnListNeverWritesAnotherTenant) {
  auto su = Env::get().direct_super();
  su->exec("DELETE FROM customers WHERE id BETWEEN 9960 AND 9989");
  auto t1 = Env::get().tenant(1);
  const std::string m = "MERGE INTO customers c USING (SELECT 9960 + g AS id, 2 AS t FROM generate_series(0, 20) g) s "
                        "ON c.id = s.id ";
  for (const std::string& sql : std::vector<std::string>{
           m + "WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.t, 'rt4m')",
           m + "WHEN NOT MATCHED THEN INSERT VALUES (s.id, (SELECT 2), 'rt4m')",
           m + "WHEN NOT MATCHED THEN INSERT VALUES (s.id, '2', 'rt4m')",
           m + "WHEN NOT MATCHED THEN INSERT VALUES (s.id, 1 + 1, 'rt4m')",
           m + "WHEN NOT MATCHED THEN INSERT OVERRIDING USER VALUE VALUES (s.id, 2, 'rt4m')",
           m + "WHEN NOT MATCHED AND s.id = 9960 THEN INSERT VALUES (s.id, DEFAULT, 'rt4m') "
               "WHEN NOT MATCHED THEN INSERT VALUES (s.id, 2, 'rt4m')",
           "WITH w AS (SELECT 2 AS t) " + m + "WHEN NOT MATCHED THEN INSERT VALUES (s.id, (SELECT t FROM w), 'rt4m')",
           m + "WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.t)",
           m + "WHEN NOT MATCHED THEN INSERT VALUES (s.id, 2, 'rt4m', 'one too many')",
           m + "WHEN NOT MATCHED THEN INSERT VALUES (s.*)",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_FALSE(r.ok) << sql << " -> " << describe(r);
    EXPECT_TRUE(no_leak(r)) << sql;
  }
  QueryResult d = t1->exec(m + "WHEN NOT MATCHED AND s.id < 9963 THEN INSERT VALUES (s.id, DEFAULT, 'rt4m') "
                               "WHEN NOT MATCHED AND s.id = 9963 THEN INSERT DEFAULT VALUES");
  EXPECT_TRUE(d.ok || !d.sqlstate.empty()) << describe(d);  // DEFAULT VALUES: id NOT NULL may refuse
  EXPECT_EQ(first_value(su->exec("SELECT count(*) FROM customers WHERE (id BETWEEN 9960 AND 9989 OR name = 'rt4m') "
                                 "AND tenant_id <> 1")),
            "0");
  su->exec("DELETE FROM customers WHERE id BETWEEN 9960 AND 9989 OR name = 'rt4m'");
}

// Cancel forwarding waits for the server to close the cancel connection. A client that sends
// many cancel requests at once (its own key and unknown keys) holds nothing that keeps another
// tenant's session from answering, and each cancel connection is closed promptly.
TEST(RedteamSession9R4, CancelFloodDoesNotWedgeOtherSessions) {
  auto t1 = Env::get().tenant(1);
  auto t2 = Env::get().tenant(2);
  PGcancel* own = PQgetCancel(t1->raw());
  ASSERT_NE(own, nullptr);
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> senders;
  for (int i = 0; i < 16; ++i) {
    senders.emplace_back([own] {
      char err[256];
      for (int k = 0; k < 10; ++k) PQcancel(own, err, sizeof err);
    });
  }
  QueryResult during = t2->exec("SELECT count(*) FROM customers");
  for (auto& s : senders) s.join();
  const auto took = std::chrono::steady_clock::now() - start;
  PQfreeCancel(own);
  EXPECT_TRUE(during.ok) << describe(during);
  EXPECT_LT(took, std::chrono::seconds(9)) << "160 cancels took "
                                           << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
  EXPECT_TRUE(t1->alive());
  EXPECT_TRUE(t2->alive());

  // 200 cancel connections with unknown keys, all open at once and never closed by the client:
  // rowguard closes every one (nothing to forward) and keeps answering.
  RowguardProcess& rg = Env::get().rowguard();
  std::vector<int> fds;
  for (int i = 0; i < 200; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(rg.port()));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    const uint32_t msg[4] = {htonl(16), htonl(80877102), htonl(static_cast<uint32_t>(1000 + i)), htonl(0x5eed0000u + i)};
    ASSERT_EQ(write(fd, msg, sizeof msg), static_cast<ssize_t>(sizeof msg));
    fds.push_back(fd);
  }
  int closed = 0;
  for (int fd : fds) {
    pollfd p{fd, POLLIN, 0};
    char c;
    if (poll(&p, 1, 5000) == 1 && read(fd, &c, 1) <= 0) ++closed;
    close(fd);
  }
  EXPECT_EQ(closed, 200);
  EXPECT_TRUE(t2->alive());
}

}  // namespace
}  // namespace rowguard::testing::adversarial
