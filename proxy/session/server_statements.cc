#include "proxy/session/server_statements.h"

namespace rowguard::session {

std::string ServerStatements::key_of(std::string_view rewritten, const std::vector<int32_t>& types) {
  // The types first, counted, then the text: no two (text, types) pairs share a key.
  std::string key = std::to_string(types.size());
  for (int32_t t : types) {
    key.push_back(',');
    key += std::to_string(t);
  }
  key.push_back(':');
  key.append(rewritten);
  return key;
}

std::optional<std::string> ServerStatements::find(std::string_view rewritten, const std::vector<int32_t>& types,
                                                  uint64_t pending_after) {
  return find_key(key_of(rewritten, types), pending_after);
}

std::optional<std::string> ServerStatements::find_sql(std::string_view prepare_template, uint64_t pending_after) {
  return find_key(sql_key_of(prepare_template), pending_after);
}

std::optional<std::string> ServerStatements::find_key(const std::string& key, uint64_t pending_after) {
  auto k = by_key_.find(key);
  if (k == by_key_.end()) return std::nullopt;
  auto it = by_name_.find(k->second);
  if (it == by_name_.end() || it->second.state == State::kClosing) return std::nullopt;
  if (it->second.state == State::kPending && it->second.added <= pending_after) return std::nullopt;
  it->second.last_use = ++tick_;
  return it->first;
}

std::string ServerStatements::add_pending(std::string_view rewritten, const std::vector<int32_t>& types) {
  return add_key(key_of(rewritten, types));
}

std::string ServerStatements::add_pending_sql(std::string_view prepare_template) {
  return add_key(sql_key_of(prepare_template));
}

std::string ServerStatements::add_key(std::string key) {
  std::string name = "rg_" + std::to_string(next_name_++);
  by_key_[key] = name;
  ++tick_;
  by_name_[name] = Entry{std::move(key), State::kPending, tick_, tick_};
  return name;
}

std::optional<std::string> ServerStatements::evict(uint64_t batch_tick) {
  size_t live = 0;  // closing ones are on their way out
  for (const auto& [name, e] : by_name_) live += e.state != State::kClosing;
  if (live <= capacity_) return std::nullopt;
  Entry* victim = nullptr;
  const std::string* victim_name = nullptr;
  for (auto& [name, e] : by_name_) {
    if (e.state != State::kHeld || e.last_use > batch_tick) continue;
    if (victim == nullptr || e.last_use < victim->last_use) {
      victim = &e;
      victim_name = &name;
    }
  }
  if (victim == nullptr) return std::nullopt;
  victim->state = State::kClosing;
  // (A newer statement of the same text may own the key: an add_pending_sql.)
  if (auto k = by_key_.find(victim->key); k != by_key_.end() && k->second == *victim_name) by_key_.erase(k);
  return *victim_name;
}

void ServerStatements::parsed(std::string_view name) {
  if (auto it = by_name_.find(name); it != by_name_.end()) it->second.state = State::kHeld;
}

void ServerStatements::erase(std::string_view name) {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return;
  if (auto k = by_key_.find(it->second.key); k != by_key_.end() && k->second == name) by_key_.erase(k);
  by_name_.erase(it);
}

void ServerStatements::parse_failed(std::string_view name) { erase(name); }
void ServerStatements::closed(std::string_view name) { erase(name); }
void ServerStatements::dropped(std::string_view name) { erase(name); }

void ServerStatements::close_skipped(std::string_view name) {
  auto it = by_name_.find(name);
  if (it == by_name_.end() || it->second.state != State::kClosing) return;
  if (by_key_.count(it->second.key) > 0) {
    // The text was prepared again under another name meanwhile: close this one later.
    it->second.state = State::kHeld;
    it->second.last_use = 0;
    return;
  }
  it->second.state = State::kHeld;
  by_key_[it->second.key] = it->first;
}

void ServerStatements::clear() {
  by_name_.clear();
  by_key_.clear();
}

size_t ServerStatements::held() const {
  size_t n = 0;
  for (const auto& [name, e] : by_name_) n += e.state == State::kHeld;
  return n;
}

bool ServerStatements::holds(std::string_view name) const {
  auto it = by_name_.find(name);
  return it != by_name_.end() && it->second.state == State::kHeld;
}

}  // namespace rowguard::session
