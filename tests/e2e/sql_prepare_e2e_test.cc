// End-to-end tests of SQL-level PREPARE / EXECUTE / DEALLOCATE with psql through rowguard (in
// front of a throwaway PostgreSQL 15 loaded with examples/schema.sql, policy
// examples/rowguard.toml). The statement of a PREPARE is rewritten like any other; an EXECUTE
// whose argument feeds the tenant column must name the session tenant; unknown names are
// refused. Bypass users are relayed unchanged.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/pg_server.h"
#include "tests/support/process.h"

namespace rowguard::testing {
namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

bool has_line(const std::string& text, const std::string& line) {
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l == line) return true;
  }
  return false;
}

class SqlPrepareE2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      pg_ = &PgServer::shared();
      pg_->load_example_schema();
      baseline_ = snapshot();
      std::string text = read_text_file(source_dir() + "/examples/rowguard.toml");
      text = replace_all(text, "\"127.0.0.1:6432\"", "\"{{LISTEN}}\"");
      text = replace_all(text, "\"127.0.0.1:5432\"", "\"{{UPSTREAM}}\"");
      rowguard_ = std::make_unique<RowguardProcess>(text, *pg_);
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  static void TearDownTestSuite() {
    if (rowguard_) rowguard_->stop();
    rowguard_.reset();
  }
  void SetUp() override {
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    ASSERT_TRUE(rowguard_->running()) << tail_lines(rowguard_->log(), 60);
  }
  void TearDown() override {
    if (!setup_error_.empty()) return;
    if (HasFailure()) std::cerr << "--- rowguard log (tail) ---\n" << tail_lines(rowguard_->log(), 40) << "---\n";
    const std::string now = snapshot();
    EXPECT_EQ(now, baseline_) << "the example data changed: a write that should have been stopped got through";
    if (now != baseline_) pg_->load_example_schema();
  }

  static std::string snapshot() { return super("TABLE orders ORDER BY id") + super("TABLE customers ORDER BY id"); }
  static std::string super(const std::string& sql) {
    CommandResult r = pg_->psql_super(sql, "appdb");
    if (r.exit_code != 0) ADD_FAILURE() << "superuser query failed: " << sql << "\n" << describe(r);
    return r.out;
  }
  // A psql session fed statement by statement (one Query message each).
  static CommandResult script(const std::string& user, const std::string& password, const std::string& text) {
    return rowguard_->psql_script(user, password, text);
  }
  static size_t count(const std::string& text, const std::string& needle) {
    size_t n = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
  }

  static PgServer* pg_;
  static std::unique_ptr<RowguardProcess> rowguard_;
  static std::string setup_error_;
  static std::string baseline_;
};

PgServer* SqlPrepareE2e::pg_ = nullptr;
std::unique_ptr<RowguardProcess> SqlPrepareE2e::rowguard_;
std::string SqlPrepareE2e::setup_error_;
std::string SqlPrepareE2e::baseline_;

TEST_F(SqlPrepareE2e, OwnTenantWorksOtherTenantRefusedConnectionUsable) {
  CommandResult r = script("t1", "pw1",
                           "PREPARE ins AS INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, 1);\n"
                           "EXECUTE ins(5201, 2);\n"
                           "SELECT 'after refusal';\n"
                           "EXECUTE ins(5201, 1);\n"
                           "PREPARE sel AS SELECT id FROM orders WHERE id > $1 ORDER BY id;\n"
                           "EXECUTE sel(0);\n"
                           "DELETE FROM orders WHERE id = 5201;\n");
  EXPECT_EQ(count(r.err, "42501"), 1u) << describe(r);
  EXPECT_TRUE(contains(r.err, "argument 2 of EXECUTE \"ins\" feeds the tenant column")) << describe(r);
  EXPECT_TRUE(has_line(r.out, "after refusal")) << describe(r);
  EXPECT_TRUE(has_line(r.out, "INSERT 0 1")) << describe(r);
  // The SELECT sees tenant 1's rows (and the new one) only.
  EXPECT_TRUE(contains(r.out, "101\n102\n103\n5201\n")) << describe(r);
  EXPECT_FALSE(has_line(r.out, "201")) << describe(r);
  EXPECT_TRUE(has_line(r.out, "DELETE 1")) << describe(r);
}

