// Unit tests for negotiate_protocol (proxy/net/connection.h): a startup asking for protocol 3.2,
// 3.9999 or carrying "_pq_." options gets NegotiateProtocolVersion (3.0, the options listed as
// unrecognized and removed), as PostgreSQL answers; a plain 3.0 startup gets nothing.
#include <gtest/gtest.h>

#include <string>

#include "proxy/net/connection.h"
#include "proxy/protocol/codec.h"

namespace rowguard::net {
namespace {

protocol::StartupPacket startup(int minor, std::vector<std::pair<std::string, std::string>> params) {
  protocol::StartupPacket p;
  p.protocol_version = (3 << 16) | minor;
  p.params = std::move(params);
  return p;
}

std::string frame(const std::string& body) {
  std::string out;
  protocol::append_frame(out, 'v', body);
  return out;
}

TEST(NegotiateProtocol, Plain30GetsNothing) {
  auto p = startup(0, {{"user", "t1"}, {"database", "appdb"}});
  EXPECT_FALSE(negotiate_protocol(p).has_value());
  EXPECT_EQ(p.params.size(), 2u);
}

TEST(NegotiateProtocol, NewerMinorVersionsAreNegotiatedDownTo30) {
  for (int minor : {2, 9999}) {
    auto p = startup(minor, {{"user", "t1"}});
    auto out = negotiate_protocol(p);
    ASSERT_TRUE(out.has_value()) << minor;
    EXPECT_EQ(*out, frame(std::string(8, '\0'))) << minor;  // newest minor 0, no options
    EXPECT_EQ(p.params.size(), 1u);
  }
}

TEST(NegotiateProtocol, ProtocolOptionsAreListedAndRemoved) {
  auto p = startup(0, {{"user", "t1"}, {"_pq_.a", "1"}, {"application_name", "x"}, {"_pq_.b", "2"}});
  auto out = negotiate_protocol(p);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out, frame(std::string("\0\0\0\0\0\0\0\2_pq_.a\0_pq_.b\0", 22)));
  ASSERT_EQ(p.params.size(), 2u);
  EXPECT_EQ(p.params[0].first, "user");
  EXPECT_EQ(p.params[1].first, "application_name");
}

}  // namespace
}  // namespace rowguard::net
