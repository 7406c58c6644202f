// Unit tests for policy: parse_policy / load_policy (the TOML contract, defaults, errors with
// file name and line), parse_qualified_name and the builtin function allowlist.
#include "policy/policy.h"

#include "auth/scram.h"

#include <gtest/gtest.h>

#include <thread>

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

namespace rowguard::policy {
namespace {

using namespace std::string_literals;

// examples/rowguard.toml, embedded (the unit tests have no source-dir definition).
constexpr const char* kExampleToml = R"toml(# rowguard example policy, matching examples/schema.sql.
[proxy]
# Address rowguard listens on for PostgreSQL clients ("host:port").
listen = "127.0.0.1:6432"
# The real PostgreSQL server ("host:port").
upstream = "127.0.0.1:5432"
# Role and password rowguard logs in with upstream, for every client session.
upstream_user = "app"
upstream_password = "secret"
# Database every session is connected to upstream.
upstream_database = "appdb"

[tenancy]
default_column = "tenant_id"
unknown_tables = "deny"

[[tenants]]
user = "t1"
password = "pw1"
tenant = "1"   # acme

[[tenants]]
user = "t2"
password = "pw2"
tenant = "2"   # globex

[[tenants]]
user = "t3"
password = "pw3"
tenant = "3"   # initech

[[bypass]]
user = "dba"
password = "pwdba"

[tables."public.orders"]
column = "tenant_id"

[tables."public.customers"]

[tables."public.countries"]
global = true
)toml";

// The smallest valid policy; tests append to it or edit it.
constexpr const char* kMinimalToml = R"toml([proxy]
listen = "127.0.0.1:6432"
upstream = "127.0.0.1:5432"
upstream_user = "app"

[tenancy]

[[tenants]]
user = "t1"
password = "pw1"
tenant = "1"
)toml";

// Parses `text`, expects a PolicyError, returns its message.
std::string error_of(const std::string& text, const std::string& source = "policy.toml") {
  try {
    parse_policy(text, source);
  } catch (const PolicyError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a PolicyError: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error for:\n" << text;
  return "";
}

// The error names the file, the line, and says what is wrong.
void expect_error_at(const std::string& text, int line, const std::string& what) {
  const std::string msg = error_of(text, "my-policy.toml");
  EXPECT_NE(msg.find("my-policy.toml"), std::string::npos) << msg;
  EXPECT_NE(msg.find(what), std::string::npos) << "missing \"" << what << "\" in:\n" << msg;
  // toml11 shows the offending line as "<n> | <text>".
  EXPECT_NE(msg.find(" " + std::to_string(line) + " | "), std::string::npos)
      << "line " << line << " not shown in:\n" << msg;
}

TEST(ParsePolicy, ExampleContract) {
  PolicyPtr p = parse_policy(kExampleToml, "examples/rowguard.toml");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->source, "examples/rowguard.toml");
  EXPECT_EQ(p->proxy.listen_host, "127.0.0.1");
  EXPECT_EQ(p->proxy.listen_port, 6432);
  EXPECT_EQ(p->proxy.upstream_host, "127.0.0.1");
  EXPECT_EQ(p->proxy.upstream_port, 5432);
  EXPECT_EQ(p->proxy.upstream_user, "app");
  EXPECT_EQ(p->proxy.upstream_password, "secret");
  EXPECT_EQ(p->proxy.upstream_database, std::optional<std::string>("appdb"));
  EXPECT_EQ(p->proxy.workers, 0);
  EXPECT_EQ(p->default_column, "tenant_id");

  ASSERT_EQ(p->logins.size(), 4u);
  for (auto [user, pw, tenant] : {std::tuple{"t1", "pw1", "1"}, std::tuple{"t2", "pw2", "2"},
                                  std::tuple{"t3", "pw3", "3"}}) {
    const Login* l = p->login(user);
    ASSERT_NE(l, nullptr) << user;
    EXPECT_EQ(l->user, user);
    EXPECT_EQ(l->password, pw);
    EXPECT_EQ(l->tenant, std::optional<std::string>(tenant));
    EXPECT_FALSE(l->bypass());
  }
  const Login* dba = p->login("dba");
  ASSERT_NE(dba, nullptr);
  EXPECT_TRUE(dba->bypass());
  EXPECT_EQ(dba->password, "pwdba");
  EXPECT_EQ(p->login("nobody"), nullptr);

  ASSERT_EQ(p->tables.size(), 3u);
  const TableRule* orders = p->table({"public", "orders"});
  ASSERT_NE(orders, nullptr);
  EXPECT_FALSE(orders->global);
  EXPECT_EQ(orders->column, "tenant_id");
  EXPECT_EQ(orders->table.to_string(), "public.orders");
  const TableRule* customers = p->table({"public", "customers"});
  ASSERT_NE(customers, nullptr);
  EXPECT_EQ(customers->column, "tenant_id");  // from default_column
  const TableRule* countries = p->table({"public", "countries"});
  ASSERT_NE(countries, nullptr);
  EXPECT_TRUE(countries->global);
  EXPECT_EQ(countries->column, "");
  EXPECT_EQ(p->table({"public", "audit_log"}), nullptr);
  EXPECT_EQ(p->table({"other", "orders"}), nullptr);
  EXPECT_TRUE(p->allowed_functions.empty());
}

