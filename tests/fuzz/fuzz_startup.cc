// Fuzz target: the startup phase — protocol::decode_startup on the first bytes of a
// connection, then session::check_startup on every decoded StartupMessage, with the fixed
// policy.
//
// Properties (abort() otherwise):
//   * decode_startup: Complete only when the declared length (8..max_len) is all there; the
//     packet re-encodes to exactly the input bytes (append_startup for protocol 3.0,
//     append_ssl_request, append_cancel_request, documented layouts otherwise); every shorter
//     prefix is NeedMore or an early Malformed (a bad header is reported before the body);
//     a StartupMessage has a non-empty "user" and no duplicate parameter names;
//   * check_startup: an accepted packet has a user, a database (the policy's
//     upstream_database), and passes upstream only formatting parameters from a list written
//     here (never user, database, options, replication, search_path, role, ...), with a
//     client_encoding that sqlrewrite::safe_client_encoding accepts; a refusal has a SQLSTATE
//     and a message.
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "policy/policy.h"
#include "proxy/protocol/codec.h"
#include "proxy/session/session.h"
#include "sqlrewrite/rewriter.h"

namespace rowguard::fuzz {
const policy::Policy& fixed_policy();
}

namespace {

namespace protocol = rowguard::protocol;
constexpr size_t kMaxStartup = 64 * 1024;  // the proxy's limit (proxy/net/connection.cc)

[[noreturn]] void fail(const std::string& why, std::string_view in) {
  std::fprintf(stderr, "\n==== fuzz_startup: INVARIANT VIOLATION ====\n%s\ninput (%zu bytes):",
               why.c_str(), in.size());
  for (size_t i = 0; i < in.size() && i < 512; ++i) {
    std::fprintf(stderr, "%s%02x", i % 32 ? " " : "\n  ", static_cast<unsigned char>(in[i]));
  }
  std::fprintf(stderr, "\n");
  std::fflush(stderr);
  std::abort();
}

void be32(std::string& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>((v >> s) & 0xff));
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Session formatting parameters that may reach the server (PostgreSQL GUC names, lower case).
const std::set<std::string>& formatting_params() {
  static const std::set<std::string> k = {
      "application_name", "fallback_application_name", "client_encoding", "datestyle",
      "timezone", "extra_float_digits", "intervalstyle", "lc_messages", "lc_monetary",
      "lc_numeric", "lc_time", "bytea_output", "statement_timeout", "lock_timeout",
      "idle_in_transaction_session_timeout", "client_min_messages",
  };
  return k;
}

void check_decision(const protocol::StartupPacket& p, std::string_view in) {
  const auto& policy = rowguard::fuzz::fixed_policy();
  const auto d = rowguard::session::check_startup(p, policy);
  if (!d.ok) {
    if (d.sqlstate.size() != 5 || d.message.empty()) fail("a refusal without SQLSTATE or message", in);
    return;
  }
  if (d.user.empty()) fail("accepted without a user", in);
  if (!policy.proxy.upstream_database || d.database != *policy.proxy.upstream_database) {
    fail("the upstream database is not the policy's upstream_database", in);
  }
  // The user is one the client sent (some case variant of "user").
  bool sent = false;
  for (const auto& [name, value] : p.params) sent = sent || (lower(name) == "user" && value == d.user);
  if (!sent) fail("the decided user was not sent by the client", in);
  for (const auto& [name, value] : d.upstream_params) {
    const std::string key = lower(name);
    if (!formatting_params().contains(key)) fail("parameter \"" + name + "\" passed upstream", in);
    if (key == "client_encoding" && !rowguard::sqlrewrite::safe_client_encoding(value)) {
      fail("unsafe client_encoding \"" + value + "\" passed upstream", in);
    }
    bool from_client = false;
    for (const auto& [n2, v2] : p.params) from_client = from_client || (n2 == name && v2 == value);
    if (!from_client) fail("an upstream parameter the client did not send", in);
  }
  for (const auto& [name, value] : p.params) {
    const std::string key = lower(name);
    if (key != "user" && key != "database" && !formatting_params().contains(key)) {
      fail("packet with parameter \"" + name + "\" accepted", in);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto r = protocol::decode_startup(in, kMaxStartup);
  if (r.status == protocol::DecodeStatus::kMalformed) {
    if (r.error.empty()) fail("Malformed without a reason", in);
    return 0;
  }
  if (r.status == protocol::DecodeStatus::kNeedMore) {
    if (in.size() >= 8) {
      uint32_t len = 0;
      for (size_t i = 0; i < 4; ++i) len = (len << 8) | static_cast<unsigned char>(in[i]);
      if (len <= in.size()) fail("NeedMore although the declared length is there", in);
    }
    return 0;
  }
  const auto& p = r.packet;
  if (r.size < 8 || r.size > in.size() || r.size > kMaxStartup) fail("bad packet size", in);
  const std::string_view packet = in.substr(0, r.size);

  std::string enc;
  switch (p.kind) {
    case protocol::StartupPacket::Kind::kSSLRequest:
      protocol::append_ssl_request(enc);
      break;
    case protocol::StartupPacket::Kind::kGSSENCRequest:
      be32(enc, 8);
      be32(enc, static_cast<uint32_t>(protocol::kGSSENCRequestCode));
      break;
    case protocol::StartupPacket::Kind::kCancelRequest:
      protocol::append_cancel_request(enc, p.cancel_pid, p.cancel_key);
      break;
    case protocol::StartupPacket::Kind::kStartup: {
      if ((static_cast<uint32_t>(p.protocol_version) >> 16) != 3) fail("protocol major version is not 3", in);
      protocol::append_startup(enc, p.params);
      // append_startup always writes 3.0: patch the minor version the client asked for.
      for (int k = 0; k < 4; ++k) enc[4 + k] = packet[4 + k];
      const std::string* user = p.param("user");
      if (user == nullptr || user->empty()) fail("StartupMessage without a user accepted", in);
      std::set<std::string> names;
      for (const auto& [name, value] : p.params) {
        if (name.empty() || !names.insert(name).second) fail("empty or duplicate parameter name accepted", in);
        if (name.find('\0') != std::string::npos || value.find('\0') != std::string::npos) fail("NUL inside a parameter", in);
      }
      check_decision(p, in);
      break;
    }
  }
  if (enc != packet) fail("the decoded packet does not re-encode to the input bytes", in);

  // Incremental decoding: a strict prefix is NeedMore, or Malformed for the same reason as
  // soon as the header (length, code) is there.
  for (size_t cut : {size_t{0}, size_t{3}, size_t{4}, size_t{7}, size_t{8}, r.size / 2, r.size - 1}) {
    if (cut >= r.size) continue;
    const auto pr = protocol::decode_startup(packet.substr(0, cut), kMaxStartup);
    if (pr.status == protocol::DecodeStatus::kComplete) fail("a strict prefix decodes Complete", in);
    if (pr.status == protocol::DecodeStatus::kMalformed) fail("a strict prefix of a valid packet is Malformed: " + pr.error, in);
  }
  return 0;
}
