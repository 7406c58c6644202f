// JWT verification (see jwt.h). Signatures: HMAC / EVP_DigestVerify from OpenSSL 3.
#include "auth/jwt.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <vector>

#include "auth/json.h"
#include "auth/scram.h"

namespace rowguard::auth {

struct JwtVerifier::KeyHolder {
  EVP_PKEY* pkey = nullptr;
  ~KeyHolder() { EVP_PKEY_free(pkey); }
};

namespace {

constexpr size_t kMaxToken = 16 * 1024;
constexpr size_t kMaxTenant = 1024;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};

JwtResult fail(std::string why) {
  JwtResult r;
  r.error = std::move(why);
  return r;
}

// NumericDate: a JSON number of seconds (fractions allowed); nullopt when not a finite number
// or outside the range of a 64-bit count of seconds (1e300 is not a date, it is "never").
std::optional<double> numeric_date(const JsonValue& v) {
  if (v.kind != JsonValue::Kind::kNumber) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(v.text.c_str(), &end);
  if (end == nullptr || *end != '\0' || !std::isfinite(d)) return std::nullopt;
  constexpr double kLimit = 9.2e18;  // below 2^63
  if (d >= kLimit || d <= -kLimit) return std::nullopt;
  return d;
}

// The raw 64-byte r||s of a JWS ES256 signature as the DER ECDSA-Sig-Value OpenSSL verifies.
std::optional<std::string> es256_to_der(std::string_view raw) {
  if (raw.size() != 64) return std::nullopt;
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> sig(ECDSA_SIG_new());
  if (!sig) return std::nullopt;
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr);
  if (r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return std::nullopt;
  }
  const int len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (len <= 0) return std::nullopt;
  std::string der(static_cast<size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(sig.get(), &p) != len) return std::nullopt;
  return der;
}

}  // namespace

std::string_view to_string(JwtAlgorithm alg) {
  switch (alg) {
    case JwtAlgorithm::kHS256: return "HS256";
    case JwtAlgorithm::kRS256: return "RS256";
    case JwtAlgorithm::kES256: return "ES256";
  }
  return "?";
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string b64;
  b64.reserve(text.size() + 3);
  for (char c : text) {
    if (c == '+' || c == '/' || c == '=') return std::nullopt;
    b64.push_back(c == '-' ? '+' : c == '_' ? '/' : c);
  }
  while (b64.size() % 4 != 0) b64.push_back('=');
  return base64_decode(b64);  // strict, canonical (EVP_DecodeBlock underneath)
}

std::string base64url_encode(std::string_view raw) {
  std::string s = base64_encode(raw);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) {
    if (c == '+') c = '-';
    else if (c == '/') c = '_';
  }
  return s;
}

JwtVerifier::JwtVerifier(JwtAlgorithm alg, JwtOptions options) : alg_(alg), options_(std::move(options)) {}
JwtVerifier::~JwtVerifier() {
  if (!secret_.empty()) OPENSSL_cleanse(secret_.data(), secret_.size());
}

std::unique_ptr<JwtVerifier> JwtVerifier::from_secret(std::string secret, JwtOptions options, std::string* error) {
  if (secret.size() < 32) {
    *error = "the HS256 secret must be at least 32 bytes (RFC 7518 3.2)";
    return nullptr;
  }
  std::unique_ptr<JwtVerifier> v(new JwtVerifier(JwtAlgorithm::kHS256, std::move(options)));
  v->secret_ = std::move(secret);
  return v;
}

std::unique_ptr<JwtVerifier> JwtVerifier::from_public_key_pem(std::string_view pem, JwtOptions options,
                                                              std::string* error) {
  auto key = std::make_unique<KeyHolder>();
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) {
    *error = "out of memory";
    return nullptr;
  }
  key->pkey = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (key->pkey == nullptr) {
    // Also accept an X.509 certificate holding the key.
    std::unique_ptr<BIO, BioFree> bio2(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(bio2.get(), nullptr, nullptr, nullptr));
    if (cert) key->pkey = X509_get_pubkey(cert.get());
  }
  if (key->pkey == nullptr) {
    *error = "not a PEM public key (BEGIN PUBLIC KEY) or certificate";
    return nullptr;
  }
  JwtAlgorithm alg;
  if (EVP_PKEY_is_a(key->pkey, "RSA")) {
    if (EVP_PKEY_get_bits(key->pkey) < 2048) {
      *error = "the RSA key must have at least 2048 bits";
      return nullptr;
    }
    alg = JwtAlgorithm::kRS256;
  } else if (EVP_PKEY_is_a(key->pkey, "EC")) {
    char group[64] = {0};
    size_t len = 0;
    if (EVP_PKEY_get_group_name(key->pkey, group, sizeof group, &len) != 1 ||
        std::string_view(group, len) != "prime256v1") {
      *error = "the EC key must be on P-256 (ES256)";
      return nullptr;
    }
    alg = JwtAlgorithm::kES256;
  } else {
    *error = "unsupported key type (RSA for RS256 or EC P-256 for ES256)";
    return nullptr;
  }
  std::unique_ptr<JwtVerifier> v(new JwtVerifier(alg, std::move(options)));
  v->key_ = std::move(key);
  return v;
}