TEST(ParsePolicy, VersionsIncrease) {
  PolicyPtr a = parse_policy(kMinimalToml, "a.toml");
  PolicyPtr b = parse_policy(kMinimalToml, "a.toml");
  EXPECT_GT(a->version, 0u);
  EXPECT_GT(b->version, a->version);
}

TEST(ParsePolicy, Defaults) {
  PolicyPtr p = parse_policy(kMinimalToml + "\n[tables.\"public.orders\"]\n"s, "min.toml");
  EXPECT_EQ(p->default_column, "tenant_id");
  EXPECT_FALSE(p->proxy.upstream_database.has_value());
  EXPECT_EQ(p->proxy.upstream_password, "");
  EXPECT_EQ(p->proxy.workers, 0);
  ASSERT_NE(p->table({"public", "orders"}), nullptr);
  EXPECT_EQ(p->table({"public", "orders"})->column, "tenant_id");
  EXPECT_EQ(p->explain, Explain::kRefuse);  // EXPLAIN's plan shape reflects every tenant's statistics
}

TEST(ParsePolicy, ExplainCostsOff) {
  std::string text = kMinimalToml;
  text.replace(text.find("[tenancy]\n"), 10, "[tenancy]\nexplain = \"costs_off\"\n");
  EXPECT_EQ(parse_policy(text, "e.toml")->explain, Explain::kCostsOff);
}

TEST(ParsePolicy, ColumnDefaultsToDefaultColumn) {
  std::string text = kMinimalToml;
  text.replace(text.find("[tenancy]\n"), 10, "[tenancy]\ndefault_column = \"org_id\"\n");
  text += "[tables.\"app.invoices\"]\n[tables.\"app.items\"]\ncolumn = \"owner\"\n";
  PolicyPtr p = parse_policy(text, "x.toml");
  EXPECT_EQ(p->default_column, "org_id");
  ASSERT_NE(p->table({"app", "invoices"}), nullptr);
  EXPECT_EQ(p->table({"app", "invoices"})->column, "org_id");
  ASSERT_NE(p->table({"app", "items"}), nullptr);
  EXPECT_EQ(p->table({"app", "items"})->column, "owner");
}

TEST(ParsePolicy, TenantAsIntegerAccepted) {
  std::string text = kMinimalToml;
  text.replace(text.find("tenant = \"1\""), 12, "tenant = 42");
  PolicyPtr p = parse_policy(text, "x.toml");
  ASSERT_NE(p->login("t1"), nullptr);
  EXPECT_EQ(p->login("t1")->tenant, std::optional<std::string>("42"));
}

TEST(ParsePolicy, WorkersAndFunctionsAndIpv6Listen) {
  std::string text = kMinimalToml;
  text.replace(text.find("listen = \"127.0.0.1:6432\""), 25, "listen = \"[::1]:7000\"\nworkers = 4");
  text += "[functions]\nallow = [\"public.safe_fn\", \"util.fmt\", \"bare\"]\n";
  PolicyPtr p = parse_policy(text, "x.toml");
  EXPECT_EQ(p->proxy.listen_host, "::1");
  EXPECT_EQ(p->proxy.listen_port, 7000);
  EXPECT_EQ(p->proxy.workers, 4);
  EXPECT_TRUE(p->function_allowed({"public", "safe_fn"}));
  EXPECT_TRUE(p->function_allowed({"util", "fmt"}));
  EXPECT_TRUE(p->function_allowed({"public", "bare"}));
  EXPECT_FALSE(p->function_allowed({"public", "fmt"}));
  EXPECT_FALSE(p->function_allowed({"util", "safe_fn"}));
}

