// The template rewrite cache (see rewrite_cache.h): per worker thread, no locks.
#include "sqlrewrite/rewrite_cache.h"

#include <algorithm>
#include <atomic>
#include <unordered_set>
#include <utility>

#include "sqlrewrite/pg_query_api.h"

namespace rowguard::sqlrewrite {
namespace {

// Tripwire: a template hands out every field of the sentinel rewrite's RewriteResult, with only
// `sql` and `reason` spliced. A new field that can hold the tenant (or depend on it) must be
// handled in make_template()/splice() (or make the statement per tenant via
// RewriteTrace::tenant_compared); then update this size.
// (296: `cursors` holds cursor names and tags only, never the tenant.)
static_assert(sizeof(RewriteResult) == 296 || sizeof(void*) != 8,
              "RewriteResult changed: check whether the new field depends on the tenant "
              "(sqlrewrite/rewrite_cache.cc), then update this size");

// Heap a cache entry costs besides its strings and vectors: list node, hash node, bucket.
constexpr size_t kEntryOverhead = sizeof(std::string) * 4 + 160;

// A tenant value for the template rewrite that does not occur in the statement text (mixed
// case, so a folded identifier of the text cannot produce it either).
// One pass over the text (it may hold "rowguardTenantSentinel0..N" to make a search per
// candidate quadratic): every number that follows the stem somewhere, as a prefix of the digits
// there, is taken; the smallest free one is used.
std::string sentinel_for(std::string_view sql) {
  static constexpr std::string_view kStem = "rowguardTenantSentinel";
  std::unordered_set<std::string_view> taken;
  for (size_t pos = sql.find(kStem); pos != std::string_view::npos; pos = sql.find(kStem, pos + 1)) {
    const size_t digits = pos + kStem.size();
    size_t end = digits;
    while (end < sql.size() && end - digits < 12 && sql[end] >= '0' && sql[end] <= '9') ++end;
    for (size_t k = digits + 1; k <= end; ++k) taken.insert(sql.substr(digits, k - digits));
  }
  for (unsigned n = 0;; ++n) {
    const std::string number = std::to_string(n);
    if (!taken.contains(number)) return std::string(kStem) + number;
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

// ---- constant templates ---------------------------------------------------------------------

bool sentinel_kind(StatementKind k) {
  return k == StatementKind::kSelect || k == StatementKind::kInsert || k == StatementKind::kUpdate ||
         k == StatementKind::kDelete;
}

// An integer literal as the deparser writes its value: without leading zeros ("" for 0).
std::string_view integer_digits(std::string_view token) {
  size_t z = 0;
  while (z < token.size() && token[z] == '0') ++z;
  return token.substr(z);
}

// Whether `token` stands at `pos` of `text` as a whole token (for integers: not glued to other
// identifier characters or digits).
bool token_at(std::string_view text, size_t pos, std::string_view token) {
  if (pos > text.size() || text.size() - pos < token.size() || text.substr(pos, token.size()) != token) return false;
  const size_t end = pos + token.size();
  if (pos > 0 && identifier_char(static_cast<unsigned char>(text[pos - 1]))) return false;
  if (end < text.size() && identifier_char(static_cast<unsigned char>(text[end]))) return false;
  return true;
}

size_t count_overlapping(std::string_view text, std::string_view what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string_view::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

// A 5-digit prefix for the literal sentinels that does not occur in the text. Its first digit
// does not recur in it, so it occurs exactly once in each sentinel (prefix + 4-digit number).
// One pass: every 5-digit run of the text is marked (a search per candidate would be quadratic
// on a text that holds most of them).
std::string sentinel_prefix(std::string_view sql) {
  std::vector<bool> present(20000, false);
  size_t run = 0;  // digits ending at i
  for (size_t i = 0; i < sql.size(); ++i) {
    run = (sql[i] >= '0' && sql[i] <= '9') ? run + 1 : 0;
    if (run >= 5 && sql[i - 4] >= '8') {
      int v = 0;
      for (size_t j = i - 4; j <= i; ++j) v = v * 10 + (sql[j] - '0');
      present[static_cast<size_t>(v - 80000)] = true;
    }
  }
  for (int p = 80000; p <= 99999; ++p) {
    std::string s = std::to_string(p);
    if (s.find(s[0], 1) != std::string::npos) continue;
    if (!present[static_cast<size_t>(p - 80000)]) return s;
  }
  return "";
}

std::string four_digits(size_t k) {
  std::string s = std::to_string(k);
  return std::string(4 - s.size(), '0') + s;
}

size_t heap_of(const std::shared_ptr<RewriteResult>& p) {
  if (!p) return 0;
  const RewriteResult& r = *p;
  size_t n = r.sql.capacity() + r.reason.capacity() + r.kinds.capacity() * sizeof(StatementKind) +
             r.tenant_params.capacity() * sizeof(int);
  // `prepared` holds no tenant value (the session compares EXECUTE arguments with its tenant).
  for (const auto& op : r.prepared) {
    n += sizeof(op) + op.name.capacity() + op.command_tag.capacity() +
         op.tenant_params.capacity() * sizeof(int) + op.param_types.capacity() * sizeof(int32_t) +
         op.args.capacity() * sizeof(op.args[0]);
    for (const auto& a : op.args) n += a ? a->capacity() : 0;
  }
  for (const auto& op : r.cursors) n += sizeof(op) + op.name.capacity() + op.command_tag.capacity();
  if (r.copy_in) {
    n += sizeof(CopyInPlan) + r.copy_in->null_string.capacity() + r.copy_in->tenant_column.capacity() +
         r.copy_in->table.capacity();
  }
  return n;
}

// tag + tenant + NUL + text: the key of an entry for one tenant ('P' exact text, 'Q' normalized).
void tenant_key(std::string& key, char tag, std::string_view tenant, std::string_view text) {
  key.clear();
  key.push_back(tag);
  key.append(tenant).push_back('\0');  // tenant values contain no NUL (checked at load)
  key.append(text);
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

void RewriteCache::reset_for(const policy::TenantScope& scope) {
  map_.clear();
  lru_.clear();
  bytes_ = 0;
  per_tenant_ = 0;
  policy_version_ = scope.version;
  const policy::CacheSettings limits = fixed_ ? *fixed_ : scope.cache;
  max_entries_ = limits.max_entries == 0 ? 1 : limits.max_entries;
  max_bytes_ = limits.max_bytes;
  publish();
}

void RewriteCache::set_key_template(std::string_view sql) {
  key_.clear();
  key_.push_back('T');
  key_.append(sql);
}

void RewriteCache::set_key_tenant(std::string_view sql, std::string_view tenant) { tenant_key(key_, 'P', tenant, sql); }

RewriteCache::Lru::iterator RewriteCache::find(std::string_view key) {
  auto it = map_.find(key);
  if (it == map_.end()) return lru_.end();
  lru_.splice(lru_.begin(), lru_, it->second);  // most recently used
  return it->second;
}

RewriteCache::Lru::iterator RewriteCache::insert(Entry e) {
  e.bytes = e.key.capacity() + heap_of(e.result) +
            (e.sql_slots.capacity() + e.reason_slots.capacity()) * sizeof(uint32_t) +
            e.slots.capacity() * sizeof(Slot) + kEntryOverhead;
  for (const FoldedList& l : e.lists) {
    e.bytes += sizeof(l) + l.body.text.capacity() + l.between.text.capacity() +
               (l.body.slots.capacity() + l.between.slots.capacity()) * sizeof(Slot);
  }
  lru_.push_front(std::move(e));
  Entry& front = lru_.front();
  map_.emplace(std::string_view(front.key), lru_.begin());  // a view into the list node: stable
  bytes_ += front.bytes;
  if (front.kind == Kind::kPerTenant || front.kind == Kind::kConstPerTenant) ++per_tenant_;
  return lru_.begin();
}

void RewriteCache::evict() {
  // The newest entry stays even when it alone is over the byte bound (it is being returned).
  while (lru_.size() > 1 && (lru_.size() > max_entries_ || bytes_ > max_bytes_)) {
    Entry& last = lru_.back();
    bytes_ -= last.bytes;
    if (last.kind == Kind::kPerTenant || last.kind == Kind::kConstPerTenant) --per_tenant_;
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
                                                                const policy::TenantScope& scope) {
  const std::string sentinel = sentinel_for(sql);
  RewriteTrace trace;
  Entry e;
  e.kind = Kind::kTemplate;
  e.result = std::make_shared<RewriteResult>(sqlrewrite::rewrite(sql, scope, sentinel, &trace));
  if (trace.tenant_compared) return std::nullopt;
  RewriteResult& r = *e.result;
  if (r.allowed) {
    // Every sentinel in the output must be one of the constants the rewriter inserted, written
    // as the whole literal '<sentinel>'; anything else (e.g. the text spelling the sentinel
    // with escapes) and the statement is cached per tenant instead.
    std::string quoted;
    append_string_literal(quoted, sentinel);
    std::vector<uint32_t> raw = find_all(r.sql, sentinel);
    std::vector<uint32_t> lit = find_all(r.sql, quoted);
    if (raw.size() != static_cast<size_t>(trace.tenant_literals) || lit.size() != raw.size()) {
      return std::nullopt;
    }
    e.sql_slots = cut(r.sql, lit, quoted.size());
    if (r.reason.find(sentinel) != std::string::npos) return std::nullopt;
    e.filters_only = trace.tenant_literals > 0 && trace.tenant_filter_literals == trace.tenant_literals &&
                     !trace.constant_read && !r.copy_in && r.prepared.empty() && r.cursors.empty() &&
                     !r.kinds.empty() && std::all_of(r.kinds.begin(), r.kinds.end(), [](StatementKind k) {
                       return k == StatementKind::kSelect || k == StatementKind::kUpdate ||
                              k == StatementKind::kDelete;
                     });
  } else {
    // A denial: the tenant only appears in the message, as written in the policy.
    e.reason_slots = cut(r.reason, find_all(r.reason, sentinel), sentinel.size());
    if (r.sql.find(sentinel) != std::string::npos) return std::nullopt;
  }
  return e;
}

std::shared_ptr<RewriteResult> RewriteCache::spare() {
  for (const auto& p : spares_) {
    if (p.use_count() == 1) {
      // Nobody else holds it. A holder that dropped it on another thread did so with a release
      // decrement; this fence orders its reads of the object before the writes to come.
      std::atomic_thread_fence(std::memory_order_acquire);
      return p;
    }
  }
  auto p = std::make_shared<RewriteResult>();
  if (spares_.size() < kSpares) spares_.push_back(p);  // beyond that, held results are the holders' alone
  return p;
}

RewriteHandle RewriteCache::splice(const Entry& e, std::string_view tenant) {
  std::shared_ptr<RewriteResult> out = spare();
  *out = *e.result;  // every field (reusing the spare's buffers); sql/reason are then filled in
  if (!e.sql_slots.empty()) {
    std::string quoted;
    append_string_literal(quoted, tenant);
    fill(out->sql, e.result->sql, e.sql_slots, quoted);
  }
  if (!e.reason_slots.empty()) fill(out->reason, e.result->reason, e.reason_slots, tenant);
  return out;
}

namespace {

char marker(Literal::Kind k) { return k == Literal::Kind::kInteger ? 'i' : k == Literal::Kind::kNumeric ? 'n' : 's'; }

bool blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

size_t skip_blanks(std::string_view s, size_t i) {
  while (i < s.size() && blank(s[i])) ++i;
  return i;
}

// Whether s[from, to) is blanks, one `c`, blanks (no comment: the lists folded are plain).
bool only(std::string_view s, size_t from, size_t to, char c) {
  size_t i = skip_blanks(s, from);
  if (i >= to || s[i] != c) return false;
  return skip_blanks(s, i + 1) >= to;
}

}  // namespace

bool RewriteCache::stays(const Literal& l, std::string_view token, std::string_view tenant) {
  if (l.kind == Literal::Kind::kInteger) {
    const std::string_view digits = integer_digits(token);
    // 0 stays: "-0" deparses as "0". Over 9 digits the token may not be an int4 constant.
    return digits.empty() || digits.size() > 9 || digits == tenant;
  }
  if (l.kind == Literal::Kind::kString) {
    // 't' and 'f' stay: the deparser writes 't'::boolean as true, so their rewrite is not the
    // template's with the literal spliced in (and the re-parse check then refuses it).
    return string_literal_equals(token, tenant) || string_literal_equals(token, "t") ||
           string_literal_equals(token, "f");
  }
  return false;  // a numeric constant is never compared with the tenant (only strings and integers are)
}

// Lists of constants whose length may vary without changing the rewrite but for the repetition
// (README "The rewrite cache"): `IN (c, c, ...)`, every element one literal of the same kind
// that does not stay in the key, and `VALUES (row), (row), ...`, every row literals only, the
// rows alike (the same kinds, the same literals that stay in the key; blanks may differ), at least
// one literal per row not staying. Only blanks and commas between elements, at least two
// elements. Fills raw_ (literals_ indices, byte offsets).
void RewriteCache::find_lists(std::string_view sql) {
  raw_.clear();
  const std::vector<Literal>& L = literals_;
  const auto token = [&](size_t k) { return sql.substr(L[k].begin, L[k].end - L[k].begin); };
  // Whether the rows of w literals at a and b are alike: the same token sequence (the blanks
  // between their tokens, checked by the caller to be blanks only, do not matter to the parse).
  const auto alike = [&](size_t a, size_t b, size_t w) {
    for (size_t m = 0; m < w; ++m) {
      if (L[a + m].kind != L[b + m].kind || stays_[a + m] != stays_[b + m]) return false;
      if (stays_[a + m] && token(a + m) != token(b + m)) return false;
    }
    return true;
  };
  for (size_t k = 0; k < L.size();) {
    RawList r;
    if (L[k].opens == Literal::Opens::kInList && !stays_[k]) {
      size_t j = k;
      while (j + 1 < L.size() && !stays_[j + 1] && L[j + 1].kind == L[k].kind && only(sql, L[j].end, L[j + 1].begin, ',')) ++j;
      const size_t close = skip_blanks(sql, L[j].end);
      if (j > k && close < sql.size() && sql[close] == ')') {
        r = {k, 1, j - k + 1, L[k].begin, L[k].end, L[j].end, L[j].begin};
      }
    } else if (L[k].opens == Literal::Opens::kValues) {
      // The first row: '(' blanks, literals separated by commas, blanks ')'.
      size_t open = L[k].begin;
      while (open > 0 && blank(sql[open - 1])) --open;
      if (open > 0 && sql[open - 1] == '(') {
        --open;
        size_t j = k;
        while (j + 1 < L.size() && only(sql, L[j].end, L[j + 1].begin, ',')) ++j;
        const size_t w = j - k + 1;
        const size_t close = skip_blanks(sql, L[j].end);
        bool marker = false;
        for (size_t m = k; m < k + w; ++m) marker = marker || !stays_[m];
        if (marker && close < sql.size() && sql[close] == ')') {
          RawList cand{k, w, 1, open, close + 1, close + 1, open};
          // Further rows: blanks ',' blanks '(' blanks, alike.
          for (size_t next = k + w; next + w <= L.size(); next += w) {
            const size_t c = skip_blanks(sql, cand.end);
            if (c >= sql.size() || sql[c] != ',') break;
            const size_t o = skip_blanks(sql, c + 1);
            if (o >= sql.size() || sql[o] != '(' || skip_blanks(sql, o + 1) != L[next].begin) break;
            const size_t cl = skip_blanks(sql, L[next + w - 1].end);
            if (cl >= sql.size() || sql[cl] != ')') break;
            bool row = true;
            for (size_t m = next; m + 1 < next + w && row; ++m) row = only(sql, L[m].end, L[m + 1].begin, ',');
            if (!row || !alike(k, next, w)) break;
            cand.count++;
            cand.last_begin = o;
            cand.end = cl + 1;
          }
          if (cand.count >= 2) r = cand;
        }
      }
    }
    if (r.count >= 2) {
      raw_.push_back(r);
      k = r.lit_first + r.lit_per * r.count;
    } else {
      ++k;
    }
  }
}

bool RewriteCache::normalize(std::string_view sql, std::string_view tenant) {
  if (!scan_literals(sql, literals_)) return false;
  const std::vector<Literal>& L = literals_;
  bool list_open = false;
  for (const Literal& l : L) list_open = list_open || l.opens != Literal::Opens::kNone;
  raw_.clear();
  if (list_open) {
    stays_.resize(L.size());
    for (size_t k = 0; k < L.size(); ++k) stays_[k] = stays(L[k], sql.substr(L[k].begin, L[k].end - L[k].begin), tenant);
    find_lists(sql);
  }
  // The key: the text with each literal that does not stay replaced by a marker (a NUL never
  // occurs in a statement text: the key is unambiguous), each folded list by "\0[" + its first
  // element + "\0]".
  nkey_.clear();
  nkey_.push_back('N');
  constants_.clear();
  lists_.clear();
  size_t from = 0, li = 0;
  const auto literal = [&](size_t k) {
    nkey_.append(sql.substr(from, L[k].begin - from));
    const std::string_view token = sql.substr(L[k].begin, L[k].end - L[k].begin);
    if (list_open ? stays_[k] != 0 : stays(L[k], token, tenant)) {
      nkey_.append(token);
    } else {
      nkey_.push_back('\0');
      nkey_.push_back(marker(L[k].kind));
      constants_.push_back(L[k]);
    }
    from = L[k].end;
  };
  for (size_t k = 0; k < L.size();) {
    if (li < raw_.size() && raw_[li].lit_first == k) {
      const RawList& r = raw_[li++];
      nkey_.append(sql.substr(from, r.begin - from));
      nkey_.append("\0[", 2);
      TextList t;
      t.first = static_cast<uint32_t>(constants_.size());
      from = r.begin;
      for (size_t m = k; m < k + r.lit_per; ++m) literal(m);
      nkey_.append(sql.substr(from, r.elem0_end - from));
      nkey_.append("\0]", 2);
      for (size_t m = k + r.lit_per; m < k + r.lit_per * r.count; ++m) {
        if (!stays_[m]) constants_.push_back(L[m]);
      }
      t.count = static_cast<uint32_t>(r.count);
      t.per = static_cast<uint32_t>((constants_.size() - t.first) / r.count);
      t.last_begin = static_cast<uint32_t>(r.last_begin);
      t.last_end = static_cast<uint32_t>(r.end);
      lists_.push_back(t);
      from = r.end;
      k += r.lit_per * r.count;
      continue;
    }
    literal(k);
    ++k;
  }
  nkey_.append(sql.substr(from));
  return !constants_.empty() && constants_.size() <= 9999;
}

std::optional<RewriteCache::Entry> RewriteCache::make_constant_template(
    std::string_view sql, const policy::TenantScope& scope, std::string_view tenant, bool per_tenant,
    bool* tenant_dependent) {
  const std::string prefix = sentinel_prefix(sql);
  if (prefix.empty()) return std::nullopt;
  // The text with every literal replaced by a sentinel of the same kind.
  std::vector<std::string> tokens;
  std::string text;
  replace_literals(text, sql, constants_, [&](std::string& out, size_t k, const Literal& l, std::string_view) {
    std::string token = prefix + four_digits(k);  // 9 digits: an int4 constant
    if (l.kind == Literal::Kind::kNumeric) token += ".5";
    if (l.kind == Literal::Kind::kString) token = "'rgS" + token + "'";
    out.append(token);
    tokens.push_back(std::move(token));
  });

  const std::string tenant_sentinel = per_tenant ? std::string(tenant) : sentinel_for(text);
  RewriteTrace trace;
  Entry e;
  e.kind = per_tenant ? Kind::kConstPerTenant : Kind::kConstTemplate;
  e.result = std::make_shared<RewriteResult>(sqlrewrite::rewrite(text, scope, tenant_sentinel, &trace));
  if (trace.tenant_compared && !per_tenant) {  // first: a sentinel tenant may have been refused
    if (tenant_dependent != nullptr) *tenant_dependent = true;
    return std::nullopt;
  }
  const RewriteResult& r = *e.result;
  if (!r.allowed || trace.constant_read || r.copy_in || !r.prepared.empty() || !r.reason.empty()) {
    return std::nullopt;
  }
  for (StatementKind k : r.kinds) {
    if (!sentinel_kind(k)) return std::nullopt;
  }
  const std::string_view out = r.sql;
  std::vector<Cut> cuts;
  // Every literal sentinel exactly once, as a whole token; no other occurrence of the prefix.
  // One pass over the prefix's occurrences (each sentinel holds it once, followed by its four
  // digits): a search per literal would be quadratic (9,999 literals in a 3 MB text).
  if (count_overlapping(out, prefix) != tokens.size()) return std::nullopt;
  std::vector<bool> seen(tokens.size(), false);
  for (size_t pos = out.find(prefix); pos != std::string_view::npos; pos = out.find(prefix, pos + 1)) {
    const size_t d = pos + prefix.size();
    if (d + 4 > out.size()) return std::nullopt;
    size_t k = 0;
    for (size_t j = d; j < d + 4; ++j) {
      if (out[j] < '0' || out[j] > '9') return std::nullopt;
      k = k * 10 + static_cast<size_t>(out[j] - '0');
    }
    if (k >= tokens.size() || seen[k]) return std::nullopt;
    const size_t begin = tokens[k][0] == '\'' ? pos - std::min(pos, size_t{4}) : pos;  // 'rgS
    if (!token_at(out, begin, tokens[k])) return std::nullopt;
    seen[k] = true;
    cuts.push_back({static_cast<uint32_t>(begin), static_cast<uint32_t>(tokens[k].size()), static_cast<int32_t>(k)});
  }
  if (!per_tenant) {
    // As make_template(): every tenant sentinel is an inserted constant '<sentinel>'.
    std::string quoted;
    append_string_literal(quoted, tenant_sentinel);
    std::vector<uint32_t> raw = find_all(out, tenant_sentinel);
    std::vector<uint32_t> lit = find_all(out, quoted);
    if (raw.size() != static_cast<size_t>(trace.tenant_literals) || lit.size() != raw.size()) {
      return std::nullopt;
    }
    for (uint32_t at : lit) cuts.push_back({at, static_cast<uint32_t>(quoted.size()), -1});
  }
  std::sort(cuts.begin(), cuts.end(), [](const Cut& a, const Cut& b) { return a.at < b.at; });
  if (!lists_.empty()) {
    if (!fold(e, out, cuts)) return std::nullopt;
    return e;
  }
  std::string tmpl;
  tmpl.reserve(out.size());
  size_t pos = 0;
  for (const Cut& c : cuts) {
    if (c.at < pos) return std::nullopt;  // overlapping sentinels: cannot happen, but never guess
    tmpl.append(out.substr(pos, c.at - pos));
    e.slots.push_back({static_cast<uint32_t>(tmpl.size()), c.literal});
    pos = c.at + c.len;
  }
  tmpl.append(out.substr(pos));
  e.result->sql = std::move(tmpl);
  return e;
}

bool RewriteCache::fold(Entry& e, std::string_view out, const std::vector<Cut>& cuts) const {
  // The template of a text with folded lists: each list's elements must come out of the rewrite
  // alike -- the same text around the element's own literals (and tenant constants between
  // them), the same text (and tenant constants) between two elements -- and are then kept once,
  // as the list's body and between pieces, expanded for as many elements as a text has.
  const auto list_of = [&](int32_t k) -> int {
    for (size_t g = 0; g < lists_.size(); ++g) {
      const TextList& t = lists_[g];
      if (static_cast<uint32_t>(k) >= t.first && static_cast<uint32_t>(k) < t.first + t.count * t.per) return static_cast<int>(g);
    }
    return -1;
  };
  const auto folded_index = [&](int32_t k) {
    int32_t p = k;
    for (const TextList& t : lists_) {
      if (static_cast<uint32_t>(k) >= t.first + t.count * t.per) p -= static_cast<int32_t>((t.count - 1) * t.per);
    }
    return p;
  };
  e.lists.assign(lists_.size(), FoldedList{});
  std::vector<bool> done(lists_.size(), false);
  std::string tmpl;
  tmpl.reserve(out.size());
  size_t pos = 0;
  for (size_t c = 0; c < cuts.size();) {
    const Cut& x = cuts[c];
    if (x.at < pos) return false;  // overlapping sentinels: cannot happen, but never guess
    const int g = x.literal >= 0 ? list_of(x.literal) : -1;
    if (g < 0) {
      tmpl.append(out.substr(pos, x.at - pos));
      e.slots.push_back({static_cast<uint32_t>(tmpl.size()), x.literal < 0 ? -1 : folded_index(x.literal)});
      pos = x.at + x.len;
      ++c;
      continue;
    }
    const TextList& t = lists_[static_cast<size_t>(g)];
    if (done[static_cast<size_t>(g)] || static_cast<uint32_t>(x.literal) != t.first) return false;
    done[static_cast<size_t>(g)] = true;
    FoldedList& fl = e.lists[static_cast<size_t>(g)];
    size_t p = x.at;
    for (uint32_t i = 0; i < t.count; ++i) {
      // Element i: its literals in order, tenant constants only between them.
      Piece body;
      const int32_t base = static_cast<int32_t>(t.first + i * t.per);
      for (uint32_t j = 0; j < t.per;) {
        if (c >= cuts.size() || cuts[c].at < p) return false;
        const Cut& y = cuts[c];
        if (y.literal == base + static_cast<int32_t>(j)) {
          ++j;
        } else if (!(y.literal == -1 && j > 0)) {
          return false;
        }
        body.text.append(out.substr(p, y.at - p));
        body.slots.push_back({static_cast<uint32_t>(body.text.size()), y.literal < 0 ? -1 : static_cast<int32_t>(j - 1)});
        p = y.at + y.len;
        ++c;
      }
      if (i == 0) fl.body = std::move(body);
      else if (!(body == fl.body)) return false;
      if (i + 1 == t.count) break;
      // Between elements i and i + 1: text and tenant constants only.
      Piece between;
      while (c < cuts.size() && cuts[c].literal == -1) {
        if (cuts[c].at < p) return false;
        between.text.append(out.substr(p, cuts[c].at - p));
        between.slots.push_back({static_cast<uint32_t>(between.text.size()), -1});
        p = cuts[c].at + cuts[c].len;
        ++c;
      }
      if (c >= cuts.size() || cuts[c].literal != base + static_cast<int32_t>(t.per) || cuts[c].at < p) return false;
      between.text.append(out.substr(p, cuts[c].at - p));
      p = cuts[c].at;
      if (i == 0) fl.between = std::move(between);
      else if (!(between == fl.between)) return false;
    }
    tmpl.append(out.substr(pos, x.at - pos));
    e.slots.push_back({static_cast<uint32_t>(tmpl.size()), -2 - g});
    pos = p;
  }
  for (bool d : done) {
    if (!d) return false;
  }
  tmpl.append(out.substr(pos));
  e.result->sql = std::move(tmpl);
  return true;
}

void RewriteCache::append_constant(std::string& out, size_t k, std::string_view sql) const {
  const Literal& l = constants_[k];
  const std::string_view token = sql.substr(l.begin, l.end - l.begin);
  // A numeric constant keeps its text in the tree, and a string literal without backslashes
  // is written by the deparser exactly as scanned.
  out.append(l.kind == Literal::Kind::kInteger ? integer_digits(token) : token);
}

void RewriteCache::fill_piece(std::string& out, const Piece& p, size_t base, std::string_view sql,
                              std::string_view tenant, std::vector<uint32_t>* tenant_at) const {
  size_t from = 0;
  for (const Slot& s : p.slots) {
    out.append(std::string_view(p.text).substr(from, s.at - from));
    if (s.literal >= 0) {
      append_constant(out, base + static_cast<size_t>(s.literal), sql);
    } else if (tenant_at != nullptr) {
      tenant_at->push_back(static_cast<uint32_t>(out.size()));
    } else {
      append_string_literal(out, tenant);
    }
    from = s.at;
  }
  out.append(std::string_view(p.text).substr(from));
}

void RewriteCache::fill_sql(std::string& out, const Entry& e, std::string_view sql, std::string_view tenant,
                            std::vector<uint32_t>* tenant_at) const {
  out.clear();
  const std::string_view tmpl = e.result->sql;
  size_t from = 0;
  for (const Slot& s : e.slots) {
    out.append(tmpl.substr(from, s.at - from));
    if (s.literal == -1) {
      // With tenant_at: the tenant is left out and its place recorded (an exact-text template).
      if (tenant_at != nullptr) tenant_at->push_back(static_cast<uint32_t>(out.size()));
      else append_string_literal(out, tenant);
    } else if (s.literal < -1) {
      const size_t g = static_cast<size_t>(-2 - s.literal);
      const TextList& t = lists_[g];
      const FoldedList& fl = e.lists[g];
      for (uint32_t i = 0; i < t.count; ++i) {
        if (i > 0) fill_piece(out, fl.between, 0, sql, tenant, tenant_at);
        fill_piece(out, fl.body, t.first + i * t.per, sql, tenant, tenant_at);
      }
    } else {
      // The folded numbering: the literals of each earlier list count once per element.
      size_t k = static_cast<size_t>(s.literal);
      for (const TextList& t : lists_) {
        if (k >= t.first) k += (t.count - 1) * t.per;
      }
      append_constant(out, k, sql);
    }
    from = s.at;
  }
  out.append(tmpl.substr(from));
}

bool RewriteCache::check_longer_lists(const Entry& e, std::string_view sql, const policy::TenantScope& scope,
                                      std::string_view tenant) {
  // The template was cut from one length of each list: it must also give, for one element more
  // in every list, what a fresh rewrite of that text gives (besides the check of the text itself).
  if (lists_.empty()) return true;
  std::string longer;
  size_t from = 0;
  for (const TextList& t : lists_) {
    longer.append(sql.substr(from, t.last_end - from));
    longer.append(", ");
    longer.append(sql.substr(t.last_begin, t.last_end - t.last_begin));
    from = t.last_end;
  }
  longer.append(sql.substr(from));
  std::string key = nkey_;
  std::vector<Literal> literals = literals_, constants = constants_;
  std::vector<TextList> lists = lists_;
  bool ok = normalize(longer, tenant) && nkey_ == key && lists_.size() == e.lists.size();
  if (ok) {
    std::string filled;
    fill_sql(filled, e, longer, tenant, nullptr);
    const RewriteResult fresh = sqlrewrite::rewrite(longer, scope, tenant);
    ok = fresh.allowed && fresh.sql == filled && fresh.kinds == e.result->kinds &&
         fresh.tenant_params == e.result->tenant_params && !fresh.copy_in && fresh.prepared.empty();
  }
  nkey_ = std::move(key);
  literals_ = std::move(literals);
  constants_ = std::move(constants);
  lists_ = std::move(lists);
  return ok;
}

RewriteHandle RewriteCache::fill_constants(const Entry& e, std::string_view sql, std::string_view tenant) {
  std::shared_ptr<RewriteResult> out = spare();
  *out = *e.result;
  fill_sql(out->sql, e, sql, tenant, nullptr);
  return out;
}

void RewriteCache::remember_exact(const Entry& e, std::string_view sql, std::string_view tenant) {
  // A text served by a constant template is not stored under its exact text (one entry per
  // literal value would crowd out the shapes); one seen twice lately is, so that a repeated long
  // text skips the literal scan. Direct-mapped, 64-bit hashes: a collision only costs an entry.
  if (!exact_memo_) return;
  if (seen_.empty()) seen_.assign(4096, 0);
  const uint64_t h = std::hash<std::string_view>{}(sql) | 1;  // 0 marks an empty slot
  uint64_t& slot = seen_[h & (seen_.size() - 1)];
  if (slot != h) {
    slot = h;
    return;
  }
  slot = 0;
  set_key_template(sql);
  auto t = find(key_);
  if (e.kind == Kind::kConstTemplate) {
    if (t != lru_.end()) return;  // (a per-tenant reference for this text: leave it)
    Entry x;
    x.kind = Kind::kTemplate;
    x.key = key_;
    x.result = std::make_shared<RewriteResult>(*e.result);
    fill_sql(x.result->sql, e, sql, tenant, &x.sql_slots);
    insert(std::move(x));
  } else {
    if (t != lru_.end() && t->kind != Kind::kPerTenantRef) return;
    const bool has_ref = t != lru_.end();
    set_key_tenant(sql, tenant);
    if (find(key_) != lru_.end()) return;
    Entry x;
    x.kind = Kind::kPerTenant;
    x.key = key_;
    x.result = std::make_shared<RewriteResult>(*e.result);
    fill_sql(x.result->sql, e, sql, tenant, nullptr);
    if (!has_ref) {
      Entry ref;
      ref.kind = Kind::kPerTenantRef;
      set_key_template(sql);
      ref.key = key_;
      insert(std::move(ref));
    }
    insert(std::move(x));
  }
  evict();
  publish();
}

RewriteHandle RewriteCache::rewrite_constants(std::string_view sql, const policy::TenantScope& scope,
                                              std::string_view tenant) {
  if (!normalize(sql, tenant)) return nullptr;
  auto it = find(nkey_);
  bool per_tenant = false;
  if (it != lru_.end()) {
    switch (it->kind) {
      case Kind::kConstTemplate: {
        if (it->lists.size() != lists_.size()) return nullptr;  // (the key says they agree)
        hits_.fetch_add(1, std::memory_order_relaxed);
        constant_hits_.fetch_add(1, std::memory_order_relaxed);
        RewriteHandle r = fill_constants(*it, sql, tenant);
        remember_exact(*it, sql, tenant);  // may evict *it: not used after this
        return r;
      }
      case Kind::kConstPerTenantRef:
        per_tenant = true;
        break;
      default:
        return nullptr;  // kNoConst
    }
  }
  std::string qkey;  // the per-tenant key of the normalized text (nkey_ without its 'N')
  if (per_tenant) {
    tenant_key(qkey, 'Q', tenant, std::string_view(nkey_).substr(1));
    if (auto pt = find(qkey); pt != lru_.end()) {
      if (pt->kind != Kind::kConstPerTenant || pt->lists.size() != lists_.size()) return nullptr;  // kNoConst
      hits_.fetch_add(1, std::memory_order_relaxed);
      constant_hits_.fetch_add(1, std::memory_order_relaxed);
      RewriteHandle r = fill_constants(*pt, sql, tenant);
      remember_exact(*pt, sql, tenant);
      return r;
    }
  }
  std::optional<Entry> made;
  if (!per_tenant) {
    bool dependent = false;
    made = make_constant_template(sql, scope, tenant, false, &dependent);
    if (!made && dependent) {
      Entry ref;
      ref.kind = Kind::kConstPerTenantRef;
      ref.key = nkey_;
      insert(std::move(ref));
      per_tenant = true;
      tenant_key(qkey, 'Q', tenant, std::string_view(nkey_).substr(1));
    }
  }
  if (per_tenant) made = make_constant_template(sql, scope, tenant, true, nullptr);
  // The first use of a template is checked against a fresh rewrite of the real text.
  RewriteHandle filled;
  if (made) {
    filled = fill_constants(*made, sql, tenant);
    const RewriteResult fresh = sqlrewrite::rewrite(sql, scope, tenant);
    if (!fresh.allowed || fresh.sql != filled->sql || fresh.kinds != filled->kinds ||
        fresh.tenant_params != filled->tenant_params || fresh.copy_in || !fresh.prepared.empty() ||
        !check_longer_lists(*made, sql, scope, tenant)) {
      made.reset();
    }
  }
  if (!made) {
    Entry none;
    none.kind = Kind::kNoConst;
    none.key = per_tenant ? qkey : nkey_;
    insert(std::move(none));
    evict();
    publish();
    return nullptr;
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  made->key = per_tenant ? qkey : nkey_;
  insert(std::move(*made));
  evict();
  publish();
  return filled;  // the entry's fill for this text, checked above
}

bool RewriteCache::would_hit(std::string_view sql, const policy::TenantScope& scope, std::string_view tenant) {
  if (scope.version != policy_version_) return false;  // rewrite() will start from an empty cache
  set_key_template(sql);
  auto it = find(key_);
  if (it != lru_.end()) {
    if (it->kind == Kind::kTemplate) return true;
    set_key_tenant(sql, tenant);  // kPerTenantRef
    return find(key_) != lru_.end();
  }
  if (!normalize(sql, tenant)) return false;
  auto n = find(nkey_);
  if (n == lru_.end()) return false;
  if (n->kind == Kind::kConstTemplate) return true;
  if (n->kind != Kind::kConstPerTenantRef) return false;
  std::string qkey;
  tenant_key(qkey, 'Q', tenant, std::string_view(nkey_).substr(1));
  auto pt = find(qkey);
  return pt != lru_.end() && pt->kind == Kind::kConstPerTenant;
}

void RewriteCache::adopt(std::string_view sql, const policy::TenantScope& scope, std::string_view tenant,
                         const RewriteResult& result) {
  if (scope.version != policy_version_) reset_for(scope);
  set_key_template(sql);
  if (auto it = find(key_); it != lru_.end() && it->kind == Kind::kTemplate) return;  // already served here
  if (find(key_) == lru_.end()) {
    Entry ref;
    ref.kind = Kind::kPerTenantRef;
    ref.key = key_;
    insert(std::move(ref));
  }
  set_key_tenant(sql, tenant);
  if (find(key_) != lru_.end()) return;
  Entry e;
  e.kind = Kind::kPerTenant;
  e.key = key_;
  e.result = std::make_shared<RewriteResult>(result);
  insert(std::move(e));
  evict();
  publish();
}

std::shared_ptr<const AuditText> RewriteCache::audit_text(std::string_view sql, std::string_view tenant,
                                                          bool normalized) {
  const auto compute = [&]() {
    audit_computations_.fetch_add(1, std::memory_order_relaxed);
    auto a = std::make_shared<AuditText>();
    a->fingerprint = fingerprint_sql(sql);
    if (normalized) a->normalized = normalize_sql(sql);
    a->has_normalized = normalized;
    return std::shared_ptr<const AuditText>(std::move(a));
  };
  const auto usable = [&](const Entry& e, const std::vector<uint32_t>& lengths) {
    return e.audit && (e.audit->has_normalized || !normalized) && e.audit_lengths == lengths;
  };
  const auto heap = [](const Entry& e) {
    return e.audit ? sizeof(AuditText) + e.audit->fingerprint.capacity() + e.audit->normalized.capacity() : 0;
  };
  const auto store = [&](Entry& e, std::vector<uint32_t> lengths) {
    e.bytes -= heap(e);
    bytes_ -= heap(e);
    e.audit = compute();
    e.audit_lengths = std::move(lengths);
    e.bytes += heap(e);
    bytes_ += heap(e);
    publish();
  };
  // The exact text's entry: a template, or the reference to its per-tenant entries (the audit
  // text does not depend on the tenant).
  set_key_template(sql);
  if (auto it = find(key_); it != lru_.end()) {
    if (!usable(*it, {})) store(*it, {});
    return it->audit;
  }
  // The constant template's entry (or its per-tenant reference, or its "no template" mark).
  if (!normalize(sql, tenant)) return compute();
  auto it = find(nkey_);
  if (it == lru_.end()) return compute();
  std::vector<uint32_t> lengths;
  for (const TextList& t : lists_) lengths.push_back(t.count);
  if (!usable(*it, lengths)) store(*it, std::move(lengths));
  return it->audit;
}

namespace {

// The highest $n of a parse tree (0: none), walked without recursion.
int32_t highest_param(const pg_query::ParseResult& tree) {
  int32_t top = 0;
  std::vector<const google::protobuf::Message*> todo{&tree};
  while (!todo.empty()) {
    const google::protobuf::Message& m = *todo.back();
    todo.pop_back();
    const auto* d = m.GetDescriptor();
    if (d == pg_query::ParamRef::descriptor()) {
      top = std::max(top, static_cast<const pg_query::ParamRef&>(m).number());
      continue;
    }
    const auto* r = m.GetReflection();
    for (int i = 0; i < d->field_count(); ++i) {
      const auto* f = d->field(i);
      if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
      if (f->is_repeated()) {
        for (int k = 0; k < r->FieldSize(m, f); ++k) todo.push_back(&r->GetRepeatedMessage(m, f, k));
      } else if (r->HasField(m, f)) {
        todo.push_back(&r->GetMessage(m, f));
      }
    }
  }
  return top;
}

bool glues(char c) {  // would continue a $n token or an identifier before it
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' ||
         static_cast<unsigned char>(c) >= 0x80;
}

}  // namespace

std::optional<TenantParamForm> RewriteCache::tenant_param_form(std::string_view sql, const policy::TenantScope& scope,
                                                               size_t declared_params) {
  if (scope.version != policy_version_) return std::nullopt;  // rewrite() first
  set_key_template(sql);
  auto it = find(key_);
  if (it == lru_.end() || it->kind != Kind::kTemplate || !it->filters_only || it->sql_slots.empty() ||
      !it->result->allowed) {
    return std::nullopt;
  }
  Entry& e = *it;
  if (e.max_param < 0) {
    const ParseOutput parsed = parse_sql(sql);
    if (!parsed.ok) return std::nullopt;
    e.max_param = highest_param(parsed.tree);
  }
  constexpr size_t kMaxParams = 65535;  // PostgreSQL's bound on a statement's parameters
  const size_t first = std::max(declared_params, static_cast<size_t>(e.max_param)) + 1;
  if (first + e.sql_slots.size() - 1 > kMaxParams) return std::nullopt;
  const std::string& tmpl = e.result->sql;
  TenantParamForm out;
  out.first = static_cast<int>(first);
  out.count = static_cast<int>(e.sql_slots.size());
  size_t from = 0;
  for (size_t i = 0; i < e.sql_slots.size(); ++i) {
    const uint32_t pos = e.sql_slots[i];
    // The constant stood between an operator's blank and what follows it: a $n there must not
    // run into a neighbouring token (fail closed: the constant form is kept).
    if ((pos > 0 && glues(tmpl[pos - 1])) || (pos < tmpl.size() && glues(tmpl[pos]))) return std::nullopt;
    out.sql.append(tmpl, from, pos - from);
    out.sql.push_back('$');
    out.sql += std::to_string(first + i);
    from = pos;
  }
  out.sql.append(tmpl, from, std::string::npos);
  return out;
}

RewriteHandle RewriteCache::rewrite(std::string_view sql, const policy::TenantScope& scope,
                                    std::string_view tenant) {
  if (scope.version != policy_version_) reset_for(scope);  // a reload invalidates every entry
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
      return pt->result;  // the entry's own result: never changed once inserted
    }
  }
  // Not cached under its exact text (for this tenant): its shape may be. (This may evict
  // entries: `it` is not used past this point.)
  const bool per_tenant_ref = it != lru_.end();
  if (RewriteHandle r = rewrite_constants(sql, scope, tenant)) return r;
  misses_.fetch_add(1, std::memory_order_relaxed);
  if (!per_tenant_ref) {
    std::optional<Entry> t = make_template(sql, scope);
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
  e.result = std::make_shared<RewriteResult>(sqlrewrite::rewrite(sql, scope, tenant));
  RewriteHandle out = e.result;  // (the entry may be evicted by the next call; the result is ours)
  insert(std::move(e));
  evict();
  publish();
  return out;
}

}  // namespace rowguard::sqlrewrite
