// End-to-end tests of the tenant identity options and SCRAM channel binding, with psql (libpq)
// and psycopg2 through a running rowguard against a throwaway PostgreSQL 15:
//  - identity = "map" over TLS: SCRAM-SHA-256-PLUS with channel_binding=require; rowguard's own
//    upstream login with SCRAM-SHA-256-PLUS against a PostgreSQL with ssl = on;
//  - identity = "jwt": HS256 (secret from the environment), RS256 and ES256 (public key files) tokens
//    made here; expired / wrong audience / tampered / HS-RS confused tokens fail with 28P01;
//    plaintext connections refused; bypass users keep SCRAM;
//  - identity = "role": PostgreSQL authenticates each role (SCRAM, md5 and cleartext relayed),
//    [[roles]] gives the tenant; wrong passwords and unmapped roles are refused;
//  - in every mode the tenant cannot be chosen by application_name, SET or a SQL comment.
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
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

const std::string kJwtSecret = "e2e-jwt-secret-0123456789abcdef0123456789";

// The example policy's [proxy] and [tables], with the given [tenancy] and login tables.
std::string config_with(const std::string& tenancy_and_logins, const std::string& extra = "") {
  std::string text = read_text_file(source_dir() + "/examples/rowguard.toml");
  text = replace_all(text, "\"127.0.0.1:6432\"", "\"{{LISTEN}}\"");
  text = replace_all(text, "\"127.0.0.1:5432\"", "\"{{UPSTREAM}}\"");
  const size_t tenancy = text.find("[tenancy]");
  const size_t tables = text.find("# Tables rowguard knows");
  return text.substr(0, tenancy) + extra + tenancy_and_logins + "\n" + text.substr(tables);
}

// Makes a JWT with Python's standard library (HS256) or the openssl CLI (RS256, ES256).
std::string make_jwt(const std::string& alg, const std::string& key, const std::string& claims_json,
                     const std::string& header_alg = "") {
  const std::string script = R"PY(
import sys, json, base64, hmac, hashlib, subprocess
alg, key, claims, header_alg = sys.argv[1:5]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
header = {"alg": header_alg or alg, "typ": "JWT"}
signing_input = b64(json.dumps(header).encode()) + "." + b64(claims.encode())
if alg == "HS256":
    secret = open(key, "rb").read() if key.startswith("/") else key.encode()
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
else:
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=signing_input.encode(),
                         capture_output=True, check=True).stdout
    if alg == "ES256":  # DER ECDSA-Sig-Value -> JWS r||s (RFC 7518 3.4)
        i, raw = 2, b""
        for _ in range(2):
            n = sig[i + 1]
            raw += sig[i + 2:i + 2 + n].lstrip(b"\0").rjust(32, b"\0")
            i += 2 + n
        sig = raw
sys.stdout.write(signing_input + "." + b64(sig))
)PY";
  CommandResult r = run_command({"/usr/bin/python3", "-c", script, alg, key, claims_json, header_alg}, {}, "", 30);
  if (r.exit_code != 0) throw std::runtime_error("make_jwt failed: " + describe(r));
  return r.out;
}

std::string claims(const std::string& tenant_json, long exp_offset = 600, const std::string& extra = "") {
  return "{\"sub\":\"app-user\",\"tenant_id\":" + tenant_json + ",\"exp\":" +
         std::to_string(static_cast<long>(std::time(nullptr)) + exp_offset) + extra + "}";
}

