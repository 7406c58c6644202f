// End-to-end tests of the admin console (psql and psycopg2 against the virtual database
// "rowguard"), `rowguard check --against` on a real database, and a reload storm under a running
// pgbench that must lose no transaction.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/pg_server.h"
#include "tests/support/process.h"

namespace rowguard::testing {
namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::vector<std::string> split(const std::string& line, char sep = '|') {
  std::vector<std::string> out;
  std::string cur;
  for (char c : line) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  out.push_back(cur);
  return out;
}

size_t count_of(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) ++n;
  return n;
}

// Polls `probe` until it returns true or `seconds` pass (a deadline for slow machines, not a
// speed assertion).
bool eventually(const std::function<bool()>& probe, int seconds = 20) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (probe()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return probe();
}

std::string example_config_template() {
  std::string text = read_text_file(source_dir() + "/examples/rowguard.toml");
  text = replace_all(text, "\"127.0.0.1:6432\"", "\"{{LISTEN}}\"");
  return replace_all(text, "\"127.0.0.1:5432\"", "\"{{UPSTREAM}}\"");
}

// The example policy plus admin_writes, a tenant table the tests write into.
std::string config_with_writes() { return example_config_template() + "\n[tables.\"public.admin_writes\"]\n"; }

int rowguard_pid(const RowguardProcess& rg) {
  CommandResult r = run_command({"pgrep", "-f", "--", "--config " + rg.config_path()}, {}, "", 10);
  return r.out.empty() ? -1 : std::stoi(r.out);
}

class AdminE2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      pg_ = &PgServer::shared();
      pg_->load_example_schema();
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  void SetUp() override {
    ASSERT_TRUE(setup_error_.empty()) << setup_error_;
    CommandResult r = pg_->psql_super(
        "DROP TABLE IF EXISTS admin_writes; SET ROLE app; "
        "CREATE TABLE admin_writes (id bigserial PRIMARY KEY, tenant_id int NOT NULL, note text)",
        "appdb");
    ASSERT_EQ(r.exit_code, 0) << describe(r);
  }
  static int written_rows() {
    CommandResult r = pg_->psql_super("SELECT count(*) FROM admin_writes", "appdb");
    return r.exit_code == 0 ? std::stoi(r.out) : -1;
  }
  // The console's answer to one command (psql -At: rows as a|b|c).
  static CommandResult console(const RowguardProcess& rg, const std::string& sql) {
    return rg.psql("dba", "pwdba", sql, "rowguard");
  }
  // The SHOW CLIENTS row of the first session of `user`, split into fields, or empty.
  static std::vector<std::string> client_row(const RowguardProcess& rg, const std::string& user) {
    for (const auto& line : lines_of(console(rg, "SHOW CLIENTS").out)) {
      auto f = split(line);
      if (f.size() == 12 && f[1] == user) return f;
    }
    return {};
  }
  static inline PgServer* pg_ = nullptr;
  static inline std::string setup_error_;
};

constexpr const char* kHoldSession = R"PY(
import psycopg2, sys, time
conn = psycopg2.connect(sys.argv[1])
conn.autocommit = True
cur = conn.cursor()
cur.execute("SELECT count(*) FROM orders")
print("rows", cur.fetchone()[0], flush=True)
time.sleep(120)
)PY";

