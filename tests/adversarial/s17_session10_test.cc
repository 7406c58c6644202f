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

}  // namespace
}  // namespace rowguard::testing::adversarial