// Logs in with asyncpg (its own protocol implementation, not libpq) and returns "ok" or the
// SQLSTATE of the login error (libpq does not show it for errors during authentication).
std::string login_sqlstate(int port, const std::string& user, const std::string& password, bool tls) {
  const std::string script = R"PY(
import sys, asyncio, asyncpg
async def main():
    try:
        c = await asyncpg.connect(host="127.0.0.1", port=int(sys.argv[1]), user=sys.argv[2], password=sys.argv[3],
                                  database="appdb", ssl=("require" if sys.argv[4] == "1" else False))
        await c.fetchval("SELECT 1")
        await c.close()
        print("ok")
    except asyncpg.PostgresError as e:
        print(e.sqlstate)
asyncio.run(main())
)PY";
  CommandResult r = run_command({"/usr/bin/python3", "-c", script, std::to_string(port), user, password, tls ? "1" : "0"},
                                {}, "", 60);
  if (r.exit_code != 0) return "python failed: " + describe(r);
  return r.out.substr(0, r.out.find('\n'));
}

struct TestPki {
  std::string dir;
  std::string ca() const { return dir + "/ca.crt"; }
  std::string cert() const { return dir + "/server.crt"; }
  std::string key() const { return dir + "/server.key"; }
  std::string jwt_private() const { return dir + "/jwt.key"; }
  std::string jwt_public() const { return dir + "/jwt.pub"; }
  std::string ec_private() const { return dir + "/jwt-ec.key"; }
  std::string ec_public() const { return dir + "/jwt-ec.pub"; }
};

TestPki make_pki() {
  TestPki pki{make_temp_dir("rowguard-idpki")};
  chmod(pki.dir.c_str(), 0755);
  const std::string d = pki.dir;
  auto run = [&](std::vector<std::string> argv) {
    CommandResult r = run_command(argv, {}, "", 60);
    if (r.exit_code != 0) throw std::runtime_error("openssl failed: " + describe(r));
  };
  run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
       d + "/ca.key", "-out", d + "/ca.crt", "-days", "2", "-subj", "/CN=rowguard identity test CA"});
  run({"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
       d + "/server.key", "-out", d + "/server.csr", "-subj", "/CN=localhost"});
  write_text_file(d + "/san.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  // SHA-384 signature: the channel binding hash must follow it (RFC 5929).
  run({"openssl", "x509", "-req", "-sha384", "-in", d + "/server.csr", "-CA", d + "/ca.crt", "-CAkey",
       d + "/ca.key", "-CAcreateserial", "-out", d + "/server.crt", "-days", "2", "-extfile", d + "/san.ext"});
  chmod((d + "/server.key").c_str(), 0600);
  run({"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", pki.jwt_private()});
  run({"openssl", "pkey", "-in", pki.jwt_private(), "-pubout", "-out", pki.jwt_public()});
  run({"openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", pki.ec_private()});
  run({"openssl", "pkey", "-in", pki.ec_private(), "-pubout", "-out", pki.ec_public()});
  return pki;
}

class IdentityE2e : public ::testing::Test {
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

  std::string tls_section() const {
    return "\n[tls]\ncert = \"" + pki_->cert() + "\"\nkey = \"" + pki_->key() + "\"\nmode = \"allow\"\n";
  }

  static CommandResult psql_conn(const std::string& conninfo, const std::string& password, const std::string& sql) {
    return run_command({pg_bin("psql"), conninfo, "-X", "-At", "-v", "VERBOSITY=verbose", "-c", sql},
                       {{"PGPASSWORD", password}, {"PGCONNECT_TIMEOUT", "10"}}, "", 30);
  }
  static CommandResult psql_script(const std::string& conninfo, const std::string& password, const std::string& script) {
    return run_command({pg_bin("psql"), conninfo, "-X", "-At", "-v", "VERBOSITY=verbose", "-f", "-"},
                       {{"PGPASSWORD", password}, {"PGCONNECT_TIMEOUT", "10"}}, script, 30);
  }

