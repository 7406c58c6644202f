// SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL speaks it: verifiers in pg_authid format,
// the server side (rowguard authenticating clients), the client side (rowguard logging in
// upstream), PostgreSQL's md5 password scheme, and the base64 / random / constant-time helpers
// they need. Crypto is OpenSSL 3 only. Nothing here does I/O or throws.
#include "auth/scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace rowguard::auth {
namespace {

constexpr std::string_view kScramPrefix = "SCRAM-SHA-256$";
constexpr size_t kKeyLen = SHA256_DIGEST_LENGTH;  // 32
constexpr size_t kNonceRawLen = 18;               // as PostgreSQL (SCRAM_RAW_NONCE_LEN)
constexpr int kMaxClientIterations = 10'000'000;  // refuse to burn minutes of CPU on a server's say-so

// base64 work is done in chunks so int-sized OpenSSL lengths can never overflow.
constexpr size_t kB64RawChunk = 3 * 16384;
constexpr size_t kB64TextChunk = 4 * 16384;

const unsigned char* bytes_of(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

bool fits_int(size_t n) { return n <= static_cast<size_t>(INT_MAX); }

// ---- crypto primitives; each returns "" on failure, which makes every comparison fail ------

std::string hmac_sha256(std::string_view key, std::string_view data) {
  if (!fits_int(key.size())) return "";
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), bytes_of(data), data.size(), out,
           &out_len) == nullptr) {
    return "";
  }
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

std::string sha256(std::string_view data) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(bytes_of(data), data.size(), out);
  return std::string(reinterpret_cast<const char*>(out), sizeof out);
}

std::string pbkdf2_sha256(std::string_view password, std::string_view salt, int iterations) {
  if (iterations < 1 || !fits_int(password.size()) || !fits_int(salt.size())) return "";
  std::string out(kKeyLen, '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), bytes_of(salt),
                        static_cast<int>(salt.size()), iterations, EVP_sha256(),
                        static_cast<int>(out.size()), reinterpret_cast<unsigned char*>(out.data())) != 1) {
    return "";
  }
  return out;
}

std::string md5_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // One-shot EVP_Digest: no context object to manage. Fails (returns "") where MD5 is
  // unavailable, e.g. under a FIPS-only provider.
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr) != 1) return "";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0x0f]);
  }
  return hex;
}

std::string xor_bytes(std::string_view a, std::string_view b) {
  std::string out(std::min(a.size(), b.size()), '\0');
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<char>(a[i] ^ b[i]);
  return out;
}

// ---- strict base64 validation ---------------------------------------------------------------

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Number of '=' pad characters, or -1 when `text` is not canonical padded base64: length a
// multiple of 4, only alphabet characters before at most two trailing '=', and zero bits in
// the unused low bits of the last character (so every byte string has exactly one encoding).
int b64_padding(std::string_view text) {
  if (text.size() % 4 != 0) return -1;
  int pad = 0;
  while (pad < static_cast<int>(text.size()) && text[text.size() - 1 - pad] == '=') ++pad;
  if (pad > 2) return -1;
  const size_t data_chars = text.size() - pad;
  for (size_t i = 0; i < data_chars; ++i) {
    if (b64_value(text[i]) < 0) return -1;
  }
  if (pad == 2 && (b64_value(text[data_chars - 1]) & 0x0f) != 0) return -1;
  if (pad == 1 && (b64_value(text[data_chars - 1]) & 0x03) != 0) return -1;
  return pad;
}

// ---- SCRAM message syntax -------------------------------------------------------------------

struct Attr {
  char name = 0;
  std::string_view value;
};

// Splits "a=...,b=..." into attributes. Every attribute must be an ASCII letter, '=', and a
// value without ','. NUL bytes are refused anywhere.
std::optional<std::vector<Attr>> split_attrs(std::string_view msg) {
  if (msg.find('\0') != std::string_view::npos) return std::nullopt;
  std::vector<Attr> attrs;
  size_t pos = 0;
  for (;;) {
    const size_t comma = std::min(msg.find(',', pos), msg.size());
    const std::string_view item = msg.substr(pos, comma - pos);
    if (item.size() < 2 || item[1] != '=') return std::nullopt;
    const char name = item[0];
    if (!((name >= 'a' && name <= 'z') || (name >= 'A' && name <= 'Z'))) return std::nullopt;
    attrs.push_back({name, item.substr(2)});
    if (comma == msg.size()) break;
    pos = comma + 1;
  }
  return attrs;
}

// RFC 5802: printable = %x21-2B / %x2D-7E (no ','), at least one character.
bool valid_nonce(std::string_view nonce) {
  if (nonce.empty()) return false;
  return std::all_of(nonce.begin(), nonce.end(),
                     [](char c) { return c >= 0x21 && c <= 0x7e && c != ','; });
}

