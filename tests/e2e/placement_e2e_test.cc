// Tenant placement end to end (issue #19 item 3, README "Scaling out"): two throwaway
// PostgreSQL servers, A ([proxy] upstream, "default") and B ([[upstreams]] "b"), both with the
// example schema; every orders row says where it lives (status 'on-A' / 'on-B') and each server
// has a global countries row of its own ('AA' on A, 'BB' on B). Tenant 1 is on A, tenant 2 on B:
// each reads only its own server (a global table too), a bypass session picks its server with
// database "appdb@b", a tenant cannot; cancels reach the tenant's server; moving a tenant by
// reload sends a pooled tenant's next transactions to the new server under load with no failed
// transaction, and closes a session-mode session on the old server with 57P01; upstreams whose
// schemas differ leave the snapshot unloaded (fail closed).
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>

#include "tests/support/pg_server.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace rowguard::testing {
namespace {

constexpr const char* kPython = "/usr/bin/python3";

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

size_t count_of(const std::string& text, const std::string& part) {
  size_t n = 0;
  for (size_t at = 0; (at = text.find(part, at)) != std::string::npos; at += part.size()) ++n;
  return n;
}

class PlacementE2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    a_ = new PgServer();
    b_ = new PgServer();
  }
  static void TearDownTestSuite() {
    delete a_;
    delete b_;
    a_ = b_ = nullptr;
  }
  void SetUp() override {
    for (auto [pg, mark] : {std::pair{a_, "A"}, std::pair{b_, "B"}}) {
      pg->load_example_schema();
      CommandResult r = pg->psql_super(std::string("UPDATE orders SET status = 'on-") + mark +
                                           "'; INSERT INTO countries VALUES ('" + mark + mark + "', 'only on " + mark + "')",
                                       "appdb");
      ASSERT_EQ(r.exit_code, 0) << describe(r);
    }
    dir_ = make_temp_dir("rowguard-placement-");
  }
  void TearDown() override {
    if (HasFailure() && rg_) std::cerr << tail_lines(rg_->log(), 60);
    rg_.reset();
    remove_tree(dir_);
  }

  // The example policy with upstream "b" (server B), tenant 2 placed there; `tenant1` places
  // tenant 1 (empty: default); `extra` is appended.
  static std::string config(const std::string& tenant1, const std::string& proxy_extra, const std::string& extra) {
    std::string text = read_text_file(source_dir() + "/examples/rowguard.toml");
    text = replace_all(text, "\"127.0.0.1:6432\"", "\"{{LISTEN}}\"");
    text = replace_all(text, "\"127.0.0.1:5432\"", "\"{{UPSTREAM}}\"");
    text = replace_all(text, "upstream_user = \"app\"\n", "upstream_user = \"app\"\nworkers = 1\n" + proxy_extra);
    text = replace_all(text, "tenant = \"1\"", tenant1.empty() ? "tenant = \"1\"" : "tenant = \"1\"\nupstream = \"" + tenant1 + "\"");
    text = replace_all(text, "tenant = \"2\"", "tenant = \"2\"\nupstream = \"b\"");
    return text + "\n[[upstreams]]\nname = \"b\"\nhost = \"127.0.0.1\"\nport = " + std::to_string(b_->port()) +
           "\n\n[functions]\nallow = [\"pg_sleep\"]\n" + extra;
  }
  void start(const std::string& text) { rg_ = std::make_unique<RowguardProcess>(text, *a_, "info"); }
  // Rewrites the running rowguard's policy file (its {{LISTEN}}/{{UPSTREAM}} filled in) and
  // reloads it through the admin console.
  void reload(const std::string& text) {
    std::string filled = replace_all(text, "{{LISTEN}}", "127.0.0.1:" + std::to_string(rg_->port()));
    filled = replace_all(filled, "{{UPSTREAM}}", "127.0.0.1:" + std::to_string(a_->port()));
    write_text_file(rg_->config_path(), filled);
    CommandResult r = console("RELOAD");
    ASSERT_EQ(r.exit_code, 0) << describe(r);
  }
  CommandResult console(const std::string& sql) const { return rg_->psql("dba", "pwdba", sql, "rowguard"); }
  // psql as `user` in the background: one read, then it waits (a shell loop in \!) until
  // DIR/NAME.go exists, then reads again; stdout and stderr in DIR/NAME.out, DIR/NAME.ready once
  // the first read is done.
  std::unique_ptr<BackgroundProcess> held_psql(const std::string& name, const std::string& user,
                                               const std::string& password,
                                               const std::string& first = "SELECT DISTINCT status FROM orders;") {
    const std::string script = dir_ + "/" + name + ".sql";
    write_text_file(script, first + "\n\\! touch " + dir_ + "/" + name +
                                ".ready; while [ ! -e " + dir_ + "/" + name + ".go ]; do sleep 0.05; done\n"
                                "SELECT DISTINCT status FROM orders;\n");
    return std::make_unique<BackgroundProcess>(
        std::vector<std::string>{pg_bin("psql"), rg_->conninfo(user), "-X", "-At", "-v", "VERBOSITY=verbose", "-f", script},
        dir_ + "/" + name + ".out", std::map<std::string, std::string>{{"PGPASSWORD", password}, {"PGCONNECT_TIMEOUT", "10"}});
  }
  bool exists(const std::string& name) const { return ::access((dir_ + "/" + name).c_str(), F_OK) == 0; }
  std::string scenario_output(const std::string& name) const { return read_text_file(dir_ + "/" + name + ".out"); }

  static PgServer* a_;
  static PgServer* b_;
  std::unique_ptr<RowguardProcess> rg_;
  std::string dir_;
};
PgServer* PlacementE2e::a_ = nullptr;
PgServer* PlacementE2e::b_ = nullptr;

