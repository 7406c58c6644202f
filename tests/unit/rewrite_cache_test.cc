// Unit tests for the template rewrite cache (sqlrewrite/rewrite_cache.h): a cached result must be
// exactly what a fresh rewrite gives, for every tenant, including tenants whose value needs
// quoting; entries are shared between tenants only when that is safe; bounds, denials, policy
// reloads.
#include "sqlrewrite/rewrite_cache.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/policy.h"
#include "tests/support/tenant_keys_schema.h"
#include "sqlrewrite/literal_scan.h"
#include "sqlrewrite/pg_query_api.h"
#include "sqlrewrite/rewriter.h"
#include "tests/support/tenant_oracle.h"
#include "tests/support/test_policy.h"

namespace rowguard::sqlrewrite {
namespace {

const std::string kPolicyToml = test_support::test_policy_toml();

const policy::Policy& test_policy() {
  static const policy::PolicyPtr p = unit_test::with_tenant_keys(policy::parse_policy(kPolicyToml, "rewrite_cache_test.toml"));
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
      "EXPLAIN (COSTS OFF) SELECT * FROM orders",
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
        expect_same(*cache.rewrite(sql, test_policy(), tenant), fresh,
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
  EXPECT_EQ(cache.rewrite("SELECT * FROM orders", test_policy(), "1")->sql,
            "SELECT * FROM public.orders WHERE orders.tenant_id = '1'");
  EXPECT_EQ(cache.rewrite("SELECT * FROM orders", test_policy(), "o'brien")->sql,
            "SELECT * FROM public.orders WHERE orders.tenant_id = 'o''brien'");
  // A backslash: standard_conforming_strings is pinned on, and the deparser writes E'' with the
  // backslash doubled; the spliced text is the same.
  EXPECT_EQ(cache.rewrite("SELECT * FROM orders", test_policy(), "a\\'b")->sql,
            "SELECT * FROM public.orders WHERE orders.tenant_id = E'a\\\\''b'");
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_EQ(cache.hits(), 2u);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.per_tenant_entries(), 0u);
}

TEST(TemplateCache, InsertFillsEveryRowFromTheTemplate) {
  RewriteCache cache;
  const std::string sql = "INSERT INTO orders (id, amount) VALUES (10, 20), (30, 40)";
  cache.rewrite(sql, test_policy(), "1");
  EXPECT_EQ(cache.rewrite(sql, test_policy(), "7")->sql,
            "INSERT INTO public.orders (id, amount, tenant_id) VALUES (10, 20, '7'), (30, 40, '7')");
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.per_tenant_entries(), 0u);
}

TEST(TemplateCache, TenantLiteralInTheStatementIsCachedPerTenant) {
  RewriteCache cache;
  // 1e1: keyed by the exact text (literal_scan gives up on exponents; see ConstantTemplates).
  const std::string sql = "INSERT INTO orders (id, tenant_id) VALUES (1e1, '1')";
  EXPECT_TRUE(cache.rewrite(sql, test_policy(), "1")->allowed);
  const RewriteHandle other = cache.rewrite(sql, test_policy(), "2");
  EXPECT_FALSE(other->allowed);
  EXPECT_EQ(other->reason, rewrite(sql, test_policy(), "2").reason);
  EXPECT_EQ(cache.misses(), 2u);
  EXPECT_EQ(cache.per_tenant_entries(), 2u);
  EXPECT_EQ(cache.size(), 3u);  // the text's "per tenant" entry + one per tenant
  EXPECT_TRUE(cache.rewrite(sql, test_policy(), "1")->allowed);
  EXPECT_FALSE(cache.rewrite(sql, test_policy(), "2")->allowed);
  EXPECT_EQ(cache.hits(), 2u);
  EXPECT_EQ(cache.misses(), 2u);
}

TEST(TemplateCache, ChannelsAreCachedPerTenant) {
  RewriteCache cache;
  EXPECT_EQ(cache.rewrite("LISTEN jobs", test_policy(), "1")->sql, "LISTEN rg1_1_jobs");
  EXPECT_EQ(cache.rewrite("LISTEN jobs", test_policy(), "Acme")->sql, "LISTEN \"rg4_Acme_jobs\"");
  EXPECT_EQ(cache.rewrite("SELECT pg_notify('jobs', 'x')", test_policy(), "o'b")->sql,
            "SELECT pg_notify('rg3_o''b_jobs', 'x')");
  EXPECT_EQ(cache.rewrite("LISTEN jobs", test_policy(), "1")->sql, "LISTEN rg1_1_jobs");
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.per_tenant_entries(), 3u);
  // A channel name that fits for a short tenant and not for a long one.
  const std::string listen = "LISTEN " + std::string(55, 'c');
  EXPECT_TRUE(cache.rewrite(listen, test_policy(), "1")->allowed);
  EXPECT_FALSE(cache.rewrite(listen, test_policy(), "123456")->allowed);
  EXPECT_TRUE(cache.rewrite(listen, test_policy(), "1")->allowed);
}

