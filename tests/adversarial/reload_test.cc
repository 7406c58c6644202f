// Attacks across a policy reload (issue #14): what a session made under the old policy must not
// keep serving under the new one — WITH HOLD cursors (they survive COMMIT), protocol portals of
// a pipelined batch the reload lands in, JWT logins whose token the new policy no longer
// accepts — and the per-session [limits] on prepared statements.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>

#include <chrono>
#include <thread>

#include "auth/jwt.h"
#include "tests/adversarial/harness.h"
#include "tests/support/raw_pq.h"

namespace rowguard::testing::adversarial {
namespace {

namespace raw = rowguard::testing::raw;

// A table global under the first policy, tenant-scoped (tenant_id) after `narrow`.
struct WidenedTable {
  explicit WidenedTable(std::string name) : name(std::move(name)) {
    auto su = Env::get().direct_super();
    EXPECT_TRUE(su->exec("DROP TABLE IF EXISTS " + this->name + "; CREATE TABLE " + this->name +
                         " (id int, tenant_id int, body text); INSERT INTO " + this->name +
                         " VALUES (1, 1, 'acme-note'), (2, 2, 'globex-note'), (3, 1, 'acme-note-2'); "
                         "GRANT ALL ON " + this->name + " TO app")
                    .ok);
  }
  ~WidenedTable() { Env::get().direct_super()->exec("DROP TABLE IF EXISTS " + name); }
  std::string global_config() const {
    return example_config_template() + "\n[tables.\"public." + name + "\"]\nglobal = true\n";
  }
  std::string narrow(const std::string& text) const {
    std::string scoped = text;
    scoped.replace(scoped.rfind("global = true"), 13, "column = \"tenant_id\"");
    return scoped;
  }
  std::string widen(const std::string& text) const {
    std::string global = text;
    global.replace(global.rfind("column = \"tenant_id\""), 20, "global = true");
    return global;
  }
  std::string name;
};

std::unique_ptr<Client> connect_t1(RowguardProcess& rg) {
  return std::make_unique<Client>(rg.conninfo("t1") + " password=pw1");
}

// Refused (any error) and nothing of tenant 2 in it.
::testing::AssertionResult refused_without_leak(const QueryResult& r) {
  if (r.ok) return ::testing::AssertionFailure() << "answered: " << r.everything();
  if (r.everything().find("globex") != std::string::npos) return ::testing::AssertionFailure() << r.everything();
  return ::testing::AssertionSuccess();
}

// ---- WITH HOLD cursors --------------------------------------------------------------------

// A WITH HOLD cursor survives COMMIT: declared while a table was global, it must not go on
// returning every tenant's rows after a reload made the table tenant-scoped, by whatever name
// PostgreSQL resolves to it (case folding, 63-byte truncation, FETCH/MOVE forms, and the
// protocol's Execute/Describe of the portal, which a SQL cursor is).
TEST(Reload, HoldCursorDeclaredBeforeANarrowingReloadIsInvalidated) {
  WidenedTable table("rl_hold_notes");
  RowguardProcess rg(table.global_config(), Env::get().pg(), "info");
  auto t1 = connect_t1(rg);
  const std::string q = " CURSOR WITH HOLD FOR SELECT body FROM rl_hold_notes ORDER BY id";
  const std::string long_name = std::string(63, 'h');
  ASSERT_TRUE(t1->exec("DECLARE rl_c" + q).ok);
  ASSERT_TRUE(t1->exec("DECLARE Rl_Up" + q).ok);
  ASSERT_TRUE(t1->exec("DECLARE \"" + long_name + "_tail\"" + q).ok);  // truncated to 63 bytes
  ASSERT_TRUE(t1->exec("BEGIN; DECLARE rl_p" + q + "; COMMIT").ok);  // held at COMMIT
  ASSERT_TRUE(t1->exec("DECLARE rl_q" + q).ok);  // read only through the protocol below
  QueryResult first = t1->exec("FETCH 1 FROM rl_c");
  ASSERT_TRUE(first.ok) << first.message;
  ASSERT_EQ(first.rows.size(), 1u);

  ASSERT_TRUE(reload_policy(rg, table.narrow(read_text_file(rg.config_path()))));

  for (const std::string& attack : std::vector<std::string>{"FETCH ALL FROM rl_c", "FETCH ALL IN RL_C", "FETCH NEXT FROM rl_c", "FETCH FORWARD 5 IN rl_c",
        "FETCH ABSOLUTE 2 FROM rl_c", "FETCH rl_c", "MOVE 1 IN rl_c", "FETCH ALL FROM rl_up",
        "FETCH ALL FROM \"rl_up\"", "FETCH ALL FROM \"" + long_name + "\"",
        "FETCH ALL FROM \"" + long_name + "_other\"", "FETCH ALL FROM rl_p",
        "SELECT 1; FETCH ALL FROM rl_c", "SELECT cursor_to_xml('rl_c', 10, false, false, '')"}) {
    QueryResult r = t1->exec(attack);
    EXPECT_TRUE(refused_without_leak(r)) << attack;
    EXPECT_EQ(r.sqlstate, "42501") << attack << ": " << r.message;
  }
  // The protocol's Execute and Describe of the portal the cursor is.
  {
    raw::Wire w(PQsocket(t1->raw()));
    ASSERT_TRUE(w.send(raw::execute("rl_q") + raw::sync()));
    auto answers = w.read_until_ready(1);
    std::string all;
    for (const auto& m : answers) all += m.body;
    EXPECT_EQ(raw::summary(answers), "E(42501) Z(I)") << all;
    EXPECT_EQ(all.find("globex"), std::string::npos) << all;
    ASSERT_TRUE(w.send(raw::describe('P', "rl_q") + raw::sync()));
    EXPECT_EQ(raw::summary(w.read_until_ready(1)), "E(42501) Z(I)");
  }
  EXPECT_TRUE(t1->alive());
  // Closing is allowed, and a cursor declared again is one of the new policy.
  ASSERT_TRUE(t1->exec("CLOSE rl_c").ok);
  ASSERT_TRUE(t1->exec("DECLARE rl_c" + q).ok);
  QueryResult again = t1->exec("FETCH ALL FROM rl_c");
  ASSERT_TRUE(again.ok) << again.message;
  EXPECT_EQ(again.rows.size(), 2u);
  EXPECT_EQ(again.everything().find("globex"), std::string::npos);
  // CLOSE ALL forgets the rest; they no longer exist on the server either.
  ASSERT_TRUE(t1->exec("CLOSE ALL").ok);
  QueryResult gone = t1->exec("FETCH ALL FROM rl_up");
  EXPECT_EQ(gone.sqlstate, "34000") << gone.message;
}

// A cursor declared again under the same name in the same Query as its CLOSE is the new one;
// a DECLARE that fails because the old cursor still exists does not make the old one current.
TEST(Reload, RedeclaringAStaleCursorNameDoesNotRevalidateIt) {
  WidenedTable table("rl_redeclare_notes");
  RowguardProcess rg(table.global_config(), Env::get().pg(), "info");
  auto t1 = connect_t1(rg);
  const std::string q = " CURSOR WITH HOLD FOR SELECT body FROM rl_redeclare_notes ORDER BY id";
  ASSERT_TRUE(t1->exec("DECLARE rc" + q).ok);
  ASSERT_TRUE(reload_policy(rg, table.narrow(read_text_file(rg.config_path()))));
  QueryResult dup = t1->exec("DECLARE rc" + q);  // the old cursor exists: 42P03
  EXPECT_FALSE(dup.ok);
  EXPECT_TRUE(refused_without_leak(t1->exec("FETCH ALL FROM rc")));
  ASSERT_TRUE(t1->exec("CLOSE rc; DECLARE rc" + q).ok);
  QueryResult fresh = t1->exec("FETCH ALL FROM rc");
  ASSERT_TRUE(fresh.ok) << fresh.message;
  EXPECT_EQ(fresh.rows.size(), 2u);
}

// A schema read that finds nothing new (DDL of a bypass session on a table outside the policy)
// is not a new policy: a WITH HOLD cursor of a tenant stays readable, and still filtered.
TEST(Reload, SchemaReadThatFindsNothingNewKeepsCursors) {
  RowguardProcess rg(example_config_template(), Env::get().pg(), "info");
  auto t1 = connect_t1(rg);
  auto dba = std::make_unique<Client>(rg.conninfo("dba") + " password=pwdba");
  ASSERT_TRUE(t1->exec("DECLARE kc CURSOR WITH HOLD FOR SELECT name FROM customers ORDER BY id").ok);
  const size_t reads = occurrences(rg.log(), "schema snapshot (DDL by bypass");
  ASSERT_TRUE(dba->exec("DROP TABLE IF EXISTS rl_unrelated; CREATE TABLE rl_unrelated (x int)").ok);
  ASSERT_TRUE(wait_until([&] { return occurrences(rg.log(), "schema snapshot (DDL by bypass") > reads; },
                         std::chrono::seconds(10)))
      << rg.log();
  QueryResult r = t1->exec("FETCH ALL FROM kc");
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_FALSE(r.rows.empty());
  EXPECT_EQ(r.everything().find("globex"), std::string::npos) << r.everything();
  ASSERT_TRUE(dba->exec("DROP TABLE rl_unrelated").ok);
}

// ---- protocol portals -----------------------------------------------------------------------

// A portal of a pipelined batch lives until the batch's Sync ends its implicit transaction; a
// reload that lands in the middle of the batch must not let the rest of the portal be read
// under the new policy as if it had been made under it.
TEST(Reload, PortalOfAPipelinedBatchSpanningAReloadIsNotReadOn) {
  WidenedTable table("rl_portal_notes");
  RowguardProcess rg(table.global_config(), Env::get().pg(), "info");
  auto t1 = connect_t1(rg);
  raw::Wire w(PQsocket(t1->raw()));
  for (const std::string portal : {"rl_portal", ""}) {
    ASSERT_TRUE(w.send(raw::parse("", "SELECT body FROM rl_portal_notes ORDER BY id") + raw::bind(portal, "") +
                       raw::execute(portal, 1) + raw::flush()));
    std::string got;
    for (int i = 0; i < 4; ++i) {  // ParseComplete, BindComplete, DataRow, PortalSuspended
      auto m = w.read();
      ASSERT_TRUE(m.has_value());
      got += m->tag;
    }
    ASSERT_EQ(got, "12Ds");
    ASSERT_TRUE(reload_policy(rg, portal.empty() ? table.widen(read_text_file(rg.config_path()))
                                                  : table.narrow(read_text_file(rg.config_path()))));
    ASSERT_TRUE(w.send(raw::execute(portal, 0) + raw::sync()));
    auto rest = w.read_until_ready(1);
    std::string all;
    for (const auto& m : rest) all += m.body;
    EXPECT_EQ(raw::summary(rest), "E(42501) Z(I)") << "portal \"" << portal << "\": " << all;
    EXPECT_EQ(all.find("globex"), std::string::npos) << all;
  }
  ASSERT_TRUE(w.send(raw::query("SELECT 1")));
  EXPECT_EQ(raw::summary(w.read_until_ready(1)), "T D C Z(I)");
}

// ---- JWT logins -------------------------------------------------------------------------------

const std::string kSecret = "reload-test-jwt-secret-0123456789abcdef";
const std::string kOtherSecret = "reload-test-rotated-secret-0123456789ab";

std::string hs256(const std::string& secret, const std::string& claims) {
  const std::string input = auth::base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." +
                            auth::base64url_encode(claims);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + auth::base64url_encode(std::string(reinterpret_cast<char*>(mac), len));
}

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string jwt_config(const std::string& secret, const std::string& extra = "") {
  std::string text = example_config_template();
  // identity = "jwt" has no [[tenants]]: the token names the tenant.
  for (const std::string user : {"t1", "t2", "t3"}) {
    const size_t at = text.find("[[tenants]]\nuser = \"" + user + "\"");
    EXPECT_NE(at, std::string::npos);
    const size_t end = text.find("\n\n", at);
    text.erase(at, end == std::string::npos ? std::string::npos : end - at);
  }
  text.replace(text.find("[tenancy]\n"), 10,
               "[tenancy]\nidentity = \"jwt\"\njwt_allow_without_tls = true\njwt_secret = \"" + secret + "\"\n" + extra);
  return text;
}

// The live policy file with `from` replaced by `to` (the file has the ports filled in).
std::string edited(RowguardProcess& rg, const std::string& from, const std::string& to) {
  std::string text = read_text_file(rg.config_path());
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

std::unique_ptr<Client> jwt_client(RowguardProcess& rg, const std::string& token) {
  return std::make_unique<Client>(rg.conninfo("app_user") + " password=" + token);
}

// A JWT session is re-verified at its next message after a reload: a rotated key, a tenant
// claim that no longer maps, a lifetime the new jwt_max_lifetime forbids end it (FATAL 28000,
// audited); a reload that changes nothing of it keeps it.
TEST(Reload, JwtSessionsAreReverifiedAtAReload) {
  const std::string dir = make_temp_dir("rowguard-reload-jwt");
  const std::string audit_file = dir + "/audit.jsonl";
  const std::string audit = "\n[audit]\nfile = \"" + audit_file + "\"\n";
  const std::string base = jwt_config(kSecret) + audit;
  RowguardProcess rg(base, Env::get().pg(), "info");
  const int64_t now = now_seconds();
  const std::string claims = R"({"tenant_id":"1","iat":)" + std::to_string(now) + R"(,"exp":)" +
                             std::to_string(now + 3000) + R"(,"org":"x"})";
  const std::string token = hs256(kSecret, claims);
  auto rotated = jwt_client(rg, token);
  auto claim_moved = jwt_client(rg, token);
  auto shortened = jwt_client(rg, token);
  // Lives 300 s: valid under every policy below, the last one included.
  const std::string short_token = hs256(kSecret, R"({"tenant_id":"1","iat":)" + std::to_string(now) + R"(,"exp":)" +
                                                     std::to_string(now + 300) + "}");
  auto kept = jwt_client(rg, short_token);
  for (Client* c : {rotated.get(), claim_moved.get(), shortened.get(), kept.get()}) ASSERT_TRUE(c->alive());

  // An unrelated change: every session stays.
  const std::string live = read_text_file(rg.config_path());
  ASSERT_TRUE(reload_policy(rg, live + "# unrelated change\n"));
  for (Client* c : {rotated.get(), claim_moved.get(), shortened.get(), kept.get()}) EXPECT_TRUE(c->alive());

  ASSERT_TRUE(reload_policy(rg, edited(rg, kSecret, kOtherSecret)));
  QueryResult r1 = rotated->exec("SELECT id FROM customers");
  EXPECT_FALSE(r1.ok) << "a token the new key does not verify still queries: " << r1.everything();
  EXPECT_NE(r1.message.find("a policy reload ended this session: the login's JWT"), std::string::npos) << r1.message;
  EXPECT_NE(r1.message.find("signature"), std::string::npos) << r1.message;
  EXPECT_EQ(r1.message.find(token), std::string::npos);

  ASSERT_TRUE(reload_policy(rg, edited(rg, kOtherSecret, kSecret + "\"\njwt_tenant_claim = \"org")));
  QueryResult r2 = claim_moved->exec("SELECT id FROM customers");
  EXPECT_FALSE(r2.ok) << "a token whose tenant claim now names another tenant still queries: " << r2.everything();
  EXPECT_NE(r2.message.find("now names another tenant"), std::string::npos) << r2.message;

  ASSERT_TRUE(reload_policy(rg, edited(rg, "jwt_tenant_claim = \"org\"", "jwt_max_lifetime = 600")));
  QueryResult r3 = shortened->exec("SELECT id FROM customers");
  EXPECT_FALSE(r3.ok) << "a token longer-lived than jwt_max_lifetime still queries: " << r3.everything();
  EXPECT_NE(r3.message.find("a policy reload ended this session"), std::string::npos) << r3.message;

  EXPECT_TRUE(kept->alive());  // re-verified under each reload, still valid
  EXPECT_EQ(rg.log().find(token), std::string::npos);
  EXPECT_TRUE(wait_until([&] { return occurrences(read_text_file(audit_file), "policy reload") >= 3; },
                         std::chrono::seconds(10)))
      << read_text_file(audit_file);
  EXPECT_EQ(read_text_file(audit_file).find(token), std::string::npos);
  remove_tree(dir);
}

// ---- [limits] on prepared statements ----------------------------------------------------------

TEST(Reload, LoweredPreparedStatementLimitsAreEnforced) {
  RowguardProcess rg(example_config_template() +
                         "\n[limits]\nmax_prepared_statements = 3\nmax_prepared_statement_bytes = 1024\n",
                     Env::get().pg(), "info");
  auto t1 = connect_t1(rg);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(t1->exec("PREPARE lim" + std::to_string(i) + " AS SELECT 1").ok) << i;
  }
  QueryResult fourth = t1->exec("PREPARE lim3 AS SELECT 1");
  EXPECT_TRUE(fourth.refused()) << fourth.sqlstate << " " << fourth.message;
  EXPECT_NE(fourth.message.find("max_prepared_statements"), std::string::npos) << fourth.message;
  ASSERT_TRUE(t1->exec("DEALLOCATE ALL").ok);
  QueryResult big = t1->exec("PREPARE big AS SELECT '" + std::string(1200, 'x') + "'");
  EXPECT_TRUE(big.refused()) << big.sqlstate << " " << big.message;
  EXPECT_NE(big.message.find("max_prepared_statement_bytes"), std::string::npos) << big.message;
  EXPECT_TRUE(t1->alive());
}

}  // namespace
}  // namespace rowguard::testing::adversarial

