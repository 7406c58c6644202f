// End-to-end tests of the schema snapshot (proxy/net/schema_refresher.h) against a PostgreSQL of
// their own (they change its schema): SHOW SCHEMA, the start-up warnings about keys that cross
// tenants, the re-read after DDL by a bypass session and on RELOAD, a start with PostgreSQL
// down, and `rowguard check --against`.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "tests/support/pg_server.h"
#include "tests/support/process.h"

namespace rowguard::testing {
namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Polls `probe` until it returns true or `seconds` pass (a deadline for slow machines).
bool eventually(const std::function<bool()>& probe, int seconds = 30) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (probe()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return probe();
}

std::string example_config_template() {
  std::string text = read_text_file(source_dir() + "/examples/rowguard.toml");
  text = replace_all(text, "\"127.0.0.1:6432\"", "\"{{LISTEN}}\"");
  return replace_all(text, "\"127.0.0.1:5432\"", "\"{{UPSTREAM}}\"");
}

std::string show_schema(const RowguardProcess& rg) {
  return rg.psql("dba", "pwdba", "SHOW SCHEMA", "rowguard").out;
}

TEST(SchemaE2e, ShowSchemaWarningsAndRereadAfterBypassDdl) {
  PgServer pg;
  pg.load_example_schema();
  RowguardProcess rg(example_config_template(), pg, "info");
  // Read before rowguard listens: the start-up log already has it, with the key warnings.
  const std::string log = rg.log();
  EXPECT_TRUE(contains(log, "schema snapshot (start-up): 3 tables")) << log;
  // examples/schema.sql keys customers and orders by (tenant_id, id): no key warning.
  EXPECT_FALSE(contains(log, "schema: table \"public.customers\": unique key")) << log;

  std::string s = show_schema(rg);
  EXPECT_TRUE(contains(s, "public.customers|tenant_id|true|r|3|customers_pkey(tenant_id,id) primary||0|0|loaded||"))
      << s;
  EXPECT_TRUE(contains(s, "public.countries||true|r|2|countries_pkey(code) primary||0|0|loaded||")) << s;
  EXPECT_TRUE(contains(s, "|start-up")) << s;

  CommandResult refused = rg.psql("t1", "pw1", "INSERT INTO customers (id, name) VALUES (150, 'x') ON CONFLICT (id) DO NOTHING");
  EXPECT_TRUE(contains(refused.err, "42501")) << describe(refused);
  EXPECT_TRUE(contains(refused.err, "does not name the tenant column")) << describe(refused);

  // A bypass session gives customers a legacy key on id alone: the snapshot is re-read and a
  // tenant INSERT naming id is refused (rule cross_tenant_key); back to (tenant_id, id), it works.
  CommandResult legacy = rg.psql("dba", "pwdba", "ALTER TABLE customers DROP CONSTRAINT customers_pkey, ADD PRIMARY KEY (id)");
  ASSERT_EQ(legacy.exit_code, 0) << describe(legacy);
  EXPECT_TRUE(eventually([&] { return contains(show_schema(rg), "customers_pkey(id) primary"); })) << show_schema(rg);
  EXPECT_TRUE(contains(show_schema(rg), "|DDL by bypass session")) << show_schema(rg);
  CommandResult crossing = rg.psql("t1", "pw1", "INSERT INTO customers (id, name) VALUES (150, 'x')");
  EXPECT_TRUE(contains(crossing.err, "42501")) << describe(crossing);
  EXPECT_TRUE(contains(crossing.err, "cross_tenant_key")) << describe(crossing);
  CommandResult ddl = rg.psql("dba", "pwdba",
                              "ALTER TABLE customers DROP CONSTRAINT customers_pkey, ADD PRIMARY KEY (tenant_id, id)");
  ASSERT_EQ(ddl.exit_code, 0) << describe(ddl);
  EXPECT_TRUE(eventually([&] { return contains(show_schema(rg), "customers_pkey(tenant_id,id) primary||"); }))
      << show_schema(rg) << rg.log();
  CommandResult upsert = rg.psql("t1", "pw1",
                                 "INSERT INTO customers (id, name) VALUES (101, 'acme-renamed') "
                                 "ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name RETURNING tenant_id, name");
  EXPECT_EQ(upsert.exit_code, 0) << describe(upsert);
  EXPECT_EQ(upsert.out, "1|acme-renamed\nINSERT 0 1\n") << describe(upsert);

  // DDL inside a transaction is read once committed.
  CommandResult tx = rg.psql_script("dba", "pwdba", "BEGIN;\nALTER TABLE orders ADD COLUMN note text;\nCOMMIT;\n");
  ASSERT_EQ(tx.exit_code, 0) << describe(tx);
  EXPECT_TRUE(eventually([&] { return contains(show_schema(rg), "public.orders|tenant_id|true|r|6|"); }))
      << show_schema(rg);

  CommandResult reload = rg.psql("dba", "pwdba", "RELOAD", "rowguard");
  ASSERT_EQ(reload.exit_code, 0) << describe(reload);
  EXPECT_TRUE(eventually([&] { return contains(show_schema(rg), "|reload"); })) << show_schema(rg);
}

TEST(SchemaE2e, StartsWithPostgresDownAndReadsTheSchemaOnceItIsUp) {
  PgServer pg;
  pg.load_example_schema();
  pg.kill_immediate();
  RowguardProcess rg(example_config_template(), pg, "info");
  EXPECT_TRUE(contains(rg.log(), "schema snapshot (start-up): cannot connect to the upstream database")) << rg.log();
  std::string s = show_schema(rg);
  EXPECT_TRUE(contains(s, "public.customers|tenant_id||||||||error|cannot connect to the upstream database")) << s;
  pg.restart();
  EXPECT_TRUE(eventually([&] { return contains(show_schema(rg), "public.customers|tenant_id|true|r|3|"); }))
      << show_schema(rg) << rg.log();
  EXPECT_TRUE(contains(show_schema(rg), "|loaded||")) << show_schema(rg);
}

TEST(SchemaE2e, CheckAgainstReportsMissingTablesColumnsAndCrossTenantKeys) {
  PgServer pg;
  pg.load_example_schema();
  ASSERT_EQ(pg.psql_super("ALTER TABLE customers ADD UNIQUE (id); CREATE TABLE notes (tenant_id int NOT NULL, id int, customer_id int, body text, "
                          "PRIMARY KEY (tenant_id, id), UNIQUE (body), FOREIGN KEY (customer_id) REFERENCES customers (id)); "
                          "ALTER TABLE notes OWNER TO app",
                          "appdb")
                .exit_code,
            0);
  std::string dir = make_temp_dir("rowguard-schema-check");
  std::string url = "postgresql://app:secret@127.0.0.1:" + std::to_string(pg.port()) + "/appdb";
  const std::string example = read_text_file(source_dir() + "/examples/rowguard.toml");
  write_text_file(dir + "/good.toml", example + "\n[tables.\"public.notes\"]\n");
  CommandResult good = run_command({ROWGUARD_BIN, "check", dir + "/good.toml", "--against", url}, {}, "", 30);
  EXPECT_EQ(good.exit_code, 0) << describe(good);
  EXPECT_TRUE(contains(good.out, "warning: table \"public.notes\": unique key \"notes_body_key\" (body) does not "
                                 "include the tenant column \"tenant_id\"")) << describe(good);
  EXPECT_TRUE(contains(good.out, "warning: table \"public.notes\": foreign key \"notes_customer_id_fkey\" (customer_id) "
                                 "references \"public.customers\" without the tenant column \"tenant_id\""))
      << describe(good);
  EXPECT_TRUE(contains(good.out, "tenant writes that give it a value are refused")) << describe(good);
  EXPECT_TRUE(contains(good.out, "tenant writes that give it a value are refused (rule cross_tenant_fk)")) << describe(good);
  EXPECT_FALSE(contains(good.out, "notes_pkey")) << describe(good);

  write_text_file(dir + "/bad.toml", example + "\n[tables.\"public.missing\"]\n\n[tables.\"public.countries_x\"]\n"
                                               "global = true\n\n[tables.\"public.notes\"]\ncolumn = \"org_id\"\n");
  CommandResult bad = run_command({ROWGUARD_BIN, "check", dir + "/bad.toml", "--against", url}, {}, "", 30);
  EXPECT_EQ(bad.exit_code, 1) << describe(bad);
  EXPECT_TRUE(contains(bad.err, "error: table \"public.missing\" does not exist upstream")) << describe(bad);
  EXPECT_TRUE(contains(bad.err, "error: table \"public.notes\" has no tenant column \"org_id\"")) << describe(bad);

  // The same findings at start-up, as warnings.
  const std::string bad_template = replace_all(
      replace_all(read_text_file(dir + "/bad.toml"), "\"127.0.0.1:6432\"", "\"{{LISTEN}}\""), "\"127.0.0.1:5432\"",
      "\"{{UPSTREAM}}\"");
  RowguardProcess rg(bad_template, pg, "info");
  EXPECT_TRUE(contains(rg.log(), "schema: table \"public.missing\" does not exist upstream")) << rg.log();
  EXPECT_TRUE(contains(rg.log(), "schema: table \"public.notes\" has no tenant column \"org_id\"")) << rg.log();
  remove_tree(dir);
}

// Views over a tenant table (issue #17 item 1): a view reads orders as its owner, past the filter
// rowguard puts on orders. Listed as global, or with a tenant column it does not expose, it is an
// error of `rowguard check --against` and of the start-up log; not in the policy, a warning
// (tenants cannot name it).
TEST(SchemaE2e, ViewsOverTenantTablesAreCheckedAgainstThePolicy) {
  PgServer pg;
  pg.load_example_schema();
  ASSERT_EQ(pg.psql_super("CREATE VIEW all_orders AS SELECT * FROM orders; "
                          "CREATE MATERIALIZED VIEW order_counts AS SELECT count(*) AS n FROM orders; "
                          "CREATE VIEW orders_report AS SELECT id, amount FROM orders; "
                          "CREATE VIEW my_orders AS SELECT id, tenant_id, amount FROM orders; "
                          "CREATE VIEW country_names AS SELECT code FROM countries; "
                          "ALTER VIEW all_orders OWNER TO app; ALTER MATERIALIZED VIEW order_counts OWNER TO app; "
                          "ALTER VIEW orders_report OWNER TO app; ALTER VIEW my_orders OWNER TO app; "
                          "ALTER VIEW country_names OWNER TO app",
                          "appdb")
                .exit_code,
            0);
  std::string dir = make_temp_dir("rowguard-schema-views");
  std::string url = "postgresql://app:secret@127.0.0.1:" + std::to_string(pg.port()) + "/appdb";
  const std::string example = read_text_file(source_dir() + "/examples/rowguard.toml");

  // A tenant view exposing the tenant column and a global view over a global table: no finding;
  // the view left out of the policy: a warning.
  write_text_file(dir + "/good.toml", example + "\n[tables.\"public.my_orders\"]\n\n"
                                                "[tables.\"public.country_names\"]\nglobal = true\n");
  CommandResult good = run_command({ROWGUARD_BIN, "check", dir + "/good.toml", "--against", url}, {}, "", 30);
  EXPECT_EQ(good.exit_code, 0) << describe(good);
  EXPECT_TRUE(contains(good.out, "warning: view \"public.orders_report\" reads the tenant table \"public.orders\" "
                                 "and is not in the policy")) << describe(good);
  EXPECT_FALSE(contains(good.out + good.err, "\"public.my_orders\" reads")) << describe(good);
  EXPECT_FALSE(contains(good.out + good.err, "\"public.country_names\" reads")) << describe(good);

  // all_orders listed as global, order_counts with a tenant column it does not have: errors.
  write_text_file(dir + "/bad.toml", example + "\n[tables.\"public.all_orders\"]\nglobal = true\n\n"
                                               "[tables.\"public.order_counts\"]\n");
  CommandResult bad = run_command({ROWGUARD_BIN, "check", dir + "/bad.toml", "--against", url}, {}, "", 30);
  EXPECT_EQ(bad.exit_code, 1) << describe(bad);
  EXPECT_TRUE(contains(bad.err, "error: view \"public.all_orders\" reads the tenant table \"public.orders\" but the "
                                "policy lists it as global")) << describe(bad);
  EXPECT_TRUE(contains(bad.err, "error: materialized view \"public.order_counts\" reads the tenant table "
                                "\"public.orders\" but does not expose the tenant column \"tenant_id\"")) << describe(bad);

  // The same findings in the start-up log.
  const std::string bad_template = replace_all(
      replace_all(read_text_file(dir + "/bad.toml"), "\"127.0.0.1:6432\"", "\"{{LISTEN}}\""), "\"127.0.0.1:5432\"",
      "\"{{UPSTREAM}}\"");
  RowguardProcess rg(bad_template, pg, "info");
  EXPECT_TRUE(contains(rg.log(), "schema: view \"public.all_orders\" reads the tenant table \"public.orders\" but "
                                 "the policy lists it as global")) << rg.log();
  EXPECT_TRUE(contains(rg.log(), "schema: view \"public.orders_report\" reads the tenant table")) << rg.log();
  // Not in the policy: refused as unknown.
  CommandResult unknown = rg.psql("t1", "pw1", "SELECT * FROM orders_report");
  EXPECT_TRUE(contains(unknown.err, "is not in the policy")) << describe(unknown);
  remove_tree(dir);
}

}  // namespace
}  // namespace rowguard::testing
