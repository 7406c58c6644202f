// Red team, session 8: attacks on what landed with advisory locks per tenant and session SETs,
// each on a real PostgreSQL through rowguard. Every attack here failed (the tests pass); they
// stay as regression tests.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

std::string one_value(const QueryResult& r) {
  if (!r.ok || r.rows.size() != 1 || r.rows[0].size() != 1 || !r.rows[0][0]) return "<" + r.sqlstate + " " + r.message + ">";
  return *r.rows[0][0];
}

// The advisory locks PostgreSQL holds for the backend of `c`, as "<bigint key>:<objsubid>".
std::string held_keys(Client& su, const std::string& pid) {
  return one_value(su.exec(
      "SELECT coalesce(string_agg(((classid::int8 << 32) | objid::int8)::text || ':' || objsubid, ','), '') "
      "FROM pg_locks WHERE locktype = 'advisory' AND pid = " + pid));
}

bool sqlrewrite_safe(const std::string& enc) { return enc == "UTF8" || enc == "SQL_ASCII" || enc.starts_with("LATIN") || enc.starts_with("WIN125"); }

bool holds_raw(const std::string& held) {
  for (const char* raw : {"42:1", "30064771080:2"}) {
    std::string h = "," + held + ",";
    if (h.find(std::string(",") + raw + ",") != std::string::npos) return true;
  }
  return false;
}

