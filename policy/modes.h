#pragma once
// The policy's modes: TOML strings parsed once at load (policy.cc, identity.cc) into enums, so
// the per-connection and per-statement paths compare enums. to_string gives back the exact TOML
// spelling, for logs, error messages, the admin console and libpq's sslmode.
#include <optional>
#include <string_view>

namespace rowguard::policy {

// [tenancy] identity: how a client's tenant is established (policy/identity.h).
enum class IdentityMode { kMap, kJwt, kRole };
// [tls] mode: TLS for client connections.
enum class TlsMode { kDisable, kAllow, kRequire };
// [proxy] upstream_tls: TLS to PostgreSQL (the names are libpq's sslmode values).
enum class UpstreamTls { kDisable, kPrefer, kRequire, kVerifyFull };
// [audit] mode: a line per denial or per statement.
enum class AuditMode { kDenials, kAll };
// [tenancy] backstop: PostgreSQL RLS underneath the rewrite (policy/rls_sql.h), or none.
enum class Backstop { kOff, kRls };
// [tenancy] explain: tenants' EXPLAIN refused, or allowed with COSTS OFF (the plan's shape still
// reflects every tenant's statistics).
enum class Explain { kRefuse, kCostsOff };
// [pool] mode: a server connection per client for its whole session, or lent per transaction.
enum class PoolMode { kSession, kTransaction };

constexpr std::string_view to_string(IdentityMode m) {
  switch (m) {
    case IdentityMode::kMap: return "map";
    case IdentityMode::kJwt: return "jwt";
    case IdentityMode::kRole: return "role";
  }
  return "?";
}

constexpr std::string_view to_string(TlsMode m) {
  switch (m) {
    case TlsMode::kDisable: return "disable";
    case TlsMode::kAllow: return "allow";
    case TlsMode::kRequire: return "require";
  }
  return "?";
}

constexpr std::string_view to_string(UpstreamTls m) {
  switch (m) {
    case UpstreamTls::kDisable: return "disable";
    case UpstreamTls::kPrefer: return "prefer";
    case UpstreamTls::kRequire: return "require";
    case UpstreamTls::kVerifyFull: return "verify-full";
  }
  return "?";
}

constexpr std::string_view to_string(AuditMode m) {
  switch (m) {
    case AuditMode::kDenials: return "denials";
    case AuditMode::kAll: return "all";
  }
  return "?";
}

constexpr std::string_view to_string(Backstop m) {
  switch (m) {
    case Backstop::kOff: return "off";
    case Backstop::kRls: return "rls";
  }
  return "?";
}

constexpr std::string_view to_string(PoolMode m) {
  switch (m) {
    case PoolMode::kSession: return "session";
    case PoolMode::kTransaction: return "transaction";
  }
  return "?";
}

// The mode spelled `text` (exactly, case-sensitive, as in the TOML), or nullopt. Walks the
// enum's values in order until to_string no longer knows one: to_string's switch is the only table.
template <class Mode>
constexpr std::optional<Mode> parse_mode(std::string_view text) {
  for (int i = 0;; ++i) {
    const std::string_view name = to_string(static_cast<Mode>(i));
    if (name == "?") return std::nullopt;
    if (name == text) return static_cast<Mode>(i);
  }
}

}  // namespace rowguard::policy
