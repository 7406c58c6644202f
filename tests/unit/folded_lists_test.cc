// Unit tests for the folded lists of the rewrite cache (sqlrewrite/rewrite_cache.h): `IN (...)`
// lists and multi-row VALUES of any length share one constant template, and a folded hit is
// byte for byte what a full rewrite of the same text gives -- checked by a seeded differential
// over random lengths, literals and shapes, hostile ones included.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "policy/policy.h"
#include "sqlrewrite/literal_scan.h"
#include "sqlrewrite/rewrite_cache.h"
#include "sqlrewrite/rewriter.h"
#include "tests/support/tenant_keys_schema.h"
#include "tests/support/test_policy.h"

namespace rowguard::sqlrewrite {
namespace {

const policy::Policy& test_policy() {
  static const policy::PolicyPtr p = unit_test::with_tenant_keys(
      policy::parse_policy(test_support::test_policy_toml(), "folded_lists_test.toml"));
  return *p;
}

void expect_same(const RewriteResult& cached, const RewriteResult& fresh, const std::string& what) {
  EXPECT_EQ(cached.allowed, fresh.allowed) << what;
  EXPECT_EQ(cached.sql, fresh.sql) << what;
  EXPECT_EQ(cached.reason, fresh.reason) << what;
  EXPECT_EQ(cached.kinds, fresh.kinds) << what;
  EXPECT_EQ(cached.tenant_params, fresh.tenant_params) << what;
  EXPECT_EQ(cached.copy_in.has_value(), fresh.copy_in.has_value()) << what;
}

std::string in_list(int n, int first = 1, const std::string& sep = ", ") {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? sep : "") + std::to_string(first + i * 7);
  return s;
}

TEST(FoldedLists, InListsOfAnyLengthShareOneEntry) {
  RewriteCache cache;
  cache.set_exact_memo(false);
  const std::string a = "SELECT * FROM orders WHERE id IN (" + in_list(3, 2) + ")";
  expect_same(*cache.rewrite(a, test_policy(), "1"), rewrite(a, test_policy(), "1"), a);
  EXPECT_EQ(cache.misses(), 1u);
  for (int n : {2, 5, 17, 300, 4}) {
    const std::string b = "SELECT * FROM orders WHERE id IN (" + in_list(n, 100 + n) + ")";
    expect_same(*cache.rewrite(b, test_policy(), "o'b"), rewrite(b, test_policy(), "o'b"), b);
  }
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_EQ(cache.constant_hits(), 5u);
  EXPECT_EQ(cache.size(), 1u);
  // Strings too, NOT IN too.
  const std::string s3 = "SELECT * FROM orders WHERE status NOT IN ('a', 'b''c', 'd')";
  const std::string s6 = "SELECT * FROM orders WHERE status NOT IN ('x', 'y', 'z', 'w', 'v', 'it''s')";
  expect_same(*cache.rewrite(s3, test_policy(), "1"), rewrite(s3, test_policy(), "1"), s3);
  expect_same(*cache.rewrite(s6, test_policy(), "2"), rewrite(s6, test_policy(), "2"), s6);
  EXPECT_EQ(cache.misses(), 2u);
  EXPECT_EQ(cache.constant_hits(), 6u);
}

TEST(FoldedLists, MultiRowInsertsOfAnyLengthShareOneEntry) {
  RewriteCache cache;
  cache.set_exact_memo(false);
  auto insert = [](int rows, int seed) {
    std::string s = "INSERT INTO orders (id, amount, status) VALUES ";
    for (int i = 0; i < rows; ++i) {
      s += (i ? ", (" : "(") + std::to_string(seed + i) + ", " + std::to_string(i + 1) + ".25, 'st" +
           std::to_string(i) + "')";
    }
    return s;
  };
  for (int n : {2, 3, 10, 64, 2, 7}) {
    const std::string sql = insert(n, n * 1000);
    expect_same(*cache.rewrite(sql, test_policy(), "t'1"), rewrite(sql, test_policy(), "t'1"), sql);
  }
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_EQ(cache.constant_hits(), 5u);
}

TEST(FoldedLists, AFoldedInsertStillChecksEveryRowsTenant) {
  RewriteCache cache;
  cache.set_exact_memo(false);
  auto insert = [](const std::vector<std::string>& tenants) {
    std::string s = "INSERT INTO orders (id, tenant_id) VALUES ";
    for (size_t i = 0; i < tenants.size(); ++i) s += (i ? ", (" : "(") + std::to_string(10 + i) + ", '" + tenants[i] + "')";
    return s;
  };
  const std::string two = insert({"1", "1"});
  const std::string five = insert({"1", "1", "1", "1", "1"});
  EXPECT_TRUE(cache.rewrite(two, test_policy(), "1")->allowed);
  const size_t hits = cache.constant_hits();
  expect_same(*cache.rewrite(five, test_policy(), "1"), rewrite(five, test_policy(), "1"), five);
  EXPECT_EQ(cache.constant_hits(), hits + 1) << "five rows of one's own tenant: the folded entry";
  // A row for another tenant, anywhere in the list, at any length: refused.
  for (const auto& rows : std::vector<std::vector<std::string>>{
           {"1", "2"}, {"2", "1", "1"}, {"1", "1", "1", "1", "2"}, {"2", "2"}, {"2", "2", "2", "2", "2", "2"},
           {"1", "1", "1", "1", "1", "1", "1", "1", "1", "1", "1", "2"}}) {
    const std::string sql = insert(rows);
    const RewriteHandle r = cache.rewrite(sql, test_policy(), "1");
    EXPECT_FALSE(r->allowed) << sql;
    expect_same(*r, rewrite(sql, test_policy(), "1"), sql);
  }
  // Tenant 2 sending tenant 1's rows: refused too.
  EXPECT_FALSE(cache.rewrite(five, test_policy(), "2")->allowed);
  EXPECT_TRUE(cache.rewrite(insert({"2", "2", "2"}), test_policy(), "2")->allowed);
}

TEST(FoldedLists, WhatIsNotAListOfPlainConstantsIsNotFolded) {
  // Each of these gets an entry of its own per length (or none): a miss for each new length.
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"SELECT * FROM orders WHERE id IN (1, -2)", "SELECT * FROM orders WHERE id IN (1, -2, -3)"},
      {"SELECT * FROM orders WHERE id IN ('1'::int, '2'::int)", "SELECT * FROM orders WHERE id IN ('1'::int, '2'::int, '3'::int)"},
      {"SELECT * FROM orders WHERE id IN (1, 'a')", "SELECT * FROM orders WHERE id IN (1, 'a', 'b')"},
      {"SELECT * FROM orders WHERE id IN (1 /* c */, 2)", "SELECT * FROM orders WHERE id IN (1 /* c */, 2, 3)"},
      {"SELECT * FROM orders WHERE (id, amount) IN ((1, 2), (3, 4))", "SELECT * FROM orders WHERE (id, amount) IN ((1, 2), (3, 4), (5, 6))"},
      {"SELECT * FROM orders WHERE id IN (1, 2.5)", "SELECT * FROM orders WHERE id IN (1, 2.5, 3.5)"},
      {"SELECT * FROM orders WHERE greatest(1, 2) > 0", "SELECT * FROM orders WHERE greatest(1, 2, 3) > 0"},
      {"INSERT INTO orders (id, amount) VALUES (1, 2), (3, now())", "INSERT INTO orders (id, amount) VALUES (1, 2), (3, now()), (4, now())"},
  };
  for (const auto& [a, b] : pairs) {
    RewriteCache cache;
    cache.set_exact_memo(false);
    expect_same(*cache.rewrite(a, test_policy(), "1"), rewrite(a, test_policy(), "1"), a);
    expect_same(*cache.rewrite(b, test_policy(), "1"), rewrite(b, test_policy(), "1"), b);
    EXPECT_EQ(cache.constant_hits(), 0u) << a << " / " << b;
  }
}