TEST(TemplateCache, DenialsAreCachedAndNameTheRightTenant) {
  RewriteCache cache;
  EXPECT_FALSE(cache.rewrite("DROP TABLE orders", test_policy(), "1")->allowed);
  const RewriteHandle again = cache.rewrite("DROP TABLE orders", test_policy(), "2");
  EXPECT_FALSE(again->allowed);
  EXPECT_EQ(again->reason, rewrite("DROP TABLE orders", test_policy(), "2").reason);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.misses(), 1u);

  // A missing tenant value: the reason names the session tenant, spliced in from the template.
  const std::string sql = "INSERT INTO orders (id, tenant_id) VALUES (1)";
  const std::string one = cache.rewrite(sql, test_policy(), "1")->reason;
  const std::string two = cache.rewrite(sql, test_policy(), "o'brien")->reason;
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
  EXPECT_EQ(cache.rewrite(ins, test_policy(), "2")->tenant_params, std::vector<int>{2});
  EXPECT_EQ(cache.hits(), 1u);
  // COPY FROM compares the tenant with its NULL string: per tenant, but the plan is right.
  const std::string copy = "COPY orders (id, amount) FROM STDIN WITH (NULL 'x')";
  EXPECT_TRUE(cache.rewrite(copy, test_policy(), "1")->allowed);
  EXPECT_FALSE(cache.rewrite(copy, test_policy(), "x")->allowed);
  const RewriteHandle r = cache.rewrite(copy, test_policy(), "1");
  ASSERT_TRUE(r->copy_in.has_value());
  EXPECT_EQ(r->copy_in->tenant_index, -1);
  EXPECT_EQ(r->copy_in->null_string, "x");
}

// The eviction and limit tests use exponent constants (1e1): literal_scan gives up on them, so each
// text is its own entry (constant templates are tested below).
TEST(TemplateCache, EvictsLeastRecentlyUsedByEntries) {
  RewriteCache cache(2);
  cache.rewrite("SELECT * FROM orders WHERE id = 1e1", test_policy(), "1");
  cache.rewrite("SELECT * FROM orders WHERE id = 2e1", test_policy(), "2");
  cache.rewrite("SELECT * FROM orders WHERE id = 1e1", test_policy(), "3");  // hit, most recent
  cache.rewrite("SELECT * FROM orders WHERE id = 3e1", test_policy(), "1");  // evicts id = 2
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.hits(), 1u);
  cache.rewrite("SELECT * FROM orders WHERE id = 1e1", test_policy(), "4");
  EXPECT_EQ(cache.hits(), 2u);
  cache.rewrite("SELECT * FROM orders WHERE id = 2e1", test_policy(), "1");
  EXPECT_EQ(cache.misses(), 4u);
  EXPECT_EQ(cache.size(), 2u);
}

TEST(TemplateCache, EvictsByBytes) {
  // Measure one entry, then allow about three.
  RewriteCache probe;
  probe.rewrite("SELECT * FROM orders WHERE id = 100e1", test_policy(), "1");
  const size_t one = probe.bytes();
  ASSERT_GT(one, 0u);
  RewriteCache cache(1000, one * 3 + one / 2);
  for (int i = 100; i < 130; ++i) {
    cache.rewrite("SELECT * FROM orders WHERE id = " + std::to_string(i) + "e1", test_policy(), "1");
    EXPECT_LE(cache.bytes(), one * 3 + one / 2);
  }
  EXPECT_EQ(cache.size(), 3u);
  // The newest are kept.
  const size_t misses = cache.misses();
  cache.rewrite("SELECT * FROM orders WHERE id = 129e1", test_policy(), "2");
  EXPECT_EQ(cache.misses(), misses);
  // A statement bigger than the whole bound is still returned (and is then the only entry).
  std::string big = "SELECT * FROM orders WHERE id IN (0";
  for (int i = 1; i < 500; ++i) big += ", " + std::to_string(i);
  big += ")";
  const RewriteHandle r = cache.rewrite(big, test_policy(), "1");
  EXPECT_TRUE(r->allowed);
  EXPECT_EQ(r->sql, rewrite(big, test_policy(), "1").sql);
  EXPECT_EQ(cache.size(), 1u);
}

