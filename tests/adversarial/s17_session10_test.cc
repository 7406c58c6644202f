// Session 10, issue #17 leftovers: the second review of the builtin function classes. The type
// input functions that look names up in the catalogs (regclassin, regrolein, ...; aclitemin looks
// role names up) were `session` by the generator's "stable -> session" default, and a cstring
// argument is reachable from a literal: a tenant could call them by name although the functions
// doing the same lookup (to_regclass, to_regrole, ...) are classed reads_other_data. Reclassified
// in policy/builtin_function_overrides.txt; the casts psql and drivers write stay allowed.
#include <gtest/gtest.h>

#include <string>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

std::string describe(const QueryResult& r) { return r.ok ? "answered " + r.everything() : r.sqlstate + " " + r.message; }

TEST(Session10S17, CatalogLookupInputFunctionsAreRefused) {
  auto t1 = Env::get().tenant(1);
  for (const std::string sql : {
           "SELECT regclassin('orders')",
           "SELECT pg_catalog.regclassin('public.orders')",
           "SELECT regrolein('t2')",
           "SELECT regnamespacein('pg_temp_3')",
           "SELECT regprocin('now')",
           "SELECT regprocedurein('now()')",
           "SELECT regoperin('+')",
           "SELECT regoperatorin('+(integer,integer)')",
           "SELECT regtypein('int4')",
           "SELECT regcollationin('\"C\"')",
           "SELECT regconfigin('english')",
           "SELECT regdictionaryin('simple')",
           "SELECT aclitemin('t2=r/dba')",
           "SELECT ('orders'::cstring).regclassin",
           "SELECT id FROM orders WHERE regclassin('orders') IS NOT NULL",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.refused()) << sql << " -> " << describe(r);
    if (r.refused()) {  // a call names the function rule; x.regclassin the attribute notation rule
      EXPECT_TRUE(r.message.find("(rule: builtin allowlist and [functions] allow)") != std::string::npos ||
                  r.message.find("(rule: attribute_notation)") != std::string::npos)
          << r.message;
    }
  }
  // What psql, drivers and legacy SQL write stays allowed: casts to the reg* types, the
  // function-style cast regclass(text), to_regclass, text search configurations by name.
  for (const std::string sql : {
           "SELECT 'orders'::regclass::oid > 0",
           "SELECT regclass('orders')::oid > 0",
           "SELECT to_regclass('orders') IS NOT NULL",
           "SELECT to_tsvector('english', 'rowguard filters rows') IS NOT NULL",
           "SELECT int4in('7'), date_in('2026-12-05') IS NOT NULL",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.ok) << sql << " -> " << describe(r);
  }
  EXPECT_TRUE(t1->alive());
}

std::string first(const QueryResult& r) {
  if (!r.ok || r.rows.empty() || r.rows[0].empty() || !r.rows[0][0]) return "<" + r.sqlstate + " " + r.message + ">";
  return *r.rows[0][0];
}

// The job-queue pattern with an OF list, "FOR UPDATE OF o SKIP LOCKED", was refused by the
// deparser check (libpg_query writes "OF oSKIP LOCKED"); rowguard now puts the space back. The
// locks stay per tenant: a second worker of tenant 1 skips tenant 1's locked row, tenant 2 sees
// and locks only its own rows.
TEST(Session10S17, JobQueueWithOfListSkipsOnlyTheTenantsOwnLockedRows) {
  auto w1 = Env::get().tenant(1);
  auto w1b = Env::get().tenant(1);
  auto w2 = Env::get().tenant(2);
  const std::string next =
      "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id LIMIT 1 "
      "FOR UPDATE OF o SKIP LOCKED";
  for (auto* c : {w1.get(), w1b.get(), w2.get()}) ASSERT_TRUE(c->exec("BEGIN").ok);
  const std::string a = first(w1->exec(next));
  const std::string b = first(w1b->exec(next));
  const std::string c = first(w2->exec(next));
  EXPECT_TRUE(a.starts_with("1")) << a;
  EXPECT_TRUE(b.starts_with("1")) << b;
  EXPECT_NE(a, b);
  EXPECT_TRUE(c.starts_with("2")) << c;
  QueryResult nowait = w1b->exec("SELECT id FROM orders o WHERE id = " + a + " FOR UPDATE OF o NOWAIT");
  EXPECT_EQ(nowait.sqlstate, "55P03") << describe(nowait);  // tenant 1's own lock
  for (auto* conn : {w1.get(), w1b.get(), w2.get()}) ASSERT_TRUE(conn->exec("ROLLBACK").ok);
  QueryResult other = w2->exec("SELECT id FROM orders o FOR SHARE OF o NOWAIT");
  EXPECT_TRUE(other.ok) << describe(other);
  for (const auto& row : other.rows) EXPECT_TRUE(row[0] && row[0]->starts_with("2")) << other.everything();
}

// FETCH / MOVE of a quoted mixed-case cursor name ran into the deparser check (the deparser writes
// the name unquoted): an over-refusal left by red team 9. The cursor reads only tenant 1's rows.
TEST(Session10S17, FetchFromAQuotedMixedCaseCursor) {
  auto t1 = Env::get().tenant(1);
  ASSERT_TRUE(t1->exec("BEGIN").ok);
  QueryResult d = t1->exec("DECLARE \"MixedCase\" CURSOR FOR SELECT id FROM orders ORDER BY id");
  ASSERT_TRUE(d.ok) << describe(d);
  QueryResult f = t1->exec("FETCH 2 FROM \"MixedCase\"");
  ASSERT_TRUE(f.ok) << describe(f);
  ASSERT_EQ(f.rows.size(), 2u);
  for (const auto& row : f.rows) EXPECT_TRUE(row[0] && row[0]->starts_with("1")) << f.everything();
  QueryResult m = t1->exec("MOVE NEXT IN \"MixedCase\"");
  EXPECT_TRUE(m.ok) << describe(m);
  QueryResult rest = t1->exec("FETCH ALL FROM \"MixedCase\"");
  ASSERT_TRUE(rest.ok) << describe(rest);
  for (const auto& row : rest.rows) EXPECT_TRUE(row[0] && row[0]->starts_with("1")) << rest.everything();
  EXPECT_FALSE(has_other_tenant_marker(f.everything() + rest.everything()));
  // The lower-case name is another cursor: PostgreSQL's error, not another tenant's rows.
  QueryResult lower = t1->exec("FETCH 1 FROM mixedcase");
  EXPECT_FALSE(lower.ok);
  EXPECT_TRUE(t1->exec("ROLLBACK").ok);
}

}  // namespace
}  // namespace rowguard::testing::adversarial
