#pragma once
// Process-wide metrics for the Prometheus endpoint and the admin console, exposed through
// prometheus-cpp's core library (families and its text serializer; Metrics is a
// prometheus::Collectable). What moves with every statement or read (statements, bytes, the
// rewrite and upstream histograms, the per-tenant families) is counted per thread — each
// thread writes only its own shard, with a plain relaxed load and store, no locked
// read-modify-write on a cache line shared by the workers — and summed at scrape. Per-connection
// counters stay relaxed atomics; denials by rule (rare) go through a mutex.
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace rowguard::net {

struct Metrics;

// Transaction pooling (pool_runtime.h): what one upstream database's pools show at a scrape, the
// sum over the workers' pools (each written only by its worker's thread: the per-thread shards of
// the rowguard_pool_* families).
struct PoolSample {
  // Time a client waited for a server connection, microseconds; 0: an idle one was there.
  static constexpr std::array<uint64_t, 13> kWaitBucketsUs = {0,       1000,    5000,     10000,    50000,    100000,   500000,
                                                              1000000, 5000000, 10000000, 30000000, 60000000, 120000000};
  static constexpr std::array<const char*, 6> kCloseReasons = {"idle_timeout", "lifetime", "cancel",
                                                               "error",        "dirty",    "resize"};
  static constexpr std::array<const char*, 6> kPinReasons = {"prepared_statement", "listen",   "advisory_lock",
                                                             "cursor",             "sequence", "other"};
  std::string database;
  uint64_t checkouts = 0, wait_timeouts = 0, wait_failures = 0, opened = 0;
  std::array<uint64_t, kCloseReasons.size()> closed{};
  std::vector<uint64_t> wait_buckets = std::vector<uint64_t>(kWaitBucketsUs.size() + 1);  // not cumulative
  uint64_t wait_sum_us = 0;
  uint64_t clients_active = 0, clients_waiting = 0, servers_active = 0, servers_idle = 0, servers_opening = 0;
  std::array<uint64_t, kPinReasons.size()> pinned{};
  uint64_t longest_wait_us = 0;  // the max over the workers
  void add(const PoolSample& other);  // same database: sums (longest wait: max)
};

// A counter written by many threads, each into its own shard; load() sums the shards. Same call
// API as the std::atomic it replaces (fetch_add/load).
class ShardedCounter {
 public:
  ShardedCounter(Metrics& owner, size_t slot) : owner_(owner), slot_(slot) {}
  ShardedCounter(const ShardedCounter&) = delete;
  ShardedCounter& operator=(const ShardedCounter&) = delete;
  void fetch_add(uint64_t n, std::memory_order = std::memory_order_relaxed);
  uint64_t load(std::memory_order = std::memory_order_relaxed) const;

 private:
  Metrics& owner_;
  size_t slot_;
};

struct Metrics : prometheus::Collectable {
  Metrics();
  ~Metrics() override;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  std::atomic<uint64_t> connections_total{0};
  std::atomic<int64_t> connections_active{0};
  std::atomic<int64_t> connections_tenant{0};
  std::atomic<int64_t> connections_bypass{0};
  std::atomic<uint64_t> auth_failures{0};
  std::atomic<uint64_t> upstream_failures{0};
  // LISTEN in transaction pooling (listener.h): listener connections lost (notifications sent
  // until it was back are lost), and notifications a client could not hold (dropped).
  std::atomic<uint64_t> listener_disconnects{0};
  std::atomic<uint64_t> notifications_dropped{0};
  // Per-thread shards (slots of Shard::counters).
  enum Slot : size_t { kAllowed, kDenied, kBytesIn, kBytesOut, kRewriteSumUs, kUpstreamSumUs, kSlots };
  ShardedCounter statements_allowed{*this, kAllowed};
  ShardedCounter statements_denied{*this, kDenied};
  ShardedCounter bytes_from_clients{*this, kBytesIn};
  ShardedCounter bytes_to_clients{*this, kBytesOut};

  // Time to check one client message (rewrite included), microseconds, cumulative buckets.
  static constexpr std::array<uint64_t, 8> kRewriteBucketsUs = {1, 5, 10, 50, 100, 500, 1000, 10000};
  // Upstream round trip of a simple Query (forward to first byte of the answer), milliseconds.
  static constexpr std::array<uint64_t, 8> kUpstreamBucketsMs = {1, 2, 5, 10, 50, 100, 1000, 10000};
  // The same round trip per tenant (rowguard_tenant_statement_seconds), microseconds.
  static constexpr std::array<uint64_t, 14> kTenantBucketsUs = {500,    1000,   2500,    5000,    10000,   25000,   50000,
                                                                100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
  // Tenant label values beyond this many distinct tenants are counted under tenant="_other"
  // ([metrics] max_tenant_labels).
  static constexpr size_t kDefaultMaxTenantLabels = 1000;

  // The parse pool (parse_pool.h): statements rewritten there, jobs queued or running now, and
  // each job's time from hand-over to result (queue wait included), milliseconds.
  std::atomic<uint64_t> parse_offloaded{0};
  std::atomic<int64_t> parse_pool_depth{0};
  static constexpr std::array<uint64_t, 8> kParsePoolBucketsMs = {1, 5, 10, 50, 100, 500, 1000, 10000};
  std::array<std::atomic<uint64_t>, kParsePoolBucketsMs.size() + 1> parse_pool_ms{};
  std::atomic<uint64_t> parse_pool_us_sum{0};

  void observe_rewrite(uint64_t us);
  void observe_parse_pool(uint64_t us);
  // A tenant batch's round trip; with a tenant, also that tenant's histogram.
  void observe_upstream(uint64_t us, std::string_view tenant = {});
  // A tenant statement forwarded (allowed) or refused; with a tenant, also its per-tenant count.
  void count_allowed(std::string_view tenant = {});
  void count_denial(const std::string& reason, std::string_view tenant = {});
  std::map<std::string, uint64_t> denials_by_rule() const;
  void set_max_tenant_labels(size_t n);

  // Sums over the shards (SHOW STATS).
  uint64_t rewrite_checks() const;
  uint64_t rewrite_us_total() const;
  uint64_t upstream_round_trips() const;
  uint64_t upstream_us_total() const;

  // The families; the cache counters are summed by the caller (Collect() asks cache_totals).
  std::vector<prometheus::MetricFamily> families(uint64_t cache_hits, uint64_t cache_misses, uint64_t cache_entries) const;
  std::vector<prometheus::MetricFamily> Collect() const override;
  std::function<std::array<uint64_t, 3>()> cache_totals;
  // The pools' samples, one per upstream database (set by the Server; none: no rowguard_pool_* values).
  std::function<std::vector<PoolSample>()> pool_samples;
  // Prometheus text exposition (prometheus-cpp's TextSerializer).
  std::string render(uint64_t cache_hits, uint64_t cache_misses, uint64_t cache_entries) const;

  struct Shard;
  struct TenantStats;

 private:
  friend class ShardedCounter;
  Shard& shard();
  Shard& shard_slow();
  TenantStats& tenant_stats(Shard& s, std::string_view tenant);
  size_t tenant_index(std::string_view tenant);

  const uint64_t generation_;
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> denials_;
  std::vector<std::unique_ptr<Shard>> shards_;             // under mu_
  std::map<std::string, size_t, std::less<>> tenant_ids_;  // under mu_; index into tenant_names_
  std::vector<std::string> tenant_names_;                  // under mu_; [0] = "_other"
  size_t max_tenant_labels_ = kDefaultMaxTenantLabels;     // under mu_
};

// "rowguard: ... (rule: X)" -> "X" (quotes replaced), or "other".
std::string denial_rule(const std::string& reason);

}  // namespace rowguard::net
