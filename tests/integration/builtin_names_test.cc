// The generated tables policy/builtin_function_names.inc and builtin_operator_names.inc
// (scripts/gen-builtin-functions) against the test server's own pg_proc / pg_operator: a
// PostgreSQL upgrade that adds or changes a function callable with one argument (what attribute
// notation x.f calls) must be noticed. Regenerate with scripts/gen-builtin-functions.
#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <string>

#include "policy/policy.h"
#include "tests/support/pg_server.h"

namespace rowguard::testing {
namespace {

TEST(BuiltinNames, FunctionTableMatchesTheServer) {
  CommandResult r = PgServer::shared().psql_super(
      "SELECT proname || '|' || bool_and(provolatile = 'i') FROM pg_proc "
      "WHERE pronamespace = 'pg_catalog'::regnamespace AND prokind IN ('f', 'a', 'w') "
      "AND pronargs >= 1 AND pronargs - pronargdefaults <= 1 GROUP BY proname");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    const auto bar = line.rfind('|');
    ASSERT_NE(bar, std::string::npos) << line;
    const std::string name = line.substr(0, bar);
    const bool immutable = line.substr(bar + 1) == "true";
    EXPECT_EQ(policy::builtin_one_arg_function(name), std::optional<bool>(immutable))
        << name << ": regenerate policy/builtin_function_names.inc (scripts/gen-builtin-functions)";
    ++n;
  }
  EXPECT_GT(n, 500);
}

// The hand allowlist (policy/builtin_functions.cc) against the server: every pg_catalog overload
// of an allowed name computes from its arguments (immutable or stable), except the volatile ones
// reviewed here, which read only the clock, a random source or the caller's session. A new entry
// that is volatile (changes server state, sleeps, reads other data at run time) fails here until
// it is reviewed; the functions that run SQL text or read whole tables must never be listed.
TEST(BuiltinNames, AllowedFunctionsArePureOrReviewed) {
  const std::set<std::string> reviewed_volatile = {
      "clock_timestamp", "gen_random_uuid", "pg_is_in_recovery", "pg_jit_available", "pg_partition_ancestors",
      "random", "setseed", "timeofday"};
  std::string names;
  for (std::string_view n : policy::builtin_allowed_function_names()) names += (names.empty() ? "'" : ", '") + std::string(n) + "'";
  CommandResult r = PgServer::shared().psql_super(
      "SELECT DISTINCT proname FROM pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace "
      "AND provolatile = 'v' AND proname IN (" + names + ")");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string name;
  while (std::getline(lines, name)) {
    EXPECT_TRUE(reviewed_volatile.contains(name)) << name << " is volatile: review it before allowing it";
  }
  for (const char* never : {"query_to_xml", "table_to_xml", "cursor_to_xml", "schema_to_xml", "database_to_xml",
                            "query_to_xml_and_xmlschema", "table_to_xmlschema", "pg_sleep", "pg_read_file",
                            "set_config", "dblink", "lo_import"}) {
    EXPECT_FALSE(policy::builtin_function_allowed(never)) << never;
  }
}

TEST(BuiltinNames, OperatorTableMatchesTheServer) {
  CommandResult r = PgServer::shared().psql_super(
      "SELECT DISTINCT oprname FROM pg_operator WHERE oprnamespace = 'pg_catalog'::regnamespace");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string name;
  int n = 0;
  while (std::getline(lines, name)) {
    EXPECT_TRUE(policy::builtin_operator_name(name)) << name << ": regenerate policy/builtin_operator_names.inc";
    ++n;
  }
  EXPECT_GT(n, 50);
}

}  // namespace
}  // namespace rowguard::testing