bool JwtVerifier::signature_valid(std::string_view signing_input, std::string_view signature) const {
  if (alg_ == JwtAlgorithm::kHS256) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
             reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac,
             &mac_len) == nullptr) {
      return false;
    }
    return signature.size() == mac_len && CRYPTO_memcmp(mac, signature.data(), mac_len) == 0;
  }
  std::string der;
  if (alg_ == JwtAlgorithm::kES256) {
    auto d = es256_to_der(signature);
    if (!d) return false;
    der = std::move(*d);
    signature = der;
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_->pkey) != 1) return false;
  // RS256 is RSASSA-PKCS1-v1_5, OpenSSL's default padding for RSA keys.
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                          reinterpret_cast<const unsigned char*>(signing_input.data()),
                          signing_input.size()) == 1;
}

JwtResult JwtVerifier::verify(std::string_view token, int64_t now) const {
  if (token.size() > kMaxToken) return fail("token too long");
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return fail("not a compact JWS (header.payload.signature)");
  }
  const auto header_json = base64url_decode(token.substr(0, dot1));
  const auto payload_json = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  const auto signature = base64url_decode(token.substr(dot2 + 1));
  if (!header_json || !payload_json || !signature) return fail("bad base64url");
  const auto header = parse_json(*header_json);
  if (!header || header->kind != JsonValue::Kind::kObject) return fail("header is not a JSON object");

  // The algorithm is the configured one, whatever the token says.
  const JsonValue* alg = header->get("alg");
  if (alg == nullptr || alg->kind != JsonValue::Kind::kString) return fail("header has no \"alg\"");
  if (alg->text != to_string(alg_)) {
    return fail("algorithm \"" + alg->text.substr(0, 16) + "\" is not the configured " + std::string(to_string(alg_)));
  }
  if (header->get("crit") != nullptr) return fail("header has \"crit\" extensions rowguard does not understand");
  if (signature->empty() || !signature_valid(token.substr(0, dot2), *signature)) return fail("bad signature");

  // Claims only after the signature verified.
  const auto claims = parse_json(*payload_json);
  if (!claims || claims->kind != JsonValue::Kind::kObject) return fail("payload is not a JSON object");
  const double t = static_cast<double>(now);
  const JsonValue* exp = claims->get("exp");
  if (exp == nullptr) return fail("token has no \"exp\"");
  const auto exp_at = numeric_date(*exp);
  if (!exp_at) return fail("\"exp\" is not a number");
  if (t >= *exp_at + static_cast<double>(options_.leeway_seconds)) return fail("token expired");
  const double max_life = static_cast<double>(options_.max_lifetime_seconds);
  if (*exp_at - t > max_life) return fail("token lifetime exceeds jwt_max_lifetime (\"exp\" too far ahead)");
  if (const JsonValue* iat = claims->get("iat")) {
    const auto iat_at = numeric_date(*iat);
    if (!iat_at) return fail("\"iat\" is not a number");
    if (*exp_at - *iat_at > max_life) return fail("token lifetime exceeds jwt_max_lifetime (\"exp\" - \"iat\")");
    if (*iat_at > t + static_cast<double>(options_.leeway_seconds)) return fail("token issued in the future (iat)");
  }
  if (const JsonValue* nbf = claims->get("nbf")) {
    const auto nbf_at = numeric_date(*nbf);
    if (!nbf_at) return fail("\"nbf\" is not a number");
    if (t + static_cast<double>(options_.leeway_seconds) < *nbf_at) return fail("token not valid yet (nbf)");
  }
  const JsonValue* aud = claims->get("aud");
  if (options_.audience) {
    bool match = false;
    if (aud != nullptr && aud->kind == JsonValue::Kind::kString) {
      match = aud->text == *options_.audience;
    } else if (aud != nullptr && aud->kind == JsonValue::Kind::kArray) {
      for (const auto& a : aud->items) match = match || (a.kind == JsonValue::Kind::kString && a.text == *options_.audience);
    }
    if (!match) return fail("audience does not match jwt_audience");
  } else if (aud != nullptr) {
    return fail("token has an \"aud\" but jwt_audience is not configured");
  }
  if (options_.issuer) {
    const JsonValue* iss = claims->get("iss");
    if (iss == nullptr || iss->kind != JsonValue::Kind::kString || iss->text != *options_.issuer) {
      return fail("issuer does not match jwt_issuer");
    }
  }

  const JsonValue* tenant = claims->get(options_.tenant_claim);
  if (tenant == nullptr) return fail("token has no \"" + options_.tenant_claim + "\" claim");
  JwtResult r;
  if (tenant->kind == JsonValue::Kind::kString) {
    r.tenant = tenant->text;
  } else if (tenant->is_integer()) {
    r.tenant = tenant->text;
  } else {
    return fail("claim \"" + options_.tenant_claim + "\" is not a string or an integer");
  }
  const bool control = std::any_of(r.tenant.begin(), r.tenant.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
  if (r.tenant.empty() || r.tenant.size() > kMaxTenant || control) {
    return fail("claim \"" + options_.tenant_claim + "\" is not a valid tenant value");
  }
  r.ok = true;
  return r;
}

}  // namespace rowguard::auth
