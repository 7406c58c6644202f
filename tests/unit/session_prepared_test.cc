// Unit tests for SQL-level prepared statements in TenantSession (proxy/session/session_prepared.cc):
// PREPARE / EXECUTE / DEALLOCATE / DISCARD ALL in Query messages, on byte strings.
//
// PostgreSQL has one namespace for SQL PREPARE and protocol Parse: the session checks an EXECUTE
// of a Parse'd name and a Bind of a PREPAREd name against the same record. A PREPARE or
// DEALLOCATE counts once the server's CommandComplete confirms it.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"
#include "tests/support/tenant_keys_schema.h"
#include "tests/support/test_policy.h"
#include "proxy/protocol/codec.h"
#include "proxy/session/session.h"
#include "sqlrewrite/rewrite_cache.h"

namespace rowguard::session {
namespace {

using namespace std::string_literals;
namespace fe = protocol::fe;
namespace be = protocol::be;

constexpr size_t kMax = 1 << 20;
constexpr const char* kNonce = "00ff11ee";

const policy::Policy& test_policy() {
  static const policy::PolicyPtr p = unit_test::with_tenant_keys(policy::parse_policy(
      test_support::test_policy_toml({.tables = "[tables.\"public.orders\"]\ncolumn = \"tenant_id\"\n"}),
      "session_prepared_test.toml"));
  return *p;
}

std::string be16(int v) { return {static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)}; }
std::string be32(int32_t v) {
  const auto u = static_cast<uint32_t>(v);
  return {static_cast<char>(u >> 24), static_cast<char>(u >> 16), static_cast<char>(u >> 8), static_cast<char>(u)};
}

struct Wire {
  std::string bytes;
  protocol::Frame frame() const {
    const protocol::FrameResult r = protocol::decode_frame(bytes, kMax);
    EXPECT_EQ(r.status, protocol::DecodeStatus::kComplete) << r.error;
    return r.frame;
  }
};
Wire tagged(char tag, std::string_view body) {
  Wire w;
  protocol::append_frame(w.bytes, tag, body);
  return w;
}
Wire query(std::string_view sql) {
  Wire w;
  protocol::append_query(w.bytes, sql);
  return w;
}
Wire parse(std::string_view name, std::string_view sql) {
  Wire w;
  protocol::append_parse(w.bytes, name, sql, {});
  return w;
}
Wire bind(std::string_view statement, const std::vector<std::string>& params) {
  std::string body = "\0"s + std::string(statement) + '\0' + be16(0) + be16(static_cast<int>(params.size()));
  for (const auto& p : params) body += be32(static_cast<int32_t>(p.size())) + p;
  body += be16(0);
  return tagged(fe::kBind, body);
}
Wire sync() { return tagged(fe::kSync, ""); }
Wire complete(std::string_view tag) { return tagged(be::kCommandComplete, std::string(tag) + '\0'); }
Wire ready(char status) {
  Wire w;
  protocol::append_ready_for_query(w.bytes, status);
  return w;
}
Wire server_error(std::string_view sqlstate, std::string_view message) {
  Wire w;
  protocol::append_error_response(w.bytes, "ERROR", sqlstate, message);
  return w;
}

std::string marker(int n) { return "rowguard_denied_"s + kNonce + "_" + std::to_string(n); }

constexpr const char* kInsert = "INSERT INTO orders (id, tenant_id) VALUES ($1, $2)";
const std::string kUnknown(std::string_view name) {
  return "rowguard: EXECUTE of prepared statement \"" + std::string(name) +
         "\", which this session has not prepared (rule: fail closed on unknown statements)";
}
const std::string kNotTenant(int arg, std::string_view name) {
  return "rowguard: argument " + std::to_string(arg) + " of EXECUTE \"" + std::string(name) +
         "\" feeds the tenant column and is not the session tenant as a literal";
}

class SqlPreparedTest : public ::testing::Test {
 protected:
  sqlrewrite::RewriteCache cache_;
  TenantSession s_{"1", cache_, kNonce};

