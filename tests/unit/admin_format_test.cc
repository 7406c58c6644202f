// Unit tests for the admin console's socket-free parts: command parsing and the result-set
// bytes (decoded back with the codec, field by field).
#include "proxy/net/admin_format.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proxy/protocol/codec.h"

namespace rowguard::net::admin {
namespace {

using protocol::DecodeStatus;

uint32_t get32(std::string_view s, size_t at) {
  return (uint32_t(uint8_t(s[at])) << 24) | (uint32_t(uint8_t(s[at + 1])) << 16) |
         (uint32_t(uint8_t(s[at + 2])) << 8) | uint32_t(uint8_t(s[at + 3]));
}
uint16_t get16(std::string_view s, size_t at) { return uint16_t((uint8_t(s[at]) << 8) | uint8_t(s[at + 1])); }

struct Decoded {
  std::vector<std::string> columns;
  std::vector<uint32_t> types;
  std::vector<std::vector<std::optional<std::string>>> rows;
  std::string tag;
  size_t frames = 0;
};

Decoded decode(std::string_view bytes) {
  Decoded d;
  while (!bytes.empty()) {
    auto r = protocol::decode_frame(bytes, 1 << 20);
    EXPECT_EQ(r.status, DecodeStatus::kComplete);
    if (r.status != DecodeStatus::kComplete) break;
    ++d.frames;
    std::string_view body = r.frame.body;
    if (r.frame.tag == protocol::be::kRowDescription) {
      size_t n = get16(body, 0), at = 2;
      for (size_t i = 0; i < n; ++i) {
        size_t end = body.find('\0', at);
        d.columns.emplace_back(body.substr(at, end - at));
        at = end + 1;
        d.types.push_back(get32(body, at + 6));
        EXPECT_EQ(get16(body, at + 16), 0u);  // text format
        at += 18;
      }
      EXPECT_EQ(at, body.size());
    } else if (r.frame.tag == protocol::be::kDataRow) {
      size_t n = get16(body, 0), at = 2;
      std::vector<std::optional<std::string>> row;
      for (size_t i = 0; i < n; ++i) {
        uint32_t len = get32(body, at);
        at += 4;
        if (len == 0xffffffff) {
          row.push_back(std::nullopt);
        } else {
          row.emplace_back(std::string(body.substr(at, len)));
          at += len;
        }
      }
      EXPECT_EQ(at, body.size());
      d.rows.push_back(row);
    } else if (r.frame.tag == protocol::be::kCommandComplete) {
      EXPECT_EQ(body.back(), '\0');
      d.tag = std::string(body.substr(0, body.size() - 1));
    } else {
      ADD_FAILURE() << "unexpected message " << r.frame.tag;
    }
    bytes.remove_prefix(r.frame.size);
  }
  return d;
}

TEST(AdminFormat, ParsesCommandsCaseAndSpaceInsensitively) {
  EXPECT_EQ(parse_command("SHOW CLIENTS"), Command::kShowClients);
  EXPECT_EQ(parse_command("  show\n\tclients ; "), Command::kShowClients);
  EXPECT_EQ(parse_command("Show Servers;"), Command::kShowServers);
  EXPECT_EQ(parse_command("show pools"), Command::kShowPools);
  EXPECT_EQ(parse_command("show stats"), Command::kShowStats);
  EXPECT_EQ(parse_command("SHOW POLICY"), Command::kShowPolicy);
  EXPECT_EQ(parse_command("show cache"), Command::kShowCache);
  EXPECT_EQ(parse_command("show help"), Command::kShowHelp);
  EXPECT_EQ(parse_command("reload"), Command::kReload);
  EXPECT_EQ(parse_command("PAUSE"), Command::kPause);
  EXPECT_EQ(parse_command("resume;"), Command::kResume);
  EXPECT_EQ(parse_command(" ;; "), Command::kEmpty);
  EXPECT_EQ(parse_command("SHOW CLIENTSX"), Command::kUnknown);
  EXPECT_EQ(parse_command("SHOWCLIENTS"), Command::kUnknown);
  EXPECT_EQ(parse_command("SELECT 1"), Command::kUnknown);
  EXPECT_EQ(parse_command("SHOW CLIENTS extra"), Command::kUnknown);
}

TEST(AdminFormat, SplitsAQueryIntoCommands) {
  EXPECT_EQ(split_commands("SHOW STATS; show cache;;  "), (std::vector<std::string>{"SHOW STATS", " show cache"}));
  EXPECT_TRUE(split_commands(" ; ").empty());
  EXPECT_EQ(split_commands("RELOAD"), (std::vector<std::string>{"RELOAD"}));
}

TEST(AdminFormat, ResultSetBytesDecodeToTheSameValues) {
  ResultSet rs{{"a", "bee"}, {{std::string("1"), std::nullopt}, {std::string(""), std::string("x|y")}}, "SHOW"};
  std::string out;
  append_result(out, rs);
  Decoded d = decode(out);
  EXPECT_EQ(d.frames, 4u);  // RowDescription, 2 DataRows, CommandComplete
  EXPECT_EQ(d.columns, rs.columns);
  EXPECT_EQ(d.types, (std::vector<uint32_t>{25, 25}));
  EXPECT_EQ(d.rows, rs.rows);
  EXPECT_EQ(d.tag, "SHOW");

  std::string empty;
  append_result(empty, ResultSet{{"only"}, {}, "SHOW"});
  Decoded e = decode(empty);
  EXPECT_EQ(e.frames, 2u);
  EXPECT_TRUE(e.rows.empty());
}

TEST(AdminFormat, FormatsTimesInUtc) {
  EXPECT_EQ(format_time_us(0), "1970-01-01 00:00:00.000000+00");
  EXPECT_EQ(format_time_us(1795806470126292), "2026-11-27 19:07:50.126292+00");
  EXPECT_EQ(tx_name('T'), "in transaction");
}

TEST(AdminFormat, ClientsAndServers) {
  ClientRow tenant;
  tenant.id = 7;
  tenant.user = "t1";
  tenant.tenant = "1";
  tenant.kind = "tenant";
  tenant.client = "127.0.0.1:5000";
  tenant.state = "idle";
  tenant.tx = 'I';
  tenant.statements = 3;
  tenant.prepared = 2;
  tenant.prepared_bytes = 120;
  tenant.portals = 1;
  tenant.upstream = true;
  tenant.upstream_addr = "127.0.0.1:5432";
  tenant.upstream_name = "big-1";
  tenant.upstream_local = "127.0.0.1:6000";
  tenant.database = "appdb";
  tenant.backend_pid = 4242;
  ClientRow console;
  console.id = 8;
  console.user = "dba";
  console.kind = "console";
  console.client = "127.0.0.1:5001";
  console.state = "console";

  ResultSet c = clients_result({tenant, console});
  ASSERT_EQ(c.rows.size(), 2u);
  EXPECT_EQ(c.columns[0], "id");
  std::vector<std::optional<std::string>> expected{std::string("7"), std::string("t1"), std::string("1"),
                                                   std::string("tenant"), std::string("127.0.0.1:5000"),
                                                   std::string("idle"), std::string("idle"), std::string("3"),
                                                   std::string("1970-01-01 00:00:00.000000+00"),
                                                   std::string("2"), std::string("120"), std::string("1")};
  EXPECT_EQ(c.rows[0], expected);
  EXPECT_EQ(c.columns[9], "prepared");
  EXPECT_EQ(c.columns[11], "portals");
  EXPECT_EQ(c.rows[1][9], std::nullopt);  // console: no prepared statements
  EXPECT_EQ(c.rows[1][2], std::nullopt);  // no tenant
  EXPECT_EQ(c.rows[1][6], std::nullopt);  // transaction not tracked
  EXPECT_EQ(c.rows[1][7], std::nullopt);

  ResultSet s = servers_result({tenant, console});
  ASSERT_EQ(s.rows.size(), 1u);  // the console has no upstream connection
  EXPECT_EQ(s.rows[0][0], "7");
  EXPECT_EQ(s.rows[0][3], "127.0.0.1:5432");
  EXPECT_EQ(s.rows[0][5], "appdb");
  EXPECT_EQ(s.rows[0][6], "4242");
  EXPECT_EQ(s.rows[0][7], "off");
  EXPECT_EQ(s.columns[9], "upstream");  // tenant placement: the upstream's name in the policy
  EXPECT_EQ(s.rows[0][9], "big-1");
}

TEST(AdminFormat, PolicyRowsListTablesUsersAndVersion) {
  policy::Policy p;
  p.source = "/etc/rowguard.toml";
  p.version = 5;
  p.tables[{"public", "orders"}] = policy::TableRule{{"public", "orders"}, false, "tenant_id"};
  p.tables[{"public", "countries"}] = policy::TableRule{{"public", "countries"}, true, ""};
  p.logins["t1"] = policy::Login{"t1", "pw", std::string("1")};
  p.logins["dba"] = policy::Login{"dba", "pw", std::nullopt};
  ResultSet r = policy_result(p, 0);
  auto has = [&](std::string a, std::string b, std::optional<std::string> c) {
    for (const auto& row : r.rows) {
      if (row[0] == a && row[1] == b && row[2] == c) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("file", "/etc/rowguard.toml", std::nullopt));
  EXPECT_TRUE(has("version", "5", std::nullopt));
  EXPECT_TRUE(has("loaded_at", "1970-01-01 00:00:00.000000+00", std::nullopt));
  EXPECT_TRUE(has("table", "public.orders", "tenant_id"));
  EXPECT_TRUE(has("global_table", "public.countries", "global"));
  EXPECT_TRUE(has("tenant_user", "t1", "1"));
  EXPECT_TRUE(has("bypass_user", "dba", std::nullopt));
  for (const auto& row : r.rows) {
    for (const auto& v : row) EXPECT_FALSE(v && *v == "pw") << "a password in SHOW POLICY";
  }
}

TEST(AdminFormat, CacheRowsEndWithATotal) {
  ResultSet r = cache_result({{0, 10, 100, 20, 4096}, {1, 5, 1, 7, 1024}});
  ASSERT_EQ(r.rows.size(), 3u);
  std::vector<std::optional<std::string>> total{std::string("total"), std::string("15"), std::string("101"),
                                                std::string("27"), std::string("5120")};
  EXPECT_EQ(r.rows[2], total);
  EXPECT_EQ(r.rows[1][0], "1");
}

TEST(AdminFormat, StatsAndHelp) {
  ResultSet s = stats_result({{"statements_allowed", "3"}});
  ASSERT_EQ(s.rows.size(), 1u);
  EXPECT_EQ(s.rows[0][1], "3");
  ResultSet h = help_result();
  EXPECT_EQ(h.rows.size(), 11u);  // + SHOW SCHEMA, SHOW POOLS
  for (const auto& row : h.rows) EXPECT_NE(parse_command(*row[0]), Command::kUnknown) << *row[0];
}

}  // namespace
}  // namespace rowguard::net::admin
