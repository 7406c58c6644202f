// Metrics: per-thread shards summed at scrape, exposed as prometheus-cpp metric families.
#include "proxy/net/metrics.h"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <deque>
#include <limits>
#include <unordered_map>

namespace rowguard::net {

struct Metrics::TenantStats {
  std::atomic<uint64_t> allowed{0};
  std::atomic<uint64_t> denied{0};
  std::atomic<uint64_t> sum_us{0};
  std::array<std::atomic<uint64_t>, kTenantBucketsUs.size() + 1> buckets{};
};

namespace {
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
}  // namespace

struct Metrics::Shard {
  std::array<std::atomic<uint64_t>, kSlots> counters{};
  std::array<std::atomic<uint64_t>, kRewriteBucketsUs.size() + 1> rewrite{};
  std::array<std::atomic<uint64_t>, kUpstreamBucketsMs.size() + 1> upstream{};
  std::mutex mu;                    // guards the growth of tenants against a scrape
  std::deque<TenantStats> tenants;  // by Metrics' tenant index (references stay valid on growth)
  // The owning thread's only: tenant name -> its stats here, and the last one used.
  std::unordered_map<std::string, TenantStats*, StringHash, std::equal_to<>> by_name;
  std::string last_name;
  TenantStats* last = nullptr;
};

namespace {

std::atomic<uint64_t> g_generation{1};
// This thread's shard of each live Metrics (by generation; a destroyed Metrics' entry is never
// matched again). Newest first; a handful at most (tests create several).
thread_local std::vector<std::pair<uint64_t, Metrics::Shard*>> t_shards;
// The fast path: the shard used last by this thread (trivially initialised: no TLS wrapper call).
thread_local uint64_t t_generation = 0;
thread_local Metrics::Shard* t_shard = nullptr;
constexpr size_t kShardNameCache = 8192;  // per thread; beyond, a tenant is looked up under the lock

// Single writer per shard: a relaxed load and store (no locked instruction); scrapes read it.
inline void bump(std::atomic<uint64_t>& a, uint64_t n) {
  a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

template <size_t N, size_t M>
inline void observe(const std::array<uint64_t, N>& bounds, std::array<std::atomic<uint64_t>, M>& counts, uint64_t v) {
  size_t i = 0;
  while (i < bounds.size() && v > bounds[i]) ++i;
  bump(counts[i], 1);
}

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

ClientMetric value_metric(MetricType type, double v, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == MetricType::Counter) m.counter.value = v;
  else m.gauge.value = v;
  return m;
}

MetricFamily single(const char* name, const char* help, MetricType type, double v) {
  MetricFamily f = family(name, help, type);
  f.metric.push_back(value_metric(type, v));
  return f;
}

// counts: per bucket (not cumulative), the last one above every bound; bounds / divisor = seconds.
template <size_t N>
ClientMetric histogram(const std::array<uint64_t, N>& bounds, const std::vector<uint64_t>& counts, double sum_seconds,
                       double divisor, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds.size(); ++i) {
    cumulative += counts[i];
    m.histogram.bucket.push_back({cumulative, static_cast<double>(bounds[i]) / divisor});
  }
  cumulative += counts[bounds.size()];
  m.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = sum_seconds;
  return m;
}

template <size_t M>
void add_into(std::vector<uint64_t>& sum, const std::array<std::atomic<uint64_t>, M>& counts) {
  sum.resize(M);
  for (size_t i = 0; i < M; ++i) sum[i] += counts[i].load(std::memory_order_relaxed);
}

}  // namespace

void ShardedCounter::fetch_add(uint64_t n, std::memory_order) { bump(owner_.shard().counters[slot_], n); }

uint64_t ShardedCounter::load(std::memory_order) const {
  std::lock_guard lock(owner_.mu_);
  uint64_t total = 0;
  for (const auto& s : owner_.shards_) total += s->counters[slot_].load(std::memory_order_relaxed);
  return total;
}

Metrics::Metrics() : generation_(g_generation.fetch_add(1)) { tenant_names_.push_back("_other"); }

Metrics::~Metrics() = default;

Metrics::Shard& Metrics::shard() {
  if (t_generation == generation_) [[likely]] return *t_shard;
  return shard_slow();
}