TEST_F(AdminE2e, ShowCommandsDescribeClientsServersStatsPolicyAndCache) {
  RowguardProcess rg(config_with_writes(), *pg_);
  std::string dir = make_temp_dir("rowguard-admin");
  std::string dsn = "host=127.0.0.1 port=" + std::to_string(rg.port()) + " user=t1 password=pw1 dbname=appdb";
  BackgroundProcess tenant({"/usr/bin/python3", "-c", kHoldSession, dsn}, dir + "/tenant.log");
  ASSERT_TRUE(eventually([&] { return contains(read_text_file(dir + "/tenant.log"), "rows 3"); }))
      << read_text_file(dir + "/tenant.log") << rg.log();

  // SHOW CLIENTS: the tenant session, idle between statements, with its statement counted.
  std::vector<std::string> row = client_row(rg, "t1");
  ASSERT_EQ(row.size(), 12u) << console(rg, "SHOW CLIENTS").out;
  EXPECT_EQ(row[2], "1");       // tenant
  EXPECT_EQ(row[3], "tenant");  // kind
  EXPECT_TRUE(std::regex_match(row[4], std::regex(R"(127\.0\.0\.1:[0-9]+)"))) << row[4];
  EXPECT_EQ(row[5], "idle");
  EXPECT_EQ(row[6], "idle");    // transaction status
  EXPECT_GE(std::stoi(row[7]), 1);
  EXPECT_TRUE(std::regex_match(row[8], std::regex(R"(20[0-9-]+ [0-9:.]+\+00)"))) << row[8];
  EXPECT_EQ(row[11], "0");      // open portals: none between transactions
  // The console session itself is listed too.
  std::vector<std::string> self = client_row(rg, "dba");
  ASSERT_EQ(self.size(), 12u);
  EXPECT_EQ(self[3], "console");

  // SHOW SERVERS: that session's upstream connection.
  CommandResult servers = console(rg, "SHOW SERVERS");
  ASSERT_EQ(servers.exit_code, 0) << describe(servers);
  bool found = false;
  for (const auto& line : lines_of(servers.out)) {
    auto f = split(line);
    if (f.size() == 10 && f[0] == row[0]) {
      found = true;
      EXPECT_EQ(f[1], "t1");
      EXPECT_EQ(f[9], "default");  // the upstream's name in the policy (tenant placement)
      EXPECT_EQ(f[3], "127.0.0.1:" + std::to_string(pg_->port()));
      EXPECT_EQ(f[5], "appdb");
      EXPECT_GT(std::stoi(f[6]), 0);  // the real backend pid
      // ... which PostgreSQL confirms is a live backend of role app.
      CommandResult backend = pg_->psql_super("SELECT usename FROM pg_stat_activity WHERE pid = " + f[6]);
      EXPECT_EQ(backend.out, "app\n") << describe(backend);
    }
  }
  EXPECT_TRUE(found) << servers.out;
  // The console itself has no upstream connection (nothing is forwarded to PostgreSQL).
  EXPECT_EQ(lines_of(servers.out).size(), 1u) << servers.out;
  EXPECT_EQ(pg_->psql_super("SELECT count(*) FROM pg_stat_activity WHERE datname = 'rowguard'").out, "0\n");

  CommandResult stats = console(rg, "SHOW STATS");
  ASSERT_EQ(stats.exit_code, 0) << describe(stats);
  std::map<std::string, std::string> s;
  for (const auto& line : lines_of(stats.out)) {
    auto f = split(line);
    if (f.size() == 2) s[f[0]] = f[1];
  }
  EXPECT_GE(std::stoll(s["statements_allowed"]), 1) << stats.out;
  EXPECT_GE(std::stoll(s["connections_tenant"]), 1) << stats.out;
  EXPECT_GE(std::stoll(s["rewrite_cache_misses"]), 1) << stats.out;
  EXPECT_EQ(s["paused"], "0") << stats.out;

  CommandResult policy = console(rg, "show policy;");
  ASSERT_EQ(policy.exit_code, 0) << describe(policy);
  EXPECT_TRUE(contains(policy.out, "table|public.orders|tenant_id\n")) << policy.out;
  EXPECT_TRUE(contains(policy.out, "table|public.customers|tenant_id\n")) << policy.out;
  EXPECT_TRUE(contains(policy.out, "global_table|public.countries|global\n")) << policy.out;
  EXPECT_TRUE(contains(policy.out, "bypass_user|dba|\n")) << policy.out;
  EXPECT_TRUE(contains(policy.out, "tenant_user|t2|2\n")) << policy.out;
  EXPECT_TRUE(std::regex_search(policy.out, std::regex(R"(\nversion\|[0-9]+\|\n)"))) << policy.out;
  EXPECT_TRUE(std::regex_search(policy.out, std::regex(R"(\nloaded_at\|20[0-9-]+ [0-9:.]+\+00\|\n)"))) << policy.out;

  CommandResult cache = console(rg, "SHOW CACHE");
  ASSERT_EQ(cache.exit_code, 0) << describe(cache);
  auto cache_lines = lines_of(cache.out);
  ASSERT_GE(cache_lines.size(), 2u) << cache.out;
  auto total = split(cache_lines.back());
  ASSERT_EQ(total.size(), 5u) << cache.out;
  EXPECT_EQ(total[0], "total");
  EXPECT_GE(std::stoi(total[1]), 1) << cache.out;  // entries (the tenant's statement)
  EXPECT_GE(std::stoi(total[3]), 1) << cache.out;  // misses

  CommandResult help = console(rg, "SHOW HELP");
  EXPECT_TRUE(contains(help.out, "RELOAD|")) << describe(help);
  EXPECT_TRUE(contains(help.out, "PAUSE|")) << describe(help);

  // An unknown command is an ordinary error; the same console session goes on working.
  CommandResult mixed = rg.psql_script("dba", "pwdba", "SHOW NONSENSE;\nSELECT 1;\nSHOW HELP;\n", "rowguard");
  EXPECT_TRUE(contains(mixed.err, "42601")) << describe(mixed);
  EXPECT_TRUE(contains(mixed.err, "unknown admin console command \"SHOW NONSENSE\"")) << describe(mixed);
  EXPECT_TRUE(contains(mixed.err, "unknown admin console command \"SELECT 1\"")) << describe(mixed);
  EXPECT_TRUE(contains(mixed.out, "SHOW CLIENTS|")) << describe(mixed);

  // Extended protocol (psycopg 3 with server-side parameters): refused with 0A000, connection usable.
  CommandResult ext = run_command(
      {"/usr/bin/python3", "-c",
       "import psycopg, sys\n"
       "c = psycopg.connect(sys.argv[1], autocommit=True)\n"
       "try:\n    c.execute('SHOW CLIENTS WHERE %s', [1])\nexcept psycopg.Error as e:\n    print('error', e.sqlstate)\n"
       "print('rows', len(psycopg.ClientCursor(c).execute('SHOW HELP').fetchall()))\n",
       "host=127.0.0.1 port=" + std::to_string(rg.port()) + " user=dba password=pwdba dbname=rowguard"},
      {}, "", 30);
  EXPECT_EQ(ext.out, "error 0A000\nrows 11\n") << describe(ext);

  // Tenant users cannot open the console; a wrong password is an ordinary auth failure.
  CommandResult refused = rg.psql("t1", "pw1", "SHOW CLIENTS", "rowguard");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_TRUE(contains(refused.err, "permission denied for the admin console")) << describe(refused);
  CommandResult wrong = rg.psql("dba", "nope", "SHOW CLIENTS", "rowguard");
  EXPECT_TRUE(contains(wrong.err, "password authentication failed for user \"dba\"")) << describe(wrong);

  tenant.stop();
  // Once the tenant has gone, it is no longer listed.
  EXPECT_TRUE(eventually([&] { return client_row(rg, "t1").empty(); })) << console(rg, "SHOW CLIENTS").out;
  remove_tree(dir);
}

