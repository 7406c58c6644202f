// The RLS backstop ([tenancy] backstop = "rls", `rowguard rls-sql`): PostgreSQL enforces the
// same isolation underneath the rewrite, so a rewriter gap can deny more but never leak.
//
// Everything happens in a database of its own (rowguard_backstop, the example tables and data),
// so RLS is never enabled on the shared appdb the other adversarial cases use; it is dropped at
// the end.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

constexpr const char* kDb = "rowguard_backstop";
constexpr const char* kBypassRlsRole = "rowguard_backstop_bypassrls";

// The example config pointed at `db`, with [tenancy] backstop = "rls" when `backstop`.
// `orders_unfiltered`: public.orders listed as global, i.e. rowguard adds no tenant filter to
// reads of it: a stand-in for a rewriter bug that forgets a table.
std::string config(const std::string& db, bool backstop, bool orders_unfiltered = false) {
  std::string text = example_config_template();
  text = replace_all(text, "upstream_database = \"appdb\"", "upstream_database = \"" + db + "\"");
  if (backstop) text = replace_all(text, "[tenancy]\n", "[tenancy]\nbackstop = \"rls\"\n");
  if (orders_unfiltered) {
    text = replace_all(text, "[tables.\"public.orders\"]\ncolumn = \"tenant_id\"", "[tables.\"public.orders\"]\nglobal = true");
  }
  return text;
}

std::vector<std::string> first_column(const QueryResult& r) {
  std::vector<std::string> out;
  for (const auto& row : r.rows) out.push_back(row.empty() || !row[0] ? "NULL" : *row[0]);
  return out;
}

const std::vector<std::string> kTenant1Orders = {"101", "102", "103"};

void must(const CommandResult& r, const std::string& what) {
  if (r.exit_code != 0) throw std::runtime_error(what + " failed: " + describe(r));
}

// A raw StartupMessage (protocol 3.0) with `params`; returns the first bytes the server answers.
std::string raw_startup(int port, const std::vector<std::pair<std::string, std::string>>& params) {
  std::string body;
  auto put32 = [](std::string& s, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((v >> shift) & 0xff));
  };
  put32(body, 196608);
  for (const auto& [k, v] : params) {
    body += k;
    body.push_back('\0');
    body += v;
    body.push_back('\0');
  }
  body.push_back('\0');
  std::string packet;
  put32(packet, static_cast<uint32_t>(body.size() + 4));
  packet += body;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::write(fd, packet.data(), packet.size()) == static_cast<ssize_t>(packet.size())) {
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) answer.assign(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return answer;
}

class RlsBackstop : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    PgServer& pg = Env::get().pg();  // also (re)loads the example schema: role app exists
    must(pg.psql_super(std::string("DROP DATABASE IF EXISTS ") + kDb + " WITH (FORCE)"), "drop database");
    must(pg.psql_super(std::string("CREATE DATABASE ") + kDb + " OWNER app"), "create database");
    // The example tables and data: examples/schema.sql after its "\c appdb".
    std::string schema = read_text_file(source_dir() + "/examples/schema.sql");
    const auto at = schema.find("\\c appdb\n");
    if (at == std::string::npos) throw std::runtime_error("examples/schema.sql has no \\c appdb");
    dir_ = new std::string(make_temp_dir("rowguard-backstop"));
    write_text_file(*dir_ + "/tables.sql", schema.substr(at + 9));
    must(pg.psql_super_file(*dir_ + "/tables.sql", kDb), "load the example tables");
    // rowguard rls-sql (with the correct policy), applied as superuser.
    write_text_file(*dir_ + "/rowguard.toml", replace_all(replace_all(config(kDb, true), "{{LISTEN}}", "127.0.0.1:1"),
                                                          "{{UPSTREAM}}", "127.0.0.1:1"));
    CommandResult sql = run_command({ROWGUARD_BIN, "rls-sql", "--config", *dir_ + "/rowguard.toml", "--type", "integer"});
    must(sql, "rowguard rls-sql");
    rls_sql_ = new std::string(sql.out);
    write_text_file(*dir_ + "/rls.sql", sql.out);
    must(pg.psql_super_file(*dir_ + "/rls.sql", kDb), "apply rls-sql");
    rowguard_ = new RowguardProcess(config(kDb, true), pg, "info");
  }

  static void TearDownTestSuite() {
    delete rowguard_;
    rowguard_ = nullptr;
    PgServer& pg = Env::get().pg();
    pg.psql_super(std::string("DROP DATABASE IF EXISTS ") + kDb + " WITH (FORCE)");
    pg.psql_super(std::string("DROP ROLE IF EXISTS ") + kBypassRlsRole);
    if (dir_ != nullptr) remove_tree(*dir_);
    delete dir_;
    delete rls_sql_;
  }

  static std::unique_ptr<Client> tenant(int n = 1) {
    return std::make_unique<Client>(rowguard_->conninfo("t" + std::to_string(n), kDb) + " password=pw" + std::to_string(n));
  }
  static std::unique_ptr<Client> bypass() {
    return std::make_unique<Client>(rowguard_->conninfo("dba", kDb) + " password=pwdba");
  }
  // Straight to PostgreSQL as the upstream role app, with `options` (e.g. "-c rowguard.tenant=1").
  static std::unique_ptr<Client> direct_app(const std::string& options) {
    std::string conninfo = "host=127.0.0.1 port=" + std::to_string(Env::get().pg().port()) + " user=app password=secret dbname=" +
                           kDb + " sslmode=disable";
    if (!options.empty()) conninfo += " options='" + options + "'";
    return std::make_unique<Client>(conninfo);
  }

  static std::string* dir_;
  static std::string* rls_sql_;
  static RowguardProcess* rowguard_;
};

