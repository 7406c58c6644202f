// Client authentication per [tenancy] identity (see client_auth.h).
// GCC 12: arguments of co_await calls are named variables, never temporaries.
#include "proxy/net/client_auth.h"

#include <chrono>

#include "pg/sqlstate.h"
#include "auth/channel_binding.h"
#include "auth/jwt.h"
#include "auth/scram.h"
#include "proxy/protocol/codec.h"

namespace rowguard::net {
namespace asio = boost::asio;

namespace {

constexpr size_t kMaxAuthMessage = 64 * 1024;

ClientAuth failed(const std::string& user, std::string reason) {
  ClientAuth a;
  a.message = "password authentication failed for user \"" + user + "\"";
  a.reason = std::move(reason);
  return a;
}

ClientAuth left() {
  ClientAuth a;
  a.client_left = true;
  a.reason = "client went away";
  return a;
}

asio::awaitable<ClientAuth> scram_login(ClientIo& io, const policy::Policy& policy, const std::string& user,
                                        SSL* tls) {
  const policy::Login* login = policy.login(user);
  auth::ScramVerifier verifier = auth::mock_verifier(user);
  if (login) {
    // Computed once per policy load and user (Login::scram_verifier), not per login.
    const auto& stored = login->scram_verifier();
    if (!stored) co_return failed(user, "the stored SCRAM verifier does not decode");
    verifier = *stored;
  }
  // On TLS: offer SCRAM-SHA-256-PLUS too (tls-server-end-point of our certificate), as
  // PostgreSQL does; the client picks.
  const std::optional<std::string> cbind = auth::tls_server_end_point(tls);
  std::vector<std::string> mechanisms;
  if (cbind) mechanisms.push_back("SCRAM-SHA-256-PLUS");
  mechanisms.push_back("SCRAM-SHA-256");
  std::string out;
  protocol::append_auth_sasl(out, mechanisms);
  if (!co_await io.write_client(out)) co_return left();

  auto first = co_await io.next_client_message(kMaxAuthMessage);
  if (!first) co_return left();
  if (first->tag != protocol::fe::kPasswordMessage) co_return failed(user, "expected SASLInitialResponse");
  auto init = protocol::parse_sasl_initial_response(first->body);
  if (!init) co_return failed(user, "malformed SASLInitialResponse");
  const bool plus = init->mechanism == "SCRAM-SHA-256-PLUS";
  if (!(init->mechanism == "SCRAM-SHA-256" || (plus && cbind))) co_return failed(user, "bad SASL mechanism");
  auth::ScramServer scram(std::move(verifier));
  if (cbind) scram.set_channel_binding(*cbind, plus);
  auto server_first = scram.handle_client_first(init->data);
  if (!server_first) co_return failed(user, "malformed SCRAM client-first message or channel binding mismatch");
  out.clear();
  protocol::append_auth_sasl_continue(out, *server_first);
  if (!co_await io.write_client(out)) co_return left();

  auto fin = co_await io.next_client_message(kMaxAuthMessage);
  if (!fin) co_return left();
  if (fin->tag != protocol::fe::kPasswordMessage) co_return failed(user, "expected SASLResponse");
  auto server_final = scram.handle_client_final(fin->body);
  if (!server_final || login == nullptr) {
    co_return failed(user, login ? "wrong password (or channel binding data mismatch)" : "unknown user");
  }
  out.clear();
  protocol::append_auth_sasl_final(out, *server_final);
  protocol::append_auth_ok(out);
  if (!co_await io.write_client(out)) co_return left();
  ClientAuth a;
  a.ok = true;
  a.tenant = login->tenant;
  a.method = plus ? AuthMethod::kScramPlus : AuthMethod::kScram;
  co_return a;
}

asio::awaitable<ClientAuth> jwt_login(ClientIo& io, const policy::Policy& policy, const std::string& user,
                                      SSL* tls) {
  if (tls == nullptr && !policy.identity.jwt_allow_without_tls) {
    ClientAuth a;
    a.sqlstate = pg::sqlstate::kInvalidAuthorizationSpecification;
    a.message = "rowguard: identity = \"jwt\" sends the token as a cleartext password and needs TLS "
                "(connect with sslmode=require)";
    a.reason = "JWT login without TLS refused";
    co_return a;
  }
  std::string out;
  protocol::append_auth_cleartext(out);
  if (!co_await io.write_client(out)) co_return left();
  auto msg = co_await io.next_client_message(kMaxAuthMessage);
  if (!msg) co_return left();
  if (msg->tag != protocol::fe::kPasswordMessage) co_return failed(user, "expected PasswordMessage");
  // PasswordMessage: the password, NUL-terminated.
  std::string_view token = msg->body;
  if (token.empty() || token.back() != '\0') co_return failed(user, "malformed PasswordMessage");
  token.remove_suffix(1);
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  auth::JwtResult r = policy.identity.jwt->verify(token, now);
  if (!r.ok) co_return failed(user, "JWT rejected: " + r.error);
  out.clear();
  protocol::append_auth_ok(out);
  if (!co_await io.write_client(out)) co_return left();
  ClientAuth a;
  a.ok = true;
  a.tenant = std::move(r.tenant);
  a.method = AuthMethod::kJwt;
  a.jwt_token.assign(token);
  co_return a;
}

class ClientAuthRelay : public AuthRelay {
 public:
  explicit ClientAuthRelay(ClientIo& io) : io_(io) {}
  asio::awaitable<std::optional<std::string>> relay(std::string_view frame, bool expect_answer) override {
    const std::string bytes(frame);
    if (!co_await io_.write_client(bytes)) co_return std::nullopt;
    if (!expect_answer) co_return std::string();
    auto m = co_await io_.next_client_message(kMaxAuthMessage);
    if (!m || m->tag != protocol::fe::kPasswordMessage) co_return std::nullopt;
    co_return std::move(m->body);
  }

 private:
  ClientIo& io_;
};

}  // namespace

asio::awaitable<ClientAuth> authenticate_client(ClientIo& io, const policy::Policy& policy, const std::string& user,
                                                SSL* tls) {
  const policy::IdentityMode mode = policy.identity.mode;
  if (mode == policy::IdentityMode::kRole) {
    ClientAuth a;
    a.ok = true;
    a.passthrough = true;
    a.method = AuthMethod::kRole;
    auto it = policy.roles.find(user);
    if (it == policy.roles.end()) {
      a.refuse_after_auth = "rowguard: role \"" + user + "\" is not mapped to a tenant ([[roles]] in the policy)";
    } else {
      a.tenant = it->second;
    }
    co_return a;
  }
  if (mode == policy::IdentityMode::kJwt) {
    const policy::Login* login = policy.login(user);
    if (login == nullptr || !login->bypass()) co_return co_await jwt_login(io, policy, user, tls);
  }
  co_return co_await scram_login(io, policy, user, tls);
}

std::string_view to_string(AuthMethod method) {
  switch (method) {
    case AuthMethod::kScram: return "scram";
    case AuthMethod::kScramPlus: return "scram-plus";
    case AuthMethod::kJwt: return "jwt";
    case AuthMethod::kRole: return "role";
    case AuthMethod::kNone: break;
  }
  return "";
}

std::unique_ptr<AuthRelay> make_client_relay(ClientIo& io) { return std::make_unique<ClientAuthRelay>(io); }

}  // namespace rowguard::net
