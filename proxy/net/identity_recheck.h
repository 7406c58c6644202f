#pragma once
// After a policy reload: does the login of an open session still map to the same tenant?
#include <optional>
#include <string>

#include "policy/policy.h"

namespace rowguard::net {

// "" when `policy` still gives `user` (authenticated by `method`, see ClientAuth::method) the
// tenant the session has (nullopt: bypass), else the reason, for a FATAL 28000 that ends the
// session. A JWT login carries its tenant in the token, which cannot be re-read: it stays valid
// while the policy still uses identity = "jwt".
std::string login_revoked(const policy::Policy& policy, const std::string& method, const std::string& user,
                          const std::optional<std::string>& tenant);

}  // namespace rowguard::net
