// End-to-end tests of SQL cursors (DECLARE / FETCH / MOVE / CLOSE) through a running rowguard
// with the example policy and data: the cursors real clients open yield only the tenant's rows,
// and a cursor name reaches only the session's own cursors.
//   - psql: an explicit DECLARE ... SCROLL / FETCH / MOVE script, and \set FETCH_COUNT (psql then
//     runs every query through DECLARE _psql_cursor / FETCH FORWARD n / CLOSE);
//   - psycopg2 named cursors (simple protocol, itersize 1, WITH HOLD);
//   - psycopg 3 server-side cursors (DECLARE with a bound parameter in the extended protocol);
//   - another session's cursor name: 34000, not its rows.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "tests/support/pg_server.h"
#include "tests/support/process.h"

namespace rowguard::testing {
namespace {

std::string example_config_template() {
  std::string text = read_text_file(source_dir() + "/examples/rowguard.toml");
  text = replace_all(text, "\"127.0.0.1:6432\"", "\"{{LISTEN}}\"");
  return replace_all(text, "\"127.0.0.1:5432\"", "\"{{UPSTREAM}}\"");
}

class CursorsE2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      pg_ = &PgServer::shared();
      pg_->load_example_schema();
      rowguard_ = std::make_unique<RowguardProcess>(example_config_template(), *pg_, "info");
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  static void TearDownTestSuite() { rowguard_.reset(); }
  void SetUp() override { ASSERT_EQ(setup_error_, ""); }
  void TearDown() override {
    if (HasFailure()) std::cerr << "--- rowguard log (tail) ---\n" << tail_lines(rowguard_->log(), 40) << "---\n";
  }

  // Superuser's answer on appdb, as psql -At lines.
  static std::string super(const std::string& sql) {
    CommandResult r = pg_->psql_super(sql, "appdb");
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    return r.out;
  }

  static inline PgServer* pg_ = nullptr;
  static inline std::unique_ptr<RowguardProcess> rowguard_;
  static inline std::string setup_error_;
};

TEST_F(CursorsE2e, PsqlDeclareFetchMoveSeesOnlyOwnRows) {
  const std::string script =
      "BEGIN;\n"
      "DECLARE c SCROLL CURSOR FOR SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id "
      "ORDER BY o.id;\n"
      "FETCH 2 FROM c;\nMOVE LAST IN c;\nFETCH PRIOR FROM c;\nFETCH ABSOLUTE 1 FROM c;\nCLOSE c;\nCOMMIT;\n";
  CommandResult r = rowguard_->psql_script("t2", "pw2", script);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  // Tenant 2's orders 201..204 with their customers, and the command tags psql prints.
  EXPECT_EQ(r.out,
            "BEGIN\nDECLARE CURSOR\n201|globex-hank\n202|globex-mindy\nMOVE 1\n203|globex-scorpio\n"
            "201|globex-hank\nCLOSE CURSOR\nCOMMIT\n");
  EXPECT_EQ(super("SELECT string_agg(o.id || '|' || c.name, ',' ORDER BY o.id) FROM orders o JOIN customers c "
                  "ON c.id = o.customer_id WHERE o.tenant_id = 2 AND c.tenant_id = 2"),
            "201|globex-hank,202|globex-mindy,203|globex-scorpio,204|globex-hank\n");
}

TEST_F(CursorsE2e, PsqlFetchCountUsesACursorAndSeesOnlyOwnRows) {
  // With FETCH_COUNT psql sends DECLARE _psql_cursor NO SCROLL CURSOR FOR <query>, FETCH FORWARD 1
  // until the end, and CLOSE.
  CommandResult r = rowguard_->psql_script("t1", "pw1", "\\set FETCH_COUNT 1\nSELECT id FROM orders ORDER BY id;\n");
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out, super("SELECT id FROM orders WHERE tenant_id = 1 ORDER BY id"));
  EXPECT_EQ(r.out, "101\n102\n103\n");
}

constexpr const char* kPsycopg2Cursors = R"PY(
import sys
import psycopg2
import psycopg2.errors

def connect(user, password):
    return psycopg2.connect(sys.argv[1] + " user=" + user, password=password, connect_timeout=10)

