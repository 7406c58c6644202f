// End-to-end tests: real clients (psql, pgbench, psycopg2) talk to a running rowguard that
// sits in front of a throwaway PostgreSQL 15 loaded with examples/schema.sql and uses the
// policy examples/rowguard.toml (its two addresses replaced by the test's ports). What the
// clients see through rowguard is compared with what the superuser sees directly.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/pg_server.h"
#include "tests/support/process.h"

namespace rowguard::testing {
namespace {

const std::map<std::string, std::string> kPasswords = {
    {"t1", "pw1"}, {"t2", "pw2"}, {"t3", "pw3"}, {"dba", "pwdba"}};

// examples/rowguard.toml with its listen and upstream addresses turned into placeholders.
std::string example_config_template() {
  const std::string path = source_dir() + "/examples/rowguard.toml";
  std::string text = read_text_file(path);
  if (text.find("\"127.0.0.1:6432\"") == std::string::npos || text.find("\"127.0.0.1:5432\"") == std::string::npos)
    throw std::runtime_error(path + " does not contain the expected listen/upstream addresses");
  text = replace_all(text, "\"127.0.0.1:6432\"", "\"{{LISTEN}}\"");
  return replace_all(text, "\"127.0.0.1:5432\"", "\"{{UPSTREAM}}\"");
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

bool has_line(const std::string& text, const std::string& line) {
  auto lines = lines_of(text);
  return std::find(lines.begin(), lines.end(), line) != lines.end();
}

class PsqlE2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      pg_ = &PgServer::shared();
      pg_->load_example_schema();
      baseline_ = snapshot();
      rowguard_ = std::make_unique<RowguardProcess>(example_config_template(), *pg_);
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }

  static void TearDownTestSuite() {
    if (rowguard_) {
      int code = rowguard_->stop();
      std::cerr << "rowguard exited with code " << code << " on SIGTERM\n";
    }
    rowguard_.reset();
  }

  void SetUp() override {
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    ASSERT_TRUE(rowguard_->running()) << "rowguard is not running any more; log:\n"
                                      << tail_lines(rowguard_->log(), 60);
  }

  void TearDown() override {
    if (!setup_error_.empty()) return;
    if (HasFailure()) std::cerr << "--- rowguard log (tail) ---\n" << tail_lines(rowguard_->log(), 40) << "---\n";
    if (snapshot() != baseline_) {  // a statement that should have been stopped got through
      std::cerr << "example data changed by the test; reloading examples/schema.sql\n";
      pg_->load_example_schema();
    }
  }

  // All example data as the superuser sees it.
  static std::string snapshot() {
    return super("TABLE orders ORDER BY id") + super("TABLE customers ORDER BY id") +
           super("TABLE countries ORDER BY code") + super("SELECT count(*) FROM audit_log");
  }

  // Runs sql as superuser directly on appdb and returns its output (-At).
  static std::string super(const std::string& sql) {
    CommandResult r = pg_->psql_super(sql, "appdb");
    if (r.exit_code != 0) ADD_FAILURE() << "superuser query failed: " << sql << "\n" << describe(r);
    return r.out;
  }

  // Runs sql through rowguard as user (with the user's password from the example policy).
  static CommandResult as(const std::string& user, const std::string& sql) {
    return rowguard_->psql(user, kPasswords.at(user), sql);
  }

  static CommandResult script_as(const std::string& user, const std::string& script) {
    return rowguard_->psql_script(user, kPasswords.at(user), script);
  }

  static void expect_denied(const CommandResult& r) {
    EXPECT_TRUE(contains(r.err, "42501")) << "expected SQLSTATE 42501; " << describe(r);
    EXPECT_NE(r.exit_code, 0) << describe(r);
    EXPECT_NE(r.exit_code, 2) << "psql lost the connection; " << describe(r);
  }

