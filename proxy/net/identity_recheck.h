#pragma once
// After a policy reload: does the login of an open session still map to the same tenant?
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "policy/policy.h"
#include "proxy/net/client_auth.h"

namespace rowguard::net {

// Overwrites a secret's bytes (OPENSSL_cleanse: not optimised away) and empties it.
void wipe(std::string& secret);

// A secret kept in memory only (a JWT login's token): wiped when replaced or destroyed, never
// printed (no operator<<).
class SecretString {
 public:
  SecretString() = default;
  ~SecretString() { wipe(value_); }
  SecretString(const SecretString&) = delete;
  SecretString& operator=(const SecretString&) = delete;
  void assign(std::string_view value) {
    wipe(value_);
    value_.assign(value);
  }
  operator std::string_view() const { return value_; }

 private:
  std::string value_;
};

// "" when `policy` still gives `user` (authenticated by `method`, see ClientAuth::method) the
// tenant the session has (nullopt: bypass), else the reason, for a FATAL 28000 that ends the
// session. A JWT login (`jwt_token`: the token it logged in with) is verified again under
// `policy` at `now` (seconds since the epoch): a rotated key, a changed issuer/audience/claim,
// a lower jwt_max_lifetime, an expired token or a tenant claim that names another tenant end
// it. The reason names the check that failed, never the token.
std::string login_revoked(const policy::Policy& policy, AuthMethod method, const std::string& user,
                          const std::optional<std::string>& tenant, std::string_view jwt_token, int64_t now);

}  // namespace rowguard::net
