// The tenant cannot be chosen by a startup parameter: any parameter naming a tenant is refused
// at startup in every identity mode (the tenant comes only from credentials).
#include <gtest/gtest.h>

#include <string>

#include "policy/policy.h"
#include "proxy/session/session.h"

namespace rowguard::session {
namespace {

const std::string kProxy = "[proxy]\nlisten = \"127.0.0.1:6432\"\nupstream = \"127.0.0.1:5432\"\nupstream_user = \"app\"\n";

TEST(TenantChoice, StartupParametersNamingATenantAreRefusedInEveryMode) {
  const std::vector<std::string> configs = {
      kProxy + "[tenancy]\n[[tenants]]\nuser = \"t1\"\npassword = \"pw\"\ntenant = \"1\"\n",
      kProxy + "[tenancy]\nidentity = \"jwt\"\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n",
      kProxy + "[tenancy]\nidentity = \"role\"\n[[roles]]\nrole = \"t1\"\ntenant = \"1\"\n",
  };
  for (const auto& text : configs) {
    auto policy = policy::parse_policy(text, "t.toml");
    for (const char* name : {"tenant", "tenant_id", "rowguard.tenant", "rowguard_tenant", "options", "role",
                             "session_authorization", "_pq_.tenant"}) {
      protocol::StartupPacket p;
      p.protocol_version = protocol::kProtocolV3;
      p.params = {{"user", "t1"}, {"database", "appdb"}, {name, "2"}};
      const StartupDecision d = check_startup(p, *policy);
      EXPECT_FALSE(d.ok) << policy::to_string(policy->identity.mode) << " " << name;
      EXPECT_EQ(d.sqlstate, "42501") << name;
    }
    // application_name is passed upstream as text only; it names no tenant.
    protocol::StartupPacket p;
    p.protocol_version = protocol::kProtocolV3;
    p.params = {{"user", "t1"}, {"application_name", "tenant_id=2"}};
    const StartupDecision d = check_startup(p, *policy);
    EXPECT_TRUE(d.ok);
  }
}

}  // namespace
}  // namespace rowguard::session
