#pragma once
// One client connection: startup, authentication, upstream login, then the statement loop.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "proxy/protocol/codec.h"

namespace rowguard::net {

class Server;
struct Worker;

boost::asio::awaitable<void> serve_client(boost::asio::ip::tcp::socket client, Server& server,
                                          Worker& worker);

// A startup packet asking for a newer 3.x minor version or carrying "_pq_." protocol options: the
// options are removed from `packet` and the NegotiateProtocolVersion frame to send first (3.0, the
// options as unrecognized) is returned, as PostgreSQL answers; nullopt for a plain 3.0 startup.
std::optional<std::string> negotiate_protocol(protocol::StartupPacket& packet);

// A CancelRequest (pid, key) sent on a new connection to host:port (errors ignored: best effort,
// as in libpq; bounded to 10 s). Returns once the other end has closed the connection (it has
// then acted on the request), as libpq's PQcancel waits.
boost::asio::awaitable<void> send_cancel_to(boost::asio::io_context& ctx, std::string host, uint16_t port,
                                            int32_t pid, int32_t key);

// A connection on [proxy] peer_listen: another instance of the fleet forwards one CancelRequest
// whose key names this instance. It is looked up here and never forwarded again (the hop limit).
boost::asio::awaitable<void> serve_peer_cancel(boost::asio::ip::tcp::socket peer, Server& server, Worker& worker);

}  // namespace rowguard::net
