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

}  // namespace
}  // namespace rowguard::testing::adversarial
