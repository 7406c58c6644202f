// Unit tests for the template rewrite cache (sqlrewrite/rewrite_cache.h): a cached result must be
// exactly what a fresh rewrite gives, for every tenant, including tenants whose value needs
// quoting; entries are shared between tenants only when that is safe; bounds, denials, policy
// reloads.
#include "sqlrewrite/rewrite_cache.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/policy.h"
#include "sqlrewrite/rewriter.h"

namespace rowguard::sqlrewrite {
namespace {

constexpr const char* kPolicyToml = R"toml(
[proxy]
listen = "127.0.0.1:6432"
upstream = "127.0.0.1:5432"
upstream_user = "app"

[tenancy]
default_column = "tenant_id"

[[tenants]]
user = "t1"
password = "pw1"
tenant = "1"

[tables."public.orders"]
column = "tenant_id"

[tables."public.customers"]

[tables."public.countries"]
global = true
)toml";

const policy::Policy& test_policy() {
  static const policy::PolicyPtr p = policy::parse_policy(kPolicyToml, "rewrite_cache_test.toml");
  return *p;
}

// Tenants whose values exercise the splice: quotes, backslashes (E'' literals), characters that
// mean something in SQL, non-ASCII, numbers, the cache's own sentinel prefix.
const std::vector<std::string>& tenants() {
  static const std::vector<std::string> kTenants = {
      "1", "2", "42", "0", "007", "o'brien", "''", "back\\slash", "x\\'y", "\\", "with space",
      "$1", "%s", "--", "/*", "*/", "\"quoted\"", "Ünïcödé ténant", "UPPER", "1_2", "a;b",
      "rowguardTenantSentinel0", "rowguardtenantsentinel0", std::string(70, 't'),
  };
  return kTenants;
}

const std::vector<std::string>& statements() {
  static const std::vector<std::string> kStatements = {
      // reads
      "SELECT * FROM orders",
      "SELECT * FROM orders WHERE id = 42",
      "SELECT * FROM orders WHERE id = $1",
      "select o.id, c.name from orders o join customers c on c.id = o.customer_id where o.amount > 10",
      "SELECT * FROM orders o LEFT JOIN customers c ON c.id = o.customer_id",
      "SELECT * FROM orders o FULL JOIN customers c ON c.id = o.customer_id",
      "WITH x AS (SELECT * FROM orders) SELECT * FROM x JOIN customers USING (id)",
      "SELECT (SELECT count(*) FROM customers), * FROM orders UNION ALL SELECT 1, * FROM orders",
      "SELECT * FROM countries",
      "SELECT 1",
      "SELECT 'rowguardTenantSentinel0' FROM orders",  // the sentinel in the text: another one is used
      "SELECT E'rowguardTenantSentinel\\0601' FROM orders",  // spells a sentinel with escapes
      "SELECT '1' AS tenant_id, * FROM orders WHERE tenant_id = '1'",
      "EXPLAIN SELECT * FROM orders",
      "BEGIN; SELECT * FROM orders; UPDATE customers SET name = 'x'; COMMIT",
      "  -- only a comment",
      // writes
      "UPDATE orders SET status = 'shipped' WHERE id = 42",
      "UPDATE orders o SET amount = 1 FROM customers c WHERE c.id = o.customer_id",
      "DELETE FROM orders WHERE id = 1",
      "DELETE FROM orders USING customers c WHERE c.id = orders.customer_id",
      "INSERT INTO orders (id, amount) VALUES (1, 2), (3, 4)",
      "INSERT INTO orders (id, amount) VALUES ($1, $2)",
      "INSERT INTO orders (id, tenant_id) VALUES ($1, $2)",
      "INSERT INTO orders (id, amount) SELECT id, amount FROM orders WHERE id < 10",
      "INSERT INTO orders (id, amount) VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET amount = excluded.amount",
      "INSERT INTO orders (id, amount) VALUES (1, 2) ON CONFLICT DO NOTHING",
      "MERGE INTO orders o USING customers c ON o.id = c.id WHEN MATCHED THEN UPDATE SET amount = 1 "
      "WHEN NOT MATCHED THEN INSERT (id, amount) VALUES (c.id, 0)",
      // the outcome depends on the tenant's value: cached per tenant
      "INSERT INTO orders (id, tenant_id) VALUES (1, '1')",
      "INSERT INTO orders (id, tenant_id) VALUES (1, 1)",
      "INSERT INTO orders (id, tenant_id) VALUES (1, 'o''brien')",
      "INSERT INTO orders (id, tenant_id) VALUES (1, E'back\\\\slash')",
      "INSERT INTO orders (id, tenant_id) SELECT id, '2' FROM orders",
      "UPDATE orders SET tenant_id = '1' WHERE id = 3",
      "UPDATE orders SET tenant_id = '42', amount = 0",
      "LISTEN jobs",
      "LISTEN \"Jobs Queue\"",
      "NOTIFY jobs, 'payload'",
      "UNLISTEN jobs",
      "UNLISTEN *",
      "SELECT pg_notify('jobs', 'x')",
      "LISTEN " + std::string(50, 'c'),
      // COPY
      "COPY orders TO STDOUT",
      "COPY (SELECT id FROM orders) TO STDOUT WITH (FORMAT csv)",
      "COPY orders (id, amount) FROM STDIN",
      "COPY orders (id, tenant_id) FROM STDIN WITH (FORMAT csv)",
      "COPY orders (id, amount) FROM STDIN WITH (NULL '1')",
      // denials, some naming the tenant
      "DROP TABLE orders",
      "SELECT * FROM secret_table",
      "INSERT INTO orders (id, tenant_id) VALUES (1)",
      "INSERT INTO orders (id, tenant_id) VALUES (1, '999')",
      "INSERT INTO orders (id, tenant_id) VALUES (1, $1 || 'x')",
      "UPDATE orders SET tenant_id = tenant_id || 'x'",
      "SELECT * FROM",
      "COPY orders FROM '/etc/passwd'",
  };
  return kStatements;
}

void expect_same(const RewriteResult& cached, const RewriteResult& fresh, const std::string& what) {
  EXPECT_EQ(cached.allowed, fresh.allowed) << what;
  EXPECT_EQ(cached.sql, fresh.sql) << what;
  EXPECT_EQ(cached.reason, fresh.reason) << what;
  EXPECT_EQ(cached.kinds, fresh.kinds) << what;
  EXPECT_EQ(cached.tenant_params, fresh.tenant_params) << what;
  ASSERT_EQ(cached.copy_in.has_value(), fresh.copy_in.has_value()) << what;
  if (fresh.copy_in) {
    const CopyInPlan& a = *cached.copy_in;
    const CopyInPlan& b = *fresh.copy_in;
    EXPECT_EQ(a.csv, b.csv) << what;
    EXPECT_EQ(a.delimiter, b.delimiter) << what;
    EXPECT_EQ(a.quote, b.quote) << what;
    EXPECT_EQ(a.escape, b.escape) << what;
    EXPECT_EQ(a.null_string, b.null_string) << what;
    EXPECT_EQ(a.header, b.header) << what;
    EXPECT_EQ(a.tenant_index, b.tenant_index) << what;
    EXPECT_EQ(a.tenant_column, b.tenant_column) << what;
    EXPECT_EQ(a.table, b.table) << what;
    EXPECT_EQ(a.columns, b.columns) << what;
  }
}

TEST(TemplateCache, EveryStatementAndTenantEqualsAFreshRewrite) {
  RewriteCache cache;
  size_t allowed = 0, denied = 0;
  // Twice round: the first pass fills (one miss per text, or per (text, tenant) where needed),
  // the second is served from the cache, with tenants in another order.
  size_t misses_after_fill = 0;
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) misses_after_fill = cache.misses();
    for (size_t i = 0; i < tenants().size(); ++i) {
      const std::string& tenant = tenants()[pass == 0 ? i : tenants().size() - 1 - i];
      for (const std::string& sql : statements()) {
        const RewriteResult fresh = rewrite(sql, test_policy(), tenant);
        (fresh.allowed ? allowed : denied)++;
        expect_same(cache.rewrite(sql, test_policy(), tenant), fresh,
                    "tenant [" + tenant + "] statement [" + sql + "]");
      }
    }
  }
  EXPECT_GT(allowed, 0u);
  EXPECT_GT(denied, 0u);
  // The second pass never rewrote anything.
  const size_t lookups = 2 * tenants().size() * statements().size();
  EXPECT_EQ(cache.hits() + cache.misses(), lookups);
  EXPECT_EQ(cache.misses(), misses_after_fill);
  // Templates were shared: far fewer misses than (text, tenant) pairs.
  EXPECT_LT(cache.misses(), lookups / 4);
  EXPECT_GT(cache.per_tenant_entries(), 0u);
}

