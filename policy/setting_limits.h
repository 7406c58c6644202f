#pragma once
// [limits.settings]: ceilings on the server settings a tenant may change (SET, SET LOCAL, a
// startup parameter), so that one tenant cannot exhaust the server for all of them: memory per
// sort/hash (work_mem = '1TB'), timeouts switched off (statement_timeout = 0) or set to days.
//
//   [limits.settings]
//   work_mem = "64MB"            # kB, MB, GB, TB (PostgreSQL's memory units; a bare number is kB)
//   statement_timeout = "5min"   # ms, s, min, h, d (a bare number is ms)
//
// A value above the ceiling, or 0 / -1 where PostgreSQL reads that as "no limit", is refused with
// 42501 naming the ceiling. A value rowguard cannot read is refused too. Settings without a
// ceiling here are governed by the allow-list of the rewriter alone.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rowguard::policy {

struct SettingCeiling {
  enum class Unit { kMemoryKb, kTimeMs, kFactor };
  std::string name;     // lower case, as PostgreSQL names the setting
  Unit unit = Unit::kMemoryKb;
  double max = 0;       // in the unit's base (kB, ms, plain number)
  std::string written;  // the ceiling as the policy wrote it, for messages ("64MB")
};

struct SettingLimits {
  // Defaults: work_mem 64MB, maintenance_work_mem 256MB, temp_file_limit 10GB,
  // hash_mem_multiplier 4, statement_timeout / lock_timeout 5min,
  // idle_in_transaction_session_timeout / idle_session_timeout 1h.
  std::vector<SettingCeiling> ceilings = defaults();
  static std::vector<SettingCeiling> defaults();

  const SettingCeiling* find(std::string_view name) const;
  // nullopt when `value` (the text PostgreSQL would parse, e.g. "1TB", "0", "30s") is within the
  // ceiling of `name` (or `name` has none); else why not: "work_mem = '1TB' is not allowed (above
  // the ceiling of 64MB, [limits.settings])".
  std::optional<std::string> check(std::string_view name, std::string_view value) const;
};

// A setting's value in its base unit with PostgreSQL's unit suffixes (guc.c: kB MB GB TB, ms s
// min h d; a number without a unit is in the base unit); nullopt when malformed.
std::optional<double> parse_setting_value(std::string_view text, SettingCeiling::Unit unit);

}  // namespace rowguard::policy
