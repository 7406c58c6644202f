// The admin console's socket-free parts (see admin_format.h).
#include "proxy/net/admin_format.h"

#include <cctype>
#include <ctime>

#include <fmt/format.h>

#include "pg/pg_types.h"
#include "proxy/protocol/codec.h"

namespace rowguard::net::admin {

namespace {

void put16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}

void put32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

std::optional<std::string> opt(const std::optional<std::string>& s) { return s; }

}  // namespace

Command parse_command(std::string_view text) {
  std::string words;
  bool space = false;
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c)) || c == ';') {
      space = true;
      continue;
    }
    if (space && !words.empty()) words.push_back(' ');
    space = false;
    words.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  if (words.empty()) return Command::kEmpty;
  if (words == "SHOW HELP" || words == "HELP") return Command::kShowHelp;
  if (words == "SHOW CLIENTS") return Command::kShowClients;
  if (words == "SHOW SERVERS") return Command::kShowServers;
  if (words == "SHOW POOLS") return Command::kShowPools;
  if (words == "SHOW STATS") return Command::kShowStats;
  if (words == "SHOW POLICY") return Command::kShowPolicy;
  if (words == "SHOW CACHE") return Command::kShowCache;
  if (words == "SHOW SCHEMA") return Command::kShowSchema;
  if (words == "RELOAD") return Command::kReload;
  if (words == "PAUSE") return Command::kPause;
  if (words == "RESUME") return Command::kResume;
  return Command::kUnknown;
}

std::vector<std::string> split_commands(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t semi = text.find(';', start);
    std::string_view part = text.substr(start, semi == std::string_view::npos ? std::string_view::npos : semi - start);
    if (parse_command(part) != Command::kEmpty) out.emplace_back(part);
    if (semi == std::string_view::npos) break;
    start = semi + 1;
  }
  return out;
}

void append_result(std::string& out, const ResultSet& result) {
  std::string body;
  put16(body, static_cast<uint16_t>(result.columns.size()));
  for (const auto& name : result.columns) {
    body += name;
    body.push_back('\0');
    put32(body, 0);        // table oid
    put16(body, 0);        // column number
    put32(body, pg::kTextOid);  // type
    put16(body, 0xffff);   // typlen -1
    put32(body, 0xffffffff);  // typmod -1
    put16(body, 0);        // text format
  }
  protocol::append_frame(out, protocol::be::kRowDescription, body);
  for (const auto& row : result.rows) {
    body.clear();
    put16(body, static_cast<uint16_t>(row.size()));
    for (const auto& v : row) {
      if (!v) {
        put32(body, 0xffffffff);
        continue;
      }
      put32(body, static_cast<uint32_t>(v->size()));
      body += *v;
    }
    protocol::append_frame(out, protocol::be::kDataRow, body);
  }
  std::string tag = result.tag;
  tag.push_back('\0');
  protocol::append_frame(out, protocol::be::kCommandComplete, tag);
}

