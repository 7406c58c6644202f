#pragma once
// SET checks beyond the rewriter's allow-list: the value of a setting with a ceiling in
// [limits.settings] (policy/setting_limits.h) must be within it.
#include <optional>
#include <string>

#include "pg_query/pg_query.pb.h"
#include "policy/setting_limits.h"

namespace rowguard::sqlrewrite {

// For SET name = value (VAR_SET_VALUE) of a setting with a ceiling: nullopt when the value is
// within it, else the reason (without the "rowguard: " prefix). A value that is not one plain
// constant (a list, an expression) is refused. Other forms and settings: nullopt.
std::optional<std::string> setting_ceiling_violation(const pg_query::VariableSetStmt& s,
                                                     const policy::SettingLimits& limits);

}  // namespace rowguard::sqlrewrite
