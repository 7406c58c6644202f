#pragma once
// SCRAM-SHA-256 (RFC 5802 / RFC 7677) for both sides of rowguard, and PostgreSQL's md5 scheme.
// Built on OpenSSL (PBKDF2, HMAC, SHA-256, base64, RAND_bytes). No I/O.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rowguard::auth {

// A stored verifier, as PostgreSQL keeps it in pg_authid:
//   SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
struct ScramVerifier {
  int iterations = 4096;
  std::string salt;        // raw bytes
  std::string stored_key;  // raw 32 bytes
  std::string server_key;  // raw 32 bytes

  static ScramVerifier from_password(std::string_view password, std::string_view salt,
                                     int iterations = 4096);
  static std::optional<ScramVerifier> parse(std::string_view text);  // pg_authid format
  std::string to_string() const;                                   // pg_authid format
};

// Server side (rowguard authenticating a client). One object per authentication exchange.
class ScramServer {
 public:
  // `verifier` is the user's; for an unknown user pass a mock verifier (see mock_verifier) so
  // the exchange looks the same and fails at the end, as PostgreSQL does.
  // `nonce_for_test` replaces the random server nonce (tests only).
  explicit ScramServer(ScramVerifier verifier, std::string nonce_for_test = {});

  // On a TLS connection whose certificate gives tls-server-end-point data (channel_binding.h):
  // `cbind_data` is that data, `plus` whether the client chose SCRAM-SHA-256-PLUS. Then "p="
  // must carry exactly that binding, and a client saying "y" (it could bind but thinks we
  // cannot) is refused as a downgrade (RFC 5802 6). Call before handle_client_first.
  void set_channel_binding(std::string cbind_data, bool plus);

  // client-first-message (the data of SASLInitialResponse). Returns server-first-message,
  // or nullopt when the message is malformed or its channel binding flag does not fit.
  std::optional<std::string> handle_client_first(std::string_view client_first);
  // client-final-message. Returns server-final-message ("v=...") when the proof verifies,
  // nullopt when it does not (wrong password) or the message is malformed.
  std::optional<std::string> handle_client_final(std::string_view client_final);

 private:
  ScramVerifier verifier_;
  std::string server_nonce_;
  std::string client_first_bare_;
  std::string server_first_;
  std::string combined_nonce_;
  std::string gs2_header_;  // "n,,", "y,," or "p=tls-server-end-point,," from client-first
  std::string cbind_data_;  // tls-server-end-point hash, empty without TLS
  bool plus_ = false;       // SCRAM-SHA-256-PLUS chosen
  int state_ = 0;
};

// A deterministic, per-process-secret-keyed mock verifier for an unknown user.
ScramVerifier mock_verifier(std::string_view user);

// Client side (rowguard logging in upstream).
class ScramClient {
 public:
  ScramClient(std::string password, std::string nonce_for_test = {});
  // Binds to tls-server-end-point data (SCRAM-SHA-256-PLUS); call before client_first().
  void set_channel_binding(std::string cbind_data) { cbind_data_ = std::move(cbind_data); }
  std::string client_first();  // "n,,n=,r=<nonce>" (the user is sent in the startup packet)
  // server-first-message -> client-final-message; nullopt when malformed or nonce mismatch.
  std::optional<std::string> handle_server_first(std::string_view server_first);
  // server-final-message: true when the server signature verifies.
  bool verify_server_final(std::string_view server_final) const;

 private:
  std::string password_;
  std::string client_nonce_;
  std::string client_first_bare_;
  std::string cbind_data_;
  std::string expected_server_signature_;  // raw
};

// PostgreSQL md5: "md5" + md5hex(md5hex(password + user) + salt)
std::string md5_password(std::string_view user, std::string_view password, std::string_view salt4);

std::string base64_encode(std::string_view raw);
std::optional<std::string> base64_decode(std::string_view text);
std::string random_bytes(size_t n);
// Constant-time comparison.
bool secure_equal(std::string_view a, std::string_view b);

}  // namespace rowguard::auth