TEST(TemplateCache, OneEntryServesEveryTenant) {
  RewriteCache cache;
  EXPECT_EQ(cache.rewrite("SELECT * FROM orders", test_policy(), "1").sql,
            "SELECT * FROM public.orders WHERE orders.tenant_id = '1'");
  EXPECT_EQ(cache.rewrite("SELECT * FROM orders", test_policy(), "o'brien").sql,
            "SELECT * FROM public.orders WHERE orders.tenant_id = 'o''brien'");
  // A backslash: standard_conforming_strings is pinned on, and the deparser writes E'' with the
  // backslash doubled; the spliced text is the same.
  EXPECT_EQ(cache.rewrite("SELECT * FROM orders", test_policy(), "a\\'b").sql,
            "SELECT * FROM public.orders WHERE orders.tenant_id = E'a\\\\''b'");
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_EQ(cache.hits(), 2u);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.per_tenant_entries(), 0u);
}

TEST(TemplateCache, InsertFillsEveryRowFromTheTemplate) {
  RewriteCache cache;
  const std::string sql = "INSERT INTO orders (id, amount) VALUES (1, 2), (3, 4)";
  cache.rewrite(sql, test_policy(), "1");
  EXPECT_EQ(cache.rewrite(sql, test_policy(), "7").sql,
            "INSERT INTO public.orders (id, amount, tenant_id) VALUES (1, 2, '7'), (3, 4, '7')");
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.per_tenant_entries(), 0u);
}