// Simple-protocol statements with inlined literals (psql, psycopg2, pgbench -M simple): one
// constant template per statement shape serves every literal; results stay exactly the
// tenant's, and a literal naming another tenant is still refused after its shape was cached.
TEST_F(AdminE2e, InlinedLiteralsShareOneConstantTemplate) {
  RowguardProcess rg(config_with_writes(), *pg_);
  std::string script, expected;
  for (int n = 1; n <= 30; ++n) {
    const int bound = 95 + n;
    script += "SELECT count(*) FROM orders WHERE id > " + std::to_string(bound) + ";\n";
    CommandResult direct = pg_->psql_super(
        "SELECT count(*) FROM orders WHERE tenant_id = 1 AND id > " + std::to_string(bound), "appdb");
    ASSERT_EQ(direct.exit_code, 0) << describe(direct);
    expected += direct.out;
  }
  for (int n = 1; n <= 10; ++n) {
    script += "INSERT INTO admin_writes (tenant_id, note) VALUES (1, 'note " + std::to_string(n) + "');\n";
    script += "INSERT INTO admin_writes (tenant_id, note) VALUES (2, 'cross " + std::to_string(n) + "');\n";
  }
  CommandResult r = rg.psql_script("t1", "pw1", script);
  EXPECT_EQ(r.out.substr(0, expected.size()), expected) << describe(r);
  EXPECT_EQ(count_of(r.out, "INSERT 0 1"), 10u) << describe(r);
  EXPECT_EQ(count_of(r.err, "42501"), 10u) << describe(r);
  EXPECT_EQ(pg_->psql_super("SELECT count(*), min(tenant_id), max(tenant_id) FROM admin_writes", "appdb").out,
            "10|1|1\n");

  CommandResult stats = console(rg, "SHOW STATS");
  std::map<std::string, std::string> s;
  for (const auto& line : lines_of(stats.out)) {
    auto f = split(line);
    if (f.size() == 2) s[f[0]] = f[1];
  }
  // 29 SELECTs and 9 INSERTs of tenant 1 after the first of each shape (the refused INSERTs
  // are rewritten text by text: their shape cannot be a template for this tenant).
  EXPECT_GE(std::stoll(s["rewrite_cache_constant_hits"]), 38) << stats.out;
}

