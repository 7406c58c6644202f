#pragma once
// Transaction pooling: the protocol-level prepared statements ONE server connection holds under
// names rowguard owns (`rg_<n>`), one per distinct rewritten text and parameter types. Created
// by the network layer per pooled server connection; outlives the client leases. A client's
// named statements live in its own TenantSession (client name -> text); when a client runs one
// on a connection, the session finds it here by text or has the connection prepare it
// (TenantSession::attach). Socket-free; one thread (the connection's) uses it at a time.
//
// An entry is pending (Parse sent, no ParseComplete yet: an error removes it), held, or closing
// (evicted: Close sent, no CloseComplete yet; a Close the server skipped makes it held again).
// Bounded: at the bound, the least recently used held entry not used since the current batch
// began (the last Sync) is evicted; when every entry is in use the bound is exceeded until the
// next Parse finds one to evict.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rowguard::session {

class ServerStatements {
 public:
  explicit ServerStatements(size_t capacity = 200) : capacity_(capacity == 0 ? 1 : capacity) {}

  // The server name of a held statement of this text and types, or of a pending one whose Parse
  // was sent after tick `pending_after` (touched: now the most recently used), or nullopt. A
  // session passes the tick at which its current batch began: a Parse of the same batch that
  // fails makes the server skip whatever relies on it, a Parse of an earlier one does not.
  std::optional<std::string> find(std::string_view rewritten, const std::vector<int32_t>& types,
                                  uint64_t pending_after);
  // A Parse of this text and types is about to be sent: its new server name (pending).
  std::string add_pending(std::string_view rewritten, const std::vector<int32_t>& types);
  // SQL-level PREPARE (a client's `PREPARE x (types) AS ...`): the same, keyed by the PREPARE's
  // text under the placeholder name rg_0 (its declared type names are part of it). Never the
  // key of a Parse (a Parse key starts with its count of types). add_pending_sql() always makes
  // a new name (the server answers the client's PREPARE itself); an older statement of the same
  // text stays until evicted.
  std::optional<std::string> find_sql(std::string_view prepare_template, uint64_t pending_after);
  std::string add_pending_sql(std::string_view prepare_template);
  // Called after add_pending(): the least recently used held statement to close (now closing),
  // or nullopt when within the bound or when every held statement was used since `batch_tick`.
  std::optional<std::string> evict(uint64_t batch_tick);

  void parsed(std::string_view name);         // ParseComplete: held
  void parse_failed(std::string_view name);   // an error or a skip: the server does not hold it
  void closed(std::string_view name);         // CloseComplete of an eviction: gone
  void close_skipped(std::string_view name);  // the Close was skipped: held again
  // The server dropped statements behind rowguard's back (a pinned client's DEALLOCATE ALL /
  // DISCARD ALL / DEALLOCATE <name>).
  void clear();
  void dropped(std::string_view name);

  // A logical clock, advanced by every find / add: a session records it when a batch begins.
  uint64_t tick() const { return tick_; }
  size_t size() const { return by_name_.size(); }  // pending, held and closing
  size_t held() const;
  size_t capacity() const { return capacity_; }
  void set_capacity(size_t capacity) { capacity_ = capacity == 0 ? 1 : capacity; }
  bool holds(std::string_view name) const;  // held (confirmed by the server)

 private:
  enum class State : uint8_t { kPending, kHeld, kClosing };
  struct Entry {
    std::string key;
    State state = State::kPending;
    uint64_t last_use = 0;
    uint64_t added = 0;
  };
  static std::string key_of(std::string_view rewritten, const std::vector<int32_t>& types);
  static std::string sql_key_of(std::string_view prepare_template) { return "S:" + std::string(prepare_template); }
  std::optional<std::string> find_key(const std::string& key, uint64_t pending_after);
  std::string add_key(std::string key);
  void erase(std::string_view name);

  size_t capacity_;
  uint64_t tick_ = 0;
  uint64_t next_name_ = 1;
  std::map<std::string, Entry, std::less<>> by_name_;
  std::map<std::string, std::string, std::less<>> by_key_;  // key -> name (pending or held)
};

}  // namespace rowguard::session
