// The generated tables policy/builtin_function_table.inc and builtin_operator_table.inc
// (scripts/gen-builtin-functions) against the test server's own pg_proc / pg_operator: every
// function of pg_catalog must be classified (a row with the same oid, name and argument types),
// every operator known with its function. A PostgreSQL upgrade that adds or changes a function
// fails here until the table is regenerated and the new functions are reviewed.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <tuple>

#include "policy/policy.h"
#include "tests/support/pg_server.h"

namespace rowguard::testing {
namespace {

// The rows of `sql`, whose columns are text (operator names hold psql's separator |): each row is
// sent as one tab-joined column.
std::vector<std::vector<std::string>> rows(const std::string& columns, const std::string& from) {
  CommandResult r = PgServer::shared().psql_super("SELECT array_to_string(ARRAY[" + columns + "]::text[], E'\\t') " + from);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::vector<std::string>> out;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<std::string> fields;
    std::string::size_type start = 0;
    for (std::string::size_type tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1) {
      fields.push_back(line.substr(start, tab - start));
    }
    fields.push_back(line.substr(start));
    out.push_back(std::move(fields));
  }
  return out;
}

TEST(BuiltinNames, EveryServerFunctionIsClassified) {
  // The expression of scripts/gen-builtin-functions (PROC_SQL).
  const auto server = rows(
      "p.oid::text, p.proname::text, coalesce((SELECT string_agg(CASE WHEN p.provariadic <> 0 AND a.i = p.pronargs "
      "THEN 'VARIADIC ' ELSE '' END || format_type(a.t, NULL), ',' ORDER BY a.i) "
      "FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(t, i)), ''), p.pronargs::text, p.pronargdefaults::text",
      "FROM pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace");
  std::map<std::uint32_t, const policy::BuiltinFunction*> table;
  for (const policy::BuiltinFunction& f : policy::builtin_functions()) table[f.oid] = &f;
  std::set<std::uint32_t> seen;
  for (const auto& r : server) {
    ASSERT_EQ(r.size(), 5u);
    const auto oid = static_cast<std::uint32_t>(std::stoul(r[0]));
    seen.insert(oid);
    auto it = table.find(oid);
    if (it == table.end()) {
      ADD_FAILURE() << "unclassified: pg_catalog." << r[1] << "(" << r[2] << "): run scripts/gen-builtin-functions";
      continue;
    }
    EXPECT_EQ(it->second->name, r[1]) << oid;
    EXPECT_EQ(it->second->args, r[2]) << r[1];
    EXPECT_EQ(std::to_string(it->second->nargs), r[3]) << r[1];
    EXPECT_EQ(std::to_string(it->second->ndefaults), r[4]) << r[1];
  }
  for (const auto& [oid, f] : table) {
    EXPECT_TRUE(seen.contains(oid)) << f->name << "(" << f->args << ") is not on the server: regenerate the table";
  }
  EXPECT_GT(server.size(), 3000u);
}

TEST(BuiltinNames, EveryServerOperatorIsKnownWithItsFunction) {
  const auto server = rows(
      "o.oprname::text, coalesce(format_type(nullif(o.oprleft, 0), NULL), ''), format_type(o.oprright, NULL), "
      "o.oprcode::oid::regproc::text", "FROM pg_operator o WHERE o.oprnamespace = 'pg_catalog'::regnamespace");
  std::set<std::tuple<std::string, std::string, std::string, std::string>> table;
  for (const policy::BuiltinOperator& o : policy::builtin_operators()) {
    table.emplace(o.name, o.left, o.right, o.function);
  }
  for (const auto& r : server) {
    ASSERT_EQ(r.size(), 4u);
    std::string function = r[3];
    if (function.starts_with("pg_catalog.")) function.erase(0, 11);
    if (function.size() > 1 && function.front() == '"') function = function.substr(1, function.size() - 2);
    EXPECT_TRUE(table.contains({r[0], r[1], r[2], function}))
        << r[0] << " (" << r[1] << ", " << r[2] << ") -> " << function << ": regenerate policy/builtin_operator_table.inc";
  }
  EXPECT_EQ(server.size(), policy::builtin_operators().size());
}

// policy::builtin_call leaves out candidates no call can reach; the server agrees: a value of type
// internal cannot be passed, and an untyped literal does not pick age(xid) over age(timestamp).
TEST(BuiltinNames, UnreachableCandidatesAreUnreachable) {
  for (const char* sql : {"SELECT textrecv(NULL)", "SELECT eqsel(NULL, 0, NULL, 0)", "SELECT int4recv(NULL::internal)"}) {
    CommandResult r = PgServer::shared().psql_super(sql);
    EXPECT_NE(r.exit_code, 0) << sql;
    EXPECT_NE(r.err.find("cannot accept a value of type internal"), std::string::npos) << sql << ": " << r.err;
  }
  CommandResult age = PgServer::shared().psql_super("SELECT age('5')");
  EXPECT_NE(age.exit_code, 0);
  EXPECT_NE(age.err.find("is not unique"), std::string::npos) << age.err;
}

// Spot checks of the classification against what the server runs: the functions a tenant may call
// are pure or session, and those that run SQL, sleep or change state are refused.
TEST(BuiltinNames, RefusedFamiliesAreRefused) {
  for (const char* never : {"query_to_xml", "table_to_xml", "cursor_to_xml", "schema_to_xml", "database_to_xml",
                            "query_to_xml_and_xmlschema", "table_to_xmlschema", "pg_sleep", "pg_read_file",
                            "set_config", "dblink", "lo_import", "ts_stat"}) {
    EXPECT_FALSE(policy::builtin_function_allowed(never)) << never;
  }
}

}  // namespace
}  // namespace rowguard::testing
