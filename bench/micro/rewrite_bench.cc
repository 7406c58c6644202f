// Micro benchmarks of the statement path, one row per statement shape:
//   bare/<shape>      libpg_query parse + deparse through sqlrewrite::parse_sql / deparse_sql
//                     (what any AST-rewriting proxy pays at least; no walk, no edit)
//   uncached/<shape>  sqlrewrite::rewrite(): parse + policy walk + edit + deparse
//   cached/<shape>    RewriteCache::rewrite() on a hit: what a repeated statement costs a worker
//                     (a lookup of the text's template plus the splice of the tenant literal)
//   cached_tenants/<shape>  the same hit, the session tenant changing on every call among 4
//                     tenants: one template entry serves them all
//   miss/<shape>      RewriteCache::rewrite() on a miss: the rewrite with a sentinel tenant, the
//                     template cut, the splice (compare with uncached/); for a text with
//                     literals, the constant template's rewrite plus the check rewrite of its
//                     first use
//   constant/<shape>  RewriteCache::rewrite() of a text never seen, whose shape (the text with
//                     other literals) was: a constant template hit (simple protocol traffic)
//
// The policy is examples/rowguard.toml's tables (orders and customers tenant-scoped by tenant_id,
// countries global). The statements are not run against a database; the join and report shapes
// assume two columns that examples/schema.sql does not have (customers.country_code,
// orders.created_at): the rewriter does not look at columns, so this changes nothing measured.
//
// Every shape is rewritten once before timing and must be *allowed* (and must actually gain a
// tenant predicate): a denied statement is a quick error string, and would look fast.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"
#include "sqlrewrite/literal_scan.h"
#include "sqlrewrite/pg_query_api.h"
#include "sqlrewrite/rewrite_cache.h"
#include "sqlrewrite/rewriter.h"
#include "tests/support/tenant_keys_schema.h"

namespace {

using rowguard::policy::PolicyPtr;
namespace rw = rowguard::sqlrewrite;

constexpr const char* kPolicy = R"(
[proxy]
listen = "127.0.0.1:6432"
upstream = "127.0.0.1:5432"
upstream_user = "app"
upstream_password = "secret"

[tenancy]
default_column = "tenant_id"
unknown_tables = "deny"

[[tenants]]
user = "t1"
password = "pw1"
tenant = "1"

[tables."public.orders"]
column = "tenant_id"

[tables."public.customers"]

[tables."public.countries"]
global = true
)";

const PolicyPtr& policy() {
  // With a schema snapshot that knows the tables' (tenant_id, id) keys, as a running rowguard has
  // one: without it every tenant write is refused (sqlrewrite/key_check.h).
  static const PolicyPtr p =
      rowguard::unit_test::with_tenant_keys(rowguard::policy::parse_policy(kPolicy, "bench-policy.toml"));
  return p;
}

constexpr std::string_view kTenant = "1";

struct Shape {
  const char* name;
  std::string sql;
};

std::string insert_10_rows() {
  std::string sql = "INSERT INTO orders (id, customer_id, amount, status) VALUES ";
  for (int i = 0; i < 10; ++i) {
    if (i) sql += ", ";
    sql += "(" + std::to_string(1001 + i) + ", " + std::to_string(101 + i % 3) + ", " +
           std::to_string(10 + i) + ".50, 'new')";
  }
  return sql;
}

