#pragma once
// One client connection: startup, authentication, upstream login, then the statement loop.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace rowguard::net {

class Server;
struct Worker;

boost::asio::awaitable<void> serve_client(boost::asio::ip::tcp::socket client, Server& server,
                                          Worker& worker);

}  // namespace rowguard::net