// A result handed out by the cache is the caller's: a later rewrite on the same cache (another
// tenant of the same template, another literal of the same shape, another text) leaves it as it
// was. A session may hold one across a co_await while other sessions of its worker use the cache.
TEST(TemplateCache, AResultHeldAcrossAnotherRewriteIsUnchanged) {
  RewriteCache cache;
  const std::string orders = "SELECT * FROM orders";
  (void)cache.rewrite(orders, test_policy(), "0");  // the template exists: the next ones are splices
  const RewriteHandle one = cache.rewrite(orders, test_policy(), "1");
  const std::string want_one = rewrite(orders, test_policy(), "1").sql;
  ASSERT_EQ(one->sql, want_one);
  (void)cache.rewrite(orders, test_policy(), "2");
  (void)cache.rewrite("DROP TABLE orders", test_policy(), "3");
  EXPECT_EQ(one->sql, want_one) << "a splice for another tenant changed a result held";
  EXPECT_TRUE(one->allowed);

  // Constant templates: another literal of the same shape.
  const std::string seven = "SELECT id FROM orders WHERE id = 7";
  (void)cache.rewrite("SELECT id FROM orders WHERE id = 6", test_policy(), "1");
  const RewriteHandle held = cache.rewrite(seven, test_policy(), "1");
  const std::string want_seven = rewrite(seven, test_policy(), "1").sql;
  ASSERT_EQ(held->sql, want_seven);
  (void)cache.rewrite("SELECT id FROM orders WHERE id = 8", test_policy(), "2");
  EXPECT_EQ(held->sql, want_seven) << "a constant-template hit for another literal changed a result held";

  // A per-tenant entry's result outlives the entry: evicted by a one-entry cache.
  RewriteCache small(1);
  const RewriteHandle listen = small.rewrite("LISTEN jobs", test_policy(), "1");
  for (int i = 0; i < 20; ++i) (void)small.rewrite("LISTEN q" + std::to_string(i), test_policy(), "2");
  EXPECT_EQ(small.size(), 1u);
  EXPECT_EQ(listen->sql, "LISTEN rg1_1_jobs");

  // Many results held at once (more than the cache keeps for reuse): each stays its own.
  std::vector<RewriteHandle> many;
  for (int i = 0; i < 40; ++i) many.push_back(cache.rewrite(orders, test_policy(), std::to_string(i)));
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(many[static_cast<size_t>(i)]->sql, rewrite(orders, test_policy(), std::to_string(i)).sql);
  }
}

// Once dropped, a spliced result's object is reused for the next splice (its buffers too): a hit
// allocates nothing in steady state (tests/unit/session_test.cc SteadyState counts allocations).
TEST(TemplateCache, ADroppedResultIsReused) {
  RewriteCache cache;
  const std::string orders = "SELECT * FROM orders";
  const RewriteResult* first = cache.rewrite(orders, test_policy(), "1").get();
  const RewriteHandle second = cache.rewrite(orders, test_policy(), "2");
  EXPECT_EQ(second.get(), first);
  const RewriteHandle third = cache.rewrite(orders, test_policy(), "3");
  EXPECT_NE(third.get(), second.get()) << "a result held must not be reused";
  EXPECT_EQ(second->sql, rewrite(orders, test_policy(), "2").sql);
}

TEST(TemplateCache, LimitsComeFromThePolicyCacheTable) {
  policy::PolicyPtr small =
      policy::parse_policy(std::string(kPolicyToml) + "\n[cache]\nmax_entries = 2\nmax_bytes = 1000000\n", "small.toml");
  EXPECT_EQ(small->cache.max_entries, 2u);
  EXPECT_EQ(small->cache.max_bytes, 1000000u);
  RewriteCache cache;  // follows the policy
  for (int i = 0; i < 5; ++i) cache.rewrite("SELECT " + std::to_string(i) + "e1", *small, "1");
  EXPECT_EQ(cache.size(), 2u);
  // A reload with other limits: everything is invalidated, the new limits apply.
  policy::PolicyPtr big =
      policy::parse_policy(std::string(kPolicyToml) + "\n[cache]\nmax_entries = 4\n", "big.toml");
  EXPECT_EQ(big->cache.max_bytes, policy::CacheSettings{}.max_bytes);
  cache.rewrite("SELECT 0e1", *big, "1");
  EXPECT_EQ(cache.size(), 1u);
  for (int i = 1; i < 6; ++i) cache.rewrite("SELECT " + std::to_string(i) + "e1", *big, "1");
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
  EXPECT_TRUE(cache.rewrite("SELECT * FROM customers", *v1, "1")->allowed);
  EXPECT_TRUE(cache.rewrite("SELECT * FROM customers", *v1, "2")->allowed);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_FALSE(cache.rewrite("SELECT * FROM customers", *v2, "2")->allowed);
  EXPECT_EQ(cache.misses(), 2u);
  EXPECT_EQ(cache.size(), 1u);
}

