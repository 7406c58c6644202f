// End-to-end tests of the security surface: TLS to clients (require, verify-full against a test
// CA made here), TLS upstream (verify-full against a PostgreSQL with ssl=on), stored SCRAM
// verifiers made by `rowguard passwd`, upstream_password_env, hostile startup parameters,
// CancelRequest routing, and that no plaintext password reaches the log.
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/support/pg_server.h"
#include "tests/support/process.h"

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

// A CA and a server certificate for localhost / 127.0.0.1, made with the openssl CLI.
struct TestPki {
  std::string dir;
  std::string ca() const { return dir + "/ca.crt"; }
  std::string cert() const { return dir + "/server.crt"; }
  std::string key() const { return dir + "/server.key"; }
};

TestPki make_pki() {
  TestPki pki{make_temp_dir("rowguard-pki")};
  chmod(pki.dir.c_str(), 0755);
  const std::string d = pki.dir;
  auto run = [&](std::vector<std::string> argv) {
    CommandResult r = run_command(argv, {}, "", 60);
    if (r.exit_code != 0) throw std::runtime_error("openssl failed: " + describe(r));
  };
  run({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d + "/ca.key", "-out",
       d + "/ca.crt", "-days", "2", "-subj", "/CN=rowguard test CA"});
  run({"openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", d + "/server.key", "-out",
       d + "/server.csr", "-subj", "/CN=localhost"});
  write_text_file(d + "/san.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  run({"openssl", "x509", "-req", "-in", d + "/server.csr", "-CA", d + "/ca.crt", "-CAkey",
       d + "/ca.key", "-CAcreateserial", "-out", d + "/server.crt", "-days", "2", "-extfile",
       d + "/san.ext"});
  chmod((d + "/server.key").c_str(), 0600);
  return pki;
}

class SecurityE2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      pg_ = &PgServer::shared();
      pg_->load_example_schema();
      pki_ = std::make_unique<TestPki>(make_pki());
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  static void TearDownTestSuite() {
    if (pki_) remove_tree(pki_->dir);
    pki_.reset();
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  // psql with a full connection string (so sslmode etc. can be set).
  static CommandResult psql_conn(const std::string& conninfo, const std::string& password,
                                 const std::string& sql) {
    return run_command({pg_bin("psql"), conninfo, "-X", "-At", "-v", "VERBOSITY=verbose", "-c", sql},
                       {{"PGPASSWORD", password}, {"PGCONNECT_TIMEOUT", "10"}}, "", 30);
  }

  static inline PgServer* pg_ = nullptr;
  static inline std::unique_ptr<TestPki> pki_;
  static inline std::string setup_error_;
};

TEST_F(SecurityE2e, ClientTlsRequiredAndVerifiedAgainstTestCa) {
  std::string config = example_config_template() + "\n[tls]\ncert = \"" + pki_->cert() +
                       "\"\nkey = \"" + pki_->key() + "\"\nmode = \"require\"\n";
  RowguardProcess rg(config, *pg_);
  const std::string port = std::to_string(rg.port());

  CommandResult full = psql_conn("host=localhost port=" + port + " user=t1 dbname=appdb sslmode=verify-full sslrootcert=" +
                                     pki_->ca(),
                                 "pw1", "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders");
  EXPECT_EQ(full.exit_code, 0) << describe(full) << rg.log();
  EXPECT_EQ(full.out, "101,102,103\n");

  CommandResult req = psql_conn("host=127.0.0.1 port=" + port + " user=t2 dbname=appdb sslmode=require", "pw2",
                                "SELECT count(*) FROM orders");
  EXPECT_EQ(req.exit_code, 0) << describe(req);
  EXPECT_EQ(req.out, "4\n");

  CommandResult plain = psql_conn("host=127.0.0.1 port=" + port + " user=t1 dbname=appdb sslmode=disable", "pw1",
                                  "SELECT 1");
  EXPECT_NE(plain.exit_code, 0);
  EXPECT_TRUE(contains(plain.err, "TLS is required")) << describe(plain);

  // A client that trusts another CA refuses rowguard's certificate.
  TestPki other = make_pki();
  CommandResult wrong_ca = psql_conn("host=localhost port=" + port +
                                         " user=t1 dbname=appdb sslmode=verify-full sslrootcert=" + other.ca(),
                                     "pw1", "SELECT 1");
  EXPECT_NE(wrong_ca.exit_code, 0) << describe(wrong_ca);
  remove_tree(other.dir);
  EXPECT_TRUE(contains(rg.log(), "tls=on"));
}

