// Unit tests for policy/modes.h: each mode parses from exactly its TOML spelling and prints it back.
#include "policy/modes.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace rowguard::policy {
namespace {

template <class Mode>
void expect_round_trip(const std::vector<std::string>& names) {
  for (size_t i = 0; i < names.size(); ++i) {
    const auto m = parse_mode<Mode>(names[i]);
    ASSERT_TRUE(m.has_value()) << names[i];
    EXPECT_EQ(static_cast<size_t>(*m), i) << names[i];
    EXPECT_EQ(to_string(*m), names[i]);
  }
  // One past the last value is not a mode: parse_mode stops there.
  EXPECT_EQ(to_string(static_cast<Mode>(names.size())), "?");
}

TEST(PolicyModes, EachModeParsesFromItsSpellingAndPrintsIt) {
  expect_round_trip<IdentityMode>({"map", "jwt", "role"});
  expect_round_trip<TlsMode>({"disable", "allow", "require"});
  expect_round_trip<UpstreamTls>({"disable", "prefer", "require", "verify-full"});
  expect_round_trip<AuditMode>({"denials", "all"});
  expect_round_trip<Backstop>({"off", "rls"});
  expect_round_trip<PoolMode>({"session", "transaction"});
}

TEST(PolicyModes, OtherSpellingsAreRefused) {
  EXPECT_FALSE(parse_mode<IdentityMode>("Map"));
  EXPECT_FALSE(parse_mode<IdentityMode>(""));
  EXPECT_FALSE(parse_mode<IdentityMode>("?"));
  EXPECT_FALSE(parse_mode<TlsMode>("prefer"));
  EXPECT_FALSE(parse_mode<UpstreamTls>("verify_full"));
  EXPECT_FALSE(parse_mode<UpstreamTls>("allow"));
  EXPECT_FALSE(parse_mode<AuditMode>("denial"));
  EXPECT_FALSE(parse_mode<Backstop>("RLS"));
  EXPECT_FALSE(parse_mode<Backstop>("on"));
  EXPECT_FALSE(parse_mode<Backstop>(std::string("rls\0", 4)));
}

}  // namespace
}  // namespace rowguard::policy
