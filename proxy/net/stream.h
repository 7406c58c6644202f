#pragma once
// A byte stream that is a TCP socket or TLS over it, so that the connection code reads and
// writes the same way in both cases. One read and one write may be in flight at once.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <memory>
#include <string>
#include <tuple>

namespace rowguard::net {

class Stream {
 public:
  using tcp = boost::asio::ip::tcp;
  explicit Stream(tcp::socket socket) : socket_(std::move(socket)) {}

  tcp::socket& socket() { return socket_; }
  bool tls() const { return tls_ != nullptr; }
  // The OpenSSL connection object once TLS is on (channel binding), else nullptr.
  SSL* native_tls() { return tls_ ? tls_->native_handle() : nullptr; }

  boost::asio::awaitable<std::tuple<boost::system::error_code, size_t>> read_some(
      boost::asio::mutable_buffer b) {
    constexpr auto use = boost::asio::as_tuple(boost::asio::use_awaitable);
    if (tls_) co_return co_await tls_->async_read_some(b, use);
    co_return co_await socket_.async_read_some(b, use);
  }

  boost::asio::awaitable<std::tuple<boost::system::error_code, size_t>> write(
      boost::asio::const_buffer b) {
    constexpr auto use = boost::asio::as_tuple(boost::asio::use_awaitable);
    if (tls_) co_return co_await boost::asio::async_write(*tls_, b, use);
    co_return co_await boost::asio::async_write(socket_, b, use);
  }

  // Starts TLS on the connected socket. `server_name` (client side): SNI and, when the context
  // verifies peers, the host name the certificate must match.
  boost::asio::awaitable<boost::system::error_code> handshake(
      boost::asio::ssl::context& ctx, boost::asio::ssl::stream_base::handshake_type type,
      const std::string& server_name = {}) {
    tls_ = std::make_unique<boost::asio::ssl::stream<tcp::socket&>>(socket_, ctx);
    if (type == boost::asio::ssl::stream_base::client && !server_name.empty()) {
      SSL_set_tlsext_host_name(tls_->native_handle(), server_name.c_str());
      tls_->set_verify_callback(boost::asio::ssl::host_name_verification(server_name));
    }
    auto [ec] = co_await tls_->async_handshake(type, boost::asio::as_tuple(boost::asio::use_awaitable));
    co_return ec;
  }

  void close() {
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

 private:
  tcp::socket socket_;
  std::unique_ptr<boost::asio::ssl::stream<tcp::socket&>> tls_;
};

}  // namespace rowguard::net