  // The tenant of a session cannot be changed by what the client says after login.
  static void expect_tenant_fixed(const std::string& conninfo, const std::string& password, const std::string& own_ids) {
    const std::string ids = "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders";
    CommandResult app = psql_conn(conninfo + " application_name=tenant_id=2", password, ids);
    EXPECT_EQ(app.out, own_ids + "\n") << describe(app);
    CommandResult comment = psql_conn(conninfo, password, "/* tenant_id=2 */ -- rowguard: tenant=2\n" + ids);
    EXPECT_EQ(comment.out, own_ids + "\n") << describe(comment);
    CommandResult set = psql_script(conninfo, password,
                                    "SET application_name = 'tenant=2';\n"
                                    "SET rowguard.tenant = '2';\n"
                                    "SET tenant_id = '2';\n"
                                    "SET SESSION AUTHORIZATION app;\n" +
                                        ids + ";\n");
    EXPECT_EQ(set.out, "SET\n" + own_ids + "\n") << describe(set);
    CommandResult opt = psql_conn(conninfo + " options='-c rowguard.tenant=2'", password, ids);
    EXPECT_NE(opt.exit_code, 0);
    EXPECT_TRUE(contains(opt.err, "startup parameter \"options\" is not allowed")) << describe(opt);
  }

  static inline PgServer* pg_ = nullptr;
  static inline std::unique_ptr<TestPki> pki_;
  static inline std::string setup_error_;
};

// ---- identity = "map" with channel binding ---------------------------------------------------

TEST_F(IdentityE2e, ScramChannelBindingOverTls) {
  std::string config = read_text_file(source_dir() + "/examples/rowguard.toml");
  config = replace_all(config, "\"127.0.0.1:6432\"", "\"{{LISTEN}}\"");
  config = replace_all(config, "\"127.0.0.1:5432\"", "\"{{UPSTREAM}}\"") + tls_section();
  RowguardProcess rg(config, *pg_);
  const std::string base = "host=localhost port=" + std::to_string(rg.port()) + " user=t1 dbname=appdb";
  const std::string ids = "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders";

  CommandResult bound = psql_conn(base + " sslmode=verify-full sslrootcert=" + pki_->ca() + " channel_binding=require",
                                  "pw1", ids);
  EXPECT_EQ(bound.exit_code, 0) << describe(bound) << rg.log();
  EXPECT_EQ(bound.out, "101,102,103\n");
  EXPECT_TRUE(contains(rg.log(), "auth=scram-plus")) << rg.log();

  // Wrong password with binding: 28P01 as usual.
  CommandResult wrong = psql_conn(base + " sslmode=require channel_binding=require", "nope", "SELECT 1");
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_TRUE(contains(wrong.err, "password authentication failed for user \"t1\"")) << describe(wrong);
  EXPECT_EQ(login_sqlstate(rg.port(), "t1", "nope", true), "28P01");
  EXPECT_EQ(login_sqlstate(rg.port(), "t1", "pw1", true), "ok");

  // Without binding (channel_binding=disable) plain SCRAM still works on TLS...
  CommandResult unbound = psql_conn(base + " sslmode=require channel_binding=disable", "pw1", "SELECT 1");
  EXPECT_EQ(unbound.exit_code, 0) << describe(unbound);
  // ... and without TLS there is nothing to bind to: libpq refuses to go on.
  CommandResult plain = psql_conn(base + " sslmode=disable channel_binding=require", "pw1", "SELECT 1");
  EXPECT_NE(plain.exit_code, 0) << describe(plain);

  // A Python driver (psycopg2 over libpq) with channel_binding=require.
  const std::string script = R"PY(
import sys, psycopg2
c = psycopg2.connect(sys.argv[1])
cur = c.cursor()
cur.execute("SELECT count(*) FROM orders")
print(cur.fetchone()[0])
)PY";
  CommandResult py = run_command({"/usr/bin/python3", "-c", script,
                                  "host=localhost port=" + std::to_string(rg.port()) +
                                      " user=t2 password=pw2 dbname=appdb sslmode=require channel_binding=require"},
                                 {}, "", 60);
  EXPECT_EQ(py.exit_code, 0) << describe(py) << rg.log();
  EXPECT_EQ(py.out, "4\n");
  expect_tenant_fixed(base + " sslmode=require channel_binding=require", "pw1", "101,102,103");
}