TEST_F(SecurityE2e, UpstreamTlsVerifyFullAgainstPostgresWithSsl) {
  // Turn ssl on in the shared PostgreSQL with the test certificate (owned by the server user).
  std::string dir = make_temp_dir("rowguard-pgssl");
  chmod(dir.c_str(), 0755);
  std::string cert = dir + "/server.crt", key = dir + "/server.key";
  write_text_file(cert, read_text_file(pki_->cert()));
  write_text_file(key, read_text_file(pki_->key()));
  chmod(key.c_str(), 0600);
  if (geteuid() == 0) {
    if (passwd* pw = getpwnam("rowguard-pg")) {
      ASSERT_EQ(chown(cert.c_str(), pw->pw_uid, pw->pw_gid), 0);
      ASSERT_EQ(chown(key.c_str(), pw->pw_uid, pw->pw_gid), 0);
    }
  }
  for (const std::string& sql : {"ALTER SYSTEM SET ssl_cert_file = '" + cert + "'",
                                 "ALTER SYSTEM SET ssl_key_file = '" + key + "'",
                                 std::string("ALTER SYSTEM SET ssl = on")}) {
    CommandResult on = pg_->psql_super(sql);  // ALTER SYSTEM cannot run in a transaction block
    ASSERT_EQ(on.exit_code, 0) << describe(on);
  }
  ASSERT_NO_THROW(pg_->reload_config());
  ASSERT_EQ(pg_->psql_super("SHOW ssl").out, "on\n");

  std::string config = replace_all(example_config_template(), "upstream_database = \"appdb\"",
                                   "upstream_database = \"appdb\"\nupstream_tls = \"verify-full\"\nupstream_ca = \"" +
                                       pki_->ca() + "\"");
  config = replace_all(config, "\"{{UPSTREAM}}\"", "\"localhost:" + std::to_string(pg_->port()) + "\"");
  RowguardProcess rg(config, *pg_);
  CommandResult r = rg.psql("t3", "pw3", "SELECT count(*) FROM orders");
  EXPECT_EQ(r.exit_code, 0) << describe(r) << rg.log();
  EXPECT_EQ(r.out, "2\n");
  EXPECT_TRUE(contains(rg.log(), "upstream_tls=on")) << rg.log();

  // upstream_tls = "require" against a server without ssl fails with a clear error.
  pg_->psql_super("ALTER SYSTEM RESET ssl");
  ASSERT_NO_THROW(pg_->reload_config());
  ASSERT_EQ(pg_->psql_super("SHOW ssl").out, "off\n");
  std::string req_config = replace_all(example_config_template(), "upstream_database = \"appdb\"",
                                       "upstream_database = \"appdb\"\nupstream_tls = \"require\"");
  RowguardProcess rg2(req_config, *pg_);
  CommandResult refused = rg2.psql("t1", "pw1", "SELECT 1");
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_TRUE(contains(refused.err, "does not accept TLS")) << describe(refused);
  pg_->psql_super("ALTER SYSTEM RESET ssl_cert_file");
  pg_->psql_super("ALTER SYSTEM RESET ssl_key_file");
  EXPECT_NO_THROW(pg_->reload_config());
  remove_tree(dir);
}

