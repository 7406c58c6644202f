// Learning other tenants' values from errors (issue #13, item 2): rowguard's tenant predicate is
// an ordinary qual, and PostgreSQL orders a scan's quals by cost (createplan.c
// order_qual_clauses; the EquivalenceClass clause derived from `tenant_id = '1'` is appended
// after the other quals). A user qual as cheap as the tenant's, evaluated first on another
// tenant's row, fails on a value only that row has, and the error tells tenant 1 the value
// exists. rowguard guards every such qual with the tenant checks (sqlrewrite/qual_guard.h).
//
// Each case runs as tenant 1 through a rowguard of its own (the example policy plus the tables
// made here) and asserts that the outcome is exactly the one it would have if tenant 2's rows did
// not exist: tenant 1's rows are chosen so that every oracle succeeds on them, tenant 2 holds the
// poisoned values (negative v, an s that is not a number, a j without "a" as object, ...).
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

constexpr const char* kSetup = R"sql(
DROP VIEW IF EXISTS qg_view;
DROP TABLE IF EXISTS qg_items, qg_parts, qg_tags CASCADE;
CREATE TABLE qg_items (id int PRIMARY KEY, tenant_id int NOT NULL, v numeric NOT NULL,
                       s text NOT NULL, j jsonb NOT NULL, ref int);
-- tenant 1: ids 1..1000, v > 0, s numeric, j.a an object; tenant 2: 1001..2000 the same, plus
-- the poisoned row 5001 (v < 0, s not a number, j.a a number, v = 0 for division).
INSERT INTO qg_items SELECT g, CASE WHEN g <= 1000 THEN 1 ELSE 2 END, g, g::text,
                            jsonb_build_object('a', jsonb_build_object('b', g)), g % 50 + 1
                     FROM generate_series(1, 2000) g;
INSERT INTO qg_items VALUES (5001, 2, -1, 'x', '{"a": 7}', 0), (5002, 2, 0, 'y', '{"a": 8}', 0);
CREATE TABLE qg_tags (id int PRIMARY KEY, tenant_id int NOT NULL, item_id int, w numeric NOT NULL);
INSERT INTO qg_tags SELECT g, CASE WHEN g <= 1000 THEN 1 ELSE 2 END, g, g FROM generate_series(1, 2000) g;
INSERT INTO qg_tags VALUES (5001, 2, 5001, -1);
CREATE TABLE qg_parts (id int, tenant_id int NOT NULL, v numeric NOT NULL, PRIMARY KEY (tenant_id, id))
  PARTITION BY LIST (tenant_id);
CREATE TABLE qg_parts_1 PARTITION OF qg_parts FOR VALUES IN (1);
CREATE TABLE qg_parts_2 PARTITION OF qg_parts FOR VALUES IN (2);
CREATE TABLE qg_parts_d PARTITION OF qg_parts DEFAULT;
INSERT INTO qg_parts SELECT g, CASE WHEN g <= 1000 THEN 1 WHEN g <= 2000 THEN 2 ELSE 3 END, g
                     FROM generate_series(1, 3000) g;
INSERT INTO qg_parts VALUES (5001, 2, -1), (5002, 3, -1);
-- A view over two policy tables, tenant-scoped by its items' tenant_id.
CREATE VIEW qg_view AS SELECT i.id, i.tenant_id, i.v, t.w FROM qg_items i JOIN qg_tags t ON t.item_id = i.id;
ALTER VIEW qg_view OWNER TO app;
ALTER TABLE qg_items OWNER TO app; ALTER TABLE qg_tags OWNER TO app; ALTER TABLE qg_parts OWNER TO app;
ANALYZE qg_items; ANALYZE qg_tags; ANALYZE qg_parts;
)sql";

