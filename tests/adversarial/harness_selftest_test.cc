// The harness itself: the oracle must see a leak when there is one (a bypass session reads every
// tenant), and tenant 1's ordinary reads must pass it.
#include <gtest/gtest.h>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

TEST(AdversarialHarness, OracleSeesOtherTenantsRowsWhenTheyArePresent) {
  auto dba = Env::get().bypass();
  QueryResult all = dba->exec("SELECT id, name FROM customers ORDER BY id");
  ASSERT_TRUE(all.ok) << all.message;
  EXPECT_FALSE(no_leak(all));
  auto t1 = Env::get().tenant(1);
  QueryResult own = t1->exec("SELECT id, name FROM customers ORDER BY id");
  ASSERT_TRUE(own.ok) << own.message;
  EXPECT_EQ(own.rows.size(), 3u);
  EXPECT_TRUE(no_leak(own));
  QueryResult refused = t1->exec("SELECT * FROM audit_log");
  EXPECT_TRUE(refused.refused()) << refused.sqlstate << " " << refused.message;
  EXPECT_TRUE(t1->alive());
}

}  // namespace
}  // namespace rowguard::testing::adversarial