// ---- the tenant as a parameter (issue #16: one server statement for every tenant) ----------

// `form` with each $first.. replaced by the tenant quoted as the deparser quotes it.
std::string with_tenant(const TenantParamForm& form, const std::string& tenant) {
  std::string quoted;
  append_string_literal(quoted, tenant);
  std::string out = form.sql;
  for (int i = form.count - 1; i >= 0; --i) {  // highest first: $12 before $1
    const std::string param = "$" + std::to_string(form.first + i);
    const size_t at = out.find(param);
    if (at == std::string::npos) return "missing " + param;
    out.replace(at, param.size(), quoted);
  }
  return out;
}

TEST(TenantParamForm, TwoTenantsShareOneTextThatIsTheRewriteWithTheTenantBound) {
  const std::vector<std::string> shapes = {
      "SELECT * FROM orders",
      "SELECT aid, abalance FROM orders WHERE id = $1",
      "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.amount > $2 AND c.name = $1",
      "SELECT * FROM orders o LEFT JOIN customers c ON c.id = o.customer_id",
      "SELECT * FROM orders o FULL JOIN customers c ON c.id = o.customer_id",
      "WITH x AS (SELECT * FROM orders) SELECT * FROM x WHERE id IN (SELECT id FROM customers)",
      "SELECT * FROM orders WHERE id = $1 FOR UPDATE",
      "UPDATE orders SET status = $1 WHERE id = $2",
      "UPDATE orders o SET amount = 1 FROM customers c WHERE c.id = o.customer_id",
      "DELETE FROM orders WHERE id = $1 RETURNING *",
  };
  for (const std::string& sql : shapes) {
    SCOPED_TRACE(sql);
    RewriteCache cache;
    ASSERT_TRUE(cache.rewrite(sql, test_policy(), "1")->allowed);
    const std::optional<TenantParamForm> one = cache.tenant_param_form(sql, test_policy(), 0);
    ASSERT_TRUE(one.has_value());
    cache.rewrite(sql, test_policy(), "o'brien");
    const std::optional<TenantParamForm> two = cache.tenant_param_form(sql, test_policy(), 0);
    ASSERT_TRUE(two.has_value());
    EXPECT_EQ(one->sql, two->sql);
    EXPECT_EQ(one->sql.find("'1'"), std::string::npos) << one->sql;
    EXPECT_GT(one->count, 0);
    // Exactly the literal rewrite, with the tenant where the parameters are.
    for (const std::string& tenant : {std::string("1"), std::string("o'brien"), std::string("a\\'b")}) {
      EXPECT_EQ(with_tenant(*one, tenant), rewrite(sql, test_policy(), tenant).sql);
    }
    // The independent checker sees every tenant table filtered by a parameter rowguard binds.
    ParseOutput parsed = parse_sql(one->sql);
    ASSERT_TRUE(parsed.ok) << parsed.error;
    test_support::TenantOracleOptions o{.tenant = "1", .system_catalogs = true};
    for (int i = 0; i < one->count; ++i) o.bound_tenant_params.push_back(one->first + i);
    std::string problems;
    for (const auto& p : test_support::tenant_problems(parsed.tree, o)) problems += "\n  " + p;
    EXPECT_EQ(problems, "");
    // Without the binding, the parameters are no tenant filter (the checker is not lenient).
    EXPECT_FALSE(test_support::tenant_problems(parsed.tree, {.tenant = "1", .system_catalogs = true}).empty());
  }
}

TEST(TenantParamForm, TheTenantParametersComeAfterTheClientsDeclaredAndUsedOnes) {
  RewriteCache cache;
  const std::string sql = "SELECT * FROM orders WHERE id = $2";
  cache.rewrite(sql, test_policy(), "1");
  auto used = cache.tenant_param_form(sql, test_policy(), 0);
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->first, 3);
  EXPECT_EQ(used->sql, "SELECT * FROM public.orders WHERE CASE WHEN orders.tenant_id = $3 THEN id = $2 END "
                       "AND orders.tenant_id = $4");
  auto declared = cache.tenant_param_form(sql, test_policy(), 5);
  ASSERT_TRUE(declared.has_value());
  EXPECT_EQ(declared->first, 6);
  EXPECT_EQ(declared->count, 2);
  // PostgreSQL's bound on parameters.
  EXPECT_FALSE(cache.tenant_param_form(sql, test_policy(), 65534).has_value());
}

