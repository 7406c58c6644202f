// Upstream login: TCP connect, StartupMessage, authentication exchange, parameters.
#include "proxy/net/upstream.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <optional>

#include "pg/sqlstate.h"
#include "auth/channel_binding.h"
#include "auth/scram.h"

namespace rowguard::net {
namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxLoginMessage = 1 << 20;

UpstreamLogin failure(std::string_view sqlstate, std::string message) {
  UpstreamLogin r;
  r.sqlstate = sqlstate;
  r.message = std::move(message);
  return r;
}

// Reads one complete frame from `sock` into `buf`; returns it (pointing into buf) or nullopt.
asio::awaitable<std::optional<protocol::Frame>> read_frame(Stream& sock, std::string& buf,
                                                          std::string& error) {
  for (;;) {
    auto r = protocol::decode_frame(buf, kMaxLoginMessage);
    if (r.status == protocol::DecodeStatus::kComplete) co_return r.frame;
    if (r.status == protocol::DecodeStatus::kMalformed) {
      error = "malformed message from the server: " + r.error;
      co_return std::nullopt;
    }
    char tmp[8192];
    auto [ec, n] = co_await sock.read_some(asio::buffer(tmp));
    if (ec) {
      error = "the server closed the connection during login: " + ec.message();
      co_return std::nullopt;
    }
    buf.append(tmp, n);
  }
}

}  // namespace

