// Keys that cross tenants: examples/schema.sql gives customers and orders a primary key on `id`
// alone, so tenant 1's INSERT ... ON CONFLICT (id) finds tenant 2's row 201 as the conflicting
// row. DO UPDATE locks it (and waits for tenant 2's open transaction) before the tenant filter
// of its WHERE clause is evaluated; DO NOTHING skips the insert and so tells tenant 1 that id 201
// exists. rowguard must refuse every ON CONFLICT whose arbiter index lacks the tenant column,
// before PostgreSQL sees it: no wait, no lock, no change, no "INSERT 0 0".
#include <gtest/gtest.h>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

// Tenant 2 holds row 201 of `table` locked in an open transaction for the life of this object.
class Tenant2HoldsRow {
 public:
  explicit Tenant2HoldsRow(const std::string& table) : t2_(Env::get().tenant(2)) {
    QueryResult b = t2_->exec("BEGIN");
    EXPECT_TRUE(b.ok) << b.message;
    QueryResult lock = t2_->exec("SELECT id FROM " + table + " WHERE id = 201 FOR UPDATE");
    EXPECT_TRUE(lock.ok) << lock.message;
    EXPECT_EQ(lock.rows.size(), 1u);
  }
  ~Tenant2HoldsRow() { t2_->exec("ROLLBACK"); }

 private:
  std::unique_ptr<Client> t2_;
};

// Tenant 1 with a lock/statement timeout, so a statement that would wait on tenant 2 fails with
// 55P03 / 57014 instead of hanging the test.
std::unique_ptr<Client> impatient_tenant1() {
  auto t1 = Env::get().tenant(1);
  EXPECT_TRUE(t1->exec("SET lock_timeout = '1s'").ok);
  EXPECT_TRUE(t1->exec("SET statement_timeout = '5s'").ok);
  return t1;
}

std::string customer_201_name() {
  auto su = Env::get().direct_super();
  QueryResult r = su->exec("SELECT name FROM customers WHERE id = 201");
  EXPECT_TRUE(r.ok) << r.message;
  return r.rows.empty() || !r.rows[0][0] ? std::string("(none)") : *r.rows[0][0];
}

void expect_refused_naming_key(const QueryResult& r) {
  EXPECT_TRUE(r.refused()) << "sqlstate " << r.sqlstate << ": " << r.message << " tag " << r.command_tag;
  EXPECT_NE(r.message.find("tenant column"), std::string::npos) << r.message;
  EXPECT_TRUE(no_leak(r));
}

TEST(SqlKeys, OnConflictDoUpdateOnAnotherTenantsIdNeitherWaitsNorModifies) {
  const std::string before = customer_201_name();
  Tenant2HoldsRow hold("customers");
  auto t1 = impatient_tenant1();
  QueryResult r = t1->exec(
      "INSERT INTO customers (id, name) VALUES (201, 'acme-stolen') "
      "ON CONFLICT (id) DO UPDATE SET name = excluded.name RETURNING id, name");
  expect_refused_naming_key(r);
  EXPECT_NE(r.sqlstate, "55P03") << "tenant 1 waited on tenant 2's row lock";
  EXPECT_NE(r.message.find("customers_pkey"), std::string::npos) << r.message;
  EXPECT_TRUE(t1->alive());
  EXPECT_EQ(customer_201_name(), before);
}

TEST(SqlKeys, OnConflictOnConstraintOfAnotherTenantsIdIsRefused) {
  Tenant2HoldsRow hold("orders");
  auto t1 = impatient_tenant1();
  QueryResult r = t1->exec(
      "INSERT INTO orders (id, customer_id, amount, status) VALUES (201, 101, 1, 'new') "
      "ON CONFLICT ON CONSTRAINT orders_pkey DO UPDATE SET amount = excluded.amount");
  expect_refused_naming_key(r);
  EXPECT_NE(r.message.find("orders_pkey"), std::string::npos) << r.message;
  EXPECT_TRUE(t1->alive());
}

// DO NOTHING does not lock, but "INSERT 0 0" for id 201 and "INSERT 0 1" for a free id tell
// tenant 1 which ids tenant 2 uses.
TEST(SqlKeys, OnConflictDoNothingDoesNotRevealAnotherTenantsId) {
  auto t1 = impatient_tenant1();
  for (const char* sql : {
           "INSERT INTO customers (id, name) VALUES (201, 'acme-probe') ON CONFLICT (id) DO NOTHING",
           "INSERT INTO customers (id, name) VALUES (201, 'acme-probe') ON CONFLICT DO NOTHING",
           "INSERT INTO customers (id, name) VALUES (201, 'acme-probe') "
           "ON CONFLICT ON CONSTRAINT customers_pkey DO NOTHING",
           "INSERT INTO customers (id, name) VALUES (201, 'acme-probe') ON CONFLICT (id) WHERE id > 0 DO NOTHING",
           "INSERT INTO customers (id, name) VALUES (201, 'acme-probe') ON CONFLICT ((id)) DO NOTHING",
           "INSERT INTO customers AS c (id, name) VALUES (201, 'acme-probe') ON CONFLICT (id, name) DO NOTHING",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.refused()) << sql << " -> " << r.sqlstate << " " << r.message << " tag " << r.command_tag;
    EXPECT_TRUE(no_leak(r)) << sql;
  }
  EXPECT_TRUE(t1->alive());
}