std::string* RlsBackstop::dir_ = nullptr;
std::string* RlsBackstop::rls_sql_ = nullptr;
RowguardProcess* RlsBackstop::rowguard_ = nullptr;

TEST_F(RlsBackstop, RlsSqlIsIdempotentAndTyped) {
  EXPECT_NE(rls_sql_->find("FORCE ROW LEVEL SECURITY"), std::string::npos);
  EXPECT_NE(rls_sql_->find("\"tenant_id\" = current_setting('rowguard.tenant', true)::integer"), std::string::npos);
  EXPECT_NE(rls_sql_->find("DROP POLICY IF EXISTS rowguard_tenant ON \"public\".\"orders\""), std::string::npos);
  // Applying it again changes nothing and fails nowhere.
  must(Env::get().pg().psql_super_file(*dir_ + "/rls.sql", kDb), "apply rls-sql again");
  CommandResult r = Env::get().pg().psql_super(
      "SELECT c.relname || ':' || (CASE WHEN c.relrowsecurity THEN 't' ELSE 'f' END) || "
      "(CASE WHEN c.relforcerowsecurity THEN 't' ELSE 'f' END) || ':' || count(p.polname) "
      "FROM pg_class c LEFT JOIN pg_policy p ON p.polrelid = c.oid "
      "WHERE c.relname IN ('orders', 'customers', 'countries', 'audit_log') "
      "GROUP BY c.relname, c.relrowsecurity, c.relforcerowsecurity ORDER BY 1",
      kDb);
  must(r, "read pg_policy");
  EXPECT_EQ(r.out, "audit_log:ff:0\ncountries:tt:2\ncustomers:tt:1\norders:tt:1\n");
  // Without a schema snapshot and --type: text comparison.
  CommandResult text = run_command({ROWGUARD_BIN, "rls-sql", "--config", *dir_ + "/rowguard.toml"});
  must(text, "rowguard rls-sql without --type");
  EXPECT_NE(text.out.find("\"tenant_id\"::text = current_setting('rowguard.tenant', true)"), std::string::npos);
  // --type takes a type name, not SQL.
  CommandResult bad = run_command({ROWGUARD_BIN, "rls-sql", "--config", *dir_ + "/rowguard.toml", "--type", "int); DROP TABLE orders; --"});
  EXPECT_EQ(bad.exit_code, 2) << describe(bad);
  EXPECT_EQ(bad.out, "");
}

