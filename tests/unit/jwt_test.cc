// Unit tests for auth/jwt and auth/json: the RFC 7515 A.1 HS256 example, tokens
// signed here with OpenSSL (keys generated in the test) for HS256 / RS256 / ES256, and every
// refusal: expired, not yet valid, wrong or unexpected audience, wrong issuer, wrong algorithm,
// "none", HS/RS confusion, tampered payload and signature, bad claims, malformed JSON.
#include "auth/jwt.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <memory>
#include <string>

#include "auth/json.h"

namespace rowguard::auth {
namespace {

constexpr int64_t kNow = 1'800'000'000;
const std::string kSecret = "0123456789abcdef0123456789abcdef-test-secret";

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

Pkey make_rsa(unsigned bits = 2048) { return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{bits})); }
Pkey make_ec(const char* curve = "P-256") { return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve)); }

std::string public_pem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  return pem;
}

std::string hs256(std::string_view key, std::string_view input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(input.data()),
       input.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

std::string digest_sign(EVP_PKEY* key, std::string_view input) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key);
  size_t len = 0;
  EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                 reinterpret_cast<const unsigned char*>(input.data()), input.size());
  EVP_MD_CTX_free(ctx);
  sig.resize(len);
  return sig;
}

// DER ECDSA-Sig-Value -> the JWS raw r||s form.
std::string der_to_raw(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  std::string raw(64, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(raw.data()), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
  ECDSA_SIG_free(sig);
  return raw;
}

std::string signing_input(const std::string& header, const std::string& payload) {
  return base64url_encode(header) + "." + base64url_encode(payload);
}

std::string token_hs(const std::string& header, const std::string& payload, std::string_view key = kSecret) {
  std::string in = signing_input(header, payload);
  return in + "." + base64url_encode(hs256(key, in));
}
std::string token_rs(EVP_PKEY* key, const std::string& payload, const std::string& header = R"({"alg":"RS256","typ":"JWT"})") {
  std::string in = signing_input(header, payload);
  return in + "." + base64url_encode(digest_sign(key, in));
}
std::string token_es(EVP_PKEY* key, const std::string& payload) {
  std::string in = signing_input(R"({"alg":"ES256"})", payload);
  return in + "." + base64url_encode(der_to_raw(digest_sign(key, in)));
}

const std::string kHsHeader = R"({"alg":"HS256","typ":"JWT"})";
std::string claims(const std::string& extra = "") {
  return R"({"sub":"app","tenant_id":"42","exp":)" + std::to_string(kNow + 600) + extra + "}";
}

std::unique_ptr<JwtVerifier> hs_verifier(JwtOptions options = {}) {
  std::string error;
  auto v = JwtVerifier::from_secret(kSecret, std::move(options), &error);
  EXPECT_TRUE(v) << error;
  return v;
}

std::unique_ptr<JwtVerifier> pem_verifier(EVP_PKEY* key, JwtOptions options = {}) {
  std::string error;
  auto v = JwtVerifier::from_public_key_pem(public_pem(key), std::move(options), &error);
  EXPECT_TRUE(v) << error;
  return v;
}

void expect_refused(const JwtResult& r, const std::string& why) {
  EXPECT_FALSE(r.ok) << "accepted, tenant " << r.tenant;
  EXPECT_NE(r.error.find(why), std::string::npos) << "error: " << r.error << " (expected: " << why << ")";
}

TEST(Jwt, Rfc7515AppendixA1Hs256Example) {
  // RFC 7515 A.1: the JWK "k" below is the HMAC key; claims {"iss":"joe","exp":1300819380,...}.
  const auto key = base64url_decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow");
  ASSERT_TRUE(key);
  const std::string token =
      "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
      "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
      "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
  std::string error;
  JwtOptions o;
  o.tenant_claim = "iss";
  auto v = JwtVerifier::from_secret(*key, o, &error);
  ASSERT_TRUE(v) << error;
  JwtResult ok = v->verify(token, 1300819380 - 1);
  EXPECT_TRUE(ok.ok) << ok.error;
  EXPECT_EQ(ok.tenant, "joe");
  expect_refused(v->verify(token, 1300819380), "expired");
  std::string flipped = token;
  flipped.back() = flipped.back() == 'k' ? 'l' : 'k';
  expect_refused(v->verify(flipped, 1300819380 - 1), "bad");
}

TEST(Jwt, Hs256ValidTokenGivesTheTenantClaim) {
  auto v = hs_verifier();
  JwtResult r = v->verify(token_hs(kHsHeader, claims()), kNow);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.tenant, "42");
  EXPECT_EQ(v->algorithm(), JwtAlgorithm::kHS256);
}