// rowguard's own upstream login binds to PostgreSQL's certificate (SCRAM-SHA-256-PLUS).
TEST_F(IdentityE2e, UpstreamScramChannelBinding) {
  std::string dir = make_temp_dir("rowguard-pgcb");
  chmod(dir.c_str(), 0755);
  std::string cert = dir + "/server.crt", key = dir + "/server.key";
  write_text_file(cert, read_text_file(pki_->cert()));  // EC P-256, signed with SHA-384
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
    CommandResult on = pg_->psql_super(sql);
    ASSERT_EQ(on.exit_code, 0) << describe(on);
  }
  ASSERT_NO_THROW(pg_->reload_config());
  ASSERT_EQ(pg_->psql_super("SHOW ssl").out, "on\n");

  std::string text = read_text_file(source_dir() + "/examples/rowguard.toml");
  text = replace_all(text, "\"127.0.0.1:6432\"", "\"{{LISTEN}}\"");
  text = replace_all(text, "\"127.0.0.1:5432\"", "\"{{UPSTREAM}}\"");
  text = replace_all(text, "upstream_database = \"appdb\"", "upstream_database = \"appdb\"\nupstream_tls = \"require\"");
  {
    RowguardProcess rg(text, *pg_);
    CommandResult r = rg.psql("t2", "pw2", "SELECT count(*) FROM orders");
    EXPECT_EQ(r.exit_code, 0) << describe(r) << rg.log();
    EXPECT_EQ(r.out, "4\n");
    EXPECT_TRUE(contains(rg.log(), "upstream_tls=on")) << rg.log();
    EXPECT_TRUE(contains(rg.log(), "upstream_cbind=on")) << rg.log();
  }
  pg_->psql_super("ALTER SYSTEM RESET ssl");
  pg_->psql_super("ALTER SYSTEM RESET ssl_cert_file");
  pg_->psql_super("ALTER SYSTEM RESET ssl_key_file");
  EXPECT_NO_THROW(pg_->reload_config());
  EXPECT_EQ(pg_->psql_super("SHOW ssl").out, "off\n");
  remove_tree(dir);
}

// ---- identity = "jwt" -----------------------------------------------------------------------

