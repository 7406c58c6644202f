// The classified builtin functions (policy/builtin_functions.h): candidates by name and number of
// arguments, the classes that may be called, and the calls whose status the classification
// decides. The table itself is checked against the classification by ctest
// unit.BuiltinFunctionTable (scripts/gen-builtin-functions --check) and against a real server by
// tests/integration/builtin_names_test.cc.
#include "policy/builtin_functions.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace rowguard::policy {
namespace {

using Verdict = BuiltinCall::Verdict;

TEST(BuiltinFunctions, EveryRowHasOneClassAndTheTableIsWhole) {
  std::set<std::uint32_t> oids;
  for (const BuiltinFunction& f : builtin_functions()) {
    EXPECT_TRUE(oids.insert(f.oid).second) << f.name << " oid " << f.oid << " twice";
    EXPECT_NE(function_class_name(f.cls), "?") << f.name;
  }
  EXPECT_GT(oids.size(), 3000u);  // PostgreSQL 15 has 3233 functions in pg_catalog
}

TEST(BuiltinFunctions, ClassesOfWellKnownFunctions) {
  auto cls = [](std::string_view name, std::string_view args) {
    for (const BuiltinFunction& f : builtin_functions_named(name)) {
      if (f.args == args) return std::string(function_class_name(f.cls));
    }
    return std::string("missing");
  };
  EXPECT_EQ(cls("lower", "text"), "pure");
  EXPECT_EQ(cls("random", ""), "pure");
  EXPECT_EQ(cls("now", ""), "session");
  EXPECT_EQ(cls("current_setting", "text"), "session");
  EXPECT_EQ(cls("to_char", "timestamp with time zone,text"), "session");
  EXPECT_EQ(cls("pg_relation_size", "regclass"), "reads_other_data");
  EXPECT_EQ(cls("pg_stat_get_numscans", "oid"), "reads_other_data");
  EXPECT_EQ(cls("pg_read_file", "text"), "reads_other_data");
  EXPECT_EQ(cls("currval", "regclass"), "reads_other_data");
  EXPECT_EQ(cls("age", "xid"), "reads_other_data");
  EXPECT_EQ(cls("pg_prepared_statement", ""), "reads_other_data");  // shared server sessions
  EXPECT_EQ(cls("query_to_xml", "text,boolean,boolean,text"), "runs_sql");
  EXPECT_EQ(cls("ts_stat", "text"), "runs_sql");
  EXPECT_EQ(cls("ts_rewrite", "tsquery,text"), "runs_sql");
  EXPECT_EQ(cls("ts_rewrite", "tsquery,tsquery,tsquery"), "pure");
  EXPECT_EQ(cls("set_config", "text,text,boolean"), "changes_state");
  EXPECT_EQ(cls("setval", "regclass,bigint"), "changes_state");
  EXPECT_EQ(cls("pg_notify", "text,text"), "changes_state");
  EXPECT_EQ(cls("lo_import", "text"), "changes_state");
  EXPECT_EQ(cls("pg_terminate_backend", "integer,bigint"), "changes_state");
  EXPECT_EQ(cls("pg_advisory_lock", "bigint"), "changes_state");
  EXPECT_EQ(cls("pg_sleep", "double precision"), "sleeps_or_burns");
  EXPECT_EQ(cls("generate_series", "integer,integer"), "pure");  // bounded by the statement limits
  EXPECT_EQ(cls("repeat", "text,integer"), "pure");
  EXPECT_EQ(cls("concat", "VARIADIC \"any\""), "session");  // output functions of its arguments
}

TEST(BuiltinFunctions, ArityCountsDefaultsAndVariadic) {
  auto f = [](std::string_view name, std::string_view args) -> const BuiltinFunction& {
    for (const BuiltinFunction& g : builtin_functions_named(name)) {
      if (g.args == args) return g;
    }
    throw std::runtime_error("missing " + std::string(name));
  };
  const BuiltinFunction& to_json = f("jsonb_path_query", "jsonb,jsonpath,jsonb,boolean");  // 2 defaults
  EXPECT_FALSE(to_json.accepts(1));
  EXPECT_TRUE(to_json.accepts(2));
  EXPECT_TRUE(to_json.accepts(4));
  EXPECT_FALSE(to_json.accepts(5));
  const BuiltinFunction& concat_ws = f("concat_ws", "text,VARIADIC \"any\"");
  EXPECT_TRUE(concat_ws.accepts(1));  // broad: a VARIADIC parameter may take an empty array
  EXPECT_TRUE(concat_ws.accepts(7));
}

TEST(BuiltinFunctions, EveryCandidateMustBeAllowed) {
  EXPECT_EQ(builtin_call("lower", 1).verdict, Verdict::kAllowed);
  EXPECT_EQ(builtin_call("lower", 0).verdict, Verdict::kNotBuiltin);
  // ts_rewrite(query, target, substitute) computes; ts_rewrite(query, 'SELECT ...') runs SQL.
  EXPECT_EQ(builtin_call("ts_rewrite", 3).verdict, Verdict::kAllowed);
  const BuiltinCall two = builtin_call("ts_rewrite", 2);
  EXPECT_EQ(two.verdict, Verdict::kDenied);
  ASSERT_NE(two.denied, nullptr);
  EXPECT_EQ(two.denied->args, "tsquery,text");
  EXPECT_EQ(builtin_call("ts_rewrite", std::nullopt).verdict, Verdict::kDenied);  // any number: every overload
  // age(xid) reads the next transaction id but no tenant can make an xid (rule transaction_ids):
  // age(timestamp) is what a one-argument call can reach.
  EXPECT_EQ(builtin_call("age", 1).verdict, Verdict::kAllowed);
  // pg_sleep and friends; reads of other data; state changes.
  for (const char* name : {"pg_sleep", "pg_sleep_for", "pg_sleep_until", "pg_relation_size", "pg_read_file", "set_config",
                           "setval", "lo_import", "query_to_xml", "ts_stat", "pg_stat_get_numscans", "pg_prepared_statement",
                           "pg_cursor", "pg_listening_channels", "pg_get_backend_memory_contexts", "pg_get_replication_slots",
                           "pg_ls_dir", "pg_terminate_backend", "pg_database_size", "currval", "lastval"}) {
    EXPECT_EQ(builtin_call(name, std::nullopt).verdict, Verdict::kDenied) << name;
  }
  EXPECT_EQ(builtin_call("my_function", std::nullopt).verdict, Verdict::kNotBuiltin);
  EXPECT_EQ(builtin_call("LOWER", 1).verdict, Verdict::kNotBuiltin);  // names are as the parser folds them
}

TEST(BuiltinFunctions, IntrospectionListIsKeptWhateverTheClass) {
  for (std::string_view name : builtin_introspection_names()) {
    EXPECT_EQ(builtin_call(name, std::nullopt).verdict, Verdict::kAllowed) << name;
  }
  EXPECT_EQ(builtin_call("pg_get_viewdef", 1).verdict, Verdict::kAllowed);
  EXPECT_EQ(builtin_call("pg_get_viewdef", 1).denied, nullptr);
}

TEST(BuiltinFunctions, NowAllowedByClass) {
  // Function-style casts and pure functions the hand list did not name (issue #17).
  for (const char* name : {"float4", "int2", "textlen", "hashint4", "enum_range", "current_query",
                           "jsonb_path_query_tz", "regclass", "pg_size_bytes"}) {
    EXPECT_TRUE(builtin_function_allowed(name, std::nullopt)) << name;
  }
}

// Second review of the classes (issue #17, session 10): the type input functions that look names
// up in the catalogs (as to_regclass & co. do, reads_other_data by the rules) were `session` by
// the stable default; a cstring argument is reachable from a literal, so `regclassin('orders')`
// was callable. The casts ('orders'::regclass) stay allowed, as psql and drivers write them.
TEST(BuiltinFunctions, CatalogLookupInputFunctionsReadOtherData) {
  for (const char* name : {"regclassin", "regcollationin", "regconfigin", "regdictionaryin", "regnamespacein",
                           "regoperatorin", "regoperin", "regprocedurein", "regprocin", "regrolein", "regtypein",
                           "aclitemin"}) {
    EXPECT_EQ(builtin_call(name, 1).verdict, Verdict::kDenied) << name;
    EXPECT_EQ(builtin_call(name, std::nullopt).verdict, Verdict::kDenied) << name;
    for (const BuiltinFunction& f : builtin_functions_named(name)) {
      EXPECT_EQ(function_class_name(f.cls), "reads_other_data") << name << "(" << f.args << ")";
    }
  }
  // Catalog lookups psql and drivers write: reads_other_data, kept by the introspection list.
  for (const char* name : {"regclass", "oidvectortypes"}) {
    for (const BuiltinFunction& f : builtin_functions_named(name)) {
      EXPECT_EQ(function_class_name(f.cls), "reads_other_data") << name << "(" << f.args << ")";
    }
    EXPECT_EQ(builtin_call(name, 1).verdict, Verdict::kAllowed) << name;
  }
  // Input functions that parse without a lookup stay pure / session.
  EXPECT_EQ(builtin_call("int4in", 1).verdict, Verdict::kAllowed);
  EXPECT_EQ(builtin_call("date_in", 1).verdict, Verdict::kAllowed);  // DateStyle: the session's
}

}  // namespace
}  // namespace rowguard::policy