class QualOrder : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto super = Env::get().direct_super();
    QueryResult r = super->exec(kSetup);
    ASSERT_TRUE(r.ok) << r.message;
    std::string config = example_config_template();
    config += "\n[tables.\"public.qg_items\"]\ncolumn = \"tenant_id\"\n"
              "[tables.\"public.qg_tags\"]\ncolumn = \"tenant_id\"\n"
              "[tables.\"public.qg_parts\"]\ncolumn = \"tenant_id\"\n"
              "[tables.\"public.qg_view\"]\ncolumn = \"tenant_id\"\n";
    rowguard_ = new RowguardProcess(config, Env::get().pg(), "info");
  }
  static void TearDownTestSuite() {
    delete rowguard_;
    rowguard_ = nullptr;
  }

  std::unique_ptr<Client> tenant1(bool force_seqscan = true) {
    auto c = std::make_unique<Client>(rowguard_->conninfo("t1") + " password=pw1");
    if (force_seqscan) {
      EXPECT_TRUE(c->exec("SET enable_indexscan = off").ok);
      EXPECT_TRUE(c->exec("SET enable_bitmapscan = off").ok);
    }
    return c;
  }

  // The query must answer as if tenant 2's rows did not exist: ok, with `rows` rows.
  static void expect_own_answer(Client& c, const std::string& sql, size_t rows) {
    QueryResult r = c.exec(sql);
    EXPECT_TRUE(r.ok) << sql << "\n  -> " << r.sqlstate << " " << r.message;
    if (r.ok) EXPECT_EQ(r.rows.size(), rows) << sql;
    EXPECT_TRUE(c.alive());
  }

  static RowguardProcess* rowguard_;
};

RowguardProcess* QualOrder::rowguard_ = nullptr;

TEST_F(QualOrder, CheapFunctionErrorsDoNotRevealOtherTenantsValues) {
  auto c = tenant1();
  // sqrt of a negative number: one function, as cheap as the tenant check.
  expect_own_answer(*c, "SELECT id FROM qg_items WHERE sqrt(v) IS NOT NULL", 1000);
  // strict jsonpath: an error only where j.a is not an object.
  expect_own_answer(*c, "SELECT id FROM qg_items WHERE jsonb_path_exists(j, 'strict $.a.b')", 1000);
  // a cast that fails on some values, a division by zero on v = 0.
  expect_own_answer(*c, "SELECT id FROM qg_items WHERE s::int > 0", 1000);
  expect_own_answer(*c, "SELECT id FROM qg_items WHERE 1 / v > 0", 1000);
  expect_own_answer(*c, "SELECT id FROM qg_items WHERE CASE WHEN v = -1 THEN 1 / (id - id) ELSE 0 END = 0", 1000);
  expect_own_answer(*c, "SELECT id FROM qg_items i WHERE ln(i.v) IS NOT NULL AND i.id < 100000", 1000);
}

TEST_F(QualOrder, UpdateAndDeleteWhereAreGuarded) {
  auto c = tenant1();
  ASSERT_TRUE(c->exec("BEGIN").ok);
  QueryResult u = c->exec("UPDATE qg_items SET ref = ref WHERE sqrt(v) IS NOT NULL");
  EXPECT_TRUE(u.ok) << u.message;
  EXPECT_EQ(u.command_tag, "UPDATE 1000");
  QueryResult d = c->exec("DELETE FROM qg_items WHERE 1 / v < 0");
  EXPECT_TRUE(d.ok) << d.message;
  EXPECT_EQ(d.command_tag, "DELETE 0");
  ASSERT_TRUE(c->exec("ROLLBACK").ok);
}

TEST_F(QualOrder, JoinsInnerLeftAndOnClausesAreGuarded) {
  auto c = tenant1();
  expect_own_answer(*c, "SELECT i.id FROM qg_items i JOIN qg_tags t ON t.item_id = i.id AND sqrt(t.w) IS NOT NULL", 1000);
  expect_own_answer(*c, "SELECT i.id FROM qg_items i, qg_tags t WHERE t.item_id = i.id AND sqrt(t.w) IS NOT NULL", 1000);
  // The nullable side's tenant check sits in ON; a user qual in the same ON is guarded too.
  expect_own_answer(*c, "SELECT i.id FROM qg_items i LEFT JOIN qg_tags t ON t.item_id = i.id AND sqrt(t.w) > 0", 1000);
  // A strict WHERE qual on the nullable side turns the LEFT join into an inner one, and both quals
  // then sit on the same scan.
  expect_own_answer(*c, "SELECT i.id FROM qg_items i LEFT JOIN qg_tags t ON t.item_id = i.id WHERE sqrt(t.w) > 0", 1000);
  // An anti-join on the nullable side keeps its meaning (null-extended rows pass the guard).
  expect_own_answer(*c, "SELECT i.id FROM qg_items i LEFT JOIN qg_tags t ON t.item_id = i.id + 1 "
                        "WHERE coalesce(t.w, 0) = 0", 1);
}