// ---- errors: file name, line number, and what is wrong --------------------------------------

TEST(ParsePolicyErrors, UnknownTopLevelKey) {
  // Line 12 of the text below.
  expect_error_at(kMinimalToml + "[extra]\nx = 1\n"s, 12, "unknown key \"extra\" in the top level");
}

TEST(ParsePolicyErrors, UnknownKeyInProxy) {
  std::string text = kMinimalToml;
  text.replace(text.find("upstream_user"), 0, "listen_port = 1\n");  // becomes line 4
  expect_error_at(text, 4, "unknown key \"listen_port\" in [proxy]");
}

TEST(ParsePolicyErrors, UnknownKeyInTenancy) {
  std::string text = kMinimalToml;
  text.replace(text.find("[tenancy]\n"), 10, "[tenancy]\nmode = \"strict\"\n");  // line 7
  expect_error_at(text, 7, "unknown key \"mode\" in [tenancy]");
}

TEST(ParsePolicyErrors, UnknownKeyInTenants) {
  expect_error_at(kMinimalToml + "role = \"admin\"\n"s, 12, "unknown key \"role\" in [[tenants]]");
}

TEST(ParsePolicyErrors, UnknownKeyInTable) {
  // line 12: the table header, line 13: the bad key
  expect_error_at(kMinimalToml + "[tables.\"public.orders\"]\ncolumns = \"tenant_id\"\n"s, 13,
                  "unknown key \"columns\" in [tables.\"public.orders\"]");
}

TEST(ParsePolicyErrors, MissingUpstreamUser) {
  std::string text = kMinimalToml;
  text.erase(text.find("upstream_user = \"app\"\n"), 22);
  const std::string msg = error_of(text, "my-policy.toml");
  EXPECT_NE(msg.find("my-policy.toml"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing key \"upstream_user\" in [proxy]"), std::string::npos) << msg;
  EXPECT_NE(msg.find(" 1 | [proxy]"), std::string::npos) << msg;  // points at the table
}

TEST(ParsePolicyErrors, BadListen) {
  std::string text = kMinimalToml;
  text.replace(text.find("\"127.0.0.1:6432\""), 16, "\"nohost\"");
  expect_error_at(text, 2, "\"listen\" must be \"host:port\"");
  std::string port = kMinimalToml;
  port.replace(port.find("\"127.0.0.1:6432\""), 16, "\"127.0.0.1:99999\"");
  expect_error_at(port, 2, "\"listen\" has an invalid port");
  std::string junk = kMinimalToml;
  junk.replace(junk.find("\"127.0.0.1:6432\""), 16, "\"127.0.0.1:64x\"");
  expect_error_at(junk, 2, "\"listen\" has an invalid port");
}

TEST(ParsePolicyErrors, UnknownTablesAllow) {
  std::string text = kMinimalToml;
  text.replace(text.find("[tenancy]\n"), 10, "[tenancy]\nunknown_tables = \"allow\"\n");
  expect_error_at(text, 7, "\"unknown_tables\" must be \"deny\"");
}

TEST(ParsePolicyErrors, ExplainOn) {
  std::string text = kMinimalToml;
  text.replace(text.find("[tenancy]\n"), 10, "[tenancy]\nexplain = \"on\"\n");
  expect_error_at(text, 7, "\"explain\" must be \"refuse\" or \"costs_off\"");
}

TEST(ParsePolicyErrors, GlobalTableWithColumn) {
  expect_error_at(kMinimalToml + "[tables.\"public.countries\"]\nglobal = true\ncolumn = \"tenant_id\"\n"s,
                  14, "a global table has no tenant column");
}

TEST(ParsePolicyErrors, DuplicateUser) {
  expect_error_at(kMinimalToml + "\n[[bypass]]\nuser = \"t1\"\npassword = \"x\"\n"s, 14,
                  "user \"t1\" is listed twice");
}

TEST(ParsePolicyErrors, TenantOfWrongType) {
  std::string text = kMinimalToml;
  text.replace(text.find("tenant = \"1\""), 12, "tenant = 1.5");
  expect_error_at(text, 11, "\"tenant\" must be a string (or an integer)");
}

TEST(ParsePolicyErrors, TableKeyWithoutSchemaPartIsQualifiedAsPublic) {
  // "orders" is read as public.orders (parse_qualified_name); an empty name is refused.
  PolicyPtr p = parse_policy(kMinimalToml + "[tables.orders]\n"s, "x.toml");
  EXPECT_NE(p->table({"public", "orders"}), nullptr);
  const std::string msg = error_of(kMinimalToml + "[tables.\"public.\"]\n"s);
  EXPECT_NE(msg.find("must be \"schema.table\""), std::string::npos) << msg;
}