  ClientStep client(const Wire& w) { return s_.on_client_message(w.frame(), test_policy()); }
  std::string server(std::initializer_list<Wire> ws) {
    std::string to_client;
    for (const Wire& w : ws) {
      ServerStep st = s_.on_server_message(w.frame(), w.bytes, to_client);
      EXPECT_FALSE(st.close) << st.reason;
    }
    return to_client;
  }
  // The text of the one Query forwarded by `step`.
  static std::string forwarded(const ClientStep& step) {
    const protocol::FrameResult r = protocol::decode_frame(step.to_server, kMax);
    EXPECT_EQ(r.status, protocol::DecodeStatus::kComplete);
    EXPECT_EQ(r.frame.tag, fe::kQuery);
    return std::string(protocol::parse_query(r.frame.body).value_or("?"));
  }
  // A Query the session must forward; the server answers with `tags` then ReadyForQuery.
  void run(std::string_view sql, std::initializer_list<std::string_view> tags) {
    const ClientStep st = client(query(sql));
    ASSERT_TRUE(st.denial.empty()) << sql << ": " << st.denial;
    for (auto t : tags) server({complete(t)});
    server({ready('I')});
  }
  // A Query the session must refuse; returns the reason and lets the server fail the marker.
  std::string refused(std::string_view sql) {
    const ClientStep st = client(query(sql));
    EXPECT_FALSE(st.denial.empty()) << sql << " was forwarded as " << forwarded(st);
    EXPECT_EQ(st.to_server.find(std::string(sql)), std::string::npos);
    server({server_error("42703", "column \"" + marker(next_marker_++) + "\" does not exist"), ready('I')});
    return st.denial;
  }
  int next_marker_ = 0;
};

TEST_F(SqlPreparedTest, PrepareIsRewrittenAndExecuteArgumentsAreChecked) {
  const ClientStep p = client(query("PREPARE ins AS "s + kInsert));
  ASSERT_TRUE(p.denial.empty()) << p.denial;
  EXPECT_EQ(forwarded(p), "PREPARE ins AS INSERT INTO public.orders (id, tenant_id) VALUES ($1, $2)");
  server({complete("PREPARE"), ready('I')});

  // The session tenant as a string or integer literal (optionally cast to text): forwarded.
  for (const char* ok : {"EXECUTE ins(5, '1')", "EXECUTE ins(5, 1)", "EXECUTE ins(5, '1'::text)",
                         "EXECUTE ins((SELECT 5), '1')"}) {
    const ClientStep st = client(query(ok));
    EXPECT_TRUE(st.denial.empty()) << ok << ": " << st.denial;
    server({complete("INSERT 0 1"), ready('I')});
  }
  // Another tenant, NULL, or anything rowguard cannot see as the tenant's literal: refused.
  for (const char* bad : {"EXECUTE ins(5, '2')", "EXECUTE ins(5, 2)", "EXECUTE ins(5, NULL)",
                          "EXECUTE ins(5, lower('1'))", "EXECUTE ins(5, '1'::int)", "EXECUTE ins(5, ' 1')",
                          "EXECUTE ins(5, (SELECT '1'))", "EXECUTE ins(5, '1' || '')"}) {
    EXPECT_EQ(refused(bad), kNotTenant(2, "ins")) << bad;
  }
  // Too few arguments: the server refuses it (no tenant value is written).
  EXPECT_TRUE(client(query("EXECUTE ins(5)")).denial.empty());
}

TEST_F(SqlPreparedTest, RefusalIsAnswered42501AndTheSessionGoesOn) {
  run("PREPARE ins AS "s + kInsert, {"PREPARE"});
  const ClientStep st = client(query("EXECUTE ins(5, '2')"));
  ASSERT_EQ(st.denial, kNotTenant(2, "ins"));
  EXPECT_EQ(forwarded(st), "SELECT " + marker(0));
  const std::string out = server({server_error("42703", "column \"" + marker(0) + "\" does not exist"), ready('I')});
  const protocol::FrameResult r = protocol::decode_frame(out, kMax);
  ASSERT_EQ(r.frame.tag, be::kErrorResponse);
  auto e = protocol::parse_error_fields(r.frame.body);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->get('C'), "42501");
  EXPECT_EQ(e->get('M'), kNotTenant(2, "ins"));
  // The statement is still known and usable.
  EXPECT_TRUE(client(query("EXECUTE ins(6, '1')")).denial.empty());
}

TEST_F(SqlPreparedTest, UnknownNameIsRefused) {
  EXPECT_EQ(refused("EXECUTE nope(1)"), kUnknown("nope"));
  EXPECT_EQ(refused("EXPLAIN (COSTS OFF) EXECUTE nope"), kUnknown("nope"));
}

TEST_F(SqlPreparedTest, ExplainExecuteIsCheckedLikeExecute) {
  run("PREPARE ins AS "s + kInsert, {"PREPARE"});
  EXPECT_EQ(refused("EXPLAIN (COSTS OFF) EXECUTE ins(5, '2')"), kNotTenant(2, "ins"));
  EXPECT_TRUE(client(query("EXPLAIN (COSTS OFF) EXECUTE ins(5, '1')")).denial.empty());
}