TEST(TemplateCache, TenantLiteralInTheStatementIsCachedPerTenant) {
  RewriteCache cache;
  const std::string sql = "INSERT INTO orders (id, tenant_id) VALUES (1, '1')";
  EXPECT_TRUE(cache.rewrite(sql, test_policy(), "1").allowed);
  const RewriteResult& other = cache.rewrite(sql, test_policy(), "2");
  EXPECT_FALSE(other.allowed);
  EXPECT_EQ(other.reason, rewrite(sql, test_policy(), "2").reason);
  EXPECT_EQ(cache.misses(), 2u);
  EXPECT_EQ(cache.per_tenant_entries(), 2u);
  EXPECT_EQ(cache.size(), 3u);  // the text's "per tenant" entry + one per tenant
  EXPECT_TRUE(cache.rewrite(sql, test_policy(), "1").allowed);
  EXPECT_FALSE(cache.rewrite(sql, test_policy(), "2").allowed);
  EXPECT_EQ(cache.hits(), 2u);
  EXPECT_EQ(cache.misses(), 2u);
}

TEST(TemplateCache, ChannelsAreCachedPerTenant) {
  RewriteCache cache;
  EXPECT_EQ(cache.rewrite("LISTEN jobs", test_policy(), "1").sql, "LISTEN rg1_1_jobs");
  EXPECT_EQ(cache.rewrite("LISTEN jobs", test_policy(), "Acme").sql, "LISTEN \"rg4_Acme_jobs\"");
  EXPECT_EQ(cache.rewrite("SELECT pg_notify('jobs', 'x')", test_policy(), "o'b").sql,
            "SELECT pg_notify('rg3_o''b_jobs', 'x')");
  EXPECT_EQ(cache.rewrite("LISTEN jobs", test_policy(), "1").sql, "LISTEN rg1_1_jobs");
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.per_tenant_entries(), 3u);
  // A channel name that fits for a short tenant and not for a long one.
  const std::string listen = "LISTEN " + std::string(55, 'c');
  EXPECT_TRUE(cache.rewrite(listen, test_policy(), "1").allowed);
  EXPECT_FALSE(cache.rewrite(listen, test_policy(), "123456").allowed);
  EXPECT_TRUE(cache.rewrite(listen, test_policy(), "1").allowed);
}