// Tenant 1 on A, tenant 2 on B: each reads its own server only, global table included; the
// bypass user chooses with "appdb@b"; a tenant naming an upstream is refused; a cancel reaches
// the tenant's own server; SHOW POOLS is not involved (session mode), SHOW SERVERS names "b".
TEST_F(PlacementE2e, EachTenantReadsOnlyItsOwnServer) {
  start(config("", "", ""));
  const std::string q = "SELECT DISTINCT status FROM orders;\nSELECT code FROM countries WHERE code IN ('AA', 'BB');\n";
  CommandResult t1 = rg_->psql_script("t1", "pw1", q);
  EXPECT_EQ(t1.exit_code, 0) << describe(t1);
  EXPECT_EQ(t1.out, "on-A\nAA\n") << describe(t1);
  CommandResult t2 = rg_->psql_script("t2", "pw2", q);
  EXPECT_EQ(t2.exit_code, 0) << describe(t2);
  EXPECT_EQ(t2.out, "on-B\nBB\n") << describe(t2);
  // Each tenant still sees only its own rows on its server.
  CommandResult t2_rows = rg_->psql("t2", "pw2", "SELECT DISTINCT tenant_id FROM orders");
  EXPECT_EQ(t2_rows.out, "2\n") << describe(t2_rows);

  // Bypass: "appdb@b" goes to B, "appdb" to A.
  CommandResult dba_b = rg_->psql("dba", "pwdba", "SELECT code FROM countries WHERE code IN ('AA', 'BB')", "appdb@b");
  EXPECT_EQ(dba_b.out, "BB\n") << describe(dba_b);
  CommandResult dba_a = rg_->psql("dba", "pwdba", "SELECT code FROM countries WHERE code IN ('AA', 'BB')", "appdb");
  EXPECT_EQ(dba_a.out, "AA\n") << describe(dba_a);
  // A tenant cannot choose: refused, 42501.
  CommandResult t1_b = rg_->psql("t1", "pw1", "SELECT 1", "appdb@b");
  EXPECT_NE(t1_b.exit_code, 0);
  EXPECT_TRUE(contains(t1_b.err, "only bypass users may do")) << describe(t1_b);

  // A cancel for tenant 2's statement reaches B (sent to A it would cancel nothing).
  CommandResult c = run_command({kPython, source_dir() + "/tests/e2e/drivers/placement_client.py", "cancel",
                                 std::to_string(rg_->port()), dir_},
                                {}, "", 60);
  EXPECT_TRUE(contains(c.out, "cancelled 57014")) << describe(c);
  std::istringstream words(c.out.substr(c.out.find("cancelled") == std::string::npos ? 0 : c.out.find("cancelled")));
  std::string w, code;
  double seconds = 99;
  words >> w >> code >> seconds;
  EXPECT_LT(seconds, 15.0) << describe(c);

  // SHOW SERVERS names the upstream of a live session.
  auto held = held_psql("held", "t2", "pw2");
  ASSERT_TRUE(wait_until([&] { return exists("held.ready"); }, std::chrono::seconds(20))) << scenario_output("held");
  CommandResult servers = console("SHOW SERVERS");
  EXPECT_TRUE(contains(servers.out, "|t2|2|127.0.0.1:" + std::to_string(b_->port()))) << describe(servers);
  EXPECT_TRUE(contains(servers.out, "|b\n")) << describe(servers);
  write_text_file(dir_ + "/held.go", "");
  ASSERT_TRUE(wait_until([&] { return !held->running(); }, std::chrono::seconds(20)));
  EXPECT_EQ(scenario_output("held"), "on-B\non-B\n");
}