TEST_F(IdentityE2e, JwtHs256TokensGiveTheTenant) {
  setenv("ROWGUARD_E2E_JWT_SECRET", kJwtSecret.c_str(), 1);
  RowguardProcess rg(config_with("[tenancy]\nidentity = \"jwt\"\njwt_secret_env = \"ROWGUARD_E2E_JWT_SECRET\"\n"
                                 "jwt_audience = \"rowguard\"\n\n[[bypass]]\nuser = \"dba\"\npassword = \"pwdba\"\n") +
                         tls_section(),
                     *pg_);
  const std::string base = "host=127.0.0.1 port=" + std::to_string(rg.port()) + " dbname=appdb sslmode=require";
  const std::string ids = "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders";
  const std::string aud = ",\"aud\":\"rowguard\"";

  const std::string t2 = make_jwt("HS256", kJwtSecret, claims("\"2\"", 600, aud));
  CommandResult ok = psql_conn(base + " user=anyone", t2, ids);
  EXPECT_EQ(ok.exit_code, 0) << describe(ok) << rg.log();
  EXPECT_EQ(ok.out, "201,202,203,204\n");
  EXPECT_TRUE(contains(rg.log(), "tenant=2")) << rg.log();
  EXPECT_TRUE(contains(rg.log(), "auth=jwt")) << rg.log();

  // An integer claim works the same.
  const std::string t3 = make_jwt("HS256", kJwtSecret, claims("3", 600, aud));
  CommandResult ok3 = psql_conn(base + " user=svc", t3, ids);
  EXPECT_EQ(ok3.out, "301,302\n") << describe(ok3);

  struct Bad {
    std::string what;
    std::string token;
  };
  std::string tampered = t2;
  const size_t dot = tampered.find('.');
  tampered = tampered.substr(0, dot + 1) +
             make_jwt("HS256", "another-secret-0123456789abcdef0123", claims("\"1\"", 600, aud)).substr(dot + 1);
  const std::vector<Bad> bad = {
      {"expired", make_jwt("HS256", kJwtSecret, claims("\"2\"", -60, aud))},
      {"wrong audience", make_jwt("HS256", kJwtSecret, claims("\"2\"", 600, ",\"aud\":\"other\""))},
      {"no audience", make_jwt("HS256", kJwtSecret, claims("\"2\""))},
      {"other secret", make_jwt("HS256", "another-secret-0123456789abcdef0123", claims("\"2\"", 600, aud))},
      {"tampered payload", tampered},
      {"alg none", make_jwt("HS256", kJwtSecret, claims("\"2\"", 600, aud), "none")},
      {"not a token", "pw1"},
  };
  for (const auto& b : bad) {
    CommandResult r = psql_conn(base + " user=anyone", b.token, "SELECT 1");
    EXPECT_NE(r.exit_code, 0) << b.what;
    EXPECT_TRUE(contains(r.err, "password authentication failed for user \"anyone\"")) << b.what << describe(r);
    EXPECT_EQ(login_sqlstate(rg.port(), "anyone", b.token, true), "28P01") << b.what;
  }
  // Tokens are secrets: never in the log.
  for (const auto& b : bad) EXPECT_FALSE(contains(rg.log(), b.token)) << b.what;
  EXPECT_FALSE(contains(rg.log(), t2));
  EXPECT_TRUE(contains(rg.log(), "JWT rejected: token expired")) << rg.log();

  // Without TLS the token would cross the network in cleartext: refused before it is sent.
  CommandResult plain = psql_conn("host=127.0.0.1 port=" + std::to_string(rg.port()) + " dbname=appdb sslmode=disable user=anyone",
                                  t2, "SELECT 1");
  EXPECT_NE(plain.exit_code, 0);
  EXPECT_TRUE(contains(plain.err, "needs TLS")) << describe(plain);

  // Bypass users still log in with SCRAM.
  CommandResult dba = psql_conn(base + " user=dba", "pwdba", "SELECT count(*) FROM orders");
  EXPECT_EQ(dba.out, "9\n") << describe(dba);

  // psycopg2 with a token as the password.
  const std::string script = R"PY(
import sys, psycopg2
c = psycopg2.connect(sys.argv[1], password=sys.argv[2])
cur = c.cursor()
cur.execute("SELECT count(*) FROM orders")
print(cur.fetchone()[0])
cur.execute("INSERT INTO orders (id, customer_id, amount, status) VALUES (%s, 301, 1, 'new') RETURNING tenant_id", (399,))
print(cur.fetchone()[0])
c.rollback()
)PY";
  CommandResult py = run_command({"/usr/bin/python3", "-c", script, base + " user=svc", t3}, {}, "", 60);
  EXPECT_EQ(py.exit_code, 0) << describe(py) << rg.log();
  EXPECT_EQ(py.out, "2\n3\n");

  expect_tenant_fixed(base + " user=anyone", t2, "201,202,203,204");
}