TEST(ParsePolicyErrors, DuplicateTableAfterQualification) {
  // "orders" and "public.orders" are the same table.
  const std::string msg =
      error_of(kMinimalToml + "[tables.orders]\n[tables.\"public.orders\"]\nglobal = true\n"s);
  EXPECT_NE(msg.find("is listed twice"), std::string::npos) << msg;
}

TEST(ParsePolicyErrors, TomlSyntaxError) {
  const std::string msg = error_of(kMinimalToml + "[tables\nx = \n"s, "broken.toml");
  EXPECT_NE(msg.find("broken.toml"), std::string::npos) << msg;
  EXPECT_NE(msg.find(" 12 | "), std::string::npos) << msg;
}

TEST(ParsePolicyErrors, NoUsersAtAll) {
  std::string text = kMinimalToml;
  text.erase(text.find("[[tenants]]"));
  EXPECT_EQ(error_of(text, "empty.toml"),
            "empty.toml: no [[tenants]] or [[bypass]] users: nobody could log in");
}

TEST(ParsePolicyErrors, MissingSections) {
  EXPECT_NE(error_of("[tenancy]\n").find("missing table [proxy]"), std::string::npos);
  std::string text = kMinimalToml;
  text.erase(text.find("[tenancy]\n"), 10);
  EXPECT_NE(error_of(text).find("missing table [tenancy]"), std::string::npos);
}

TEST(LoadPolicy, MissingFileNamesTheFile) {
  const std::string path = "/nonexistent-dir/rowguard-policy-test.toml";
  try {
    load_policy(path);
    FAIL() << "no error";
  } catch (const PolicyError& e) {
    EXPECT_EQ(std::string(e.what()), path + ": cannot open policy file");
  }
}

TEST(LoadPolicy, ReadsAFile) {
  char name[] = "/tmp/rowguard-policy-test-XXXXXX";
  int fd = mkstemp(name);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream out(name);
    out << kExampleToml;
  }
  PolicyPtr p = load_policy(name);
  EXPECT_EQ(p->source, name);
  EXPECT_EQ(p->logins.size(), 4u);
  // Errors in a loaded file name that file.
  {
    std::ofstream out(name);
    out << kMinimalToml << "bogus = 1\n";
  }
  try {
    load_policy(name);
    ADD_FAILURE() << "no error";
  } catch (const PolicyError& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
  std::remove(name);
}

// ---- names and functions -----------------------------------------------------------------------

TEST(ParseQualifiedName, SplitsAtTheFirstDot) {
  EXPECT_EQ(parse_qualified_name("public.orders"), (QualifiedName{"public", "orders"}));
  EXPECT_EQ(parse_qualified_name("orders"), (QualifiedName{"public", "orders"}));
  EXPECT_EQ(parse_qualified_name("App.Orders"), (QualifiedName{"App", "Orders"}));  // as written
  EXPECT_EQ(parse_qualified_name("a.b.c"), (QualifiedName{"a", "b.c"}));
  EXPECT_EQ(parse_qualified_name("x.").name, "");
  EXPECT_EQ(QualifiedName({"public", "orders"}).to_string(), "public.orders");
}

TEST(BuiltinFunctions, Allowlist) {
  for (const char* f : {"count", "sum", "lower", "now", "row_number", "jsonb_build_object"}) {
    EXPECT_TRUE(builtin_function_allowed(f)) << f;
  }
  for (const char* f : {"query_to_xml", "pg_read_file", "dblink", "lo_import", "set_config",
                        "pg_sleep", "pg_terminate_backend", "table_to_xml", "my_fn", "COUNT", ""}) {
    EXPECT_FALSE(builtin_function_allowed(f)) << f;
  }
}

// ---- [pool] -----------------------------------------------------------------------------------

TEST(ParsePolicyPool, DefaultsWhenAbsent) {
  PolicyPtr p = parse_policy(kMinimalToml, "min.toml");
  EXPECT_EQ(p->pool.mode, PoolMode::kSession);
  EXPECT_EQ(p->pool.size, 20u);
  EXPECT_EQ(p->pool.min_size, 0u);
  EXPECT_EQ(p->pool.query_wait_timeout_seconds, 120);
  EXPECT_EQ(p->pool.server_idle_timeout_seconds, 600);
  EXPECT_EQ(p->pool.server_lifetime_seconds, 3600);
  EXPECT_EQ(p->pool.max_prepared_statements, 200u);
  EXPECT_DOUBLE_EQ(p->pool.max_tenant_share, 0.75);
  EXPECT_EQ(p->pool.idle_transaction_timeout_seconds, 60);
}