  static PgServer* pg_;
  static std::unique_ptr<RowguardProcess> rowguard_;
  static std::string setup_error_;
  static std::string baseline_;
};

PgServer* PsqlE2e::pg_ = nullptr;
std::unique_ptr<RowguardProcess> PsqlE2e::rowguard_;
std::string PsqlE2e::setup_error_;
std::string PsqlE2e::baseline_;

// --- session setup ---------------------------------------------------------------------------

// SET TIME ZONE INTERVAL '[+-]HH:MM' HOUR TO MINUTE (Sequelize's connect) is forwarded in another
// spelling (sqlrewrite/utility.cc): the zone it sets must be the one PostgreSQL sets for the
// original statement, for east and west offsets and with or without the range.
TEST_F(PsqlE2e, SetTimeZoneIntervalSetsTheZonePostgresSets) {
  for (const std::string interval : {"'+00:00' HOUR TO MINUTE", "'-08:00' HOUR TO MINUTE", "'+05:45' HOUR TO MINUTE",
                                     "'5:30'", "'-03:30'"}) {
    const std::string sql = "SET TIME ZONE INTERVAL " + interval +
                            "; SELECT current_setting('TimeZone') || ' ' || '2024-01-01 00:00:00+00'::timestamptz::text";
    const std::vector<std::string> direct = lines_of(super(sql));
    ASSERT_FALSE(direct.empty()) << sql;
    CommandResult r = as("t1", sql);
    ASSERT_EQ(r.exit_code, 0) << describe(r);
    const std::vector<std::string> through = lines_of(r.out);  // psql -c also prints the SET tag
    ASSERT_FALSE(through.empty()) << describe(r);
    EXPECT_EQ(through.back(), direct.back()) << sql;
  }
}

// --- reads -----------------------------------------------------------------------------------

TEST_F(PsqlE2e, Tenant1SeesExactlyItsOrders) {
  const std::string own = super("SELECT id FROM orders WHERE tenant_id = 1 ORDER BY id");
  const std::string other = super("SELECT id FROM orders WHERE tenant_id = 2 ORDER BY id");
  ASSERT_FALSE(own.empty());
  ASSERT_FALSE(other.empty());

  CommandResult r = as("t1", "SELECT id FROM orders ORDER BY id");
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, own);
  for (const auto& id : lines_of(other)) EXPECT_FALSE(has_line(r.out, id)) << "t1 sees tenant 2's order " << id;
}

TEST_F(PsqlE2e, Tenant2SeesExactlyItsOrders) {
  const std::string own = super("SELECT id FROM orders WHERE tenant_id = 2 ORDER BY id");
  CommandResult r = as("t2", "SELECT id FROM orders ORDER BY id");
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, own);
  EXPECT_NE(r.out, super("SELECT id FROM orders WHERE tenant_id = 1 ORDER BY id"));
}

TEST_F(PsqlE2e, Tenant3SeesOnlyItsCustomers) {
  CommandResult r = as("t3", "SELECT name FROM customers ORDER BY name");
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, super("SELECT name FROM customers WHERE tenant_id = 3 ORDER BY name"));
  for (const auto& name : lines_of(r.out)) EXPECT_EQ(name.rfind("initech-", 0), 0u) << name;
}

TEST_F(PsqlE2e, BypassUserSeesAllRows) {
  CommandResult r = as("dba", "SELECT id FROM orders ORDER BY id");
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, super("SELECT id FROM orders ORDER BY id"));

  CommandResult tenants = as("dba", "SELECT count(DISTINCT tenant_id) FROM orders");
  ASSERT_EQ(tenants.exit_code, 0) << describe(tenants);
  EXPECT_EQ(tenants.out, "3\n");
}

TEST_F(PsqlE2e, JoinReturnsOnlyOwnTenantRows) {
  CommandResult r =
      as("t1", "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id");
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, super("SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id "
                         "WHERE o.tenant_id = 1 AND c.tenant_id = 1 ORDER BY o.id"));
  ASSERT_FALSE(r.out.empty());
  for (const auto& row : lines_of(r.out)) EXPECT_TRUE(contains(row, "|acme-")) << row;
}

