// [tenancy] identity, jwt_* keys and [[roles]] (see identity.h).
#include "policy/identity.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "auth/jwt.h"

namespace rowguard::policy {
namespace {

[[noreturn]] void fail(const toml::value& at, const std::string& what, const std::string& here = "here") {
  throw PolicyError(format_policy_error(at, what, here));
}

std::optional<std::string> opt_string(const toml::value& t, const std::string& key) {
  if (!t.contains(key)) return std::nullopt;
  const auto& v = t.at(key);
  if (!v.is_string()) fail(v, "\"" + key + "\" must be a string", "not a string");
  return v.as_string().str;
}

// A tenant value: a non-empty string or an integer.
std::string tenant_value(const toml::value& v) {
  std::string t;
  if (v.is_string()) {
    t = v.as_string().str;
  } else if (v.is_integer()) {
    t = std::to_string(v.as_integer());
  } else {
    fail(v, "\"tenant\" must be a string (or an integer)");
  }
  if (t.empty() || t.find('\0') != std::string::npos) fail(v, "invalid tenant value");
  return t;
}

}  // namespace

const std::set<std::string>& identity_tenancy_keys() {
  static const std::set<std::string> keys = {
      "identity",     "jwt_secret",  "jwt_secret_env", "jwt_public_key", "jwt_tenant_claim",
      "jwt_audience", "jwt_issuer",  "jwt_leeway",     "jwt_allow_without_tls",
      "jwt_max_lifetime"};
  return keys;
}

void parse_identity(const toml::value& t, Policy& p) {
  const auto mode = parse_mode<IdentityMode>(opt_string(t, "identity").value_or("map"));
  if (!mode) fail(t.at("identity"), "\"identity\" must be \"map\", \"jwt\" or \"role\"");
  p.identity.mode = *mode;
  if (p.identity.mode != IdentityMode::kJwt) {
    for (const auto& key : identity_tenancy_keys()) {
      if (key != "identity" && t.contains(key)) fail(t.at(key), "\"" + key + "\" needs identity = \"jwt\"");
    }
    return;
  }
  auth::JwtOptions options;
  options.tenant_claim = opt_string(t, "jwt_tenant_claim").value_or("tenant_id");
  if (options.tenant_claim.empty()) fail(t.at("jwt_tenant_claim"), "empty jwt_tenant_claim");
  options.audience = opt_string(t, "jwt_audience");
  options.issuer = opt_string(t, "jwt_issuer");
  if (t.contains("jwt_leeway")) {
    const auto& v = t.at("jwt_leeway");
    if (!v.is_integer() || v.as_integer() < 0 || v.as_integer() > 3600) {
      fail(v, "\"jwt_leeway\" must be seconds, 0..3600");
    }
    options.leeway_seconds = v.as_integer();
  }
  if (t.contains("jwt_max_lifetime")) {
    const auto& v = t.at("jwt_max_lifetime");
    if (!v.is_integer() || v.as_integer() < 60 || v.as_integer() > 31536000) {
      fail(v, "\"jwt_max_lifetime\" must be seconds, 60..31536000");
    }
    options.max_lifetime_seconds = v.as_integer();
  }
  if (t.contains("jwt_allow_without_tls")) {
    const auto& v = t.at("jwt_allow_without_tls");
    if (!v.is_boolean()) fail(v, "\"jwt_allow_without_tls\" must be true or false");
    p.identity.jwt_allow_without_tls = v.as_boolean();
  }
  const int sources = int(t.contains("jwt_secret")) + int(t.contains("jwt_secret_env")) + int(t.contains("jwt_public_key"));
  if (sources != 1) {
    fail(t, "identity = \"jwt\" needs exactly one of jwt_secret, jwt_secret_env (HS256) or jwt_public_key (RS256/ES256)");
  }
  std::string error;
  std::unique_ptr<auth::JwtVerifier> verifier;
  if (t.contains("jwt_public_key")) {
    const std::string path = *opt_string(t, "jwt_public_key");
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(t.at("jwt_public_key"), "cannot open jwt_public_key file " + path);
    std::ostringstream pem;
    pem << in.rdbuf();
    verifier = auth::JwtVerifier::from_public_key_pem(pem.str(), options, &error);
    if (!verifier) fail(t.at("jwt_public_key"), path + ": " + error);
  } else {
    std::string secret;
    const char* key = t.contains("jwt_secret") ? "jwt_secret" : "jwt_secret_env";
    if (t.contains("jwt_secret")) {
      secret = *opt_string(t, "jwt_secret");
      p.identity.jwt_secret_in_file = true;
    } else {
      const std::string env = *opt_string(t, "jwt_secret_env");
      const char* v = std::getenv(env.c_str());
      if (v == nullptr) fail(t.at(key), "environment variable " + env + " is not set");
      secret = v;
    }
    verifier = auth::JwtVerifier::from_secret(std::move(secret), options, &error);
    if (!verifier) fail(t.at(key), error);
  }
  p.identity.jwt = std::move(verifier);
}

void parse_roles(const toml::value& root, Policy& p) {
  const IdentityMode mode = p.identity.mode;
  if (mode == IdentityMode::kRole) {
    if (root.contains("tenants")) fail(root.at("tenants"), "identity = \"role\": PostgreSQL authenticates; use [[roles]] instead of [[tenants]]");
    if (root.contains("bypass")) fail(root.at("bypass"), "identity = \"role\": use [[roles]] with bypass = true instead of [[bypass]]");
  } else if (mode == IdentityMode::kJwt) {
    if (root.contains("tenants")) fail(root.at("tenants"), "identity = \"jwt\": the tenant comes from the token; remove [[tenants]] ([[bypass]] users are allowed)");
  }
  if (!root.contains("roles")) {
    if (mode == IdentityMode::kRole) fail(root, "identity = \"role\" needs [[roles]] entries (role = \"...\", tenant = \"...\" or bypass = true)");
    return;
  }
  const auto& arr = root.at("roles");
  if (mode != IdentityMode::kRole) fail(arr, "[[roles]] needs [tenancy] identity = \"role\"");
  if (!arr.is_array()) fail(arr, "\"roles\" must be an array of tables ([[roles]])");
  for (const auto& e : arr.as_array()) {
    if (!e.is_table()) fail(e, "each [[roles]] entry must be a table");
    for (const auto& [key, value] : e.as_table()) {
      if (key != "role" && key != "tenant" && key != "bypass") {
        fail(value, "unknown key \"" + key + "\" in [[roles]] (allowed: bypass, role, tenant)", "unknown key");
      }
    }
    auto role = opt_string(e, "role");
    if (!role) fail(e, "missing key \"role\" in [[roles]]");
    if (role->empty() || role->size() >= 64 || role->find('\0') != std::string::npos) fail(e.at("role"), "invalid role name");
    bool bypass = false;
    if (e.contains("bypass")) {
      if (!e.at("bypass").is_boolean()) fail(e.at("bypass"), "\"bypass\" must be true or false");
      bypass = e.at("bypass").as_boolean();
    }
    if (bypass == e.contains("tenant")) fail(e, "each [[roles]] entry needs either tenant or bypass = true");
    std::optional<std::string> tenant;
    if (!bypass) tenant = tenant_value(e.at("tenant"));
    if (p.roles.contains(*role)) fail(e.at("role"), "role \"" + *role + "\" is listed twice");
    p.roles.emplace(*role, std::move(tenant));
  }
}

}  // namespace rowguard::policy
