#pragma once
// The rewrite cache: statement text -> a tenant-independent *template* of the rewrite, so that
// one entry serves every tenant and a repeated statement costs a hash lookup plus a splice.
//
// How a template is made (on a miss): the statement is rewritten once with a sentinel tenant, a
// value that does not occur in the statement text. The rewriter reports (RewriteTrace) how many
// tenant constants it inserted and whether the outcome depended on the tenant's value in any
// other way. When it did not, and the sentinel appears in the rewritten SQL exactly that many
// times, each time as the whole string literal '<sentinel>', the SQL is split at those literals;
// a hit splices in the session tenant quoted exactly as libpg_query's deparser quotes a string
// constant (so the spliced text is byte-for-byte what a fresh rewrite gives). Denials are
// templates too: a reason naming the tenant gets the tenant spliced back.
//
// Statements whose outcome depends on the tenant's value (an INSERT or UPDATE naming the tenant
// column with a literal, LISTEN/NOTIFY/UNLISTEN/pg_notify channels "rg<len>_<tenant>_<name>",
// COPY FROM, whose NULL string is compared with the tenant) are cached per (text, tenant)
// instead: the text's entry says "per tenant" and points the lookup to the (text, tenant) entry.
//
// Constant templates (simple protocol traffic with inlined literals): a text whose exact key
// misses is scanned for its integer and string literals (literal_scan.h); the key becomes the
// text with each literal replaced by a marker ('N' + normalized text), so `... WHERE aid = 17` and
// `... WHERE aid = 42` share one entry. The entry is made from a rewrite of the text with every
// literal replaced by a sentinel of the same kind (9-digit integers, 'rgS<digits>' strings) and
// the session tenant replaced by the tenant sentinel, and holds slots for the tenant and for
// each literal; a hit splices the statement's own literals back (integers without leading
// zeros, strings as written), which is byte-for-byte what a fresh rewrite gives. Literals equal
// to the session tenant (and the integer 0, which a unary minus turns into "0", not "-0"; and
// the strings 't'/'f', which the deparser writes as true/false when cast to boolean) stay
// in the key as written: "a constant of this slot is never the tenant" then holds for every text
// sharing the entry. Only allowed SELECT/INSERT/UPDATE/DELETE rewrites whose outcome does not
// depend on a constant's value (RewriteTrace::constant_read) become constant templates, and the
// first use of each is checked against a fresh rewrite of the real text; a statement whose
// outcome depends on the tenant value gets a per-tenant constant template. Shapes that cannot
// be templated are remembered ('N' entry "no template") and keyed by their exact text.
//
// Key: the statement text; the policy version is checked on every call and a new version clears
// the cache (a reload invalidates every entry, and may change the limits).
// Bounded by entries and bytes (an approximation of the heap it holds), least recently used
// evicted first; the newest entry is always kept even if it alone exceeds the byte bound.
//
// Results: rewrite() hands out a RewriteHandle, a shared pointer to a result nobody changes while
// it is held: a later rewrite() on the same cache (by another session of the worker, across a
// co_await) leaves it as it was. A per-tenant entry's result is handed out itself (a copy of the
// pointer). A splice (template or constant template) is written into one of a few result objects
// the cache keeps for that purpose, one that nobody holds any more (use_count() == 1), whose
// buffers are reused: in steady state a hit allocates nothing. A new object is made only when all
// of them are held.
//
// Threading: one cache per worker thread (sessions are pinned to their worker's io_context), so
// the hot path takes no lock; a statement used on every worker has one entry per worker. Only
// the counters are read from other threads (metrics): relaxed atomics. A handle may be read and
// dropped on another thread (the parse pool's cache hands its results to workers as copies, but
// need not): the reuse check pairs the holder's release of the count with an acquire fence.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sqlrewrite/literal_scan.h"
#include "sqlrewrite/rewriter.h"

