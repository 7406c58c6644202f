// Advisory locks per tenant (sqlrewrite/advisory_locks.h): every call of the 11 advisory-lock
// functions has its key argument(s) replaced by a hash of (tenant, form, keys); every other
// syntax for the same functions is refused; the rewrite cache never gives one tenant another's
// rewritten text.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/policy.h"
#include "sqlrewrite/advisory_locks.h"
#include "sqlrewrite/pg_query_api.h"
#include "sqlrewrite/rewrite_cache.h"
#include "sqlrewrite/rewriter.h"
#include "tests/support/test_policy.h"

namespace rowguard::sqlrewrite {
namespace {

const policy::Policy& lock_policy() {
  static const policy::PolicyPtr p =
      policy::parse_policy(test_support::test_policy_toml({.second_tenant = true}), "advisory_locks_test.toml");
  return *p;
}

RewriteResult run(const std::string& sql, const std::string& tenant = "1") { return rewrite(sql, lock_policy(), tenant); }

std::string sql_string_literal(const std::string& value) {
  std::string out;
  append_string_literal(out, value);
  return out;
}

// The key expression rowguard writes for a tenant literal and key text (advisory_locks.h).
std::string key(const std::string& tenant_literal, const std::string& key_text) {
  return "CAST('x' || pg_catalog.\"left\"(pg_catalog.encode(pg_catalog.sha256((pg_catalog.convert_to(" + tenant_literal +
         ", 'UTF8') || pg_catalog.decode('00', 'hex')) || pg_catalog.convert_to(" + key_text +
         ", 'UTF8')), 'hex'), 16) AS pg_catalog.bit(64))::int8";
}

const std::vector<std::string> kLockFunctions = {
    "pg_advisory_lock",      "pg_advisory_lock_shared",      "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared", "pg_advisory_xact_lock", "pg_advisory_xact_lock_shared",
    "pg_try_advisory_xact_lock", "pg_try_advisory_xact_lock_shared", "pg_advisory_unlock",
    "pg_advisory_unlock_shared"};

TEST(AdvisoryLocks, BigintFormGolden) {
  const RewriteResult r = run("SELECT pg_advisory_lock(42)");
  ASSERT_TRUE(r.allowed) << r.reason;
  EXPECT_EQ(r.sql, "SELECT pg_advisory_lock(" + key("'1'", "'a:' || pg_catalog.to_hex(42 + 0::int8)") + ")");
  const RewriteResult t2 = run("SELECT pg_advisory_lock(42)", "2");
  ASSERT_TRUE(t2.allowed) << t2.reason;
  EXPECT_EQ(t2.sql, "SELECT pg_advisory_lock(" + key("'2'", "'a:' || pg_catalog.to_hex(42 + 0::int8)") + ")");
}

TEST(AdvisoryLocks, TwoIntFormGolden) {
  const RewriteResult r = run("SELECT pg_catalog.pg_try_advisory_xact_lock(7, $1)");
  ASSERT_TRUE(r.allowed) << r.reason;
  EXPECT_EQ(r.sql, "SELECT pg_catalog.pg_try_advisory_xact_lock(" +
                       key("'1'", "(('b:' || pg_catalog.to_hex(7 + 0::int4)) || ':') || pg_catalog.to_hex($1 + 0::int4)") +
                       ")");
}

TEST(AdvisoryLocks, EveryFunctionAndFormIsRewritten) {
  for (const auto& fn : kLockFunctions) {
    for (const std::string schema : {"", "pg_catalog."}) {
      for (const std::string args : {"42", "$1", "-5", "1, 2", "$1, $2", "hashtext('queue'), 9", "NULL"}) {
        const std::string sql = "SELECT " + schema + fn + "(" + args + ")";
        const RewriteResult r = run(sql, "tenant-x");
        ASSERT_TRUE(r.allowed) << sql << ": " << r.reason;
        EXPECT_NE(r.sql.find("pg_catalog.convert_to('tenant-x', 'UTF8')"), std::string::npos) << r.sql;
        EXPECT_EQ(r.sql.find(fn + "(" + args + ")"), std::string::npos) << r.sql;
        EXPECT_NE(r.sql.find(args.find(',') == std::string::npos ? "'a:'" : "'b:'"), std::string::npos) << r.sql;
      }
    }
  }
  for (const std::string sql : {"SELECT pg_advisory_unlock_all()", "SELECT pg_catalog.pg_advisory_unlock_all()"}) {
    const RewriteResult r = run(sql);
    ASSERT_TRUE(r.allowed) << r.reason;
    EXPECT_EQ(r.sql, sql);
  }
}

// The key expression is walked like the rest of the statement: a table in it is filtered, a
// refused function in it stays refused.
TEST(AdvisoryLocks, KeyExpressionsAreCheckedLikeAnyOther) {
  const RewriteResult r = run("SELECT pg_try_advisory_xact_lock((SELECT max(id) FROM orders))");
  ASSERT_TRUE(r.allowed) << r.reason;
  EXPECT_NE(r.sql.find("orders.tenant_id = '1'"), std::string::npos) << r.sql;
  EXPECT_FALSE(run("SELECT pg_advisory_lock(txid_current())").allowed);
  EXPECT_FALSE(run("SELECT pg_advisory_lock(pg_catalog.set_config('a.b', '1', false)::int8)").allowed);
  EXPECT_FALSE(run("SELECT pg_advisory_lock((SELECT count(*) FROM audit_log))").allowed);
  // The job-queue pattern: the row lock and the advisory lock in one statement.
  const RewriteResult q = run("SELECT id FROM orders WHERE status = 'new' AND pg_try_advisory_xact_lock(id) "
                              "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED");
  ASSERT_TRUE(q.allowed) << q.reason;
  EXPECT_NE(q.sql.find("orders.tenant_id = '1'"), std::string::npos) << q.sql;
  EXPECT_NE(q.sql.find("pg_catalog.to_hex(id + 0::int8)"), std::string::npos) << q.sql;
  // In FROM, under PREPARE, in EXPLAIN-less forms too.
  EXPECT_TRUE(run("SELECT * FROM pg_advisory_lock(1)").allowed);
  const RewriteResult p = run("PREPARE lk(bigint) AS SELECT pg_advisory_lock($1)");
  ASSERT_TRUE(p.allowed) << p.reason;
  EXPECT_NE(p.sql.find("convert_to('1', 'UTF8')"), std::string::npos) << p.sql;
}

TEST(AdvisoryLocks, OtherSyntaxForTheSameCallsIsRefused) {
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"SELECT pg_advisory_lock(key => 1)", "positional arguments"},
      {"SELECT pg_advisory_lock(VARIADIC ARRAY[1])", "plain positional arguments"},
      {"SELECT pg_advisory_lock(1, 2, 3)", "one bigint key or two int4 keys"},
      {"SELECT pg_advisory_lock()", "one bigint key or two int4 keys"},
      {"SELECT pg_advisory_unlock_all(1)", "takes no arguments"},
      {"SELECT pg_advisory_lock(1) OVER ()", "plain positional arguments"},
      {"SELECT pg_advisory_lock(DISTINCT 1)", "plain positional arguments"},
      {"SELECT pg_advisory_lock(1) FILTER (WHERE true)", "plain positional arguments"},
      {"SELECT (1).pg_advisory_lock", "pg_advisory_lock"},
      {"SELECT (1::bigint).pg_try_advisory_lock", "pg_try_advisory_lock"},
      {"SELECT public.pg_advisory_lock(1)", "is not allowed"},
      {"SELECT evil.pg_advisory_unlock_all()", "is not allowed"},
      {"SELECT * FROM pg_locks", "pg_locks"},
      {"SELECT objid FROM pg_catalog.pg_locks WHERE locktype = 'advisory'", "pg_locks"},
  };
  for (const auto& [sql, part] : refused) {
    const RewriteResult r = run(sql);
    EXPECT_FALSE(r.allowed) << sql << " -> " << r.sql;
    EXPECT_NE(r.reason.find(part), std::string::npos) << sql << ": " << r.reason;
  }
  EXPECT_NE(run("SELECT pg_advisory_lock(key => 1)").reason.find("(rule: advisory_locks)"), std::string::npos);
}

