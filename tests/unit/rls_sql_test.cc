// Unit tests for the RLS backstop's text (policy/rls_sql.h) and the [tenancy] backstop key.
#include "policy/rls_sql.h"

#include <gtest/gtest.h>

namespace rowguard::policy {
namespace {

constexpr const char* kPolicy = R"toml([proxy]
listen = "127.0.0.1:6432"
upstream = "127.0.0.1:5432"
upstream_user = "app"

[tenancy]
backstop = "rls"

[[tenants]]
user = "t1"
password = "pw1"
tenant = "1"

[tables."public.orders"]
[tables.'sales.Odd"Name']
column = "org_id"
[tables."public.countries"]
global = true
)toml";

TEST(BackstopPolicy, KeyParsesAndIsChecked) {
  EXPECT_EQ(to_string(parse_policy(kPolicy, "p.toml")->backstop), "rls");
  std::string off = kPolicy;
  off.replace(off.find("backstop = \"rls\"\n"), 17, "");
  EXPECT_EQ(to_string(parse_policy(off, "p.toml")->backstop), "off");
  std::string bad = kPolicy;
  bad.replace(bad.find("\"rls\""), 5, "\"on\"");
  try {
    parse_policy(bad, "p.toml");
    ADD_FAILURE() << "backstop = \"on\" accepted";
  } catch (const PolicyError& e) {
    EXPECT_NE(std::string(e.what()).find("\"backstop\" must be \"off\" or \"rls\""), std::string::npos) << e.what();
  }
}

TEST(RlsSql, TenantAndGlobalTables) {
  PolicyPtr p = parse_policy(kPolicy, "p.toml");
  std::string error;
  auto sql = rls_sql(*p, {.column_type = "bigint"}, error);
  ASSERT_TRUE(sql) << error;
  const std::string orders =
      "ALTER TABLE \"public\".\"orders\" ENABLE ROW LEVEL SECURITY;\n"
      "ALTER TABLE \"public\".\"orders\" FORCE ROW LEVEL SECURITY;\n"
      "DROP POLICY IF EXISTS rowguard_read ON \"public\".\"orders\";\n"
      "DROP POLICY IF EXISTS rowguard_tenant ON \"public\".\"orders\";\n"
      "CREATE POLICY rowguard_tenant ON \"public\".\"orders\"\n"
      "  USING (current_setting('rowguard.bypass', true) = 'on' OR \"tenant_id\" = current_setting('rowguard.tenant', true)::bigint)\n"
      "  WITH CHECK (current_setting('rowguard.bypass', true) = 'on' OR \"tenant_id\" = current_setting('rowguard.tenant', true)::bigint);\n";
  EXPECT_NE(sql->find(orders), std::string::npos) << *sql;
  EXPECT_NE(sql->find("CREATE POLICY rowguard_tenant ON \"sales\".\"Odd\"\"Name\"\n  USING (current_setting('rowguard.bypass', true) = 'on' OR \"org_id\" = "),
            std::string::npos)
      << *sql;
  const std::string countries =
      "CREATE POLICY rowguard_read ON \"public\".\"countries\" FOR SELECT USING (true);\n"
      "CREATE POLICY rowguard_tenant ON \"public\".\"countries\"\n"
      "  USING (current_setting('rowguard.bypass', true) = 'on')\n"
      "  WITH CHECK (current_setting('rowguard.bypass', true) = 'on');\n";
  EXPECT_NE(sql->find(countries), std::string::npos) << *sql;
  EXPECT_TRUE(sql->starts_with("-- rowguard RLS backstop for p.toml\n"));
  EXPECT_TRUE(sql->ends_with("\nCOMMIT;\n"));
}

TEST(RlsSql, ColumnTypeFromTheSchemaSnapshotElseText) {
  auto p = std::make_shared<Policy>(*parse_policy(kPolicy, "p.toml"));
  std::string error;
  auto text = rls_sql(*p, {}, error);
  ASSERT_TRUE(text);
  EXPECT_NE(text->find("\"tenant_id\"::text = current_setting('rowguard.tenant', true))"), std::string::npos) << *text;

  auto snap = std::make_shared<SchemaSnapshot>();
  snap->loaded = true;
  TableInfo orders;
  orders.name = {"public", "orders"};
  orders.columns.push_back(ColumnInfo{.name = "tenant_id", .attnum = 2, .type_oid = 2950, .type_name = "uuid"});
  orders.children.push_back({"public", "orders_2024"});
  snap->tables[orders.name] = orders;
  TableInfo view;
  view.name = {"sales", "Odd\"Name"};
  view.relkind = 'v';
  snap->tables[view.name] = view;
  p->schema = snap;
  auto typed = rls_sql(*p, {.column_type = "integer"}, error);  // the snapshot wins over --type
  ASSERT_TRUE(typed);
  EXPECT_NE(typed->find("\"tenant_id\" = current_setting('rowguard.tenant', true)::uuid)"), std::string::npos) << *typed;
  EXPECT_NE(typed->find("--   \"public\".\"orders_2024\"\n"), std::string::npos) << *typed;
  EXPECT_EQ(typed->find("ALTER TABLE \"sales\""), std::string::npos) << *typed;  // a view: a comment only
  EXPECT_NE(typed->find("security_invoker"), std::string::npos) << *typed;
}

TEST(RlsSql, TypeMustBeATypeName) {
  PolicyPtr p = parse_policy(kPolicy, "p.toml");
  for (const char* type : {"int); DROP TABLE orders; --", "text'", "int -- x", "int;"}) {
    std::string error;
    EXPECT_FALSE(rls_sql(*p, {.column_type = type}, error)) << type;
    EXPECT_NE(error.find("not a plain type name"), std::string::npos) << error;
  }
  std::string error;
  EXPECT_TRUE(rls_sql(*p, {.column_type = "character varying(64)"}, error)) << error;
}

TEST(BackstopSettings, StartupParameters) {
  auto tenant = backstop_startup_params(std::string("acme"));
  ASSERT_TRUE(tenant);
  EXPECT_EQ(*tenant, (std::vector<std::pair<std::string, std::string>>{{"rowguard.tenant", "acme"}, {"rowguard.bypass", "off"}}));
  auto bypass = backstop_startup_params(std::nullopt);
  ASSERT_TRUE(bypass);
  EXPECT_EQ(*bypass, (std::vector<std::pair<std::string, std::string>>{{"rowguard.bypass", "on"}}));
  // A NUL would end the value early in the StartupMessage (another tenant's prefix): refused.
  EXPECT_FALSE(backstop_startup_params(std::string("1\0002", 3)));
  EXPECT_FALSE(backstop_startup_params(std::string()));
}

TEST(BackstopSettings, SetupSqlForAPoolerQuotesTheTenant) {
  EXPECT_EQ(*backstop_setup_sql(std::string("1"), false),
            "SELECT pg_catalog.set_config('rowguard.tenant', '1', false), pg_catalog.set_config('rowguard.bypass', 'off', false)");
  EXPECT_EQ(*backstop_setup_sql(std::string("o'brien\\"), true),
            "SELECT pg_catalog.set_config('rowguard.tenant', E'o''brien\\\\', true), pg_catalog.set_config('rowguard.bypass', 'off', true)");
  EXPECT_EQ(*backstop_setup_sql(std::nullopt, true), "SELECT pg_catalog.set_config('rowguard.bypass', 'on', true)");
}

}  // namespace
}  // namespace rowguard::policy