TEST(FoldedLists, TheScannerMarksListOpeners) {
  std::vector<Literal> lits;
  ASSERT_TRUE(scan_literals("SELECT 1 WHERE x IN (2, 3) AND y in(4) AND s.in(5, 6) AND f(7) "
                            "-- in\n(8) UNION VALUES (9), (10) UNION SELECT * FROM s.values(11)",
                            lits));
  std::vector<Literal::Opens> opens;
  for (const Literal& l : lits) opens.push_back(l.opens);
  using O = Literal::Opens;
  EXPECT_EQ(opens, (std::vector<O>{O::kNone, O::kInList, O::kNone, O::kInList, O::kNone, O::kNone, O::kNone,
                                   O::kNone, O::kValues, O::kNone, O::kNone}));
}

// ---- the differential: random lists, lengths and literals; cached (folded) == full rewrite ----

struct Gen {
  std::mt19937_64 rng;
  explicit Gen(uint64_t seed) : rng(seed) {}
  int pick(int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); }

  bool hostile = false;  // this list may hold elements that are not plain constants
  std::string integer() {
    if (!hostile) return std::to_string(2 + pick(100000));
    switch (pick(8)) {
      case 0: return "0";
      case 1: return "007";
      case 2: return "12345678901";  // over 9 digits: stays in the key
      case 3: return "1";            // the tenant "1" as an integer
      default: return std::to_string(1 + pick(100000));
    }
  }
  std::string string_lit() {
    if (!hostile) return "'s" + std::to_string(pick(1000)) + "'";
    switch (pick(10)) {
      case 0: return "'it''s'";
      case 1: return "''";
      case 2: return "'1'";  // a tenant's value
      case 3: return "'t'";
      case 4: return "'--x /* y */'";
      case 5: return "'a,b)'";
      default: return "'s" + std::to_string(pick(1000)) + "'";
    }
  }
  // An element: mostly a plain constant of `kind`, sometimes something hostile.
  std::string element(int kind) {
    if (hostile && pick(12) == 0) {
      switch (pick(9)) {
        case 0: return "E'e\\'x'";
        case 1: return "$$dollar$$";
        case 2: return "-" + integer();
        case 3: return "'1'::int";
        case 4: return "NULL";
        case 5: return "(" + integer() + ")";
        case 6: return integer() + " /* c */";
        case 7: return "1.5e3";
        default: return kind == 0 ? string_lit() : integer();
      }
    }
    if (kind == 2) return std::to_string(pick(100)) + "." + std::to_string(pick(100));
    return kind == 0 ? integer() : string_lit();
  }
  std::string sep() {
    switch (pick(6)) {
      case 0: return ",";
      case 1: return " ,  ";
      case 2: return ",\n";
      default: return ", ";
    }
  }
  std::string list(int n, int kind) {
    hostile = pick(4) == 0;
    std::string s;
    const std::string sp = sep();
    for (int i = 0; i < n; ++i) s += (i ? (pick(20) == 0 ? sep() : sp) : "") + element(kind);
    return s;
  }
  int length() {
    switch (pick(4)) {
      case 0: return 1 + pick(3);
      case 1: return 2 + pick(10);
      case 2: return 2 + pick(60);
      default: return 100 + pick(200);
    }
  }
  std::string row(const std::vector<int>& kinds) {
    std::string s = "(";
    for (size_t i = 0; i < kinds.size(); ++i) {
      if (i) s += ", ";
      if (kinds[i] == 3) s += pick(10) == 0 ? "'2'" : "'1'";  // the tenant column: mostly one's own
      else s += element(kinds[i]);
    }
    return s + ")";
  }
  std::string statement() {
    const int n = length();
    hostile = pick(4) == 0;
    switch (pick(7)) {
      case 0: return "SELECT * FROM orders WHERE id IN (" + list(n, 0) + ")";
      case 1: return "SELECT id FROM orders WHERE status NOT IN (" + list(n, 1) + ") AND amount > " + integer();
      case 2:
        return "UPDATE orders SET status = " + string_lit() + " WHERE id IN (" + list(n, 0) +
               ") AND customer_id in (" + list(length(), 0) + ")";
      case 3: return "DELETE FROM orders WHERE amount IN (" + list(n, 2) + ")";
      case 4: {
        std::string s = "INSERT INTO orders (id, amount, status) VALUES ";
        const std::vector<int> kinds = {0, 2, 1};
        for (int i = 0; i < n; ++i) s += (i ? ", " : "") + row(kinds);
        return s + (pick(3) == 0 ? " ON CONFLICT DO NOTHING" : "");
      }
      case 5: {
        std::string s = "INSERT INTO orders (id, tenant_id) VALUES ";
        for (int i = 0; i < n; ++i) s += (i ? "," : "") + row({0, 3});
        return s;
      }
      default: {
        std::string s = "SELECT o.id FROM orders o JOIN (VALUES ";
        for (int i = 0; i < n; ++i) s += (i ? ", " : "") + row({0, 1});
        return s + ") v(id, name) ON v.id = o.id WHERE o.id IN (" + list(length(), 0) + ")";
      }
    }
  }
};

