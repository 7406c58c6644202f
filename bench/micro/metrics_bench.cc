// The metrics a tenant statement records on the hot path (tenant_relay.cc, connection.cc): the
// decision (per tenant), the rewrite time, the upstream round trip (per tenant) and the bytes
// each way. With 1 and 2 threads: the per-thread shards must not make threads share a line.
#include <benchmark/benchmark.h>

#include <string>

#include "proxy/net/metrics.h"

namespace {

rowguard::net::Metrics& shared_metrics() {
  static rowguard::net::Metrics m;
  return m;
}

void BM_MetricsPerStatement(benchmark::State& state) {
  rowguard::net::Metrics& m = shared_metrics();
  const std::string tenant = "tenant-" + std::to_string(state.thread_index());
  uint64_t i = 0;
  for (auto _ : state) {
    m.bytes_from_clients.fetch_add(40, std::memory_order_relaxed);
    m.observe_rewrite(3 + (i & 7));
    m.count_allowed(tenant);
    m.observe_upstream(250 + (i & 1023), tenant);
    m.bytes_to_clients.fetch_add(120, std::memory_order_relaxed);
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MetricsPerStatement)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