asio::awaitable<UpstreamLogin> login_upstream(
    Stream& stream, asio::ssl::context* tls, const policy::ProxySettings& settings, const std::string& database,
    const std::vector<std::pair<std::string, std::string>>& params, AuthRelay* relay) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  std::string port = std::to_string(settings.upstream_port);
  auto [rec, endpoints] = co_await resolver.async_resolve(settings.upstream_host, port, kUse);
  if (rec) co_return failure(pg::sqlstate::kSqlclientUnableToEstablishSqlconnection,
                             "cannot resolve upstream " + settings.upstream_host + ": " + rec.message());
  tcp::socket& socket = stream.socket();
  auto [cec, ep] = co_await asio::async_connect(socket, endpoints, kUse);
  if (cec) {
    co_return failure(pg::sqlstate::kSqlclientUnableToEstablishSqlconnection,
                      "cannot connect to upstream " + settings.upstream_host + ":" +
                      std::to_string(settings.upstream_port) + ": " + cec.message());
  }
  socket.set_option(tcp::no_delay(true));

  if (tls != nullptr) {
    std::string req;
    protocol::append_ssl_request(req);
    if (auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(req), kUse); wec) {
      co_return failure(pg::sqlstate::kConnectionFailure, "cannot send SSLRequest upstream: " + wec.message());
    }
    char answer = 0;
    if (auto [rec2, rn] = co_await asio::async_read(socket, asio::buffer(&answer, 1), kUse); rec2) {
      co_return failure(pg::sqlstate::kConnectionFailure, "no answer to SSLRequest from upstream: " + rec2.message());
    }
    if (answer == 'S') {
      // (a named variable: GCC 12 mishandles temporaries inside co_await expressions)
      std::string verify_name;
      if (settings.upstream_tls == policy::UpstreamTls::kVerifyFull) verify_name = settings.upstream_host;
      auto ec = co_await stream.handshake(*tls, asio::ssl::stream_base::client, verify_name);
      if (ec) co_return failure(pg::sqlstate::kConnectionFailure,
                                "TLS handshake with upstream failed: " + ec.message());
    } else if (answer == 'N') {
      if (settings.upstream_tls != policy::UpstreamTls::kPrefer) {
        co_return failure(pg::sqlstate::kConnectionFailure, "upstream does not accept TLS (upstream_tls = \"" +
                                                                std::string(policy::to_string(settings.upstream_tls)) + "\")");
      }
    } else {
      co_return failure(pg::sqlstate::kProtocolViolation, "invalid answer to SSLRequest from upstream");
    }
  }

  std::vector<std::pair<std::string, std::string>> startup = {{"user", settings.upstream_user},
                                                              {"database", database}};
  for (const auto& p : params) startup.push_back(p);
  std::string out;
  protocol::append_startup(out, startup);
  if (auto [wec, wn] = co_await stream.write(asio::buffer(out)); wec) {
    co_return failure(pg::sqlstate::kConnectionFailure, "cannot send startup to upstream: " + wec.message());
  }

  std::string buf;
  std::string error;
  std::optional<auth::ScramClient> scram;
  UpstreamLogin result;
  for (;;) {
    auto frame = co_await read_frame(stream, buf, error);
    if (!frame) co_return failure(pg::sqlstate::kConnectionFailure, error);
    out.clear();
    switch (frame->tag) {
      case protocol::be::kAuthentication: {
        auto a = protocol::parse_authentication(frame->body);
        if (!a) co_return failure(pg::sqlstate::kProtocolViolation, "malformed authentication request from upstream");
        if (relay != nullptr && a->code != protocol::AuthCode::kOk) {
          // identity = "role": the client authenticates as its own role.
          std::string request(buf.substr(0, frame->size));
          bool expect_answer = true;
          switch (a->code) {
            case protocol::AuthCode::kCleartextPassword:
            case protocol::AuthCode::kMD5Password:
            case protocol::AuthCode::kSASLContinue:
              break;
            case protocol::AuthCode::kSASL: {
              std::vector<std::string> mechanisms;
              for (const auto& m : a->mechanisms) {
                if (!m.ends_with("-PLUS")) mechanisms.push_back(m);
              }
              if (mechanisms.empty()) co_return failure(pg::sqlstate::kInvalidAuthorizationSpecification,
                                                        "upstream offers only channel-bound SASL mechanisms");
              request.clear();
              protocol::append_auth_sasl(request, mechanisms);
              break;
            }
            case protocol::AuthCode::kSASLFinal:
              expect_answer = false;
              break;
            default:
              co_return failure(pg::sqlstate::kInvalidAuthorizationSpecification,
                                "upstream asks for an unsupported authentication method (" +
                                std::to_string(static_cast<int>(a->code)) + ")");
          }
          auto answer = co_await relay->relay(request, expect_answer);
          if (!answer) {
            UpstreamLogin f = failure(pg::sqlstate::kConnectionFailure, "the client left during authentication");
            f.client_left = true;
            co_return f;
          }
          if (expect_answer) protocol::append_frame(out, protocol::fe::kPasswordMessage, *answer);
          buf.erase(0, frame->size);
          if (!out.empty()) {
            if (auto [wec, wn] = co_await stream.write(asio::buffer(out)); wec) {
              co_return failure(pg::sqlstate::kConnectionFailure, "cannot write to upstream: " + wec.message());
            }
          }
          continue;
        }
        switch (a->code) {
          case protocol::AuthCode::kOk:
            result.authenticated = true;
            break;
          case protocol::AuthCode::kCleartextPassword:
            protocol::append_password(out, settings.upstream_password);
            break;
          case protocol::AuthCode::kMD5Password:
            protocol::append_password(
                out, auth::md5_password(settings.upstream_user, settings.upstream_password, a->data));
            break;
          case protocol::AuthCode::kSASL: {
            bool has = false;
            bool has_plus = false;
            for (const auto& m : a->mechanisms) {
              has = has || m == "SCRAM-SHA-256";
              has_plus = has_plus || m == "SCRAM-SHA-256-PLUS";
            }
            // On TLS, bind to the server's certificate (tls-server-end-point) when offered: a
            // man in the middle with another certificate then fails the server's check.
            std::optional<std::string> cbind;
            if (has_plus) cbind = auth::tls_peer_end_point(stream.native_tls());
            if (!has && !cbind) co_return failure(pg::sqlstate::kInvalidAuthorizationSpecification,
                                                  "upstream offers no SCRAM-SHA-256 authentication");
            scram.emplace(settings.upstream_password);
            if (cbind) scram->set_channel_binding(*cbind);
            result.channel_binding = cbind.has_value();
            protocol::append_sasl_initial_response(out, cbind ? "SCRAM-SHA-256-PLUS" : "SCRAM-SHA-256",
                                                   scram->client_first());
            break;
          }
          case protocol::AuthCode::kSASLContinue: {
            if (!scram) co_return failure(pg::sqlstate::kProtocolViolation, "unexpected SASL continue from upstream");
            auto final_msg = scram->handle_server_first(a->data);
            if (!final_msg) co_return failure(pg::sqlstate::kProtocolViolation, "invalid SCRAM message from upstream");
            protocol::append_sasl_response(out, *final_msg);
            break;
          }
          case protocol::AuthCode::kSASLFinal:
            if (!scram || !scram->verify_server_final(a->data)) {
              co_return failure(pg::sqlstate::kInvalidAuthorizationSpecification,
                                "upstream server signature does not verify");
            }
            break;
          default:
            co_return failure(pg::sqlstate::kInvalidAuthorizationSpecification,
                              "upstream asks for an unsupported authentication method (" +
                              std::to_string(static_cast<int>(a->code)) + ")");
        }
        break;
      }
      case protocol::be::kErrorResponse: {
        auto e = protocol::parse_error_fields(frame->body);
        if (!e) co_return failure(pg::sqlstate::kProtocolViolation, "malformed error from upstream");
        UpstreamLogin f = failure(e->get('C'), "upstream: " + e->get('M'));
        f.server_message = e->get('M');
        f.authenticated = result.authenticated;
        co_return f;
      }
      case protocol::be::kParameterStatus: {
        auto p = protocol::parse_parameter_status(frame->body);
        if (!p) co_return failure(pg::sqlstate::kProtocolViolation, "malformed ParameterStatus from upstream");
        result.parameters.push_back(*p);
        break;
      }
      case protocol::be::kBackendKeyData: {
        auto k = protocol::parse_backend_key_data(frame->body);
        if (!k) co_return failure(pg::sqlstate::kProtocolViolation, "malformed BackendKeyData from upstream");
        result.key = *k;
        break;
      }
      case protocol::be::kReadyForQuery: {
        auto z = protocol::parse_ready_for_query(frame->body);
        if (!z) co_return failure(pg::sqlstate::kProtocolViolation, "malformed ReadyForQuery from upstream");
        result.tx_status = z->status;
        result.leftover = buf.substr(frame->size);
        result.ok = true;
        co_return result;
      }
      case protocol::be::kNoticeResponse:
      case protocol::be::kNegotiateProtocolVersion:
        break;
      default:
        co_return failure(pg::sqlstate::kProtocolViolation, std::string("unexpected message '") + frame->tag +
                                                            "' from upstream during login");
    }
    buf.erase(0, frame->size);
    if (!out.empty()) {
      if (auto [wec, wn] = co_await stream.write(asio::buffer(out)); wec) {
        co_return failure(pg::sqlstate::kConnectionFailure, "cannot write to upstream: " + wec.message());
      }
    }
  }
}

}  // namespace rowguard::net