const std::vector<Shape>& shapes() {
  static const std::vector<Shape> kShapes = {
      {"point_select", "SELECT * FROM orders WHERE id = 42"},
      {"join3",
       "SELECT o.id, o.amount, o.status, c.name AS customer, co.name AS country "
       "FROM orders o "
       "JOIN customers c ON c.id = o.customer_id "
       "JOIN countries co ON co.code = c.country_code "
       "WHERE o.status = 'paid' AND o.amount > 100 "
       "ORDER BY o.amount DESC LIMIT 20"},
      {"update",
       "UPDATE orders SET status = 'shipped', amount = amount + 1.00 "
       "WHERE id = 42 AND status = 'paid'"},
      {"insert_10_rows", insert_10_rows()},
      {"report_30_lines",
       R"(WITH monthly AS (
  SELECT c.id AS customer_id,
         c.name AS customer,
         date_trunc('month', o.created_at) AS month,
         sum(o.amount) AS revenue,
         count(*) AS n_orders
  FROM orders o
  JOIN customers c ON c.id = o.customer_id
  WHERE o.status IN ('paid', 'shipped')
  GROUP BY c.id, c.name, date_trunc('month', o.created_at)
),
ranked AS (
  SELECT m.*,
         row_number() OVER (PARTITION BY m.month ORDER BY m.revenue DESC) AS rank_in_month,
         sum(m.revenue) OVER (PARTITION BY m.customer_id ORDER BY m.month) AS running_revenue
  FROM monthly m
)
SELECT r.month,
       r.customer,
       coalesce(co.name, 'unknown') AS country,
       r.revenue,
       r.n_orders,
       r.running_revenue,
       r.rank_in_month
FROM ranked r
JOIN customers c2 ON c2.id = r.customer_id
LEFT JOIN countries co ON co.code = c2.country_code
WHERE r.rank_in_month <= 10
  AND r.revenue > (SELECT avg(o2.amount) FROM orders o2 WHERE o2.status = 'paid')
ORDER BY r.month DESC, r.rank_in_month
LIMIT 100)"},
  };
  return kShapes;
}

// The setup check: the statement must parse, deparse, be allowed, and carry the tenant
// predicate / column afterwards. Returns an error message, or "" when fine.
std::string check_shape(const Shape& s) {
  auto parsed = rw::parse_sql(s.sql);
  if (!parsed.ok) return std::string("does not parse: ") + parsed.error;
  auto dep = rw::deparse_sql(parsed.tree);
  if (!dep.ok) return std::string("does not deparse: ") + dep.error;
  auto r = rw::rewrite(s.sql, *policy(), kTenant);
  if (!r.allowed) return "rewrite DENIED: " + r.reason;
  if (r.sql.find("tenant_id") == std::string::npos) {
    return "rewrite allowed but no tenant_id in the result: " + r.sql;
  }
  if (r.sql == dep.sql) return "rewrite did not change the statement: " + r.sql;
  rw::RewriteCache cache;
  (void)cache.rewrite(s.sql, *policy(), kTenant);
  const rw::RewriteHandle c2 = cache.rewrite(s.sql, *policy(), kTenant);
  if (!c2->allowed || c2->sql != r.sql || cache.hits() != 1) {
    return "RewriteCache did not return the cached rewrite on the second call";
  }
  // Another tenant is served from the same template, spliced exactly as a fresh rewrite.
  const std::string other_sql = rw::rewrite(s.sql, *policy(), "o'brien").sql;
  if (cache.rewrite(s.sql, *policy(), "o'brien")->sql != other_sql || cache.misses() != 1) {
    return "RewriteCache's template for another tenant differs from a fresh rewrite";
  }
  return "";
}

bool checked(benchmark::State& state, const Shape& s) {
  std::string err = check_shape(s);
  if (!err.empty()) {
    state.SkipWithError((std::string(s.name) + ": " + err).c_str());
    return false;
  }
  return true;
}

void set_common(benchmark::State& state, const Shape& s, size_t out_bytes) {
  state.SetItemsProcessed(state.iterations());  // items/s = statements per second
  state.counters["sql_bytes"] = static_cast<double>(s.sql.size());
  state.counters["out_bytes"] = static_cast<double>(out_bytes);
}

