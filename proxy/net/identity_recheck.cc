#include "proxy/net/identity_recheck.h"

#include <openssl/crypto.h>

#include "auth/jwt.h"

namespace rowguard::net {

void wipe(std::string& secret) {
  if (!secret.empty()) OPENSSL_cleanse(secret.data(), secret.size());
  secret.clear();
}

std::string login_revoked(const policy::Policy& policy, AuthMethod method, const std::string& user,
                          const std::optional<std::string>& tenant, std::string_view jwt_token, int64_t now) {
  const std::string ended = "rowguard: a policy reload ended this session: ";
  if (method == AuthMethod::kRole) {
    if (policy.identity.mode != policy::IdentityMode::kRole) return ended + "[tenancy] identity is no longer \"role\"";
    auto it = policy.roles.find(user);
    if (it == policy.roles.end()) return ended + "role \"" + user + "\" is no longer mapped to a tenant";
    if (it->second != tenant) return ended + "role \"" + user + "\" is now mapped to another tenant";
    return "";
  }
  if (method == AuthMethod::kJwt) {
    if (policy.identity.mode != policy::IdentityMode::kJwt) return ended + "[tenancy] identity is no longer \"jwt\"";
    if (policy.identity.jwt == nullptr) return ended + "no JWT verifier is configured";
    const auth::JwtResult r = policy.identity.jwt->verify(jwt_token, now);
    if (!r.ok) return ended + "the login's JWT is no longer accepted: " + r.error;
    if (r.tenant != tenant) {
      return ended + "the login's JWT now names another tenant (claim \"" + policy.identity.jwt->options().tenant_claim +
             "\")";
    }
    return "";
  }
  // SCRAM logins of [[tenants]] / [[bypass]] (identity = "map", and bypass users under "jwt").
  const policy::Login* login = policy.login(user);
  if (login == nullptr) return ended + "user \"" + user + "\" is no longer in the policy";
  if (login->tenant != tenant) return ended + "user \"" + user + "\" now belongs to another tenant";
  if (policy.identity.mode == policy::IdentityMode::kRole) return ended + "[tenancy] identity is now \"role\"";
  return "";
}

}  // namespace rowguard::net
