#pragma once
// A minimal HTTP/1.0 responder for Prometheus: GET /metrics -> text exposition; GET /health ->
// 200 "ok" while serving, 503 "draining" once shutdown has begun (a load balancer's check, e.g.
// HAProxy `option httpchk GET /health`, stops sending new clients); anything else 404. One request per connection, bounded request size, loopback by configuration.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <string>

namespace rowguard::net {

boost::asio::awaitable<void> serve_metrics(boost::asio::ip::tcp::acceptor& acceptor,
                                           std::function<std::string()> render,
                                           std::function<bool()> serving);

}  // namespace rowguard::net