TEST_F(IdentityE2e, JwtRs256PublicKeyAndNoAlgorithmConfusion) {
  RowguardProcess rg(config_with("[tenancy]\nidentity = \"jwt\"\njwt_public_key = \"" + pki_->jwt_public() +
                                 "\"\njwt_tenant_claim = \"tenant_id\"\njwt_allow_without_tls = true\n"),
                     *pg_);
  const std::string base = "host=127.0.0.1 port=" + std::to_string(rg.port()) + " dbname=appdb sslmode=disable user=app1";
  const std::string ids = "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders";
  const std::string t1 = make_jwt("RS256", pki_->jwt_private(), claims("\"1\""));
  CommandResult ok = psql_conn(base, t1, ids);
  EXPECT_EQ(ok.exit_code, 0) << describe(ok) << rg.log();
  EXPECT_EQ(ok.out, "101,102,103\n");
  EXPECT_TRUE(contains(rg.log(), "jwt_allow_without_tls = true")) << rg.log();

  // HS256 "signed" with the public key file as the HMAC secret: the classic confusion attack.
  const std::string confused = make_jwt("HS256", pki_->jwt_public(), claims("\"2\""));
  CommandResult r = psql_conn(base, confused, "SELECT 1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.err, "password authentication failed for user \"app1\"")) << describe(r);
  EXPECT_EQ(login_sqlstate(rg.port(), "app1", confused, false), "28P01");
  EXPECT_TRUE(contains(rg.log(), "not the configured RS256")) << rg.log();
  // An expired RS256 token.
  CommandResult old = psql_conn(base, make_jwt("RS256", pki_->jwt_private(), claims("\"1\"", -5)), "SELECT 1");
  EXPECT_TRUE(contains(old.err, "password authentication failed")) << describe(old);
  EXPECT_TRUE(contains(rg.log(), "JWT rejected: token expired")) << rg.log();
}

TEST_F(IdentityE2e, JwtEs256PublicKey) {
  RowguardProcess rg(config_with("[tenancy]\nidentity = \"jwt\"\njwt_public_key = \"" + pki_->ec_public() +
                                 "\"\njwt_issuer = \"https://idp.test\"\n") +
                         tls_section(),
                     *pg_);
  const std::string base = "host=127.0.0.1 port=" + std::to_string(rg.port()) + " dbname=appdb sslmode=require user=svc";
  const std::string iss = ",\"iss\":\"https://idp.test\"";
  // Several tokens: the r||s conversion must hold for every signature (leading zero bytes).
  for (int i = 0; i < 4; ++i) {
    CommandResult ok = psql_conn(base, make_jwt("ES256", pki_->ec_private(), claims("\"3\"", 600 + i, iss)),
                                 "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders");
    EXPECT_EQ(ok.exit_code, 0) << describe(ok) << rg.log();
    EXPECT_EQ(ok.out, "301,302\n");
  }
  const std::string wrong_iss = make_jwt("ES256", pki_->ec_private(), claims("\"3\"", 600, ",\"iss\":\"https://evil.test\""));
  EXPECT_EQ(login_sqlstate(rg.port(), "svc", wrong_iss, true), "28P01");
  const std::string rs = make_jwt("RS256", pki_->jwt_private(), claims("\"3\"", 600, iss));
  EXPECT_EQ(login_sqlstate(rg.port(), "svc", rs, true), "28P01");
  EXPECT_TRUE(contains(rg.log(), "issuer does not match")) << rg.log();
  EXPECT_TRUE(contains(rg.log(), "not the configured ES256")) << rg.log();
}

// ---- identity = "role" ----------------------------------------------------------------------

