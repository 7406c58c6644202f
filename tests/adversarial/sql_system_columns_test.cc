// System columns (issue #13, item 3): ctid, xmin, xmax, cmin, cmax tell about other tenants'
// writes — a fresh row's ctid gives the table's size and how many rows others inserted, xmin /
// xmax are transaction ids that count every tenant's write transactions. Refused in every
// syntax PostgreSQL accepts for them (x, t.x, schema.t.x, (t).x); tableoid stays readable.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

::testing::AssertionResult refused_by_rule(const QueryResult& r) {
  if (r.ok) return ::testing::AssertionFailure() << "answered (" << r.rows.size() << " rows): " << r.everything();
  if (r.sqlstate != "42501" || r.message.find("rowguard:") == std::string::npos ||
      r.message.find("system_columns") == std::string::npos) {
    return ::testing::AssertionFailure() << "not refused by rule system_columns: " << r.sqlstate << " " << r.message;
  }
  return ::testing::AssertionSuccess();
}

const std::vector<const char*> kReads = {
    "SELECT xmin FROM orders",
    "SELECT o.xmin FROM orders AS o",
    "SELECT (o).xmin FROM orders AS o",
    "SELECT public.orders.xmin FROM public.orders",
    "SELECT \"xmin\" FROM orders",
    "SELECT xmax FROM customers",
    "SELECT c.xmax FROM customers AS c",
    "SELECT cmin FROM orders",
    "SELECT cmax FROM orders",
    "SELECT (c).cmax FROM customers AS c",
    "SELECT ctid FROM orders",
    "SELECT o.ctid FROM orders AS o",
    "SELECT (o).ctid FROM orders AS o",
    "SELECT max(ctid) FROM customers",
    "SELECT id FROM orders ORDER BY ctid DESC LIMIT 1",
    "SELECT count(*) FROM orders WHERE ctid > '(0,0)'",
    "SELECT id FROM orders WHERE xmin::text::bigint > 0",
    "SELECT max(xmin::text::bigint) FROM orders",
    "SELECT age(xmin) FROM orders",
    "SELECT (SELECT xmin FROM orders LIMIT 1)",
    "WITH x AS (SELECT ctid AS c FROM orders) SELECT * FROM x",
    "SELECT s.c FROM (SELECT xmin AS c FROM customers) AS s",
    "SELECT id FROM orders WHERE EXISTS (SELECT 1 FROM customers AS c WHERE c.xmin = orders.xmin)",
    "SELECT c.name FROM customers AS c JOIN orders AS o ON o.ctid = c.ctid",
    "SELECT code FROM countries WHERE xmin IS NOT NULL",
    "SELECT row_to_json(t) FROM (SELECT ctid, id FROM orders) AS t",
};

TEST(AdversarialSqlSystemColumns, ReadsAreRefused) {
  auto t1 = Env::get().tenant(1);
  for (const char* sql : kReads) {
    SCOPED_TRACE(sql);
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(refused_by_rule(r));
    EXPECT_TRUE(no_leak(r));
    ASSERT_TRUE(t1->alive());
  }
}

// A fresh own row's ctid / xmin is the attack: the block number and offset count every
// tenant's rows, the xid every tenant's write transactions.
const std::vector<const char*> kWrites = {
    "INSERT INTO customers (id, tenant_id, name) VALUES (190, 1, 'acme-ctid') RETURNING ctid",
    "INSERT INTO customers (id, tenant_id, name) VALUES (191, 1, 'acme-xmin') RETURNING xmin",
    "INSERT INTO customers (id, tenant_id, name) VALUES (192, 1, 'acme-cmin') RETURNING cmin, cmax",
    "UPDATE orders SET status = status WHERE id = 101 RETURNING ctid",
    "UPDATE orders AS o SET status = o.status WHERE o.id = 101 RETURNING o.xmin",
    "UPDATE orders SET status = 'paid' WHERE id = 101 AND xmin = '5'",
    "DELETE FROM orders WHERE id = 0 RETURNING xmax",
    "DELETE FROM orders WHERE ctid = '(0,1)'",
    "INSERT INTO customers (id, tenant_id, name) VALUES (193, 1, 'acme-x') ON CONFLICT (tenant_id, id) DO UPDATE SET "
    "name = excluded.name WHERE customers.xmin IS NOT NULL",
};

TEST(AdversarialSqlSystemColumns, WritesCannotReturnOrTestThem) {
  auto t1 = Env::get().tenant(1);
  for (const char* sql : kWrites) {
    SCOPED_TRACE(sql);
    ASSERT_TRUE(t1->exec("BEGIN").ok);  // rolled back: a write that got through changes nothing
    QueryResult r = t1->exec(sql);
    t1->exec("ROLLBACK");
    EXPECT_TRUE(refused_by_rule(r));
    EXPECT_TRUE(no_leak(r));
    ASSERT_TRUE(t1->alive());
  }
}

TEST(AdversarialSqlSystemColumns, ExtendedProtocolIsRefusedToo) {
  auto t1 = Env::get().tenant(1);
  QueryResult r = t1->exec_params("SELECT ctid, xmin FROM orders WHERE id = $1", {"101"});
  EXPECT_TRUE(refused_by_rule(r));
  EXPECT_TRUE(t1->alive());
}

// tableoid is the table's own oid (the same for every tenant): still readable.
TEST(AdversarialSqlSystemColumns, TableoidStaysReadable) {
  auto t1 = Env::get().tenant(1);
  QueryResult r = t1->exec("SELECT tableoid::regclass::text, o.tableoid::regclass::text FROM orders AS o ORDER BY id LIMIT 1");
  ASSERT_TRUE(r.ok) << r.message;
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0][0].value_or(""), "orders");
  EXPECT_TRUE(no_leak(r));
}

}  // namespace
}  // namespace rowguard::testing::adversarial
