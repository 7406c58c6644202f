// Differential oracle (issue 4, item 5): tests/integration/differential.py generates random
// statements, runs each as tenant T through rowguard on oracle_full (all tenants' rows) and
// directly on oracle_ref_T (only tenant T's rows), and checks that rowguard either denies the
// statement or gives the same result and leaves the same table contents. This test creates the
// role and the databases, starts rowguard with a policy for them, runs the script and, for each
// mismatch the script reports, prints what rowguard rewrote the statement to.
//
// Environment (all optional):
//   ROWGUARD_ORACLE_STATEMENTS=N   statements to generate (default: the script's 3000)
//   ROWGUARD_LONG=1                --long: 100000 statements (set by `scripts/test --long`)
//   ROWGUARD_ORACLE_LONG=1         the same, for this test only
//   ROWGUARD_ORACLE_SEED=N         generator seed (default: the script's fixed seed)
//   ROWGUARD_ORACLE_ARGS="..."     more arguments for the script, split at spaces
//                                  (e.g. "--sql-file /tmp/x.sql --tenant 2" to replay statements)
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "policy/policy.h"
#include "sqlrewrite/rewriter.h"
#include "tests/support/pg_server.h"
#include "tests/support/process.h"

namespace rowguard::testing {
namespace {

constexpr const char* kAppRole = "oracle_app";
constexpr const char* kAppPassword = "oracle-secret";

const char* kPolicyTemplate = R"toml(
[proxy]
listen = "{{LISTEN}}"
upstream = "{{UPSTREAM}}"
upstream_user = "oracle_app"
upstream_password = "oracle-secret"
upstream_database = "oracle_full"

[tenancy]
default_column = "tenant_id"
unknown_tables = "deny"

[[tenants]]
user = "t1"
password = "pw1"
tenant = "1"

[[tenants]]
user = "t2"
password = "pw2"
tenant = "2"

[[tenants]]
user = "t3"
password = "pw3"
tenant = "3"

# differential.py RELOADs on the admin console after creating the tables, so that rowguard reads
# their keys (the schema snapshot).
[[bypass]]
user = "oracle_admin"
password = "oracle-admin-pw"

[tables."public.accounts"]
column = "tenant_id"

[tables."public.projects"]
column = "tenant_id"
# projects' primary key is id alone (a legacy key; the generator keeps each tenant's ids in its
# own block): shared knowingly, so its writes are forwarded (sqlrewrite/key_check.h); ON
# CONFLICT on it stays refused.
shared_keys = ["projects_pkey"]

[tables."public.tasks"]
column = "tenant_id"

[tables."public.regions"]
global = true

[tables."public.statuses"]
global = true
)toml";

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

void must_psql(const PgServer& pg, const std::string& sql, const std::string& db = "postgres") {
  CommandResult r = pg.psql_super(sql, db);
  ASSERT_EQ(r.exit_code, 0) << sql << "\n" << describe(r);
}

TEST(Differential, RowguardMatchesPerTenantReferenceDatabases) {
  CommandResult python = run_command({"/usr/bin/python3", "-c", "import psycopg2"});
  ASSERT_EQ(python.exit_code, 0) << "/usr/bin/python3 with psycopg2 missing: run scripts/deps (python3-psycopg2)\n"
                                 << describe(python);
  PgServer& pg = PgServer::shared();

  // The role rowguard logs in with upstream (it owns the tables) and the four databases.
  ASSERT_NO_FATAL_FAILURE(must_psql(pg, "DROP DATABASE IF EXISTS oracle_full WITH (FORCE)"));
  for (int t = 1; t <= 3; ++t) {
    ASSERT_NO_FATAL_FAILURE(must_psql(pg, "DROP DATABASE IF EXISTS oracle_ref_" +
                                              std::to_string(t) + " WITH (FORCE)"));
  }
  ASSERT_NO_FATAL_FAILURE(must_psql(pg, std::string("DROP ROLE IF EXISTS ") + kAppRole));
  ASSERT_NO_FATAL_FAILURE(must_psql(pg, std::string("CREATE ROLE ") + kAppRole + " LOGIN PASSWORD '" + kAppPassword +
                                            "' NOSUPERUSER NOCREATEDB NOCREATEROLE"));
  ASSERT_NO_FATAL_FAILURE(must_psql(pg, std::string("CREATE DATABASE oracle_full OWNER ") + kAppRole));
  for (int t = 1; t <= 3; ++t) {
    ASSERT_NO_FATAL_FAILURE(
        must_psql(pg, "CREATE DATABASE oracle_ref_" + std::to_string(t) + " OWNER " + kAppRole));
  }

  RowguardProcess rowguard(kPolicyTemplate, pg, "info");

  const std::string dir = make_temp_dir("rowguard-oracle-");
  const std::string mismatch_file = dir + "/mismatches.tsv";
  std::vector<std::string> argv = {"/usr/bin/python3",
                                   source_dir() + "/tests/integration/differential.py",
                                   "--rowguard-port", std::to_string(rowguard.port()),
                                   "--pg-port", std::to_string(pg.port()),
                                   "--pg-socket-dir", pg.socket_dir(),
                                   "--superuser", "postgres",
                                   "--app-role", kAppRole,
                                   "--admin-user", "oracle_admin", "--admin-password", "oracle-admin-pw",
                                   "--mismatch-file", mismatch_file};
  long statements = 3000;
  if (std::string s = env_or("ROWGUARD_ORACLE_STATEMENTS", ""); !s.empty()) {
    argv.insert(argv.end(), {"--statements", s});
    statements = std::atol(s.c_str());
  } else if (env_or("ROWGUARD_LONG", "") == "1" || env_or("ROWGUARD_ORACLE_LONG", "") == "1") {
    argv.push_back("--long");
    statements = 100000;
  }
  if (std::string s = env_or("ROWGUARD_ORACLE_SEED", ""); !s.empty()) argv.insert(argv.end(), {"--seed", s});
  {
    std::istringstream extra(env_or("ROWGUARD_ORACLE_ARGS", ""));
    for (std::string a; extra >> a;) argv.push_back(a);
  }

  CommandOptions options;
  options.timeout_seconds = static_cast<int>(300 + statements / 20);
  CommandResult r = run_command_with(argv, options);
  std::cout << r.out;
  if (!r.err.empty()) std::cout << "stderr:\n" << r.err << "\n";

  // What rowguard forwarded for each mismatching statement (the rewriter is deterministic, so
  // rewriting it again here gives exactly the text rowguard sent upstream).
  const std::string mismatches = read_text_file(mismatch_file);
  if (!mismatches.empty()) {
    policy::PolicyPtr policy = policy::load_policy(rowguard.config_path());
    std::istringstream lines(mismatches);
    int n = 0;
    for (std::string line; std::getline(lines, line);) {
      auto tab = line.find('\t');
      if (tab == std::string::npos) continue;
      const std::string tenant = line.substr(0, tab);
      const std::string sql = line.substr(tab + 1);
      sqlrewrite::RewriteResult rw = sqlrewrite::rewrite(sql, *policy, tenant);
      std::cout << "\n--- mismatch " << ++n << " as tenant " << tenant << "\n  original : " << sql
                << "\n  rewritten: " << (rw.allowed ? rw.sql : "(denied) " + rw.reason) << "\n";
    }
  }
  remove_tree(dir);

  EXPECT_EQ(r.exit_code, 0) << "the differential oracle failed (exit code " << r.exit_code
                            << "); its report is above. rowguard log tail:\n"
                            << tail_lines(rowguard.log(), 20);
}

}  // namespace
}  // namespace rowguard::testing