TEST_F(RlsBackstop, TenantWorkIsUnchanged) {
  auto t1 = tenant(1);
  QueryResult orders = t1->exec("SELECT id FROM orders ORDER BY id");
  ASSERT_TRUE(orders.ok) << orders.message;
  EXPECT_EQ(first_column(orders), kTenant1Orders);
  QueryResult join = t1->exec("SELECT c.name FROM customers c JOIN orders o ON o.customer_id = c.id ORDER BY o.id");
  ASSERT_TRUE(join.ok) << join.message;
  EXPECT_EQ(first_column(join), (std::vector<std::string>{"acme-anvils", "acme-rockets", "acme-anvils"}));
  QueryResult countries = t1->exec("SELECT count(*) FROM countries");
  ASSERT_TRUE(countries.ok) << countries.message;
  EXPECT_EQ(first_column(countries), std::vector<std::string>{"4"});
  QueryResult ins = t1->exec("INSERT INTO orders (id, tenant_id, customer_id, amount) VALUES (150, 1, 101, 1.50)");
  ASSERT_TRUE(ins.ok) << ins.message;
  QueryResult upd = t1->exec_params("UPDATE orders SET amount = $1 WHERE id = 150", {"2.50"});
  ASSERT_TRUE(upd.ok) << upd.message;
  EXPECT_EQ(upd.command_tag, "UPDATE 1");
  QueryResult del = t1->exec("DELETE FROM orders WHERE id = 150");
  ASSERT_TRUE(del.ok) << del.message;
  EXPECT_EQ(del.command_tag, "DELETE 1");
  QueryResult setting = t1->exec("SELECT current_setting('rowguard.tenant'), current_setting('rowguard.bypass')");
  ASSERT_TRUE(setting.ok) << setting.message;
  EXPECT_EQ(setting.rows.at(0).at(0), std::optional<std::string>("1"));
  EXPECT_EQ(setting.rows.at(0).at(1), std::optional<std::string>("off"));
}

// The point of the backstop: a statement the rewrite lets through unfiltered (simulated: a
// policy that lists orders as global, so rowguard adds no tenant filter) leaks without it and
// is filtered by PostgreSQL with it.
TEST_F(RlsBackstop, FiltersWhatTheRewriteLetsThrough) {
  {
    RowguardProcess gap(config("appdb", false, true), Env::get().pg(), "info");  // appdb: no RLS
    Client t1(gap.conninfo("t1") + " password=pw1");
    QueryResult r = t1.exec("SELECT id FROM orders ORDER BY id");
    ASSERT_TRUE(r.ok) << r.message;
    EXPECT_TRUE(has_other_tenant_marker(r.everything())) << "the simulated rewriter gap must be real: " << r.everything();
  }
  RowguardProcess gap(config(kDb, true, true), Env::get().pg(), "info");
  Client t1(gap.conninfo("t1", kDb) + " password=pw1");
  QueryResult r = t1.exec("SELECT id FROM orders ORDER BY id");
  EXPECT_TRUE(no_leak(r));
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_EQ(first_column(r), kTenant1Orders);
  QueryResult count = t1.exec("SELECT count(*), sum(amount) FROM orders");
  EXPECT_TRUE(no_leak(count));
  ASSERT_TRUE(count.ok) << count.message;
  EXPECT_EQ(count.rows.at(0).at(0), std::optional<std::string>("3"));
}

// An upstream session with the tenant set sees and writes only that tenant's rows, whatever
// SQL it runs (no rewriter involved); without the setting it sees nothing (fail closed).
TEST_F(RlsBackstop, UpstreamSessionIsConfinedToItsTenant) {
  auto s = direct_app("-c rowguard.tenant=1");
  QueryResult all = s->exec("SELECT id FROM orders ORDER BY id");
  ASSERT_TRUE(all.ok) << all.message;
  EXPECT_EQ(first_column(all), kTenant1Orders);
  QueryResult other = s->exec("SELECT count(*) FROM customers WHERE tenant_id = 2");
  ASSERT_TRUE(other.ok) << other.message;
  EXPECT_EQ(first_column(other), std::vector<std::string>{"0"});
  QueryResult move = s->exec("UPDATE orders SET tenant_id = 2 WHERE id = 101");
  EXPECT_EQ(move.sqlstate, "42501") << move.message;  // WITH CHECK
  QueryResult plant = s->exec("INSERT INTO orders (id, tenant_id, amount) VALUES (250, 2, 1)");
  EXPECT_EQ(plant.sqlstate, "42501") << plant.message;
  QueryResult touch = s->exec("UPDATE orders SET amount = 0 WHERE id = 201");
  ASSERT_TRUE(touch.ok) << touch.message;
  EXPECT_EQ(touch.command_tag, "UPDATE 0");
  QueryResult global_write = s->exec("INSERT INTO countries (code, name) VALUES ('XX', 'Nowhere')");
  EXPECT_EQ(global_write.sqlstate, "42501") << global_write.message;

  auto none = direct_app("");
  QueryResult nothing = none->exec("SELECT count(*) FROM orders");
  ASSERT_TRUE(nothing.ok) << nothing.message;
  EXPECT_EQ(first_column(nothing), std::vector<std::string>{"0"});
  QueryResult no_write = none->exec("INSERT INTO orders (id, tenant_id, amount) VALUES (251, 1, 1)");
  EXPECT_EQ(no_write.sqlstate, "42501") << no_write.message;

  auto admin = direct_app("-c rowguard.bypass=on");
  QueryResult everything = admin->exec("SELECT count(*) FROM orders");
  ASSERT_TRUE(everything.ok) << everything.message;
  EXPECT_EQ(first_column(everything), std::vector<std::string>{"9"});
}

