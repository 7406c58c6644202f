// The parser entry point under deep and long statements (sqlrewrite/statement_limits.h,
// parse_stack.h, pg_query_api.h), and the setting ceilings (policy/setting_limits.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "policy/setting_limits.h"
#include "sqlrewrite/parse_stack.h"
#include "sqlrewrite/pg_query_api.h"
#include "sqlrewrite/rewriter.h"
#include "sqlrewrite/statement_limits.h"

namespace rowguard::sqlrewrite {
namespace {

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

std::string chain(int terms, const std::string& op = "+") {
  std::string out = "SELECT 1";
  for (int i = 1; i < terms; ++i) out += op + "1";
  return out;
}

TEST(NestingBound, CountsLeftDeepChainsAndNesting) {
  EXPECT_LE(nesting_bound("SELECT 1"), 2u);
  EXPECT_GE(nesting_bound(chain(1000)), 999u);
  EXPECT_GE(nesting_bound("SELECT 1" + repeat("::int", 500)), 500u);
  EXPECT_GE(nesting_bound("SELECT 1" + repeat(" +-", 500) + "1"), 1000u);  // "+-" is two operators
  EXPECT_GE(nesting_bound("SELECT " + repeat("(", 700) + "1" + repeat(")", 700)), 700u);
  EXPECT_GE(nesting_bound(repeat("SELECT 1, 2 UNION ", 600) + "SELECT 1, 2"), 600u);  // across commas
  EXPECT_GE(nesting_bound("SELECT * FROM a" + repeat(" JOIN a ON x AND y", 600)), 600u);
  EXPECT_GE(nesting_bound("SELECT * FROM a" + repeat(" JOIN a ON 1=1JOIN a ON 1.5e3=1", 300)), 600u);
  EXPECT_GE(nesting_bound("SELECT " + repeat("CASE WHEN x THEN ", 500) + "1" + repeat(" END", 500)), 500u);
}

TEST(NestingBound, ListsAndLiteralsAreFlat) {
  std::string in = "SELECT * FROM t WHERE id IN (1";
  for (int i = 0; i < 100000; ++i) in += "," + std::to_string(i);
  EXPECT_LT(nesting_bound(in + ")"), 20u);
  EXPECT_LT(nesting_bound(repeat("SELECT 1+1;", 100000)), 10u);
  // Operators inside literals, quoted identifiers, comments and dollar quotes are not counted.
  const std::string ops = repeat("+", 100000);
  EXPECT_LT(nesting_bound("SELECT '" + ops + "', \"" + ops + "\" /* " + ops + " */ -- " + ops), 10u);
  EXPECT_LT(nesting_bound("SELECT $x$" + ops + "$x$, $$" + ops + "$$, E'\\'" + ops + "'"), 10u);
  // ... but where libpg_query ends the literal, counting resumes.
  EXPECT_GT(nesting_bound("SELECT '\\'" + ops + "'", ~size_t{0}), 50000u);    // standard strings: \ is a character
  EXPECT_GT(nesting_bound("SELECT xe'a'" + ops + "'b'", ~size_t{0}), 50000u);  // xe is an identifier, not E
  EXPECT_GT(nesting_bound("SELECT /* /* */ */" + ops, ~size_t{0}), 50000u);
}

TEST(NestingBound, LinearTimeOnMultiMegabyteTexts) {
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& sql : {chain(1500000), repeat("(", 3000000), repeat("/*", 1500000),
                                 repeat("$a$", 1000000), repeat("'", 3000000), repeat("CASE ", 600000)}) {
    nesting_bound(sql, ~size_t{0});
  }
  // Generous for a loaded machine: a quadratic pass over these texts takes hours.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

TEST(StatementShape, LexerRescansOfQuadraticTextsAreCounted) {
  const std::string openers = repeat("/*", 100000) + repeat("*/", 100000) + " SELECT 1";
  EXPECT_GT(scan_statement(openers).lexer_rescans, max_lexer_rescans(openers.size()));
  const std::string plus = "SELECT 1 " + repeat("+", 20000) + " 1";
  EXPECT_GT(scan_statement(plus).lexer_rescans, max_lexer_rescans(plus.size()));
  for (const std::string& ok : {"/*" + repeat("*", 100000) + "*/ SELECT 1", "-- " + repeat("/*", 100000) + "\nSELECT 1",
                                "SELECT '" + repeat("/*", 100000) + "'", repeat("SELECT 1 >= 2; /* -- */ ", 10000)}) {
    EXPECT_LE(scan_statement(ok).lexer_rescans, max_lexer_rescans(ok.size())) << ok.substr(0, 30);
  }
  ParseOutput p = parse_sql(openers);
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.error.find("costly"), std::string::npos) << p.error;
}

TEST(ParseEntry, AcceptsWhatPostgresRunsAndRefusesDeeperTreesWithAnError) {
  // PostgreSQL 15 (max_stack_depth 2MB) runs a chain of ~4,400 terms; 5,000 used to give
  // "cannot decode the parse tree" and 30,000 crashed the proxy.
  for (int n : {50, 200, 4400, 8000}) {
    ParseOutput p = parse_sql(chain(n));
    EXPECT_TRUE(p.ok) << n << ": " << p.error;
  }
  for (const std::string& sql : {chain(30000), chain(1500000), chain(200000, "||"),
                                 "SELECT " + repeat("(", 500000) + "1" + repeat(")", 500000),
                                 "SELECT " + repeat("(SELECT ", 100000) + "1" + repeat(")", 100000),
                                 "SELECT 1" + repeat("::int", 200000), "SELECT " + repeat("NOT ", 200000) + "true"}) {
    ParseOutput p = parse_sql(sql);
    EXPECT_FALSE(p.ok) << sql.substr(0, 40);
    EXPECT_NE(p.error.find("nested too deeply"), std::string::npos) << p.error;
    EXPECT_FALSE(parse_sql_protobuf(sql).ok);
    EXPECT_EQ(fingerprint_sql(sql), "");
    EXPECT_EQ(normalize_sql(sql), "");
  }
}

TEST(ParseEntry, DeepestAcceptedShapesFitTheParseStack) {
  // Each shape just under the bound (n levels of `units` each), through parse, deparse, re-parse
  // and comparison, all on the parse stack: none may crash.
  struct Shape {
    std::string open, leaf, close;
    int units;
  };
  for (const Shape& sh : std::vector<Shape>{{"1+", "1", "", 1},
                                            {"f(", "1", ")", 2},
                                            {"- ", "1", "", 1},
                                            {"(SELECT ", "1", ")", 2},
                                            {"ARRAY[", "1", "]", 2},
                                            {"CASE WHEN true THEN ", "1", " END", 3},
                                            {"NOT ", "true", "", 1}}) {
    const int n = static_cast<int>(kMaxNestingBound) / sh.units - 10;
    const std::string sql = "SELECT " + repeat(sh.open, n) + sh.leaf + repeat(sh.close, n);
    const size_t bound = nesting_bound(sql);
    EXPECT_LE(bound, kMaxNestingBound) << sh.open;
    EXPECT_GE(bound, kMaxNestingBound - 40) << sh.open;
    ProtobufParseOutput p = parse_sql_protobuf(sql);
    if (!p.ok) continue;  // the grammar's own limit ("memory exhausted"): an error, fine
    DeparseOutput d = deparse_protobuf(p.bytes);
    EXPECT_TRUE(d.ok) << d.error;
    EXPECT_TRUE(same_tree_bytes(p.bytes, p.bytes));
    run_on_parse_stack([&] {
      ParseOutput tree = parse_sql(sql);  // decoded into C++ objects, destroyed here
      EXPECT_TRUE(tree.ok) << tree.error;
    });
  }
  std::string casts = "SELECT 1" + repeat("::int", static_cast<int>(kMaxNestingBound) / 3 - 10);
  EXPECT_TRUE(parse_sql(casts).ok);
}

TEST(ParseStack, RunsNestedAndPropagatesExceptions) {
  EXPECT_FALSE(on_parse_stack());
  int v = run_on_parse_stack([] { return on_parse_stack() ? run_on_parse_stack([] { return 41; }) + 1 : 0; });
  EXPECT_EQ(v, 42);
  EXPECT_THROW(run_on_parse_stack([]() -> int { throw std::runtime_error("x"); }), std::runtime_error);
  EXPECT_FALSE(on_parse_stack());
  EXPECT_EQ(run_on_parse_stack([] { return 7; }), 7);
}

}  // namespace
}  // namespace rowguard::sqlrewrite

