// EXPLAIN's numbers come from every tenant's rows: the planner's row estimates (`rows=`, "Plan
// Rows") and costs are computed from pg_statistic over the whole table, so `EXPLAIN SELECT … WHERE
// status = 'x'` tells tenant 1 how common 'x' is among all tenants. Tenants get COSTS OFF only.
#include <gtest/gtest.h>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

std::string joined(const QueryResult& r) {
  std::string out;
  for (const auto& row : r.rows) {
    for (const auto& v : row) out += (v ? *v : std::string("NULL")) + "\n";
  }
  return out;
}

TEST(SqlExplain, EstimatesAndCostsFromOtherTenantsRowsAreRefused) {
  auto t1 = Env::get().tenant(1);
  for (const char* sql : {
           "EXPLAIN SELECT * FROM orders WHERE status = 'paid'",
           "EXPLAIN (FORMAT JSON) SELECT * FROM orders WHERE status = 'paid'",
           "EXPLAIN (COSTS) SELECT * FROM orders",
           "EXPLAIN (COSTS OFF, COSTS ON) SELECT * FROM orders",
           "EXPLAIN (COSTS OFF, BUFFERS) SELECT * FROM orders",
           "EXPLAIN (COSTS OFF, SUMMARY) SELECT * FROM orders",
           "EXPLAIN VERBOSE SELECT * FROM customers",
           "PREPARE ex AS SELECT * FROM orders; EXPLAIN EXECUTE ex",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.refused()) << sql << ": sqlstate " << r.sqlstate << " " << joined(r);
    EXPECT_EQ(joined(r).find("rows="), std::string::npos) << sql;
    EXPECT_TRUE(no_leak(r)) << sql;
    t1->exec("DEALLOCATE ALL");
  }
  EXPECT_TRUE(t1->alive());
}

TEST(SqlExplain, ThePlanWithoutCostsWorks) {
  auto t1 = Env::get().tenant(1);
  for (const char* sql : {
           "EXPLAIN (COSTS OFF) SELECT * FROM orders WHERE status = 'paid'",
           "EXPLAIN (COSTS false, VERBOSE, FORMAT JSON) SELECT * FROM orders",
           "EXPLAIN (COSTS 0) SELECT * FROM orders",
       }) {
    QueryResult r = t1->exec(sql);
    ASSERT_TRUE(r.ok) << sql << ": " << r.message;
    const std::string plan = joined(r);
    EXPECT_NE(plan.find("tenant_id"), std::string::npos) << sql << "\n" << plan;
    EXPECT_EQ(plan.find("rows="), std::string::npos) << sql << "\n" << plan;
    EXPECT_EQ(plan.find("Plan Rows"), std::string::npos) << sql << "\n" << plan;
    EXPECT_EQ(plan.find("Total Cost"), std::string::npos) << sql << "\n" << plan;
  }
}

}  // namespace
}  // namespace rowguard::testing::adversarial
