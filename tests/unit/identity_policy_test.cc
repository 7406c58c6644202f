// Unit tests for [tenancy] identity, the jwt_* keys and [[roles]] in the policy file.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "policy/policy.h"
#include "auth/jwt.h"

namespace rowguard::policy {
namespace {

using namespace std::string_literals;

const std::string kProxy = R"toml([proxy]
listen = "127.0.0.1:6432"
upstream = "127.0.0.1:5432"
upstream_user = "app"
)toml";

const std::string kSecretLine = "jwt_secret = \"0123456789abcdef0123456789abcdef\"\n";

std::string error_of(const std::string& text) {
  try {
    parse_policy(text, "id.toml");
  } catch (const PolicyError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for:\n" << text;
  return "";
}

void expect_error(const std::string& text, const std::string& what) {
  const std::string msg = error_of(text);
  EXPECT_NE(msg.find(what), std::string::npos) << "missing \"" << what << "\" in:\n" << msg;
}

TEST(IdentityPolicy, DefaultIsTheUserMap) {
  auto p = parse_policy(kProxy + "[tenancy]\n[[tenants]]\nuser = \"t1\"\npassword = \"pw\"\ntenant = \"1\"\n", "id.toml");
  EXPECT_EQ(policy::to_string(p->identity.mode), "map");
  EXPECT_FALSE(p->identity.jwt);
  auto explicit_map = parse_policy(kProxy + "[tenancy]\nidentity = \"map\"\n[[tenants]]\nuser = \"t1\"\npassword = \"pw\"\ntenant = 1\n", "id.toml");
  EXPECT_EQ(policy::to_string(explicit_map->identity.mode), "map");
}

TEST(IdentityPolicy, JwtWithSecretAndOptions) {
  auto p = parse_policy(kProxy + "[tenancy]\nidentity = \"jwt\"\n" + kSecretLine +
                            "jwt_tenant_claim = \"org_id\"\njwt_audience = \"rowguard\"\njwt_issuer = \"idp\"\n"
                            "jwt_leeway = 30\njwt_allow_without_tls = true\n[[bypass]]\nuser = \"dba\"\npassword = \"x\"\n",
                        "id.toml");
  EXPECT_EQ(policy::to_string(p->identity.mode), "jwt");
  ASSERT_TRUE(p->identity.jwt);
  EXPECT_EQ(p->identity.jwt->algorithm(), auth::JwtAlgorithm::kHS256);
  EXPECT_EQ(p->identity.jwt->options().tenant_claim, "org_id");
  EXPECT_EQ(p->identity.jwt->options().audience, "rowguard");
  EXPECT_EQ(p->identity.jwt->options().issuer, "idp");
  EXPECT_EQ(p->identity.jwt->options().leeway_seconds, 30);
  EXPECT_TRUE(p->identity.jwt_allow_without_tls);
  EXPECT_TRUE(p->identity.jwt_secret_in_file);
  // No [[tenants]]/[[bypass]] is fine: the tenants come from tokens.
  auto bare = parse_policy(kProxy + "[tenancy]\nidentity = \"jwt\"\n" + kSecretLine, "id.toml");
  EXPECT_FALSE(bare->identity.jwt_allow_without_tls);
  EXPECT_EQ(bare->identity.jwt->options().tenant_claim, "tenant_id");
}

TEST(IdentityPolicy, JwtSecretFromEnvironment) {
  setenv("ROWGUARD_UNIT_JWT_SECRET", "an-environment-secret-of-32-bytes!!", 1);
  auto p = parse_policy(kProxy + "[tenancy]\nidentity = \"jwt\"\njwt_secret_env = \"ROWGUARD_UNIT_JWT_SECRET\"\n", "id.toml");
  ASSERT_TRUE(p->identity.jwt);
  EXPECT_FALSE(p->identity.jwt_secret_in_file);
  unsetenv("ROWGUARD_UNIT_JWT_SECRET_MISSING");
  expect_error(kProxy + "[tenancy]\nidentity = \"jwt\"\njwt_secret_env = \"ROWGUARD_UNIT_JWT_SECRET_MISSING\"\n",
               "ROWGUARD_UNIT_JWT_SECRET_MISSING is not set");
}

TEST(IdentityPolicy, JwtErrors) {
  const std::string t = kProxy + "[tenancy]\nidentity = \"jwt\"\n";
  expect_error(t, "needs exactly one of jwt_secret");
  expect_error(t + kSecretLine + "jwt_public_key = \"/nonexistent.pem\"\n", "needs exactly one of");
  expect_error(t + "jwt_secret = \"short\"\n", "at least 32 bytes");
  expect_error(t + "jwt_public_key = \"/nonexistent/key.pem\"\n", "cannot open jwt_public_key");
  expect_error(t + kSecretLine + "jwt_leeway = -1\n", "jwt_leeway");
  expect_error(t + kSecretLine + "[[tenants]]\nuser = \"t1\"\npassword = \"pw\"\ntenant = \"1\"\n",
               "the tenant comes from the token");
  expect_error(kProxy + "[tenancy]\n" + kSecretLine + "[[tenants]]\nuser = \"t1\"\npassword = \"pw\"\ntenant = \"1\"\n",
               "\"jwt_secret\" needs identity = \"jwt\"");
  expect_error(kProxy + "[tenancy]\nidentity = \"ldap\"\n", "must be \"map\", \"jwt\" or \"role\"");
}

TEST(IdentityPolicy, RolesMapping) {
  auto p = parse_policy(kProxy + "[tenancy]\nidentity = \"role\"\n[[roles]]\nrole = \"acme_app\"\ntenant = \"1\"\n"
                                 "[[roles]]\nrole = \"globex_app\"\ntenant = 2\n[[roles]]\nrole = \"dba\"\nbypass = true\n",
                        "id.toml");
  EXPECT_EQ(policy::to_string(p->identity.mode), "role");
  ASSERT_EQ(p->roles.size(), 3u);
  EXPECT_EQ(p->roles.at("acme_app"), "1");
  EXPECT_EQ(p->roles.at("globex_app"), "2");
  EXPECT_EQ(p->roles.at("dba"), std::nullopt);
  EXPECT_TRUE(p->logins.empty());
  // Each client logs in upstream as its own role: upstream_user is not needed.
  auto no_user = parse_policy("[proxy]\nlisten = \"127.0.0.1:6432\"\nupstream = \"127.0.0.1:5432\"\n"
                              "[tenancy]\nidentity = \"role\"\n[[roles]]\nrole = \"a\"\ntenant = \"1\"\n",
                              "id.toml");
  EXPECT_TRUE(no_user->proxy.upstream_user.empty());
}

TEST(IdentityPolicy, RolesErrors) {
  const std::string t = kProxy + "[tenancy]\nidentity = \"role\"\n";
  expect_error(t, "needs [[roles]]");
  expect_error(t + "[[roles]]\nrole = \"a\"\n", "either tenant or bypass = true");
  expect_error(t + "[[roles]]\nrole = \"a\"\ntenant = \"1\"\nbypass = true\n", "either tenant or bypass = true");
  expect_error(t + "[[roles]]\nrole = \"a\"\ntenant = \"1\"\n[[roles]]\nrole = \"a\"\ntenant = \"2\"\n", "listed twice");
  expect_error(t + "[[roles]]\nrole = \"a\"\ntenant = \"1\"\npassword = \"x\"\n", "unknown key \"password\" in [[roles]]");
  expect_error(t + "[[roles]]\nrole = \"a\"\ntenant = \"1\"\n[[tenants]]\nuser = \"t1\"\npassword = \"pw\"\ntenant = \"1\"\n",
               "use [[roles]] instead of [[tenants]]");
  expect_error(t + "[[roles]]\nrole = \"a\"\ntenant = \"1\"\n[[bypass]]\nuser = \"dba\"\npassword = \"pw\"\n",
               "bypass = true instead of [[bypass]]");
  expect_error(kProxy + "[tenancy]\n[[tenants]]\nuser = \"t1\"\npassword = \"pw\"\ntenant = \"1\"\n[[roles]]\nrole = \"a\"\ntenant = \"1\"\n",
               "[[roles]] needs [tenancy] identity = \"role\"");
}

}  // namespace
}  // namespace rowguard::policy