TEST_F(AdminE2e, ReloadCommandAppliesGoodFileAndReportsBadOne) {
  RowguardProcess rg(config_with_writes(), *pg_);
  const std::string original = read_text_file(rg.config_path());
  auto version = [&] {
    std::smatch m;
    std::string out = console(rg, "SHOW POLICY").out;
    return std::regex_search(out, m, std::regex(R"(\nversion\|([0-9]+)\|)")) ? std::stoi(m[1]) : -1;
  };
  int v0 = version();
  ASSERT_GT(v0, 0);
  EXPECT_TRUE(contains(rg.psql("t1", "pw1", "SELECT count(*) FROM audit_log").err, "42501"));

  // A reload also re-reads the schema, in the background; the new snapshot is one more version.
  auto snapshots = [&] {
    const std::string log = rg.log();
    size_t n = 0;
    for (size_t at = log.find("schema snapshot ("); at != std::string::npos; at = log.find("schema snapshot (", at + 1)) ++n;
    return n;
  };
  const size_t snapshots_before = snapshots();
  write_text_file(rg.config_path(), original + "\n[tables.\"public.audit_log\"]\n");
  CommandResult ok = console(rg, "RELOAD");
  for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
       snapshots() == snapshots_before && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling the log, with a deadline
  }
  ASSERT_GT(snapshots(), snapshots_before) << "no schema re-read after RELOAD: " << rg.log();
  EXPECT_EQ(ok.exit_code, 0) << describe(ok);
  EXPECT_TRUE(contains(ok.out, "RELOAD")) << describe(ok);
  EXPECT_TRUE(contains(ok.err, "loaded")) << describe(ok);
  EXPECT_GT(version(), v0);
  EXPECT_TRUE(contains(console(rg, "SHOW POLICY").out, "table|public.audit_log|tenant_id\n"));
  CommandResult now_allowed = rg.psql("t1", "pw1", "SELECT count(*) FROM audit_log WHERE tenant_id <> 1");
  EXPECT_EQ(now_allowed.out, "0\n") << describe(now_allowed);

  int v1 = version();
  write_text_file(rg.config_path(), original + "\n[tables.\"public.audit_log\"]\nbogus = 1\n");
  CommandResult bad = rg.psql_script("dba", "pwdba", "RELOAD;\nSHOW STATS;\n", "rowguard");
  EXPECT_TRUE(contains(bad.err, "F0000")) << describe(bad);
  EXPECT_TRUE(contains(bad.err, "policy rejected, keeping version " + std::to_string(v1))) << describe(bad);
  EXPECT_TRUE(contains(bad.err, "bogus")) << describe(bad);
  EXPECT_TRUE(contains(bad.out, "statements_allowed|")) << describe(bad);  // the console stays usable
  EXPECT_EQ(version(), v1);
  EXPECT_EQ(rg.psql("t1", "pw1", "SELECT count(*) FROM audit_log WHERE tenant_id <> 1").out, "0\n");
  EXPECT_TRUE(rg.running());

  // A typo on a password line (unterminated string): the reply and the log name the line but
  // never show the password.
  std::string typo = original;
  ASSERT_NE(typo.find("password = \"pw1\""), std::string::npos) << typo;
  typo.replace(typo.find("password = \"pw1\""), 16, "password = \"Typo5ecretPw");
  write_text_file(rg.config_path(), typo);
  CommandResult leaked = console(rg, "RELOAD");
  EXPECT_TRUE(contains(leaked.err, "policy rejected")) << describe(leaked);
  EXPECT_TRUE(contains(leaked.err, "password = <redacted>")) << describe(leaked);
  EXPECT_FALSE(contains(leaked.err + leaked.out, "Typo5ecret")) << describe(leaked);
  EXPECT_TRUE(contains(rg.log(), "password = <redacted>")) << rg.log();
  EXPECT_FALSE(contains(rg.log(), "Typo5ecret")) << rg.log();
}

