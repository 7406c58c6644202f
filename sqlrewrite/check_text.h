#pragma once
// Small helpers the write checks (key_check, fk_check, referential_check, on_conflict_check,
// sequence_check) share for matching column lists and writing their denial messages.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace rowguard::sqlrewrite::check_text {

// A name in double quotes, as the messages show it (not SQL quoting).
inline std::string q(std::string_view s) { return "\"" + std::string(s) + "\""; }

inline bool contains(const std::vector<std::string>& v, std::string_view x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// "a, b, c"
inline std::string list(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& c : v) out += (out.empty() ? "" : ", ") + c;
  return out;
}

}  // namespace rowguard::sqlrewrite::check_text
