#pragma once
// The admin console: a client that asks for the virtual database "rowguard" and logs in as a
// bypass user is answered by rowguard itself (SHOW CLIENTS/SERVERS/STATS/POLICY/CACHE/HELP,
// RELOAD, PAUSE, RESUME), never forwarded upstream. Tenant users are refused (42501).
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <string>

#include "proxy/net/stream.h"
#include "proxy/protocol/codec.h"

namespace rowguard::net {

class Server;
class ClientInfo;

// Whether the startup packet names the console's database.
bool wants_console(const protocol::StartupPacket& startup);

struct ConsoleClient {
  Stream& stream;
  std::string& buf;  // bytes already read from the client after authentication
  uint64_t id = 0;
  std::string user;  // authenticated
  std::string peer;
  ClientInfo& info;
};

// Runs the console after a successful authentication (AuthenticationOk already sent) until the
// client leaves.
boost::asio::awaitable<void> serve_console(Server& server, ConsoleClient client);

}  // namespace rowguard::net