Metrics::Shard& Metrics::shard_slow() {
  for (const auto& [generation, s] : t_shards) {
    if (generation == generation_) {
      t_generation = generation;
      t_shard = s;
      return *s;
    }
  }
  auto owned = std::make_unique<Shard>();
  Shard* s = owned.get();
  {
    std::lock_guard lock(mu_);
    shards_.push_back(std::move(owned));
  }
  t_shards.insert(t_shards.begin(), {generation_, s});
  if (t_shards.size() > 8) t_shards.pop_back();
  t_generation = generation_;
  t_shard = s;
  return *s;
}

size_t Metrics::tenant_index(std::string_view tenant) {
  std::lock_guard lock(mu_);
  if (auto it = tenant_ids_.find(tenant); it != tenant_ids_.end()) return it->second;
  if (tenant_names_.size() - 1 >= max_tenant_labels_) return 0;  // "_other"
  tenant_names_.emplace_back(tenant);
  tenant_ids_.emplace(std::string(tenant), tenant_names_.size() - 1);
  return tenant_names_.size() - 1;
}

Metrics::TenantStats& Metrics::tenant_stats(Shard& s, std::string_view tenant) {
  if (s.last != nullptr && s.last_name == tenant) return *s.last;
  TenantStats* stats = nullptr;
  if (auto it = s.by_name.find(tenant); it != s.by_name.end()) {
    stats = it->second;
  } else {
    size_t index = tenant_index(tenant);
    {
      std::lock_guard lock(s.mu);
      while (s.tenants.size() <= index) s.tenants.emplace_back();
      stats = &s.tenants[index];
    }
    if (s.by_name.size() < kShardNameCache) s.by_name.emplace(std::string(tenant), stats);
  }
  s.last_name.assign(tenant);
  s.last = stats;
  return *stats;
}

void Metrics::set_max_tenant_labels(size_t n) {
  std::lock_guard lock(mu_);
  max_tenant_labels_ = n;
}

void Metrics::observe_rewrite(uint64_t us) {
  Shard& s = shard();
  observe(kRewriteBucketsUs, s.rewrite, us);
  bump(s.counters[kRewriteSumUs], us);
}

void Metrics::observe_parse_pool(uint64_t us) {
  size_t i = 0;
  while (i < kParsePoolBucketsMs.size() && us / 1000 > kParsePoolBucketsMs[i]) ++i;
  parse_pool_ms[i].fetch_add(1, std::memory_order_relaxed);
  parse_pool_us_sum.fetch_add(us, std::memory_order_relaxed);
}

void Metrics::observe_upstream(uint64_t us, std::string_view tenant) {
  Shard& s = shard();
  observe(kUpstreamBucketsMs, s.upstream, us / 1000);
  bump(s.counters[kUpstreamSumUs], us);
  if (tenant.empty()) return;
  TenantStats& t = tenant_stats(s, tenant);
  observe(kTenantBucketsUs, t.buckets, us);
  bump(t.sum_us, us);
}

void Metrics::count_allowed(std::string_view tenant) {
  Shard& s = shard();
  bump(s.counters[kAllowed], 1);
  if (!tenant.empty()) bump(tenant_stats(s, tenant).allowed, 1);
}

void Metrics::count_denial(const std::string& reason, std::string_view tenant) {
  Shard& s = shard();
  bump(s.counters[kDenied], 1);
  if (!tenant.empty()) bump(tenant_stats(s, tenant).denied, 1);
  std::string rule = denial_rule(reason);
  std::lock_guard lock(mu_);
  if (denials_.size() < 200 || denials_.contains(rule)) ++denials_[rule];
}

std::map<std::string, uint64_t> Metrics::denials_by_rule() const {
  std::lock_guard lock(mu_);
  return denials_;
}

uint64_t Metrics::rewrite_checks() const {
  std::lock_guard lock(mu_);
  uint64_t n = 0;
  for (const auto& s : shards_) {
    for (const auto& b : s->rewrite) n += b.load(std::memory_order_relaxed);
  }
  return n;
}

uint64_t Metrics::upstream_round_trips() const {
  std::lock_guard lock(mu_);
  uint64_t n = 0;
  for (const auto& s : shards_) {
    for (const auto& b : s->upstream) n += b.load(std::memory_order_relaxed);
  }
  return n;
}

uint64_t Metrics::rewrite_us_total() const {
  std::lock_guard lock(mu_);
  uint64_t n = 0;
  for (const auto& s : shards_) n += s->counters[kRewriteSumUs].load(std::memory_order_relaxed);
  return n;
}

uint64_t Metrics::upstream_us_total() const {
  std::lock_guard lock(mu_);
  uint64_t n = 0;
  for (const auto& s : shards_) n += s->counters[kUpstreamSumUs].load(std::memory_order_relaxed);
  return n;
}