// Every syntax that may reach pg_advisory_lock's key 42 (or the two-key (7, 8)) unmapped: each
// is refused or takes a lock of the tenant's own key space, never the raw key.
TEST(RedteamSession8, AdvisoryLockSyntaxesNeverTakeRawKey) {
  auto su = Env::get().direct_super();
  auto t2 = Env::get().tenant(2);
  const std::string pid = one_value(t2->exec("SELECT pg_backend_pid()"));
  const std::vector<std::string> attacks = {
      "SELECT pg_advisory_lock(42)",
      "SELECT pg_catalog.pg_advisory_lock(42)",
      "SELECT \"pg_catalog\".\"pg_advisory_lock\"(42)",
      "SELECT PG_CATALOG.PG_ADVISORY_LOCK(42)",
      "SELECT appdb.pg_catalog.pg_advisory_lock(42)",
      "SELECT * FROM pg_advisory_lock(42)",
      "SELECT * FROM pg_catalog.pg_advisory_lock(42) AS l(x)",
      "SELECT * FROM ROWS FROM (pg_advisory_lock(42), pg_advisory_lock(7, 8))",
      "SELECT * FROM orders o, LATERAL pg_advisory_lock(42) l LIMIT 1",
      "SELECT * FROM orders o, LATERAL (SELECT pg_advisory_lock(42)) l LIMIT 1",
      "WITH x AS (SELECT pg_advisory_lock(42)) SELECT * FROM x",
      "WITH x AS MATERIALIZED (SELECT pg_advisory_lock(7, 8)) SELECT * FROM x",
      "SELECT (SELECT pg_advisory_lock(42))",
      "SELECT EXISTS (SELECT pg_advisory_lock(42))",
      "SELECT 1 WHERE 1 IN (SELECT 1 FROM pg_advisory_lock(42))",
      "VALUES (pg_advisory_lock(42))",
      "SELECT * FROM (VALUES (pg_advisory_lock(42))) v",
      "SELECT pg_advisory_lock(pg_advisory_lock(42)::text::int8 + 42)",
      "SELECT pg_advisory_lock(x) FROM (VALUES (42::int8)) v(x)",
      "SELECT pg_advisory_lock(42::int2)",
      "SELECT pg_advisory_lock('42')",
      "SELECT pg_advisory_lock(42.0)",
      "SELECT pg_advisory_lock(42::oid)",
      "SELECT pg_advisory_lock(7, 8)",
      "SELECT pg_advisory_lock(7::int8, 8::int8)",
      "SELECT pg_advisory_lock(VARIADIC ARRAY[42])",
      "SELECT pg_advisory_lock(key => 42)",
      "SELECT pg_advisory_lock(42) OVER ()",
      "SELECT pg_advisory_lock(42) FILTER (WHERE true)",
      "SELECT (42::int8).pg_advisory_lock",
      "SELECT (42::int8).pg_catalog.pg_advisory_lock",
      "SELECT CASE WHEN true THEN pg_advisory_lock(42) END",
      "SELECT COALESCE(pg_advisory_lock(42))",
      "SELECT ARRAY[pg_advisory_lock(42)]",
      "SELECT ROW(pg_advisory_lock(42))",
      "SELECT 1 ORDER BY pg_advisory_lock(42)::text",
      "SELECT count(*) FROM orders GROUP BY pg_advisory_lock(42)::text",
      "SELECT 1 FROM orders HAVING pg_advisory_lock(42) IS NULL",
      "SELECT * FROM orders WHERE id = 1 OR pg_advisory_lock(42) IS NULL",
      "SELECT 1 FROM orders JOIN customers ON pg_advisory_lock(42) IS NULL LIMIT 1",
      "UPDATE orders SET amount = amount WHERE id = 201 RETURNING pg_advisory_lock(42)",
      "DELETE FROM orders WHERE id = -1 OR pg_advisory_lock(42) IS NULL AND false RETURNING pg_advisory_lock(42)",
      "INSERT INTO orders (id, tenant_id, customer_id, amount, status) VALUES (9901, 2, 201, 1, 'new') "
      "ON CONFLICT (tenant_id, id) DO UPDATE SET amount = 1 WHERE pg_advisory_lock(42) IS NULL RETURNING pg_advisory_lock(7, 8)",
      "INSERT INTO orders (id, tenant_id, customer_id, amount, status) SELECT 9902, 2, 201, pg_advisory_lock(42)::text::int + 1, 'new' WHERE false",
      "MERGE INTO orders o USING (SELECT 201 AS id) s ON o.id = s.id WHEN MATCHED AND pg_advisory_lock(42) IS NULL THEN DO NOTHING",
      "EXPLAIN ANALYZE SELECT pg_advisory_lock(42)",
      "EXPLAIN (ANALYZE, COSTS OFF) SELECT * FROM pg_advisory_lock(42)",
      "SELECT * FROM XMLTABLE('/a' PASSING '<a/>' COLUMNS x int8 DEFAULT pg_advisory_lock(42))",
      "SELECT * FROM JSON_TABLE('{}'::jsonb, '$' COLUMNS (x int))",
      "SELECT 'pg_advisory_lock'::regproc",
      "SELECT 'pg_advisory_lock(bigint)'::regprocedure",
      "SELECT pg_get_functiondef('pg_advisory_lock(bigint)'::regprocedure)",
      "DO $$ BEGIN PERFORM pg_advisory_lock(42); END $$",
      "CALL pg_advisory_lock(42)",
      "SELECT pg_advisory_lock(42) FROM generate_series(1, 1)",
      "SELECT pg_advisory_lock(y) FROM generate_series(42, 42) y",
      "SELECT pg_advisory_lock(42) \\gexec",
      "SELECT 1; SELECT pg_advisory_lock(42)",
      "SELECT pg_advisory_lock(-9223372036854775808)",
      "SELECT pg_advisory_lock(9223372036854775807 + 0)",
  };
  for (const auto& a : attacks) {
    QueryResult r = t2->exec(a);
    const std::string held = held_keys(*su, pid);
    EXPECT_FALSE(holds_raw(held)) << a << " -> ok=" << r.ok << " " << r.sqlstate << " " << r.message << " held " << held;
    t2->exec("ROLLBACK");
    t2->exec("SELECT pg_advisory_unlock_all()");
    // A refused statement that got through would leave a raw lock behind: unlocked by su's view check above.
  }
  // Prepared statements and cursors.
  for (const auto& seq : std::vector<std::vector<std::string>>{
           {"PREPARE p1 AS SELECT pg_advisory_lock(42)", "EXECUTE p1"},
           {"PREPARE p2(int8) AS SELECT pg_advisory_lock($1)", "EXECUTE p2(42)"},
           {"PREPARE p3(int4, int4) AS SELECT pg_advisory_lock($1, $2)", "EXECUTE p3(7, 8)"},
           {"BEGIN", "DECLARE c CURSOR FOR SELECT pg_advisory_lock(42)", "FETCH c"},
           {"BEGIN", "DECLARE c2 CURSOR WITH HOLD FOR SELECT pg_advisory_lock(42)", "COMMIT", "FETCH c2"},
       }) {
    std::string trace;
    for (const auto& s : seq) {
      QueryResult r = t2->exec(s);
      trace += s + " -> " + (r.ok ? "ok" : r.sqlstate + " " + r.message) + "; ";
    }
    const std::string held = held_keys(*su, pid);
    EXPECT_FALSE(holds_raw(held)) << trace << " held " << held;
    t2->exec("ROLLBACK");
    t2->exec("SELECT pg_advisory_unlock_all()");
  }
  // Extended protocol, typed parameters.
  for (const auto& [sql, params] : std::vector<std::pair<std::string, std::vector<std::optional<std::string>>>>{
           {"SELECT pg_advisory_lock($1)", {"42"}},
           {"SELECT pg_advisory_lock($1::int8)", {"42"}},
           {"SELECT pg_advisory_lock($1::text::int8)", {"42"}},
           {"SELECT pg_advisory_lock($1, $2)", {"7", "8"}},
           {"SELECT pg_advisory_lock($1::int8, $2::int4)", {"7", "8"}},
           {"SELECT pg_advisory_lock($1)", {std::nullopt}},
       }) {
    QueryResult r = t2->exec_params(sql, params);
    const std::string held = held_keys(*su, pid);
    EXPECT_FALSE(holds_raw(held)) << sql << " -> " << r.sqlstate << " " << r.message << " held " << held;
    t2->exec("SELECT pg_advisory_unlock_all()");
  }
  EXPECT_TRUE(t2->alive());
}