TEST(ParsePolicyPool, TenantShareAndIdleTransactionTimeout) {
  auto p = parse_policy(kMinimalToml + "[pool]\nmax_tenant_share = 0.5\nidle_transaction_timeout = 0\n"s, "x.toml");
  EXPECT_DOUBLE_EQ(p->pool.max_tenant_share, 0.5);
  EXPECT_EQ(p->pool.idle_transaction_timeout_seconds, 0);
  p = parse_policy(kMinimalToml + "[pool]\nmax_tenant_share = 1\nidle_transaction_timeout = 5\n"s, "x.toml");
  EXPECT_DOUBLE_EQ(p->pool.max_tenant_share, 1.0);
  EXPECT_EQ(p->pool.idle_transaction_timeout_seconds, 5);
  expect_error_at(kMinimalToml + "[pool]\nmax_tenant_share = 0\n"s, 13, "[pool] max_tenant_share must be a fraction");
  expect_error_at(kMinimalToml + "[pool]\nmax_tenant_share = 1.5\n"s, 13, "[pool] max_tenant_share must be a fraction");
  expect_error_at(kMinimalToml + "[pool]\nmax_tenant_share = 2\n"s, 13, "[pool] max_tenant_share must be a fraction");
  expect_error_at(kMinimalToml + "[pool]\nmax_tenant_share = \"half\"\n"s, 13, "[pool] max_tenant_share must be");
  expect_error_at(kMinimalToml + "[pool]\nidle_transaction_timeout = -1\n"s, 13,
                  "[pool] idle_transaction_timeout must be an integer");
}

TEST(ParsePolicyPool, AllKeys) {
  PolicyPtr p = parse_policy(kMinimalToml +
                                 "[pool]\nmode = \"session\"\nsize = 10\nmin_size = 2\nquery_wait_timeout = 5\n"
                                 "server_idle_timeout = 0\nserver_lifetime = 7200\nmax_prepared_statements = 50\n"s,
                             "x.toml");
  EXPECT_EQ(p->pool.mode, PoolMode::kSession);
  EXPECT_EQ(p->pool.size, 10u);
  EXPECT_EQ(p->pool.min_size, 2u);
  EXPECT_EQ(p->pool.query_wait_timeout_seconds, 5);
  EXPECT_EQ(p->pool.server_idle_timeout_seconds, 0);
  EXPECT_EQ(p->pool.server_lifetime_seconds, 7200);
  EXPECT_EQ(p->pool.max_prepared_statements, 50u);
}

TEST(ParsePolicyPool, TransactionMode) {
  auto p = parse_policy(kMinimalToml + "[pool]\nmode = \"transaction\"\nsize = 4\n"s, "x.toml");
  EXPECT_EQ(p->pool.mode, PoolMode::kTransaction);
  EXPECT_EQ(p->pool.size, 4u);
}

TEST(ParsePolicyPool, TransactionModeIsRefusedWithTheRlsBackstop) {
  std::string toml = kMinimalToml;
  toml.replace(toml.find("[tenancy]\n"), 10, "[tenancy]\nbackstop = \"rls\"\n");
  expect_error_at(toml + "[pool]\nmode = \"transaction\"\n"s, 14, "cannot be used with [tenancy] backstop = \"rls\"");
}

TEST(ParsePolicyPool, Errors) {
  expect_error_at(kMinimalToml + "[pool]\nmode = \"statement\"\n"s, 13, "[pool] mode must be");
  expect_error_at(kMinimalToml + "[pool]\nsize = 0\n"s, 13, "[pool] size must be an integer 1..10000");
  expect_error_at(kMinimalToml + "[pool]\nquery_wait_timeout = -1\n"s, 13, "[pool] query_wait_timeout must be");
  expect_error_at(kMinimalToml + "[pool]\nsize = 2\nmin_size = 3\n"s, 14, "[pool] min_size must not exceed size");
  expect_error_at(kMinimalToml + "[pool]\npool_size = 2\n"s, 13, "pool_size");
  expect_error_at(kMinimalToml + "[pool]\nmax_prepared_statements = 0\n"s, 13,
                  "[pool] max_prepared_statements must be an integer 1..100000");
}