// The template cache splices the tenant into the key expression: tenant 2 (and tenants that
// need quoting) get exactly a fresh rewrite's text, never tenant 1's.
TEST(AdvisoryLocks, CacheGivesEachTenantItsOwnKeySpace) {
  const std::vector<std::string> statements = {
      "SELECT pg_advisory_lock(42)", "SELECT pg_try_advisory_lock(42)", "SELECT pg_advisory_unlock(17)",
      "SELECT pg_advisory_xact_lock(1, 2)", "SELECT pg_try_advisory_xact_lock($1)",
      "SELECT pg_advisory_lock_shared($1, $2)",
      "SELECT id FROM orders WHERE pg_try_advisory_xact_lock(id) LIMIT 1 FOR UPDATE SKIP LOCKED",
      "SELECT pg_advisory_lock('9')"};
  const std::vector<std::string> tenants = {"1", "2", "o'brien", "a\\b'c", "1_2", "Ünï ☃", "rowguardTenantSentinel0", "42"};
  RewriteCache cache;
  for (int pass = 0; pass < 3; ++pass) {
    for (const auto& sql : statements) {
      for (const auto& t : tenants) {
        const RewriteResult fresh = rewrite(sql, lock_policy(), t);
        const RewriteHandle cached = cache.rewrite(sql, lock_policy(), t);
        ASSERT_TRUE(fresh.allowed) << sql << ": " << fresh.reason;
        EXPECT_EQ(cached->allowed, fresh.allowed) << sql << " tenant " << t;
        EXPECT_EQ(cached->sql, fresh.sql) << sql << " tenant " << t;
        EXPECT_NE(cached->sql.find("convert_to(" + sql_string_literal(t) + ", 'UTF8')"), std::string::npos)
            << cached->sql;
      }
    }
    // Constant templates: another key in the same shape, per tenant.
    for (int k : {5, 6, 77}) {
      const std::string sql = "SELECT pg_advisory_lock(" + std::to_string(k) + ")";
      for (const auto& t : tenants) {
        const RewriteHandle cached = cache.rewrite(sql, lock_policy(), t);
        EXPECT_EQ(cached->sql, rewrite(sql, lock_policy(), t).sql) << sql << " tenant " << t;
      }
    }
  }
  const RewriteHandle one = cache.rewrite("SELECT pg_advisory_lock(42)", lock_policy(), "1");
  const std::string text_one = one->sql;
  const RewriteHandle two = cache.rewrite("SELECT pg_advisory_lock(42)", lock_policy(), "2");
  EXPECT_NE(text_one, two->sql);
  EXPECT_EQ(two->sql.find("'1'"), std::string::npos) << two->sql;
}

// The rewritten text parses back to the same tree (the rewriter's deparse check would refuse
// it otherwise) for keys that need parentheses.
TEST(AdvisoryLocks, KeysThatNeedParenthesesSurviveTheDeparse) {
  for (const std::string args : {"1 + 2", "-5", "(SELECT 1) * 2", "CASE WHEN true THEN 1 END", "1::int2",
                                 "$1::int4, -$2", "id % 10, id / 10"}) {
    const std::string sql = "SELECT pg_advisory_xact_lock(" + args + ") FROM orders";
    const RewriteResult r = run(sql);
    ASSERT_TRUE(r.allowed) << sql << ": " << r.reason;
    ParseOutput p = parse_sql(r.sql);
    EXPECT_TRUE(p.ok) << r.sql;
  }
}

}  // namespace
}  // namespace rowguard::sqlrewrite
