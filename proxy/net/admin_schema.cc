// See admin_schema.h.
#include "proxy/net/admin_schema.h"

#include <algorithm>
#include <chrono>

namespace rowguard::net::admin {
namespace {

std::string key_text(const policy::UniqueKey& k) {
  std::string cols;
  for (const auto& c : k.columns) cols += (cols.empty() ? "" : ",") + c;
  return k.name + "(" + (k.columns.empty() ? std::string("expression") : cols) + ")" + (k.primary ? " primary" : "") +
         (k.partial ? " partial" : "");
}

}  // namespace

int64_t unix_now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

ResultSet schema_result(const policy::Policy& p, const SchemaStatus* status, int64_t now_us) {
  ResultSet r{{"table", "tenant_column", "found", "relkind", "columns", "unique_keys", "keys_without_tenant_column",
               "foreign_keys", "children", "snapshot", "error", "age_seconds", "last_read_reason"},
              {},
              "SHOW"};
  const policy::SchemaSnapshot* s = p.schema.get();
  const bool loaded = s != nullptr && s->loaded;
  std::optional<std::string> error;
  if (status != nullptr && !status->last_error.empty()) {
    error = status->last_error;
  } else if (s != nullptr && !s->error.empty()) {
    error = s->error;
  }
  std::optional<std::string> age;
  // The last successful read (a read that found nothing new keeps the installed snapshot).
  int64_t read_at = s != nullptr ? s->read_at_us : 0;
  if (status != nullptr && status->loaded_at_us > read_at) read_at = status->loaded_at_us;
  if (read_at > 0) age = std::to_string(std::max<int64_t>(0, now_us - read_at) / 1000000);
  std::optional<std::string> reason;
  if (status != nullptr && !status->last_reason.empty()) reason = status->last_reason;
  const std::string state = loaded ? "loaded" : (s == nullptr ? "unknown" : "error");
  for (const auto& [name, rule] : p.tables) {
    std::vector<std::optional<std::string>> row(13);
    row[0] = name.to_string();
    row[1] = rule.global ? std::optional<std::string>() : rule.column;
    const policy::TableInfo* t = loaded ? s->table(name) : nullptr;
    if (loaded) row[2] = t != nullptr ? "true" : "false";
    if (t != nullptr) {
      row[3] = std::string(1, t->relkind);
      row[4] = std::to_string(t->columns.size());
      std::string keys, cross;
      for (const auto& k : t->unique_keys) {
        keys += (keys.empty() ? "" : " ") + key_text(k);
        if (!rule.global && std::find(k.columns.begin(), k.columns.end(), rule.column) == k.columns.end()) {
          cross += (cross.empty() ? "" : " ") + k.name;
        }
      }
      for (const auto& x : t->exclusion_constraints) {
        keys += (keys.empty() ? "" : " ") + x + "(exclusion)";
        if (!rule.global) cross += (cross.empty() ? "" : " ") + x;
      }
      row[5] = keys;
      row[6] = cross;
      row[7] = std::to_string(t->foreign_keys.size());
      row[8] = std::to_string(t->children.size());
    }
    row[9] = state;
    row[10] = error;
    row[11] = age;
    row[12] = reason;
    r.rows.push_back(std::move(row));
  }
  return r;
}

}  // namespace rowguard::net::admin