// ---- [limits] ---------------------------------------------------------------------------------

TEST(ParsePolicyLimits, DefaultsWhenAbsent) {
  PolicyPtr p = parse_policy(kMinimalToml, "min.toml");
  EXPECT_EQ(p->limits.max_message_size, size_t{1} << 30);
  EXPECT_EQ(p->limits.max_startup_packet, 64u * 1024);
  EXPECT_EQ(p->limits.max_server_message, size_t{1} << 30);
  EXPECT_EQ(p->limits.idle_client_timeout_seconds, 0);
  EXPECT_EQ(p->limits.idle_in_transaction_timeout_seconds, 0);
  EXPECT_EQ(p->limits.message_timeout_seconds, 60);
  EXPECT_EQ(p->limits.max_prepared_statements, 10000u);
  EXPECT_EQ(p->limits.max_prepared_statement_bytes, size_t{64} << 20);
  EXPECT_EQ(p->limits.max_pipelined_messages, 100000u);
}

TEST(ParsePolicyLimits, AllKeys) {
  PolicyPtr p = parse_policy(kMinimalToml +
                                 "[limits]\nmax_message_size = 1048576\nmax_startup_packet = 4096\n"
                                 "max_server_message = 2097152\nidle_client_timeout = 600\n"
                                 "idle_in_transaction_timeout = 30\nmessage_timeout = 0\n"s,
                             "x.toml");
  EXPECT_EQ(p->limits.max_message_size, 1048576u);
  EXPECT_EQ(p->limits.max_startup_packet, 4096u);
  EXPECT_EQ(p->limits.max_server_message, 2097152u);
  EXPECT_EQ(p->limits.idle_client_timeout_seconds, 600);
  EXPECT_EQ(p->limits.idle_in_transaction_timeout_seconds, 30);
  EXPECT_EQ(p->limits.message_timeout_seconds, 0);
}

TEST(ParsePolicyLimits, PerSessionPreparedStatementKeys) {
  PolicyPtr p = parse_policy(kMinimalToml +
                                 "[limits]\nmax_prepared_statements = 50\nmax_prepared_statement_bytes = 65536\n"
                                 "max_pipelined_messages = 1000\n"s,
                             "x.toml");
  EXPECT_EQ(p->limits.max_prepared_statements, 50u);
  EXPECT_EQ(p->limits.max_prepared_statement_bytes, 65536u);
  EXPECT_EQ(p->limits.max_pipelined_messages, 1000u);
  expect_error_at(kMinimalToml + "[limits]\nmax_prepared_statements = 0\n"s, 13,
                  "\"max_prepared_statements\" must be an integer 1..1000000");
  expect_error_at(kMinimalToml + "[limits]\nmax_prepared_statement_bytes = 10\n"s, 13,
                  "\"max_prepared_statement_bytes\" must be an integer 1024..");
  expect_error_at(kMinimalToml + "[limits]\nmax_pipelined_messages = 10\n"s, 13,
                  "\"max_pipelined_messages\" must be an integer 100..");
}

TEST(ParsePolicyLimits, Errors) {
  // Line 13: the first key of [limits].
  expect_error_at(kMinimalToml + "[limits]\nmax_message_size = 2147483648\n"s, 13,
                  "\"max_message_size\" must be an integer 1024..1073741824 (bytes)");
  expect_error_at(kMinimalToml + "[limits]\nmax_startup_packet = 10\n"s, 13, "\"max_startup_packet\" must be");
  expect_error_at(kMinimalToml + "[limits]\nidle_client_timeout = -1\n"s, 13, "seconds, 0 = off");
  expect_error_at(kMinimalToml + "[limits]\nidle_in_transaction_timeout = \"5s\"\n"s, 13,
                  "\"idle_in_transaction_timeout\" must be an integer");
  expect_error_at(kMinimalToml + "[limits]\nmax_bytes = 1\n"s, 13, "unknown key \"max_bytes\" in [limits]");
}

// ---- error messages never carry secrets ----------------------------------------------------

// kMinimalToml with its line 10 (`password = "pw1"`) replaced by `bad_lines`.
std::string with_password_lines(const std::string& bad_lines) {
  std::string text = kMinimalToml;
  text.replace(text.find("password = \"pw1\""), 16, bad_lines);
  return text;
}