// COPY (query) TO STDOUT: the query is walked like a SELECT (checked on a connection of its own,
// left in COPY OUT state).
TEST(RedteamSession8, AdvisoryLockInCopyQueryIsMapped) {
  auto su = Env::get().direct_super();
  auto t2 = Env::get().tenant(2);
  const std::string pid = one_value(t2->exec("SELECT pg_backend_pid()"));
  PGresult* r = PQexec(t2->raw(), "COPY (SELECT pg_advisory_lock(42), pg_advisory_lock(7, 8)) TO STDOUT");
  const std::string status = PQresStatus(PQresultStatus(r));
  PQclear(r);
  const std::string held = held_keys(*su, pid);
  EXPECT_FALSE(holds_raw(held)) << status << " held " << held;
}

// The rewrite cache serves tenants 1 and 2 on one worker the same statement shapes (exact text,
// constant templates, keys equal to either tenant's value, quoted/E'' strings, parameters): the
// key each session holds upstream is always its own tenant's mapping of the key.
TEST(RedteamSession8, AdvisoryKeysThroughSharedCacheAreEachTenantsOwn) {
  auto su = Env::get().direct_super();
  auto t1 = one_worker().tenant(1);
  auto t2 = one_worker().tenant(2);
  const std::string p1 = one_value(t1->exec("SELECT pg_backend_pid()"));
  const std::string p2 = one_value(t2->exec("SELECT pg_backend_pid()"));
  auto mapped = [&](const std::string& tenant, const std::string& key_text) {
    return one_value(su->exec("SELECT ('x' || left(encode(sha256(convert_to('" + tenant +
                              "', 'UTF8') || decode('00', 'hex') || convert_to(" + key_text +
                              ", 'UTF8')), 'hex'), 16))::bit(64)::int8"));
  };
  struct Case {
    std::string sql;   // with K for the key
    std::string keytext;  // SQL computing the key text ('a:' || to_hex(k)) with K
  };
  const std::vector<Case> cases = {
      {"SELECT pg_advisory_lock(K)", "'a:' || to_hex(K::int8)"},
      {"SELECT pg_advisory_lock('K')", "'a:' || to_hex(K::int8)"},
      {"SELECT pg_advisory_lock(E'K')", "'a:' || to_hex(K::int8)"},
      {"SELECT pg_advisory_lock(K, K)", "'b:' || to_hex(K::int4) || ':' || to_hex(K::int4)"},
      {"SELECT pg_advisory_lock('K', 1)", "'b:' || to_hex(K::int4) || ':' || to_hex(1)"},
      {"SELECT pg_advisory_lock(2, 'K')", "'b:' || to_hex(2) || ':' || to_hex(K::int4)"},
      {"SELECT pg_advisory_lock(K) WHERE '1' = '1' AND 2 = 2", "'a:' || to_hex(K::int8)"},
      {"SELECT pg_advisory_lock(K), count(*) FROM orders WHERE id > K", "'a:' || to_hex(K::int8)"},
  };
  for (const std::string k : {"1", "2", "3", "42", "0", "12", "21"}) {
    for (const auto& c : cases) {
      auto sub = [&](std::string t) {
        for (size_t at; (at = t.find('K')) != std::string::npos;) t.replace(at, 1, k);
        return t;
      };
      const std::string sql = sub(c.sql);
      const std::string kt = sub(c.keytext);
      for (int round = 0; round < 2; ++round) {
        for (auto [client, pid, tenant] : {std::tuple{t1.get(), p1, std::string("1")}, std::tuple{t2.get(), p2, std::string("2")}}) {
          QueryResult r = client->exec(sql);
          ASSERT_TRUE(r.ok) << sql << " " << r.message;
          EXPECT_EQ(held_keys(*su, pid), mapped(tenant, kt) + ":1") << "tenant " << tenant << ": " << sql;
          ASSERT_TRUE(client->exec("SELECT pg_advisory_unlock_all()").ok);
        }
      }
      for (auto [client, pid, tenant] : {std::tuple{t2.get(), p2, std::string("2")}, std::tuple{t1.get(), p1, std::string("1")}}) {
        QueryResult r = client->exec_params("SELECT pg_advisory_lock($1)", {k});
        ASSERT_TRUE(r.ok) << r.message;
        EXPECT_EQ(held_keys(*su, pid), mapped(tenant, "'a:' || to_hex(" + k + "::int8)") + ":1") << "tenant " << tenant << " $1=" << k;
        ASSERT_TRUE(client->exec("SELECT pg_advisory_unlock_all()").ok);
      }
    }
  }
}

