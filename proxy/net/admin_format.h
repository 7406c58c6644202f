#pragma once
// The admin console's socket-free parts: parsing a console command and turning rowguard's
// state into result sets (RowDescription / DataRow / CommandComplete bytes, all columns text).
// Unit-tested in tests/unit/admin_format_test.cc; proxy/net/admin.cc does the I/O.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"

namespace rowguard::net::admin {

// The virtual database a client names to reach the console instead of PostgreSQL.
inline constexpr std::string_view kConsoleDatabase = "rowguard";

enum class Command {
  kEmpty,  // only white space / semicolons
  kShowHelp,
  kShowClients,
  kShowServers,
  kShowPools,
  kShowStats,
  kShowPolicy,
  kShowCache,
  kReload,
  kPause,
  kResume,
  kUnknown,
  kShowSchema,
};

// One console command; case-insensitive, surrounding white space and trailing ';' ignored,
// inner runs of white space collapsed ("show   clients;" = SHOW CLIENTS).
Command parse_command(std::string_view text);

// Splits a Query message's text at ';' (console commands contain no quotes).
std::vector<std::string> split_commands(std::string_view text);

// A result set whose values are all text (type oid 25); a nullopt value is SQL NULL.
struct ResultSet {
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;
  std::string tag;  // CommandComplete tag, e.g. "SHOW"
};

// RowDescription + DataRow* + CommandComplete.
void append_result(std::string& out, const ResultSet& result);

// A client connection as the console shows it (SHOW CLIENTS / SHOW SERVERS).
struct ClientRow {
  uint64_t id = 0;
  std::string user;
  std::optional<std::string> tenant;  // nullopt: bypass or console
  std::string kind;                   // tenant | bypass | console | login
  std::string client;                 // address:port
  std::string state;                  // login | idle | active | paused | relay | console
  std::optional<char> tx;             // I / T / E; nullopt when rowguard does not track it
  std::optional<uint64_t> statements; // nullopt when rowguard does not count them (bypass)
  // Tenant sessions: prepared statements the server holds for it and the bytes of their texts
  // (bounded per session, see proxy/session/session.h); nullopt otherwise.
  std::optional<uint64_t> prepared, prepared_bytes;
  std::optional<uint64_t> portals;    // tenant sessions: open portals and cursors rowguard records
  int64_t connected_at_us = 0;        // unix time, microseconds
  // The upstream connection (SHOW SERVERS), when open.
  bool upstream = false;
  std::string upstream_addr;          // host:port of PostgreSQL
  std::string upstream_name;          // its name in the policy ([[upstreams]]; "default")
  std::string upstream_local;         // rowguard's side
  std::string database;
  int32_t backend_pid = 0;
  bool upstream_tls = false;
};

struct CacheRow {
  size_t worker = 0;
  uint64_t entries = 0, hits = 0, misses = 0, bytes = 0;
};

// "2026-11-27 19:07:50.126292+00" (UTC, like PostgreSQL's timestamptz text output).
std::string format_time_us(int64_t unix_us);
std::string tx_name(char tx);  // 'I' -> "idle", 'T' -> "in transaction", 'E' -> "failed transaction"

ResultSet help_result();
ResultSet clients_result(const std::vector<ClientRow>& clients);
ResultSet servers_result(const std::vector<ClientRow>& clients);
// name/value pairs in order
ResultSet stats_result(const std::vector<std::pair<std::string, std::string>>& stats);
ResultSet policy_result(const policy::Policy& policy, int64_t loaded_at_us);
ResultSet cache_result(const std::vector<CacheRow>& workers);  // plus a "total" row

}  // namespace rowguard::net::admin
