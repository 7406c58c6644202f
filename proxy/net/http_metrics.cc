// The /metrics HTTP endpoint (Asio coroutines on the main io_context).
#include "proxy/net/http_metrics.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace rowguard::net {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);

asio::awaitable<void> answer(tcp::socket sock, std::function<std::string()> render, std::function<bool()> serving) {
  std::string request;
  char buf[2048];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < 16384) {
    auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf), kUse);
    if (ec) co_return;
    request.append(buf, n);
  }
  std::string response;
  if (request.starts_with("GET /metrics ") || request.starts_with("GET /metrics?")) {
    std::string body = render();
    response = "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  } else if (request.starts_with("GET /health ") || request.starts_with("GET /health?")) {
    response = serving() ? "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
                         : "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n"
                           "Connection: close\r\n\r\ndraining\n";
  } else {
    response = "HTTP/1.0 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n";
  }
  co_await asio::async_write(sock, asio::buffer(response), kUse);
  boost::system::error_code ignored;
  sock.shutdown(tcp::socket::shutdown_both, ignored);
}

}  // namespace

asio::awaitable<void> serve_metrics(tcp::acceptor& acceptor, std::function<std::string()> render,
                                    std::function<bool()> serving) {
  for (;;) {
    auto [ec, sock] = co_await acceptor.async_accept(kUse);
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      continue;
    }
    asio::co_spawn(acceptor.get_executor(), answer(std::move(sock), render, serving), asio::detached);
  }
}

}  // namespace rowguard::net
