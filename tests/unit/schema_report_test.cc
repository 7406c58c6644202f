// policy/schema_report.cc: views over policy tables (issue #17 item 1). A view reads its tables as
// its owner, without the filter rowguard puts on them: listed as global (or with a tenant column
// it does not expose) it hands every tenant every tenant's rows, an error; not in the policy,
// tenants cannot name it, a warning.
#include "policy/schema_report.h"

#include <gtest/gtest.h>

#include <string>

#include "policy/policy.h"
#include "policy/schema_snapshot.h"
#include "tests/support/test_policy.h"

namespace rowguard::policy {
namespace {

PolicyPtr view_policy() {
  return parse_policy(test_support::test_policy_toml(
                          {.tables = std::string(test_support::kShopTables) +
                                     "\n[tables.\"public.all_orders\"]\nglobal = true\n"
                                     "\n[tables.\"public.order_totals\"]\ncolumn = \"tenant_id\"\n"
                                     "\n[tables.\"public.my_orders\"]\ncolumn = \"tenant_id\"\n"
                                     "\n[tables.\"public.country_names\"]\nglobal = true\n"}),
                      "schema_report_test.toml");
}

ColumnInfo col(std::string name, int attnum) {
  ColumnInfo c;
  c.name = std::move(name);
  c.attnum = attnum;
  c.type_name = "text";
  return c;
}

DependentView view(std::string name, std::vector<std::string> cols, char relkind = 'v') {
  DependentView v;
  v.name = {"public", std::move(name)};
  v.relkind = relkind;
  v.columns = std::move(cols);
  return v;
}

// Every policy table exists upstream with a tenant column; orders is read by the views.
SchemaSnapshot snapshot() {
  SchemaSnapshot s;
  s.loaded = true;
  for (const char* name : {"orders", "customers", "countries", "all_orders", "order_totals", "my_orders",
                           "country_names"}) {
    TableInfo& t = s.tables[{"public", name}];
    t.name = {"public", name};
    t.columns = {col("id", 1), col("tenant_id", 2)};
  }
  return s;
}

bool has(const std::vector<std::string>& lines, const std::string& a, const std::string& b) {
  for (const auto& l : lines) {
    if (l.find(a) != std::string::npos && l.find(b) != std::string::npos) return true;
  }
  return false;
}

std::string all(const SchemaReport& r) {
  std::string out;
  for (const auto& e : r.errors) out += "\n  error: " + e;
  for (const auto& w : r.warnings) out += "\n  warning: " + w;
  return out;
}

TEST(SchemaReportViews, AViewOverATenantTableListedAsGlobalIsAnError) {
  SchemaSnapshot s = snapshot();
  s.tables[{"public", "orders"}].views = {view("all_orders", {"id", "tenant_id"})};
  const SchemaReport r = report_schema(*view_policy(), s);
  EXPECT_TRUE(has(r.errors, "view \"public.all_orders\" reads the tenant table \"public.orders\"",
                  "lists it as global")) << all(r);
}

TEST(SchemaReportViews, AViewListedWithATenantColumnItDoesNotExposeIsAnError) {
  SchemaSnapshot s = snapshot();
  s.tables[{"public", "orders"}].views = {view("order_totals", {"total"}, 'm')};
  const SchemaReport r = report_schema(*view_policy(), s);
  EXPECT_TRUE(has(r.errors, "materialized view \"public.order_totals\" reads the tenant table \"public.orders\"",
                  "does not expose the tenant column \"tenant_id\"")) << all(r);
}

TEST(SchemaReportViews, AViewNotInThePolicyIsAWarning) {
  SchemaSnapshot s = snapshot();
  s.tables[{"public", "orders"}].views = {view("orders_report", {"id"})};
  const SchemaReport r = report_schema(*view_policy(), s);
  EXPECT_TRUE(r.errors.empty()) << all(r);
  EXPECT_TRUE(has(r.warnings, "view \"public.orders_report\" reads the tenant table \"public.orders\"",
                  "is not in the policy")) << all(r);
}

TEST(SchemaReportViews, ATenantViewExposingItsColumnAndViewsOverGlobalTablesPass) {
  SchemaSnapshot s = snapshot();
  s.tables[{"public", "orders"}].views = {view("my_orders", {"id", "tenant_id"})};
  s.tables[{"public", "countries"}].views = {view("country_names", {"id"})};
  const SchemaReport r = report_schema(*view_policy(), s);
  EXPECT_TRUE(r.errors.empty()) << all(r);
  EXPECT_FALSE(has(r.warnings, "view ", "reads the tenant table")) << all(r);
}

TEST(SchemaReportViews, TheViewsOfATableAreSnapshotContent) {
  SchemaSnapshot a = snapshot();
  SchemaSnapshot b = snapshot();
  EXPECT_TRUE(a.same_content(b));
  b.tables[{"public", "orders"}].views = {view("all_orders", {"id", "tenant_id"})};
  EXPECT_FALSE(a.same_content(b));
}

}  // namespace
}  // namespace rowguard::policy
