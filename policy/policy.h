#pragma once
// The tenancy policy: who logs in, which tenant they are, which tables carry a tenant column,
// which tables are global. Loaded from one TOML file; immutable once loaded (a reload builds a
// new Policy and swaps a shared_ptr<const Policy>).
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "policy/builtin_functions.h"
#include "policy/modes.h"
#include "policy/tenant_scope.h"  // TableRule, CacheSettings
#include "policy/schema_snapshot.h"
#include "policy/setting_limits.h"
#include "auth/scram.h"

namespace rowguard::auth {
class JwtVerifier;
}

namespace rowguard::policy {

// Thrown by load_policy / parse_policy only (start-up and reload), with file and line.
class PolicyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Login {
  std::string user;
  std::string password;    // plaintext, or a SCRAM-SHA-256$... verifier as in pg_authid
  std::optional<std::string> tenant;  // nullopt: bypass user
  bool bypass() const { return !tenant.has_value(); }

  // The SCRAM-SHA-256 verifier for `password`: the stored one decoded, or for a plaintext
  // password one derived with a random salt (4096 PBKDF2 iterations). Computed once, on the
  // first SCRAM login of this user under this policy (std::call_once: policies are shared by
  // all workers), then reused, so a connection storm does not run PBKDF2 per login and the
  // salt a client sees stays the same (as with a stored verifier). nullopt: the stored
  // verifier does not decode. Don't change `password` after the first call.
  const std::optional<auth::ScramVerifier>& scram_verifier() const;

  struct ScramCache {
    std::once_flag once;
    std::optional<auth::ScramVerifier> verifier;
  };
  std::shared_ptr<ScramCache> scram_cache = std::make_shared<ScramCache>();
};

struct ProxySettings {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 6432;
  std::string upstream_host = "127.0.0.1";
  uint16_t upstream_port = 5432;
  std::string upstream_user;
  std::string upstream_password;       // or read from upstream_password_env at load
  UpstreamTls upstream_tls = UpstreamTls::kDisable;  // disable | prefer | require | verify-full
  std::string upstream_ca;              // CA file for verify-full
  std::optional<std::string> upstream_database;
  int workers = 0;  // 0: one per core
  int shutdown_timeout_seconds = 30;  // SIGTERM: how long open transactions may take to finish
  int max_client_connections = 10000;  // beyond: 53300 "too many clients"
  int max_connections_per_user = 0;    // 0: no per-user limit
  int auth_timeout_seconds = 30;       // startup + authentication must finish within this
  bool reuse_port = false;             // SO_REUSEPORT on the client listener: several instances, one port
  int peer_id = 0;                     // this instance's id in the fleet (0..255), carried by its cancel keys
  std::string peer_listen_host;        // [proxy] peer_listen: where this instance alone takes forwarded
  uint16_t peer_listen_port = 0;       //   cancels (empty: no peer listener)
  // Tenant placement (README "Scaling out"): a tenant's session-mode sessions on an upstream it
  // was moved away from by a reload are closed this long after the reload (57P01).
  int placement_drain_timeout_seconds = 30;
};

// [[upstreams]]: a PostgreSQL server tenants may be placed on (README "Scaling out"). [proxy]
// upstream_* is the upstream named "default". Unset keys of an entry take [proxy]'s values.
inline constexpr std::string_view kDefaultUpstream = "default";
struct Upstream {
  std::string name;
  // Only the upstream_* fields (host, port, user, password, tls, ca, database) are this
  // upstream's; the others are [proxy]'s (login_upstream takes ProxySettings).
  ProxySettings settings;
};

// [limits]: message sizes and timeouts that bound what one client connection can hold.
// Sizes count a message's length word (as PostgreSQL does), so a message is refused from its
// 5-byte header, before its body is received or buffered. A timeout of 0 is off.
struct LimitSettings {
  size_t max_message_size = size_t{1} << 30;    // any client message (CopyData, Bind, Query...)
  size_t max_startup_packet = 64 * 1024;        // the untagged startup packet
  size_t max_server_message = size_t{1} << 30;  // any message from PostgreSQL (DataRow...)
  int idle_client_timeout_seconds = 0;           // idle outside a transaction -> 57P05
  int idle_in_transaction_timeout_seconds = 0;   // idle inside a transaction -> 25P03
  int message_timeout_seconds = 60;              // a client message must arrive whole within this
  // Query / Parse messages this long or longer are rewritten on the parse pool
  // (proxy/net/parse_pool.h), not on the session's worker (a first rewrite costs up to ~2.5 us
  // per byte: ~5 ms at 2 KiB); parse_threads is read at start-up.
  size_t offload_parse_bytes = 2 * 1024;
  int parse_threads = 2;
  // Per tenant session (proxy/session): statements it may hold prepared (Parse and SQL PREPARE,
  // confirmed or in flight) and the bytes of their texts (past them a Parse / PREPARE is refused,
  // 42501), and messages awaiting the server's answer at once (past it: FATAL 54000).
  size_t max_prepared_statements = 10000;
  size_t max_prepared_statement_bytes = size_t{64} << 20;
  size_t max_pipelined_messages = 100000;
};

// [pool]: server connections per upstream database (proxy/pool/server_pool.h). The number of
// client connections is bounded by [proxy] max_client_connections.
struct PoolSettings {
  PoolMode mode = PoolMode::kSession;
  size_t size = 20;                      // server connections at most
  size_t min_size = 0;                   // kept open even when idle
  int query_wait_timeout_seconds = 120;  // a client waiting longer gets 53300 (0: no limit)
  int server_idle_timeout_seconds = 600; // idle connections above min_size close (0: never)
  int server_lifetime_seconds = 3600;    // a connection this old closes when next idle (0: never)
  // Transaction mode: protocol-level prepared statements a server connection holds under
  // rowguard's names (proxy/session/server_statements.h), least recently used closed first.
  size_t max_prepared_statements = 200;
  // Transaction mode: of `size` (per worker), the server connections one tenant's clients may
  // hold at once (proxy/pool/server_pool.h tenant_cap: at least 1, below 1 never all of them);
  // 1: no cap.
  double max_tenant_share = 0.75;
  // Transaction mode: a tenant client idle inside a transaction longer than this is ended as by
  // PostgreSQL's idle_in_transaction_session_timeout (FATAL 25P03; the server connection is
  // closed, never reused). 0: off ([limits] idle_in_transaction_timeout still applies).
  int idle_transaction_timeout_seconds = 60;
};

// [tls]: TLS for client connections.
struct TlsSettings {
  std::string cert;             // PEM certificate chain
  std::string key;              // PEM private key
  TlsMode mode = TlsMode::kDisable;  // disable | allow | require (default "allow" when cert is set)
};

// [audit]: JSON lines per denial (mode "denials") or per statement (mode "all").
struct AuditSettings {
  std::string file;                 // empty: no audit log
  AuditMode mode = AuditMode::kDenials;  // denials | all
  size_t max_statement = 2048;      // statement text truncated to this many bytes
  bool mask_literals = false;       // replace literals by $n (pg_query_normalize)
};

// [metrics]: Prometheus text endpoint.
struct MetricsSettings {
  std::string listen_host;          // empty: no endpoint
  uint16_t listen_port = 0;
  size_t max_tenant_labels = 1000;  // distinct tenant label values; the others count as tenant="_other"
};

// [tenancy] identity (policy/identity.h): how a client's tenant is established.
struct IdentitySettings {
  IdentityMode mode = IdentityMode::kMap;          // map | jwt | role
  std::shared_ptr<const auth::JwtVerifier> jwt;    // identity = "jwt"
  bool jwt_allow_without_tls = false;              // accept tokens over plaintext connections
  bool jwt_secret_in_file = false;                 // jwt_secret (not _env): warned at start-up
};

// [[peers]]: another rowguard instance of the fleet, reachable alone at its peer_listen address;
// a CancelRequest whose key names it is forwarded there (once: the peer listener never forwards).
struct Peer {
  int id = 0;
  std::string host;
  uint16_t port = 0;
};

class Policy {
 public:
  ProxySettings proxy;
  std::vector<Peer> peers;
  CacheSettings cache;
  TlsSettings tls;
  AuditSettings audit;
  MetricsSettings metrics;
  LimitSettings limits;
  PoolSettings pool;
  SettingLimits setting_limits;  // [limits.settings]: ceilings on tenant SET values
  std::string default_column = "tenant_id";
  std::map<QualifiedName, TableRule> tables;
  std::map<std::string, Login> logins;  // by user name
  // Tenant placement: the upstreams by name ("default" = [proxy] upstream, always present), and
  // the tenants placed explicitly (`upstream = "..."` in [[tenants]], [placement]).
  std::map<std::string, Upstream, std::less<>> upstreams;
  std::map<std::string, std::string, std::less<>> placement;  // tenant id -> upstream name
  IdentitySettings identity;
  std::map<std::string, std::optional<std::string>> roles;  // identity = "role": role -> tenant (nullopt: bypass)
  std::vector<QualifiedName> allowed_functions;  // [functions] allow
  Backstop backstop = Backstop::kOff;  // [tenancy] backstop: off | rls (PostgreSQL RLS underneath, policy/rls_sql.h)
  // [tenancy] explain: whether tenants may run EXPLAIN (COSTS OFF). Even without numbers, the
  // plan's shape (which index, which join order) is the planner's choice from statistics over
  // every tenant's rows, so how common a value is among other tenants shows: refused by default.
  Explain explain = Explain::kRefuse;
  std::vector<std::string> plaintext_users;  // users whose password is stored in plaintext
  // What rowguard read about the upstream schema (policy/schema_snapshot.h); null: unknown.
  std::shared_ptr<const SchemaSnapshot> schema;
  uint64_t version = 0;                 // increases with every load
  std::string source;                   // file name

