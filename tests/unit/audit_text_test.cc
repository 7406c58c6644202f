// Audit mode "all" without a parse per execution: the fingerprint and normalized text of a
// statement are kept with its rewrite-cache entry (RewriteCache::audit_text), and the audit line
// written from them is the one written from a fresh parse (proxy/net/audit.h).
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "policy/policy.h"
#include "proxy/net/audit.h"
#include "sqlrewrite/pg_query_api.h"
#include "sqlrewrite/rewrite_cache.h"
#include "tests/support/tenant_keys_schema.h"
#include "tests/support/test_policy.h"
#include "tests/support/wait.h"

namespace rowguard::sqlrewrite {
namespace {

const policy::Policy& test_policy() {
  static const policy::PolicyPtr p = unit_test::with_tenant_keys(
      policy::parse_policy(test_support::test_policy_toml(), "audit_text_test.toml"));
  return *p;
}

void expect_fresh(const AuditText& a, const std::string& sql) {
  EXPECT_EQ(a.fingerprint, fingerprint_sql(sql)) << sql;
  EXPECT_FALSE(a.fingerprint.empty()) << sql;
  EXPECT_EQ(a.normalized, normalize_sql(sql)) << sql;
}

TEST(AuditText, ACachedStatementIsParsedForTheAuditOnce) {
  RewriteCache cache;
  const std::string sql = "SELECT * FROM orders WHERE id = $1";
  cache.rewrite(sql, test_policy(), "1");
  for (int i = 0; i < 5; ++i) expect_fresh(*cache.audit_text(sql, "1", true), sql);
  EXPECT_EQ(cache.audit_computations(), 1u);
  // Another tenant executing it: the same entry.
  cache.rewrite(sql, test_policy(), "2");
  expect_fresh(*cache.audit_text(sql, "2", true), sql);
  EXPECT_EQ(cache.audit_computations(), 1u);
}

TEST(AuditText, TextsOfOneConstantTemplateShareTheirAuditText) {
  RewriteCache cache;
  cache.set_exact_memo(false);
  const std::vector<std::string> texts = {
      "SELECT * FROM orders WHERE id = 17 AND status = 'new' AND amount > 1.50",
      "SELECT * FROM orders WHERE id = 99999 AND status = 'it''s' AND amount > 100.25",
      "SELECT * FROM orders WHERE id = 0042 AND status = '' AND amount > 7.0",
  };
  for (const std::string& sql : texts) {
    cache.rewrite(sql, test_policy(), "1");
    expect_fresh(*cache.audit_text(sql, "1", true), sql);
  }
  EXPECT_EQ(cache.constant_hits(), 2u);
  EXPECT_EQ(cache.audit_computations(), 1u);
}

TEST(AuditText, FoldedListsKeepTheAuditTextOfOneLength) {
  RewriteCache cache;
  cache.set_exact_memo(false);
  const std::vector<std::string> texts = {
      "SELECT * FROM orders WHERE id IN (5, 6, 7)", "SELECT * FROM orders WHERE id IN (8, 9, 10)",
      "SELECT * FROM orders WHERE id IN (5, 6, 7, 8, 9)", "SELECT * FROM orders WHERE id IN (11, 12, 13, 14, 15)",
      "INSERT INTO orders (id, amount) VALUES (2, 3.5), (4, 5.5)", "INSERT INTO orders (id, amount) VALUES (6, 7.5), (8, 9.5)",
      "INSERT INTO orders (id, amount) VALUES (2, 3.5), (4, 5.5), (6, 7.5)",
  };
  for (const std::string& sql : texts) {
    cache.rewrite(sql, test_policy(), "1");
    expect_fresh(*cache.audit_text(sql, "1", true), sql);
  }
  // One parse per (shape, lengths): lists of another length have another normalized text.
  EXPECT_EQ(cache.audit_computations(), 4u);
}

TEST(AuditText, PerTenantDeniedAndUncachedTextsAreRightToo) {
  RewriteCache cache;
  for (const std::string& sql : {std::string("INSERT INTO orders (id, tenant_id) VALUES (5, '1')"),
                                 std::string("INSERT INTO orders (id, tenant_id) VALUES (6, '1')"),
                                 std::string("SELECT * FROM secret_table WHERE x = 1"), std::string("DROP TABLE orders")}) {
    cache.rewrite(sql, test_policy(), "1");
    expect_fresh(*cache.audit_text(sql, "1", true), sql);
    expect_fresh(*cache.audit_text(sql, "1", true), sql);
  }
  const size_t n = cache.audit_computations();
  EXPECT_LE(n, 4u);
  // Never rewritten here: computed, right.
  expect_fresh(*cache.audit_text("SELECT 42 FROM countries", "1", true), "SELECT 42 FROM countries");
  // Asked without the normalized text first: the fingerprint alone, then both.
  RewriteCache c2;
  c2.rewrite("SELECT * FROM orders", test_policy(), "1");
  EXPECT_EQ(c2.audit_text("SELECT * FROM orders", "1", false)->fingerprint, fingerprint_sql("SELECT * FROM orders"));
  expect_fresh(*c2.audit_text("SELECT * FROM orders", "1", true), "SELECT * FROM orders");
  expect_fresh(*c2.audit_text("SELECT * FROM orders", "1", false), "SELECT * FROM orders");
  EXPECT_EQ(c2.audit_computations(), 2u);
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) {
    if (l.find("\"user\"") != std::string::npos) out.push_back(l.substr(l.find("\"user\"")));  // without the time
  }
  return out;
}

TEST(AuditText, TheAuditLineFromTheKeptTextIsTheSame) {
  for (bool mask : {false, true}) {
    char path[] = "/tmp/rowguard-audit-text-XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    close(fd);
    const std::string sql = "SELECT * FROM orders WHERE id = 17 AND status = 'o''b'";
    RewriteCache cache;
    cache.rewrite(sql, test_policy(), "1");
    const auto kept = cache.audit_text(sql, "1", mask);
    {
      policy::AuditSettings settings;
      settings.file = path;
      settings.mode = policy::AuditMode::kAll;
      settings.mask_literals = mask;
      auto log = net::AuditLog::open(settings);
      ASSERT_TRUE(log);
      net::AuditEvent e{"u", "1", "127.0.0.1:5", 7, sql, true, ""};
      log->record(e);  // parses
      e.fingerprint = &kept->fingerprint;
      if (mask) e.normalized = &kept->normalized;
      log->record(e);  // from the cache entry
    }
    // The logger writes on spdlog's thread: wait for both lines.
    EXPECT_TRUE(rowguard::testing::wait_until([&] { return lines_of(path).size() >= 2; }, std::chrono::seconds(10)));
    const std::vector<std::string> lines = lines_of(path);
    std::remove(path);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0], lines[1]);
    EXPECT_NE(lines[1].find(mask ? "$1" : "'o''b'"), std::string::npos) << lines[1];
  }
}

}  // namespace
}  // namespace rowguard::sqlrewrite
