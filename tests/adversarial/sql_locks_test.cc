// Row locks on global tables: a tenant's FOR UPDATE / SHARE on a shared row would block other
// tenants and let NOWAIT / SKIP LOCKED observe their activity (red-team finding). Refused.
#include <gtest/gtest.h>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

TEST(AdversarialSqlLocks, GlobalRowsCannotBeLockedByTenants) {
  auto t1 = Env::get().tenant(1);
  auto su = Env::get().direct_super();  // probes the row lock straight on PostgreSQL
  for (const char* sql : {
           "SELECT code FROM countries WHERE code = 'DE' FOR UPDATE",
           "SELECT code FROM countries WHERE code = 'DE' FOR NO KEY UPDATE",
           "SELECT code FROM countries WHERE code = 'DE' FOR SHARE",
           "SELECT code FROM countries WHERE code = 'DE' FOR KEY SHARE",
           "SELECT o.id, k.code FROM orders o, countries k WHERE k.code = 'DE' FOR UPDATE OF o, k",
           "SELECT * FROM (SELECT code FROM countries) s FOR UPDATE OF s",
           "SELECT * FROM orders o JOIN (SELECT code FROM countries) s ON true FOR SHARE",
       }) {
    SCOPED_TRACE(sql);
    ASSERT_TRUE(t1->exec("BEGIN").ok);
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.refused()) << r.sqlstate << " " << r.message;
    // Whatever happened, nobody else is blocked on the shared row.
    QueryResult probe = su->exec("SELECT code FROM countries WHERE code = 'DE' FOR UPDATE NOWAIT");
    EXPECT_TRUE(probe.ok) << "tenant 1 holds a lock on a global row: " << probe.sqlstate << " " << probe.message;
    t1->exec("ROLLBACK");
    ASSERT_TRUE(t1->alive());
  }
  // Locking the tenant's own rows beside an unlocked read of a global table still works.
  ASSERT_TRUE(t1->exec("BEGIN").ok);
  QueryResult own = t1->exec("SELECT id FROM orders WHERE status IN (SELECT 'paid' FROM countries) FOR UPDATE");
  EXPECT_TRUE(own.ok) << own.message;
  EXPECT_TRUE(no_leak(own));
  t1->exec("ROLLBACK");
}

}  // namespace
}  // namespace rowguard::testing::adversarial