TEST_F(SecurityE2e, StoredVerifierFromRowguardPasswdAndUpstreamPasswordFromEnv) {
  CommandResult v = run_command({ROWGUARD_BIN, "passwd", "t9"}, {}, "s3cret-9\n", 30);
  ASSERT_EQ(v.exit_code, 0) << describe(v);
  ASSERT_TRUE(contains(v.out, "password = \"SCRAM-SHA-256$4096:")) << v.out;
  std::string line = v.out.substr(v.out.find("password = "));
  line = line.substr(0, line.find('\n'));

  std::string config = example_config_template() + "\n[[tenants]]\nuser = \"t9\"\n" + line + "\ntenant = \"2\"\n";
  config = replace_all(config, "upstream_password = \"secret\"", "upstream_password_env = \"ROWGUARD_TEST_UPSTREAM_PW\"");
  setenv("ROWGUARD_TEST_UPSTREAM_PW", "secret", 1);
  RowguardProcess rg(config, *pg_);
  CommandResult ok = rg.psql("t9", "s3cret-9", "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders");
  EXPECT_EQ(ok.exit_code, 0) << describe(ok) << rg.log();
  EXPECT_EQ(ok.out, "201,202,203,204\n");
  CommandResult bad = rg.psql("t9", "wrong", "SELECT 1");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_TRUE(contains(bad.err, "password authentication failed for user \"t9\"")) << describe(bad);
  // Plaintext passwords of the example users are warned about at start-up, by user name only.
  EXPECT_TRUE(contains(rg.log(), "plaintext passwords for")) << rg.log();
}

TEST_F(SecurityE2e, HostileStartupParametersAreRefused) {
  RowguardProcess rg(example_config_template(), *pg_);
  const std::string base = "host=127.0.0.1 port=" + std::to_string(rg.port()) + " user=t1 dbname=appdb";
  struct Case {
    std::string conninfo_extra;
    std::string expect;
  };
  std::vector<Case> cases = {
      {" options='-c search_path=evil'", "startup parameter \"options\" is not allowed"},
      {" replication=database", "startup parameter \"replication\" is not allowed"},
      {" client_encoding=SJIS", "client_encoding \"SJIS\" is not allowed"},
  };
  for (const auto& c : cases) {
    CommandResult r = psql_conn(base + c.conninfo_extra, "pw1", "SELECT 1");
    EXPECT_NE(r.exit_code, 0) << c.conninfo_extra;
    EXPECT_TRUE(contains(r.err, c.expect)) << c.conninfo_extra << "\n" << describe(r);
  }
  // The tenant cannot be chosen by application_name, SET or a comment.
  CommandResult r = rg.psql("t1", "pw1", "/* tenant=2 */ SELECT count(*) FROM orders");
  EXPECT_EQ(r.out, "3\n") << describe(r);
  CommandResult app = psql_conn(base + " application_name=tenant2", "pw1", "SELECT count(*) FROM orders");
  EXPECT_EQ(app.out, "3\n") << describe(app);
}

