// Proves the test fixture itself works: the throwaway PostgreSQL 15 starts, the example
// schema loads, and role app can log in over TCP with SCRAM (what rowguard does upstream).
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

#include "tests/support/pg_server.h"
#include "tests/support/process.h"

namespace rowguard::testing {
namespace {

CommandResult psql_over_tcp(const PgServer& pg, const std::string& user, const std::string& password,
                            const std::string& sql) {
  const std::string conninfo = "host=" + pg.host() + " port=" + std::to_string(pg.port()) + " user=" + user +
                               " dbname=appdb sslmode=disable";
  return run_command({pg_bin("psql"), conninfo, "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql},
                     {{"PGPASSWORD", password}, {"PGCONNECT_TIMEOUT", "10"}});
}

TEST(RunCommand, CapturesOutputExitCodeAndStdin) {
  CommandResult r = run_command({"/bin/sh", "-c", "cat; echo oops >&2; exit 3"}, {}, "hello\n");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "hello\n");
  EXPECT_EQ(r.err, "oops\n");
}

TEST(RunCommand, PassesExtraEnvironment) {
  CommandResult r = run_command({"/bin/sh", "-c", "printf %s \"$ROWGUARD_TEST_VAR\""}, {{"ROWGUARD_TEST_VAR", "v1"}});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "v1");
}

TEST(RunCommand, KillsOnTimeout) {
  CommandResult r = run_command({"sleep", "30"}, {}, "", 1);
  EXPECT_EQ(r.exit_code, -1);
}

TEST(RunCommand, ReportsMissingProgram) {
  CommandResult r = run_command({"/nonexistent/rowguard-no-such-program"});
  EXPECT_EQ(r.exit_code, 127);
}

TEST(FreeTcpPort, ReturnsUsablePort) {
  int port = free_tcp_port();
  EXPECT_GT(port, 0);
  EXPECT_FALSE(tcp_port_open("127.0.0.1", port));
}

TEST(PgServer, StartsPostgres15) {
  PgServer& pg = PgServer::shared();
  EXPECT_GT(pg.port(), 0);
  EXPECT_TRUE(tcp_port_open(pg.host(), pg.port()));
  CommandResult version = pg.psql_super("select version()");
  ASSERT_EQ(version.exit_code, 0) << describe(version);
  EXPECT_NE(version.out.find("PostgreSQL 15"), std::string::npos) << version.out;
}

TEST(PgServer, ReportsSqlErrors) {
  CommandResult r = PgServer::shared().psql_super("select * from no_such_table");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("no_such_table"), std::string::npos) << r.err;
}

TEST(PgServer, LoadsExampleSchema) {
  PgServer& pg = PgServer::shared();
  ASSERT_NO_THROW(pg.load_example_schema());
  CommandResult tables = pg.psql_super(
      "select string_agg(tablename || ':' || tableowner, ',' order by tablename) from pg_tables "
      "where schemaname = 'public'",
      "appdb");
  ASSERT_EQ(tables.exit_code, 0) << describe(tables);
  EXPECT_EQ(tables.out, "audit_log:app,countries:app,customers:app,orders:app\n");

  CommandResult tenants = pg.psql_super("select string_agg(distinct tenant_id::text, ',') from orders", "appdb");
  ASSERT_EQ(tenants.exit_code, 0) << describe(tenants);
  EXPECT_EQ(tenants.out, "1,2,3\n");

  // Loading twice starts from scratch (no duplicate-key errors, same data).
  ASSERT_NO_THROW(pg.load_example_schema());
  CommandResult count = pg.psql_super("select count(*) from orders", "appdb");
  EXPECT_EQ(count.out, "9\n");
}

TEST(PgServer, AppLogsInOverTcpWithScram) {
  PgServer& pg = PgServer::shared();
  ASSERT_NO_THROW(pg.load_example_schema());
  CommandResult r = psql_over_tcp(pg, "app", "secret", "select current_user || ' ' || count(*) from orders");
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, "app 9\n");

  CommandResult is_super = pg.psql_super("select rolsuper from pg_roles where rolname = 'app'");
  EXPECT_EQ(is_super.out, "f\n");
}

TEST(PgServer, RejectsWrongPasswordOverTcp) {
  PgServer& pg = PgServer::shared();
  ASSERT_NO_THROW(pg.load_example_schema());
  CommandResult r = psql_over_tcp(pg, "app", "wrong", "select 1");
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_NE(r.err.find("password authentication failed"), std::string::npos) << r.err;
}

TEST(PgServer, SeparateInstanceStopsAndCleansUp) {
  std::string dir;
  {
    PgServer pg;
    dir = pg.socket_dir();
    EXPECT_NE(pg.port(), PgServer::shared().port());
    CommandResult r = pg.psql_super("select 1");
    ASSERT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_EQ(r.out, "1\n");
  }
  EXPECT_EQ(read_text_file(dir + "/data/PG_VERSION"), "");
  EXPECT_NE(::access(dir.c_str(), F_OK), 0) << dir << " still exists";
}

}  // namespace
}  // namespace rowguard::testing
