// Red team 2, session 8: attacks on the constructs that landed with issue #17 (TABLESAMPLE, XML,
// column definition lists, INSERT without a column list, DEFAULT for the tenant column) and on
// cancel forwarding across a fleet, each on a real PostgreSQL through rowguard. Every attack
// here is refused or confined (the tests pass); they stay as regression tests.
#include <gtest/gtest.h>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

// An array of transaction ids is spelled `_xid` as well as `xid[]`: `'{3}'::_xid`, a column
// definition `AS x(a _xid)` or `PREPARE p(_xid)` made an xid out of text, and age() of it is the
// current transaction counter, which counts every tenant's write transactions (rule
// transaction_ids). Also the array forms of the snapshot types and of the catalog row types.
TEST(Redteam2Session8, ArrayTypeNamesOfTransactionIdsAreRefused) {
  auto t1 = Env::get().tenant(1);
  const std::vector<std::string> attacks = {
      "SELECT age(('{3}'::_xid)[1])",
      "SELECT age(('{3}'::pg_catalog._xid)[1])",
      "SELECT age(CAST('{3}' AS \"_xid\")[1])",
      "SELECT ('{5}'::_xid8)[1]",
      "SELECT '{}'::_txid_snapshot",
      "SELECT '{}'::_pg_snapshot",
      "SELECT age(x.a[1]) FROM json_to_record('{\"a\": [\"3\"]}') AS x(a _xid)",
      "SELECT x.a[1] FROM ROWS FROM (json_to_record('{\"a\": [\"3\"]}') AS (a pg_catalog._xid8)) x",
      "SELECT age(x.a[1]) FROM xmltable('/r' PASSING xml '<r>{3}</r>' COLUMNS a _xid PATH '.') x",
      "SELECT age((('{\"(3)\"}'::_pg_class)[1]).relfrozenxid)",
      "SELECT x.a FROM json_to_record('{\"a\": null}') AS x(a _pg_database)",
  };
  for (const auto& sql : attacks) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.refused()) << sql << " -> " << (r.ok ? "answered " + r.everything() : r.sqlstate + " " + r.message);
  }
  QueryResult p = t1->exec("PREPARE rt2_xid_array(_xid) AS SELECT age($1[1])");
  EXPECT_TRUE(p.refused()) << p.sqlstate << " " << p.message;
  // The element types stay refused, and an ordinary array type is not caught by the rule.
  EXPECT_TRUE(t1->exec("SELECT age('3'::xid)").refused());
  EXPECT_TRUE(t1->exec("SELECT '{1,2}'::_int4").ok);
}

// TABLESAMPLE ... REPEATABLE (seed) picks rows (BERNOULLI) or blocks (SYSTEM) by a hash of
// (block, offset, seed): whether a row of one's own is in the sample for seeds 1..24 is a
// fingerprint of its ctid, computable offline. With it a tenant read the position of its rows
// (the same leak the system_columns rule refuses ctid for): two of its inserts at offsets 18 and
// 22 of block 0 showed that 3 row versions were written between them by someone else. REPEATABLE
// is refused on tenant tables; a sample without it draws a new seed each time.
TEST(Redteam2Session8, RepeatableSampleOfTenantTableIsRefused) {
  auto t1 = Env::get().tenant(1);
  const std::vector<std::string> attacks = {
      "SELECT count(*) FROM orders TABLESAMPLE BERNOULLI (50) REPEATABLE (1) WHERE id = 101",
      "SELECT count(*) FROM public.orders o TABLESAMPLE SYSTEM (50) REPEATABLE (7)",
      "SELECT * FROM customers c JOIN orders o TABLESAMPLE pg_catalog.bernoulli (50) REPEATABLE (2.5) ON o.customer_id = c.id",
      "WITH x AS (SELECT * FROM orders TABLESAMPLE BERNOULLI (50) REPEATABLE (3)) SELECT count(*) FROM x",
      "SELECT (SELECT count(*) FROM customers TABLESAMPLE BERNOULLI (50) REPEATABLE (4))",
  };
  for (const auto& sql : attacks) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.refused()) << sql << " -> " << (r.ok ? "answered " + r.everything() : r.sqlstate + " " + r.message);
  }
  // Without REPEATABLE, and on a global table, sampling stays allowed.
  QueryResult plain = t1->exec("SELECT count(*) FROM orders TABLESAMPLE BERNOULLI (100)");
  EXPECT_TRUE(plain.ok) << plain.message;
  EXPECT_TRUE(no_leak(plain));
  QueryResult global = t1->exec("SELECT count(*) FROM countries TABLESAMPLE SYSTEM (100) REPEATABLE (1)");
  EXPECT_TRUE(global.ok) << global.message;
}

}  // namespace
}  // namespace rowguard::testing::adversarial
