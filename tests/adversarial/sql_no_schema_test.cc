// Attribute notation without a schema snapshot (issue #13, item 1): `c.f` means f(c) when the
// relation c has no column f (PostgreSQL docs 8.16.5). With a snapshot rowguard knows the
// relation's columns and every function name of the database; without one (no
// `upstream_database`, PostgreSQL unreachable at start-up, the first read still running) it
// cannot tell a column from a function a DBA created, so a qualified name that is neither an
// allowlisted function nor a name whose every pg_catalog one-argument function is immutable is
// refused. Here a DBA function over the customers row type reads every tenant's customers: the
// tenant must not reach it through `c.rg_every_name` on a rowguard that never read the schema.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

constexpr const char* kSetup = R"sql(
CREATE OR REPLACE FUNCTION public.rg_every_name(customers) RETURNS text LANGUAGE sql STABLE
  AS $$ SELECT string_agg(name, ',' ORDER BY id) FROM public.customers $$;
)sql";

class NoSchema : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    QueryResult r = Env::get().direct_super()->exec(kSetup);
    ASSERT_TRUE(r.ok) << r.message;
    // No upstream_database: the snapshot is never read (SHOW SCHEMA says why).
    std::string config = replace_all(example_config_template(), "upstream_database = \"appdb\"", "");
    ASSERT_EQ(config.find("upstream_database"), std::string::npos);
    rowguard_ = new RowguardProcess(config, Env::get().pg(), "info");
  }
  static void TearDownTestSuite() {
    delete rowguard_;
    rowguard_ = nullptr;
    Env::get().direct_super()->exec("DROP FUNCTION IF EXISTS public.rg_every_name(customers)");
  }
  static std::unique_ptr<Client> tenant1() {
    return std::make_unique<Client>(rowguard_->conninfo("t1") + " password=pw1");
  }
  static RowguardProcess* rowguard_;
};

RowguardProcess* NoSchema::rowguard_ = nullptr;

TEST_F(NoSchema, DbaFunctionThroughAttributeNotationIsRefused) {
  auto t1 = tenant1();
  // The function exists and reads every tenant's rows: called directly it is refused by the allowlist.
  QueryResult direct = t1->exec("SELECT rg_every_name(c) FROM customers c");
  EXPECT_EQ(direct.sqlstate, "42501") << direct.everything();
  for (const char* sql : {"SELECT c.rg_every_name FROM customers c",
                          "SELECT (c).rg_every_name FROM customers c",
                          "SELECT customers.rg_every_name FROM customers",
                          "SELECT id FROM customers c WHERE c.rg_every_name LIKE '%'",
                          "SELECT (s.c).rg_every_name FROM (SELECT c FROM customers c) AS s"}) {
    SCOPED_TRACE(sql);
    QueryResult r = t1->exec(sql);
    EXPECT_FALSE(r.ok) << r.everything();
    EXPECT_EQ(r.sqlstate, "42501") << r.everything();
    EXPECT_NE(r.message.find("attribute_notation"), std::string::npos) << r.message;
    EXPECT_NE(r.message.find("schema snapshot is not loaded"), std::string::npos) << r.message;
    EXPECT_TRUE(no_leak(r));
    ASSERT_TRUE(t1->alive());
  }
}

TEST_F(NoSchema, UnqualifiedColumnsAndHarmlessNamesStillWork) {
  auto t1 = tenant1();
  QueryResult r = t1->exec("SELECT id, name FROM customers ORDER BY id");
  ASSERT_TRUE(r.ok) << r.everything();
  EXPECT_FALSE(r.rows.empty());
  EXPECT_TRUE(no_leak(r));
  // `name` is a pg_catalog function whose every one-argument form is immutable: harmless.
  r = t1->exec("SELECT c.name FROM customers c ORDER BY 1");
  ASSERT_TRUE(r.ok) << r.everything();
  EXPECT_TRUE(no_leak(r));
}

}  // namespace
}  // namespace rowguard::testing::adversarial