TEST_F(SecurityE2e, CancelReachesOnlyTheClientsOwnBackend) {
  RowguardProcess rg(example_config_template(), *pg_);
  // psycopg2 (simple protocol): a bypass session sleeps; cancel() from another thread must stop
  // it with 57014 through rowguard; a forged key must cancel nothing.
  const std::string script = R"PY(
import sys, threading, time, socket, struct, psycopg2, psycopg2.errors
dsn = sys.argv[1]
# Runs action() once `sql` is running (seen active in pg_stat_activity through a third session).
def when_running(sql, action):
    def watch():
        w = psycopg2.connect(dsn); w.autocommit = True; wc = w.cursor()
        deadline = time.time() + 30
        while time.time() < deadline:
            wc.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = %s", (sql,))
            if wc.fetchone()[0] > 0:
                break
            time.sleep(0.02)
        w.close()
        action()
    t = threading.Thread(target=watch); t.start(); return t
c = psycopg2.connect(dsn)
cur = c.cursor()
when_running("SELECT pg_sleep(20)", c.cancel)
t0 = time.time()
try:
    cur.execute("SELECT pg_sleep(20)")
    print("not cancelled"); sys.exit(1)
except psycopg2.errors.QueryCanceled:
    pass
c.rollback()
assert time.time() - t0 < 10, "cancel took too long"
# A forged cancel request (guessed pid/key) must not cancel anything.
c2 = psycopg2.connect(dsn)
cur2 = c2.cursor()
def forged():
    s = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
    s.sendall(struct.pack("!iiii", 16, 80877102, 12345, 67890)); s.close()
when_running("SELECT pg_sleep(1.5), 'done'", forged)
cur2.execute("SELECT pg_sleep(1.5), 'done'")
print(cur2.fetchone()[1])
)PY";
  std::string dsn = "host=127.0.0.1 port=" + std::to_string(rg.port()) + " user=dba password=pwdba dbname=appdb";
  CommandResult r = run_command({"/usr/bin/python3", "-c", script, dsn, std::to_string(rg.port())}, {}, "", 60);
  EXPECT_EQ(r.exit_code, 0) << describe(r) << rg.log();
  EXPECT_EQ(r.out, "done\n");
  EXPECT_TRUE(contains(rg.log(), "cancel forwarded to its backend")) << rg.log();
  EXPECT_TRUE(contains(rg.log(), "cancel request with an unknown key ignored")) << rg.log();
}

TEST_F(SecurityE2e, ListenNotifyChannelsArePrivateToATenant) {
  RowguardProcess rg(example_config_template(), *pg_);
  const std::string script = R"PY(
import sys, select, psycopg2
port = sys.argv[1]
def conn(user, pw):
    c = psycopg2.connect(f"host=127.0.0.1 port={port} user={user} password={pw} dbname=appdb")
    c.autocommit = True
    return c
l1, n1, n2 = conn("t1", "pw1"), conn("t1", "pw1"), conn("t2", "pw2")
l1.cursor().execute("LISTEN jobs")
n2.cursor().execute("NOTIFY jobs, 'from-tenant-2'")
n2.cursor().execute("SELECT pg_notify('jobs', 'also-from-tenant-2')")
n1.cursor().execute("NOTIFY jobs, 'from-tenant-1'")
n1.cursor().execute("SELECT pg_notify('jobs', 'pg-notify-tenant-1')")
got = []
for _ in range(20):
    if select.select([l1], [], [], 0.2) != ([], [], []):
        l1.poll()
        while l1.notifies:
            n = l1.notifies.pop(0)
            got.append((n.channel, n.payload))
    if len(got) >= 2:
        break
print(sorted(got))
)PY";
  CommandResult r = run_command({"/usr/bin/python3", "-c", script, std::to_string(rg.port())}, {}, "", 60);
  EXPECT_EQ(r.exit_code, 0) << describe(r) << rg.log();
  EXPECT_EQ(r.out, "[('jobs', 'from-tenant-1'), ('jobs', 'pg-notify-tenant-1')]\n") << describe(r);
}

TEST_F(SecurityE2e, NoPlaintextPasswordInTheLog) {
  RowguardProcess rg(example_config_template(), *pg_, "trace");
  rg.psql("t1", "pw1", "SELECT 1");
  rg.psql("t1", "not-the-password", "SELECT 1");
  rg.psql("dba", "pwdba", "SELECT 1");
  rg.psql("nobody", "pw-nobody", "SELECT 1");
  std::string log = rg.log();
  ASSERT_FALSE(log.empty());
  for (const std::string& secret : {"pw1", "not-the-password", "pwdba", "pw-nobody", "secret"}) {
    EXPECT_FALSE(contains(log, secret)) << "the log contains \"" << secret << "\":\n" << log;
  }
}

}  // namespace
}  // namespace rowguard::testing