TEST(FoldedLists, DifferentialFoldedHitEqualsAFullRewrite) {
  const uint64_t seed = 20261205;
  Gen gen(seed);
  RewriteCache cache;
  cache.set_exact_memo(false);
  const std::vector<std::string> tenants = {"1", "2", "o'b", "back\\slash"};
  size_t allowed = 0, denied = 0;
  for (int i = 0; i < 3000; ++i) {
    const std::string sql = gen.statement();
    const std::string& tenant = tenants[static_cast<size_t>(gen.pick(static_cast<int>(tenants.size())))];
    const RewriteHandle cached = cache.rewrite(sql, test_policy(), tenant);
    const RewriteResult fresh = rewrite(sql, test_policy(), tenant);
    expect_same(*cached, fresh, "seed " + std::to_string(seed) + " #" + std::to_string(i) + " tenant [" + tenant +
                                    "]: " + sql);
    (fresh.allowed ? allowed : denied)++;
    if (::testing::Test::HasFailure()) break;
  }
  EXPECT_GT(allowed, 1000u);
  EXPECT_GT(denied, 10u);
  // Most texts were served by a (folded) constant template: lengths vary, entries do not. (The
  // misses are the denials, rewritten every time, the lists that are not folded, and the first
  // text of each shape and per-tenant shape.)
  EXPECT_GT(cache.constant_hits(), 1500u);
  EXPECT_LT(cache.misses(), 1200u);
}

}  // namespace
}  // namespace rowguard::sqlrewrite