namespace rowguard::sqlrewrite {

// The tenant value as a SQL string constant, exactly as libpg_query's deparser writes one:
// 'x' with quotes doubled, or E'x' with quotes and backslashes doubled when x holds a backslash.
void append_string_literal(std::string& out, std::string_view value);

// What the audit log writes for a statement besides its text (proxy/net/audit.h): libpg_query's
// fingerprint and, with [audit] mask_literals, the normalized text ($n for each constant).
// Both are the same for every text of one cache entry (the exact text; the texts of a constant
// template differ only in constants, which neither holds), so the entry keeps them: audit mode
// "all" parses each statement for the audit once per entry, not once per execution.
struct AuditText {
  std::string fingerprint;
  std::string normalized;  // "" unless asked for
  bool has_normalized = false;
};

// A rewrite handed out by RewriteCache: valid, and unchanged, for as long as it is held (see
// "Results" above). Copying it costs an atomic increment, no allocation.
using RewriteHandle = std::shared_ptr<const RewriteResult>;

// A statement's rewrite with the tenant as parameters instead of constants (tenant_param_form):
// the tenant constants become $first, $first + 1, ..., $first + count - 1, in text order, each
// standing where a constant '<tenant>' stands in the literal rewrite (each typed by the server
// from its own comparison, as the untyped constant is). The text is the same for every tenant:
// one server-side prepared statement serves them all, the session binding the tenant's value.
struct TenantParamForm {
  std::string sql;
  int first = 0;
  int count = 0;
};

class RewriteCache {
 public:
  // Limits from the policy's [cache] table (re-read whenever the policy version changes).
  RewriteCache() = default;
  // Fixed limits, whatever the policy says (tests, fuzzing, benchmarks).
  explicit RewriteCache(size_t max_entries, size_t max_bytes = policy::CacheSettings{}.max_bytes);

  // The rewrite of `sql` for `tenant`, from the cache or computed and stored; never null. The
  // caller's for as long as it holds it, whatever this cache does meanwhile.
  RewriteHandle rewrite(std::string_view sql, const policy::TenantScope& scope, std::string_view tenant);

  // The tenant-parameter form of `sql` (see TenantParamForm), or nullopt: only for a text whose
  // exact-text template exists (rewrite() made it; nothing is rewritten here) and whose every
  // tenant constant is the right side of a tenant filter `<ref>.<column> = '<tenant>'` the
  // rewriter added, in an allowed SELECT / UPDATE / DELETE (no INSERT, MERGE, COPY, PREPARE,
  // cursor, and nothing whose outcome depends on the tenant's value: those keep the constant).
  // `declared_params`: how many parameter types the client declared (Parse); the tenant's
  // parameters come after the client's: first = 1 + max(declared_params, highest $n of `sql`).
  std::optional<TenantParamForm> tenant_param_form(std::string_view sql, const policy::TenantScope& scope,
                                                   size_t declared_params);

  // Whether rewrite() would be served from this cache (exact text or constant template) without
  // a rewrite: the connection sends a long text to the parse pool only when it would not. Counts
  // nothing; may refresh the entry's place in the LRU.
  bool would_hit(std::string_view sql, const policy::TenantScope& scope, std::string_view tenant);

  // Keeps `result`, computed elsewhere (the parse pool) by sqlrewrite::rewrite(sql, policy,
  // tenant), as this text's entry for this tenant, so the text's next use is a hit here.
  void adopt(std::string_view sql, const policy::TenantScope& scope, std::string_view tenant, const RewriteResult& result);

  // The audit fingerprint (and, when `normalized`, the normalized text) of `sql`, as
  // fingerprint_sql() / normalize_sql() give them, kept with the text's cache entry (its
  // exact-text entry, or its constant template's) after the first call; computed and not kept
  // when the text has no entry. Lists folded in the entry (IN (...), VALUES rows) are kept with
  // their lengths: a text with other lengths recomputes (its normalized text differs).
  std::shared_ptr<const AuditText> audit_text(std::string_view sql, std::string_view tenant, bool normalized);
  // How many times audit_text() parsed a statement (tests).
  size_t audit_computations() const { return audit_computations_.load(std::memory_order_relaxed); }

