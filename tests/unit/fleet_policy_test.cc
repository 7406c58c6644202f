// Unit tests for the scale-out keys of the policy (issue #19): [proxy] reuse_port, peer_id,
// peer_listen and [[peers]] (cancel forwarding), and the cancel key's instance id.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "policy/policy.h"
#include "proxy/net/server.h"

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

TEST(FleetPolicy, PeersParsed) {
  PolicyPtr p = parse_policy(kProxyHead + "peer_id = 1\npeer_listen = \"127.0.0.1:7001\"\n" + kRest +
                                 "[[peers]]\nid = 0\naddress = \"127.0.0.1:7000\"\n"
                                 "[[peers]]\nid = 2\naddress = \"10.0.0.3:7002\"\n",
                             "fleet.toml");
  EXPECT_EQ(p->proxy.peer_id, 1);
  EXPECT_EQ(p->proxy.peer_listen_host, "127.0.0.1");
  EXPECT_EQ(p->proxy.peer_listen_port, 7001);
  ASSERT_EQ(p->peers.size(), 2u);
  EXPECT_EQ(p->peers[0].id, 0);
  EXPECT_EQ(p->peers[0].port, 7000);
  EXPECT_EQ(p->peers[1].id, 2);
  EXPECT_EQ(p->peers[1].host, "10.0.0.3");
}

TEST(FleetPolicy, PeerDefaults) {
  PolicyPtr p = parse_policy(kProxyHead + kRest, "fleet.toml");
  EXPECT_EQ(p->proxy.peer_id, 0);
  EXPECT_TRUE(p->proxy.peer_listen_host.empty());
  EXPECT_TRUE(p->peers.empty());
}

TEST(FleetPolicy, PeerErrors) {
  const std::string peer0 = "[[peers]]\nid = 0\naddress = \"127.0.0.1:7000\"\n";
  EXPECT_NE(error_of(kProxyHead + kRest + peer0).find("this instance's own [proxy] peer_id"), std::string::npos);
  EXPECT_NE(error_of(kProxyHead + "peer_id = 1\n" + kRest + peer0 + peer0).find("appears twice"), std::string::npos);
  EXPECT_NE(error_of(kProxyHead + "peer_id = 256\n" + kRest).find("\"peer_id\" must be an integer 0..255"),
            std::string::npos);
  EXPECT_NE(error_of(kProxyHead + "peer_id = 1\n" + kRest + "[[peers]]\nid = -1\naddress = \"127.0.0.1:7000\"\n")
                .find("id must be an integer 0..255"),
            std::string::npos);
  EXPECT_NE(error_of(kProxyHead + "peer_id = 1\n" + kRest + "[[peers]]\nid = 0\n").find("address"),
            std::string::npos);
  EXPECT_NE(error_of(kProxyHead + "peer_id = 1\n" + kRest + "[[peers]]\nid = 0\naddress = \"nowhere\"\n")
                .find("\"address\" must be \"host:port\""),
            std::string::npos);
  EXPECT_NE(error_of(kProxyHead + "peer_id = 1\npeer_listen = \"127.0.0.1:7000\"\n" + kRest + peer0)
                .find("own peer_listen"),
            std::string::npos);
  EXPECT_NE(error_of(kProxyHead + "peer_id = 1\n" + kRest + "[[peers]]\nid = 0\naddress = \"127.0.0.1:6432\"\n")
                .find("not this [proxy] listen"),
            std::string::npos);
  EXPECT_NE(error_of(kProxyHead + "peer_id = 1\n" + kRest + "[[peers]]\nid = 0\naddress = \"127.0.0.1:7000\"\nport = 1\n")
                .find("unknown key"),
            std::string::npos);
}

}  // namespace
}  // namespace rowguard::policy

namespace rowguard::net {
namespace {

// The cancel key handed to clients names the instance (so a peer knows where to forward) and
// keeps >= 32 random bits.
TEST(FleetCancelKey, CarriesTheInstanceIdAndRandomBits) {
  CancelRegistry reg;
  reg.set_instance(201);
  std::set<std::pair<int32_t, int32_t>> keys;
  int32_t pid_bits_seen = 0;
  for (int i = 0; i < 200; ++i) {
    auto k = reg.add({1000 + i, i});
    EXPECT_GT(k.first, 0);
    EXPECT_EQ(CancelRegistry::instance_of(k.first), 201);
    pid_bits_seen |= k.first & 0x3ffffe;
    keys.insert(k);
    ASSERT_TRUE(reg.find(k).has_value());
    EXPECT_EQ(reg.find(k)->pid, 1000 + i);
  }
  EXPECT_EQ(keys.size(), 200u);
  EXPECT_EQ(pid_bits_seen, 0x3ffffe);  // all 21 random pid bits vary (plus 32 bits of key)
  auto k = *keys.begin();
  EXPECT_FALSE(reg.find({k.first, k.second ^ 1}).has_value());  // a forged key finds nothing
  reg.remove(k);
  EXPECT_FALSE(reg.find(k).has_value());  // a stale key finds nothing
}

}  // namespace
}  // namespace rowguard::net