// PostgreSQL evaluates RLS quals before any non-leakproof qual of the query (security_level),
// so an erroring user qual never runs on another tenant's row: the error oracle is closed.
TEST_F(RlsBackstop, ClosesTheQualOrderingErrorOracle) {
  const std::string probe = "SELECT count(*) FROM orders WHERE 1 / (CASE WHEN tenant_id = 2 THEN 0 ELSE 1 END) = 1";
  auto s = direct_app("-c rowguard.tenant=1");
  QueryResult direct = s->exec(probe);
  ASSERT_TRUE(direct.ok) << direct.sqlstate << " " << direct.message;
  EXPECT_EQ(first_column(direct), std::vector<std::string>{"3"});
  auto t1 = tenant(1);
  QueryResult through = t1->exec(probe);
  EXPECT_TRUE(no_leak(through));
  EXPECT_NE(through.sqlstate, "22012") << through.message;
}

TEST_F(RlsBackstop, TenantsCannotChangeTheBackstopSettings) {
  auto t1 = tenant(1);
  const std::vector<std::string> attacks = {
      "SET rowguard.tenant = '2'",
      "SET SESSION rowguard.tenant TO 2",
      "SET rowguard.bypass = on",
      "SET \"rowguard.bypass\" TO 'on'",
      "RESET rowguard.tenant",
      "SET rowguard.tenant TO DEFAULT",
      "RESET ALL",
      "SELECT set_config('rowguard.tenant', '2', false)",
      "SELECT pg_catalog.set_config('rowguard.bypass', 'on', true)",
      "SELECT id FROM orders WHERE set_config('rowguard.bypass', 'on', false) IS NOT NULL",
      "DO $$ BEGIN PERFORM set_config('rowguard.bypass', 'on', false); END $$",
      "SET SESSION AUTHORIZATION DEFAULT",
      "RESET SESSION AUTHORIZATION",
      "SET ROLE postgres",
      "SET row_security TO off; SET rowguard.bypass TO on",
      "ALTER ROLE app SET rowguard.bypass = 'on'",
      std::string("ALTER DATABASE ") + kDb + " SET rowguard.bypass = 'on'",
      "PREPARE p AS SELECT set_config('rowguard.bypass', 'on', false)",
  };
  for (const auto& sql : attacks) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.refused()) << sql << " -> ok=" << r.ok << " " << r.sqlstate << " " << r.message;
  }
  ASSERT_TRUE(t1->exec("BEGIN").ok);
  QueryResult local = t1->exec("SET LOCAL rowguard.tenant = '2'");
  EXPECT_TRUE(local.refused()) << local.message;
  t1->exec("ROLLBACK");
  QueryResult local_bind = t1->exec_params("SELECT set_config($1, $2, true)", {"rowguard.bypass", "on"});
  EXPECT_TRUE(local_bind.refused()) << local_bind.message;
  // DISCARD ALL (allowed) returns settings to their startup values: rowguard's.
  QueryResult discard = t1->exec("DISCARD ALL");
  ASSERT_TRUE(discard.ok) << discard.message;
  QueryResult after = t1->exec("SELECT current_setting('rowguard.tenant'), current_setting('rowguard.bypass')");
  ASSERT_TRUE(after.ok) << after.message;
  EXPECT_EQ(after.rows.at(0).at(0), std::optional<std::string>("1"));
  EXPECT_EQ(after.rows.at(0).at(1), std::optional<std::string>("off"));
  QueryResult still = t1->exec("SELECT id FROM orders ORDER BY id");
  ASSERT_TRUE(still.ok) << still.message;
  EXPECT_EQ(first_column(still), kTenant1Orders);
  EXPECT_TRUE(t1->alive());

  // Startup parameters: through options, and as a parameter of its own.
  for (const std::string options : {"-c rowguard.bypass=on", "-c rowguard.tenant=2", "--rowguard.bypass=on"}) {
    std::string error;
    try {
      Client c(rowguard_->conninfo("t1", kDb) + " password=pw1 options='" + options + "'");
    } catch (const std::exception& e) {
      error = e.what();
    }
    EXPECT_NE(error.find("not allowed"), std::string::npos) << options << ": " << error;
  }
  for (const char* name : {"rowguard.bypass", "rowguard.tenant", "ROWGUARD.BYPASS"}) {
    std::string answer = raw_startup(rowguard_->port(), {{"user", "t1"}, {"database", kDb}, {name, "on"}});
    ASSERT_FALSE(answer.empty()) << name;
    EXPECT_EQ(answer[0], 'E') << name;  // ErrorResponse before any authentication request
    EXPECT_NE(answer.find("42501"), std::string::npos) << name;
  }
}

