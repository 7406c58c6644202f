#pragma once
// A bounded LRU cache in front of rewrite(): (policy version, tenant, statement text) -> result.
// One cache per worker thread (sessions are pinned to their io_context), so no locks.
// Denials are cached too: a repeated bad statement costs a lookup, not a parse.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

#include "sqlrewrite/rewriter.h"

namespace rowguard::sqlrewrite {

class RewriteCache {
 public:
  explicit RewriteCache(size_t max_entries = 10000, size_t max_bytes = 64u << 20);

  // Returns the cached result or computes, stores and returns it.
  const RewriteResult& rewrite(std::string_view sql, const policy::Policy& policy,
                               std::string_view tenant);

  // Counters may be read from other threads (metrics, admin console): atomics, relaxed.
  size_t hits() const { return hits_.load(std::memory_order_relaxed); }
  size_t misses() const { return misses_.load(std::memory_order_relaxed); }
  size_t size() const { return entries_.load(std::memory_order_relaxed); }
  size_t bytes() const { return bytes_published_.load(std::memory_order_relaxed); }

 private:
  struct Entry {
    std::string key;
    RewriteResult result;
    size_t bytes = 0;
  };
  void evict();

  size_t max_entries_;
  size_t max_bytes_;
  uint64_t policy_version_ = 0;
  std::list<Entry> lru_;  // most recent first
  std::unordered_map<std::string_view, std::list<Entry>::iterator> map_;
  size_t bytes_ = 0;
  std::atomic<size_t> hits_{0};
  std::atomic<size_t> misses_{0};
  std::atomic<size_t> entries_{0};
  std::atomic<size_t> bytes_published_{0};
};

}  // namespace rowguard::sqlrewrite