// PostgreSQL rounds an integer setting to its base unit (guc.c parse_int: rint after the unit
// conversion), so statement_timeout = '0.4', '400us' or '0.5' (rint) is 0: no timeout; '0.00049min' is first
// rounded to whole seconds (convert_to_base_unit), 0. The ceiling must
// compare the rounded value, in SET and in startup parameters.
TEST(RedteamSession8, SubUnitTimeoutsThatRoundToZeroAreRefused) {
  auto t2 = Env::get().tenant(2);
  ASSERT_TRUE(t2->exec("SET statement_timeout = '30s'").ok);
  ASSERT_TRUE(t2->exec("SET lock_timeout = '30s'").ok);
  ASSERT_TRUE(t2->exec("SET idle_in_transaction_session_timeout = '30s'").ok);
  for (const char* sql : {"SET statement_timeout = '0.4'", "SET statement_timeout = '400us'",
                          "SET statement_timeout = 0.49", "SET lock_timeout = '0.2ms'",
                          "SET idle_in_transaction_session_timeout = '499us'", "SET statement_timeout = '4e-1'",
                          "SET statement_timeout = '0.5'", "SET statement_timeout = '0.00049min'"}) {
    QueryResult r = t2->exec(sql);
    EXPECT_TRUE(r.refused()) << sql << ": " << r.sqlstate << " " << r.message;
    for (const char* name : {"statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"}) {
      EXPECT_EQ(one_value(t2->exec(std::string("SHOW ") + name)), "30s") << sql << " changed " << name;
    }
  }
  // Rounded up to 1 ms: a limit, allowed.
  EXPECT_TRUE(t2->exec("SET statement_timeout = '0.6'").ok);
  EXPECT_EQ(one_value(t2->exec("SHOW statement_timeout")), "1ms");
  EXPECT_TRUE(t2->exec("RESET statement_timeout").ok);
}