TEST_F(RlsBackstop, BypassUsersSeeAndWriteEverything) {
  auto dba = bypass();
  QueryResult all = dba->exec("SELECT count(*) FROM orders");
  ASSERT_TRUE(all.ok) << all.message;
  EXPECT_EQ(first_column(all), std::vector<std::string>{"9"});
  QueryResult ins = dba->exec("INSERT INTO countries (code, name) VALUES ('ZZ', 'Test')");
  ASSERT_TRUE(ins.ok) << ins.message;
  QueryResult del = dba->exec("DELETE FROM countries WHERE code = 'ZZ'");
  ASSERT_TRUE(del.ok) << del.message;
  EXPECT_EQ(del.command_tag, "DELETE 1");
}

// backstop = "rls" is a promise; rowguard does not start when PostgreSQL would not keep it.
TEST_F(RlsBackstop, RefusesToStartWithoutTheBackstop) {
  auto refused = [](const std::string& cfg) -> std::string {
    try {
      RowguardProcess p(cfg, Env::get().pg(), "info");
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  // appdb: no RLS at all.
  std::string no_rls = refused(config("appdb", true));
  EXPECT_NE(no_rls.find("exited with code 1"), std::string::npos) << no_rls;
  EXPECT_NE(no_rls.find("\"public.orders\" does not have row level security enabled"), std::string::npos) << no_rls;
  EXPECT_NE(no_rls.find("Not starting"), std::string::npos) << no_rls;

  // One more permissive policy widens what the tenants see.
  PgServer& pg = Env::get().pg();
  must(pg.psql_super("CREATE POLICY widen ON orders USING (true)", kDb), "create policy widen");
  std::string widened = refused(config(kDb, true));
  must(pg.psql_super("DROP POLICY widen ON orders", kDb), "drop policy widen");
  EXPECT_NE(widened.find("other permissive policies (widen)"), std::string::npos) << widened;

  // FORCE missing: the owner (the upstream role) would skip the policy.
  must(pg.psql_super("ALTER TABLE customers NO FORCE ROW LEVEL SECURITY", kDb), "no force");
  std::string unforced = refused(config(kDb, true));
  must(pg.psql_super("ALTER TABLE customers FORCE ROW LEVEL SECURITY", kDb), "force again");
  EXPECT_NE(unforced.find("\"public.customers\" does not force row level security"), std::string::npos) << unforced;

  // An upstream role with BYPASSRLS skips every policy.
  must(pg.psql_super(std::string("DROP ROLE IF EXISTS ") + kBypassRlsRole), "drop role");
  must(pg.psql_super(std::string("CREATE ROLE ") + kBypassRlsRole + " LOGIN BYPASSRLS PASSWORD 'pw'"), "create role");
  std::string cfg = replace_all(config(kDb, true), "upstream_user = \"app\"", std::string("upstream_user = \"") + kBypassRlsRole + "\"");
  cfg = replace_all(cfg, "upstream_password = \"secret\"", "upstream_password = \"pw\"");
  std::string bypassrls = refused(cfg);
  EXPECT_NE(bypassrls.find("is a superuser or has BYPASSRLS"), std::string::npos) << bypassrls;

  // And with everything in place it starts (the suite's own rowguard_ did).
  EXPECT_NE(rowguard_->log().find("backstop: RLS policies in place on 3 table(s)"), std::string::npos) << rowguard_->log();
}

}  // namespace
}  // namespace rowguard::testing::adversarial