namespace rowguard::policy {
namespace {

TEST(SettingLimits, ParsesPostgresUnits) {
  using U = SettingCeiling::Unit;
  EXPECT_EQ(parse_setting_value("64MB", U::kMemoryKb), 65536);
  EXPECT_EQ(parse_setting_value("1TB", U::kMemoryKb), 1024.0 * 1024 * 1024);
  EXPECT_EQ(parse_setting_value(" 8192 ", U::kMemoryKb), 8192);
  EXPECT_EQ(parse_setting_value("2 GB", U::kMemoryKb), 2.0 * 1024 * 1024);
  EXPECT_FALSE(parse_setting_value("1tb", U::kMemoryKb));  // PostgreSQL's units are case-sensitive
  // Rounded as guc.c does: to the next smaller unit, then to an integer in the base unit (rint).
  EXPECT_EQ(parse_setting_value("0.4", U::kTimeMs), 0);
  EXPECT_EQ(parse_setting_value("0.5", U::kTimeMs), 0);
  EXPECT_EQ(parse_setting_value("0.6", U::kTimeMs), 1);
  EXPECT_EQ(parse_setting_value("400us", U::kTimeMs), 0);
  EXPECT_EQ(parse_setting_value("0.00049min", U::kTimeMs), 0);
  EXPECT_EQ(parse_setting_value("1.5s", U::kTimeMs), 1500);
  EXPECT_EQ(parse_setting_value("30.1GB", U::kMemoryKb), 30822.0 * 1024);
  EXPECT_EQ(parse_setting_value("1.5", U::kFactor), 1.5);
  EXPECT_FALSE(parse_setting_value("lots", U::kMemoryKb));
  EXPECT_FALSE(parse_setting_value("0x100000", U::kMemoryKb));
  EXPECT_FALSE(parse_setting_value("inf", U::kTimeMs));
  EXPECT_EQ(parse_setting_value("5min", U::kTimeMs), 300000);
  EXPECT_EQ(parse_setting_value("30s", U::kTimeMs), 30000);
  EXPECT_EQ(parse_setting_value("2h", U::kTimeMs), 7200000);
  EXPECT_EQ(parse_setting_value("1d", U::kTimeMs), 86400000);
  EXPECT_EQ(parse_setting_value("250", U::kTimeMs), 250);
  EXPECT_FALSE(parse_setting_value("5m", U::kTimeMs));
  EXPECT_EQ(parse_setting_value("1.5", U::kFactor), 1.5);
}

TEST(SettingLimits, DefaultCeilingsRefuseUnlimitedAndHugeValues) {
  SettingLimits l;
  EXPECT_FALSE(l.check("work_mem", "64MB"));
  EXPECT_FALSE(l.check("WORK_MEM", "4096"));
  EXPECT_FALSE(l.check("application_name", "1TB"));  // no ceiling
  for (auto [name, value] : std::initializer_list<std::pair<const char*, const char*>>{
           {"work_mem", "1TB"}, {"work_mem", "65MB"}, {"work_mem", "0"}, {"work_mem", "-1"},
           {"statement_timeout", "0"}, {"statement_timeout", "6min"}, {"lock_timeout", "0"},
           {"idle_in_transaction_session_timeout", "0"}, {"idle_in_transaction_session_timeout", "2h"},
           {"temp_file_limit", "-1"}, {"hash_mem_multiplier", "1000"}, {"maintenance_work_mem", "1TB"},
           {"statement_timeout", "soon"}}) {
    auto why = l.check(name, value);
    ASSERT_TRUE(why) << name << " = " << value;
    EXPECT_NE(why->find("ceiling"), std::string::npos) << *why;
  }
  EXPECT_NE(l.check("work_mem", "1TB")->find("64MB"), std::string::npos);
}

}  // namespace
}  // namespace rowguard::policy