// RewriteHandle's reused result objects: sessions of two tenants on one worker run constant-
// template hits (spliced into the reused objects) concurrently, with long statements (> 2 kB,
// rewritten on the parse pool) and EXECUTEs of prepared statements in between. Every row each
// session gets is its own tenant's.
TEST(RedteamSession8, ConcurrentSplicesOnOneWorkerStayPerTenant) {
  std::atomic<int> wrong{0};
  std::atomic<int> failed{0};
  std::string first_problem;
  std::mutex mu;
  auto run = [&](Client* c, int tenant) {
    const std::string own = std::to_string(tenant);
    std::string pad;
    for (int i = 0; i < 300; ++i) pad += " AND id <> " + std::to_string(100000 + i);
    if (!c->exec("PREPARE rt8(int) AS SELECT tenant_id FROM orders WHERE id > $1").ok) ++failed;
    for (int i = 0; i < 300; ++i) {
      std::string sql;
      switch (i % 4) {
        case 0: sql = "SELECT tenant_id FROM orders WHERE id > " + std::to_string(i % 7); break;
        case 1: sql = "SELECT tenant_id FROM orders WHERE id > " + std::to_string(i % 5) + pad; break;
        case 2: sql = "EXECUTE rt8(" + std::to_string(i % 3) + ")"; break;
        default: sql = "SELECT tenant_id FROM orders WHERE status <> 'x" + std::to_string(i) + "' AND id > 0"; break;
      }
      QueryResult r = c->exec(sql);
      if (!r.ok) {
        ++failed;
        std::lock_guard lock(mu);
        if (first_problem.empty()) first_problem = sql.substr(0, 80) + ": " + r.message;
        continue;
      }
      if (r.rows.empty()) ++wrong;
      for (const auto& row : r.rows) {
        if (!row[0] || *row[0] != own) {
          ++wrong;
          std::lock_guard lock(mu);
          if (first_problem.empty()) first_problem = "tenant " + own + " got " + row[0].value_or("NULL") + " for " + sql.substr(0, 80);
        }
      }
    }
  };
  // Connected on this thread: one_worker() may start its rowguard here, and the child gets SIGTERM
  // when the thread that started it ends (PR_SET_PDEATHSIG follows the thread).
  std::vector<std::unique_ptr<Client>> clients;
  for (int t : {1, 2, 1, 2}) clients.push_back(one_worker().tenant(t));
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back(run, clients[i].get(), i % 2 + 1);
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0) << first_problem;
  EXPECT_EQ(failed.load(), 0) << first_problem;
}

