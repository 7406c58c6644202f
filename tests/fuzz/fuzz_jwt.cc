// Fuzz target: JWT verification (auth/jwt) and the strict JSON reader behind it, on
// arbitrary bytes. The whole input is a token for an HS256 verifier (secret below) and an
// ES256 verifier (key made at start), and a JSON text. Any crash is a finding, and so is a
// token accepted with an empty tenant or one with control characters.
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "auth/json.h"
#include "auth/jwt.h"

namespace {

using rowguard::auth::JwtVerifier;

std::unique_ptr<JwtVerifier> make_es256() {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  EVP_PKEY_free(key);
  std::string error;
  return JwtVerifier::from_public_key_pem(pem, {}, &error);
}

void check(const rowguard::auth::JwtResult& r, const std::string& token) {
  if (!r.ok) return;
  bool bad = r.tenant.empty();
  for (char c : r.tenant) bad = bad || static_cast<unsigned char>(c) < 0x20;
  if (bad) {
    std::fprintf(stderr, "\n==== fuzz_jwt: FINDING: accepted a bad tenant ====\n%s\n", token.c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::unique_ptr<JwtVerifier> hs = [] {
    std::string error;
    return JwtVerifier::from_secret("fuzz-secret-0123456789abcdef0123456789", {}, &error);
  }();
  static const std::unique_ptr<JwtVerifier> es = make_es256();
  const std::string input(reinterpret_cast<const char*>(data), size);
  check(hs->verify(input, 1'800'000'000), input);
  check(es->verify(input, 1'800'000'000), input);
  if (auto v = rowguard::auth::parse_json(input)) (void)v->get("alg");
  return 0;
}
