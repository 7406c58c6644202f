// Ceilings on tenant-settable server settings (setting_limits.h).
#include "policy/setting_limits.h"

#include <cctype>
#include <cmath>
#include <algorithm>
#include <cstdlib>
#include <iterator>

namespace rowguard::policy {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

SettingCeiling ceiling(const char* name, SettingCeiling::Unit unit, const char* written) {
  SettingCeiling c;
  c.name = name;
  c.unit = unit;
  c.written = written;
  c.max = *parse_setting_value(written, unit);
  return c;
}

}  // namespace

std::vector<SettingCeiling> SettingLimits::defaults() {
  using U = SettingCeiling::Unit;
  return {
      ceiling("work_mem", U::kMemoryKb, "64MB"),
      ceiling("maintenance_work_mem", U::kMemoryKb, "256MB"),
      ceiling("temp_file_limit", U::kMemoryKb, "10GB"),
      ceiling("hash_mem_multiplier", U::kFactor, "4"),
      ceiling("statement_timeout", U::kTimeMs, "5min"),
      ceiling("lock_timeout", U::kTimeMs, "5min"),
      ceiling("idle_in_transaction_session_timeout", U::kTimeMs, "1h"),
      ceiling("idle_session_timeout", U::kTimeMs, "1h"),
  };
}

const SettingCeiling* SettingLimits::find(std::string_view name) const {
  const std::string n = lower(name);
  for (const auto& c : ceilings) {
    if (c.name == n) return &c;
  }
  return nullptr;
}

std::optional<std::string> SettingLimits::check(std::string_view name, std::string_view value) const {
  const SettingCeiling* c = find(name);
  if (c == nullptr) return std::nullopt;
  const auto v = parse_setting_value(value, c->unit);
  const std::string what = c->name + " = '" + std::string(value.substr(0, 64)) + "' is not allowed";
  if (!v) return what + " (rowguard cannot read the value; the ceiling is " + c->written + ")";
  // 0 (and -1 for temp_file_limit) switch the limit off in PostgreSQL; a factor has no such value.
  const bool unlimited = c->unit == SettingCeiling::Unit::kFactor ? false : *v <= 0;
  if (unlimited) return what + " (0 or less means no limit; the ceiling is " + c->written + ", [limits.settings])";
  if (*v > c->max) return what + " (above the ceiling of " + c->written + ", [limits.settings])";
  return std::nullopt;
}

std::optional<double> parse_setting_value(std::string_view text, SettingCeiling::Unit unit) {
  // Like guc.c parse_int/parse_real: optional whitespace, a number, optional whitespace, a unit.
  std::string s(text);
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  const char* begin = s.c_str() + i;
  char* end = nullptr;
  const double number = std::strtod(begin, &end);
  if (end == begin || !std::isfinite(number)) return std::nullopt;
  // strtod also reads hex and "inf"/"nan": only plain decimal text is accepted.
  for (const char* p = begin; p < end; ++p) {
    if (!std::isdigit(static_cast<unsigned char>(*p)) && *p != '.' && *p != '-' && *p != '+' && *p != 'e' &&
        *p != 'E') {
      return std::nullopt;
    }
  }
  std::string_view rest(end);
  while (!rest.empty() && std::isspace(static_cast<unsigned char>(rest.front()))) rest.remove_prefix(1);
  while (!rest.empty() && std::isspace(static_cast<unsigned char>(rest.back()))) rest.remove_suffix(1);
  // PostgreSQL's unit tables, largest first (guc.c memory_unit_conversion_table,
  // time_unit_conversion_table for base units kB and ms).
  struct UnitRow {
    std::string_view name;
    double multiplier;
  };
  static constexpr UnitRow kMemory[] = {{"TB", 1024.0 * 1024 * 1024}, {"GB", 1024.0 * 1024}, {"MB", 1024}, {"kB", 1}, {"B", 1.0 / 1024}};
  static constexpr UnitRow kTime[] = {{"d", 86400.0 * 1000}, {"h", 3600.0 * 1000}, {"min", 60.0 * 1000}, {"s", 1000}, {"ms", 1}, {"us", 0.001}};
  if (unit == SettingCeiling::Unit::kFactor) {
    if (!rest.empty()) return std::nullopt;  // a factor has no unit
    return number;
  }
  double value = number;
  if (!rest.empty()) {
    const UnitRow* table = unit == SettingCeiling::Unit::kMemoryKb ? kMemory : kTime;
    const size_t rows = unit == SettingCeiling::Unit::kMemoryKb ? std::size(kMemory) : std::size(kTime);
    size_t i = 0;
    while (i < rows && table[i].name != rest) ++i;  // PostgreSQL's units are case-sensitive
    if (i == rows) return std::nullopt;
    value = number * table[i].multiplier;
    // guc.c convert_to_base_unit: a fractional value is rounded to the next smaller unit.
    if (i + 1 < rows) value = std::rint(value / table[i + 1].multiplier) * table[i + 1].multiplier;
  }
  // guc.c parse_int: the value in the base unit is rounded to an integer ('0.4' ms is 0: no limit).
  return std::rint(value);
}

}  // namespace rowguard::policy

// ---- [limits.settings] ------------------------------------------------------------------

#include "policy/identity.h"
#include "policy/setting_limits_load.h"

namespace rowguard::policy {

void parse_setting_limits(const toml::value& table, SettingLimits& limits) {
  auto fail = [](const toml::value& at, const std::string& what) {
    throw PolicyError(format_policy_error(at, what, "here"));
  };
  if (!table.is_table()) fail(table, "[limits.settings] must be a table");
  for (const auto& [key, value] : table.as_table()) {
    auto it = std::find_if(limits.ceilings.begin(), limits.ceilings.end(),
                           [&](const SettingCeiling& c) { return c.name == key; });
    if (it == limits.ceilings.end()) {
      std::string list;
      for (const auto& c : limits.ceilings) list += (list.empty() ? "" : ", ") + c.name;
      fail(value, "unknown setting \"" + key + "\" in [limits.settings] (allowed: " + list + ")");
    }
    std::string written;
    if (value.is_string()) {
      written = value.as_string().str;
    } else if (value.is_integer()) {
      written = std::to_string(value.as_integer());
    } else if (value.is_floating() && it->unit == SettingCeiling::Unit::kFactor) {
      written = std::to_string(value.as_floating());
    } else {
      fail(value, "\"" + key + "\" must be a string with a unit such as \"64MB\" or \"5min\"");
    }
    const auto v = parse_setting_value(written, it->unit);
    if (!v || *v <= 0) {
      fail(value, "\"" + key + "\" must be a positive value (" +
                      std::string(it->unit == SettingCeiling::Unit::kMemoryKb ? "kB, MB, GB, TB"
                                  : it->unit == SettingCeiling::Unit::kTimeMs ? "ms, s, min, h, d"
                                                                             : "a number") +
                      ")");
    }
    it->max = *v;
    it->written = written;
  }
}

}  // namespace rowguard::policy