#include "policy/policy.h"

namespace rowguard::policy {
namespace {

constexpr const char* kPolicyForTiming = R"toml([proxy]
listen = "127.0.0.1:6432"
upstream = "127.0.0.1:5432"
upstream_user = "app"

[tenancy]

[[tenants]]
user = "t1"
password = "pw1"
tenant = "1"

[tables."public.t"]
)toml";

constexpr const char* kPolicy = R"toml([proxy]
listen = "127.0.0.1:6432"
upstream = "127.0.0.1:5432"
upstream_user = "app"

[tenancy]

[[tenants]]
user = "t1"
password = "pw1"
tenant = "1"
)toml";

TEST(SettingLimits, ReadFromLimitsSettings) {
  PolicyPtr defaults = parse_policy(kPolicy, "test.toml");
  EXPECT_EQ(defaults->setting_limits.find("work_mem")->written, "64MB");
  PolicyPtr p = parse_policy(std::string(kPolicy) +
                                 "[limits.settings]\nwork_mem = \"1GB\"\nstatement_timeout = \"30s\"\n"
                                 "hash_mem_multiplier = 2.5\n",
                             "test.toml");
  EXPECT_FALSE(p->setting_limits.check("work_mem", "512MB"));
  EXPECT_TRUE(p->setting_limits.check("work_mem", "2GB"));
  EXPECT_TRUE(p->setting_limits.check("statement_timeout", "31s"));
  EXPECT_FALSE(p->setting_limits.check("lock_timeout", "5min"));  // default kept
  for (const char* bad : {"work_mem = \"1 lots\"\n", "work_mem = 0\n", "shared_buffers = \"1GB\"\n",
                          "statement_timeout = true\n", "work_mem = \"-5MB\"\n"}) {
    EXPECT_THROW(parse_policy(std::string(kPolicy) + "[limits.settings]\n" + bad, "test.toml"), PolicyError) << bad;
  }
}

}  // namespace
}  // namespace rowguard::policy

