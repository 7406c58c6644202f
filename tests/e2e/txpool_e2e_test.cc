// Transaction pooling end to end ([pool] mode = "transaction", issue #16): clients of three
// tenants through a pool of 2 server connections (workers = 1), with psycopg2 and pgbench.
// The scenarios live in tests/e2e/drivers/txpool_client.py (one per test); each asserts what
// its clients see and what a direct connection sees in pg_stat_activity.
#include <gtest/gtest.h>

#include <iostream>
#include <memory>
#include <string>

#include "tests/support/pg_server.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace rowguard::testing {
namespace {

constexpr const char* kPython = "/usr/bin/python3";

std::string pooled_config(int size, int query_wait_timeout) {
  std::string text = read_text_file(source_dir() + "/examples/rowguard.toml");
  text = replace_all(text, "\"127.0.0.1:6432\"", "\"{{LISTEN}}\"");
  text = replace_all(text, "\"127.0.0.1:5432\"", "\"{{UPSTREAM}}\"");
  text = replace_all(text, "upstream_user = \"app\"\n", "upstream_user = \"app\"\nworkers = 1\n");
  text = replace_all(text, "unknown_tables = \"deny\"\n", "unknown_tables = \"deny\"\nexplain = \"costs_off\"\n");
  return text + "\n[functions]\nallow = [\"pg_sleep\"]\n\n[pool]\nmode = \"transaction\"\nsize = " + std::to_string(size) +
         "\nquery_wait_timeout = " + std::to_string(query_wait_timeout) + "\n";
}

class TxPoolE2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pg_ = new PgServer();
    pg_->load_example_schema();
  }
  static void TearDownTestSuite() {
    delete pg_;
    pg_ = nullptr;
  }
  void SetUp() override {
    pg_->load_example_schema();  // every scenario starts from the example data
    rg_ = std::make_unique<RowguardProcess>(pooled_config(2, 2), *pg_, "info");
  }
  void TearDown() override {
    if (HasFailure()) std::cerr << tail_lines(rg_->log(), 60);
    rg_.reset();
  }
  void scenario(const std::string& name) {
    CommandResult r = run_command({kPython, source_dir() + "/tests/e2e/drivers/txpool_client.py", name,
                                   std::to_string(rg_->port()), pg_->socket_dir(), std::to_string(pg_->port())},
                                  {}, "", 60);
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_NE(r.out.find("ok " + name), std::string::npos) << describe(r);
  }

  static PgServer* pg_;
  std::unique_ptr<RowguardProcess> rg_;
};
PgServer* TxPoolE2e::pg_ = nullptr;

TEST_F(TxPoolE2e, TwentyClientsOfThreeTenantsOnTwoServerConnections) { scenario("isolation"); }
TEST_F(TxPoolE2e, SettingsFollowTheClient) { scenario("settings"); }
TEST_F(TxPoolE2e, QueryWaitTimeoutGives53300AndTheClientGoesOn) { scenario("wait_timeout"); }
TEST_F(TxPoolE2e, BackendKilledMidTransactionGives08006AndTheNextTransactionWorks) { scenario("kill"); }
TEST_F(TxPoolE2e, ClientGoneMidTransactionLeavesNoOpenTransaction) { scenario("vanish"); }
TEST_F(TxPoolE2e, PinnedClientKeepsItsBackend) { scenario("pinned"); }
TEST_F(TxPoolE2e, CancelReachesOnlyTheRunningStatement) { scenario("cancel"); }
TEST_F(TxPoolE2e, ListenDoesNotPinAndNotificationsReachTheRightTenant) {
  rg_ = std::make_unique<RowguardProcess>(pooled_config(1, 2), *pg_, "info");  // one server connection
  scenario("listen");
}
TEST_F(TxPoolE2e, ListenerConnectionLostComesBackAndListensAgain) { scenario("listen_lost"); }
TEST_F(TxPoolE2e, SqlPreparedStatementsFollowTheClient) { scenario("sql_prepared"); }
TEST_F(TxPoolE2e, IdleTransactionTimeoutEndsTheClientAndClosesItsServerConnection) {
  rg_.reset();
  rg_ = std::make_unique<RowguardProcess>(pooled_config(2, 2) + "idle_transaction_timeout = 2\n", *pg_, "info");
  scenario("idle_transaction");
  EXPECT_NE(rg_->log().find("terminating connection due to idle-in-transaction timeout (rowguard: no request for 2 s "
                            "inside a transaction holding a pooled server connection ([pool] idle_transaction_timeout)"),
            std::string::npos)
      << tail_lines(rg_->log(), 20);
}