TEST(TenantParamForm, KeepsTheConstantWhereTheTenantIsMoreThanAFilter) {
  const std::vector<std::string> literal_only = {
      "INSERT INTO orders (id, amount) VALUES ($1, $2)",                              // a value, not a filter
      "INSERT INTO orders (id, amount) SELECT id, amount FROM orders WHERE id = $1",  // ditto
      "INSERT INTO orders (id, amount) VALUES (1, 2) ON CONFLICT (id) DO UPDATE SET amount = 3",
      "WITH n AS (INSERT INTO orders (id) VALUES (1) RETURNING id) SELECT * FROM n",
      "MERGE INTO orders o USING customers c ON o.id = c.id WHEN MATCHED THEN UPDATE SET amount = 1",
      "SELECT pg_advisory_lock($1)",                             // the tenant in a lock key
      "INSERT INTO orders (id, tenant_id) VALUES (1e1, '1')",    // compared with the tenant: per tenant
      "SELECT * FROM orders WHERE id = 42",                      // constants: a constant template serves it
      "EXPLAIN SELECT * FROM orders",                            // not a SELECT / UPDATE / DELETE
      "DECLARE c CURSOR FOR SELECT * FROM orders",
      "PREPARE p AS SELECT * FROM orders",
      "COPY orders TO STDOUT",
      "SELECT 1",                                                // no tenant at all
      "SELECT * FROM countries",
      "LISTEN jobs",
      "DROP TABLE orders",                                       // denied
  };
  for (const std::string& sql : literal_only) {
    SCOPED_TRACE(sql);
    RewriteCache cache;
    cache.rewrite(sql, test_policy(), "1");
    EXPECT_FALSE(cache.tenant_param_form(sql, test_policy(), 0).has_value());
  }
  // Nothing is rewritten by tenant_param_form: a text rewrite() has not seen has none.
  RewriteCache cache;
  EXPECT_FALSE(cache.tenant_param_form("SELECT * FROM orders", test_policy(), 0).has_value());
  EXPECT_EQ(cache.misses(), 0u);
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

namespace rowguard::sqlrewrite {
namespace {

// ---- constant templates ----------------------------------------------------------------------

// `sql` with every literal the scanner finds replaced: integer n -> n * 3 + 1 (leading zeros
// kept), numeric x.y -> 9x.y, string 'x' -> 'vx'; `tenant_string`, when given, replaces the k-th string literal instead.
std::string vary_constants(const std::string& sql, int tenant_at = -1, const std::string& tenant = "") {
  std::vector<Literal> lits;
  if (!scan_literals(sql, lits)) return sql;
  std::string out;
  int strings = 0;
  replace_literals(out, sql, lits, [&](std::string& v, size_t, const Literal& l, std::string_view token) {
    if (l.kind == Literal::Kind::kInteger) {
      size_t z = 0;
      while (z + 1 < token.size() && token[z] == '0') ++z;
      const long long n = std::stoll(std::string(token.substr(z, 12)));
      v.append(token.substr(0, z)).append(std::to_string(n * 3 + 1));
    } else if (l.kind == Literal::Kind::kNumeric) {
      v.append("9").append(token);
    } else if (strings++ == tenant_at) {
      append_string_literal(v, tenant);
    } else {
      v.append("'v").append(token.substr(1));
    }
  });
  return out;
}

TEST(LiteralScan, FindsIntegersAndStringsAndSkipsEverythingElse) {
  const std::string sql =
      "SELECT \"a 'b' 1\", t1.x, $12, 'it''s', 42 -- 'no' 7\n"
      "/* 8 /* 'nested' */ 9 */ FROM t WHERE y=-007+'' AND z::int4 >= 3 AND w < 10.50";
  std::vector<Literal> lits;
  ASSERT_TRUE(scan_literals(sql, lits));
  std::vector<std::string> tokens;
  for (const Literal& l : lits) tokens.push_back(sql.substr(l.begin, l.end - l.begin));
  EXPECT_EQ(tokens, (std::vector<std::string>{"'it''s'", "42", "007", "''", "3", "10.50"}));
  EXPECT_EQ(lits[5].kind, Literal::Kind::kNumeric);
  EXPECT_EQ(lits[0].kind, Literal::Kind::kString);
  EXPECT_EQ(lits[1].kind, Literal::Kind::kInteger);
  EXPECT_EQ(string_literal_value("'it''s'"), "it's");
  EXPECT_EQ(string_literal_value("''"), "");
  for (const char* token : {"'it''s'", "''", "'a'", "''''", "'ab'"}) {
    for (const char* value : {"it's", "", "a", "'", "ab", "it''s", "a'", "abc"}) {
      EXPECT_EQ(string_literal_equals(token, value), string_literal_value(token) == value) << token << " " << value;
    }
  }
}

TEST(LiteralScan, GivesUpOnWhatItDoesNotModel) {
  for (const char* sql : {
           "SELECT E'x'", "SELECT e'x'", "SELECT B'101'", "SELECT X'ff'", "SELECT N'x'",
           "SELECT U&'d\\0061t'", "SELECT $$x$$", "SELECT $a$x$a$", "SELECT 1.5e3", "SELECT .5",
           "SELECT 1e5", "SELECT 1.", "SELECT 1.2.3", "SELECT 1..2", "SELECT 1.5x", "SELECT 123abc", "SELECT 'a\\b'", "SELECT 'a'\n'b'",
           "SELECT 'a' /* c */ 'b'", "SELECT 'open", "SELECT \"open", "SELECT 1 /* open",
           "SELECT 1 \\ 2", "SELECT {1}", "SELECT 1\x01", "SELECT $1x", "SELECT date'2020-01-01'",
       }) {
    std::vector<Literal> lits;
    EXPECT_FALSE(scan_literals(sql, lits)) << sql;
  }
  std::vector<Literal> lits;
  EXPECT_TRUE(scan_literals("SELECT U&\"d0061t\" FROM t", lits));
  EXPECT_TRUE(lits.empty());
}

TEST(ConstantTemplates, OtherConstantsHitTheSameEntry) {
  RewriteCache cache;
  const RewriteResult first = *cache.rewrite("SELECT * FROM orders WHERE id = 17 AND status = 'new'", test_policy(), "1");
  EXPECT_EQ(first.sql, "SELECT * FROM public.orders WHERE id = 17 AND CASE WHEN orders.tenant_id = '1' THEN status = 'new' END "
                       "AND orders.tenant_id = '1'");
  const RewriteHandle r = cache.rewrite("SELECT * FROM orders WHERE id = 0042 AND status = 'it''s'", test_policy(), "o'b");
  EXPECT_EQ(r->sql, "SELECT * FROM public.orders WHERE id = 42 AND CASE WHEN orders.tenant_id = 'o''b' THEN status = 'it''s' END "
                   "AND orders.tenant_id = 'o''b'");
  EXPECT_EQ(r->sql, rewrite("SELECT * FROM orders WHERE id = 0042 AND status = 'it''s'", test_policy(), "o'b").sql);
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.constant_hits(), 1u);
  EXPECT_EQ(cache.size(), 1u);
  // A negative constant, a typed literal, LIMIT, an IN list.
  for (const char* sql : {"SELECT * FROM orders WHERE amount > -5 LIMIT 10",
                          "SELECT * FROM orders WHERE created > date '2024-01-31' AND id IN (1, 2, 3)"}) {
    const RewriteResult a = *cache.rewrite(sql, test_policy(), "x");
    const std::string varied = vary_constants(sql);
    ASSERT_NE(varied, sql);
    const size_t hits = cache.constant_hits();
    expect_same(*cache.rewrite(varied, test_policy(), "y"), rewrite(varied, test_policy(), "y"), varied);
    EXPECT_EQ(cache.constant_hits(), hits + 1) << varied;
    expect_same(a, rewrite(sql, test_policy(), "x"), sql);
  }
}

TEST(ConstantTemplates, EveryStatementWithOtherConstantsEqualsAFreshRewrite) {
  RewriteCache cache;
  size_t varied_texts = 0;
  for (const std::string& tenant : tenants()) {
    for (const std::string& sql : statements()) {
      expect_same(*cache.rewrite(sql, test_policy(), tenant), rewrite(sql, test_policy(), tenant),
                  "tenant [" + tenant + "] statement [" + sql + "]");
      // The same statement with other constants, and with a string constant that is the tenant.
      for (int at = -1; at < 2; ++at) {
        const std::string varied = vary_constants(sql, at, tenant);
        if (varied == sql) continue;
        ++varied_texts;
        expect_same(*cache.rewrite(varied, test_policy(), tenant), rewrite(varied, test_policy(), tenant),
                    "tenant [" + tenant + "] varied statement [" + varied + "]");
      }
    }
  }
  EXPECT_GT(varied_texts, 100u);
  // (Texts seen twice become exact-text entries: the later tenants' lookups of a varied text are
  // exact hits.)
  EXPECT_GT(cache.constant_hits(), 50u);
}

TEST(ConstantTemplates, ATextSeenTwiceGetsAnExactEntry) {
  RewriteCache cache;
  const std::string shape = "SELECT * FROM orders WHERE id = 17 AND status = 'new'";
  const std::string text = "SELECT * FROM orders WHERE id = 18 AND status = 'old'";
  cache.rewrite(shape, test_policy(), "1");                    // the miss: makes the template
  expect_same(*cache.rewrite(text, test_policy(), "1"), rewrite(text, test_policy(), "1"), text);
  expect_same(*cache.rewrite(text, test_policy(), "2"), rewrite(text, test_policy(), "2"), text);
  EXPECT_EQ(cache.constant_hits(), 2u);
  EXPECT_EQ(cache.size(), 2u);  // the template and now the exact text
  expect_same(*cache.rewrite(text, test_policy(), "o'b"), rewrite(text, test_policy(), "o'b"), text);
  EXPECT_EQ(cache.constant_hits(), 2u);  // an exact hit
  EXPECT_EQ(cache.hits(), 3u);
  EXPECT_EQ(cache.misses(), 1u);
  // Per tenant (the statement compares a literal with the tenant): exact per-tenant entries.
  const std::string ins = "INSERT INTO orders (id, tenant_id) VALUES (5, '1')";
  for (int i = 0; i < 4; ++i) {
    expect_same(*cache.rewrite(ins, test_policy(), "1"), rewrite(ins, test_policy(), "1"), ins);
    expect_same(*cache.rewrite(ins, test_policy(), "2"), rewrite(ins, test_policy(), "2"), ins);
  }
  EXPECT_EQ(cache.rewrite("INSERT INTO orders (id, tenant_id) VALUES (6, '1')", test_policy(), "1")->sql,
            rewrite("INSERT INTO orders (id, tenant_id) VALUES (6, '1')", test_policy(), "1").sql);
}

TEST(ConstantTemplates, TenantLiteralsStayInTheKey) {
  RewriteCache cache;
  // An INSERT naming the tenant column: the tenant's own value is kept in the key, so the entry is
  // per tenant and other tenants' values are checked by a rewrite of their own.
  EXPECT_TRUE(cache.rewrite("INSERT INTO orders (id, tenant_id) VALUES (5, '1')", test_policy(), "1")->allowed);
  const RewriteHandle again = cache.rewrite("INSERT INTO orders (id, tenant_id) VALUES (6, '1')", test_policy(), "1");
  EXPECT_TRUE(again->allowed);
  EXPECT_EQ(again->sql, rewrite("INSERT INTO orders (id, tenant_id) VALUES (6, '1')", test_policy(), "1").sql);
  EXPECT_EQ(cache.constant_hits(), 1u);
  // Tenant 2 sending tenant 1's value: refused, as by a fresh rewrite.
  const RewriteHandle cross = cache.rewrite("INSERT INTO orders (id, tenant_id) VALUES (7, '1')", test_policy(), "2");
  EXPECT_FALSE(cross->allowed);
  EXPECT_EQ(cross->reason, rewrite("INSERT INTO orders (id, tenant_id) VALUES (7, '1')", test_policy(), "2").reason);
  EXPECT_FALSE(cache.rewrite("INSERT INTO orders (id, tenant_id) VALUES (8, '1')", test_policy(), "2")->allowed);
  // An integer tenant value written as an integer.
  EXPECT_TRUE(cache.rewrite("INSERT INTO orders (id, tenant_id) VALUES (9, 42)", test_policy(), "42")->allowed);
  EXPECT_TRUE(cache.rewrite("INSERT INTO orders (id, tenant_id) VALUES (10, 42)", test_policy(), "42")->allowed);
  EXPECT_FALSE(cache.rewrite("INSERT INTO orders (id, tenant_id) VALUES (11, 42)", test_policy(), "43")->allowed);
  EXPECT_FALSE(cache.rewrite("INSERT INTO orders (id, tenant_id) VALUES (12, 43)", test_policy(), "42")->allowed);
}

TEST(ConstantTemplates, ShapesThatCannotBeTemplatesAreKeyedByText) {
  RewriteCache cache;
  // Denied: every text is rewritten (and refused) on its own.
  EXPECT_FALSE(cache.rewrite("SELECT * FROM secrets WHERE id = 1", test_policy(), "1")->allowed);
  EXPECT_FALSE(cache.rewrite("SELECT * FROM secrets WHERE id = 2", test_policy(), "1")->allowed);
  // Decisions on a constant's value: a pg_notify channel, an EXECUTE argument, COPY options.
  EXPECT_EQ(cache.rewrite("SELECT pg_notify('jobs', 'a')", test_policy(), "1")->sql, "SELECT pg_notify('rg1_1_jobs', 'a')");
  EXPECT_EQ(cache.rewrite("SELECT pg_notify('mail', 'b')", test_policy(), "1")->sql, "SELECT pg_notify('rg1_1_mail', 'b')");
  EXPECT_EQ(cache.rewrite("EXECUTE p(5, '1')", test_policy(), "1")->prepared.at(0).args.at(1), "1");
  EXPECT_EQ(cache.rewrite("EXECUTE p(5, '2')", test_policy(), "1")->prepared.at(0).args.at(1), "2");
  EXPECT_EQ(cache.constant_hits(), 0u);
  EXPECT_FALSE(cache.rewrite("COPY orders (id, amount) FROM STDIN WITH (NULL '1')", test_policy(), "1")->allowed);
  EXPECT_TRUE(cache.rewrite("COPY orders (id, amount) FROM STDIN WITH (NULL '2')", test_policy(), "1")->allowed);
  EXPECT_EQ(cache.constant_hits(), 0u);
  // 't' and 'f' stay in the key: the deparser writes 'f'::boolean as false (which the re-parse
  // check refuses), unlike any other string cast to boolean.
  for (const char* sql : {"SELECT * FROM orders WHERE paid = 'x'::boolean", "SELECT * FROM orders WHERE paid = 'f'::boolean",
                          "SELECT * FROM orders WHERE paid = 't'::boolean", "SELECT * FROM orders WHERE paid = 'y'::boolean"}) {
    expect_same(*cache.rewrite(sql, test_policy(), "1"), rewrite(sql, test_policy(), "1"), sql);
  }
  // 0 and integers over 9 digits stay in the key ("-0" deparses as "0").
  EXPECT_EQ(cache.rewrite("SELECT * FROM orders WHERE id = -0", test_policy(), "1")->sql,
            rewrite("SELECT * FROM orders WHERE id = -0", test_policy(), "1").sql);
  EXPECT_EQ(cache.rewrite("SELECT * FROM orders WHERE id = -1", test_policy(), "1")->sql,
            rewrite("SELECT * FROM orders WHERE id = -1", test_policy(), "1").sql);
  EXPECT_EQ(cache.rewrite("SELECT * FROM orders WHERE id = 12345678901", test_policy(), "1")->sql,
            "SELECT * FROM public.orders WHERE id = 12345678901 AND orders.tenant_id = '1'");
}

}  // namespace
}  // namespace rowguard::sqlrewrite