namespace rowguard::sqlrewrite {
namespace {

// The CPU time this thread spends on the rewrite, the least of three runs: the machine's load
// (CI runs suites in parallel) delays a run but does not add CPU time to it.
double seconds_to_rewrite(const std::string& sql, const policy::Policy& p) {
  auto cpu_now = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
  };
  double best = 1e9;
  for (int run = 0; run < 3; ++run) {
    const double start = cpu_now();
    RewriteResult r = rewrite(sql, p, "1");
    const double spent = cpu_now() - start;
    EXPECT_TRUE(r.allowed) << r.reason.substr(0, 200);
    best = std::min(best, spent);
  }
  return best;
}

// A statement four times longer costs about four times as much (not sixteen): every pass over the
// text and the tree is linear.
TEST(RewriteTime, LongFlatStatementsAreLinear) {
  policy::PolicyPtr p = policy::parse_policy(std::string(policy::kPolicyForTiming), "test.toml");
  auto in_list = [](int n) {
    std::string s = "SELECT count(*) FROM t WHERE id IN (1";
    for (int i = 0; i < n; ++i) s += "," + std::to_string(1000 + i);
    return s + ")";
  };
  auto statements = [](int n) { return repeat("SELECT id FROM t WHERE id = 5;", n); };
  for (auto make : {std::function<std::string(int)>(in_list), std::function<std::string(int)>(statements)}) {
    const double small = seconds_to_rewrite(make(2500), *p);
    const double large = seconds_to_rewrite(make(10000), *p);
    std::cout << "rewrite: " << small << " s, 4x: " << large << " s\n";
    EXPECT_LT(large, 8 * small + 0.5);
  }
}

}  // namespace
}  // namespace rowguard::sqlrewrite