TEST_F(AdminE2e, PauseHoldsTenantStatementsUntilResume) {
  RowguardProcess rg(config_with_writes(), *pg_);
  std::string dir = make_temp_dir("rowguard-pause");
  CommandResult paused = console(rg, "PAUSE");
  ASSERT_EQ(paused.exit_code, 0) << describe(paused) << rg.log();
  EXPECT_TRUE(contains(paused.out, "PAUSE")) << describe(paused);
  EXPECT_TRUE(contains(console(rg, "SHOW STATS").out, "paused|1\n"));

  BackgroundProcess writer({pg_bin("psql"), "-X", "-At", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                            "INSERT INTO admin_writes (note) VALUES ('after resume') RETURNING tenant_id",
                            rg.conninfo("t1")},
                           dir + "/writer.log", {{"PGPASSWORD", "pw1"}, {"PGCONNECT_TIMEOUT", "10"}});
  // The session logs in, then its statement waits at the gate.
  ASSERT_TRUE(eventually([&] {
    auto row = client_row(rg, "t1");
    return row.size() == 12 && row[5] == "paused";
  })) << console(rg, "SHOW CLIENTS").out << rg.log();
  EXPECT_TRUE(writer.running()) << read_text_file(dir + "/writer.log");
  EXPECT_EQ(written_rows(), 0);  // nothing reached PostgreSQL while paused
  // Bypass users and the console are not held.
  EXPECT_EQ(rg.psql("dba", "pwdba", "SELECT count(*) FROM admin_writes").out, "0\n");

  CommandResult resumed = console(rg, "RESUME");
  EXPECT_TRUE(contains(resumed.out, "RESUME")) << describe(resumed);
  ASSERT_TRUE(eventually([&] { return !writer.running(); }, 30)) << rg.log();
  EXPECT_EQ(writer.exit_code(), 0) << read_text_file(dir + "/writer.log");
  EXPECT_EQ(read_text_file(dir + "/writer.log"), "1\n");
  EXPECT_EQ(written_rows(), 1);
  CommandResult again = console(rg, "RESUME");
  EXPECT_TRUE(contains(again.err, "not paused")) << describe(again);

  // PAUSE waits for an open transaction to end; the transaction itself is not held.
  const std::string script = R"PY(
import psycopg2, sys, threading
tenant = psycopg2.connect(sys.argv[1])
cur = tenant.cursor()
cur.execute("INSERT INTO admin_writes (note) VALUES ('in tx')")   # opens a transaction
admin = psycopg2.connect(sys.argv[2]); admin.autocommit = True
done = []
t = threading.Thread(target=lambda: (admin.cursor().execute("PAUSE"), done.append(1)))
t.start()
t.join(1.0)
print("pause returned while tx open:", bool(done))
cur.execute("INSERT INTO admin_writes (note) VALUES ('same tx')")  # inside the tx: not held
tenant.commit()
t.join(30)
print("pause returned after commit:", bool(done))
admin.cursor().execute("RESUME")
cur.execute("SELECT count(*) FROM admin_writes"); print("rows", cur.fetchone()[0]); tenant.commit()
)PY";
  std::string base = "host=127.0.0.1 port=" + std::to_string(rg.port());
  CommandResult r = run_command({"/usr/bin/python3", "-c", script, base + " user=t1 password=pw1 dbname=appdb",
                                 base + " user=dba password=pwdba dbname=rowguard"},
                                {}, "", 60);
  EXPECT_EQ(r.exit_code, 0) << describe(r) << rg.log();
  EXPECT_EQ(r.out, "pause returned while tx open: False\npause returned after commit: True\nrows 3\n") << describe(r);
  remove_tree(dir);
}

