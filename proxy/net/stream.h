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

  // All of `b`, or an error. A plain socket is first written directly (non-blocking): a small
  // message usually fits the socket buffer, and then no operation goes through the io_context
  // (no completion handler queued, no extra trip through epoll_wait). Only what did not fit
  // waits for the socket, as async_write. A write already waiting keeps its place: the next
  // one waits behind it (as asio orders them), never jumps ahead.
  boost::asio::awaitable<std::tuple<boost::system::error_code, size_t>> write(
      boost::asio::const_buffer b) {
    constexpr auto use = boost::asio::as_tuple(boost::asio::use_awaitable);
    if (tls_) co_return co_await boost::asio::async_write(*tls_, b, use);
    size_t done = 0;
    if (writing_ == 0 && b.size() > 0) {
      boost::system::error_code ec;
      // Once per socket (a flag of asio's, no system call to read it): a direct write returns
      // would_block instead of waiting.
      if (!socket_.non_blocking()) socket_.non_blocking(true, ec);
      if (!ec && socket_.non_blocking()) {
        done = socket_.write_some(b, ec);
        if (!ec && done == b.size()) co_return std::tuple{ec, done};
        if (ec && ec != boost::asio::error::would_block && ec != boost::asio::error::try_again) {
          co_return std::tuple{ec, size_t{0}};
        }
        if (ec) done = 0;
      }
    }
    struct Writing {  // (also counted down when the coroutine is destroyed while it waits)
      int& n;
      explicit Writing(int& w) : n(w) { ++n; }
      ~Writing() { --n; }
    } writing{writing_};
    auto [ec, n] = co_await boost::asio::async_write(socket_, b + done, use);
    co_return std::tuple{ec, done + n};
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
  int writing_ = 0;            // async_writes under way
};

}  // namespace rowguard::net