TEST(Jwt, IntegerTenantClaimKeepsItsDigits) {
  auto v = hs_verifier();
  std::string payload = R"({"tenant_id":12345678901234567890,"exp":)" + std::to_string(kNow + 60) + "}";
  JwtResult r = v->verify(token_hs(kHsHeader, payload), kNow);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.tenant, "12345678901234567890");
  for (std::string bad : {"1.5", "1e3", "true", "null", "[\"1\"]", "{}", "\"\"", "\"1\\n\"", "\"a\\u0000\""}) {
    std::string p = R"({"tenant_id":)" + bad + R"(,"exp":)" + std::to_string(kNow + 60) + "}";
    expect_refused(v->verify(token_hs(kHsHeader, p), kNow), "tenant_id");
  }
  expect_refused(v->verify(token_hs(kHsHeader, R"({"exp":)" + std::to_string(kNow + 60) + "}"), kNow),
                 "no \"tenant_id\" claim");
}

TEST(Jwt, ConfiguredClaimName) {
  JwtOptions o;
  o.tenant_claim = "org";
  auto v = hs_verifier(o);
  JwtResult r = v->verify(token_hs(kHsHeader, claims(R"(,"org":"acme")")), kNow);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.tenant, "acme");
}

TEST(Jwt, ExpiryAndNotBefore) {
  auto v = hs_verifier();
  std::string expired = R"({"tenant_id":"1","exp":)" + std::to_string(kNow - 1) + "}";
  expect_refused(v->verify(token_hs(kHsHeader, expired), kNow), "expired");
  std::string exactly = R"({"tenant_id":"1","exp":)" + std::to_string(kNow) + "}";
  expect_refused(v->verify(token_hs(kHsHeader, exactly), kNow), "expired");
  expect_refused(v->verify(token_hs(kHsHeader, R"({"tenant_id":"1"})"), kNow), "no \"exp\"");
  expect_refused(v->verify(token_hs(kHsHeader, R"({"tenant_id":"1","exp":"soon"})"), kNow), "\"exp\" is not a number");
  std::string future = claims(R"(,"nbf":)" + std::to_string(kNow + 30));
  expect_refused(v->verify(token_hs(kHsHeader, future), kNow), "not valid yet");
  EXPECT_TRUE(v->verify(token_hs(kHsHeader, claims(R"(,"nbf":)" + std::to_string(kNow))), kNow).ok);
  // Leeway covers a little clock skew both ways.
  JwtOptions o;
  o.leeway_seconds = 60;
  auto lenient = hs_verifier(o);
  EXPECT_TRUE(lenient->verify(token_hs(kHsHeader, expired), kNow).ok);
  EXPECT_TRUE(lenient->verify(token_hs(kHsHeader, future), kNow).ok);
}

// A token must expire within jwt_max_lifetime (default one day): exp = 1e300 never expires.
TEST(Jwt, LifetimeIsBounded) {
  auto v = hs_verifier();
  EXPECT_EQ(v->options().max_lifetime_seconds, 86400);
  auto with_exp = [](const std::string& exp, const std::string& extra = "") {
    return token_hs(kHsHeader, R"({"tenant_id":"1","exp":)" + exp + extra + "}");
  };
  for (const std::string exp : {"1e300", "9.3e18", "9223372036854775807", "18446744073709551616",
                                "1e19", "-1e300"}) {
    EXPECT_FALSE(v->verify(with_exp(exp), kNow).ok) << exp;
  }
  expect_refused(v->verify(with_exp(std::to_string(kNow + 86401)), kNow), "jwt_max_lifetime");
  expect_refused(v->verify(with_exp(std::to_string(kNow + 400LL * 86400)), kNow), "jwt_max_lifetime");
  EXPECT_TRUE(v->verify(with_exp(std::to_string(kNow + 86400)), kNow).ok);
  EXPECT_TRUE(v->verify(with_exp(std::to_string(kNow + 3600) + ".5"), kNow).ok);
  // exp - iat: a token minted with a long life is refused even close to its end.
  const std::string iat = R"(,"iat":)";
  expect_refused(v->verify(with_exp(std::to_string(kNow + 60), iat + std::to_string(kNow - 2 * 86400)), kNow),
                 "jwt_max_lifetime");
  EXPECT_TRUE(v->verify(with_exp(std::to_string(kNow + 60), iat + std::to_string(kNow - 600)), kNow).ok);
  expect_refused(v->verify(with_exp(std::to_string(kNow + 60), iat + "\"yesterday\""), kNow), "\"iat\"");
  expect_refused(v->verify(with_exp(std::to_string(kNow + 60), iat + "1e300"), kNow), "\"iat\"");
  expect_refused(v->verify(with_exp(std::to_string(kNow + 600), iat + std::to_string(kNow + 300)), kNow),
                 "future");
  EXPECT_FALSE(v->verify(with_exp(std::to_string(kNow + 60), R"(,"nbf":1e300)"), kNow).ok);
  JwtOptions week;
  week.max_lifetime_seconds = 7 * 86400;
  auto longer = hs_verifier(week);
  EXPECT_TRUE(longer->verify(with_exp(std::to_string(kNow + 6 * 86400)), kNow).ok);
  EXPECT_FALSE(longer->verify(with_exp(std::to_string(kNow + 8 * 86400)), kNow).ok);
}