std::string denial_rule(const std::string& reason) {
  auto at = reason.rfind("rule: ");
  if (at == std::string::npos) {
    // Reasons without an explicit rule: use their first words (stable, no statement text).
    std::string r = reason.substr(0, reason.find_first_of("\"'(:", 10));
    if (r.starts_with("rowguard: ")) r = r.substr(10);
    while (!r.empty() && r.back() == ' ') r.pop_back();
    return r.empty() ? "other" : r;
  }
  std::string r = reason.substr(at + 6);
  r = r.substr(0, r.find(')'));
  return r;
}

void PoolSample::add(const PoolSample& o) {
  checkouts += o.checkouts;
  wait_timeouts += o.wait_timeouts;
  wait_failures += o.wait_failures;
  opened += o.opened;
  for (size_t i = 0; i < closed.size(); ++i) closed[i] += o.closed[i];
  wait_buckets.resize(kWaitBucketsUs.size() + 1);
  for (size_t i = 0; i < wait_buckets.size() && i < o.wait_buckets.size(); ++i) wait_buckets[i] += o.wait_buckets[i];
  wait_sum_us += o.wait_sum_us;
  clients_active += o.clients_active;
  clients_waiting += o.clients_waiting;
  servers_active += o.servers_active;
  servers_idle += o.servers_idle;
  servers_opening += o.servers_opening;
  for (size_t i = 0; i < pinned.size(); ++i) pinned[i] += o.pinned[i];
  longest_wait_us = std::max(longest_wait_us, o.longest_wait_us);
}

namespace {

// The rowguard_pool_* families (transaction pooling), one labelled series per upstream database.
void pool_families(const std::vector<PoolSample>& pools, std::vector<MetricFamily>& out) {
  const auto counter = MetricType::Counter;
  const auto gauge = MetricType::Gauge;
  auto d = [](auto v) { return static_cast<double>(v); };
  const ClientMetric::Label mode{"mode", "transaction"};
  MetricFamily wait = family("rowguard_pool_wait_seconds",
                             "Time a client waited for a server connection (0: an idle one was there), ending in a "
                             "checkout, a wait timeout (53300) or a failed open.",
                             MetricType::Histogram);
  MetricFamily checkouts = family("rowguard_pool_checkouts_total", "Server connections handed to a client.", counter);
  MetricFamily timeouts = family("rowguard_pool_wait_timeouts_total",
                                 "Clients that waited [pool] query_wait_timeout for a server connection (53300).", counter);
  MetricFamily failures = family("rowguard_pool_wait_failures_total",
                                 "Waiting clients given the error of a failed server connection open.", counter);
  MetricFamily active = family("rowguard_pool_clients_active", "Clients holding a server connection now.", gauge);
  MetricFamily waiting = family("rowguard_pool_clients_waiting", "Clients waiting for a server connection now.", gauge);
  MetricFamily longest = family("rowguard_pool_longest_wait_seconds",
                                "How long the longest-waiting client has waited so far (0: none waits).", gauge);
  MetricFamily pinned = family("rowguard_pool_clients_pinned",
                               "Clients pinned to their server connection now, by the state that pins them.", gauge);
  MetricFamily servers = family("rowguard_pool_servers", "Server connections now, by state.", gauge);
  MetricFamily opened = family("rowguard_pool_server_connections_opened_total", "Server connections opened.", counter);
  MetricFamily closed = family("rowguard_pool_server_connections_closed_total", "Server connections closed, by reason.",
                               counter);
  for (const PoolSample& p : pools) {
    const ClientMetric::Label db{"database", p.database};
    wait.metric.push_back(histogram(PoolSample::kWaitBucketsUs, p.wait_buckets, d(p.wait_sum_us) / 1e6, 1e6, {db, mode}));
    checkouts.metric.push_back(value_metric(counter, d(p.checkouts), {db, mode}));
    timeouts.metric.push_back(value_metric(counter, d(p.wait_timeouts), {db, mode}));
    failures.metric.push_back(value_metric(counter, d(p.wait_failures), {db, mode}));
    active.metric.push_back(value_metric(gauge, d(p.clients_active), {db, mode}));
    waiting.metric.push_back(value_metric(gauge, d(p.clients_waiting), {db, mode}));
    longest.metric.push_back(value_metric(gauge, d(p.longest_wait_us) / 1e6, {db, mode}));
    for (size_t i = 0; i < PoolSample::kPinReasons.size(); ++i) {
      pinned.metric.push_back(value_metric(gauge, d(p.pinned[i]), {db, mode, {"reason", PoolSample::kPinReasons[i]}}));
    }
    servers.metric.push_back(value_metric(gauge, d(p.servers_active), {db, mode, {"state", "active"}}));
    servers.metric.push_back(value_metric(gauge, d(p.servers_idle), {db, mode, {"state", "idle"}}));
    servers.metric.push_back(value_metric(gauge, d(p.servers_opening), {db, mode, {"state", "opening"}}));
    opened.metric.push_back(value_metric(counter, d(p.opened), {db, mode}));
    for (size_t i = 0; i < PoolSample::kCloseReasons.size(); ++i) {
      closed.metric.push_back(value_metric(counter, d(p.closed[i]), {db, mode, {"reason", PoolSample::kCloseReasons[i]}}));
    }
  }
  for (MetricFamily* f : {&wait, &checkouts, &timeouts, &failures, &active, &waiting, &longest, &pinned, &servers, &opened,
                          &closed}) {
    out.push_back(std::move(*f));
  }
}

}  // namespace