// A decimal integer in [1, max]: digits only, no sign, no leading/trailing junk.
std::optional<int> parse_count(std::string_view text, int max) {
  if (text.empty() || text.size() > 10) return std::nullopt;
  long long v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  if (v < 1 || v > max) return std::nullopt;
  return static_cast<int>(v);
}

std::string new_nonce() { return base64_encode(random_bytes(kNonceRawLen)); }

// Secrets for mock verifiers, generated once per process.
struct MockSecrets {
  std::string salt_key = random_bytes(kKeyLen);
  std::string stored_key = random_bytes(kKeyLen);
  std::string server_key = random_bytes(kKeyLen);
};

const MockSecrets& mock_secrets() {
  static const MockSecrets secrets;  // thread-safe initialization
  return secrets;
}

enum ServerState : int { kAwaitClientFirst = 0, kAwaitClientFinal = 1, kFinished = 2 };

}  // namespace

// ---- helpers --------------------------------------------------------------------------------

std::string base64_encode(std::string_view raw) {
  std::string out;
  out.reserve((raw.size() + 2) / 3 * 4);
  unsigned char buf[kB64TextChunk + 1];  // EVP_EncodeBlock writes a trailing NUL
  for (size_t pos = 0; pos < raw.size(); pos += kB64RawChunk) {
    const size_t n = std::min(kB64RawChunk, raw.size() - pos);
    const int written = EVP_EncodeBlock(buf, bytes_of(raw) + pos, static_cast<int>(n));
    out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(written));
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  const int pad = b64_padding(text);
  if (pad < 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  unsigned char buf[kB64RawChunk];
  for (size_t pos = 0; pos < text.size(); pos += kB64TextChunk) {
    const size_t n = std::min(kB64TextChunk, text.size() - pos);
    // EVP_DecodeBlock counts pad positions as zero bytes: it always yields n/4*3 bytes.
    const int written = EVP_DecodeBlock(buf, bytes_of(text) + pos, static_cast<int>(n));
    if (written < 0 || static_cast<size_t>(written) != n / 4 * 3) return std::nullopt;
    out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(written));
  }
  out.resize(out.size() - static_cast<size_t>(pad));  // padding is only ever in the last chunk
  return out;
}

std::string random_bytes(size_t n) {
  std::string out(n, '\0');
  for (size_t pos = 0; pos < n;) {
    const size_t chunk = std::min(n - pos, static_cast<size_t>(INT_MAX));
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()) + pos, static_cast<int>(chunk)) != 1) {
      // No randomness means no safe nonces, salts or secrets; there is no sane way to go on.
      std::fputs("rowguard: RAND_bytes failed\n", stderr);
      std::abort();
    }
    pos += chunk;
  }
  return out;
}

bool secure_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;  // lengths are public (fixed 32-byte keys)
  return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string md5_password(std::string_view user, std::string_view password, std::string_view salt4) {
  std::string inner_input(password);
  inner_input.append(user);
  std::string outer_input = md5_hex(inner_input);
  if (outer_input.empty()) return "";
  outer_input.append(salt4);
  const std::string outer = md5_hex(outer_input);
  if (outer.empty()) return "";
  return "md5" + outer;
}

// ---- ScramVerifier --------------------------------------------------------------------------

ScramVerifier ScramVerifier::from_password(std::string_view password, std::string_view salt,
                                           int iterations) {
  // PostgreSQL SASLprep-normalizes the password first (RFC 4013). For ASCII passwords that is
  // the identity, which is all we do here; non-ASCII passwords may derive different keys than
  // PostgreSQL would.
  ScramVerifier v;
  v.iterations = iterations;
  v.salt = std::string(salt);
  const std::string salted = pbkdf2_sha256(password, salt, iterations);
  if (salted.empty()) return v;  // empty keys: can never verify
  v.stored_key = sha256(hmac_sha256(salted, "Client Key"));
  v.server_key = hmac_sha256(salted, "Server Key");
  return v;
}