// The parse pool's path (proxy/net/connection.cc): a long text the worker's cache does not hold
// is rewritten elsewhere and adopted; would_hit tells the two apart without counting or rewriting.
namespace rowguard::sqlrewrite {
namespace {

TEST(RewriteCacheAdopt, WouldHitOnlyWhatIsServedWithoutARewrite) {
  RewriteCache cache(100);
  const std::string sql = "SELECT id FROM orders WHERE id = 7";
  EXPECT_FALSE(cache.would_hit(sql, test_policy(), "1"));
  const RewriteResult fresh = rewrite(sql, test_policy(), "1");
  cache.adopt(sql, test_policy(), "1", fresh);
  EXPECT_TRUE(cache.would_hit(sql, test_policy(), "1"));
  EXPECT_FALSE(cache.would_hit(sql, test_policy(), "2")) << "an adopted result is one tenant's";
  EXPECT_EQ(cache.hits(), 0u);
  EXPECT_EQ(cache.misses(), 0u);
  EXPECT_EQ(cache.rewrite(sql, test_policy(), "1")->sql, fresh.sql);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.rewrite(sql, test_policy(), "2")->sql, rewrite(sql, test_policy(), "2").sql);
}

TEST(RewriteCacheAdopt, WouldHitATemplateAndAConstantTemplate) {
  RewriteCache cache(100);
  const std::string sql = "SELECT id FROM orders WHERE id = 7";
  (void)cache.rewrite(sql, test_policy(), "1");
  EXPECT_TRUE(cache.would_hit(sql, test_policy(), "2")) << "a template serves every tenant";
  EXPECT_TRUE(cache.would_hit("SELECT id FROM orders WHERE id = 8", test_policy(), "3"))
      << "a constant template serves other literals";
  EXPECT_FALSE(cache.would_hit("SELECT id FROM customers WHERE id = 8", test_policy(), "1"));
}

}  // namespace
}  // namespace rowguard::sqlrewrite