void BM_bare_parse_deparse(benchmark::State& state, const Shape* s) {
  if (!checked(state, *s)) return;
  size_t out = 0;
  for (auto _ : state) {
    auto parsed = rw::parse_sql(s->sql);
    auto dep = rw::deparse_sql(parsed.tree);
    out = dep.sql.size();
    benchmark::DoNotOptimize(dep.sql.data());
  }
  state.SetLabel("libpg_query parse+deparse (parse_sql/deparse_sql)");
  set_common(state, *s, out);
}

void BM_uncached_rewrite(benchmark::State& state, const Shape* s) {
  if (!checked(state, *s)) return;
  size_t out = 0;
  for (auto _ : state) {
    auto r = rw::rewrite(s->sql, *policy(), kTenant);
    if (!r.allowed) {
      state.SkipWithError("rewrite denied inside the timed loop");
      break;
    }
    out = r.sql.size();
    benchmark::DoNotOptimize(r.sql.data());
  }
  state.SetLabel("rewrite(): parse+walk+deparse");
  set_common(state, *s, out);
}

void BM_cached_rewrite(benchmark::State& state, const Shape* s) {
  if (!checked(state, *s)) return;
  rw::RewriteCache cache;
  size_t out = cache.rewrite(s->sql, *policy(), kTenant)->sql.size();  // the one miss
  // The proxy hands the cache a string_view into its receive buffer; so do we.
  std::string_view sql = s->sql;
  for (auto _ : state) {
    const rw::RewriteHandle r = cache.rewrite(sql, *policy(), kTenant);
    benchmark::DoNotOptimize(r.get());
  }
  if (cache.misses() != 1) state.SkipWithError("cache missed inside the timed loop");
  state.SetLabel("RewriteCache hit");
  set_common(state, *s, out);
  state.counters["hit_ratio"] =
      static_cast<double>(cache.hits()) / static_cast<double>(cache.hits() + cache.misses());
}

// One template, four tenants: every call is a hit whatever the tenant.
void BM_cached_rewrite_tenants(benchmark::State& state, const Shape* s) {
  if (!checked(state, *s)) return;
  rw::RewriteCache cache;
  const std::string_view tenants[] = {"1", "2", "3", "o'brien"};
  size_t out = cache.rewrite(s->sql, *policy(), tenants[0])->sql.size();
  std::string_view sql = s->sql;
  size_t i = 0;
  for (auto _ : state) {
    const rw::RewriteHandle r = cache.rewrite(sql, *policy(), tenants[i++ & 3]);
    benchmark::DoNotOptimize(r.get());
  }
  // One template (plus, for a text with literals, the exact-text entry a repeated text gets).
  if (cache.misses() != 1 || cache.size() > 2) state.SkipWithError("the template was not shared by the tenants");
  state.SetLabel("RewriteCache hit, 4 tenants, 1 entry");
  set_common(state, *s, out);
}

// A miss: a fresh cache each time (constructing an empty cache costs next to nothing).
void BM_miss(benchmark::State& state, const Shape* s) {
  if (!checked(state, *s)) return;
  size_t out = 0;
  for (auto _ : state) {
    rw::RewriteCache cache;
    const rw::RewriteHandle r = cache.rewrite(s->sql, *policy(), kTenant);
    out = r->sql.size();
    benchmark::DoNotOptimize(r->sql.data());
    if (cache.misses() != 1 || cache.per_tenant_entries() != 0) {
      state.SkipWithError("the shape was not cached as a template");
      break;
    }
  }
  state.SetLabel("RewriteCache miss: sentinel rewrite + template + splice (+ a check rewrite when a constant template)");
  set_common(state, *s, out);
}

// Texts of the same shape with other literals (integers, numerics, strings changed), as a
// client using the simple protocol with inlined literals sends them.
std::vector<std::string> literal_variants(const std::string& sql, int n) {
  std::vector<rw::Literal> lits;
  std::vector<std::string> out;
  if (!rw::scan_literals(sql, lits)) return out;
  for (int k = 0; k < n; ++k) {
    std::string v;
    rw::replace_literals(v, sql, lits, [&](std::string& o, size_t, const rw::Literal& l, std::string_view token) {
      if (l.kind == rw::Literal::Kind::kInteger) o += std::to_string(std::stoll(std::string(token)) + k + 1);
      else if (l.kind == rw::Literal::Kind::kNumeric) o.append(std::to_string(k + 1)).append(token);
      else o.append("'v").append(std::to_string(k)).append(token.substr(1));
    });
    out.push_back(std::move(v));
  }
  return out;
}