TEST_F(PsqlE2e, GlobalTableReadableButNotWritable) {
  const std::string countries = super("SELECT code, name FROM countries ORDER BY code");
  CommandResult read = as("t1", "SELECT code, name FROM countries ORDER BY code");
  ASSERT_EQ(read.exit_code, 0) << describe(read);
  EXPECT_EQ(read.out, countries);

  CommandResult write = as("t1", "INSERT INTO countries (code, name) VALUES ('XX', 'Nowhere')");
  expect_denied(write);
  EXPECT_EQ(super("SELECT code, name FROM countries ORDER BY code"), countries);
}

// --- writes ----------------------------------------------------------------------------------

TEST_F(PsqlE2e, CrossTenantUpdateChangesNothing) {
  const std::string before = super("SELECT amount FROM orders WHERE id = 201");
  ASSERT_NE(before, "0.00\n");
  CommandResult r = as("t1", "UPDATE orders SET amount = 0 WHERE id = 201");
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(has_line(r.out, "UPDATE 0")) << describe(r);
  EXPECT_EQ(super("SELECT amount FROM orders WHERE id = 201"), before);
}

TEST_F(PsqlE2e, OwnTenantUpdateWorks) {
  CommandResult r = as("t1", "UPDATE orders SET status = 'archived' WHERE id IN (101, 201)");
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(has_line(r.out, "UPDATE 1")) << describe(r);
  EXPECT_EQ(super("SELECT id || ':' || status FROM orders WHERE id IN (101, 201) ORDER BY id"),
            "101:archived\n201:paid\n");
  super("UPDATE orders SET status = 'paid' WHERE id = 101");
}

TEST_F(PsqlE2e, MovingRowToAnotherTenantIsDenied) {
  CommandResult r = as("t1", "UPDATE orders SET tenant_id = 2 WHERE id = 101");
  expect_denied(r);
  EXPECT_EQ(super("SELECT tenant_id FROM orders WHERE id = 101"), "1\n");
}

TEST_F(PsqlE2e, CrossTenantDeleteDeletesNothing) {
  CommandResult r = as("t1", "DELETE FROM orders WHERE id = 201");
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(has_line(r.out, "DELETE 0")) << describe(r);
  EXPECT_EQ(super("SELECT count(*) FROM orders WHERE id = 201"), "1\n");
}

TEST_F(PsqlE2e, InsertForAnotherTenantIsDenied) {
  CommandResult r = as("t1", "INSERT INTO orders (id, tenant_id, amount) VALUES (999, 2, 1)");
  expect_denied(r);
  EXPECT_EQ(super("SELECT count(*) FROM orders WHERE id = 999"), "0\n");
}

TEST_F(PsqlE2e, InsertWithoutTenantColumnGetsOwnTenant) {
  CommandResult r = as("t1", "INSERT INTO orders (id, amount) VALUES (998, 5)");
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(has_line(r.out, "INSERT 0 1")) << describe(r);
  EXPECT_EQ(super("SELECT tenant_id FROM orders WHERE id = 998"), "1\n");
  super("DELETE FROM orders WHERE id = 998");
}

// --- denials and the session ---------------------------------------------------------------

TEST_F(PsqlE2e, TableOutsideThePolicyIsDenied) {
  CommandResult r = as("t1", "SELECT * FROM audit_log");
  expect_denied(r);
  EXPECT_TRUE(contains(r.err, "rowguard: table \"public.audit_log\" is not in the policy")) << describe(r);
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(PsqlE2e, ConnectionSurvivesADenial) {
  CommandResult r = script_as("t1", "SELECT * FROM audit_log;\nSELECT 42;\n");
  EXPECT_TRUE(contains(r.err, "42501")) << describe(r);
  EXPECT_TRUE(has_line(r.out, "42")) << describe(r);
  EXPECT_EQ(r.exit_code, 0) << describe(r);
}

TEST_F(PsqlE2e, DenialInsideTransactionAbortsIt) {
  CommandResult r = script_as("t1", "BEGIN;\nSELECT * FROM audit_log;\nSELECT 1;\nROLLBACK;\nSELECT 2;\n");
  EXPECT_TRUE(contains(r.err, "42501")) << describe(r);
  EXPECT_TRUE(contains(r.err, "current transaction is aborted")) << describe(r);
  EXPECT_TRUE(contains(r.err, "25P02")) << describe(r);
  EXPECT_FALSE(has_line(r.out, "1")) << "SELECT 1 ran inside the aborted transaction; " << describe(r);
  EXPECT_TRUE(has_line(r.out, "ROLLBACK")) << describe(r);
  EXPECT_TRUE(has_line(r.out, "2")) << describe(r);
}

// --- authentication -----------------------------------------------------------------------------

TEST_F(PsqlE2e, WrongPasswordIsRejected) {
  CommandResult r = rowguard_->psql("t1", "not-pw1", "SELECT 1");
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "password authentication failed")) << describe(r);
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(PsqlE2e, UnknownUserIsRejected) {
  CommandResult r = rowguard_->psql("mallory", "pw1", "SELECT 1");
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_TRUE(contains(r.err, "password authentication failed")) << describe(r);
  EXPECT_TRUE(r.out.empty()) << r.out;
}