std::optional<ScramVerifier> ScramVerifier::parse(std::string_view text) {
  if (!text.starts_with(kScramPrefix)) return std::nullopt;
  text.remove_prefix(kScramPrefix.size());
  // <iterations>:<salt>$<StoredKey>:<ServerKey>
  const size_t dollar = text.find('$');
  if (dollar == std::string_view::npos) return std::nullopt;
  const std::string_view params = text.substr(0, dollar);
  const std::string_view keys = text.substr(dollar + 1);
  const size_t c1 = params.find(':');
  const size_t c2 = keys.find(':');
  if (c1 == std::string_view::npos || c2 == std::string_view::npos) return std::nullopt;

  const auto iterations = parse_count(params.substr(0, c1), INT_MAX);
  auto salt = base64_decode(params.substr(c1 + 1));
  auto stored = base64_decode(keys.substr(0, c2));
  auto server = base64_decode(keys.substr(c2 + 1));
  if (!iterations || !salt || !stored || !server) return std::nullopt;
  if (salt->empty() || stored->size() != kKeyLen || server->size() != kKeyLen) return std::nullopt;

  ScramVerifier v;
  v.iterations = *iterations;
  v.salt = std::move(*salt);
  v.stored_key = std::move(*stored);
  v.server_key = std::move(*server);
  return v;
}

std::string ScramVerifier::to_string() const {
  return std::string(kScramPrefix) + std::to_string(iterations) + ":" + base64_encode(salt) + "$" +
         base64_encode(stored_key) + ":" + base64_encode(server_key);
}

ScramVerifier mock_verifier(std::string_view user) {
  // Same shape as a real verifier, stable per user (so probing twice shows the same salt), but
  // its StoredKey is keyed by a secret nobody knows: accepting a proof would need a SHA-256
  // preimage of it.
  const MockSecrets& s = mock_secrets();
  ScramVerifier v;
  v.iterations = 4096;  // PostgreSQL's default (scram_iterations)
  v.salt = hmac_sha256(s.salt_key, user).substr(0, 16);
  v.stored_key = hmac_sha256(s.stored_key, user);
  v.server_key = hmac_sha256(s.server_key, user);
  return v;
}

// ---- ScramServer ----------------------------------------------------------------------------

ScramServer::ScramServer(ScramVerifier verifier, std::string nonce_for_test)
    : verifier_(std::move(verifier)),
      server_nonce_(nonce_for_test.empty() ? new_nonce() : std::move(nonce_for_test)) {}

void ScramServer::set_channel_binding(std::string cbind_data, bool plus) {
  cbind_data_ = std::move(cbind_data);
  plus_ = plus;
}

std::optional<std::string> ScramServer::handle_client_first(std::string_view client_first) {
  if (state_ != kAwaitClientFirst) return std::nullopt;
  state_ = kFinished;  // any failure ends the exchange

  // gs2-header: "n,," (no channel binding), "y,," (the client could bind but thinks we
  // cannot) or "p=tls-server-end-point,," (binding, only with SCRAM-SHA-256-PLUS on TLS). An
  // authzid ("n,a=...,") is refused, as PostgreSQL does.
  std::string_view header;
  if (client_first.starts_with("p=tls-server-end-point,,")) {
    if (!plus_ || cbind_data_.empty()) return std::nullopt;
    header = client_first.substr(0, std::string_view("p=tls-server-end-point,,").size());
  } else if (client_first.starts_with("n,,") || client_first.starts_with("y,,")) {
    if (plus_) return std::nullopt;  // PLUS chosen but no binding sent
    // "y": the client supports binding and believes we do not; we do on TLS: a downgrade.
    if (client_first.starts_with("y,,") && !cbind_data_.empty()) return std::nullopt;
    header = client_first.substr(0, 3);
  } else {
    return std::nullopt;
  }
  const std::string_view bare = client_first.substr(header.size());

  // client-first-message-bare: n=<user>,r=<nonce>[,extensions]. A leading "m=" (mandatory
  // extension) is refused; later optional extensions are ignored, as PostgreSQL does. The user
  // name is ignored too: it came in the startup packet.
  const auto attrs = split_attrs(bare);
  if (!attrs || attrs->size() < 2) return std::nullopt;
  if ((*attrs)[0].name != 'n' || (*attrs)[1].name != 'r') return std::nullopt;
  const std::string_view client_nonce = (*attrs)[1].value;
  if (!valid_nonce(client_nonce)) return std::nullopt;

  gs2_header_ = std::string(header);
  client_first_bare_ = std::string(bare);
  combined_nonce_ = std::string(client_nonce) + server_nonce_;
  server_first_ = "r=" + combined_nonce_ + ",s=" + base64_encode(verifier_.salt) +
                  ",i=" + std::to_string(verifier_.iterations);
  state_ = kAwaitClientFinal;
  return server_first_;
}