TEST_F(SqlPrepareE2e, PrepareAndExecuteInOneQueryString) {
  // psql -c sends the whole string as one simple Query message.
  CommandResult ok = rowguard_->psql("t1", "pw1",
                                     "PREPARE c AS SELECT count(*) FROM orders WHERE id IN ($1, 201); EXECUTE c(101)");
  EXPECT_EQ(ok.exit_code, 0) << describe(ok);
  EXPECT_TRUE(has_line(ok.out, "1")) << describe(ok);
  CommandResult bad = rowguard_->psql(
      "t1", "pw1",
      "PREPARE i AS INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, 1); EXECUTE i(5202, '2')");
  EXPECT_TRUE(contains(bad.err, "42501")) << describe(bad);
  EXPECT_NE(bad.exit_code, 2) << describe(bad);
}

TEST_F(SqlPrepareE2e, DeallocateThenExecuteIsRefused) {
  CommandResult r = script("t1", "pw1",
                           "PREPARE s AS SELECT 1;\n"
                           "EXECUTE s;\n"
                           "DEALLOCATE s;\n"
                           "EXECUTE s;\n"
                           "SELECT 'still here';\n");
  EXPECT_EQ(count(r.err, "42501"), 1u) << describe(r);
  EXPECT_TRUE(contains(r.err, "EXECUTE of prepared statement \"s\", which this session has not prepared")) << describe(r);
  EXPECT_TRUE(has_line(r.out, "still here")) << describe(r);
}

TEST_F(SqlPrepareE2e, ArgumentsAreWalkedLikeExpressions) {
  CommandResult r = script("t1", "pw1",
                           "PREPARE s AS SELECT $1::int;\n"
                           "EXECUTE s((SELECT count(*) FROM audit_log));\n"
                           "EXECUTE s(length(pg_read_file('/etc/passwd')));\n"
                           "EXECUTE s((SELECT count(*) FROM orders));\n");
  // Two refusals by rowguard; the filtered subquery reaches the server, which refuses
  // subqueries in EXECUTE parameters itself (0A000).
  EXPECT_EQ(count(r.err, "42501"), 2u) << describe(r);
  EXPECT_TRUE(contains(r.err, "audit_log")) << describe(r);
  EXPECT_TRUE(contains(r.err, "pg_read_file")) << describe(r);
  EXPECT_TRUE(contains(r.err, "0A000")) << describe(r);
  EXPECT_TRUE(contains(r.err, "cannot use subquery in EXECUTE parameter")) << describe(r);
}

TEST_F(SqlPrepareE2e, CreateTableAsExecuteAndExplainAnalyzeExecuteStayDenied) {
  CommandResult r = script("t1", "pw1",
                           "PREPARE s AS SELECT id FROM orders;\n"
                           "CREATE TABLE stolen AS EXECUTE s;\n"
                           "EXPLAIN ANALYZE EXECUTE s;\n"
                           "EXPLAIN (COSTS OFF) EXECUTE s;\n");
  // EXPLAIN is refused by the example policy ([tenancy] explain defaults to "refuse"), with COSTS OFF too.
  EXPECT_EQ(count(r.err, "42501"), 3u) << describe(r);
  EXPECT_TRUE(contains(r.err, "CreateTableAsStmt is not allowed")) << describe(r);
  EXPECT_TRUE(contains(r.err, "rule: explain)")) << describe(r);
  EXPECT_FALSE(contains(r.out, " on orders")) << describe(r);
}

TEST_F(SqlPrepareE2e, BypassUserIsRelayedUnchanged) {
  // The DBA's EXECUTE writes any tenant: nothing is checked for a bypass session.
  CommandResult r = script("dba", "pwdba",
                           "PREPARE ins AS INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, 1);\n"
                           "EXECUTE ins(5203, 2);\n"
                           "DELETE FROM orders WHERE id = 5203;\n");
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(r.err.empty()) << describe(r);
  EXPECT_TRUE(has_line(r.out, "INSERT 0 1")) << describe(r);
  EXPECT_TRUE(has_line(r.out, "DELETE 1")) << describe(r);
}

}  // namespace
}  // namespace rowguard::testing