std::vector<MetricFamily> Metrics::families(uint64_t cache_hits, uint64_t cache_misses, uint64_t cache_entries) const {
  // One pass over the shards under the lock.
  std::array<uint64_t, kSlots> sums{};
  std::vector<uint64_t> rewrite, upstream;
  struct TenantSum {
    uint64_t allowed = 0, denied = 0, sum_us = 0;
    std::vector<uint64_t> buckets;
  };
  std::vector<TenantSum> tenants;
  std::vector<std::string> tenant_names;
  std::map<std::string, uint64_t> denials;
  {
    std::lock_guard lock(mu_);
    tenant_names = tenant_names_;
    denials = denials_;
    tenants.resize(tenant_names.size());
    for (const auto& s : shards_) {
      for (size_t i = 0; i < kSlots; ++i) sums[i] += s->counters[i].load(std::memory_order_relaxed);
      add_into(rewrite, s->rewrite);
      add_into(upstream, s->upstream);
      std::lock_guard shard_lock(s->mu);
      for (size_t t = 0; t < s->tenants.size() && t < tenants.size(); ++t) {
        const TenantStats& ts = s->tenants[t];
        tenants[t].allowed += ts.allowed.load(std::memory_order_relaxed);
        tenants[t].denied += ts.denied.load(std::memory_order_relaxed);
        tenants[t].sum_us += ts.sum_us.load(std::memory_order_relaxed);
        add_into(tenants[t].buckets, ts.buckets);
      }
    }
  }
  rewrite.resize(kRewriteBucketsUs.size() + 1);
  upstream.resize(kUpstreamBucketsMs.size() + 1);
  std::vector<uint64_t> parse_pool;
  add_into(parse_pool, parse_pool_ms);

  std::vector<MetricFamily> out;
  const auto counter = MetricType::Counter;
  const auto gauge = MetricType::Gauge;
  auto d = [](auto v) { return static_cast<double>(v); };
  out.push_back(single("rowguard_connections_total", "Client connections accepted.", counter, d(connections_total.load())));
  {
    MetricFamily f = family("rowguard_connections", "Client connections open now, by kind.", gauge);
    f.metric.push_back(value_metric(gauge, d(connections_tenant.load()), {{"kind", "tenant"}}));
    f.metric.push_back(value_metric(gauge, d(connections_bypass.load()), {{"kind", "bypass"}}));
    out.push_back(std::move(f));
  }
  out.push_back(single("rowguard_connections_active", "Client connections open now (any state).", gauge,
                       d(connections_active.load())));
  out.push_back(single("rowguard_auth_failures_total", "Failed client authentications.", counter, d(auth_failures.load())));
  out.push_back(single("rowguard_upstream_failures_total", "Failed upstream logins.", counter, d(upstream_failures.load())));
  out.push_back(single("rowguard_listener_disconnects_total",
                       "LISTEN listener connections lost (notifications sent until reconnected are lost).", counter,
                       d(listener_disconnects.load())));
  out.push_back(single("rowguard_notifications_dropped_total",
                       "Notifications dropped: a client's pending notifications were over their bound.", counter,
                       d(notifications_dropped.load())));
  {
    MetricFamily f = family("rowguard_statements_total", "Tenant messages checked, by decision.", counter);
    f.metric.push_back(value_metric(counter, d(sums[kAllowed]), {{"decision", "allowed"}}));
    f.metric.push_back(value_metric(counter, d(sums[kDenied]), {{"decision", "denied"}}));
    out.push_back(std::move(f));
  }
  {
    MetricFamily f = family("rowguard_denials_total", "Denials by policy rule.", counter);
    for (const auto& [rule, n] : denials) f.metric.push_back(value_metric(counter, d(n), {{"rule", rule}}));
    out.push_back(std::move(f));
  }
  out.push_back(single("rowguard_rewrite_cache_hits_total", "Rewrite cache hits.", counter, d(cache_hits)));
  out.push_back(single("rowguard_rewrite_cache_misses_total", "Rewrite cache misses (a parse and rewrite).", counter,
                       d(cache_misses)));
  out.push_back(single("rowguard_rewrite_cache_entries", "Rewrite cache entries (all workers).", gauge, d(cache_entries)));
  out.push_back(single("rowguard_client_bytes_received_total", "Bytes received from clients.", counter, d(sums[kBytesIn])));
  out.push_back(single("rowguard_client_bytes_sent_total", "Bytes sent to clients.", counter, d(sums[kBytesOut])));
  {
    MetricFamily f = family("rowguard_rewrite_seconds", "Time to check one tenant message (rewrite included).",
                            MetricType::Histogram);
    f.metric.push_back(histogram(kRewriteBucketsUs, rewrite, d(sums[kRewriteSumUs]) / 1e6, 1e6));
    out.push_back(std::move(f));
  }
  {
    MetricFamily f = family("rowguard_upstream_latency_seconds",
                            "Time from forwarding a tenant batch to the server's first answer byte.", MetricType::Histogram);
    f.metric.push_back(histogram(kUpstreamBucketsMs, upstream, d(sums[kUpstreamSumUs]) / 1e6, 1e3));
    out.push_back(std::move(f));
  }
  out.push_back(single("rowguard_parse_pool_statements_total", "Long statements rewritten on the parse pool.", counter,
                       d(parse_offloaded.load())));
  out.push_back(single("rowguard_parse_pool_depth", "Parse pool jobs queued or running now.", gauge, d(parse_pool_depth.load())));
  {
    MetricFamily f = family("rowguard_parse_pool_seconds",
                            "Time from handing a statement to the parse pool to its rewrite (queue wait included).",
                            MetricType::Histogram);
    f.metric.push_back(histogram(kParsePoolBucketsMs, parse_pool, d(parse_pool_us_sum.load()) / 1e6, 1e3));
    out.push_back(std::move(f));
  }
  {
    MetricFamily count = family("rowguard_tenant_statements_total",
                                "Tenant statements checked, by tenant and decision (tenants beyond [metrics] "
                                "max_tenant_labels counted as _other).",
                                counter);
    MetricFamily latency = family("rowguard_tenant_statement_seconds",
                                  "Time from forwarding a tenant batch to the server's first answer byte, by tenant.",
                                  MetricType::Histogram);
    for (size_t t = 0; t < tenants.size(); ++t) {
      TenantSum& ts = tenants[t];
      ts.buckets.resize(kTenantBucketsUs.size() + 1);
      uint64_t observed = 0;
      for (uint64_t n : ts.buckets) observed += n;
      if (t == 0 && ts.allowed + ts.denied + observed == 0) continue;  // no "_other" until a tenant overflowed
      count.metric.push_back(value_metric(counter, d(ts.allowed), {{"tenant", tenant_names[t]}, {"result", "allowed"}}));
      count.metric.push_back(value_metric(counter, d(ts.denied), {{"tenant", tenant_names[t]}, {"result", "denied"}}));
      latency.metric.push_back(
          histogram(kTenantBucketsUs, ts.buckets, d(ts.sum_us) / 1e6, 1e6, {{"tenant", tenant_names[t]}}));
    }
    out.push_back(std::move(count));
    out.push_back(std::move(latency));
  }
  if (pool_samples) pool_families(pool_samples(), out);
  return out;
}

std::vector<MetricFamily> Metrics::Collect() const {
  std::array<uint64_t, 3> cache{};
  if (cache_totals) cache = cache_totals();
  return families(cache[0], cache[1], cache[2]);
}

std::string Metrics::render(uint64_t cache_hits, uint64_t cache_misses, uint64_t cache_entries) const {
  return prometheus::TextSerializer().Serialize(families(cache_hits, cache_misses, cache_entries));
}

}  // namespace rowguard::net