// A new text of a cached shape: the constant template's lookup (scan + normalized key) and the
// splice of the text's own literals; every call sees another text (256 rotating).
void BM_constant_hit(benchmark::State& state, const Shape* s) {
  if (!checked(state, *s)) return;
  const std::vector<std::string> texts = literal_variants(s->sql, 256);
  if (texts.empty()) {
    state.SkipWithError("the shape has literals literal_scan does not model");
    return;
  }
  rw::RewriteCache cache;
  cache.set_exact_memo(false);  // the 256 texts repeat: measure the template path, not exact hits
  size_t out = cache.rewrite(texts[0], *policy(), kTenant)->sql.size();
  size_t i = 1;
  for (auto _ : state) {
    const rw::RewriteHandle r = cache.rewrite(texts[i++ & 255], *policy(), kTenant);
    benchmark::DoNotOptimize(r.get());
  }
  if (cache.misses() != 1 || cache.constant_hits() == 0) {
    state.SkipWithError("the shape was not served by one constant template");
  }
  state.SetLabel("RewriteCache hit of a new text of a cached shape (literals spliced)");
  set_common(state, *s, out);
}

// The hit path with a realistically full cache: 10,000 entries (the default size), so the hash
// table is large and the LRU splice touches cold list nodes. Filled once per shape (the
// benchmark function runs several times while the library picks an iteration count).
rw::RewriteCache& full_cache(const Shape& s) {
  static std::map<const Shape*, std::unique_ptr<rw::RewriteCache>> caches;
  auto& c = caches[&s];
  if (!c) {
    c = std::make_unique<rw::RewriteCache>();
    for (int i = 0; i < 9999; ++i) {
      // Exponent constants: literal_scan gives up on them, so each text is its own entry.
      c->rewrite("SELECT * FROM orders WHERE id = " + std::to_string(100000 + i) + "e0", *policy(), kTenant);
    }
    c->rewrite(s.sql, *policy(), kTenant);
  }
  return *c;
}

void BM_cached_rewrite_full(benchmark::State& state, const Shape* s) {
  if (!checked(state, *s)) return;
  rw::RewriteCache& cache = full_cache(*s);
  size_t misses = cache.misses();
  std::string_view sql = s->sql;
  size_t out = cache.rewrite(sql, *policy(), kTenant)->sql.size();
  for (auto _ : state) {
    const rw::RewriteHandle r = cache.rewrite(sql, *policy(), kTenant);
    benchmark::DoNotOptimize(r.get());
  }
  if (cache.misses() != misses) state.SkipWithError("cache missed inside the timed loop");
  state.SetLabel("RewriteCache hit, 10k entries");
  set_common(state, *s, out);
  state.counters["entries"] = static_cast<double>(cache.size());
}

// Lists whose length varies with the data (Django prefetch_related, Rails where(id: [...]), bulk
// inserts): 256 texts, list lengths N .. N+15 (16 lengths) with new values in every text,
// through a cache of 8 entries -- so a cache holding one entry per length misses on every text
// (the 16 lengths cycle through 8 entries), and one whose lists share an entry hits on every one.
std::string in_list_text(int n, int seed) {
  std::string s = "SELECT id, amount FROM orders WHERE id IN (";
  for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(1000 + seed * 7 + i * 13);
  return s + ")";
}