TEST(TemplateCache, DenialsAreCachedAndNameTheRightTenant) {
  RewriteCache cache;
  EXPECT_FALSE(cache.rewrite("DROP TABLE orders", test_policy(), "1").allowed);
  const RewriteResult& again = cache.rewrite("DROP TABLE orders", test_policy(), "2");
  EXPECT_FALSE(again.allowed);
  EXPECT_EQ(again.reason, rewrite("DROP TABLE orders", test_policy(), "2").reason);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.misses(), 1u);

  // A missing tenant value: the reason names the session tenant, spliced in from the template.
  const std::string sql = "INSERT INTO orders (id, tenant_id) VALUES (1)";
  const std::string one = cache.rewrite(sql, test_policy(), "1").reason;
  const std::string two = cache.rewrite(sql, test_policy(), "o'brien").reason;
  EXPECT_EQ(one, rewrite(sql, test_policy(), "1").reason);
  EXPECT_EQ(two, rewrite(sql, test_policy(), "o'brien").reason);
  EXPECT_NE(two.find("session tenant 'o'brien'"), std::string::npos) << two;
  EXPECT_EQ(two.find("Sentinel"), std::string::npos) << two;
  EXPECT_EQ(cache.hits(), 2u);
  EXPECT_EQ(cache.per_tenant_entries(), 0u);
}

TEST(TemplateCache, ParametersAndCopyPlansComeFromTheTemplate) {
  RewriteCache cache;
  const std::string ins = "INSERT INTO orders (id, tenant_id) VALUES ($1, $2)";
  cache.rewrite(ins, test_policy(), "1");
  EXPECT_EQ(cache.rewrite(ins, test_policy(), "2").tenant_params, std::vector<int>{2});
  EXPECT_EQ(cache.hits(), 1u);
  // COPY FROM compares the tenant with its NULL string: per tenant, but the plan is right.
  const std::string copy = "COPY orders (id, amount) FROM STDIN WITH (NULL 'x')";
  EXPECT_TRUE(cache.rewrite(copy, test_policy(), "1").allowed);
  EXPECT_FALSE(cache.rewrite(copy, test_policy(), "x").allowed);
  const RewriteResult& r = cache.rewrite(copy, test_policy(), "1");
  ASSERT_TRUE(r.copy_in.has_value());
  EXPECT_EQ(r.copy_in->tenant_index, -1);
  EXPECT_EQ(r.copy_in->null_string, "x");
}

TEST(TemplateCache, EvictsLeastRecentlyUsedByEntries) {
  RewriteCache cache(2);
  cache.rewrite("SELECT * FROM orders WHERE id = 1", test_policy(), "1");
  cache.rewrite("SELECT * FROM orders WHERE id = 2", test_policy(), "2");
  cache.rewrite("SELECT * FROM orders WHERE id = 1", test_policy(), "3");  // hit, most recent
  cache.rewrite("SELECT * FROM orders WHERE id = 3", test_policy(), "1");  // evicts id = 2
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.hits(), 1u);
  cache.rewrite("SELECT * FROM orders WHERE id = 1", test_policy(), "4");
  EXPECT_EQ(cache.hits(), 2u);
  cache.rewrite("SELECT * FROM orders WHERE id = 2", test_policy(), "1");
  EXPECT_EQ(cache.misses(), 4u);
  EXPECT_EQ(cache.size(), 2u);
}