TEST(Jwt, AudienceAndIssuer) {
  JwtOptions o;
  o.audience = "rowguard";
  auto v = hs_verifier(o);
  EXPECT_TRUE(v->verify(token_hs(kHsHeader, claims(R"(,"aud":"rowguard")")), kNow).ok);
  EXPECT_TRUE(v->verify(token_hs(kHsHeader, claims(R"(,"aud":["other","rowguard"])")), kNow).ok);
  expect_refused(v->verify(token_hs(kHsHeader, claims(R"(,"aud":"other")")), kNow), "audience");
  expect_refused(v->verify(token_hs(kHsHeader, claims(R"(,"aud":["other"])")), kNow), "audience");
  expect_refused(v->verify(token_hs(kHsHeader, claims()), kNow), "audience");
  // Without jwt_audience, a token meant for some audience is refused (RFC 7519 4.1.3).
  auto no_aud = hs_verifier();
  expect_refused(no_aud->verify(token_hs(kHsHeader, claims(R"(,"aud":"rowguard")")), kNow), "jwt_audience is not configured");

  JwtOptions i;
  i.issuer = "https://idp.example";
  auto vi = hs_verifier(i);
  EXPECT_TRUE(vi->verify(token_hs(kHsHeader, claims(R"(,"iss":"https://idp.example")")), kNow).ok);
  expect_refused(vi->verify(token_hs(kHsHeader, claims(R"(,"iss":"https://evil.example")")), kNow), "issuer");
  expect_refused(vi->verify(token_hs(kHsHeader, claims()), kNow), "issuer");
}

TEST(Jwt, WrongAlgorithmAndNoneAreRefused) {
  auto v = hs_verifier();
  expect_refused(v->verify(token_hs(R"({"alg":"HS384"})", claims()), kNow), "not the configured HS256");
  expect_refused(v->verify(token_hs(R"({"alg":"hs256"})", claims()), kNow), "not the configured");
  expect_refused(v->verify(token_hs(R"({"typ":"JWT"})", claims()), kNow), "no \"alg\"");
  // alg none with an empty signature, and with the HS256 signature kept.
  std::string none = signing_input(R"({"alg":"none"})", claims()) + ".";
  expect_refused(v->verify(none, kNow), "not the configured");
  std::string none_sig = signing_input(R"({"alg":"none"})", claims()) + "." + base64url_encode(hs256(kSecret, "x"));
  expect_refused(v->verify(none_sig, kNow), "not the configured");
  expect_refused(v->verify(token_hs(R"({"alg":"HS256","crit":["exp"]})", claims()), kNow), "crit");
}

TEST(Jwt, HsRsConfusionIsRefused) {
  // The classic attack: an RS256 verifier whose public key the attacker uses as an HMAC secret.
  Pkey rsa = make_rsa();
  ASSERT_TRUE(rsa);
  auto v = pem_verifier(rsa.get());
  ASSERT_EQ(v->algorithm(), JwtAlgorithm::kRS256);
  const std::string pem = public_pem(rsa.get());
  expect_refused(v->verify(token_hs(kHsHeader, claims(), pem), kNow), "not the configured RS256");
  // And the other way: an HS256 verifier never accepts an RS256 token.
  auto hs = hs_verifier();
  expect_refused(hs->verify(token_rs(rsa.get(), claims()), kNow), "not the configured HS256");
}

TEST(Jwt, Rs256ValidTamperedAndWrongKey) {
  Pkey rsa = make_rsa();
  auto v = pem_verifier(rsa.get());
  const std::string good = token_rs(rsa.get(), claims());
  JwtResult r = v->verify(good, kNow);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.tenant, "42");

  // Tampered payload (tenant 42 -> 43) with the original signature.
  const size_t d1 = good.find('.'), d2 = good.rfind('.');
  std::string forged = good.substr(0, d1 + 1) + base64url_encode(claims().replace(claims().find("42"), 2, "43")) +
                       good.substr(d2);
  expect_refused(v->verify(forged, kNow), "bad signature");
  // Tampered signature: one bit flipped.
  auto sig = base64url_decode(good.substr(d2 + 1));
  ASSERT_TRUE(sig);
  (*sig)[10] = static_cast<char>((*sig)[10] ^ 1);
  expect_refused(v->verify(good.substr(0, d2 + 1) + base64url_encode(*sig), kNow), "bad signature");
  // Signed by another key.
  Pkey other = make_rsa();
  expect_refused(v->verify(token_rs(other.get(), claims()), kNow), "bad signature");
  // A valid signature does not excuse an expired token.
  expect_refused(v->verify(token_rs(rsa.get(), R"({"tenant_id":"1","exp":1})"), kNow), "expired");
}

TEST(Jwt, Es256ValidAndTampered) {
  Pkey ec = make_ec();
  ASSERT_TRUE(ec);
  auto v = pem_verifier(ec.get());
  ASSERT_EQ(v->algorithm(), JwtAlgorithm::kES256);
  const std::string good = token_es(ec.get(), claims());
  JwtResult r = v->verify(good, kNow);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.tenant, "42");
  const size_t d2 = good.rfind('.');
  auto sig = base64url_decode(good.substr(d2 + 1));
  ASSERT_TRUE(sig);
  ASSERT_EQ(sig->size(), 64u);
  (*sig)[40] = static_cast<char>((*sig)[40] ^ 0x80);
  expect_refused(v->verify(good.substr(0, d2 + 1) + base64url_encode(*sig), kNow), "bad signature");
  // A DER signature (not the JWS r||s form) is refused.
  std::string in = signing_input(R"({"alg":"ES256"})", claims());
  expect_refused(v->verify(in + "." + base64url_encode(digest_sign(ec.get(), in)), kNow), "bad signature");
  // RS256 header against an EC key.
  expect_refused(v->verify(token_hs(R"({"alg":"RS256"})", claims()), kNow), "not the configured ES256");
}

TEST(Jwt, KeysThatAreRefusedAtLoad) {
  std::string error;
  EXPECT_FALSE(JwtVerifier::from_secret("too-short", {}, &error));
  EXPECT_NE(error.find("32 bytes"), std::string::npos);
  Pkey small = make_rsa(1024);
  EXPECT_FALSE(JwtVerifier::from_public_key_pem(public_pem(small.get()), {}, &error));
  EXPECT_NE(error.find("2048"), std::string::npos) << error;
  Pkey p384 = make_ec("P-384");
  EXPECT_FALSE(JwtVerifier::from_public_key_pem(public_pem(p384.get()), {}, &error));
  EXPECT_NE(error.find("P-256"), std::string::npos) << error;
  EXPECT_FALSE(JwtVerifier::from_public_key_pem("not a pem", {}, &error));
}

TEST(Jwt, MalformedTokens) {
  auto v = hs_verifier();
  const std::string good = token_hs(kHsHeader, claims());
  ASSERT_TRUE(v->verify(good, kNow).ok);
  expect_refused(v->verify("", kNow), "compact");
  expect_refused(v->verify("a.b", kNow), "compact");
  expect_refused(v->verify(good + ".x", kNow), "compact");
  expect_refused(v->verify(good + "=", kNow), "base64url");  // padding is not base64url
  expect_refused(v->verify(std::string(20000, 'a'), kNow), "too long");
  // Duplicate claims (two parsers could pick different ones) and trailing garbage.
  std::string dup = R"({"tenant_id":"1","tenant_id":"2","exp":)" + std::to_string(kNow + 60) + "}";
  expect_refused(v->verify(token_hs(kHsHeader, dup), kNow), "not a JSON object");
  expect_refused(v->verify(token_hs(kHsHeader, claims() + "x"), kNow), "not a JSON object");
  expect_refused(v->verify(token_hs(R"({"alg":"HS256"} )" "[]", claims()), kNow), "header");
}

TEST(Json, StrictParsing) {
  auto v = parse_json(R"( {"a":[1,-2.5e3,true,false,null],"b":{"c":"\u00e9\ud83d\ude00\n"}} )");
  ASSERT_TRUE(v);
  ASSERT_EQ(v->get("a")->items.size(), 5u);
  EXPECT_EQ(v->get("a")->items[1].text, "-2.5e3");
  EXPECT_TRUE(v->get("a")->items[0].is_integer());
  EXPECT_FALSE(v->get("a")->items[1].is_integer());
  EXPECT_EQ(v->get("b")->get("c")->text, "\xc3\xa9\xf0\x9f\x98\x80\n");
  for (const char* bad : {"", "{", "{\"a\":1,}", "[1,]", "{\"a\" 1}", "01", "1.", "-", "+1", "'a'",
                          "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"a\x01\"", "\"\xff\"", "\"\xc0\x80\"",
                          "{\"a\":1}{}", "nul", "{\"a\":1,\"a\":2}", "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]"}) {
    EXPECT_FALSE(parse_json(bad)) << bad;
  }
}

}  // namespace
}  // namespace rowguard::auth
