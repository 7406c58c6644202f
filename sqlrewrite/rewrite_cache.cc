// The template rewrite cache (see rewrite_cache.h): per worker thread, no locks.
#include "sqlrewrite/rewrite_cache.h"

#include <utility>

namespace rowguard::sqlrewrite {
namespace {

// Tripwire: a template hands out every field of the sentinel rewrite's RewriteResult, with only
// `sql` and `reason` spliced. A new field that can hold the tenant (or depend on it) must be
// handled in make_template()/splice() (or make the statement per tenant via
// RewriteTrace::tenant_compared); then update this size.
static_assert(sizeof(RewriteResult) == 272 || sizeof(void*) != 8,
              "RewriteResult changed: check whether the new field depends on the tenant "
              "(sqlrewrite/rewrite_cache.cc), then update this size");

// Heap a cache entry costs besides its strings and vectors: list node, hash node, bucket.
constexpr size_t kEntryOverhead = sizeof(std::string) * 4 + 160;

// A tenant value for the template rewrite that does not occur in the statement text (mixed
// case, so a folded identifier of the text cannot produce it either).
std::string sentinel_for(std::string_view sql) {
  for (unsigned n = 0;; ++n) {
    std::string s = "rowguardTenantSentinel" + std::to_string(n);
    if (sql.find(s) == std::string_view::npos) return s;
  }
}

std::vector<uint32_t> find_all(std::string_view text, std::string_view what) {
  std::vector<uint32_t> at;
  for (size_t pos = text.find(what); pos != std::string_view::npos; pos = text.find(what, pos + what.size())) {
    at.push_back(static_cast<uint32_t>(pos));
  }
  return at;
}

// Removes every occurrence of `what` (found at `at`) from `text`; returns the offsets, in the
// shortened text, where each occurrence was.
std::vector<uint32_t> cut(std::string& text, const std::vector<uint32_t>& at, size_t len) {
  std::vector<uint32_t> slots;
  std::string out;
  out.reserve(text.size() - at.size() * len);
  size_t from = 0;
  for (uint32_t pos : at) {
    out.append(text, from, pos - from);
    slots.push_back(static_cast<uint32_t>(out.size()));
    from = pos + len;
  }
  out.append(text, from, std::string::npos);
  text = std::move(out);
  return slots;
}

void fill(std::string& out, std::string_view tmpl, const std::vector<uint32_t>& slots, std::string_view value) {
  out.clear();
  size_t from = 0;
  for (uint32_t pos : slots) {
    out.append(tmpl.substr(from, pos - from));
    out.append(value);
    from = pos;
  }
  out.append(tmpl.substr(from));
}

size_t heap_of(const RewriteResult& r) {
  size_t n = r.sql.capacity() + r.reason.capacity() + r.kinds.capacity() * sizeof(StatementKind) +
             r.tenant_params.capacity() * sizeof(int);
  // `prepared` holds no tenant value (the session compares EXECUTE arguments with its tenant).
  for (const auto& op : r.prepared) {
    n += sizeof(op) + op.name.capacity() + op.command_tag.capacity() +
         op.tenant_params.capacity() * sizeof(int) + op.param_types.capacity() * sizeof(int32_t) +
         op.args.capacity() * sizeof(op.args[0]);
    for (const auto& a : op.args) n += a ? a->capacity() : 0;
  }
  if (r.copy_in) {
    n += sizeof(CopyInPlan) + r.copy_in->null_string.capacity() + r.copy_in->tenant_column.capacity() +
         r.copy_in->table.capacity();
  }
  return n;
}

}  // namespace

void append_string_literal(std::string& out, std::string_view value) {
  // As libpg_query's deparseStringLiteral: E'' only when a backslash needs escaping.
  const bool backslash = value.find('\\') != std::string_view::npos;
  if (backslash) out.push_back('E');
  out.push_back('\'');
  for (char c : value) {
    if (c == '\'' || (c == '\\' && backslash)) out.push_back(c);
    out.push_back(c);
  }
  out.push_back('\'');
}

RewriteCache::RewriteCache(size_t max_entries, size_t max_bytes)
    : fixed_(policy::CacheSettings{max_entries, max_bytes}) {}

void RewriteCache::reset_for(const policy::Policy& policy) {
  map_.clear();
  lru_.clear();
  bytes_ = 0;
  per_tenant_ = 0;
  policy_version_ = policy.version;
  const policy::CacheSettings limits = fixed_ ? *fixed_ : policy.cache;
  max_entries_ = limits.max_entries == 0 ? 1 : limits.max_entries;
  max_bytes_ = limits.max_bytes;
  publish();
}

void RewriteCache::set_key_template(std::string_view sql) {
  key_.clear();
  key_.push_back('T');
  key_.append(sql);
}

void RewriteCache::set_key_tenant(std::string_view sql, std::string_view tenant) {
  key_.clear();
  key_.push_back('P');
  key_.append(tenant).push_back('\0');  // tenant values contain no NUL (checked at load)
  key_.append(sql);
}

RewriteCache::Lru::iterator RewriteCache::find(std::string_view key) {
  auto it = map_.find(key);
  if (it == map_.end()) return lru_.end();
  lru_.splice(lru_.begin(), lru_, it->second);  // most recently used
  return it->second;
}

RewriteCache::Lru::iterator RewriteCache::insert(Entry e) {
  e.bytes = e.key.capacity() + heap_of(e.result) +
            (e.sql_slots.capacity() + e.reason_slots.capacity()) * sizeof(uint32_t) + kEntryOverhead;
  lru_.push_front(std::move(e));
  Entry& front = lru_.front();
  map_.emplace(std::string_view(front.key), lru_.begin());  // a view into the list node: stable
  bytes_ += front.bytes;
  if (front.kind == Kind::kPerTenant) ++per_tenant_;
  return lru_.begin();
}

void RewriteCache::evict() {
  // The newest entry stays even when it alone is over the byte bound (it is being returned).
  while (lru_.size() > 1 && (lru_.size() > max_entries_ || bytes_ > max_bytes_)) {
    Entry& last = lru_.back();
    bytes_ -= last.bytes;
    if (last.kind == Kind::kPerTenant) --per_tenant_;
    map_.erase(std::string_view(last.key));
    lru_.pop_back();
  }
}

void RewriteCache::publish() {
  entries_.store(lru_.size(), std::memory_order_relaxed);
  bytes_published_.store(bytes_, std::memory_order_relaxed);
  per_tenant_published_.store(per_tenant_, std::memory_order_relaxed);
}

std::optional<RewriteCache::Entry> RewriteCache::make_template(std::string_view sql,
                                                                const policy::Policy& policy) {
  const std::string sentinel = sentinel_for(sql);
  RewriteTrace trace;
  Entry e;
  e.kind = Kind::kTemplate;
  e.result = sqlrewrite::rewrite(sql, policy, sentinel, &trace);
  if (trace.tenant_compared) return std::nullopt;
  if (e.result.allowed) {
    // Every sentinel in the output must be one of the constants the rewriter inserted, written
    // as the whole literal '<sentinel>'; anything else (e.g. the text spelling the sentinel
    // with escapes) and the statement is cached per tenant instead.
    std::string quoted;
    append_string_literal(quoted, sentinel);
    std::vector<uint32_t> raw = find_all(e.result.sql, sentinel);
    std::vector<uint32_t> lit = find_all(e.result.sql, quoted);
    if (raw.size() != static_cast<size_t>(trace.tenant_literals) || lit.size() != raw.size()) {
      return std::nullopt;
    }
    e.sql_slots = cut(e.result.sql, lit, quoted.size());
    if (e.result.reason.find(sentinel) != std::string::npos) return std::nullopt;
  } else {
    // A denial: the tenant only appears in the message, as written in the policy.
    e.reason_slots = cut(e.result.reason, find_all(e.result.reason, sentinel), sentinel.size());
    if (e.result.sql.find(sentinel) != std::string::npos) return std::nullopt;
  }
  return e;
}

const RewriteResult& RewriteCache::splice(const Entry& e, std::string_view tenant) {
  scratch_ = e.result;  // every field (reuses scratch_'s buffers); sql/reason are then filled in
  if (!e.sql_slots.empty()) {
    std::string quoted;
    append_string_literal(quoted, tenant);
    fill(scratch_.sql, e.result.sql, e.sql_slots, quoted);
  }
  if (!e.reason_slots.empty()) fill(scratch_.reason, e.result.reason, e.reason_slots, tenant);
  return scratch_;
}

const RewriteResult& RewriteCache::rewrite(std::string_view sql, const policy::Policy& policy,
                                           std::string_view tenant) {
  if (policy.version != policy_version_) reset_for(policy);  // a reload invalidates every entry
  set_key_template(sql);
  auto it = find(key_);
  if (it != lru_.end() && it->kind == Kind::kTemplate) {
    hits_.fetch_add(1, std::memory_order_relaxed);
    return splice(*it, tenant);
  }
  if (it != lru_.end()) {  // kPerTenantRef
    set_key_tenant(sql, tenant);
    if (auto pt = find(key_); pt != lru_.end()) {
      hits_.fetch_add(1, std::memory_order_relaxed);
      return pt->result;
    }
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  if (it == lru_.end()) {
    std::optional<Entry> t = make_template(sql, policy);
    if (t) {
      t->key = key_;
      auto ins = insert(std::move(*t));
      evict();
      publish();
      return splice(*ins, tenant);
    }
    Entry ref;
    ref.kind = Kind::kPerTenantRef;
    ref.key = key_;
    insert(std::move(ref));
    set_key_tenant(sql, tenant);
  }
  Entry e;
  e.kind = Kind::kPerTenant;
  e.key = key_;
  e.result = sqlrewrite::rewrite(sql, policy, tenant);
  auto ins = insert(std::move(e));
  evict();
  publish();
  return ins->result;
}

}  // namespace rowguard::sqlrewrite
