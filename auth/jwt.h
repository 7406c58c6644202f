#pragma once
// JWT (RFC 7519) verification for `[tenancy] identity = "jwt"`: the client's password is a
// compact JWS whose configured claim names the tenant. One algorithm per verifier, fixed by the
// configured key: HS256 for a shared secret, RS256 for an RSA public key (>= 2048 bits), ES256
// for a P-256 public key. The token's "alg" must equal it ("none", HS/RS confusion and every
// other algorithm are refused). "exp" is required (an integer-range NumericDate at most
// max_lifetime_seconds ahead, and after "iat" by at most that), "nbf" and "iat" checked when
// present, "aud" and "iss"
// checked when configured (a token with an "aud" is refused when no audience is configured,
// RFC 7519 4.1.3). Crypto and base64 are OpenSSL. Thread-safe after construction; no I/O.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace rowguard::auth {

enum class JwtAlgorithm { kHS256, kRS256, kES256 };
std::string_view to_string(JwtAlgorithm alg);

struct JwtOptions {
  std::string tenant_claim = "tenant_id";  // string or integer claim
  std::optional<std::string> audience;     // required "aud" value
  std::optional<std::string> issuer;       // required "iss" value
  int64_t leeway_seconds = 0;              // clock skew allowed for exp / nbf
  // Longest lifetime a token may have: refused when exp - now or exp - iat exceeds it (a token
  // with exp = 1e300 never expires otherwise). [tenancy] jwt_max_lifetime.
  int64_t max_lifetime_seconds = 86400;
};

struct JwtResult {
  bool ok = false;
  std::string tenant;  // when ok
  std::string error;   // when !ok: why, for the log (never contains the token)
};

class JwtVerifier {
 public:
  // Shared secret (HS256): at least 32 bytes (RFC 7518 3.2). nullptr and *error on failure.
  static std::unique_ptr<JwtVerifier> from_secret(std::string secret, JwtOptions options, std::string* error);
  // Public key in PEM ("BEGIN PUBLIC KEY" or an X.509 certificate): RSA -> RS256,
  // EC P-256 -> ES256. nullptr and *error on failure.
  static std::unique_ptr<JwtVerifier> from_public_key_pem(std::string_view pem, JwtOptions options,
                                                          std::string* error);
  ~JwtVerifier();
  JwtVerifier(const JwtVerifier&) = delete;
  JwtVerifier& operator=(const JwtVerifier&) = delete;

  JwtAlgorithm algorithm() const { return alg_; }
  const JwtOptions& options() const { return options_; }

  // `now`: seconds since the Unix epoch.
  JwtResult verify(std::string_view token, int64_t now) const;

 private:
  JwtVerifier(JwtAlgorithm alg, JwtOptions options);
  bool signature_valid(std::string_view signing_input, std::string_view signature) const;

  JwtAlgorithm alg_;
  JwtOptions options_;
  std::string secret_;          // HS256
  struct KeyHolder;
  std::unique_ptr<KeyHolder> key_;  // RS256 / ES256
};

// base64url without padding (RFC 7515 2), strict: nullopt on '=', '+', '/', bad length or
// non-canonical trailing bits.
std::optional<std::string> base64url_decode(std::string_view text);
std::string base64url_encode(std::string_view raw);

}  // namespace rowguard::auth
