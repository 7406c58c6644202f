// sqlrewrite/pg_query_api: same_tree_bytes(), the comparison behind the rewriter's
// deparse -> re-parse safety net, and the protobuf-level parse/deparse entry points.
#include "sqlrewrite/pg_query_api.h"
#include "sqlrewrite/parse_stack.h"
#include "sqlrewrite/statement_limits.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace rowguard::sqlrewrite {
namespace {

std::string cpp_bytes(const std::string& sql) {  // parsed, decoded into C++, serialized again
  ParseOutput p = parse_sql(sql);
  EXPECT_TRUE(p.ok) << sql << ": " << p.error;
  return p.tree.SerializeAsString();
}

std::string lib_bytes(const std::string& sql) {  // libpg_query's own encoding
  ProtobufParseOutput p = parse_sql_protobuf(sql);
  EXPECT_TRUE(p.ok) << sql << ": " << p.error;
  return p.bytes;
}

const std::vector<std::string>& statements() {
  static const std::vector<std::string> kStatements = {
      "SELECT 1",
      "SELECT -1, -2147483648, 1.5, 'x', true, false, NULL, B'101', $1",
      "SELECT DISTINCT * FROM orders o WHERE o.tenant_id = '1' AND NOT (a IS TRUE OR b IS NULL)",
      "SELECT a::varchar(10), b::numeric(10, 2), c::int[] FROM t ORDER BY 1 DESC NULLS LAST LIMIT 5",
      "WITH x AS (SELECT * FROM orders) SELECT * FROM x JOIN customers c ON c.id = x.customer_id "
      "LEFT JOIN orders o USING (id)",
      "INSERT INTO orders (id, tenant_id) VALUES (1, '1'), (2, '1') ON CONFLICT (id) DO UPDATE SET "
      "total = EXCLUDED.total WHERE orders.tenant_id = '1' RETURNING *",
      "UPDATE orders SET total = total * 2 FROM customers c WHERE c.id = orders.customer_id",
      "DELETE FROM orders WHERE id IN (SELECT id FROM orders WHERE total < -5)",
      "SELECT count(*) FILTER (WHERE x > 0) OVER (PARTITION BY y ORDER BY z ROWS BETWEEN 1 PRECEDING "
      "AND CURRENT ROW) FROM t GROUP BY GROUPING SETS ((a), ())",
      "BEGIN ISOLATION LEVEL SERIALIZABLE; SET statement_timeout = 5; COMMIT",
  };
  return kStatements;
}

TEST(SameTreeBytes, TheTwoEncodersAgreeOnEveryStatement) {
  // The rewriter compares its C++ tree's encoding with libpg_query's encoding of the re-parse:
  // the same tree must encode the same way (byte for byte, positions included) in both.
  for (const auto& sql : statements()) {
    const std::string cpp = cpp_bytes(sql);
    const std::string lib = lib_bytes(sql);
    EXPECT_EQ(cpp, lib) << sql;
    EXPECT_TRUE(same_tree_bytes(cpp, lib)) << sql;
  }
}

TEST(SameTreeBytes, SourcePositionsAreIgnored) {
  EXPECT_TRUE(same_tree_bytes(lib_bytes("SELECT a FROM t WHERE b = 1"),
                              lib_bytes("  SELECT   a\n FROM t  WHERE   b=1  ")));
  EXPECT_NE(lib_bytes("SELECT a FROM t"), lib_bytes(" SELECT a FROM t"));  // positions differ
  EXPECT_TRUE(same_tree_bytes(lib_bytes("SELECT 1; SELECT 2"), lib_bytes("SELECT 1 ;  SELECT 2;")));
  EXPECT_TRUE(same_tree_bytes(lib_bytes("CREATE TABLESPACE s LOCATION '/a'"),
                              lib_bytes("CREATE TABLESPACE s LOCATION '/b'")));  // a "location" field too
}

TEST(SameTreeBytes, EveryOtherDifferenceCounts) {
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"SELECT a FROM t WHERE b = 1", "SELECT a FROM t WHERE b = 2"},
      {"SELECT a FROM t WHERE b = 1", "SELECT a FROM t WHERE c = 1"},
      {"SELECT $1", "SELECT $2"},
      {"SELECT -1", "SELECT 1"},
      {"SELECT a FROM t", "SELECT a FROM u"},
      {"SELECT a FROM t", "SELECT a FROM s.t"},
      {"SELECT (a OR b) IS TRUE", "SELECT a OR b IS TRUE"},
      {"SELECT 1", "SELECT 1; SELECT 1"},
      {"SELECT a, b FROM t", "SELECT b, a FROM t"},
      {"SELECT DISTINCT a FROM t", "SELECT a FROM t"},
      {"SELECT 'x'", "SELECT 'x '"},
      {"SELECT true", "SELECT false"},
      {"SELECT a::varchar(10)", "SELECT a::varchar(11)"},
      {"SELECT * FROM t LEFT JOIN u ON true", "SELECT * FROM t RIGHT JOIN u ON true"},
  };
  for (const auto& [x, y] : pairs) {
    EXPECT_FALSE(same_tree_bytes(lib_bytes(x), lib_bytes(y))) << x << " vs " << y;
    EXPECT_FALSE(same_tree_bytes(lib_bytes(y), lib_bytes(x))) << y << " vs " << x;
  }
}

