// Isolation breaches in the protocol and the session (issue #14, items 1-3): a desync of
// rowguard's bookkeeping after PostgreSQL's skip-until-Sync, statement names PostgreSQL
// truncates to 63 bytes, and grants that outlive a policy reload.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include "tests/adversarial/harness.h"
#include "tests/support/process.h"
#include "tests/support/raw_pq.h"

namespace rowguard::testing::adversarial {
namespace {

namespace raw = rowguard::testing::raw;

// Rows of `orders` with this id, by tenant, read straight from PostgreSQL.
std::string order_tenants(int id) {
  auto su = Env::get().direct_super();
  QueryResult r = su->exec("SELECT coalesce(string_agg(tenant_id::text, ','), '') FROM orders WHERE id = " +
                           std::to_string(id));
  return r.ok && !r.rows.empty() ? r.rows[0][0].value_or("") : "error: " + r.message;
}

void delete_order(int id) { Env::get().direct_super()->exec("DELETE FROM orders WHERE id = " + std::to_string(id)); }

const char* kInsert = "INSERT INTO orders (tenant_id, id, amount) VALUES ($1, $2, 1.00)";

// After an error in an extended batch PostgreSQL skips every message until Sync, a simple
// Query included, and answers the Sync once. A rowguard that counted the skipped Query as a
// batch of its own fell one answer behind and credited the next ParseComplete to a Parse the
// server had skipped: a Bind of the INSERT below then went unchecked.
TEST(ProtocolIsolation, DesyncAfterSkippedQueryDoesNotUncheckABind) {
  const int id = 9141;
  delete_order(id);
  auto t1 = Env::get().tenant(1);
  raw::Wire w(PQsocket(t1->raw()));
  // Batch 1: an error (Bind of a statement never prepared), then a Query and a Parse that the
  // server skips, then Sync: one ReadyForQuery.
  ASSERT_TRUE(w.send(raw::bind("", "proto_nosuch") + raw::query("SELECT 1") + raw::parse("p9141", "SELECT 1") +
                     raw::sync()));
  auto first = w.read_until_ready(1);
  EXPECT_EQ(raw::summary(first).substr(0, 1), "E") << raw::summary(first);
  // Batch 2: the real statement under that name. Batch 3: a lone Sync.
  ASSERT_TRUE(w.send(raw::parse("p9141", kInsert) + raw::sync() + raw::sync()));
  auto second = w.read_until_ready(2);
  EXPECT_EQ(raw::summary(second), "1 Z(I) Z(I)");
  // The attack: tenant 2 in $1.
  ASSERT_TRUE(w.send(raw::bind("", "p9141", {"2", std::to_string(id)}) + raw::execute("") + raw::sync()));
  auto third = w.read_until_ready(1);
  const std::string s = raw::summary(third);
  EXPECT_EQ(order_tenants(id), "") << "a row for tenant 2 was written; answers: " << s;
  EXPECT_NE(s.find("E(42501)"), std::string::npos) << s;
  // The session is still in step: tenant 1's own value goes through.
  ASSERT_TRUE(w.send(raw::bind("", "p9141", {"1", std::to_string(id)}) + raw::execute("") + raw::sync()));
  EXPECT_EQ(raw::summary(w.read_until_ready(1)), "2 C Z(I)");
  EXPECT_EQ(order_tenants(id), "1");
  delete_order(id);
}

// A simple Query inside an unsynced batch with no error pending runs and gets its own
// ReadyForQuery; with an error pending it is skipped. Either way the session stays in step.
TEST(ProtocolIsolation, QueryInsideAnExtendedBatchStaysInStep) {
  auto t1 = Env::get().tenant(1);
  raw::Wire w(PQsocket(t1->raw()));
  ASSERT_TRUE(w.send(raw::parse("", "SELECT 1") + raw::query("SELECT 2") + raw::bind("", "") + raw::execute("") +
                     raw::sync()));
  // The Query drops the unnamed statement (exec_simple_query), so the Bind fails.
  const std::string s = raw::summary(w.read_until_ready(2));
  EXPECT_EQ(s.substr(0, 15), "1 T D C Z(I) E(") << s;
  EXPECT_EQ(s.substr(s.size() - 5), " Z(I)") << s;
  ASSERT_TRUE(w.send(raw::parse("", "SELECT 1/0") + raw::bind("", "") + raw::execute("") + raw::query("SELECT 2") +
                     raw::sync()));
  EXPECT_EQ(raw::summary(w.read_until_ready(1)), "1 E(22012) Z(I)");  // 1/0 is folded at Bind
  EXPECT_TRUE(t1->alive());
}

std::string long_name(const std::string& suffix) { return std::string(63, 's') + suffix; }

// PostgreSQL keeps 63 bytes of a statement name: "s"x63 + "_B" is the statement prepared as
// "s"x63 + "_A". A Bind under the look-alike name must be checked like one under the real name.
TEST(ProtocolIsolation, LookAlikeLongStatementNameIsCheckedAsTheStatementItNames) {
  const int id = 9142;
  delete_order(id);
  auto t1 = Env::get().tenant(1);
  PGresult* prep = PQprepare(t1->raw(), long_name("_A").c_str(), kInsert, 0, nullptr);
  ASSERT_EQ(PQresultStatus(prep), PGRES_COMMAND_OK) << PQerrorMessage(t1->raw());
  PQclear(prep);
  const std::string sid = std::to_string(id);
  const char* attack[] = {"2", sid.c_str()};
  PGresult* res = PQexecPrepared(t1->raw(), long_name("_B").c_str(), 2, attack, nullptr, nullptr, 0);
  const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
  EXPECT_STREQ(state ? state : "", "42501") << PQresultErrorMessage(res);
  PQclear(res);
  EXPECT_EQ(order_tenants(id), "");
  // The same name with the session's own tenant runs (it is the statement the server holds).
  const char* own[] = {"1", sid.c_str()};
  res = PQexecPrepared(t1->raw(), long_name("_B").c_str(), 2, own, nullptr, nullptr, 0);
  EXPECT_EQ(PQresultStatus(res), PGRES_COMMAND_OK) << PQresultErrorMessage(res);
  PQclear(res);
  EXPECT_EQ(order_tenants(id), "1");
  delete_order(id);
}

// SQL names are truncated by the lexer: EXECUTE of a long look-alike name is the statement
// PREPAREd under the long real name, and its arguments are checked.
TEST(ProtocolIsolation, LookAlikeLongSqlPrepareNameIsChecked) {
  const int id = 9143;
  delete_order(id);
  auto t1 = Env::get().tenant(1);
  QueryResult p = t1->exec("PREPARE " + long_name("_a") + " (int, int) AS " + std::string(kInsert));
  ASSERT_TRUE(p.ok) << p.message;
  QueryResult r = t1->exec("EXECUTE " + long_name("_b") + " (2, " + std::to_string(id) + ")");
  EXPECT_TRUE(r.refused()) << r.sqlstate << " " << r.message;
  EXPECT_EQ(order_tenants(id), "");
  EXPECT_TRUE(t1->alive());
}

// A Bind or Describe of a name the session never prepared is refused (fail closed).
TEST(ProtocolIsolation, UnknownStatementNameIsRefused) {
  auto t1 = Env::get().tenant(1);
  raw::Wire w(PQsocket(t1->raw()));
  ASSERT_TRUE(w.send(raw::describe('S', "proto_never") + raw::sync()));
  EXPECT_EQ(raw::summary(w.read_until_ready(1)), "E(42501) Z(I)");
  ASSERT_TRUE(w.send(raw::bind("", "proto_never") + raw::execute("") + raw::sync()));
  EXPECT_EQ(raw::summary(w.read_until_ready(1)), "E(42501) Z(I)");
  EXPECT_TRUE(t1->alive());
}

// ---- reloads ------------------------------------------------------------------------------

std::unique_ptr<Client> connect_t1(RowguardProcess& rg) {
  return std::make_unique<Client>(rg.conninfo("t1") + " password=pw1");
}

// A statement prepared while a table was global must not keep reading every tenant's rows once
// a reload made the table tenant-scoped.
TEST(ProtocolIsolation, ReloadNarrowsStatementsPreparedBeforeIt) {
  auto su = Env::get().direct_super();
  ASSERT_TRUE(su->exec("DROP TABLE IF EXISTS proto_notes; "
                       "CREATE TABLE proto_notes (id int, tenant_id int, body text); "
                       "INSERT INTO proto_notes VALUES (1, 1, 'acme-note'), (2, 2, 'globex-note'); "
                       "GRANT ALL ON proto_notes TO app")
                  .ok);
  const std::string base = example_config_template();
  RowguardProcess rg(base + "\n[tables.\"public.proto_notes\"]\nglobal = true\n", Env::get().pg(), "info");
  auto t1 = connect_t1(rg);
  PGresult* prep = PQprepare(t1->raw(), "notes", "SELECT body FROM proto_notes ORDER BY id", 0, nullptr);
  ASSERT_EQ(PQresultStatus(prep), PGRES_COMMAND_OK) << PQerrorMessage(t1->raw());
  PQclear(prep);
  ASSERT_TRUE(t1->exec("PREPARE notes_sql AS SELECT body FROM proto_notes ORDER BY id").ok);
  PGresult* before = PQexecPrepared(t1->raw(), "notes", 0, nullptr, nullptr, nullptr, 0);
  ASSERT_EQ(PQntuples(before), 2);  // global: both rows
  PQclear(before);

  const std::string narrowed = read_text_file(rg.config_path());
  std::string scoped = narrowed;
  scoped.replace(scoped.rfind("global = true"), 13, "column = \"tenant_id\"");
  ASSERT_TRUE(reload_policy(rg, scoped));

  PGresult* after = PQexecPrepared(t1->raw(), "notes", 0, nullptr, nullptr, nullptr, 0);
  const char* state = PQresultErrorField(after, PG_DIAG_SQLSTATE);
  std::string rows;
  for (int i = 0; i < PQntuples(after); ++i) rows += std::string(PQgetvalue(after, i, 0)) + ";";
  EXPECT_STREQ(state ? state : "", "42501") << "rows: " << rows << " " << PQresultErrorMessage(after);
  EXPECT_EQ(rows.find("globex"), std::string::npos) << rows;
  PQclear(after);
  QueryResult sql = t1->exec("EXECUTE notes_sql");
  EXPECT_TRUE(no_leak(sql));
  EXPECT_TRUE(sql.refused()) << sql.sqlstate << " " << sql.message;
  // Prepared again, under the new policy: tenant 1's row only.
  QueryResult fresh = t1->exec("SELECT body FROM proto_notes ORDER BY id");
  ASSERT_TRUE(fresh.ok) << fresh.message;
  EXPECT_EQ(fresh.rows.size(), 1u);
  EXPECT_TRUE(t1->alive());
  t1.reset();
  su->exec("DROP TABLE IF EXISTS proto_notes");
}

// A login removed from the policy (or moved to another tenant) ends at its next statement.
TEST(ProtocolIsolation, ReloadEndsTheSessionsOfARemovedUser) {
  const std::string dir = make_temp_dir("rowguard-proto-audit");
  const std::string audit_file = dir + "/audit.jsonl";
  std::string base = example_config_template() + "\n[audit]\nfile = \"" + audit_file + "\"\n";
  RowguardProcess rg(base, Env::get().pg(), "info");
  auto t1 = connect_t1(rg);
  auto t2 = std::make_unique<Client>(rg.conninfo("t2") + " password=pw2");
  ASSERT_TRUE(t1->alive());
  ASSERT_TRUE(t1->exec("BEGIN").ok);  // in a transaction too
  std::string text = read_text_file(rg.config_path());
  const std::string block = "[[tenants]]\nuser = \"t1\"\npassword = \"pw1\"\ntenant = \"1\"   # acme\n";
  ASSERT_NE(text.find(block), std::string::npos);
  text.replace(text.find(block), block.size(), "");
  // and t2 now belongs to tenant 3
  const std::string t2_line = "tenant = \"2\"   # globex";
  ASSERT_NE(text.find(t2_line), std::string::npos);
  text.replace(text.find(t2_line), t2_line.size(), "tenant = \"3\"");
  ASSERT_TRUE(reload_policy(rg, text));
  QueryResult r = t1->exec("SELECT id FROM customers");
  EXPECT_FALSE(r.ok) << "a removed user still queries: " << r.everything();
  // FATAL 28000; libpq reports it with the closed connection, without the SQLSTATE field.
  EXPECT_NE(r.message.find("a policy reload ended this session: user \"t1\" is no longer in the policy"),
            std::string::npos) << r.message;
  EXPECT_FALSE(t1->alive());
  QueryResult r2 = t2->exec("SELECT id FROM customers");
  EXPECT_FALSE(r2.ok) << "a user moved to another tenant keeps its old tenant: " << r2.everything();
  EXPECT_NE(r2.message.find("now belongs to another tenant"), std::string::npos) << r2.message;
  // The audit log is written by its own thread: wait for the line.
  EXPECT_TRUE(wait_until([&] { return read_text_file(audit_file).find("policy reload") != std::string::npos; },
                         std::chrono::seconds(10)))
      << read_text_file(audit_file);
  remove_tree(dir);
}

}  // namespace
}  // namespace rowguard::testing::adversarial
