// Bypass sessions ([[bypass]] logins): bytes as they come, both ways.
#include <spdlog/spdlog.h>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <optional>
#include <string_view>

#include "proxy/net/client_connection.h"
#include "proxy/net/ddl_watch.h"

namespace rowguard::net {
namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;

// The bytes are relayed unchanged; two FrameScanners follow the message boundaries so that
// the length limits, the idle timeouts and message_timeout hold for bypass sessions too.
asio::awaitable<void> ClientConnection::bypass_loop() {
  protocol::FrameScanner from_client(policy_->limits.max_message_size);
  protocol::FrameScanner from_server(policy_->limits.max_server_message);
  co_await (pump(client_, upstream_, client_buf_, from_client, true) ||
            pump(upstream_, client_, server_buf_, from_server, false));
}

asio::awaitable<void> ClientConnection::pump(Stream& from, Stream& to, std::string& data,
                                             protocol::FrameScanner& scanner, bool from_client) {
  // `data` starts with what was received during login; afterwards it holds one read (at most
  // kReadChunk bytes) behind at most 4 bytes of a header the scanner has not consumed yet.
  for (;;) {
    // A reload that removed this bypass login ends the session before any byte read after it
    // is relayed (the same rule as a tenant session's, proxy/net/identity_recheck.h).
    if (from_client && !data.empty()) {
      if (std::string why = identity_revoked(); !why.empty()) {
        spdlog::warn("session={} bypass user={} ended: {}", id_, user_, why);
        audit("(session ended by a policy reload)", false, why);
        revoked_ = why;
        co_return;
      }
    }
    bool complete = false;
    const size_t ok = scanner.feed(data, [&](char tag, char first) {
      if (from_client) {
        complete = true;
        if (tag == protocol::fe::kQuery || tag == protocol::fe::kSync) ++bypass_relay_.batches_out;
      } else if (tag == protocol::be::kReadyForQuery) {
        ++bypass_relay_.batches_in;
        tx_ = first;
        if (!in_flight()) watch_.idle(tx_, policy_->limits);
        if (bypass_relay_.ddl_pending && first == 'I') {  // committed (or rolled back): re-read the schema
          bypass_relay_.ddl_pending = false;
          server_.schema_changed("DDL by bypass session " + std::to_string(id_));
        }
      } else if (tag == protocol::be::kCommandComplete) {
        const size_t body = scanner.frame_length() - 4;
        const bool whole = scanner.frame_end() >= body;
        bypass_relay_.ddl_pending |= schema_changing_command(
            first, whole ? std::optional<std::string_view>(std::string_view(data).substr(scanner.frame_end() - body, body))
                         : std::nullopt);
      }
    });
    if (ok > 0) {
      auto [wec, wn] = co_await to.write(asio::buffer(data.data(), ok));
      if (wec) co_return;
      if (!from_client) server_.metrics().bytes_to_clients.fetch_add(wn, std::memory_order_relaxed);
    }
    if (scanner.failed()) {
      if (!from_client) {
        spdlog::error("session={} bypass: bad message from the server: {}", id_, scanner.error());
        bypass_relay_.server_fault = scanner.too_long() ? ServerFault::kTooLong : ServerFault::kMalformed;
      } else if (scanner.too_long()) {
        refuse_too_long(scanner.failed_tag(), scanner.failed_length());
      } else {
        spdlog::warn("session={} client={} malformed message: {}", id_, peer_, scanner.error());
        refusal_ = "invalid message: " + scanner.error();
      }
      co_return;
    }
    data.erase(0, ok);
    give_back(data);
    if (from_client) watch_.client_bytes(complete, scanner.mid_message(), policy_->limits);
    if (!co_await read_more(from, data)) co_return;
  }
}

}  // namespace rowguard::net