TEST(SqlKeys, OnConflictInsideCteExtendedProtocolPrepareAndSelectIsRefused) {
  Tenant2HoldsRow hold("customers");
  auto t1 = impatient_tenant1();
  QueryResult cte = t1->exec(
      "WITH up AS (INSERT INTO customers (id, name) VALUES (201, 'acme-x') "
      "ON CONFLICT (id) DO UPDATE SET name = excluded.name RETURNING id) SELECT count(*) FROM up");
  expect_refused_naming_key(cte);
  QueryResult ext = t1->exec_params(
      "INSERT INTO customers (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = excluded.name",
      {"201", "acme-x"});
  expect_refused_naming_key(ext);
  QueryResult prep = t1->exec(
      "PREPARE up(int) AS INSERT INTO customers (id, name) VALUES ($1, 'acme-x') "
      "ON CONFLICT (id) DO UPDATE SET name = excluded.name");
  expect_refused_naming_key(prep);
  QueryResult select_src = t1->exec(
      "INSERT INTO customers (id, name) SELECT 201, 'acme-x' ON CONFLICT (id) DO UPDATE SET name = excluded.name");
  expect_refused_naming_key(select_src);
  EXPECT_TRUE(t1->alive());
}

// A conflict target naming the tenant column can only infer indexes that have it as a key
// column; on the example schema there is none, so PostgreSQL itself refuses (42P10), and no
// other tenant's row is reached.
TEST(SqlKeys, OnConflictNamingTheTenantColumnReachesNoOtherTenant) {
  Tenant2HoldsRow hold("customers");
  auto t1 = impatient_tenant1();
  QueryResult r = t1->exec(
      "INSERT INTO customers (id, name) VALUES (201, 'acme-x') "
      "ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.sqlstate, "55P03");
  EXPECT_TRUE(no_leak(r));
  EXPECT_TRUE(t1->alive());
}

// With a key that includes the tenant column, ON CONFLICT works as usual and only ever meets
// the tenant's own rows (its own rowguard: the snapshot is read at start-up).
TEST(SqlKeys, OnConflictOnATenantKeyWorks) {
  auto su = Env::get().direct_super();
  ASSERT_TRUE(su->exec("DROP TABLE IF EXISTS keyed_notes").ok);
  ASSERT_TRUE(su->exec("CREATE TABLE keyed_notes (tenant_id int NOT NULL, id int NOT NULL, body text, "
                       "PRIMARY KEY (tenant_id, id))").ok);
  ASSERT_TRUE(su->exec("GRANT ALL ON keyed_notes TO app").ok);
  ASSERT_TRUE(su->exec("INSERT INTO keyed_notes VALUES (2, 201, 'globex-note')").ok);
  std::string config = example_config_template() + "\n[tables.\"public.keyed_notes\"]\ncolumn = \"tenant_id\"\n";
  RowguardProcess rg(config, Env::get().pg(), "info");
  Client t1(rg.conninfo("t1") + " password=pw1");
  ASSERT_TRUE(t1.exec("SET lock_timeout = '1s'").ok);
  QueryResult up = t1.exec(
      "INSERT INTO keyed_notes (id, body) VALUES (201, 'acme-note') "
      "ON CONFLICT (tenant_id, id) DO UPDATE SET body = excluded.body RETURNING tenant_id, id, body");
  ASSERT_TRUE(up.ok) << up.message;
  ASSERT_EQ(up.rows.size(), 1u);
  EXPECT_EQ(up.rows[0][0], std::optional<std::string>("1"));
  QueryResult again = t1.exec(
      "INSERT INTO keyed_notes (id, body) VALUES (201, 'acme-note-2') "
      "ON CONFLICT (tenant_id, id) DO UPDATE SET body = excluded.body RETURNING body");
  ASSERT_TRUE(again.ok) << again.message;
  EXPECT_EQ(again.rows[0][0], std::optional<std::string>("acme-note-2"));
  QueryResult nothing = t1.exec("INSERT INTO keyed_notes (id, body) VALUES (201, 'x') ON CONFLICT DO NOTHING");
  EXPECT_TRUE(nothing.ok) << nothing.message;
  QueryResult named = t1.exec(
      "INSERT INTO keyed_notes (id, body) VALUES (201, 'x') ON CONFLICT ON CONSTRAINT keyed_notes_pkey DO NOTHING");
  EXPECT_TRUE(named.ok) << named.message;
  QueryResult other = su->exec("SELECT body FROM keyed_notes WHERE tenant_id = 2");
  ASSERT_EQ(other.rows.size(), 1u);
  EXPECT_EQ(other.rows[0][0], std::optional<std::string>("globex-note"));
  su->exec("DROP TABLE keyed_notes");
}

}  // namespace
}  // namespace rowguard::testing::adversarial