// The message names file, line and column ("my-policy.toml:10:"), shows the line number in the
// excerpt, says what is wrong, and contains none of `secrets`.
void expect_redacted_error(const std::string& text, int line, const std::string& what,
                           const std::vector<std::string>& secrets) {
  const std::string msg = error_of(text, "my-policy.toml");
  EXPECT_NE(msg.find("my-policy.toml:" + std::to_string(line) + ":"), std::string::npos) << msg;
  EXPECT_NE(msg.find(" " + std::to_string(line) + " | "), std::string::npos) << msg;
  EXPECT_NE(msg.find(what), std::string::npos) << "missing \"" << what << "\" in:\n" << msg;
  EXPECT_NE(msg.find("<redacted>"), std::string::npos) << msg;
  for (const auto& s : secrets) EXPECT_EQ(msg.find(s), std::string::npos) << "secret \"" << s << "\" in:\n" << msg;
}

TEST(PolicyErrorSecrets, UnterminatedStringOnPasswordLine) {
  expect_redacted_error(with_password_lines("password = \"Sup3rS3cretValue"), 10, "[error]",
                        {"Sup3rS3cret"});
}

TEST(PolicyErrorSecrets, SyntaxErrorAfterPasswordValue) {
  expect_redacted_error(with_password_lines("password = \"Sup3rS3cretValue\" trailing"), 10, "[error]",
                        {"Sup3rS3cret", "trailing"});
}

TEST(PolicyErrorSecrets, WrongTypeKeepsTheExplanation) {
  expect_redacted_error(with_password_lines("password = 918273645"), 10, "\"password\" must be a string",
                        {"918273645"});
  // Keeps the key so the reader sees which one is wrong.
  EXPECT_NE(error_of(with_password_lines("password = 918273645")).find("password = <redacted>"),
            std::string::npos);
}

TEST(PolicyErrorSecrets, MalformedScramVerifier) {
  expect_redacted_error(with_password_lines("password = \"SCRAM-SHA-256$4096:c2FsdA==$TopS3cretKey\""), 10,
                        "malformed SCRAM-SHA-256 verifier", {"TopS3cretKey", "c2FsdA=="});
}