TEST_F(QualOrder, PartitionsAndSubqueriesAreGuarded) {
  auto c = tenant1();
  expect_own_answer(*c, "SELECT id FROM qg_parts WHERE sqrt(v) IS NOT NULL", 1000);
  expect_own_answer(*c, "SELECT id FROM (SELECT id, sqrt(v) AS r FROM qg_items) s WHERE s.r IS NOT NULL", 1000);
  expect_own_answer(*c, "SELECT id FROM (SELECT id, 1 / v AS r FROM qg_items) s WHERE s.r > 0", 1000);
  expect_own_answer(*c, "WITH s AS (SELECT id, ln(v) AS r FROM qg_items) SELECT id FROM s WHERE r IS NOT NULL", 1000);
  expect_own_answer(*c, "SELECT id FROM qg_tags t WHERE EXISTS (SELECT 1 FROM qg_items i WHERE i.id = t.item_id "
                        "AND sqrt(i.v) IS NOT NULL)", 1000);
  expect_own_answer(*c, "SELECT id FROM qg_tags t WHERE t.item_id IN (SELECT i.id FROM qg_items i WHERE 1 / i.v > 0)", 1000);
  expect_own_answer(*c, "SELECT t.id FROM qg_tags t, LATERAL (SELECT sqrt(t.w) AS r) s WHERE s.r IS NOT NULL", 1000);
  // An aliased join hides its tables from the outer WHERE.
  expect_own_answer(*c, "SELECT x.w FROM (qg_items i LEFT JOIN qg_tags t ON t.item_id = i.id) AS x WHERE sqrt(x.w) > 0", 1000);
  // HAVING without an aggregate is moved to WHERE by the planner.
  expect_own_answer(*c, "SELECT v FROM qg_items GROUP BY v HAVING sqrt(v) IS NOT NULL", 1000);
  expect_own_answer(*c, "SELECT id FROM qg_items WHERE sqrt(v) IS NOT NULL FOR UPDATE", 1000);
}

TEST_F(QualOrder, OnConflictDoUpdateWhereIsGuarded) {
  auto c = tenant1(false);
  ASSERT_TRUE(c->exec("BEGIN").ok);
  // The conflicting row 5001 is tenant 2's: its WHERE must not run user code on it.
  QueryResult r = c->exec("INSERT INTO qg_items (id, v, s, j) VALUES (5001, 1, '1', '{}') "
                          "ON CONFLICT (id) DO UPDATE SET ref = 1 WHERE sqrt(qg_items.v) IS NOT NULL");
  // The arbiter (id) lacks the tenant column, so the statement is refused before it can reach the
  // row (sqlrewrite/on_conflict_check.h); were it allowed, the guard would keep sqrt() off it.
  EXPECT_TRUE(r.refused() || (r.ok && r.command_tag == "INSERT 0 0")) << r.sqlstate << " " << r.message;
  EXPECT_EQ(r.message.find("square root"), std::string::npos) << r.message;
  ASSERT_TRUE(c->exec("ROLLBACK").ok);
}

TEST_F(QualOrder, MergeOnAndViewsAreGuarded) {
  auto c = tenant1();
  ASSERT_TRUE(c->exec("BEGIN").ok);
  QueryResult m = c->exec("MERGE INTO qg_items t USING (SELECT 5001 AS id) s ON t.id = s.id AND sqrt(t.v) IS NOT NULL "
                          "WHEN MATCHED THEN UPDATE SET ref = 1");
  EXPECT_TRUE(m.ok) << m.message;
  EXPECT_EQ(m.command_tag, "MERGE 0");
  ASSERT_TRUE(c->exec("ROLLBACK").ok);
  // The view's rows are tenant 1's by their item; the join partner's poisoned w (tenant 2) must
  // not be read before the item's tenant check.
  expect_own_answer(*c, "SELECT id FROM qg_view WHERE sqrt(w) IS NOT NULL", 1000);
}

TEST_F(QualOrder, IndexScansOnUserColumnsStayAndAreSafe) {
  auto c = tenant1(false);
  expect_own_answer(*c, "SELECT id FROM qg_items WHERE id = 42", 1);
  expect_own_answer(*c, "SELECT id FROM qg_items WHERE id = 5001", 0);
  expect_own_answer(*c, "SELECT id FROM qg_items WHERE id > 990 AND sqrt(v) IS NOT NULL", 10);
  expect_own_answer(*c, "SELECT id FROM qg_items WHERE id >= 5001 AND 1 / v > 0", 0);
}

}  // namespace
}  // namespace rowguard::testing::adversarial
