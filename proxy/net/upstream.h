#pragma once
// Logging in to the real PostgreSQL as the configured upstream role.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <string>
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
  std::vector<protocol::ParameterStatus> parameters;  // in the order the server sent them
  protocol::BackendKeyData key;
  char tx_status = 'I';
  std::string leftover;  // bytes read after the first ReadyForQuery
};

// Connects `socket` to the upstream and completes authentication (SCRAM-SHA-256, md5 or
// cleartext, whichever the server asks for) up to the first ReadyForQuery.
// `tls` is null when upstream_tls = "disable".
boost::asio::awaitable<UpstreamLogin> login_upstream(
    Stream& stream, boost::asio::ssl::context* tls, const policy::ProxySettings& settings,
    const std::string& database, const std::vector<std::pair<std::string, std::string>>& params);

}  // namespace rowguard::net
