// EXPLAIN and other tenants' rows (issue #13, item 2). The numbers come from every tenant's rows:
// the planner's row estimates (`rows=`, "Plan Rows") and costs are computed from pg_statistic over
// the whole table, so `EXPLAIN SELECT … WHERE status = 'x'` tells tenant 1 how common 'x' is among
// all tenants; ANALYZE counts their rows. Without numbers (COSTS OFF) the plan's shape still
// leaks: a value common among other tenants makes the planner give up an index on that column
// (Seq Scan), a value no tenant has keeps it (Index Scan / Bitmap), so comparing two plans tells
// tenant 1 which values other tenants store. rowguard refuses EXPLAIN by default ([tenancy]
// explain = "refuse"); a DBA who accepts the channel sets explain = "costs_off".
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

constexpr const char* kSetup = R"sql(
DROP TABLE IF EXISTS ex_items;
CREATE TABLE ex_items (id int, tenant_id int NOT NULL, v text NOT NULL, PRIMARY KEY (tenant_id, id));
CREATE INDEX ex_items_v ON ex_items (v);
-- tenant 1: a few distinct values; tenant 2: 20,000 rows of one secret value.
INSERT INTO ex_items SELECT g, 1, 'mine-' || g FROM generate_series(1, 50) g;
INSERT INTO ex_items SELECT g, 2, 'secret-of-tenant-2' FROM generate_series(1, 20000) g;
ALTER TABLE ex_items OWNER TO app;
ANALYZE ex_items;
)sql";

std::string joined(const QueryResult& r) {
  std::string out;
  for (const auto& row : r.rows) {
    for (const auto& v : row) out += (v ? *v : std::string("NULL")) + "\n";
  }
  return out;
}

class SqlExplain : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    QueryResult r = Env::get().direct_super()->exec(kSetup);
    ASSERT_TRUE(r.ok) << r.message;
    const std::string tables = "\n[tables.\"public.ex_items\"]\ncolumn = \"tenant_id\"\n";
    refusing_ = new RowguardProcess(example_config_template() + tables, Env::get().pg(), "info");
    std::string allowing = replace_all(example_config_template(), "[tenancy]\n", "[tenancy]\nexplain = \"costs_off\"\n");
    EXPECT_NE(allowing.find("explain = \"costs_off\""), std::string::npos);
    allowing_ = new RowguardProcess(allowing + tables, Env::get().pg(), "info");
  }
  static void TearDownTestSuite() {
    delete refusing_;
    delete allowing_;
    refusing_ = allowing_ = nullptr;
  }
  static std::unique_ptr<Client> tenant1(RowguardProcess* rg) {
    return std::make_unique<Client>(rg->conninfo("t1") + " password=pw1");
  }
  static RowguardProcess* refusing_;
  static RowguardProcess* allowing_;
};

RowguardProcess* SqlExplain::refusing_ = nullptr;
RowguardProcess* SqlExplain::allowing_ = nullptr;

// With [tenancy] explain = "costs_off": the numbers stay refused, the plan without them works.
TEST_F(SqlExplain, EstimatesAndCostsFromOtherTenantsRowsAreRefused) {
  auto t1 = tenant1(allowing_);  // even where the DBA allows COSTS OFF
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

TEST_F(SqlExplain, ThePlanWithoutCostsWorks) {
  auto t1 = tenant1(allowing_);  // even where the DBA allows COSTS OFF
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

// Red before: the default policy answered both plans and they differed (Seq Scan vs Index Scan).
TEST_F(SqlExplain, TheDefaultPolicyRefusesEveryExplain) {
  auto t1 = tenant1(refusing_);
  for (const char* sql : {"EXPLAIN (COSTS OFF) SELECT id FROM ex_items WHERE v = 'secret-of-tenant-2'",
                          "EXPLAIN (COSTS OFF) SELECT id FROM ex_items WHERE v = 'nobody-has-this'",
                          "EXPLAIN (COSTS OFF, FORMAT JSON) SELECT 1",
                          "PREPARE ex AS SELECT id FROM ex_items; EXPLAIN (COSTS OFF) EXECUTE ex"}) {
    SCOPED_TRACE(sql);
    QueryResult r = t1->exec(sql);
    EXPECT_FALSE(r.ok) << joined(r);
    EXPECT_EQ(r.sqlstate, "42501") << r.message;
    EXPECT_NE(r.message.find("rule: explain)"), std::string::npos) << r.message;
    t1->exec("DEALLOCATE ALL");
    ASSERT_TRUE(t1->alive());
  }
}

// What a DBA accepts with explain = "costs_off": the shape differs with other tenants' data.
// Pinned so that the README's trade-off stays true.
TEST_F(SqlExplain, CostsOffShowsTheShapeOtherTenantsDataChose) {
  auto t1 = tenant1(allowing_);
  QueryResult common = t1->exec("EXPLAIN (COSTS OFF) SELECT id FROM ex_items WHERE v = 'secret-of-tenant-2'");
  QueryResult absent = t1->exec("EXPLAIN (COSTS OFF) SELECT id FROM ex_items WHERE v = 'nobody-has-this'");
  ASSERT_TRUE(common.ok) << common.message;
  ASSERT_TRUE(absent.ok) << absent.message;
  EXPECT_EQ(joined(common).find("rows="), std::string::npos);
  EXPECT_NE(joined(common), joined(absent)) << "the plans no longer differ: revisit the README's explain trade-off";
}

}  // namespace
}  // namespace rowguard::testing::adversarial
