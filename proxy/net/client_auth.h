#pragma once
// Authenticating a client and establishing its tenant, per [tenancy] identity:
//   map  SCRAM-SHA-256 against [[tenants]]/[[bypass]] (SCRAM-SHA-256-PLUS with
//        tls-server-end-point channel binding on TLS);
//   jwt  AuthenticationCleartextPassword; the password is a JWT whose claim names the tenant
//        (TLS required unless jwt_allow_without_tls); [[bypass]] users use SCRAM as in map;
//   role nothing here: PostgreSQL authenticates the client's own role during the upstream
//        login, which relays the exchange through ClientAuthRelay; [[roles]] gives the tenant.
// The tenant never comes from anything the client sends besides its credentials.
#include <openssl/ssl.h>

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "pg/sqlstate.h"
#include "policy/policy.h"
#include "proxy/net/upstream.h"

namespace rowguard::net {

struct ClientMessage {
  char tag = 0;
  std::string body;
};

// What the authentication exchanges need from the client connection.
class ClientIo {
 public:
  virtual ~ClientIo() = default;
  virtual boost::asio::awaitable<bool> write_client(std::string_view bytes) = 0;
  // The next complete message from the client (consumed); nullopt at EOF or when it is malformed
  // (then already answered with an error).
  virtual boost::asio::awaitable<std::optional<ClientMessage>> next_client_message(size_t max) = 0;
};

// How a login was authenticated (decides what a policy reload checks again, identity_recheck.h).
enum class AuthMethod : uint8_t {
  kNone,       // not authenticated (yet)
  kScram,      // SCRAM-SHA-256 against [[tenants]] / [[bypass]]
  kScramPlus,  // SCRAM-SHA-256-PLUS (tls-server-end-point channel binding)
  kJwt,        // identity = "jwt": the password is a JWT
  kRole,       // identity = "role": PostgreSQL authenticated the role
};
// As the log prints it: "scram", "scram-plus", "jwt", "role" ("" for kNone).
std::string_view to_string(AuthMethod method);

struct ClientAuth {
  bool ok = false;
  std::optional<std::string> tenant;  // when ok; nullopt: bypass
  AuthMethod method = AuthMethod::kNone;
  // identity = "jwt": the token the client logged in with, kept (in memory only, never logged)
  // so that a policy reload can verify it again (proxy/net/identity_recheck.h).
  std::string jwt_token;
  // identity = "role": authentication happens during the upstream login (relay it).
  bool passthrough = false;
  // identity = "role" with a role not in [[roles]]: refuse with this after authentication
  // succeeded (so that probing reveals nothing about the mapping).
  std::string refuse_after_auth;
  // The client went away (or sent nothing usable) mid-exchange: close quietly, not a failure.
  bool client_left = false;
  // When !ok: what the client gets (FATAL) and why, for the log (never a secret).
  std::string sqlstate{pg::sqlstate::kInvalidPassword};
  std::string message;
  std::string reason;
};

// `tls`: the client connection's SSL object, nullptr without TLS.
boost::asio::awaitable<ClientAuth> authenticate_client(ClientIo& io, const policy::Policy& policy,
                                                       const std::string& user, SSL* tls);

// identity = "role": passes the upstream's authentication requests to the client and the
// client's answers back.
std::unique_ptr<AuthRelay> make_client_relay(ClientIo& io);

}  // namespace rowguard::net