TEST(SameTreeBytes, MalformedEncodingsCompareUnequal) {
  const std::string good = lib_bytes("SELECT a FROM t WHERE b = 1");
  EXPECT_TRUE(same_tree_bytes(good, good));
  for (size_t cut = 1; cut < good.size(); ++cut) {
    const std::string truncated = good.substr(0, good.size() - cut);
    EXPECT_FALSE(same_tree_bytes(good, truncated)) << cut;
    EXPECT_FALSE(same_tree_bytes(truncated, good)) << cut;
  }
  EXPECT_FALSE(same_tree_bytes(good, good + '\x08'));  // a field without its value
  EXPECT_FALSE(same_tree_bytes(good + std::string("\x0b", 1), good + std::string("\x0b", 1)));  // a group
  EXPECT_TRUE(same_tree_bytes("", ""));
  EXPECT_FALSE(same_tree_bytes("", good));
}

TEST(SameTreeBytes, DeepTreesPostgresAcceptsDecodeAndCompare) {
  // protobuf's default recursion limit (100) refused f(f(...)) beyond ~45 calls, and 1+1+...+1
  // beyond ~50 terms, which PostgreSQL runs: the decoder and the comparison now allow
  // kProtobufRecursionLimit (statement_limits.h). Was: such trees compared unequal (refused).
  for (int n : {40, 60, 2000}) {
    std::string sql = "SELECT ";
    for (int i = 0; i < n; ++i) sql += "f(";
    sql += "1" + std::string(static_cast<size_t>(n), ')');
    const std::string bytes = lib_bytes(sql);
    EXPECT_TRUE(same_tree_bytes(bytes, bytes)) << n;
    EXPECT_EQ(cpp_bytes(sql), bytes) << n;
  }
}

TEST(SameTreeBytes, TreesBeyondTheRecursionLimitCompareUnequal) {
  // Hand-built: a ParseResult whose statement nests A_Expr (two messages a level) past the limit.
  run_on_parse_stack([] {
    for (int levels : {kProtobufRecursionLimit / 2 - 10, kProtobufRecursionLimit / 2 + 10}) {
      pg_query::ParseResult tree;
      pg_query::Node* n = tree.add_stmts()->mutable_stmt();
      for (int i = 0; i < levels; ++i) {
        auto* e = n->mutable_a_expr();
        e->set_kind(pg_query::AEXPR_OP);
        e->mutable_rexpr()->mutable_a_const()->mutable_ival()->set_ival(1);
        n = e->mutable_lexpr();
      }
      n->mutable_a_const()->mutable_ival()->set_ival(1);
      const std::string bytes = tree.SerializeAsString();
      EXPECT_EQ(same_tree_bytes(bytes, bytes), levels < kProtobufRecursionLimit / 2) << levels;
    }
  });
}

TEST(ProtobufParse, ErrorsAndDeparse) {
  EXPECT_FALSE(parse_sql_protobuf("SELEC 1").ok);
  EXPECT_FALSE(parse_sql_protobuf(std::string_view("SELECT 1\0", 9)).ok);
  const ProtobufParseOutput p = parse_sql_protobuf("SELECT a FROM t WHERE b = 1");
  ASSERT_TRUE(p.ok) << p.error;
  const DeparseOutput d = deparse_protobuf(p.bytes);
  ASSERT_TRUE(d.ok) << d.error;
  EXPECT_EQ(d.sql, "SELECT a FROM t WHERE b = 1");
  EXPECT_EQ(deparse_sql(parse_sql("SELECT a FROM t WHERE b = 1").tree).sql, d.sql);
}

}  // namespace
}  // namespace rowguard::sqlrewrite
