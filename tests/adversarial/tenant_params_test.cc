// Transaction pooling with the tenant as a parameter (issue #16 item 2): a protocol-prepared
// statement's server-side text carries the tenant as $n that rowguard binds itself, so one
// server statement serves every tenant. Two tenants on ONE server connection ([pool] size = 1,
// workers = 1) prepare the same shape: the server parses it once (counted in its log with
// log_min_duration_statement = 0), and each tenant still sees only its own rows, whatever the
// parameter formats; a client can never supply rowguard's parameters.
#include <libpq-fe.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

class TenantParams : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string config = example_config_template();
    const std::string proxy = "[proxy]\n";
    config.replace(config.find(proxy), proxy.size(), proxy + "workers = 1\n");
    config += "\n[pool]\nmode = \"transaction\"\nsize = 1\n";
    rg_ = new RowguardProcess(config, Env::get().pg(), "info");
  }
  static void TearDownTestSuite() {
    delete rg_;
    rg_ = nullptr;
  }
  void SetUp() override { log_statements(true); }
  void TearDown() override { log_statements(false); }

  static void log_statements(bool on) {
    auto d = Env::get().direct_super();
    ASSERT_TRUE(d->exec(std::string("ALTER SYSTEM SET log_min_duration_statement = ") + (on ? "0" : "-1")).ok);
    Env::get().pg().reload_config();
  }
  std::unique_ptr<Client> tenant(int n) {
    return std::make_unique<Client>(rg_->conninfo("t" + std::to_string(n)) + " password=pw" + std::to_string(n));
  }
  // The Parses of rowguard's statements the server logged after `from` (an offset in its log).
  static size_t server_parses(size_t from) {
    const std::string log = Env::get().pg().log();
    return occurrences(log.substr(std::min(from, log.size())), " parse rg_");
  }
  static QueryResult result(PGconn* c, PGresult* r) {
    QueryResult out;
    const ExecStatusType s = PQresultStatus(r);
    out.ok = s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK;
    if (!out.ok) {
      const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      out.sqlstate = state != nullptr ? state : "";
      out.message = PQerrorMessage(c);
    }
    for (int i = 0; i < PQntuples(r); ++i) {
      std::vector<std::optional<std::string>> row;
      for (int j = 0; j < PQnfields(r); ++j) {
        row.push_back(PQgetisnull(r, i, j) ? std::nullopt : std::optional<std::string>(PQgetvalue(r, i, j)));
      }
      out.rows.push_back(std::move(row));
    }
    PQclear(r);
    return out;
  }
  static QueryResult prepare(Client& c, const std::string& name, const std::string& sql, const std::vector<Oid>& types) {
    return result(c.raw(), PQprepare(c.raw(), name.c_str(), sql.c_str(), static_cast<int>(types.size()),
                                     types.empty() ? nullptr : types.data()));
  }
  // Runs `name` with `values` (formats: one per value, or none for all text).
  static QueryResult run(Client& c, const std::string& name, const std::vector<std::string>& values,
                         const std::vector<int>& formats = {}) {
    std::vector<const char*> v;
    std::vector<int> lengths;
    for (const auto& s : values) {
      v.push_back(s.data());
      lengths.push_back(static_cast<int>(s.size()));
    }
    return result(c.raw(), PQexecPrepared(c.raw(), name.c_str(), static_cast<int>(values.size()), v.data(),
                                          lengths.data(), formats.empty() ? nullptr : formats.data(), 0));
  }
  // Every row's second column (tenant_id) is `tenant`, and there is at least one row.
  static ::testing::AssertionResult only_tenant(const QueryResult& r, const std::string& tenant) {
    if (!r.ok) return ::testing::AssertionFailure() << r.sqlstate << " " << r.message;
    if (r.rows.empty()) return ::testing::AssertionFailure() << "no rows";
    for (const auto& row : r.rows) {
      if (row.at(1) != tenant) return ::testing::AssertionFailure() << "a row of tenant " << row.at(1).value_or("NULL");
    }
    return ::testing::AssertionSuccess();
  }

  static RowguardProcess* rg_;
};
RowguardProcess* TenantParams::rg_ = nullptr;

std::string int4_binary(int32_t v) {
  const auto u = static_cast<uint32_t>(v);
  return {static_cast<char>(u >> 24), static_cast<char>(u >> 16), static_cast<char>(u >> 8), static_cast<char>(u)};
}

TEST_F(TenantParams, TwoTenantsOnOneServerConnectionShareOneServerStatement) {
  auto one = tenant(1);
  auto two = tenant(2);
  const size_t from = Env::get().pg().log().size();
  const std::string sql = "SELECT id, tenant_id, amount FROM orders WHERE id > $1 ORDER BY id";
  ASSERT_TRUE(prepare(*one, "q", sql, {}).ok);
  ASSERT_TRUE(prepare(*two, "q", sql, {}).ok);
  for (int round = 0; round < 3; ++round) {
    EXPECT_TRUE(only_tenant(run(*one, "q", {"0"}), "1"));
    EXPECT_TRUE(only_tenant(run(*two, "q", {"0"}), "2"));
  }
  // One server connection, one shape, two tenants: parsed once (with the tenant as a constant,
  // each tenant's text was its own server statement: 2).
  EXPECT_EQ(server_parses(from), 1u) << Env::get().pg().log().substr(from);
  // The server ran it with the tenant bound: its log shows the parameters, never a constant.
  const std::string log = Env::get().pg().log().substr(from);
  EXPECT_EQ(log.find("tenant_id = '1'"), std::string::npos) << log;
  EXPECT_NE(log.find("tenant_id = $2"), std::string::npos) << log;
}