// --- other clients -------------------------------------------------------------------------------

TEST_F(PsqlE2e, PgbenchThroughBypassUser) {
  CommandResult init = run_command({pg_bin("pgbench"), "-i", "-s", "1", "-h", pg_->socket_dir(), "-p",
                                    std::to_string(pg_->port()), "-U", "postgres", "appdb"},
                                   {}, "", 300);
  ASSERT_EQ(init.exit_code, 0) << describe(init);
  super("GRANT ALL ON ALL TABLES IN SCHEMA public TO app");

  CommandResult bench = run_command({pg_bin("pgbench"), "-S", "-t", "50", "-c", "2", "-h", "127.0.0.1", "-p",
                                     std::to_string(rowguard_->port()), "-U", "dba", "appdb"},
                                    {{"PGPASSWORD", "pwdba"}, {"PGCONNECT_TIMEOUT", "10"}}, "", 300);
  super("DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers");
  ASSERT_EQ(bench.exit_code, 0) << describe(bench);
  EXPECT_TRUE(contains(bench.out, "number of transactions actually processed: 100/100")) << describe(bench);
  EXPECT_TRUE(contains(bench.out, "number of failed transactions: 0")) << describe(bench);
}

constexpr const char* kPsycopg2Script = R"PY(
import sys
import psycopg2
import psycopg2.errors

conn = psycopg2.connect(sys.argv[1], password=sys.argv[2], connect_timeout=10)
cur = conn.cursor()
cur.execute("SELECT id, tenant_id FROM orders ORDER BY id")
rows = cur.fetchall()
print("ids=" + ",".join(str(r[0]) for r in rows))
print("tenants=" + ",".join(sorted({str(r[1]) for r in rows})))
try:
    cur.execute("UPDATE orders SET tenant_id = 1 WHERE id = 201")
    print("update=allowed")
except psycopg2.errors.InsufficientPrivilege as e:
    print("update=denied " + e.pgcode)
conn.rollback()
cur.execute("SELECT 7")
print("after=%d" % cur.fetchone()[0])
conn.close()
)PY";

TEST_F(PsqlE2e, Psycopg2SimpleProtocol) {
  std::string expected_ids;
  for (const auto& id : lines_of(super("SELECT id FROM orders WHERE tenant_id = 2 ORDER BY id")))
    expected_ids += (expected_ids.empty() ? "" : ",") + id;

  CommandResult r = run_command({"/usr/bin/python3", "-c", kPsycopg2Script, rowguard_->conninfo("t2"), "pw2"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(has_line(r.out, "ids=" + expected_ids)) << describe(r);
  EXPECT_TRUE(has_line(r.out, "tenants=2")) << describe(r);
  EXPECT_TRUE(has_line(r.out, "update=denied 42501")) << describe(r);
  EXPECT_TRUE(has_line(r.out, "after=7")) << describe(r);
  EXPECT_EQ(super("SELECT tenant_id FROM orders WHERE id = 201"), "2\n");
}

}  // namespace
}  // namespace rowguard::testing
