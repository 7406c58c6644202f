#pragma once
// Reading [limits.settings] (internal to the policy loader; see setting_limits.h).
#include <toml.hpp>

#include "policy/setting_limits.h"

namespace rowguard::policy {

// Replaces the ceilings named in the table; others keep their defaults. Throws PolicyError on an
// unknown setting, a value that is not a string or number, a malformed value, or 0 / negative.
void parse_setting_limits(const toml::value& table, SettingLimits& limits);

}  // namespace rowguard::policy