// Transaction pooling: tenant 1 runs transactions in a loop while a reload moves it from A to B;
// no transaction fails, each is answered by one server, and after the move they go to B. A
// client of tenant 1 pinned to a server connection on A is closed after the drain timeout.
TEST_F(PlacementE2e, TransactionModeMoveUnderLoad) {
  const std::string pool = "\n[pool]\nmode = \"transaction\"\nsize = 4\n";
  const std::string drain_timeout = "placement_drain_timeout = 1\n";
  start(config("", drain_timeout, pool));
  // A client pinned to its server connection on A (a session-level advisory lock): it cannot
  // follow the move, so it is closed after placement_drain_timeout (57P01).
  auto pinned = held_psql("pinned", "t1", "pw1", "SELECT pg_advisory_lock(7);");
  ASSERT_TRUE(wait_until([&] { return exists("pinned.ready"); }, std::chrono::seconds(20))) << scenario_output("pinned");
  BackgroundProcess load({kPython, source_dir() + "/tests/e2e/drivers/placement_client.py", "load",
                          std::to_string(rg_->port()), dir_},
                         dir_ + "/load.out");
  ASSERT_TRUE(wait_until([&] { return count_of(scenario_output("load"), "tx on-A") >= 20; }, std::chrono::seconds(30)))
      << scenario_output("load");
  reload(config("b", drain_timeout, pool));
  ASSERT_TRUE(wait_until([&] { return count_of(scenario_output("load"), "tx on-B") >= 20; }, std::chrono::seconds(30)))
      << scenario_output("load") << tail_lines(rg_->log(), 30);
  write_text_file(dir_ + "/stop", "");
  ASSERT_TRUE(wait_until([&] { return contains(scenario_output("load"), "done"); }, std::chrono::seconds(30)))
      << scenario_output("load");
  const std::string out = scenario_output("load");
  EXPECT_FALSE(contains(out, "FAIL")) << out;
  ASSERT_TRUE(wait_until([&] { return contains(rg_->log(), "closed: moved from upstream default to b"); },
                         std::chrono::seconds(30)))
      << tail_lines(rg_->log(), 30);
  write_text_file(dir_ + "/pinned.go", "");
  ASSERT_TRUE(wait_until([&] { return !pinned->running(); }, std::chrono::seconds(20)));
  EXPECT_TRUE(contains(scenario_output("pinned"), "57P01")) << scenario_output("pinned");
  EXPECT_FALSE(contains(scenario_output("pinned"), "on-")) << scenario_output("pinned");
  // Once on B, never back on A.
  EXPECT_FALSE(contains(out.substr(out.find("tx on-B")), "tx on-A")) << out;
  // SHOW POOLS: a pool per upstream.
  CommandResult pools = console("SHOW POOLS");
  EXPECT_TRUE(contains(pools.out, "|default\n") && contains(pools.out, "|b\n")) << describe(pools);
  // A new session of tenant 1 reads B; tenant 3 (not placed) stays on A.
  EXPECT_EQ(rg_->psql("t1", "pw1", "SELECT DISTINCT status FROM orders").out, "on-B\n");
  EXPECT_EQ(rg_->psql("t3", "pw3", "SELECT DISTINCT status FROM orders").out, "on-A\n");
}

// Session mode: a session of tenant 1 on A keeps working after the reload that moves tenant 1
// to B until [proxy] placement_drain_timeout, then is closed with 57P01 saying why; a new
// session goes to B.
TEST_F(PlacementE2e, SessionModeDrainClosesTheOldSession) {
  const std::string drain_timeout = "placement_drain_timeout = 2\n";
  start(config("", drain_timeout, ""));
  auto held = held_psql("held", "t1", "pw1");
  ASSERT_TRUE(wait_until([&] { return exists("held.ready"); }, std::chrono::seconds(20))) << scenario_output("held");
  reload(config("b", drain_timeout, ""));
  // Until the timeout the session goes on (on A); then rowguard closes it.
  ASSERT_TRUE(wait_until([&] { return contains(rg_->log(), "closed: moved from upstream default to b"); },
                         std::chrono::seconds(30)))
      << tail_lines(rg_->log(), 30);
  write_text_file(dir_ + "/held.go", "");
  ASSERT_TRUE(wait_until([&] { return !held->running(); }, std::chrono::seconds(20)));
  const std::string out = scenario_output("held");
  EXPECT_TRUE(contains(out, "on-A\n")) << out;
  EXPECT_TRUE(contains(out, "57P01")) << out;
  EXPECT_TRUE(contains(out, "was moved to upstream \"b\"")) << out;
  EXPECT_FALSE(contains(out, "on-B")) << out;  // the old session never read B
  EXPECT_EQ(rg_->psql("t1", "pw1", "SELECT DISTINCT status FROM orders").out, "on-B\n");
}

// A DDL on one server only: the upstreams holding tenants disagree, the snapshot is not loaded
// (what needs it is refused) and SHOW SCHEMA says which table differs.
TEST_F(PlacementE2e, DifferentSchemasFailClosed) {
  ASSERT_EQ(b_->psql_super("ALTER TABLE customers ADD COLUMN extra int", "appdb").exit_code, 0);
  start(config("", "", ""));
  ASSERT_TRUE(wait_until([&] { return contains(console("SHOW SCHEMA").out, "differ"); }, std::chrono::seconds(20)))
      << describe(console("SHOW SCHEMA"));
  CommandResult schema = console("SHOW SCHEMA");
  EXPECT_TRUE(contains(schema.out, "public.customers differs")) << describe(schema);
  // INSERT ... ON CONFLICT needs the schema: refused.
  CommandResult upsert = rg_->psql(
      "t1", "pw1", "INSERT INTO customers (id, tenant_id, name) VALUES (1, 1, 'x') ON CONFLICT (tenant_id, id) DO NOTHING");
  EXPECT_NE(upsert.exit_code, 0) << describe(upsert);
}

}  // namespace
}  // namespace rowguard::testing