  // Counters may be read from other threads (metrics, admin console): atomics, relaxed.
  size_t hits() const { return hits_.load(std::memory_order_relaxed); }
  size_t misses() const { return misses_.load(std::memory_order_relaxed); }
  size_t size() const { return entries_.load(std::memory_order_relaxed); }
  size_t bytes() const { return bytes_published_.load(std::memory_order_relaxed); }
  // Entries that are per (text, tenant) rather than templates (for tests and the admin console).
  size_t per_tenant_entries() const { return per_tenant_published_.load(std::memory_order_relaxed); }
  // Whether a text served by a constant template twice lately gets an exact-text entry (on by
  // default; the benchmark of the constant-template path turns it off).
  void set_exact_memo(bool on) { exact_memo_ = on; }

  // Hits served by a constant template (a statement text seen for the first time, whose shape was).
  size_t constant_hits() const { return constant_hits_.load(std::memory_order_relaxed); }

 private:
  enum class Kind : uint8_t {
    kTemplate,      // result.sql / result.reason with the tenant cut out at *_slots
    kPerTenantRef,  // "this text depends on the tenant": look up (text, tenant)
    kPerTenant,     // the final result for one (text, tenant)
    kConstTemplate,      // normalized text: result.sql with tenant and literals cut out at slots
    kConstPerTenantRef,  // normalized text depending on the tenant: look up (normalized, tenant)
    kConstPerTenant,     // a constant template for one tenant (slots for literals only)
    kNoConst,            // normalized text that cannot be a constant template: use the exact text
  };
  // A place in a constant template's SQL: the quoted tenant (literal == -1), literal #n of the
  // folded numbering (literal >= 0: the text's literals outside folded lists, in order, each
  // folded list counting as the literals of one element), or folded list #g (literal == -2 - g).
  struct Slot {
    uint32_t at = 0;
    int32_t literal = -1;
    bool operator==(const Slot&) const = default;
  };
  // A piece of rewritten SQL with slots (literal: -1 the tenant, >= 0 the element's literal #n).
  struct Piece {
    std::string text;
    std::vector<Slot> slots;
    bool operator==(const Piece&) const = default;
  };
  // A folded list (IN (c, c, ...) or VALUES (row), (row), ...): in the rewritten SQL, each
  // element becomes `body` with its own literals, elements separated by `between`.
  struct FoldedList {
    Piece body;
    Piece between;
  };
  // A folded list of the text being looked up (normalize()): its literals are constants_[first,
  // first + count * per), element i holding [first + i * per, first + (i + 1) * per).
  struct TextList {
    uint32_t first = 0;
    uint32_t per = 0;
    uint32_t count = 0;
    uint32_t last_begin = 0;  // the last element's bytes in the text (for the check at creation)
    uint32_t last_end = 0;
  };
  struct Entry {
    std::string key;  // 'T' + text, or 'P' + tenant + '\0' + text (tenants hold no NUL)
    Kind kind = Kind::kTemplate;
    // A template's text with the slots cut out (never handed out), or a per-tenant entry's final
    // result (handed out; not changed once the entry is inserted). Null for the "ref" and
    // kNoConst kinds.
    std::shared_ptr<RewriteResult> result;
    std::vector<uint32_t> sql_slots;     // offsets in result.sql where the quoted tenant goes
    std::vector<uint32_t> reason_slots;  // offsets in result.reason where the raw tenant goes
    std::vector<Slot> slots;             // kConstTemplate / kConstPerTenant, in text order
    std::vector<FoldedList> lists;       // the folded lists of a constant template, in text order
    // kTemplate: every tenant constant is a tenant filter of an allowed SELECT / UPDATE / DELETE
    // (tenant_param_form()); `max_param`: the text's highest $n, once asked (-1: not yet).
    bool filters_only = false;
    int32_t max_param = -1;
    std::shared_ptr<const AuditText> audit;  // audit_text() of the entry's texts, once asked
    std::vector<uint32_t> audit_lengths;     // the folded lists' lengths `audit` was computed for
    size_t bytes = 0;
  };
  using Lru = std::list<Entry>;