// Statement names under a converting client encoding. In LATIN1 the bytes C3 A9 are two
// characters (UTF8 C3 83 C2 A9): rowguard read the name "s"x61 + C3 A9 as UTF8 "s"x61 + "é" (63
// bytes), the server as "s"x61 + "Ã©", cut to "s"x61 + "Ã" (63 bytes) — the name rowguard read
// for "s"x61 + C3 83. The EXECUTE below, checked as the harmless SELECT, ran the INSERT and wrote
// a row of tenant 2. Encodings the server converts are refused now; the attack stays harmless.
TEST(RedteamSession8, ConvertedClientEncodingCannotSplitStatementNames) {
  auto su = Env::get().direct_super();
  su->exec("DELETE FROM orders WHERE id = 9143");
  auto t1 = Env::get().tenant(1);
  for (const char* set : {"SET client_encoding = 'LATIN1'", "SET NAMES 'WIN1252'", "SET client_encoding = 'euc_jp'",
                          "SET client_encoding TO 'ISO-8859-1'"}) {
    EXPECT_TRUE(t1->exec(set).refused()) << set;
  }
  EXPECT_EQ(one_value(t1->exec("SHOW client_encoding")), "UTF8");
  auto q = [](const std::string& n) { return "\"" + n + "\""; };
  const std::string s61(61, 's');
  const std::string n1 = s61 + "\xC3\xA9", n2 = s61 + "\xC3\x83";
  for (const std::string& step : {
           "PREPARE " + q(n1) + "(text, int) AS SELECT $1, $2",
           "DEALLOCATE " + q(n2),
           "PREPARE " + q(n2) + "(int, int) AS INSERT INTO orders (tenant_id, id, amount) VALUES ($1, $2, 1.00)",
           "EXECUTE " + q(n1) + "('2', 9143)",
       }) {
    t1->exec(step);
  }
  EXPECT_EQ(one_value(su->exec("SELECT coalesce(string_agg(tenant_id::text, ','), '') FROM orders WHERE id = 9143")), "");
  su->exec("DELETE FROM orders WHERE id = 9143");
}

// Session SETs: no spelling, transaction trick or catalog write turns standard_conforming_strings
// off, moves search_path, or sets an encoding that hides quotes, on a session that stays open.
TEST(RedteamSession8, SessionSettingsStayPinned) {
  const std::vector<std::vector<std::string>> attacks = {
      {"SET standard_conforming_strings = off"},
      {"SET standard_conforming_strings = 0"},
      {"SET standard_conforming_strings = 'of'"},
      {"SET standard_conforming_strings = 'on '"},
      {"SET standard_conforming_strings = false"},
      {"SET standard_conforming_strings = 'no'"},
      {"SET \"Standard_Conforming_Strings\" = off"},
      {"SET standard_conforming_strings TO DEFAULT"},
      {"RESET standard_conforming_strings"},
      {"SET SESSION standard_conforming_strings FROM CURRENT"},
      {"BEGIN", "SAVEPOINT a", "SET LOCAL standard_conforming_strings = on", "ROLLBACK TO SAVEPOINT a", "COMMIT"},
      {"SELECT set_config('standard_conforming_strings', 'off', false)"},
      {"SELECT pg_catalog.set_config('search_path', 'pg_temp, public', false)"},
      {"UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'"},
      {"UPDATE pg_catalog.pg_settings SET setting = 'pg_temp, public' WHERE name = 'search_path'"},
      {"WITH u AS (UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings' RETURNING 1) SELECT * FROM u"},
      {"SET search_path = public, pg_temp"},
      {"SET search_path = pg_temp"},
      {"SET search_path = 'public '"},
      {"SET search_path = '$user', public"},
      {"SET search_path = 'public,pg_temp'"},
      {"SET search_path = \"public,pg_temp\""},
      {"SET search_path = PUBLIC"},
      {"SET search_path = 'pg_catalog'"},
      {"SET SCHEMA 'pg_temp'"},
      {"SET SCHEMA 'public'"},
      {"SET \"SEARCH_PATH\" = pg_temp"},
      {"SET search_path TO DEFAULT"},
      {"RESET search_path"},
      {"SET client_encoding = 'SJIS'"},
      {"SET client_encoding = 's-j-i-s'"},
      {"SET client_encoding = 'BIG5'"},
      {"SET client_encoding = 'GBK'"},
      {"SET client_encoding = 'win932'"},
      {"SET client_encoding = 'mskanji'"},
      {"SET client_encoding = 'shift_jis_2004'"},
      {"SET client_encoding = 35"},
      {"SET NAMES 'SJIS'"},
      {"SET NAMES 'GB18030'"},
      {"SET client_encoding = DEFAULT"},
      {"RESET client_encoding"},
      {"SET \"Client_Encoding\" = 'SJIS'"},
      {"SET TIME ZONE INTERVAL '+05:30' HOUR TO MINUTE"},
      {"SET TIME ZONE INTERVAL '+05:30'' ; SET search_path = pg_temp; --' HOUR TO MINUTE"},
      {"SET TIME ZONE INTERVAL E'+0\\5:30' HOUR TO MINUTE"},
      {"SET TIME ZONE INTERVAL '+\u0665:30' HOUR TO MINUTE"},
      {"SET TIME ZONE INTERVAL '+05:30' DAY TO MINUTE"},
      {"SET TIME ZONE INTERVAL '+99:59'"},
      {"SET TIME ZONE INTERVAL '-05:30'::text"},
      {"SET timezone = INTERVAL '+05:30'"},
      {"SET timezone = '+05:30'::interval"},
      {"SET TRANSACTION SNAPSHOT '00000003-00000001-1'"},
      {"SET SESSION AUTHORIZATION DEFAULT"},
      {"SET ROLE NONE"},
      {"SET row_security = off"},
      {"SET xmloption = document"},
      {"SET rowguard.tenant = '1'"},
      {"RESET ALL"},
      {"DISCARD ALL"},
      {"SET LOCAL search_path = pg_temp"},
      {"ALTER ROLE CURRENT_USER SET search_path = pg_temp"},
      {"SET backslash_quote = on"},
  };
  for (const auto& seq : attacks) {
    auto t2 = Env::get().tenant(2);
    std::string trace;
    for (const auto& s : seq) {
      QueryResult r = t2->exec(s);
      trace += s + " -> " + (r.ok ? "ok" : r.sqlstate + " " + r.message.substr(0, 100)) + "; ";
    }
    if (!t2->alive()) {  // closed by rowguard: fine (fail closed)
      continue;
    }
    const std::string scs = one_value(t2->exec("SHOW standard_conforming_strings"));
    const std::string path = one_value(t2->exec("SHOW search_path"));
    const std::string enc = one_value(t2->exec("SHOW client_encoding"));
    const std::string tz = one_value(t2->exec("SHOW timezone"));
    EXPECT_EQ(scs, "on") << trace;
    EXPECT_EQ(path, "public") << trace;
    EXPECT_TRUE(sqlrewrite_safe(enc)) << trace << " " << enc;
  }
}

}  // namespace
}  // namespace rowguard::testing::adversarial