class RoleIdentityE2e : public IdentityE2e {
 protected:
  static void SetUpTestSuite() {
    IdentityE2e::SetUpTestSuite();
    if (!setup_error_.empty()) return;
    try {
      // Roles of three tenants with three password methods, one unmapped role, one bypass role.
      const std::string roles = R"SQL(
DO $$ BEGIN
  CREATE ROLE rg_acme LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
  CREATE ROLE rg_globex LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
  CREATE ROLE rg_initech LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
  CREATE ROLE rg_unmapped LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
  CREATE ROLE rg_admin LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
SET password_encryption = 'scram-sha-256';
ALTER ROLE rg_acme PASSWORD 'acme-pw';
ALTER ROLE rg_initech PASSWORD 'initech-pw';
ALTER ROLE rg_unmapped PASSWORD 'unmapped-pw';
ALTER ROLE rg_admin PASSWORD 'admin-pw';
SET password_encryption = 'md5';
ALTER ROLE rg_globex PASSWORD 'globex-pw';
)SQL";
      CommandResult r = pg_->psql_super(roles);
      if (r.exit_code != 0) throw std::runtime_error("roles: " + describe(r));
      r = pg_->psql_super("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                          "TO rg_acme, rg_globex, rg_initech, rg_unmapped, rg_admin",
                          "appdb");
      if (r.exit_code != 0) throw std::runtime_error("grant: " + describe(r));
      // md5 for rg_globex and cleartext for rg_initech, before the general scram-sha-256 line.
      hba_path_ = pg_->data_dir() + "/pg_hba.conf";
      hba_saved_ = read_text_file(hba_path_);
      write_text_file(hba_path_, "host all rg_globex 127.0.0.1/32 md5\nhost all rg_initech 127.0.0.1/32 password\n" +
                                     hba_saved_);
      pg_->reload_config();
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  static void TearDownTestSuite() {
    if (!hba_saved_.empty()) {
      write_text_file(hba_path_, hba_saved_);
      EXPECT_NO_THROW(pg_->reload_config());
    }
    IdentityE2e::TearDownTestSuite();
  }
  static inline std::string hba_path_;
  static inline std::string hba_saved_;
};

TEST_F(RoleIdentityE2e, PostgresAuthenticatesTheRoleAndThePolicyMapsIt) {
  RowguardProcess rg(config_with("[tenancy]\nidentity = \"role\"\n\n"
                                 "[[roles]]\nrole = \"rg_acme\"\ntenant = \"1\"\n\n"
                                 "[[roles]]\nrole = \"rg_globex\"\ntenant = 2\n\n"
                                 "[[roles]]\nrole = \"rg_initech\"\ntenant = \"3\"\n\n"
                                 "[[roles]]\nrole = \"rg_admin\"\nbypass = true\n") +
                         tls_section(),
                     *pg_);
  const std::string port = std::to_string(rg.port());
  auto conn = [&](const std::string& role, const std::string& ssl = "disable") {
    return "host=127.0.0.1 port=" + port + " dbname=appdb sslmode=" + ssl + " user=" + role;
  };
  const std::string ids = "SELECT string_agg(id::text, ',' ORDER BY id) FROM orders";

  CommandResult acme = psql_conn(conn("rg_acme"), "acme-pw", ids);  // SCRAM, relayed
  EXPECT_EQ(acme.exit_code, 0) << describe(acme) << rg.log();
  EXPECT_EQ(acme.out, "101,102,103\n");
  CommandResult globex = psql_conn(conn("rg_globex"), "globex-pw", ids);  // md5, relayed
  EXPECT_EQ(globex.out, "201,202,203,204\n") << describe(globex) << rg.log();
  CommandResult initech = psql_conn(conn("rg_initech", "require"), "initech-pw", ids);  // cleartext, over TLS
  EXPECT_EQ(initech.out, "301,302\n") << describe(initech) << rg.log();
  // SCRAM relayed over a TLS client connection (libpq's default channel_binding=prefer; rowguard
  // offers no -PLUS here because the binding could never match the server's certificate).
  CommandResult acme_tls = psql_conn(conn("rg_acme", "require"), "acme-pw", "SELECT count(*) FROM orders");
  EXPECT_EQ(acme_tls.out, "3\n") << describe(acme_tls) << rg.log();

  // The upstream session is the role's own.
  CommandResult admin = psql_conn(conn("rg_admin"), "admin-pw", "SELECT current_user, (SELECT count(*) FROM orders)");
  EXPECT_EQ(admin.out, "rg_admin|9\n") << describe(admin);
  CommandResult seen = pg_->psql_super("SELECT count(*) > 0 FROM pg_roles WHERE rolname = 'rg_acme'");
  EXPECT_EQ(seen.out, "t\n");

  // Wrong passwords: PostgreSQL's own 28P01, for each method.
  for (const auto& [role, method] : std::vector<std::pair<std::string, std::string>>{
           {"rg_acme", "scram"}, {"rg_globex", "md5"}, {"rg_initech", "password"}}) {
    CommandResult bad = psql_conn(conn(role), "wrong", "SELECT 1");
    EXPECT_NE(bad.exit_code, 0) << method;
    EXPECT_EQ(login_sqlstate(rg.port(), role, "wrong", false), "28P01") << method;
    EXPECT_TRUE(contains(bad.err, "password authentication failed for user \"" + role + "\"")) << method << describe(bad);
  }
  // A role that PostgreSQL accepts but the policy does not map is refused after authentication;
  // before it, it looks like any other role.
  CommandResult unmapped = psql_conn(conn("rg_unmapped"), "unmapped-pw", "SELECT 1");
  EXPECT_NE(unmapped.exit_code, 0);
  EXPECT_TRUE(contains(unmapped.err, "not mapped to a tenant")) << describe(unmapped);
  CommandResult unmapped_bad = psql_conn(conn("rg_unmapped"), "wrong", "SELECT 1");
  EXPECT_TRUE(contains(unmapped_bad.err, "password authentication failed")) << describe(unmapped_bad);
  EXPECT_EQ(login_sqlstate(rg.port(), "rg_unmapped", "wrong", false), "28P01");
  EXPECT_EQ(login_sqlstate(rg.port(), "rg_unmapped", "unmapped-pw", false), "28000");
  EXPECT_EQ(login_sqlstate(rg.port(), "rg_acme", "acme-pw", false), "ok");  // asyncpg's own SCRAM, relayed
  EXPECT_FALSE(contains(unmapped_bad.err, "not mapped")) << describe(unmapped_bad);

  // A client without a password hangs up at the relayed request (psql would prompt and reconnect).
  CommandResult nopw = psql_conn(conn("rg_acme"), "", "SELECT 1");
  EXPECT_NE(nopw.exit_code, 0);
  EXPECT_TRUE(contains(nopw.err, "no password supplied")) << describe(nopw);

  // psycopg2 as a tenant role: its inserts get its tenant; another tenant's id is refused.
  const std::string script = R"PY(
import sys, psycopg2, psycopg2.errors
c = psycopg2.connect(sys.argv[1], password="globex-pw")
cur = c.cursor()
cur.execute("SELECT count(*) FROM orders")
print(cur.fetchone()[0])
try:
    cur.execute("UPDATE orders SET amount = 0 WHERE tenant_id = 1 OR id = 101 RETURNING id")
    print("updated", cur.fetchall())
except psycopg2.Error as e:
    print("refused", e.pgcode)
c.rollback()
try:
    cur.execute("INSERT INTO orders (id, tenant_id, customer_id, amount, status) VALUES (998, 1, 101, 1, 'new')")
    print("inserted")
except psycopg2.errors.InsufficientPrivilege as e:
    print("refused", e.pgcode)
c.rollback()
)PY";
  CommandResult py = run_command({"/usr/bin/python3", "-c", script, conn("rg_globex")}, {}, "", 60);
  EXPECT_EQ(py.exit_code, 0) << describe(py) << rg.log();
  EXPECT_EQ(py.out, "4\nupdated []\nrefused 42501\n") << describe(py);

  expect_tenant_fixed(conn("rg_acme"), "acme-pw", "101,102,103");
  EXPECT_TRUE(contains(rg.log(), "user=rg_acme left during authentication")) << rg.log();
  // Passwords relayed to PostgreSQL are not logged either.
  for (const std::string& secret : {"acme-pw", "globex-pw", "initech-pw", "unmapped-pw", "admin-pw"}) {
    EXPECT_FALSE(contains(rg.log(), secret)) << secret;
  }
}

}  // namespace
}  // namespace rowguard::testing