std::string format_time_us(int64_t unix_us) {
  std::time_t secs = static_cast<std::time_t>(unix_us / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return fmt::format("{}.{:06d}+00", buf, unix_us % 1000000);
}

std::string tx_name(char tx) {
  switch (tx) {
    case 'I': return "idle";
    case 'T': return "in transaction";
    case 'E': return "failed transaction";
    default: return std::string(1, tx);
  }
}

ResultSet help_result() {
  ResultSet r{{"command", "description"}, {}, "SHOW"};
  auto add = [&](const char* c, const char* d) { r.rows.push_back({std::string(c), std::string(d)}); };
  add("SHOW HELP", "this list");
  add("SHOW CLIENTS", "one row per client connection: id, user, tenant, kind, address, state, transaction, statements, connect time");
  add("SHOW SERVERS", "one row per upstream PostgreSQL connection (one per tenant or bypass session)");
  add("SHOW POOLS", "transaction pooling: one row per worker and database: clients active/waiting, servers active/idle/opening, checkouts, longest wait, pinned clients, timeouts");
  add("SHOW STATS", "process counters (the same as /metrics)");
  add("SHOW POLICY", "the policy in force: version, load time, tables, users");
  add("SHOW CACHE", "rewrite cache entries, hits and misses per worker thread");
  add("SHOW SCHEMA", "the schema snapshot per policy table: columns, unique keys, keys without the tenant column, loaded or error, age");
  add("RELOAD", "re-read the policy file (like SIGHUP); a bad file is rejected with the reason");
  add("PAUSE", "new statements of tenant sessions wait at their next transaction boundary; returns when no tenant transaction is open");
  add("RESUME", "let paused sessions continue");
  return r;
}

ResultSet clients_result(const std::vector<ClientRow>& clients) {
  ResultSet r{{"id", "user", "tenant", "kind", "client", "state", "transaction", "statements", "connect_time",
               "prepared", "prepared_bytes", "portals"},
              {},
              "SHOW"};
  auto num = [](const std::optional<uint64_t>& v) {
    return v ? std::optional<std::string>(std::to_string(*v)) : std::nullopt;
  };
  for (const auto& c : clients) {
    r.rows.push_back({std::to_string(c.id), c.user, opt(c.tenant), c.kind, c.client, c.state,
                      c.tx ? std::optional<std::string>(tx_name(*c.tx)) : std::nullopt, num(c.statements),
                      format_time_us(c.connected_at_us), num(c.prepared), num(c.prepared_bytes), num(c.portals)});
  }
  return r;
}

ResultSet servers_result(const std::vector<ClientRow>& clients) {
  ResultSet r{{"client_id", "user", "tenant", "server", "local", "database", "backend_pid", "tls", "connect_time", "upstream"},
              {},
              "SHOW"};
  for (const auto& c : clients) {
    if (!c.upstream) continue;
    r.rows.push_back({std::to_string(c.id), c.user, opt(c.tenant), c.upstream_addr, c.upstream_local, c.database,
                      std::to_string(c.backend_pid), std::string(c.upstream_tls ? "on" : "off"),
                      format_time_us(c.connected_at_us), c.upstream_name});
  }
  return r;
}

ResultSet stats_result(const std::vector<std::pair<std::string, std::string>>& stats) {
  ResultSet r{{"name", "value"}, {}, "SHOW"};
  for (const auto& [name, value] : stats) r.rows.push_back({name, value});
  return r;
}

ResultSet policy_result(const policy::Policy& p, int64_t loaded_at_us) {
  ResultSet r{{"item", "name", "value"}, {}, "SHOW"};
  auto add = [&](std::string item, std::string name, std::optional<std::string> value) {
    r.rows.push_back({std::move(item), std::move(name), std::move(value)});
  };
  add("file", p.source, std::nullopt);
  add("version", std::to_string(p.version), std::nullopt);
  add("loaded_at", format_time_us(loaded_at_us), std::nullopt);
  add("default_column", p.default_column, std::nullopt);
  for (const auto& [name, rule] : p.tables) {
    if (rule.global) {
      add("global_table", name.to_string(), std::string("global"));
    } else {
      add("table", name.to_string(), rule.column);
    }
  }
  for (const auto& f : p.allowed_functions) add("function", f.to_string(), std::string("allowed"));
  for (const auto& [user, login] : p.logins) {
    if (login.bypass()) {
      add("bypass_user", user, std::nullopt);
    } else {
      add("tenant_user", user, login.tenant);
    }
  }
  return r;
}

ResultSet cache_result(const std::vector<CacheRow>& workers) {
  ResultSet r{{"worker", "entries", "hits", "misses", "bytes"}, {}, "SHOW"};
  CacheRow total;
  for (const auto& w : workers) {
    r.rows.push_back({std::to_string(w.worker), std::to_string(w.entries), std::to_string(w.hits),
                      std::to_string(w.misses), std::to_string(w.bytes)});
    total.entries += w.entries;
    total.hits += w.hits;
    total.misses += w.misses;
    total.bytes += w.bytes;
  }
  r.rows.push_back({std::string("total"), std::to_string(total.entries), std::to_string(total.hits),
                    std::to_string(total.misses), std::to_string(total.bytes)});
  return r;
}

}  // namespace rowguard::net::admin