  void reset_for(const policy::TenantScope& scope);
  Lru::iterator find(std::string_view key);
  Lru::iterator insert(Entry e);
  void evict();
  void publish();
  // Rewrites with a sentinel tenant; returns a template entry, or nullopt when the result
  // depends on the tenant in a way a template cannot capture.
  std::optional<Entry> make_template(std::string_view sql, const policy::TenantScope& scope);
  // A result object for a splice that nobody holds (from spares_), or a new one.
  std::shared_ptr<RewriteResult> spare();
  RewriteHandle splice(const Entry& e, std::string_view tenant);
  // The constant-template path; null when the text is not normalizable or its shape cannot be
  // a constant template (the caller then keys by the exact text).
  RewriteHandle rewrite_constants(std::string_view sql, const policy::TenantScope& scope,
                                         std::string_view tenant);
  bool normalize(std::string_view sql, std::string_view tenant);
  std::optional<Entry> make_constant_template(std::string_view sql, const policy::TenantScope& scope,
                                              std::string_view tenant, bool per_tenant,
                                              bool* tenant_dependent);
  RewriteHandle fill_constants(const Entry& e, std::string_view sql, std::string_view tenant);
  void fill_sql(std::string& out, const Entry& e, std::string_view sql, std::string_view tenant,
                std::vector<uint32_t>* tenant_at) const;
  void fill_piece(std::string& out, const Piece& p, size_t base, std::string_view sql, std::string_view tenant,
                  std::vector<uint32_t>* tenant_at) const;
  void append_constant(std::string& out, size_t k, std::string_view sql) const;
  // A list found in the text (literals_ indices, byte offsets): lit_per literals per element.
  struct RawList {
    size_t lit_first = 0, lit_per = 0, count = 0;
    size_t begin = 0, elem0_end = 0, end = 0, last_begin = 0;
  };
  static bool stays(const Literal& l, std::string_view token, std::string_view tenant);
  void find_lists(std::string_view sql);
  // A sentinel found in the rewritten SQL: `len` bytes at `at`, the tenant (-1) or constant #n.
  struct Cut {
    uint32_t at;
    uint32_t len;
    int32_t literal;
  };
  bool fold(Entry& e, std::string_view out, const std::vector<Cut>& cuts) const;
  bool check_longer_lists(const Entry& e, std::string_view sql, const policy::TenantScope& scope,
                          std::string_view tenant);
  void remember_exact(const Entry& e, std::string_view sql, std::string_view tenant);
  void set_key_template(std::string_view sql);
  void set_key_tenant(std::string_view sql, std::string_view tenant);

  std::optional<policy::CacheSettings> fixed_;
  size_t max_entries_ = policy::CacheSettings{}.max_entries;
  size_t max_bytes_ = policy::CacheSettings{}.max_bytes;
  uint64_t policy_version_ = 0;
  Lru lru_;  // most recent first
  std::unordered_map<std::string_view, Lru::iterator> map_;  // keys point into Entry::key
  size_t bytes_ = 0;
  size_t per_tenant_ = 0;
  std::string key_;        // lookup key scratch (no allocation once grown)
  std::string nkey_;       // normalized-text key scratch
  std::vector<Literal> literals_;   // scan_literals output scratch
  std::vector<Literal> constants_;  // the literals replaced by markers in nkey_ (slot numbers)
  std::vector<TextList> lists_;     // the folded lists of the text (constants_ ranges)
  std::vector<uint8_t> stays_;      // scratch: which literals_ stay in the key as written (with lists)
  std::vector<RawList> raw_;        // scratch: the lists found by find_lists()
  std::vector<uint64_t> seen_;      // hashes of texts lately served by constant templates
  bool exact_memo_ = true;
  // Spliced results handed out; one is reused (buffers and all) once only spares_ holds it.
  static constexpr size_t kSpares = 8;
  std::vector<std::shared_ptr<RewriteResult>> spares_;
  std::atomic<size_t> hits_{0};
  std::atomic<size_t> misses_{0};
  std::atomic<size_t> constant_hits_{0};
  std::atomic<size_t> entries_{0};
  std::atomic<size_t> bytes_published_{0};
  std::atomic<size_t> per_tenant_published_{0};
  std::atomic<size_t> audit_computations_{0};
};

}  // namespace rowguard::sqlrewrite
