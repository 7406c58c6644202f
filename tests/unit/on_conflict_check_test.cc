// INSERT ... ON CONFLICT for tenants (sqlrewrite/on_conflict_check.h) with hand-built schema
// snapshots, through sqlrewrite::rewrite(): refused unless every arbiter index includes the
// tenant column; refused while the schema is unknown. Also the key warnings of
// policy/schema_report.h and the SHOW SCHEMA rows (proxy/net/admin_schema.h).
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "policy/policy.h"
#include "policy/schema_report.h"
#include "proxy/net/admin_schema.h"
#include "sqlrewrite/rewriter.h"
#include "tests/support/test_policy.h"

namespace rowguard::sqlrewrite {
namespace {

const std::string kToml = test_support::test_policy_toml({.tables =
        "[tables.\"public.orders\"]\n"
        "[tables.\"public.notes\"]\n"
        "[tables.\"public.events\"]\n"
        "[tables.\"public.countries\"]\n"
        "global = true\n"});

policy::UniqueKey key(std::string name, std::string constraint, std::vector<std::string> cols, bool partial = false) {
  policy::UniqueKey k;
  k.name = std::move(name);
  k.constraint = std::move(constraint);
  k.columns = std::move(cols);
  k.primary = k.name.ends_with("_pkey");
  k.partial = partial;
  return k;
}

policy::TableInfo table(std::string name, char relkind = 'r') {
  policy::TableInfo t;
  t.name = {"public", std::move(name)};
  t.relkind = relkind;
  for (const char* c : {"tenant_id", "id", "body"}) {
    policy::ColumnInfo col;
    col.name = c;
    t.columns.push_back(col);
  }
  return t;
}

// orders: PRIMARY KEY (id) -- crosses tenants; UNIQUE (tenant_id, id) too.
// notes: PRIMARY KEY (tenant_id, id), a partial unique (tenant_id, body), an expression index.
// events: partitioned; PRIMARY KEY (tenant_id, id); partition events_1 has its own UNIQUE (id).
std::shared_ptr<policy::SchemaSnapshot> snapshot() {
  auto s = std::make_shared<policy::SchemaSnapshot>();
  s->loaded = true;
  auto orders = table("orders");
  orders.unique_keys = {key("orders_pkey", "orders_pkey", {"id"}),
                        key("orders_tenant_id_id_key", "orders_tenant_id_id_key", {"tenant_id", "id"})};
  auto notes = table("notes");
  notes.unique_keys = {key("notes_pkey", "notes_pkey", {"tenant_id", "id"}),
                       key("notes_body_idx", "", {"tenant_id", "body"}, true)};
  auto events = table("events", 'p');
  events.unique_keys = {key("events_pkey", "events_pkey", {"tenant_id", "id"})};
  events.children = {{"public", "events_1"}};
  auto events_1 = table("events_1");
  events_1.unique_keys = {key("events_1_pkey", "", {"tenant_id", "id"}), key("events_1_id_key", "events_1_id_key", {"id"})};
  auto countries = table("countries");
  countries.unique_keys = {key("countries_pkey", "countries_pkey", {"id"})};
  for (auto* t : {&orders, &notes, &events, &events_1, &countries}) s->tables[t->name] = *t;
  return s;
}

// The snapshot with orders keyed by (tenant_id, id) only: ON CONFLICT cases whose INSERT must
// also pass the key check (orders_pkey (id) refuses any INSERT that gives id a value).
std::shared_ptr<policy::SchemaSnapshot> orders_keyed() {
  auto s = snapshot();
  auto& keys = s->tables[{"public", "orders"}].unique_keys;
  keys.erase(keys.begin());
  return s;
}

policy::PolicyPtr with_schema(std::shared_ptr<const policy::SchemaSnapshot> s) {
  auto p = std::make_shared<policy::Policy>(*policy::parse_policy(kToml, "on_conflict_test.toml"));
  p->schema = std::move(s);
  return p;
}

RewriteResult run(const policy::Policy& p, const std::string& sql) { return rewrite(sql, p, "1"); }

void expect_refused(const policy::Policy& p, const std::string& sql, const std::string& part) {
  RewriteResult r = run(p, sql);
  EXPECT_FALSE(r.allowed) << sql << " -> " << r.sql;
  EXPECT_NE(r.reason.find(part), std::string::npos) << sql << " -> " << r.reason;
  EXPECT_NE(r.reason.find("rule: every ON CONFLICT arbiter index must include the tenant column"), std::string::npos)
      << r.reason;
}

TEST(OnConflictCheck, RefusedWhileTheSchemaIsUnknown) {
  auto unknown = with_schema(nullptr);
  expect_refused(*unknown, "INSERT INTO notes (id) VALUES (1) ON CONFLICT DO NOTHING", "schema is not known yet");
  expect_refused(*unknown, "INSERT INTO notes (id) VALUES (1) ON CONFLICT (tenant_id, id) DO NOTHING",
                 "schema is not known yet");
  auto failed = std::make_shared<policy::SchemaSnapshot>();
  failed->error = "connection refused";
  expect_refused(*with_schema(failed), "INSERT INTO notes (id) VALUES (1) ON CONFLICT DO NOTHING",
                 "schema is not known yet");
  // Without ON CONFLICT the key check (sqlrewrite/key_check.h) needs the schema too.
  RewriteResult plain = run(*unknown, "INSERT INTO notes (id) VALUES (1)");
  EXPECT_FALSE(plain.allowed);
  EXPECT_NE(plain.reason.find("schema is not known yet"), std::string::npos) << plain.reason;
  EXPECT_NE(plain.reason.find("cross_tenant_key"), std::string::npos) << plain.reason;
}

TEST(OnConflictCheck, ConflictTargetWithoutTheTenantColumnIsRefusedNamingTheKey) {
  auto p = with_schema(snapshot());
  expect_refused(*p, "INSERT INTO orders (id, body) VALUES (201, 'x') ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                 "arbiter unique key \"orders_pkey\" (id) does not include the tenant column \"tenant_id\"");
  expect_refused(*p, "INSERT INTO orders (id) VALUES (201) ON CONFLICT (id) DO NOTHING", "\"orders_pkey\"");
  expect_refused(*p, "INSERT INTO orders (id) VALUES (201) ON CONFLICT (id) WHERE id > 0 DO NOTHING", "\"orders_pkey\"");
  // No index matches: still refused (any index it could infer lacks the tenant column).
  expect_refused(*p, "INSERT INTO orders (id, body) VALUES (1, 'x') ON CONFLICT (body) DO NOTHING",
                 "does not name the tenant column");
  expect_refused(*p, "INSERT INTO orders (id) VALUES (1) ON CONFLICT ((tenant_id::text || id)) DO NOTHING",
                 "does not name the tenant column");
  expect_refused(*p, "INSERT INTO orders (id) VALUES (1) ON CONFLICT (\"TENANT_ID\", id) DO NOTHING",
                 "does not name the tenant column");
  // Inside a data-modifying CTE as well.
  expect_refused(*p,
                 "WITH x AS (INSERT INTO orders (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET body = 'x' RETURNING id) "
                 "SELECT * FROM x",
                 "\"orders_pkey\"");
}

TEST(OnConflictCheck, ConflictTargetWithTheTenantColumnIsAllowed) {
  auto p = with_schema(orders_keyed());
  RewriteResult r = run(*p, "INSERT INTO orders (id, body) VALUES (201, 'x') ON CONFLICT (tenant_id, id) DO UPDATE "
                            "SET body = excluded.body");
  ASSERT_TRUE(r.allowed) << r.reason;
  EXPECT_EQ(r.sql,
            "INSERT INTO public.orders (id, body, tenant_id) VALUES (201, 'x', '1') ON CONFLICT (tenant_id, id) DO "
            "UPDATE SET body = excluded.body WHERE orders.tenant_id = '1'");
  EXPECT_TRUE(run(*p, "INSERT INTO notes (id, body) VALUES (1, 'x') ON CONFLICT (id, tenant_id) DO NOTHING").allowed);
  EXPECT_TRUE(run(*p, "INSERT INTO notes (id, body) VALUES (1, 'x') ON CONFLICT (tenant_id, body) WHERE body <> '' "
                      "DO NOTHING").allowed);
  EXPECT_TRUE(run(*p, "INSERT INTO notes (id, body) VALUES (1, 'x') ON CONFLICT (tenant_id, lower(body)) DO NOTHING")
                  .allowed);
}

TEST(OnConflictCheck, OnConstraint) {
  auto p = with_schema(snapshot());
  expect_refused(*p, "INSERT INTO orders (id) VALUES (201) ON CONFLICT ON CONSTRAINT orders_pkey DO NOTHING",
                 "arbiter constraint \"orders_pkey\" (id)");
  EXPECT_TRUE(run(*with_schema(orders_keyed()), "INSERT INTO orders (id) VALUES (201) ON CONFLICT ON CONSTRAINT "
                      "orders_tenant_id_id_key DO UPDATE SET body = 'x'").allowed);
  // A bare unique index is not a constraint; an unknown name is refused.
  expect_refused(*p, "INSERT INTO notes (id) VALUES (1) ON CONFLICT ON CONSTRAINT notes_body_idx DO NOTHING",
                 "is not a known unique constraint");
  expect_refused(*p, "INSERT INTO notes (id) VALUES (1) ON CONFLICT ON CONSTRAINT nope DO NOTHING",
                 "\"nope\" is not a known unique constraint of \"public.notes\"");
}

TEST(OnConflictCheck, BareDoNothingNeedsEveryUniqueKeyOfTheTableAndItsPartitions) {
  auto s = snapshot();
  auto p = with_schema(s);
  expect_refused(*p, "INSERT INTO orders (id) VALUES (201) ON CONFLICT DO NOTHING", "\"orders_pkey\" (id)");
  EXPECT_TRUE(run(*p, "INSERT INTO notes (id) VALUES (201) ON CONFLICT DO NOTHING").allowed);
  // The partition's own UNIQUE (id) is an arbiter of a row routed to it.
  expect_refused(*p, "INSERT INTO events (id) VALUES (201) ON CONFLICT DO NOTHING",
                 "\"events_1_id_key\" (id) of \"public.events_1\"");
  auto fixed = std::make_shared<policy::SchemaSnapshot>(*s);
  fixed->tables[{"public", "events_1"}].unique_keys.pop_back();
  EXPECT_TRUE(run(*with_schema(fixed), "INSERT INTO events (id) VALUES (201) ON CONFLICT DO NOTHING").allowed);
  auto missing_child = std::make_shared<policy::SchemaSnapshot>(*fixed);
  missing_child->tables.erase({"public", "events_1"});
  expect_refused(*with_schema(missing_child), "INSERT INTO events (id) VALUES (201) ON CONFLICT DO NOTHING",
                 "are not known");
  auto exclusion = std::make_shared<policy::SchemaSnapshot>(*s);
  exclusion->tables[{"public", "notes"}].exclusion_constraints = {"notes_no_overlap"};
  expect_refused(*with_schema(exclusion), "INSERT INTO notes (id) VALUES (201) ON CONFLICT DO NOTHING",
                 "exclusion constraint \"notes_no_overlap\"");
  auto expression = std::make_shared<policy::SchemaSnapshot>(*s);
  expression->tables[{"public", "notes"}].unique_keys.push_back(key("notes_lower_idx", "", {}));
  expect_refused(*with_schema(expression), "INSERT INTO notes (id) VALUES (201) ON CONFLICT DO NOTHING",
                 "\"notes_lower_idx\" (an expression)");
}

TEST(OnConflictCheck, TargetsTheSnapshotCannotAnswerAreRefused) {
  auto s = snapshot();
  auto view = std::make_shared<policy::SchemaSnapshot>(*s);
  view->tables[{"public", "notes"}].relkind = 'v';
  expect_refused(*with_schema(view), "INSERT INTO notes (id) VALUES (1) ON CONFLICT (tenant_id, id) DO NOTHING",
                 "not a table");
  auto gone = std::make_shared<policy::SchemaSnapshot>(*s);
  gone->tables.erase({"public", "notes"});
  expect_refused(*with_schema(gone), "INSERT INTO notes (id) VALUES (1) ON CONFLICT (tenant_id, id) DO NOTHING",
                 "not found upstream");
}

TEST(SchemaReport, MissingTablesAndColumnsAreErrorsAndCrossTenantKeysWarnings) {
  auto s = std::make_shared<policy::SchemaSnapshot>(*snapshot());
  s->tables.erase({"public", "events"});
  auto& notes = s->tables[{"public", "notes"}];
  notes.columns.erase(notes.columns.begin());  // no tenant_id
  policy::ForeignKey fk;
  fk.name = "orders_note_fkey";
  fk.columns = {"id"};
  fk.references = {"public", "notes"};
  fk.referenced_columns = {"id"};
  s->tables[{"public", "orders"}].foreign_keys.push_back(fk);
  policy::ForeignKey scoped = fk;
  scoped.name = "orders_note_scoped_fkey";
  scoped.columns = {"tenant_id", "id"};
  scoped.referenced_columns = {"tenant_id", "id"};
  s->tables[{"public", "orders"}].foreign_keys.push_back(scoped);
  policy::ForeignKey to_global = fk;
  to_global.name = "orders_country_fkey";
  to_global.references = {"public", "countries"};
  s->tables[{"public", "orders"}].foreign_keys.push_back(to_global);
  auto p = with_schema(s);
  const policy::SchemaReport r = policy::report_schema(*p, *s);
  ASSERT_EQ(r.errors.size(), 2u);
  EXPECT_EQ(r.errors[0], "table \"public.events\" does not exist upstream");
  EXPECT_EQ(r.errors[1], "table \"public.notes\" has no tenant column \"tenant_id\"");
  ASSERT_EQ(r.warnings.size(), 2u);
  EXPECT_NE(r.warnings[0].find("unique key \"orders_pkey\" (id) does not include the tenant column"), std::string::npos)
      << r.warnings[0];
  EXPECT_NE(r.warnings[1].find("foreign key \"orders_note_fkey\" (id) references \"public.notes\""), std::string::npos)
      << r.warnings[1];
}

TEST(SchemaReport, ShowSchemaRows) {
  auto s = snapshot();
  s->read_at_us = 1'000'000;
  auto p = with_schema(s);
  net::admin::ResultSet r = net::admin::schema_result(*p, nullptr, 11'000'000);
  ASSERT_EQ(r.rows.size(), 4u);  // countries, events, notes, orders
  const auto& orders = r.rows[3];
  EXPECT_EQ(orders[0], std::optional<std::string>("public.orders"));
  EXPECT_EQ(orders[2], std::optional<std::string>("true"));
  EXPECT_EQ(orders[4], std::optional<std::string>("3"));
  EXPECT_EQ(orders[6], std::optional<std::string>("orders_pkey"));
  EXPECT_EQ(orders[9], std::optional<std::string>("loaded"));
  EXPECT_EQ(orders[11], std::optional<std::string>("10"));
  auto failed = std::make_shared<policy::SchemaSnapshot>();
  failed->error = "cannot connect";
  net::admin::ResultSet u = net::admin::schema_result(*with_schema(failed), nullptr, 0);
  EXPECT_EQ(u.rows[0][9], std::optional<std::string>("error"));
  EXPECT_EQ(u.rows[0][10], std::optional<std::string>("cannot connect"));
  EXPECT_EQ(u.rows[0][2], std::nullopt);
}

}  // namespace
}  // namespace rowguard::sqlrewrite
