// The generated tables policy/builtin_function_names.inc and builtin_operator_names.inc
// (scripts/gen-builtin-functions) against the test server's own pg_proc / pg_operator: a
// PostgreSQL upgrade that adds or changes a function callable with one argument (what attribute
// notation x.f calls) must be noticed. Regenerate with scripts/gen-builtin-functions.
#include <gtest/gtest.h>

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