std::string insert_rows_text(int n, int seed) {
  std::string s = "INSERT INTO orders (id, customer_id, amount, status) VALUES ";
  for (int i = 0; i < n; ++i) {
    s += (i ? ", (" : "(") + std::to_string(100000 + seed * 1000 + i) + ", " + std::to_string(101 + (seed + i) % 7) +
         ", " + std::to_string(10 + i) + ".50, 's" + std::to_string(seed % 5) + "')";
  }
  return s;
}

void BM_lists(benchmark::State& state, std::string (*make)(int, int), int n) {
  std::vector<std::string> texts;
  for (int i = 0; i < 256; ++i) texts.push_back(make(n + i % 16, i));
  const rw::RewriteResult check = rw::rewrite(texts[0], *policy(), kTenant);
  if (!check.allowed || check.sql.find("tenant_id") == std::string::npos) {
    state.SkipWithError(("the list shape is not allowed: " + check.reason).c_str());
    return;
  }
  rw::RewriteCache cache(8);
  cache.set_exact_memo(false);
  size_t i = 0;
  size_t bytes = 0;
  for (auto _ : state) {
    const rw::RewriteHandle r = cache.rewrite(texts[i++ & 255], *policy(), kTenant);
    bytes += r->sql.size();
    benchmark::DoNotOptimize(r.get());
  }
  // One entry for every length: only the first text misses.
  if (cache.misses() > 1) state.SkipWithError("lists of other lengths were not served by one folded entry");
  state.SetItemsProcessed(state.iterations());
  state.counters["hit_ratio"] =
      static_cast<double>(cache.hits()) / static_cast<double>(std::max<size_t>(1, cache.hits() + cache.misses()));
  state.counters["sql_bytes"] = static_cast<double>(texts[0].size());
  state.SetLabel("RewriteCache, 16 list lengths, 8 entries");
}

// ROWGUARD_BENCH_ITERATIONS=N fixes the iteration count (instead of timing until min_time), so
// that an instruction count under valgrind --tool=callgrind can be divided by N (see README).
void configure(benchmark::internal::Benchmark* b) {
  b->Unit(benchmark::kMicrosecond);
  if (const char* n = std::getenv("ROWGUARD_BENCH_ITERATIONS"); n != nullptr && std::atol(n) > 0) {
    b->Iterations(std::atol(n));
  }
}

int register_all() {
  for (const auto& s : shapes()) {
    const Shape* p = &s;
    configure(benchmark::RegisterBenchmark((std::string("bare/") + s.name).c_str(),
                                           BM_bare_parse_deparse, p));
    configure(benchmark::RegisterBenchmark((std::string("uncached/") + s.name).c_str(),
                                           BM_uncached_rewrite, p));
    configure(benchmark::RegisterBenchmark((std::string("cached/") + s.name).c_str(),
                                           BM_cached_rewrite, p));
    configure(benchmark::RegisterBenchmark((std::string("cached_tenants/") + s.name).c_str(),
                                           BM_cached_rewrite_tenants, p));
    configure(benchmark::RegisterBenchmark((std::string("miss/") + s.name).c_str(), BM_miss, p));
    configure(benchmark::RegisterBenchmark((std::string("constant/") + s.name).c_str(),
                                           BM_constant_hit, p));
  }
  for (const auto& s : shapes()) {
    if (std::string_view(s.name) == "point_select" || std::string_view(s.name) == "report_30_lines") {
      configure(benchmark::RegisterBenchmark((std::string("cached_10k/") + s.name).c_str(),
                                             BM_cached_rewrite_full, &s));
    }
  }
  for (int n : {2, 10, 100, 1000}) {
    configure(benchmark::RegisterBenchmark(("lists/in_list_" + std::to_string(n)).c_str(), BM_lists, &in_list_text, n));
  }
  for (int n : {2, 10, 100}) {
    configure(benchmark::RegisterBenchmark(("lists/insert_rows_" + std::to_string(n)).c_str(), BM_lists,
                                           &insert_rows_text, n));
  }
  return 0;
}

const int kRegistered = register_all();

}  // namespace
