// The tenant-check guard (sqlrewrite/qual_guard.h) against PostgreSQL 15's planner: the rewritten
// text keeps btree index use for leakproof quals (`id = 42`, and with a schema snapshot
// `id = $1` and join keys), and a guarded qual is evaluated only behind the tenant check.
// Each statement is rewritten with sqlrewrite::rewrite() and EXPLAINed directly.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "policy/policy.h"
#include "policy/schema_snapshot.h"
#include "sqlrewrite/rewriter.h"
#include "tests/support/pg_server.h"
#include "tests/support/process.h"
#include "tests/support/test_policy.h"

namespace rowguard::testing {
namespace {

constexpr const char* kDb = "qualguard";

const std::string kToml =
    test_support::test_policy_toml({.tables = "[tables.\"public.items\"]\n[tables.\"public.tags\"]\n"});

policy::ColumnInfo col(std::string name, uint32_t oid) {
  policy::ColumnInfo c;
  c.name = std::move(name);
  c.type_oid = oid;
  return c;
}

class QualGuardPlan : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    PgServer& pg = PgServer::shared();
    CommandResult r = pg.psql_super("DROP DATABASE IF EXISTS qualguard WITH (FORCE)");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = pg.psql_super("CREATE DATABASE qualguard");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = pg.psql_super(R"sql(
      CREATE TABLE items (id int PRIMARY KEY, tenant_id int NOT NULL, v numeric NOT NULL, s text NOT NULL);
      INSERT INTO items SELECT g, g % 3 + 1, g, g::text FROM generate_series(1, 30000) g;
      INSERT INTO items VALUES (90001, 2, -1, 'x');
      CREATE TABLE tags (id int PRIMARY KEY, tenant_id int NOT NULL, item_id int NOT NULL, w numeric NOT NULL);
      INSERT INTO tags SELECT g, g % 3 + 1, g, g FROM generate_series(1, 30000) g;
      CREATE INDEX ON tags (item_id);
      ANALYZE items; ANALYZE tags;
    )sql", kDb);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  static const policy::Policy& plain() {
    static const policy::PolicyPtr p = policy::parse_policy(kToml, "qual_guard_plan.toml");
    return *p;
  }
  static const policy::Policy& with_schema() {
    static const policy::PolicyPtr p = [] {
      auto copy = std::make_shared<policy::Policy>(*policy::parse_policy(kToml, "qual_guard_plan.toml"));
      auto snap = std::make_shared<policy::SchemaSnapshot>();
      snap->loaded = true;
      policy::TableInfo items;
      items.name = {"public", "items"};
      items.columns = {col("id", 23), col("tenant_id", 23), col("v", 1700), col("s", 25)};
      policy::TableInfo tags;
      tags.name = {"public", "tags"};
      tags.columns = {col("id", 23), col("tenant_id", 23), col("item_id", 23), col("w", 1700)};
      snap->tables[items.name] = items;
      snap->tables[tags.name] = tags;
      copy->schema = snap;
      return policy::PolicyPtr(copy);
    }();
    return *p;
  }

  static std::string rewritten(const std::string& sql, const policy::Policy& p) {
    sqlrewrite::RewriteResult r = sqlrewrite::rewrite(sql, p, "1");
    EXPECT_TRUE(r.allowed) << r.reason;
    return r.sql;
  }
  // psql output of `prefix; EXPLAIN (COSTS OFF) <statement>` (settings in prefix).
  static std::string explain(const std::string& statement, const std::string& prefix = "") {
    CommandResult r = PgServer::shared().psql_super(prefix + "EXPLAIN (COSTS OFF) " + statement, kDb);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }
  static CommandResult run(const std::string& sql) { return PgServer::shared().psql_super(sql, kDb); }
};

TEST_F(QualGuardPlan, IdEqualsConstantKeepsItsIndexScan) {
  const std::string sql = rewritten("SELECT * FROM items WHERE id = 42", plain());
  EXPECT_EQ(sql, "SELECT * FROM public.items WHERE id = 42 AND items.tenant_id = '1'");
  const std::string plan = explain(sql);
  EXPECT_NE(plan.find("Index Scan using items_pkey"), std::string::npos) << plan;
  EXPECT_NE(plan.find("Index Cond: (id = 42)"), std::string::npos) << plan;
}

TEST_F(QualGuardPlan, GuardedQualRunsBehindTheIndexAndTheTenantCheck) {
  const std::string sql = rewritten("SELECT * FROM items WHERE id > 29990 AND sqrt(v) > 0", plain());
  const std::string plan = explain(sql);
  EXPECT_NE(plan.find("Index Cond: (id > 29990)"), std::string::npos) << plan;
  EXPECT_NE(plan.find("CASE WHEN (tenant_id = 1) THEN (sqrt(v) > "), std::string::npos) << plan;
  // With every index path off the qual still cannot run before the tenant check.
  CommandResult r = run("SET enable_indexscan = off; SET enable_bitmapscan = off; " +
                        rewritten("SELECT count(*) FROM items WHERE sqrt(v) > 0", plain()));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "10000\n");
  // The same text without the guard fails on tenant 2's row (the attack the guard stops).
  r = run("SET enable_indexscan = off; SET enable_bitmapscan = off; "
          "SELECT count(*) FROM items WHERE sqrt(v) IS NOT NULL AND items.tenant_id = '1'");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("square root of a negative number"), std::string::npos) << r.err;
}

TEST_F(QualGuardPlan, WithTheSchemaParametersAndJoinKeysKeepTheirIndexes) {
  const std::string sql = rewritten("SELECT * FROM items WHERE id = $1", with_schema());
  EXPECT_EQ(sql, "SELECT * FROM public.items WHERE id = $1 AND items.tenant_id = '1'");
  const std::string plan = explain("EXECUTE p(42)", "PREPARE p(int) AS " + sql + "; ");
  EXPECT_NE(plan.find("Index Cond: (id = 42)"), std::string::npos) << plan;

  const std::string join = rewritten("SELECT * FROM items i JOIN tags t ON t.item_id = i.id WHERE i.id = 42", with_schema());
  const std::string join_plan = explain(join);
  EXPECT_EQ(join_plan.find("CASE"), std::string::npos) << join_plan;
  EXPECT_NE(join_plan.find("Index Cond: (item_id = 42)"), std::string::npos) << join_plan;
}

}  // namespace
}  // namespace rowguard::testing