TEST(TemplateCache, EvictsByBytes) {
  // Measure one entry, then allow about three.
  RewriteCache probe;
  probe.rewrite("SELECT * FROM orders WHERE id = 100", test_policy(), "1");
  const size_t one = probe.bytes();
  ASSERT_GT(one, 0u);
  RewriteCache cache(1000, one * 3 + one / 2);
  for (int i = 100; i < 130; ++i) {
    cache.rewrite("SELECT * FROM orders WHERE id = " + std::to_string(i), test_policy(), "1");
    EXPECT_LE(cache.bytes(), one * 3 + one / 2);
  }
  EXPECT_EQ(cache.size(), 3u);
  // The newest are kept.
  const size_t misses = cache.misses();
  cache.rewrite("SELECT * FROM orders WHERE id = 129", test_policy(), "2");
  EXPECT_EQ(cache.misses(), misses);
  // A statement bigger than the whole bound is still returned (and is then the only entry).
  std::string big = "SELECT * FROM orders WHERE id IN (0";
  for (int i = 1; i < 500; ++i) big += ", " + std::to_string(i);
  big += ")";
  const RewriteResult& r = cache.rewrite(big, test_policy(), "1");
  EXPECT_TRUE(r.allowed);
  EXPECT_EQ(r.sql, rewrite(big, test_policy(), "1").sql);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(TemplateCache, LimitsComeFromThePolicyCacheTable) {
  policy::PolicyPtr small =
      policy::parse_policy(std::string(kPolicyToml) + "\n[cache]\nmax_entries = 2\nmax_bytes = 1000000\n", "small.toml");
  EXPECT_EQ(small->cache.max_entries, 2u);
  EXPECT_EQ(small->cache.max_bytes, 1000000u);
  RewriteCache cache;  // follows the policy
  for (int i = 0; i < 5; ++i) cache.rewrite("SELECT " + std::to_string(i), *small, "1");
  EXPECT_EQ(cache.size(), 2u);
  // A reload with other limits: everything is invalidated, the new limits apply.
  policy::PolicyPtr big =
      policy::parse_policy(std::string(kPolicyToml) + "\n[cache]\nmax_entries = 4\n", "big.toml");
  EXPECT_EQ(big->cache.max_bytes, policy::CacheSettings{}.max_bytes);
  cache.rewrite("SELECT 0", *big, "1");
  EXPECT_EQ(cache.size(), 1u);
  for (int i = 1; i < 6; ++i) cache.rewrite("SELECT " + std::to_string(i), *big, "1");
  EXPECT_EQ(cache.size(), 4u);
}

TEST(TemplateCache, CacheTableIsValidated) {
  const std::string base = kPolicyToml;
  EXPECT_THROW(policy::parse_policy(base + "\n[cache]\nmax_entries = 0\n", "bad.toml"), policy::PolicyError);
  EXPECT_THROW(policy::parse_policy(base + "\n[cache]\nmax_bytes = -1\n", "bad.toml"), policy::PolicyError);
  EXPECT_THROW(policy::parse_policy(base + "\n[cache]\nmax_entries = \"10\"\n", "bad.toml"), policy::PolicyError);
  EXPECT_THROW(policy::parse_policy(base + "\n[cache]\nsize = 10\n", "bad.toml"), policy::PolicyError);
  const policy::PolicyPtr p = policy::parse_policy(base, "ok.toml");
  EXPECT_EQ(p->cache.max_entries, 10000u);
  EXPECT_EQ(p->cache.max_bytes, 64u << 20);
}

TEST(TemplateCache, PolicyReloadInvalidatesTemplates) {
  policy::PolicyPtr v1 = policy::parse_policy(kPolicyToml, "v1.toml");
  std::string text = kPolicyToml;
  const std::string section = "[tables.\"public.customers\"]\n";
  text.erase(text.find(section), section.size());
  policy::PolicyPtr v2 = policy::parse_policy(text, "v2.toml");
  RewriteCache cache;
  EXPECT_TRUE(cache.rewrite("SELECT * FROM customers", *v1, "1").allowed);
  EXPECT_TRUE(cache.rewrite("SELECT * FROM customers", *v1, "2").allowed);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_FALSE(cache.rewrite("SELECT * FROM customers", *v2, "2").allowed);
  EXPECT_EQ(cache.misses(), 2u);
  EXPECT_EQ(cache.size(), 1u);
}

TEST(TemplateCache, StringLiteralQuotingMatchesTheDeparser) {
  for (const std::string& t : tenants()) {
    std::string lit;
    append_string_literal(lit, t);
    // A fresh rewrite of a statement with one predicate holds exactly this literal.
    const RewriteResult r = rewrite("SELECT * FROM orders", test_policy(), t);
    ASSERT_TRUE(r.allowed) << t;
    EXPECT_EQ(r.sql, "SELECT * FROM public.orders WHERE orders.tenant_id = " + lit) << t;
  }
}

}  // namespace
}  // namespace rowguard::sqlrewrite