TEST_F(AdminE2e, CheckAgainstUpstreamFindsMissingTablesAndUnlistedTenantTables) {
  std::string dir = make_temp_dir("rowguard-check");
  std::string url = "postgresql://app:secret@127.0.0.1:" + std::to_string(pg_->port()) + "/appdb";
  const std::string example = read_text_file(source_dir() + "/examples/rowguard.toml");
  write_text_file(dir + "/good.toml", example);
  CommandResult good = run_command({ROWGUARD_BIN, "check", dir + "/good.toml", "--against", url}, {}, "", 30);
  EXPECT_EQ(good.exit_code, 0) << describe(good);
  EXPECT_TRUE(contains(good.out, "every table and tenant column exists upstream")) << describe(good);
  // audit_log has tenant_id but is deliberately not in the example policy: a warning.
  EXPECT_TRUE(contains(good.out, "warning: table \"public.audit_log\" has a tenant column \"tenant_id\" but is not in the policy"))
      << describe(good);
  // orders' primary key is (tenant_id, id) (examples/schema.sql): no key crosses tenants.
  EXPECT_FALSE(contains(good.out, "orders_pkey")) << describe(good);
  EXPECT_FALSE(contains(good.out, "\"public.countries\"")) << describe(good);

  write_text_file(dir + "/bad.toml", example + "\n[tables.\"public.invoices\"]\n\n[tables.\"public.audit_log\"]\n"
                                               "column = \"org_id\"\n\n[tables.\"public.regions\"]\nglobal = true\n");
  CommandResult bad = run_command({ROWGUARD_BIN, "check", dir + "/bad.toml", "--against", url}, {}, "", 30);
  EXPECT_EQ(bad.exit_code, 1) << describe(bad);
  EXPECT_TRUE(contains(bad.err, "error: table \"public.invoices\" does not exist upstream")) << describe(bad);
  EXPECT_TRUE(contains(bad.err, "error: table \"public.regions\" does not exist upstream")) << describe(bad);
  EXPECT_TRUE(contains(bad.err, "error: table \"public.audit_log\" has no tenant column \"org_id\"")) << describe(bad);
  EXPECT_TRUE(contains(bad.err, "3 error(s)")) << describe(bad);

  CommandResult unreachable = run_command(
      {ROWGUARD_BIN, "check", dir + "/good.toml", "--against",
       "host=127.0.0.1 port=" + std::to_string(free_tcp_port()) + " user=app password=secret dbname=appdb connect_timeout=5"},
      {}, "", 30);
  EXPECT_EQ(unreachable.exit_code, 1) << describe(unreachable);
  EXPECT_TRUE(contains(unreachable.err, "cannot connect to the upstream database")) << describe(unreachable);
  EXPECT_FALSE(contains(unreachable.err, "secret")) << describe(unreachable);
  remove_tree(dir);
}