namespace rowguard::testing::adversarial {
namespace {

// The mirror of ConvertedClientEncodingCannotSplitStatementNames: on a database whose encoding
// is not UTF8 the server converts the UTF8 text rowguard checked and cuts names at 63 bytes of
// its own encoding, so two names rowguard holds apart can be one name upstream. A tenant session
// on such a database is refused at login with a reason, before any statement runs.
TEST(RedteamSession8, TenantSessionOnANonUtf8DatabaseIsRefused) {
  auto su = Env::get().direct_super();
  QueryResult created = su->exec(
      "CREATE DATABASE rg_latin1 TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'");
  ASSERT_TRUE(created.ok || created.sqlstate == "42P04") << created.message;  // 42P04: exists (a rerun)
  const std::string config = replace_all(example_config_template(), "upstream_database = \"appdb\"",
                                         "upstream_database = \"rg_latin1\"");
  ASSERT_NE(config, example_config_template());
  RowguardProcess rg(config, Env::get().pg());
  std::string error;
  try {
    Client t1(rg.conninfo("t1") + " password=pw1");
    QueryResult r = t1.exec("SELECT pg_catalog.current_setting('server_encoding')");
    error = "connected; server_encoding " + (r.ok && !r.rows.empty() && r.rows[0][0] ? *r.rows[0][0] : r.message);
  } catch (const std::exception& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("server_encoding is LATIN1"), std::string::npos) << error;
  // The bypass user's traffic is not rewritten: it may use such a database.
  Client dba(rg.conninfo("dba") + " password=pwdba");
  EXPECT_TRUE(dba.alive());
}

}  // namespace
}  // namespace rowguard::testing::adversarial