TEST_F(TenantParams, BinaryParametersAndDescribeSeeOnlyTheClientsParameters) {
  auto one = tenant(1);
  auto two = tenant(2);
  const std::string sql = "SELECT id, tenant_id FROM orders WHERE id > $1 AND amount >= $2 ORDER BY id";
  ASSERT_TRUE(prepare(*one, "b", sql, {23, 1700}).ok);
  ASSERT_TRUE(prepare(*two, "b", sql, {23, 1700}).ok);
  // One format code per parameter (libpq sends N codes): binary int4, then text (the unit test
  // PooledStatementsTest.TenantParametersExpandTheFormatCodes covers a single code).
  EXPECT_TRUE(only_tenant(run(*one, "b", {int4_binary(0), "0"}, {1, 0}), "1"));
  EXPECT_TRUE(only_tenant(run(*two, "b", {int4_binary(0), "0"}, {1, 0}), "2"));
  // Describe: the client's two parameters, not rowguard's.
  PGresult* d = PQdescribePrepared(two->raw(), "b");
  ASSERT_EQ(PQresultStatus(d), PGRES_COMMAND_OK) << PQerrorMessage(two->raw());
  EXPECT_EQ(PQnparams(d), 2);
  EXPECT_EQ(PQparamtype(d, 0), 23u);
  EXPECT_EQ(PQparamtype(d, 1), 1700u);
  EXPECT_EQ(PQnfields(d), 2);
  PQclear(d);
}

TEST_F(TenantParams, AClientCannotSupplyOrOverrideTheTenantParameter) {
  auto two = tenant(2);
  const std::string sql = "SELECT id, tenant_id FROM orders WHERE id > $1 ORDER BY id";
  ASSERT_TRUE(prepare(*two, "x", sql, {}).ok);
  // The server statement has $2 and $3 for the tenant: values for them are refused as
  // PostgreSQL refuses a wrong parameter count.
  QueryResult r = run(*two, "x", {"0", "1", "1"});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.sqlstate, "08P01") << r.message;
  EXPECT_NE(r.message.find("supplies 3 parameters, but prepared statement \"x\" requires 1"), std::string::npos)
      << r.message;
  EXPECT_TRUE(r.rows.empty());
  // A $2 the client writes itself is the client's, not the tenant's.
  ASSERT_TRUE(prepare(*two, "y", "SELECT id, tenant_id FROM orders WHERE id > $1 AND status <> $2", {}).ok);
  QueryResult own = run(*two, "y", {"0", "1"});
  EXPECT_TRUE(only_tenant(own, "2"));
  // And the session goes on.
  EXPECT_TRUE(only_tenant(run(*two, "x", {"0"}), "2"));
}

TEST_F(TenantParams, SqlExecuteOfRowguardsServerStatementIsRefused) {
  auto one = tenant(1);
  auto two = tenant(2);
  const std::string sql = "SELECT id, tenant_id FROM orders WHERE id > $1 ORDER BY id";
  ASSERT_TRUE(prepare(*one, "q", sql, {}).ok);
  EXPECT_TRUE(only_tenant(run(*one, "q", {"0"}), "1"));  // the one server connection holds it now
  // Tenant 2 names a protocol statement of its own rg_1, then EXECUTEs "it" with tenant 1's value
  // for the server statement's tenant parameters.
  ASSERT_TRUE(prepare(*two, "rg_1", sql, {}).ok);
  for (const char* attack : {"EXECUTE rg_1(0, '1', '1')", "EXECUTE rg_1(0)", "EXPLAIN (COSTS OFF) EXECUTE rg_1(0, '1', '1')"}) {
    QueryResult r = two->exec(attack);
    EXPECT_TRUE(r.refused()) << attack << ": " << r.sqlstate << " " << r.message;
    for (const auto& row : r.rows) EXPECT_NE(row.at(1), std::optional<std::string>("1")) << attack;
  }
  EXPECT_TRUE(only_tenant(run(*two, "rg_1", {"0"}), "2"));
}

// SQL EXECUTE of one's own protocol statement (one namespace, issue #16): its server text takes
// the tenant as parameters after the client's, so EXECUTE's arguments would bind them — tenant 2
// passing '1' for them would read tenant 1's rows. Refused; Bind keeps working.
TEST_F(TenantParams, SqlExecuteOfAProtocolStatementCannotBindTheTenant) {
  auto one = tenant(1);
  auto two = tenant(2);
  const std::string sql = "SELECT id, tenant_id FROM orders WHERE id > $1 ORDER BY id";
  ASSERT_TRUE(prepare(*two, "own", sql, {}).ok);
  EXPECT_TRUE(only_tenant(run(*two, "own", {"0"}), "2"));
  for (const char* attack : {"EXECUTE own(0, '1', '1')", "EXECUTE own(0, '1')", "EXECUTE own(0)",
                             "EXPLAIN (COSTS OFF) EXECUTE own(0, '1', '1')", "SELECT 1; EXECUTE own(0, '1', '1')"}) {
    QueryResult r = two->exec(attack);
    EXPECT_FALSE(r.ok) << attack << ": answered " << r.everything();
    for (const auto& row : r.rows) EXPECT_NE(row.at(1), std::optional<std::string>("1")) << attack;
    EXPECT_EQ(r.everything().find("acme"), std::string::npos) << attack;
  }
  EXPECT_TRUE(only_tenant(run(*two, "own", {"0"}), "2"));
  EXPECT_TRUE(two->alive());
}

}  // namespace
}  // namespace rowguard::testing::adversarial
