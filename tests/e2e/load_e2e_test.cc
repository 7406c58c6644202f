// Load: 1,000 concurrent asyncpg connections (three tenants, short transactions) through one
// rowguard in front of a dedicated throwaway PostgreSQL 15 (max_connections = 1100: rowguard
// opens one server connection per client). tests/e2e/drivers/load_client.py drives the load;
// this test checks:
//  - every connection opened and held to the end, no error other than the expected 42501
//    refusals, and no row of another tenant ever seen (the script records violations as errors);
//  - every committed row is in the database afterwards (counted per connection as superuser
//    and compared with what each connection committed), each with its connection's tenant;
//  - rowguard's resident memory after the warm-up vs at the end: flat (a generous bound: this
//    is a leak check, not a speed check). The numbers are printed.
// Default suite: ~5 s of traffic after a 2 s warm-up. ROWGUARD_LONG=1 (scripts/test --long):
// 60 s after a 10 s warm-up.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

#include "tests/support/pg_server.h"
#include "tests/support/process.h"

namespace rowguard::testing {
namespace {

// ROWGUARD_LOAD_CONNECTIONS=<n> overrides the number of connections (for experiments).
int connections() {
  const char* v = std::getenv("ROWGUARD_LOAD_CONNECTIONS");
  return v != nullptr ? std::atoi(v) : 1000;
}

bool long_mode() {
  const char* v = std::getenv("ROWGUARD_LONG");
  return v != nullptr && std::string(v) == "1";
}

std::string example_config_template() {
  std::string text = read_text_file(source_dir() + "/examples/rowguard.toml");
  text = replace_all(text, "\"127.0.0.1:6432\"", "\"{{LISTEN}}\"");
  return replace_all(text, "\"127.0.0.1:5432\"", "\"{{UPSTREAM}}\"");
}

// Raises this process's soft open-file limit (inherited by rowguard and the client) to at least
// `wanted`; false when the hard limit does not allow it.
bool raise_open_files(rlim_t wanted) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return false;
  if (lim.rlim_cur >= wanted) return true;
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < wanted) return false;
  lim.rlim_cur = wanted;
  return ::setrlimit(RLIMIT_NOFILE, &lim) == 0;
}

// "key value" lines of the client's stdout.
std::map<std::string, std::string> summary_of(const std::string& out) {
  std::map<std::string, std::string> m;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    auto sp = line.find(' ');
    if (sp != std::string::npos && line.rfind("error ", 0) != 0) m[line.substr(0, sp)] = line.substr(sp + 1);
  }
  return m;
}

long number(const std::map<std::string, std::string>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? -1 : std::stol(it->second);
}

TEST(LoadE2e, ThousandConcurrentTenantConnections) {
  // 2 descriptors per connection in rowguard, 1 in the client, plus PostgreSQL's own.
  if (!raise_open_files(8192)) GTEST_SKIP() << "the open-file hard limit is below 8192 (ulimit -Hn)";
  const bool is_long = long_mode();
  const int kConnections = connections();
  const int seconds = is_long ? 60 : 5;
  const int warmup = is_long ? 10 : 2;

  PgServer pg(PgServerOptions{.max_connections = kConnections + 100});
  pg.load_example_schema();
  CommandResult created = pg.psql_super(
      "SET ROLE app; CREATE TABLE load_rows (conn int NOT NULL, seq int NOT NULL, tenant_id int NOT NULL, "
      "PRIMARY KEY (tenant_id, conn, seq))",
      "appdb");
  ASSERT_EQ(created.exit_code, 0) << describe(created);

  std::string config = example_config_template() + "\n[tables.\"public.load_rows\"]\n";
  config = replace_all(config, "upstream_database = \"appdb\"\n", "upstream_database = \"appdb\"\nauth_timeout = 120\n");
  RowguardProcess rg(config, pg, "warn");
  std::string dir = make_temp_dir("rowguard-load-");
  const std::string out_path = dir + "/committed.txt";

  CommandResult run = run_command(
      {"/usr/bin/python3", source_dir() + "/tests/e2e/drivers/load_client.py", "--port", std::to_string(rg.port()),
       "--connections", std::to_string(kConnections), "--seconds", std::to_string(seconds), "--warmup",
       std::to_string(warmup), "--rowguard-pid", std::to_string(rg.pid()), "--out", out_path},
      {}, "", seconds + warmup + 600);
  std::cout << "[load] " << (is_long ? "long" : "short") << " run:\n" << run.out << std::flush;
  ASSERT_EQ(run.exit_code, 0) << describe(run) << "\nrowguard log:\n" << tail_lines(rg.log(), 40);
  auto s = summary_of(run.out);

  EXPECT_EQ(number(s, "connections"), kConnections) << run.out << tail_lines(rg.log(), 40);
  EXPECT_EQ(number(s, "held_to_end"), kConnections) << run.out;
  EXPECT_EQ(number(s, "errors"), 0) << run.out << "\nrowguard log:\n" << tail_lines(rg.log(), 40);
  EXPECT_GT(number(s, "transactions"), kConnections) << run.out;  // every connection did work
  EXPECT_GT(number(s, "denials"), 0) << run.out;
  EXPECT_TRUE(rg.running()) << rg.log();

  // Every committed row is there, each with its connection's tenant; nothing else is.
  CommandResult counted = pg.psql_super(
      "SELECT conn, tenant_id, count(*) FROM load_rows GROUP BY conn, tenant_id ORDER BY conn", "appdb");
  ASSERT_EQ(counted.exit_code, 0) << describe(counted);
  std::string committed = read_text_file(out_path);
  EXPECT_FALSE(committed.empty());
  EXPECT_EQ(counted.out, committed) << "the database (left) and what the clients committed (right) differ";
  CommandResult gaps = pg.psql_super(
      "SELECT count(*) FROM (SELECT conn FROM load_rows GROUP BY conn HAVING max(seq) <> count(*)) g", "appdb");
  EXPECT_EQ(gaps.out, "0\n") << describe(gaps);

  // Memory flat after warm-up: a leak of even 10 KiB per transaction would exceed this.
  long warm = number(s, "rss_warm_kb"), end = number(s, "rss_end_kb");
  ASSERT_GT(warm, 0) << run.out;
  ASSERT_GT(end, 0) << run.out;
  long tx = number(s, "transactions_after_warmup");
  std::cout << "[load] rowguard RSS: " << number(s, "rss_open_kb") / 1024 << " MiB with all connections open, "
            << warm / 1024 << " MiB after warm-up, " << end / 1024 << " MiB at the end (" << tx
            << " transactions in between)" << std::endl;
  RecordProperty("rss_warm_kb", std::to_string(warm));
  RecordProperty("rss_end_kb", std::to_string(end));
  EXPECT_LT(end - warm, std::max(64L * 1024, warm / 2)) << run.out;
  remove_tree(dir);
}

}  // namespace
}  // namespace rowguard::testing