// A removed [[bypass]] login: its relayed session ends at its next bytes after the reload, like a
// tenant's (a bypass session reads every tenant's rows, so it matters more).
namespace rowguard::testing::adversarial {
namespace {

TEST(Reload, RemovedBypassLoginEndsItsSession) {
  RowguardProcess rg(example_config_template(), Env::get().pg(), "info");
  auto dba = std::make_unique<Client>(rg.conninfo("dba") + " password=pwdba");
  QueryResult before = dba->exec("SELECT count(*) FROM audit_log");
  ASSERT_TRUE(before.ok) << before.message;
  std::string text = read_text_file(rg.config_path());
  const std::string block = "[[bypass]]\nuser = \"dba\"\npassword = \"pwdba\"\n";
  ASSERT_NE(text.find(block), std::string::npos);
  text.replace(text.find(block), block.size(), "");
  ASSERT_TRUE(reload_policy(rg, text));
  QueryResult r = dba->exec("SELECT count(*) FROM audit_log");
  EXPECT_FALSE(r.ok) << "a removed bypass login still queries: " << r.everything();
  EXPECT_NE(r.message.find("user \"dba\" is no longer in the policy"), std::string::npos) << r.message;
  EXPECT_FALSE(dba->alive());
}

// A long statement waiting on the parse pool when a reload lands is rewritten under the new policy:
// the pool (one thread here) is kept busy by other sessions' multi-MB statements, tenant 1's
// 2 KiB+ SELECT of a table the reload makes tenant-scoped waits behind them.
TEST(Reload, StatementQueuedOnTheParsePoolAcrossAReloadGetsTheNewPolicy) {
  WidenedTable t("rl_pool");
  std::string config = t.global_config();
  const std::string limits = "[limits]\nparse_threads = 1\n";
  config += "\n" + limits;
  const std::string proxy = "[proxy]\n";
  config.replace(config.find(proxy), proxy.size(), proxy + "workers = 1\n");
  RowguardProcess rg(config, Env::get().pg(), "info");
  std::vector<std::unique_ptr<Client>> blockers;
  std::string list = "1";
  for (int i = 0; i < 150000; ++i) list += ",(" + std::to_string(i) + "+1)";
  for (int n = 0; n < 2; ++n) {
    blockers.push_back(std::make_unique<Client>(rg.conninfo("t3") + " password=pw3"));
    const std::string sql = "SELECT count(*) FROM customers WHERE id IN (" + list + ") /* " + std::to_string(n) + " */";
    ASSERT_EQ(PQsendQuery(blockers.back()->raw(), sql.c_str()), 1);
  }
  auto t1 = connect_t1(rg);
  const std::string sql = "SELECT body FROM rl_pool WHERE id > 0 /* " + std::string(3000, 'x') + " */ ORDER BY id";
  ASSERT_EQ(PQsendQuery(t1->raw(), sql.c_str()), 1);
  // The one worker has taken t1's statement (and sent it to the pool) once a later client's
  // short statement is answered.
  auto probe = std::make_unique<Client>(rg.conninfo("t2") + " password=pw2");
  ASSERT_TRUE(probe->alive());
  ASSERT_TRUE(reload_policy(rg, t.narrow(read_text_file(rg.config_path()))));
  ASSERT_EQ(PQconsumeInput(t1->raw()), 1);
  ASSERT_EQ(PQisBusy(t1->raw()), 1) << "the statement was answered before the reload landed: the pool was not busy";
  std::string seen;
  bool ok = true;
  while (PGresult* res = PQgetResult(t1->raw())) {
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
      for (int i = 0; i < PQntuples(res); ++i) seen += std::string(PQgetvalue(res, i, 0)) + ";";
    } else {
      ok = false;
    }
    PQclear(res);
  }
  EXPECT_TRUE(ok);
  EXPECT_EQ(seen, "acme-note;acme-note-2;") << "read under the policy of before the reload";
  for (auto& b : blockers) {
    while (PGresult* res = PQgetResult(b->raw())) PQclear(res);
  }
}

}  // namespace
}  // namespace rowguard::testing::adversarial
