#pragma once
// Logging in to the real PostgreSQL as the configured upstream role.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/policy.h"
#include "proxy/net/stream.h"
#include "proxy/protocol/codec.h"

namespace rowguard::net {

struct UpstreamLogin {
  bool ok = false;
  std::string sqlstate;  // when !ok
  std::string message;   // when !ok
  std::string server_message;  // when !ok because the server sent an ErrorResponse: its text
  bool authenticated = false;  // AuthenticationOk was received
  bool client_left = false;    // with an AuthRelay: the client went away or did not answer
  bool channel_binding = false;  // SCRAM-SHA-256-PLUS bound to the server's TLS certificate
  std::vector<protocol::ParameterStatus> parameters;  // in the order the server sent them
  protocol::BackendKeyData key;
  char tx_status = 'I';
  std::string leftover;  // bytes read after the first ReadyForQuery
};

// identity = "role": the client answers the server's authentication requests itself.
class AuthRelay {
 public:
  virtual ~AuthRelay() = default;
  // Sends `frame` (an Authentication request) to the client; with `expect_answer`, returns the
  // body of the client's PasswordMessage/SASL response (nullopt: the client failed or left).
  virtual boost::asio::awaitable<std::optional<std::string>> relay(std::string_view frame, bool expect_answer) = 0;
};

// Connects `socket` to the upstream and completes authentication (SCRAM-SHA-256, md5 or
// cleartext, whichever the server asks for) up to the first ReadyForQuery.
// `tls` is null when upstream_tls = "disable". With `relay`, authentication requests go to the
// client instead (SCRAM-SHA-256-PLUS is removed from the offered mechanisms: the client's TLS
// ends at rowguard, so its channel binding could never match the server's certificate).
boost::asio::awaitable<UpstreamLogin> login_upstream(
    Stream& stream, boost::asio::ssl::context* tls, const policy::ProxySettings& settings,
    const std::string& database, const std::vector<std::pair<std::string, std::string>>& params,
    AuthRelay* relay = nullptr);

}  // namespace rowguard::net