TEST_F(SqlPreparedTest, PrepareEarlierInTheSameQueryDecides) {
  // Works although the server has not prepared it yet.
  const ClientStep ok = client(query("PREPARE p AS "s + kInsert + "; EXECUTE p(1, '1')"));
  EXPECT_TRUE(ok.denial.empty()) << ok.denial;
  server({complete("PREPARE"), complete("INSERT 0 1"), ready('I')});
  // p is now the INSERT; a statement of the same name in the same Query decides alone: if its
  // PREPARE fails (p exists), the server skips the EXECUTE.
  EXPECT_TRUE(client(query("PREPARE p AS SELECT $1::text, $2::text; EXECUTE p(1, '2')")).denial.empty());
  server({server_error("42P05", "prepared statement \"p\" already exists"), ready('I')});
  EXPECT_EQ(refused("PREPARE q AS "s + kInsert + "; EXECUTE q(1, '2')"), kNotTenant(2, "q"));
  // Dropped earlier in the same Query: unknown.
  EXPECT_EQ(refused("DEALLOCATE p; EXECUTE p(1, '1')"), kUnknown("p"));
  EXPECT_EQ(refused("DEALLOCATE ALL; EXECUTE p(1, '1')"), kUnknown("p"));
  // A refused Query prepared nothing.
  EXPECT_EQ(refused("EXECUTE q(1, '1')"), kUnknown("q"));
}

TEST_F(SqlPreparedTest, PrepareCountsOnlyWhenTheServerConfirmsIt) {
  // Inside a failed transaction the server refuses the PREPARE: nothing is registered.
  client(query("PREPARE p AS "s + kInsert));
  server({server_error("25P02", "current transaction is aborted"), ready('E')});
  EXPECT_EQ(refused("EXECUTE p(1, '1')"), kUnknown("p"));

  // A Query whose later statement fails still prepared p (PREPARE is not transactional).
  client(query("PREPARE p AS "s + kInsert + "; SELECT 1/0"));
  server({complete("PREPARE"), server_error("22012", "division by zero"), ready('I')});
  EXPECT_EQ(refused("EXECUTE p(1, '2')"), kNotTenant(2, "p"));
  // Tags of other statements of the Query are not mistaken for it.
  client(query("SELECT 1; PREPARE q AS "s + kInsert));
  server({complete("SELECT 1")});
  EXPECT_EQ(client(query("EXECUTE q(1, '2')")).denial, kNotTenant(2, "q"));  // in flight: a candidate
  server({complete("PREPARE"), ready('I')});
  server({server_error("42703", "column \"" + marker(next_marker_++) + "\" does not exist"), ready('I')});
  EXPECT_EQ(refused("EXECUTE q(1, '2')"), kNotTenant(2, "q"));
}

TEST_F(SqlPreparedTest, DuplicatePrepareKeepsTheServersStatement) {
  run("PREPARE p AS "s + kInsert, {"PREPARE"});
  client(query("PREPARE p AS SELECT $1::text, $2::text"));
  server({server_error("42P05", "prepared statement \"p\" already exists"), ready('I')});
  EXPECT_EQ(refused("EXECUTE p(1, '2')"), kNotTenant(2, "p"));
}

TEST_F(SqlPreparedTest, PrepareInFlightIsCheckedBeforeTheServerAnswers) {
  ASSERT_TRUE(client(query("PREPARE p AS "s + kInsert)).denial.empty());
  EXPECT_FALSE(client(query("EXECUTE p(1, '2')")).denial.empty());
  EXPECT_TRUE(client(query("EXECUTE p(1, '1')")).denial.empty());
}

TEST_F(SqlPreparedTest, DeallocateAndDiscardForgetOnceConfirmed) {
  run("PREPARE a AS "s + kInsert + "; PREPARE b AS " + kInsert + "; PREPARE c AS " + kInsert,
      {"PREPARE", "PREPARE", "PREPARE"});
  // A DEALLOCATE the server refuses forgets nothing.
  client(query("DEALLOCATE a"));
  server({server_error("25P02", "current transaction is aborted"), ready('E')});
  EXPECT_EQ(refused("EXECUTE a(1, '2')"), kNotTenant(2, "a"));

  run("DEALLOCATE a", {"DEALLOCATE"});
  EXPECT_EQ(refused("EXECUTE a(1, '1')"), kUnknown("a"));
  EXPECT_EQ(refused("EXECUTE b(1, '2')"), kNotTenant(2, "b"));
  run("DEALLOCATE ALL", {"DEALLOCATE ALL"});
  EXPECT_EQ(refused("EXECUTE b(1, '1')"), kUnknown("b"));

  run("PREPARE c AS "s + kInsert, {"PREPARE"});
  run("DISCARD ALL", {"DISCARD ALL"});
  EXPECT_EQ(refused("EXECUTE c(1, '1')"), kUnknown("c"));
}