c1 = connect("t1", "pw1")
c2 = connect("t2", "pw2")

# A named cursor: DECLARE "own" CURSOR WITHOUT HOLD FOR ..., FETCH FORWARD 1 FROM "own", ...
cur = c1.cursor(name="own")
cur.itersize = 1
cur.execute("SELECT o.id, o.tenant_id FROM orders o WHERE o.customer_id IN (SELECT id FROM customers) ORDER BY o.id")
rows = list(cur)
print("named=" + ",".join("%d:%d" % r for r in rows))
cur.close()
c1.commit()

# A WITH HOLD cursor of tenant 2 survives its commit; tenant 1's session cannot reach it.
held = c2.cursor(name="shared", withhold=True)
held.execute("SELECT id FROM orders ORDER BY id")
c2.commit()
try:
    c1.cursor().execute('FETCH ALL FROM "shared"')
    print("other_session=" + "reached")
except psycopg2.errors.InvalidCursorName as e:
    print("other_session=" + e.pgcode)
c1.rollback()
print("held=" + ",".join(str(r[0]) for r in held.fetchall()))
held.close()
c2.commit()

# WHERE CURRENT OF stays refused; the connection goes on.
cur = c1.cursor()
cur.execute("DECLARE w CURSOR FOR SELECT id FROM orders FOR UPDATE")
try:
    cur.execute("UPDATE orders SET amount = 0 WHERE CURRENT OF w")
    print("current_of=allowed")
except psycopg2.errors.InsufficientPrivilege as e:
    print("current_of=" + e.pgcode)
c1.rollback()
cur.execute("SELECT count(*) FROM orders")
print("after=%d" % cur.fetchone()[0])
)PY";

TEST_F(CursorsE2e, Psycopg2NamedCursorsAndOtherSessionsCursorNames) {
  const std::string base = "host=127.0.0.1 port=" + std::to_string(rowguard_->port()) + " dbname=appdb sslmode=disable";
  CommandResult r = run_command({"/usr/bin/python3", "-c", kPsycopg2Cursors, base}, {}, "", 60);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(r.out,
            "named=101:1,102:1,103:1\n"
            "other_session=34000\n"
            "held=201,202,203,204\n"
            "current_of=42501\n"
            "after=3\n");
  EXPECT_EQ(super("SELECT count(*) FROM orders WHERE amount = 0"), "0\n");
}

constexpr const char* kPsycopg3Cursor = R"PY(
import sys
import psycopg

with psycopg.connect(sys.argv[1], password="pw2", connect_timeout=10) as conn:
    # A server-side cursor: DECLARE with a bound parameter (extended protocol), then FETCH.
    with conn.cursor(name="big", scrollable=True) as cur:
        cur.execute("SELECT id, amount FROM orders WHERE amount > %s ORDER BY id", (40,))
        first = cur.fetchmany(1)
        rest = cur.fetchall()
        cur.scroll(0, mode="absolute")
        again = cur.fetchone()
    print("first=" + ",".join(str(r[0]) for r in first))
    print("rest=" + ",".join(str(r[0]) for r in rest))
    print("again=%d" % again[0])
)PY";

TEST_F(CursorsE2e, Psycopg3ServerSideCursorWithParameter) {
  CommandResult check = run_command({"/usr/bin/python3", "-c", "import psycopg"});
  ASSERT_EQ(check.exit_code, 0) << "psycopg 3 is needed (Debian python3-psycopg): " << describe(check);
  CommandResult r = run_command({"/usr/bin/python3", "-c", kPsycopg3Cursor, rowguard_->conninfo("t2")}, {}, "", 60);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  // Tenant 2's orders above 40.00: 201 (42.00), 202 (310.50), 204 (999.99); 203 is 7.25.
  EXPECT_EQ(r.out, "first=201\nrest=202,204\nagain=201\n");
  EXPECT_EQ(super("SELECT string_agg(id::text, ',' ORDER BY id) FROM orders WHERE amount > 40 AND tenant_id = 2"),
            "201,202,204\n");
}

}  // namespace
}  // namespace rowguard::testing
