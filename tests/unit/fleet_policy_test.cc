// Unit tests for the scale-out keys of the policy (issue #19): [proxy] reuse_port.
#include <gtest/gtest.h>

#include <string>

#include "policy/policy.h"

namespace rowguard::policy {
namespace {

using namespace std::string_literals;

const std::string kProxyHead = R"toml([proxy]
listen = "127.0.0.1:6432"
upstream = "127.0.0.1:5432"
upstream_user = "app"
)toml";

const std::string kRest = R"toml(
[tenancy]

[[tenants]]
user = "t1"
password = "pw1"
tenant = "1"
)toml";

std::string error_of(const std::string& text) {
  try {
    parse_policy(text, "fleet.toml");
  } catch (const PolicyError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(FleetPolicy, ReusePortDefaultsToOff) {
  EXPECT_FALSE(parse_policy(kProxyHead + kRest, "fleet.toml")->proxy.reuse_port);
}

TEST(FleetPolicy, ReusePortTrue) {
  EXPECT_TRUE(parse_policy(kProxyHead + "reuse_port = true\n" + kRest, "fleet.toml")->proxy.reuse_port);
}

TEST(FleetPolicy, ReusePortMustBeBoolean) {
  EXPECT_NE(error_of(kProxyHead + "reuse_port = \"yes\"\n" + kRest).find("\"reuse_port\" must be true or false"),
            std::string::npos);
}

}  // namespace
}  // namespace rowguard::policy
