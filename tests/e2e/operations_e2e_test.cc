// End-to-end tests of operating rowguard: metrics scraped over HTTP move with traffic, the audit
// log gets one JSON line per denial (and per statement with mode = "all"), SIGHUP reloads the
// policy (a bad file is rejected and the old policy kept, no connection dropped), SIGTERM lets
// an open transaction finish, and the check / explain commands.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <thread>

#include "tests/support/pg_server.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace rowguard::testing {
namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::string example_config_template() {
  std::string text = read_text_file(source_dir() + "/examples/rowguard.toml");
  text = replace_all(text, "\"127.0.0.1:6432\"", "\"{{LISTEN}}\"");
  return replace_all(text, "\"127.0.0.1:5432\"", "\"{{UPSTREAM}}\"");
}

// The value of one metric line "name{labels} value" in a Prometheus exposition, or -1.
double metric(const std::string& text, const std::string& name_and_labels) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name_and_labels + " ", 0) == 0) return std::stod(line.substr(name_and_labels.size() + 1));
  }
  return -1;
}

std::string scrape(int port) {
  CommandResult r = run_command({"curl", "-s", "http://127.0.0.1:" + std::to_string(port) + "/metrics"}, {}, "", 20);
  return r.out;
}

int rowguard_pid(const RowguardProcess& rg) {
  CommandResult r = run_command({"pgrep", "-f", "--", "--config " + rg.config_path()}, {}, "", 10);
  return r.out.empty() ? -1 : std::stoi(r.out);
}

class OperationsE2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      pg_ = &PgServer::shared();
      pg_->load_example_schema();
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }
  static inline PgServer* pg_ = nullptr;
  static inline std::string setup_error_;
};

