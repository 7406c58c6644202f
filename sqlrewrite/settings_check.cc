// SET values against the [limits.settings] ceilings (settings_check.h).
#include "sqlrewrite/settings_check.h"

namespace rowguard::sqlrewrite {

std::optional<std::string> setting_ceiling_violation(const pg_query::VariableSetStmt& s,
                                                     const policy::SettingLimits& limits) {
  if (s.kind() != pg_query::VAR_SET_VALUE) return std::nullopt;
  const policy::SettingCeiling* c = limits.find(s.name());
  if (c == nullptr) return std::nullopt;
  std::string value;
  bool plain = s.args_size() == 1 && s.args(0).has_a_const();
  if (plain) {
    const pg_query::A_Const& k = s.args(0).a_const();
    if (k.has_ival()) {
      value = std::to_string(k.ival().ival());
    } else if (k.has_fval()) {
      value = k.fval().fval();
    } else if (k.has_sval()) {
      value = k.sval().sval();
    } else {
      plain = false;
    }
  }
  if (!plain) {
    return "SET " + c->name + " must be one constant within the ceiling of " + c->written + " ([limits.settings])";
  }
  if (auto why = limits.check(c->name, value)) return "SET " + *why;
  return std::nullopt;
}

}  // namespace rowguard::sqlrewrite