TEST_F(SqlPreparedTest, OneNamespaceWithTheExtendedProtocol) {
  // A Parse'd statement is checked at EXECUTE.
  ASSERT_TRUE(client(parse("ext", kInsert)).denial.empty());
  client(sync());
  server({tagged(be::kParseComplete, ""), ready('I')});
  EXPECT_EQ(refused("EXECUTE ext(1, '2')"), kNotTenant(2, "ext"));
  EXPECT_TRUE(client(query("EXECUTE ext(1, '1')")).denial.empty());
  server({complete("INSERT 0 1"), ready('I')});

  // A PREPAREd statement is checked at Bind.
  run("PREPARE sql AS "s + kInsert, {"PREPARE"});
  EXPECT_EQ(client(bind("sql", {"5", "2"})).denial, "rowguard: parameter $2 (the tenant column) is not the session tenant");
  Wire good = bind("sql", {"5", "1"});
  const ClientStep ok = client(good);
  EXPECT_TRUE(ok.denial.empty());
  EXPECT_EQ(ok.to_server, good.bytes);
  client(sync());
  // The refused Bind fails (marker 1); the server skips the good one until Sync.
  server({server_error("26000", "prepared statement \"" + marker(1) + "\" does not exist"), ready('I')});
  next_marker_ = 2;

  // A protocol Close of a PREPAREd name forgets it; a SQL DEALLOCATE of a Parse'd name too.
  client(tagged(fe::kClose, "Ssql\0"s));
  client(sync());
  server({tagged(be::kCloseComplete, ""), ready('I')});
  EXPECT_EQ(refused("EXECUTE sql(1, '1')"), kUnknown("sql"));
  run("DEALLOCATE ext", {"DEALLOCATE"});
  EXPECT_EQ(refused("EXECUTE ext(1, '1')"), kUnknown("ext"));
}

TEST_F(SqlPreparedTest, PrepareOfADeclaredTypeFeedsBindChecks) {
  run("PREPARE typed(int4, int8) AS "s + kInsert, {"PREPARE"});
  // Binary int8 value of the tenant parameter: decodable because the type was declared.
  std::string body = "\0typed\0"s + be16(1) + be16(1) + be16(2) + be32(4) + be32(5) + be32(8) +
                     be32(0) + be32(2) + be16(0);
  EXPECT_EQ(client(tagged(fe::kBind, body)).denial,
            "rowguard: parameter $2 (the tenant column) is not the session tenant");
}

TEST_F(SqlPreparedTest, ParseDeclaringATenantParameterWithAConvertingTypeIsRefused) {
  // '1' declared as boolean would be stored in a text tenant column as 'true'.
  Wire bool_typed;
  protocol::append_parse(bool_typed.bytes, "b", kInsert, {23, 16});
  const ClientStep st = client(bool_typed);
  EXPECT_EQ(st.denial,
            "rowguard: a parameter that feeds the tenant column is declared in Parse with a type "
            "rowguard cannot check (declare it as int2/int4/int8/text/varchar/uuid, or leave it "
            "unspecified)");
  EXPECT_EQ(st.to_server.find("INSERT"), std::string::npos);
  // Other parameters may have any type; checkable ones for the tenant parameter are fine.
  for (std::vector<int32_t> types : {std::vector<int32_t>{16, 23}, {1700, 0}, {0, 705}, {0, 20}, {0, 1043}}) {
    Wire w;
    protocol::append_parse(w.bytes, "ok", kInsert, types);
    EXPECT_TRUE(client(w).denial.empty()) << types[0] << "," << types[1];
  }
}

TEST_F(SqlPreparedTest, PrepareAndExecuteInsideParseAreRefused) {
  for (std::string sql : {"PREPARE p AS SELECT 1"s, "EXECUTE p(1)"s, "EXPLAIN (COSTS OFF) EXECUTE p"s}) {
    const ClientStep st = client(parse("", sql));
    EXPECT_EQ(st.denial,
              "rowguard: SQL-level PREPARE and EXECUTE are supported in the simple query protocol "
              "only (in the extended protocol, use Parse and Bind)")
        << sql;
    EXPECT_EQ(st.to_server.find(sql), std::string::npos);
  }
  // DEALLOCATE may run there: a statement it drops only makes rowguard's checks stricter.
  EXPECT_TRUE(client(parse("", "DEALLOCATE ALL")).denial.empty());
}

TEST_F(SqlPreparedTest, PrepareQueryAfterUnsyncedExtendedMessagesIsRefused) {
  client(parse("", "SELECT 1"));
  EXPECT_EQ(client(query("PREPARE p AS SELECT 1")).denial,
            "rowguard: PREPARE / DEALLOCATE / DISCARD ALL in a Query must not follow "
            "extended-protocol messages without a Sync");
  client(sync());
  EXPECT_TRUE(client(query("PREPARE p AS SELECT 1")).denial.empty());
}

}  // namespace
}  // namespace rowguard::session
