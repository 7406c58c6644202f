#pragma once
// A minimal HTTP/1.0 responder for Prometheus: GET /metrics -> text exposition; anything else
// 404. One request per connection, bounded request size, loopback by configuration.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <string>

namespace rowguard::net {

boost::asio::awaitable<void> serve_metrics(boost::asio::ip::tcp::acceptor& acceptor,
                                           std::function<std::string()> render);

}  // namespace rowguard::net