TEST_F(OperationsE2e, MetricsCountersMoveAndAuditLogRecordsDenials) {
  std::string dir = make_temp_dir("rowguard-ops");
  int metrics_port = free_tcp_port();
  std::string config = example_config_template() + "\n[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port) +
                       "\"\n\n[audit]\nfile = \"" + dir + "/audit.jsonl\"\nmode = \"all\"\nmask_literals = true\n";
  RowguardProcess rg(config, *pg_);
  std::string before = scrape(metrics_port);
  ASSERT_TRUE(contains(before, "rowguard_statements_total")) << before << rg.log();
  double allowed0 = metric(before, "rowguard_statements_total{decision=\"allowed\"}");
  double denied0 = metric(before, "rowguard_statements_total{decision=\"denied\"}");

  rg.psql("t1", "pw1", "SELECT count(*) FROM orders WHERE amount > 10");
  rg.psql("t1", "pw1", "SELECT * FROM audit_log");
  rg.psql("t1", "wrong", "SELECT 1");

  std::string after = scrape(metrics_port);
  EXPECT_EQ(metric(after, "rowguard_statements_total{decision=\"allowed\"}"), allowed0 + 1) << after;
  EXPECT_EQ(metric(after, "rowguard_statements_total{decision=\"denied\"}"), denied0 + 1) << after;
  EXPECT_GE(metric(after, "rowguard_denials_total{rule=\"unknown_tables = \\\"deny\\\"\"}"), 1) << after;
  EXPECT_GE(metric(after, "rowguard_auth_failures_total"), 1) << after;
  EXPECT_GE(metric(after, "rowguard_connections_total"), 3) << after;
  EXPECT_GE(metric(after, "rowguard_rewrite_cache_misses_total"), 2) << after;
  EXPECT_GT(metric(after, "rowguard_client_bytes_sent_total"), 0) << after;
  // Per tenant (t1 is tenant "1", t2 tenant "2"): exactly what was run.
  EXPECT_EQ(metric(after, "rowguard_tenant_statements_total{tenant=\"1\",result=\"allowed\"}"), 1) << after;
  EXPECT_EQ(metric(after, "rowguard_tenant_statements_total{tenant=\"1\",result=\"denied\"}"), 1) << after;
  // A denied statement still makes its (ordered) round trip to the server: two batches timed.
  EXPECT_EQ(metric(after, "rowguard_tenant_statement_seconds_count{tenant=\"1\"}"), 2) << after;
  rg.psql("t2", "pw2", "SELECT count(*) FROM orders");
  rg.psql("t2", "pw2", "SELECT 1");
  rg.psql("t1", "pw1", "SELECT 2");
  std::string later = scrape(metrics_port);
  EXPECT_EQ(metric(later, "rowguard_tenant_statements_total{tenant=\"2\",result=\"allowed\"}"), 2) << later;
  EXPECT_EQ(metric(later, "rowguard_tenant_statements_total{tenant=\"2\",result=\"denied\"}"), 0) << later;
  EXPECT_EQ(metric(later, "rowguard_tenant_statement_seconds_count{tenant=\"2\"}"), 2) << later;
  EXPECT_EQ(metric(later, "rowguard_tenant_statement_seconds_bucket{tenant=\"2\",le=\"+Inf\"}"), 2) << later;
  EXPECT_EQ(metric(later, "rowguard_tenant_statements_total{tenant=\"1\",result=\"allowed\"}"), 2) << later;
  EXPECT_EQ(metric(later, "rowguard_tenant_statement_seconds_count{tenant=\"1\"}"), 3) << later;
  EXPECT_EQ(metric(later, "rowguard_statements_total{decision=\"allowed\"}"), allowed0 + 4) << later;
  EXPECT_FALSE(contains(later, "tenant=\"_other\"")) << later;
  EXPECT_EQ(run_command({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                         "http://127.0.0.1:" + std::to_string(metrics_port) + "/nope"}, {}, "", 10).out,
            "404");

  rg.stop();  // flushes the audit log
  std::string audit = read_text_file(dir + "/audit.jsonl");
  EXPECT_TRUE(std::regex_search(audit, std::regex(
      R"re(\{"time":"[0-9T:.-]+Z","user":"t1","tenant":"1","client":"127\.0\.0\.1:[0-9]+","session":[0-9]+,"fingerprint":"[0-9a-f]+","statement":"SELECT \* FROM audit_log","decision":"denied","rule":"unknown_tables = \\"deny\\"","reason":"rowguard: table \\"public.audit_log\\" is not in the policy)re")))
      << audit;
  // mode = "all" with masked literals: the allowed statement is there, its literal replaced.
  EXPECT_TRUE(contains(audit, "\"statement\":\"SELECT count(*) FROM orders WHERE amount > $1\",\"decision\":\"allowed\""))
      << audit;
  remove_tree(dir);
}

// [metrics] max_tenant_labels caps the tenant label set: the first tenant seen keeps its label,
// the next ones are counted under tenant="_other".
TEST_F(OperationsE2e, TenantLabelsBeyondTheCapAreCountedAsOther) {
  int metrics_port = free_tcp_port();
  std::string config = example_config_template() + "\n[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port) +
                       "\"\nmax_tenant_labels = 1\n";
  RowguardProcess rg(config, *pg_);
  rg.psql("t1", "pw1", "SELECT 1");
  rg.psql("t2", "pw2", "SELECT 1");
  rg.psql("t2", "pw2", "SELECT 2");
  std::string text = scrape(metrics_port);
  EXPECT_EQ(metric(text, "rowguard_tenant_statements_total{tenant=\"1\",result=\"allowed\"}"), 1) << text << rg.log();
  EXPECT_EQ(metric(text, "rowguard_tenant_statements_total{tenant=\"_other\",result=\"allowed\"}"), 2) << text;
  EXPECT_EQ(metric(text, "rowguard_tenant_statement_seconds_count{tenant=\"_other\"}"), 2) << text;
  EXPECT_FALSE(contains(text, "tenant=\"2\"")) << text;
}

TEST_F(OperationsE2e, SighupReloadsGoodPolicyAndKeepsOldOnBadFile) {
  RowguardProcess rg(example_config_template(), *pg_);
  int pid = rowguard_pid(rg);
  ASSERT_GT(pid, 0);
  const std::string original = read_text_file(rg.config_path());

  // A broken file: rejected as a whole, t1 keeps working.
  write_text_file(rg.config_path(), original + "\n[tables.\"public.audit_log\"]\nbogus = 1\n");
  ASSERT_EQ(kill(pid, SIGHUP), 0);
  EXPECT_TRUE(wait_until([&] { return contains(rg.log(), "reload: policy rejected, keeping the previous one"); },
                         std::chrono::seconds(30)))
      << rg.log();
  EXPECT_EQ(rg.psql("t1", "pw1", "SELECT count(*) FROM orders").out, "3\n");

  // A good file that adds audit_log as a tenant table: it becomes readable, filtered.
  write_text_file(rg.config_path(), original + "\n[tables.\"public.audit_log\"]\n");
  ASSERT_EQ(kill(pid, SIGHUP), 0);
  EXPECT_TRUE(wait_until([&] { return contains(rg.log(), "reload: policy " + rg.config_path() + " loaded"); },
                         std::chrono::seconds(30)))
      << rg.log();
  CommandResult r = rg.psql("t1", "pw1", "SELECT count(*) FROM audit_log WHERE tenant_id <> 1");
  EXPECT_EQ(r.exit_code, 0) << describe(r) << rg.log();
  EXPECT_EQ(r.out, "0\n");
  EXPECT_TRUE(rg.running());
}

TEST_F(OperationsE2e, SigtermLetsAnOpenTransactionFinish) {
  RowguardProcess rg(example_config_template(), *pg_);
  const std::string script = R"PY(
import psycopg2, sys, time, os, signal
dsn = sys.argv[1]
busy = psycopg2.connect(dsn)
cur = busy.cursor()
cur.execute("UPDATE orders SET amount = amount WHERE id = 101")
os.kill(int(sys.argv[2]), signal.SIGTERM)
# Until rowguard has taken the signal a new connection may still get in: wait for the refusal.
deadline = time.time() + 30
while True:
    try:
        psycopg2.connect(dsn, connect_timeout=2).close()
    except psycopg2.OperationalError:
        break
    if time.time() > deadline:
        print("new connections still accepted 30 s after SIGTERM"); sys.exit(1)
    time.sleep(0.05)
cur.execute("SELECT count(*) FROM orders")
assert cur.fetchone()[0] == 3
busy.commit()
print("committed")
)PY";
  std::string dsn = "host=127.0.0.1 port=" + std::to_string(rg.port()) + " user=t1 password=pw1 dbname=appdb";
  CommandResult r =
      run_command({"/usr/bin/python3", "-c", script, dsn, std::to_string(rowguard_pid(rg))}, {}, "", 60);
  EXPECT_EQ(r.exit_code, 0) << describe(r) << rg.log();
  EXPECT_EQ(r.out, "committed\n");
  EXPECT_TRUE(wait_until([&] { return !rg.running(); }, std::chrono::seconds(30))) << rg.log();
  EXPECT_TRUE(contains(rg.log(), "rowguard stopped")) << rg.log();
}

TEST_F(OperationsE2e, CheckAndExplainCommands) {
  const std::string example = source_dir() + "/examples/rowguard.toml";
  CommandResult ok = run_command({ROWGUARD_BIN, "check", example}, {}, "", 20);
  EXPECT_EQ(ok.exit_code, 0) << describe(ok);
  EXPECT_TRUE(contains(ok.out, "OK")) << ok.out;

  std::string dir = make_temp_dir("rowguard-check");
  write_text_file(dir + "/bad.toml", read_text_file(example) + "\n[proxy2]\nx = 1\n");
  CommandResult bad = run_command({ROWGUARD_BIN, "check", dir + "/bad.toml"}, {}, "", 20);
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(contains(bad.err, "unknown key \"proxy2\"")) << describe(bad);
  EXPECT_TRUE(contains(bad.err, "bad.toml")) << describe(bad);
  remove_tree(dir);

  CommandResult ex = run_command({ROWGUARD_BIN, "explain", "--config", example, "--tenant", "2",
                                  "SELECT o.id FROM orders o LEFT JOIN customers c ON c.id = o.customer_id"},
                                 {}, "", 20);
  EXPECT_EQ(ex.exit_code, 0) << describe(ex);
  EXPECT_EQ(ex.out,
            // `rowguard explain` reads no schema snapshot, so the join key's types are unknown and it is
            // guarded (sqlrewrite/qual_guard.h); a running rowguard with a snapshot leaves it unwrapped.
            "SELECT o.id FROM public.orders o LEFT JOIN public.customers c ON CASE WHEN o.tenant_id = '2' AND "
            "c.tenant_id = '2' THEN c.id = o.customer_id END AND c.tenant_id = '2' WHERE o.tenant_id = '2'\n");
  CommandResult denied = run_command({ROWGUARD_BIN, "explain", "--config", example, "--tenant", "2", "DROP TABLE orders"},
                                     {}, "", 20);
  EXPECT_EQ(denied.exit_code, 3);
  EXPECT_TRUE(contains(denied.out, "DENIED (42501): rowguard: DropStmt is not allowed for tenants")) << denied.out;
}

}  // namespace
}  // namespace rowguard::testing
