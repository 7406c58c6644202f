// The parse pool (parse_pool.h).
#include "proxy/net/parse_pool.h"

#include <exception>
#include <string>

#include "proxy/net/metrics.h"
#include "sqlrewrite/rewrite_cache.h"

namespace rowguard::net {

ParsePool::ParsePool(size_t threads, Metrics& metrics) : metrics_(metrics), pool_(threads) {}

ParsePool::~ParsePool() { pool_.join(); }

sqlrewrite::RewriteResult ParsePool::rewrite_here(std::string_view text, const policy::Policy& policy,
                                                  std::string_view tenant) {
  thread_local sqlrewrite::RewriteCache cache;  // this pool thread's own (never a worker's)
  try {
    return *cache.rewrite(text, policy, tenant);  // a copy: the result goes to a worker thread, by value
  } catch (const std::exception& e) {  // (bad_alloc) fail closed: refused, and the pool thread lives
    sqlrewrite::RewriteResult denied;
    denied.reason = std::string("rowguard: the statement could not be checked (") + e.what() + ")";
    return denied;
  }
}

void ParsePool::submit(const std::string& tenant, std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    queues_[tenant].push_back(std::move(job));
  }
  boost::asio::post(pool_, [this] { run_next(); });  // one run_next per job: none is left behind
}

void ParsePool::run_next() {
  std::function<void()> job;
  {
    std::lock_guard lock(mu_);
    if (queues_.empty()) return;
    auto it = queues_.upper_bound(last_tenant_);
    if (it == queues_.end()) it = queues_.begin();
    job = std::move(it->second.front());
    it->second.pop_front();
    last_tenant_ = it->first;
    if (it->second.empty()) queues_.erase(it);
  }
  job();
}

void ParsePool::enter() {
  depth_.fetch_add(1, std::memory_order_relaxed);
  metrics_.parse_offloaded.fetch_add(1, std::memory_order_relaxed);
  metrics_.parse_pool_depth.fetch_add(1, std::memory_order_relaxed);
}

void ParsePool::leave(std::chrono::steady_clock::time_point queued_at) {
  depth_.fetch_sub(1, std::memory_order_relaxed);
  metrics_.parse_pool_depth.fetch_sub(1, std::memory_order_relaxed);
  metrics_.observe_parse_pool(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - queued_at).count()));
}

}  // namespace rowguard::net
