// Metrics counters and their Prometheus text rendering.
#include "proxy/net/metrics.h"

#include <sstream>

namespace rowguard::net {

namespace {
template <size_t N, size_t M>
void observe(const std::array<uint64_t, N>& bounds, std::array<std::atomic<uint64_t>, M>& counts, uint64_t v) {
  size_t i = 0;
  while (i < bounds.size() && v > bounds[i]) ++i;
  counts[i].fetch_add(1, std::memory_order_relaxed);
}

template <size_t N, size_t M>
void histogram(std::ostringstream& out, const std::string& name, const std::string& help,
               const std::array<uint64_t, N>& bounds, const std::array<std::atomic<uint64_t>, M>& counts,
               double sum, double scale) {
  out << "# HELP " << name << " " << help << "\n# TYPE " << name << " histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds.size(); ++i) {
    cumulative += counts[i].load(std::memory_order_relaxed);
    out << name << "_bucket{le=\"" << static_cast<double>(bounds[i]) * scale << "\"} " << cumulative << "\n";
  }
  cumulative += counts[bounds.size()].load(std::memory_order_relaxed);
  out << name << "_bucket{le=\"+Inf\"} " << cumulative << "\n";
  out << name << "_sum " << sum << "\n" << name << "_count " << cumulative << "\n";
}
}  // namespace

void Metrics::observe_rewrite(uint64_t us) {
  observe(kRewriteBucketsUs, rewrite_us, us);
  rewrite_us_sum.fetch_add(us, std::memory_order_relaxed);
}

void Metrics::observe_parse_pool(uint64_t us) {
  observe(kParsePoolBucketsMs, parse_pool_ms, us / 1000);
  parse_pool_us_sum.fetch_add(us, std::memory_order_relaxed);
}

void Metrics::observe_upstream(uint64_t us) {
  observe(kUpstreamBucketsMs, upstream_ms, us / 1000);
  upstream_ms_sum_us.fetch_add(us, std::memory_order_relaxed);
}

void Metrics::count_denial(const std::string& reason) {
  statements_denied.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  if (denials_.size() < 200 || denials_.contains(denial_rule(reason))) ++denials_[denial_rule(reason)];
}

std::map<std::string, uint64_t> Metrics::denials_by_rule() const {
  std::lock_guard lock(mu_);
  return denials_;
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

std::string Metrics::render(uint64_t cache_hits, uint64_t cache_misses, uint64_t cache_entries) const {
  std::ostringstream out;
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    out << "# HELP " << name << " " << help << "\n# TYPE " << name << " counter\n" << name << " " << v << "\n";
  };
  auto gauge = [&](const char* name, const char* help, int64_t v) {
    out << "# HELP " << name << " " << help << "\n# TYPE " << name << " gauge\n" << name << " " << v << "\n";
  };
  counter("rowguard_connections_total", "Client connections accepted.", connections_total.load());
  out << "# HELP rowguard_connections Client connections open now, by kind.\n# TYPE rowguard_connections gauge\n";
  out << "rowguard_connections{kind=\"tenant\"} " << connections_tenant.load() << "\n";
  out << "rowguard_connections{kind=\"bypass\"} " << connections_bypass.load() << "\n";
  gauge("rowguard_connections_active", "Client connections open now (any state).", connections_active.load());
  counter("rowguard_auth_failures_total", "Failed client authentications.", auth_failures.load());
  counter("rowguard_upstream_failures_total", "Failed upstream logins.", upstream_failures.load());
  out << "# HELP rowguard_statements_total Tenant messages checked, by decision.\n"
         "# TYPE rowguard_statements_total counter\n";
  out << "rowguard_statements_total{decision=\"allowed\"} " << statements_allowed.load() << "\n";
  out << "rowguard_statements_total{decision=\"denied\"} " << statements_denied.load() << "\n";
  out << "# HELP rowguard_denials_total Denials by policy rule.\n# TYPE rowguard_denials_total counter\n";
  for (const auto& [rule, n] : denials_by_rule()) {
    std::string label;
    for (char c : rule) {
      if (c == '"' || c == '\\') label += '\\';
      if (c != '\n') label += c;
    }
    out << "rowguard_denials_total{rule=\"" << label << "\"} " << n << "\n";
  }
  counter("rowguard_rewrite_cache_hits_total", "Rewrite cache hits.", cache_hits);
  counter("rowguard_rewrite_cache_misses_total", "Rewrite cache misses (a parse and rewrite).", cache_misses);
  gauge("rowguard_rewrite_cache_entries", "Rewrite cache entries (all workers).", static_cast<int64_t>(cache_entries));
  counter("rowguard_client_bytes_received_total", "Bytes received from clients.", bytes_from_clients.load());
  counter("rowguard_client_bytes_sent_total", "Bytes sent to clients.", bytes_to_clients.load());
  histogram(out, "rowguard_rewrite_seconds", "Time to check one tenant message (rewrite included).",
            kRewriteBucketsUs, rewrite_us, static_cast<double>(rewrite_us_sum.load()) / 1e6, 1e-6);
  histogram(out, "rowguard_upstream_latency_seconds", "Time from forwarding a tenant batch to the server's first answer byte.",
            kUpstreamBucketsMs, upstream_ms, static_cast<double>(upstream_ms_sum_us.load()) / 1e6, 1e-3);
  counter("rowguard_parse_pool_statements_total", "Long statements rewritten on the parse pool.", parse_offloaded.load());
  gauge("rowguard_parse_pool_depth", "Parse pool jobs queued or running now.", parse_pool_depth.load());
  histogram(out, "rowguard_parse_pool_seconds", "Time from handing a statement to the parse pool to its rewrite (queue wait included).",
            kParsePoolBucketsMs, parse_pool_ms, static_cast<double>(parse_pool_us_sum.load()) / 1e6, 1e-3);
  return out.str();
}

}  // namespace rowguard::net