TEST(PolicyErrorSecrets, MultiLineStrings) {
  // A valid multi-line string, wrong as a verifier: the error points at its first line.
  expect_redacted_error(with_password_lines("password = \"\"\"SCRAM-SHA-256$Sup3rS3cret\nSecondS3cretLine\"\"\""),
                        10, "malformed SCRAM-SHA-256 verifier", {"Sup3rS3cret", "SecondS3cretLine"});
  // Unterminated multi-line strings (basic and literal): the rest of the file is the secret.
  for (const char* quote : {"\"\"\"", "'''"}) {
    const std::string text =
        with_password_lines(std::string("password = ") + quote + "Sup3rS3cret\nSecondS3cretLine\n");
    const std::string msg = error_of(text, "my-policy.toml");
    EXPECT_NE(msg.find("my-policy.toml:"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("Sup3rS3cret"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("SecondS3cretLine"), std::string::npos) << msg;
  }
  // An array spanning lines: its second line is part of the password statement.
  expect_redacted_error(with_password_lines("password = [\n  \"Sup3rS3cretValue\",\n  \"AnotherS3cret\" oops ]"),
                        12, "[error]", {"Sup3rS3cret", "AnotherS3cret"});
}

TEST(PolicyErrorSecrets, UpstreamPasswordAndJwtSecret) {
  std::string text = kMinimalToml;
  text.replace(text.find("upstream_user"), 0, "upstream_password = \"UpS3cretValue\" x\n");  // line 4
  expect_redacted_error(text, 4, "[error]", {"UpS3cretValue"});

  std::string jwt = kMinimalToml;
  jwt.replace(jwt.find("[tenancy]\n"), 10, "[tenancy]\nidentity = \"jwt\"\njwt_secret = \"ShortJwtS3cret\"\n");
  const std::string msg = error_of(jwt, "my-policy.toml");
  EXPECT_NE(msg.find("my-policy.toml:"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("ShortJwtS3cret"), std::string::npos) << msg;
}

TEST(PolicyErrorSecrets, OtherLinesStayReadable) {
  // Errors on ordinary lines still quote them.
  std::string text = kMinimalToml;
  text.replace(text.find("tenant = \"1\""), 12, "tenant = 1.5");
  const std::string msg = error_of(text, "my-policy.toml");
  EXPECT_NE(msg.find("my-policy.toml:11:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("11 | tenant = 1.5"), std::string::npos) << msg;
}

// ---- SCRAM verifier computed once per Login ------------------------------------------------

// One server-side exchange as client_auth.cc runs it; returns the server-first message, and in
// `ok` whether the proof verified.
std::string scram_login(const Login& login, const std::string& password, bool& ok) {
  const auto& verifier = login.scram_verifier();
  EXPECT_TRUE(verifier.has_value());
  auth::ScramServer server(*verifier);
  auth::ScramClient client(password);
  const auto server_first = server.handle_client_first(client.client_first());
  EXPECT_TRUE(server_first.has_value());
  const auto client_final = client.handle_server_first(*server_first);
  EXPECT_TRUE(client_final.has_value());
  const auto server_final = server.handle_client_final(*client_final);
  ok = server_final.has_value() && client.verify_server_final(*server_final);
  return *server_first;
}

// "r=...,s=<salt>,i=<iterations>" -> "s=<salt>,i=<iterations>"
std::string salt_and_iterations(const std::string& server_first) {
  return server_first.substr(server_first.find(",s="));
}

TEST(LoginScramVerifier, PlaintextPasswordDerivedOnceAndReused) {
  const PolicyPtr p = parse_policy(kMinimalToml, "policy.toml");
  const Login* login = p->login("t1");
  ASSERT_NE(login, nullptr);
  bool ok1 = false, ok2 = false, bad = true;
  const std::string first = scram_login(*login, "pw1", ok1);
  const std::string second = scram_login(*login, "pw1", ok2);
  EXPECT_TRUE(ok1);
  EXPECT_TRUE(ok2);
  EXPECT_EQ(salt_and_iterations(first), salt_and_iterations(second));  // same salt: not re-derived
  EXPECT_NE(first.find(",i=4096"), std::string::npos) << first;
  EXPECT_NE(first, second);  // the nonces still differ per exchange
  scram_login(*login, "wrong", bad);
  EXPECT_FALSE(bad);
  // The same object is returned each time (computed once).
  EXPECT_EQ(&login->scram_verifier(), &login->scram_verifier());
  EXPECT_EQ(login->scram_verifier()->salt, login->scram_verifier()->salt);
}

TEST(LoginScramVerifier, StoredVerifierDecodedOnceAndUsed) {
  const std::string verifier = auth::ScramVerifier::from_password("pw9", "0123456789abcdef").to_string();
  std::string text = kMinimalToml;
  text.replace(text.find("password = \"pw1\""), 16, "password = \"" + verifier + "\"");
  const PolicyPtr p = parse_policy(text, "policy.toml");
  const Login* login = p->login("t1");
  ASSERT_NE(login, nullptr);
  bool ok = false, bad = true;
  const std::string first = scram_login(*login, "pw9", ok);
  EXPECT_TRUE(ok);
  EXPECT_NE(first.find(",s=" + auth::base64_encode("0123456789abcdef") + ",i=4096"), std::string::npos) << first;
  scram_login(*login, "pw1", bad);
  EXPECT_FALSE(bad);
}

TEST(LoginScramVerifier, ConcurrentFirstUseComputesOneVerifier) {
  const PolicyPtr p = parse_policy(kMinimalToml, "policy.toml");
  const Login* login = p->login("t1");
  ASSERT_NE(login, nullptr);
  std::vector<std::string> salts(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < salts.size(); ++i) {
    threads.emplace_back([&, i] { salts[i] = login->scram_verifier()->salt; });
  }
  for (auto& t : threads) t.join();
  for (const auto& s : salts) EXPECT_EQ(s, salts[0]);
  EXPECT_EQ(salts[0].size(), 16u);
}

TEST(ParsePolicyMetrics, MaxTenantLabels) {
  EXPECT_EQ(parse_policy(kMinimalToml, "m.toml")->metrics.max_tenant_labels, 1000u);
  const std::string text = kMinimalToml + "\n[metrics]\nlisten = \"127.0.0.1:9187\"\nmax_tenant_labels = 5\n"s;
  EXPECT_EQ(parse_policy(text, "m.toml")->metrics.max_tenant_labels, 5u);
  for (const char* bad : {"-1", "\"many\"", "100001"}) {
    std::string wrong = kMinimalToml + "\n[metrics]\nlisten = \"127.0.0.1:9187\"\nmax_tenant_labels = "s + bad + "\n";
    try {
      parse_policy(wrong, "m.toml");
      ADD_FAILURE() << "accepted max_tenant_labels = " << bad;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("max_tenant_labels must be an integer from 0 to 100000"), std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace rowguard::policy