  // nullptr when the table is not in the policy.
  const TableRule* table(const QualifiedName& name) const;
  const Login* login(std::string_view user) const;
  bool function_allowed(const QualifiedName& name) const;
  // The upstream a tenant's sessions use: its placement, else "default" (a tenant known only
  // from a JWT or a role too).
  const std::string& upstream_name_of(std::string_view tenant) const;
  const Upstream& upstream_of(std::string_view tenant) const;
  // nullptr: no upstream of that name.
  const Upstream* upstream(std::string_view name) const;
};

using PolicyPtr = std::shared_ptr<const Policy>;

// Parses TOML text. `source` names the file in error messages. Throws PolicyError.
PolicyPtr parse_policy(const std::string& toml_text, const std::string& source);
PolicyPtr load_policy(const std::string& path);

// A fresh Policy::version, for a copy of a policy that differs (a new schema snapshot), so that
// the rewrite caches keyed on the version are invalidated.
uint64_t next_policy_version();

// Error messages never carry secrets: in `message` (a toml11-style error about `toml_text`),
// quoted source lines that belong to a password/secret/token/private key statement lose their
// value ("password = <redacted>"), and such values are replaced anywhere else in the message.
// parse_policy applies it to every PolicyError it throws.
std::string redact_policy_message(const std::string& message, const std::string& toml_text);

// Splits "schema.table" (or "table" -> public). Names are taken exactly as written
// (they are compared with identifiers as PostgreSQL stores them: unquoted ones lower-case).
QualifiedName parse_qualified_name(std::string_view text);

}  // namespace rowguard::policy
