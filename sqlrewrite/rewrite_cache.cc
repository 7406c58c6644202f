// Bounded LRU rewrite cache (per worker thread, no locks).
#include "sqlrewrite/rewrite_cache.h"

namespace rowguard::sqlrewrite {

RewriteCache::RewriteCache(size_t max_entries, size_t max_bytes)
    : max_entries_(max_entries == 0 ? 1 : max_entries), max_bytes_(max_bytes) {}

const RewriteResult& RewriteCache::rewrite(std::string_view sql, const policy::Policy& policy,
                                           std::string_view tenant) {
  if (policy.version != policy_version_) {  // a reloaded policy invalidates every entry
    map_.clear();
    lru_.clear();
    bytes_ = 0;
    entries_.store(0, std::memory_order_relaxed);
    policy_version_ = policy.version;
  }
  std::string key;
  key.reserve(tenant.size() + 1 + sql.size());
  key.append(tenant).push_back('\0');  // tenant values contain no NUL (checked at load)
  key.append(sql);
  if (auto it = map_.find(key); it != map_.end()) {
    hits_.fetch_add(1, std::memory_order_relaxed);
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->result;
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  Entry e;
  e.result = sqlrewrite::rewrite(sql, policy, tenant);
  e.bytes = key.size() * 2 + e.result.sql.size() + e.result.reason.size() + 128;
  e.key = std::move(key);
  lru_.push_front(std::move(e));
  auto& front = lru_.front();
  map_.emplace(front.key, lru_.begin());
  bytes_ += front.bytes;
  evict();
  entries_.store(map_.size(), std::memory_order_relaxed);
  bytes_published_.store(bytes_, std::memory_order_relaxed);
  return lru_.front().result;
}

void RewriteCache::evict() {
  while (lru_.size() > 1 && (lru_.size() > max_entries_ || bytes_ > max_bytes_)) {
    auto& last = lru_.back();
    bytes_ -= last.bytes;
    map_.erase(last.key);
    lru_.pop_back();
  }
}

}  // namespace rowguard::sqlrewrite
