// Unit tests for tenant placement in the policy (issue #19 item 3): [[upstreams]], `upstream`
// in [[tenants]], [placement], [proxy] placement_drain_timeout.
#include <gtest/gtest.h>

#include <string>

#include "policy/policy.h"

namespace rowguard::policy {
namespace {

const std::string kHead = R"toml([proxy]
listen = "127.0.0.1:6432"
upstream = "127.0.0.1:5432"
upstream_user = "app"
upstream_password = "apppw"
upstream_database = "appdb"

[tenancy]
)toml";

const std::string kUpstreams = R"toml(
[[upstreams]]
name = "big-1"
host = "10.0.0.2"
port = 5433

[[upstreams]]
name = "big-2"
host = "10.0.0.3"
database = "other"
user = "app2"
password = "pw2"
tls = "require"
)toml";

std::string error_of(const std::string& text) {
  try {
    parse_policy(text, "placement.toml");
  } catch (const PolicyError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(PlacementPolicy, DefaultUpstreamIsProxyUpstream) {
  PolicyPtr p = parse_policy(kHead + "[[tenants]]\nuser = \"t1\"\npassword = \"pw\"\ntenant = \"1\"\n", "placement.toml");
  ASSERT_EQ(p->upstreams.size(), 1u);
  EXPECT_EQ(p->upstream_name_of("1"), "default");
  EXPECT_EQ(p->upstream_of("1").settings.upstream_host, "127.0.0.1");
  EXPECT_EQ(p->upstream_of("unknown tenant").settings.upstream_port, 5432);
}

TEST(PlacementPolicy, UpstreamsInheritProxySettings) {
  PolicyPtr p = parse_policy(kHead + kUpstreams +
                                 "[[tenants]]\nuser = \"t1\"\npassword = \"pw\"\ntenant = \"1\"\nupstream = \"big-1\"\n"
                                 "[[tenants]]\nuser = \"t2\"\npassword = \"pw\"\ntenant = \"2\"\nupstream = \"big-2\"\n"
                                 "[[tenants]]\nuser = \"t3\"\npassword = \"pw\"\ntenant = \"3\"\n",
                             "placement.toml");
  ASSERT_EQ(p->upstreams.size(), 3u);
  const Upstream& b1 = p->upstream_of("1");
  EXPECT_EQ(b1.name, "big-1");
  EXPECT_EQ(b1.settings.upstream_host, "10.0.0.2");
  EXPECT_EQ(b1.settings.upstream_port, 5433);
  EXPECT_EQ(b1.settings.upstream_user, "app");
  EXPECT_EQ(b1.settings.upstream_password, "apppw");
  EXPECT_EQ(*b1.settings.upstream_database, "appdb");
  EXPECT_EQ(b1.settings.upstream_tls, UpstreamTls::kDisable);
  const Upstream& b2 = p->upstream_of("2");
  EXPECT_EQ(b2.settings.upstream_port, 5432);
  EXPECT_EQ(b2.settings.upstream_user, "app2");
  EXPECT_EQ(b2.settings.upstream_password, "pw2");
  EXPECT_EQ(*b2.settings.upstream_database, "other");
  EXPECT_EQ(b2.settings.upstream_tls, UpstreamTls::kRequire);
  EXPECT_EQ(p->upstream_of("3").name, "default");
}

TEST(PlacementPolicy, UnknownUpstreamIsAnErrorWithItsLine) {
  std::string e = error_of(kHead + kUpstreams +
                           "[[tenants]]\nuser = \"t1\"\npassword = \"pw\"\ntenant = \"1\"\nupstream = \"big-9\"\n");
  EXPECT_NE(e.find("unknown upstream \"big-9\""), std::string::npos) << e;
  EXPECT_NE(e.find("placement.toml"), std::string::npos) << e;
  EXPECT_NE(e.find("upstream = \"big-9\""), std::string::npos) << e;  // the quoted source line
}

TEST(PlacementPolicy, DuplicateUpstreamName) {
  EXPECT_NE(error_of(kHead + kUpstreams + "[[upstreams]]\nname = \"big-1\"\nhost = \"x\"\n" +
                     "[[tenants]]\nuser = \"t1\"\npassword = \"pw\"\ntenant = \"1\"\n")
                .find("upstream \"big-1\" is listed twice"),
            std::string::npos);
  EXPECT_NE(error_of(kHead + "[[upstreams]]\nname = \"default\"\nhost = \"x\"\n" +
                     "[[tenants]]\nuser = \"t1\"\npassword = \"pw\"\ntenant = \"1\"\n")
                .find("the upstream \"default\" is [proxy] upstream"),
            std::string::npos);
}

TEST(PlacementPolicy, UpstreamEntryChecks) {
  const std::string t = "[[tenants]]\nuser = \"t1\"\npassword = \"pw\"\ntenant = \"1\"\n";
  EXPECT_NE(error_of(kHead + "[[upstreams]]\nname = \"a\"\n" + t).find("missing key \"host\""), std::string::npos);
  EXPECT_NE(error_of(kHead + "[[upstreams]]\nname = \"a\"\nhost = \"h\"\nport = 0\n" + t).find("\"port\" must be"),
            std::string::npos);
  EXPECT_NE(error_of(kHead + "[[upstreams]]\nname = \"a\"\nhost = \"h\"\ntls = \"verify-full\"\n" + t).find("needs ca"),
            std::string::npos);
  EXPECT_NE(error_of(kHead + "[[upstreams]]\nname = \"a@b\"\nhost = \"h\"\n" + t).find("invalid upstream name"),
            std::string::npos);
  EXPECT_NE(error_of(kHead + "[[upstreams]]\nname = \"a\"\nhost = \"h\"\nbogus = 1\n" + t).find("unknown key \"bogus\""),
            std::string::npos);
}

TEST(PlacementPolicy, OneTenantOneUpstream) {
  std::string e = error_of(kHead + kUpstreams +
                           "[[tenants]]\nuser = \"t1\"\npassword = \"pw\"\ntenant = \"1\"\nupstream = \"big-1\"\n"
                           "[[tenants]]\nuser = \"t1b\"\npassword = \"pw\"\ntenant = \"1\"\nupstream = \"default\"\n");
  EXPECT_NE(e.find("tenant \"1\" is placed on \"big-1\" already"), std::string::npos) << e;
  // A second login of the tenant without `upstream` follows the placement.
  PolicyPtr p = parse_policy(kHead + kUpstreams +
                                 "[[tenants]]\nuser = \"t1\"\npassword = \"pw\"\ntenant = \"1\"\nupstream = \"big-1\"\n"
                                 "[[tenants]]\nuser = \"t1b\"\npassword = \"pw\"\ntenant = \"1\"\n",
                             "placement.toml");
  EXPECT_EQ(p->upstream_name_of("1"), "big-1");
}

TEST(PlacementPolicy, PlacementTableForJwtTenants) {
  PolicyPtr p = parse_policy(kHead + kUpstreams + "[placement]\n\"acme\" = \"big-2\"\n" +
                                 "[[bypass]]\nuser = \"admin\"\npassword = \"pw\"\n",
                             "placement.toml");
  EXPECT_EQ(p->upstream_name_of("acme"), "big-2");
  EXPECT_EQ(p->upstream_name_of("other"), "default");
  EXPECT_NE(error_of(kHead + kUpstreams + "[placement]\n\"acme\" = \"nowhere\"\n" +
                     "[[bypass]]\nuser = \"admin\"\npassword = \"pw\"\n")
                .find("unknown upstream \"nowhere\""),
            std::string::npos);
}

TEST(PlacementPolicy, PlacementDrainTimeout) {
  const std::string t = "[[tenants]]\nuser = \"t1\"\npassword = \"pw\"\ntenant = \"1\"\n";
  EXPECT_EQ(parse_policy(kHead + t, "placement.toml")->proxy.placement_drain_timeout_seconds, 30);
  std::string head = kHead;
  head.insert(head.find("\n[tenancy]"), "placement_drain_timeout = 2\n");
  EXPECT_EQ(parse_policy(head + t, "placement.toml")->proxy.placement_drain_timeout_seconds, 2);
}

TEST(PlacementPolicy, UpstreamPasswordIsRedactedInErrors) {
  std::string e = error_of(kHead + "[[upstreams]]\nname = \"a\"\nhost = \"h\"\npassword = 12345678\n" +
                           "[[tenants]]\nuser = \"t1\"\npassword = \"pw\"\ntenant = \"1\"\n");
  EXPECT_EQ(e.find("12345678"), std::string::npos) << e;
}

}  // namespace
}  // namespace rowguard::policy