TEST_F(AdminE2e, ReloadUnderRunningPgbenchLosesNoTransaction) {
  RowguardProcess rg(config_with_writes(), *pg_, "info");
  int pid = rowguard_pid(rg);
  ASSERT_GT(pid, 0);
  const std::string original = read_text_file(rg.config_path());
  std::string dir = make_temp_dir("rowguard-pgbench");
  write_text_file(dir + "/write.sql",
                  "BEGIN;\n"
                  "INSERT INTO admin_writes (note) VALUES ('pgbench');\n"
                  "SELECT count(*) FROM orders;\n"
                  "END;\n");
  BackgroundProcess bench({pg_bin("pgbench"), "-n", "-M", "extended", "-c", "4", "-j", "2", "-T", "12", "-f",
                           dir + "/write.sql", "-h", "127.0.0.1", "-p", std::to_string(rg.port()), "-U", "t1", "appdb"},
                          dir + "/pgbench.log",
                          {{"PGPASSWORD", "pw1"}, {"PGCONNECT_TIMEOUT", "10"}, {"PGSSLMODE", "disable"}});
  // Between two reloads: pgbench wrote more rows (traffic went on).
  auto traffic = [&] {
    const int rows = written_rows();
    EXPECT_TRUE(eventually([&] { return written_rows() > rows || !bench.running(); })) << rg.log();
  };
  // A SIGHUP, then wait until rowguard logged the reload ("reload: policy … loaded" or
  // "reload: policy rejected, …") and traffic went on.
  auto sighup = [&] {
    const size_t before = count_of(rg.log(), "reload: policy ");
    EXPECT_EQ(kill(pid, SIGHUP), 0);
    EXPECT_TRUE(eventually([&] { return count_of(rg.log(), "reload: policy ") > before; })) << rg.log();
    traffic();
  };
  ASSERT_TRUE(eventually([&] { return written_rows() > 0 || !bench.running(); })) << rg.log();
  traffic();
  sighup();  // same file
  write_text_file(rg.config_path(), original + "\n[tables.\"public.audit_log\"]\n");  // a changed, valid policy
  sighup();
  write_text_file(rg.config_path(), original + "\n[tables.\"public.audit_log\"]\nbogus = 1\n");  // broken
  sighup();
  write_text_file(rg.config_path(), original);  // restored
  sighup();
  CommandResult reload = console(rg, "RELOAD");  // and once through the console
  EXPECT_TRUE(contains(reload.out, "RELOAD")) << describe(reload);
  // PAUSE under load: it returns when every client is between transactions; then nothing is
  // written until RESUME, and the clients carry on afterwards.
  CommandResult paused = console(rg, "PAUSE");
  EXPECT_TRUE(contains(paused.out, "PAUSE")) << describe(paused);
  int rows_paused = written_rows();
  EXPECT_TRUE(eventually([&] {
    size_t n = 0;
    for (const auto& line : lines_of(console(rg, "SHOW CLIENTS").out)) {
      auto f = split(line);
      if (f.size() == 12 && f[1] == "t1" && f[5] == "paused") ++n;
    }
    return n == 4;
  })) << console(rg, "SHOW CLIENTS").out;
  EXPECT_EQ(written_rows(), rows_paused);
  CommandResult resumed = console(rg, "RESUME");
  EXPECT_TRUE(contains(resumed.out, "RESUME")) << describe(resumed);
  EXPECT_TRUE(eventually([&] { return written_rows() > rows_paused || !bench.running(); }));
  bool running_during_reloads = bench.running();
  ASSERT_TRUE(eventually([&] { return !bench.running(); }, 60)) << rg.log();
  std::string out = read_text_file(dir + "/pgbench.log");
  EXPECT_TRUE(running_during_reloads) << "pgbench ended before the reloads were done; raise -T\n" << out;
  EXPECT_EQ(bench.exit_code(), 0) << out << rg.log();
  EXPECT_TRUE(contains(out, "number of failed transactions: 0")) << out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(number of transactions actually processed: ([0-9]+))"))) << out;
  int processed = std::stoi(m[1]);
  EXPECT_GT(processed, 0);
  EXPECT_EQ(written_rows(), processed) << out;

  std::string log = rg.log();
  EXPECT_EQ(count_of(log, "reload: policy rejected, keeping the previous one"), 1u) << log;
  EXPECT_GE(count_of(log, "reload: policy " + rg.config_path() + " loaded"), 4u) << log;
  // No pgbench client lost its connection (pgbench would report "aborted" and exit 2).
  EXPECT_FALSE(contains(out, "aborted")) << out;
  EXPECT_TRUE(rg.running());
  remove_tree(dir);
}

}  // namespace
}  // namespace rowguard::testing