// SIGTERM with a pinned client (holding its server connection) and an idle one:
// rowguard ends cleanly (exit 0), its pool's connections with it.
TEST_F(TxPoolE2e, ShutdownWithPinnedAndBusyClientsExitsCleanly) {
  const std::string dir = make_temp_dir("txpool-shutdown");
  const std::string script =
      "import psycopg2, sys, time\n"
      "def c(u, p):\n"
      "    x = psycopg2.connect(host='127.0.0.1', port=int(sys.argv[1]), user=u, password=p, dbname='appdb')\n"
      "    return x\n"
      "a = c('t1', 'pw1'); a.autocommit = True; a.cursor().execute('SELECT pg_advisory_lock(7)')\n"
      "b = c('t2', 'pw2'); b.autocommit = True; b.cursor().execute('SELECT count(*) FROM orders')\n"
      "print('ready', flush=True)\n"
      "time.sleep(60)\n";
  BackgroundProcess clients({kPython, "-c", script, std::to_string(rg_->port())}, dir + "/out.txt");
  ASSERT_TRUE(wait_until([&] { return read_text_file(dir + "/out.txt").find("ready") != std::string::npos; },
                         std::chrono::seconds(20)))
      << read_text_file(dir + "/out.txt");
  EXPECT_EQ(rg_->stop(), 0) << tail_lines(rg_->log(), 30);
  clients.stop();
  remove_tree(dir);
}

// The pool's Prometheus metrics, scraped over HTTP around real pooled traffic (pool of 1, one
// worker, so every count is exact): checkouts and the wait histogram, a forced 53300 (waiting
// gauge, SHOW POOLS longest wait while it waits), servers active/idle, a pinned client, and
// server connections opened / closed by reason (error, dirty, cancel; idle_timeout and lifetime
// with short timeouts). Scenarios "metrics" and "metrics_idle" in drivers/txpool_client.py.
void pool_metrics_scenario(const std::string& name, const std::string& pool_extra) {
  PgServer& pg = PgServer::shared();
  pg.load_example_schema();
  const int metrics_port = free_tcp_port();
  const std::string config = pooled_config(1, 2) + pool_extra + "\n[metrics]\nlisten = \"127.0.0.1:" +
                             std::to_string(metrics_port) + "\"\n";
  RowguardProcess rg(config, pg, "info");
  CommandResult r = run_command({kPython, source_dir() + "/tests/e2e/drivers/txpool_client.py", name,
                                 std::to_string(rg.port()), pg.socket_dir(), std::to_string(pg.port())},
                                {{"RG_METRICS_PORT", std::to_string(metrics_port)}}, "", 90);
  EXPECT_EQ(r.exit_code, 0) << describe(r) << tail_lines(rg.log(), 40);
  EXPECT_NE(r.out.find("ok " + name), std::string::npos) << describe(r);
}

TEST(TxPoolMetricsE2e, ScrapedPoolMetricsFollowPooledTraffic) { pool_metrics_scenario("metrics", ""); }

TEST(TxPoolMetricsE2e, IdleTimeoutAndLifetimeClosesAreCounted) {
  pool_metrics_scenario("metrics_idle", "server_idle_timeout = 1\nserver_lifetime = 2\n");
}

// pgbench with 50 tenant clients through a pool of 5 (tenant t1's own rows; a wrong count fails
// the transaction, see drivers/pgbench_orders.sql), simple, extended and prepared protocol. With
// -M prepared every client uses named statements: they follow the client from one server
// connection to the next (a pinned client would hold one of the 5 and the others would time out).
TEST(TxPoolPgbenchE2e, FiftyClientsOnFiveServerConnections) {
  PgServer pg;
  pg.load_example_schema();
  RowguardProcess rg(pooled_config(5, 30), pg, "info");
  for (const std::string mode : {"simple", "extended", "prepared"}) {
    // -M prepared: pgbench prepares each statement with a synchronous PQprepare on the client's
    // thread; one thread driving several clients would wait there for a server connection that
    // another of its clients holds in a transaction (a deadlock against any transaction pooler,
    // ended by query_wait_timeout), so each client gets its own thread.
    const std::string threads = mode == "prepared" ? "50" : "2";
    CommandResult bench = run_command({pg_bin("pgbench"), "-n", "-M", mode, "-c", "50", "-j", threads, "-t", "50", "-f",
                                       source_dir() + "/tests/e2e/drivers/pgbench_orders.sql", "-h", "127.0.0.1", "-p",
                                       std::to_string(rg.port()), "-U", "t1", "appdb"},
                                      {{"PGPASSWORD", "pw1"}, {"PGCONNECT_TIMEOUT", "10"}}, "", 120);
    std::string pins;  // why clients kept their server connection, if they did
    {
      const std::string log = rg.log();
      for (size_t at = 0; (at = log.find("pinned to its server connection", at)) != std::string::npos && pins.size() < 2000;
           ++at) {
        pins += log.substr(at, log.find('\n', at) - at) + "\n";
      }
    }
    EXPECT_EQ(bench.exit_code, 0) << mode << "\n" << describe(bench) << pins << tail_lines(rg.log(), 10);
    EXPECT_NE(bench.out.find("number of transactions actually processed: 2500/2500"), std::string::npos)
        << mode << "\n" << describe(bench);
    EXPECT_NE(bench.out.find("number of failed transactions: 0"), std::string::npos) << mode << "\n" << describe(bench);
  }
  CommandResult backends = pg.psql_super(
      "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'", "appdb");
  EXPECT_LE(std::stoi(backends.out.empty() ? "0" : backends.out), 5) << describe(backends);
}

}  // namespace
}  // namespace rowguard::testing
