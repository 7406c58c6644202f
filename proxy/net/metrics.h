#pragma once
// Process-wide counters for the Prometheus endpoint and the admin console. Hot-path updates
// are relaxed atomic increments; denials by rule (rare) go through a mutex.
#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace rowguard::net {

struct Metrics {
  std::atomic<uint64_t> connections_total{0};
  std::atomic<int64_t> connections_active{0};
  std::atomic<int64_t> connections_tenant{0};
  std::atomic<int64_t> connections_bypass{0};
  std::atomic<uint64_t> auth_failures{0};
  std::atomic<uint64_t> upstream_failures{0};
  std::atomic<uint64_t> statements_allowed{0};
  std::atomic<uint64_t> statements_denied{0};
  std::atomic<uint64_t> bytes_from_clients{0};
  std::atomic<uint64_t> bytes_to_clients{0};

  // Time to check one client message (rewrite included), microseconds, cumulative buckets.
  static constexpr std::array<uint64_t, 8> kRewriteBucketsUs = {1, 5, 10, 50, 100, 500, 1000, 10000};
  std::array<std::atomic<uint64_t>, kRewriteBucketsUs.size() + 1> rewrite_us{};
  std::atomic<uint64_t> rewrite_us_sum{0};
  // Upstream round trip of a simple Query (forward to first byte of the answer), milliseconds.
  static constexpr std::array<uint64_t, 8> kUpstreamBucketsMs = {1, 2, 5, 10, 50, 100, 1000, 10000};
  std::array<std::atomic<uint64_t>, kUpstreamBucketsMs.size() + 1> upstream_ms{};
  std::atomic<uint64_t> upstream_ms_sum_us{0};

  // The parse pool (parse_pool.h): statements rewritten there, jobs queued or running now, and
  // each job's time from hand-over to result (queue wait included), milliseconds.
  std::atomic<uint64_t> parse_offloaded{0};
  std::atomic<int64_t> parse_pool_depth{0};
  static constexpr std::array<uint64_t, 8> kParsePoolBucketsMs = {1, 5, 10, 50, 100, 500, 1000, 10000};
  std::array<std::atomic<uint64_t>, kParsePoolBucketsMs.size() + 1> parse_pool_ms{};
  std::atomic<uint64_t> parse_pool_us_sum{0};

  void observe_rewrite(uint64_t us);
  void observe_parse_pool(uint64_t us);
  void observe_upstream(uint64_t us);
  void count_denial(const std::string& reason);
  std::map<std::string, uint64_t> denials_by_rule() const;

  // Prometheus text exposition; the cache counters are summed by the caller.
  std::string render(uint64_t cache_hits, uint64_t cache_misses, uint64_t cache_entries) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> denials_;
};

// "rowguard: ... (rule: X)" -> "X" (quotes replaced), or "other".
std::string denial_rule(const std::string& reason);

}  // namespace rowguard::net