std::optional<std::string> ScramServer::handle_client_final(std::string_view client_final) {
  if (state_ != kAwaitClientFinal) return std::nullopt;
  state_ = kFinished;

  // c=<b64 gs2 header>,r=<nonce>[,extensions],p=<b64 proof>
  const auto attrs = split_attrs(client_final);
  if (!attrs || attrs->size() < 3) return std::nullopt;
  const Attr& cbind = attrs->front();
  const Attr& nonce = (*attrs)[1];
  const Attr& proof_attr = attrs->back();
  if (cbind.name != 'c' || nonce.name != 'r' || proof_attr.name != 'p') return std::nullopt;
  // c= is base64(gs2-header + binding data); the data only with "p=".
  std::string expected_cbind = gs2_header_;
  if (gs2_header_.starts_with("p=")) expected_cbind += cbind_data_;
  if (!secure_equal(cbind.value, base64_encode(expected_cbind))) return std::nullopt;
  if (nonce.value != combined_nonce_) return std::nullopt;
  const auto proof = base64_decode(proof_attr.value);
  if (!proof || proof->size() != kKeyLen) return std::nullopt;

  // Everything but ",p=<proof>" (which is the last attribute).
  const std::string_view without_proof =
      client_final.substr(0, client_final.size() - proof_attr.value.size() - 3);
  const std::string auth_message =
      client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);

  const std::string client_signature = hmac_sha256(verifier_.stored_key, auth_message);
  const std::string client_key = xor_bytes(*proof, client_signature);
  if (client_key.size() != kKeyLen || verifier_.stored_key.size() != kKeyLen) return std::nullopt;
  if (!secure_equal(sha256(client_key), verifier_.stored_key)) return std::nullopt;

  const std::string server_signature = hmac_sha256(verifier_.server_key, auth_message);
  if (server_signature.size() != kKeyLen) return std::nullopt;
  return "v=" + base64_encode(server_signature);
}

// ---- ScramClient ----------------------------------------------------------------------------

ScramClient::ScramClient(std::string password, std::string nonce_for_test)
    : password_(std::move(password)),
      client_nonce_(nonce_for_test.empty() ? new_nonce() : std::move(nonce_for_test)) {}

std::string ScramClient::client_first() {
  client_first_bare_ = "n=,r=" + client_nonce_;
  return (cbind_data_.empty() ? std::string("n,,") : std::string("p=tls-server-end-point,,")) + client_first_bare_;
}

std::optional<std::string> ScramClient::handle_server_first(std::string_view server_first) {
  if (client_first_bare_.empty()) return std::nullopt;  // client_first() not sent yet
  expected_server_signature_.clear();

  // Exactly r=<nonce>,s=<salt>,i=<iterations> (like libpq: no "m=", no trailing extensions).
  const auto attrs = split_attrs(server_first);
  if (!attrs || attrs->size() != 3) return std::nullopt;
  const Attr& r = (*attrs)[0];
  const Attr& s = (*attrs)[1];
  const Attr& i = (*attrs)[2];
  if (r.name != 'r' || s.name != 's' || i.name != 'i') return std::nullopt;

  const std::string_view nonce = r.value;
  if (!valid_nonce(nonce) || nonce.size() <= client_nonce_.size() ||
      !nonce.starts_with(client_nonce_)) {
    return std::nullopt;
  }
  const auto salt = base64_decode(s.value);
  if (!salt || salt->empty()) return std::nullopt;
  const auto iterations = parse_count(i.value, kMaxClientIterations);
  if (!iterations) return std::nullopt;

  const std::string salted = pbkdf2_sha256(password_, *salt, *iterations);
  if (salted.empty()) return std::nullopt;
  const std::string client_key = hmac_sha256(salted, "Client Key");
  const std::string stored_key = sha256(client_key);
  const std::string server_key = hmac_sha256(salted, "Server Key");

  const std::string cbind = cbind_data_.empty() ? std::string("n,,") : "p=tls-server-end-point,," + cbind_data_;
  const std::string without_proof = "c=" + base64_encode(cbind) + ",r=" + std::string(nonce);
  const std::string auth_message =
      client_first_bare_ + "," + std::string(server_first) + "," + without_proof;
  const std::string client_signature = hmac_sha256(stored_key, auth_message);
  const std::string proof = xor_bytes(client_key, client_signature);
  const std::string server_signature = hmac_sha256(server_key, auth_message);
  if (proof.size() != kKeyLen || server_signature.size() != kKeyLen) return std::nullopt;

  expected_server_signature_ = server_signature;
  return without_proof + ",p=" + base64_encode(proof);
}

bool ScramClient::verify_server_final(std::string_view server_final) const {
  if (expected_server_signature_.empty()) return false;
  // "v=<b64 ServerSignature>"; "e=<error>" is a failure.
  const auto attrs = split_attrs(server_final);
  if (!attrs || attrs->size() != 1 || attrs->front().name != 'v') return false;
  const auto signature = base64_decode(attrs->front().value);
  if (!signature) return false;
  return secure_equal(*signature, expected_server_signature_);
}

}  // namespace rowguard::auth
