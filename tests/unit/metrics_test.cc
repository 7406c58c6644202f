// The Prometheus exposition of rowguard's metrics: every family that operators' dashboards use
// keeps its name, type and label names (the list below was taken from the hand-formatted output
// before the move to prometheus-cpp), the text parses as the exposition format, and the
// per-tenant families count exactly what was observed, with the tenant label set capped.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "proxy/net/metrics.h"
#include "proxy/net/pool_runtime.h"

namespace rowguard::net {
namespace {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> types;  // family -> type
  std::vector<Sample> samples;
};

// A strict-enough parser of the text format 0.0.4: HELP/TYPE comments, then
// name{label="value",...} value lines; anything else fails the test.
Exposition parse(const std::string& text) {
  Exposition e;
  std::istringstream in(text);
  std::string line;
  static const std::regex kType(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  static const std::regex kHelp(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*$)");
  static const std::regex kSample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ([-+0-9.eEInfNa]+)$)");
  static const std::regex kLabel(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?)re");
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::smatch m;
    if (std::regex_match(line, m, kType)) {
      e.types[m[1]] = m[2];
    } else if (std::regex_match(line, m, kHelp)) {
    } else if (std::regex_match(line, m, kSample)) {
      Sample s;
      s.name = m[1];
      s.value = std::stod(m[4]);
      std::string labels = m[3];
      for (std::sregex_iterator it(labels.begin(), labels.end(), kLabel), end; it != end; ++it) {
        s.labels[(*it)[1]] = (*it)[2];
      }
      e.samples.push_back(std::move(s));
    } else {
      ADD_FAILURE() << "not exposition format: " << line;
    }
  }
  return e;
}

std::string family_of(const Exposition& e, const std::string& sample) {
  if (e.types.contains(sample)) return sample;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    std::string s(suffix);
    if (sample.ends_with(s) && e.types.contains(sample.substr(0, sample.size() - s.size()))) {
      return sample.substr(0, sample.size() - s.size());
    }
  }
  return "";
}

// family type label-names (sorted, "le" excluded), one per line, for every sample.
std::set<std::string> shape(const Exposition& e) {
  std::set<std::string> out;
  for (const auto& s : e.samples) {
    std::string family = family_of(e, s.name);
    std::string line = family + " " + (family.empty() ? "?" : e.types.at(family));
    for (const auto& [k, v] : s.labels) {
      if (k != "le") line += " " + k;
    }
    out.insert(line);
  }
  return out;
}

double value(const Exposition& e, const std::string& name, const std::map<std::string, std::string>& labels) {
  for (const auto& s : e.samples) {
    if (s.name == name && s.labels == labels) return s.value;
  }
  return -1;
}

Metrics& busy(Metrics& m) {
  m.connections_total.fetch_add(3);
  m.connections_active.fetch_add(2);
  m.connections_tenant.fetch_add(1);
  m.connections_bypass.fetch_add(1);
  m.auth_failures.fetch_add(1);
  m.upstream_failures.fetch_add(1);
  m.statements_allowed.fetch_add(1, std::memory_order_relaxed);
  m.count_denial("rowguard: table \"x\" is not in the policy (rule: unknown_tables = \"deny\")");
  m.bytes_from_clients.fetch_add(100, std::memory_order_relaxed);
  m.bytes_to_clients.fetch_add(200, std::memory_order_relaxed);
  m.observe_rewrite(7);
  m.observe_upstream(3000);
  m.observe_parse_pool(2000);
  return m;
}

// Taken from the hand-formatted render() on main (09d59cc) with the traffic of busy().
const std::set<std::string> kMainShape = {
    "rowguard_auth_failures_total counter",
    "rowguard_client_bytes_received_total counter",
    "rowguard_client_bytes_sent_total counter",
    "rowguard_connections gauge kind",
    "rowguard_connections_active gauge",
    "rowguard_connections_total counter",
    "rowguard_denials_total counter rule",
    "rowguard_parse_pool_depth gauge",
    "rowguard_parse_pool_seconds histogram",
    "rowguard_parse_pool_statements_total counter",
    "rowguard_rewrite_cache_entries gauge",
    "rowguard_rewrite_cache_hits_total counter",
    "rowguard_rewrite_cache_misses_total counter",
    "rowguard_rewrite_seconds histogram",
    "rowguard_statements_total counter decision",
    "rowguard_upstream_failures_total counter",
    "rowguard_upstream_latency_seconds histogram",
};

TEST(MetricsExposition, EveryFamilyOfMainKeepsItsNameTypeAndLabels) {
  Metrics m;
  Exposition e = parse(busy(m).render(5, 6, 7));
  std::set<std::string> now = shape(e);
  for (const auto& line : kMainShape) EXPECT_TRUE(now.contains(line)) << "missing or changed: " << line;
  // Nothing unknown: every sample belongs to a declared family.
  for (const auto& line : now) EXPECT_FALSE(line.starts_with(" ")) << line;
  EXPECT_EQ(value(e, "rowguard_statements_total", {{"decision", "allowed"}}), 1);
  EXPECT_EQ(value(e, "rowguard_statements_total", {{"decision", "denied"}}), 1);
  EXPECT_EQ(value(e, "rowguard_connections", {{"kind", "tenant"}}), 1);
  EXPECT_EQ(value(e, "rowguard_connections", {{"kind", "bypass"}}), 1);
  EXPECT_EQ(value(e, "rowguard_denials_total", {{"rule", "unknown_tables = \\\"deny\\\""}}), 1);
  EXPECT_EQ(value(e, "rowguard_rewrite_cache_hits_total", {}), 5);
  EXPECT_EQ(value(e, "rowguard_rewrite_cache_misses_total", {}), 6);
  EXPECT_EQ(value(e, "rowguard_rewrite_cache_entries", {}), 7);
  EXPECT_EQ(value(e, "rowguard_client_bytes_received_total", {}), 100);
  EXPECT_EQ(value(e, "rowguard_client_bytes_sent_total", {}), 200);
  EXPECT_EQ(value(e, "rowguard_rewrite_seconds_count", {}), 1);
  EXPECT_EQ(value(e, "rowguard_rewrite_seconds_bucket", {{"le", "+Inf"}}), 1);
  EXPECT_EQ(value(e, "rowguard_upstream_latency_seconds_count", {}), 1);
  EXPECT_DOUBLE_EQ(value(e, "rowguard_upstream_latency_seconds_sum", {}), 0.003);
  EXPECT_EQ(value(e, "rowguard_parse_pool_seconds_count", {}), 1);
}

TEST(MetricsExposition, PerTenantCountsAndLatencyAreExact) {
  Metrics m;
  for (int i = 0; i < 3; ++i) m.count_allowed("acme");
  m.count_allowed("globex");
  m.count_denial("rowguard: nope (rule: x)", "acme");
  m.observe_upstream(1500, "acme");    // 1.5 ms
  m.observe_upstream(200000, "acme");  // 200 ms
  m.observe_upstream(100, "globex");
  Exposition e = parse(m.render(0, 0, 0));
  std::set<std::string> now = shape(e);
  EXPECT_TRUE(now.contains("rowguard_tenant_statements_total counter result tenant"));
  EXPECT_TRUE(now.contains("rowguard_tenant_statement_seconds histogram tenant"));
  EXPECT_EQ(value(e, "rowguard_tenant_statements_total", {{"tenant", "acme"}, {"result", "allowed"}}), 3);
  EXPECT_EQ(value(e, "rowguard_tenant_statements_total", {{"tenant", "acme"}, {"result", "denied"}}), 1);
  EXPECT_EQ(value(e, "rowguard_tenant_statements_total", {{"tenant", "globex"}, {"result", "allowed"}}), 1);
  EXPECT_EQ(value(e, "rowguard_tenant_statements_total", {{"tenant", "globex"}, {"result", "denied"}}), 0);
  // The per-tenant counts add up to the global ones.
  EXPECT_EQ(value(e, "rowguard_statements_total", {{"decision", "allowed"}}), 4);
  EXPECT_EQ(value(e, "rowguard_statements_total", {{"decision", "denied"}}), 1);
  EXPECT_EQ(value(e, "rowguard_tenant_statement_seconds_count", {{"tenant", "acme"}}), 2);
  EXPECT_DOUBLE_EQ(value(e, "rowguard_tenant_statement_seconds_sum", {{"tenant", "acme"}}), 0.2015);
  EXPECT_EQ(value(e, "rowguard_tenant_statement_seconds_bucket", {{"tenant", "acme"}, {"le", "0.001"}}), 0);
  EXPECT_EQ(value(e, "rowguard_tenant_statement_seconds_bucket", {{"tenant", "acme"}, {"le", "0.0025"}}), 1);
  EXPECT_EQ(value(e, "rowguard_tenant_statement_seconds_bucket", {{"tenant", "acme"}, {"le", "+Inf"}}), 2);
  EXPECT_EQ(value(e, "rowguard_tenant_statement_seconds_count", {{"tenant", "globex"}}), 1);
  // The global upstream histogram sees the same round trips.
  EXPECT_EQ(value(e, "rowguard_upstream_latency_seconds_count", {}), 3);
}

TEST(MetricsExposition, CountsFromManyThreadsAreSummedAtScrape) {
  Metrics m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&m, t] {
      for (int i = 0; i < 10000; ++i) {
        m.count_allowed(t % 2 ? "odd" : "even");
        m.bytes_from_clients.fetch_add(2, std::memory_order_relaxed);
        m.observe_rewrite(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  Exposition e = parse(m.render(0, 0, 0));
  EXPECT_EQ(value(e, "rowguard_statements_total", {{"decision", "allowed"}}), 40000);
  EXPECT_EQ(value(e, "rowguard_tenant_statements_total", {{"tenant", "odd"}, {"result", "allowed"}}), 20000);
  EXPECT_EQ(value(e, "rowguard_tenant_statements_total", {{"tenant", "even"}, {"result", "allowed"}}), 20000);
  EXPECT_EQ(value(e, "rowguard_client_bytes_received_total", {}), 80000);
  EXPECT_EQ(value(e, "rowguard_rewrite_seconds_count", {}), 40000);
  EXPECT_EQ(m.statements_allowed.load(), 40000u);
}

TEST(MetricsExposition, TenantLabelsAreCappedUnderOther) {
  Metrics m;
  m.set_max_tenant_labels(2);
  m.count_allowed("a");
  m.count_allowed("b");
  m.count_allowed("c");
  m.count_allowed("d");
  m.count_allowed("a");
  m.observe_upstream(10, "d");
  Exposition e = parse(m.render(0, 0, 0));
  EXPECT_EQ(value(e, "rowguard_tenant_statements_total", {{"tenant", "a"}, {"result", "allowed"}}), 2);
  EXPECT_EQ(value(e, "rowguard_tenant_statements_total", {{"tenant", "b"}, {"result", "allowed"}}), 1);
  EXPECT_EQ(value(e, "rowguard_tenant_statements_total", {{"tenant", "_other"}, {"result", "allowed"}}), 2);
  EXPECT_EQ(value(e, "rowguard_tenant_statements_total", {{"tenant", "c"}, {"result", "allowed"}}), -1);
  EXPECT_EQ(value(e, "rowguard_tenant_statement_seconds_count", {{"tenant", "_other"}}), 1);
  std::set<std::string> tenants;
  for (const auto& s : e.samples) {
    if (s.labels.contains("tenant")) tenants.insert(s.labels.at("tenant"));
  }
  EXPECT_EQ(tenants, (std::set<std::string>{"a", "b", "_other"}));
}

TEST(MetricsExposition, NoPoolSeriesWithoutAPool) {
  Metrics m;
  Exposition e = parse(busy(m).render(0, 0, 0));
  for (const auto& [family, type] : e.types) EXPECT_FALSE(family.starts_with("rowguard_pool_")) << family;
}

// Transaction pooling: two workers' pools of one database are summed (the longest wait is the
// max), every family has its type and labels, the wait histogram's le="0" bucket holds the
// checkouts that found an idle connection.
TEST(MetricsExposition, PoolFamiliesSumTheWorkersPools) {
  PoolSample w1, w2;
  w1.database = w2.database = "appdb";
  w1.checkouts = 5;
  w2.checkouts = 2;
  w1.wait_buckets[0] = 4;  // no wait
  w1.wait_buckets[4] = 1;  // (10, 50] ms
  w2.wait_buckets[0] = 2;
  w1.wait_sum_us = 20000;
  w2.wait_timeouts = 1;
  w2.wait_buckets.back() = 1;  // above 120 s
  w2.wait_sum_us = 130000000;
  w1.opened = 3;
  w1.closed[0] = 1;  // idle_timeout
  w2.closed[2] = 1;  // cancel
  w1.servers_active = w1.clients_active = 1;
  w1.servers_idle = 1;
  w2.clients_waiting = 2;
  w2.longest_wait_us = 1500000;
  w1.longest_wait_us = 1000;
  w1.pinned[2] = 1;  // advisory_lock
  PoolSample sum = w1;
  sum.add(w2);
  Metrics m;
  m.pool_samples = [&] { return std::vector<PoolSample>{sum}; };
  Exposition e = parse(m.render(0, 0, 0));
  const std::set<std::string> now = shape(e);
  for (const char* line : {"rowguard_pool_wait_seconds histogram database mode",
                           "rowguard_pool_checkouts_total counter database mode",
                           "rowguard_pool_wait_timeouts_total counter database mode",
                           "rowguard_pool_wait_failures_total counter database mode",
                           "rowguard_pool_clients_active gauge database mode",
                           "rowguard_pool_clients_waiting gauge database mode",
                           "rowguard_pool_longest_wait_seconds gauge database mode",
                           "rowguard_pool_clients_pinned gauge database mode reason",
                           "rowguard_pool_servers gauge database mode state",
                           "rowguard_pool_server_connections_opened_total counter database mode",
                           "rowguard_pool_server_connections_closed_total counter database mode reason"}) {
    EXPECT_TRUE(now.contains(line)) << line;
  }
  const std::map<std::string, std::string> db = {{"database", "appdb"}, {"mode", "transaction"}};
  auto with = [&](std::string k, std::string v) {
    auto l = db;
    l[k] = v;
    return l;
  };
  EXPECT_EQ(value(e, "rowguard_pool_checkouts_total", db), 7);
  EXPECT_EQ(value(e, "rowguard_pool_wait_timeouts_total", db), 1);
  EXPECT_EQ(value(e, "rowguard_pool_wait_seconds_count", db), 8);
  EXPECT_EQ(value(e, "rowguard_pool_wait_seconds_bucket", with("le", "0")), 6);
  EXPECT_EQ(value(e, "rowguard_pool_wait_seconds_bucket", with("le", "0.05")), 7);
  EXPECT_EQ(value(e, "rowguard_pool_wait_seconds_bucket", with("le", "120")), 7);
  EXPECT_EQ(value(e, "rowguard_pool_wait_seconds_bucket", with("le", "+Inf")), 8);
  EXPECT_DOUBLE_EQ(value(e, "rowguard_pool_wait_seconds_sum", db), 130.02);
  EXPECT_EQ(value(e, "rowguard_pool_servers", with("state", "active")), 1);
  EXPECT_EQ(value(e, "rowguard_pool_servers", with("state", "idle")), 1);
  EXPECT_EQ(value(e, "rowguard_pool_clients_waiting", db), 2);
  EXPECT_DOUBLE_EQ(value(e, "rowguard_pool_longest_wait_seconds", db), 1.5);
  EXPECT_EQ(value(e, "rowguard_pool_clients_pinned", with("reason", "advisory_lock")), 1);
  EXPECT_EQ(value(e, "rowguard_pool_clients_pinned", with("reason", "listen")), 0);
  EXPECT_EQ(value(e, "rowguard_pool_server_connections_opened_total", db), 3);
  EXPECT_EQ(value(e, "rowguard_pool_server_connections_closed_total", with("reason", "idle_timeout")), 1);
  EXPECT_EQ(value(e, "rowguard_pool_server_connections_closed_total", with("reason", "cancel")), 1);
  EXPECT_EQ(value(e, "rowguard_pool_server_connections_closed_total", with("reason", "dirty")), 0);
}

// The reason label of a pin, from ClientConnection::pinned()'s descriptions; a label maps to itself.
TEST(MetricsExposition, PinReasonsAreCategorised) {
  EXPECT_EQ(pin_category("LISTEN"), "listen");
  EXPECT_EQ(pin_category("a session-level advisory lock"), "advisory_lock");
  EXPECT_EQ(pin_category("a cursor WITH HOLD"), "cursor");
  EXPECT_EQ(pin_category("currval/lastval (sequence values of the session)"), "sequence");
  EXPECT_EQ(pin_category("SQL-level prepared statement \"q\" (PREPARE) lives on its server connection"),
            "prepared_statement");
  EXPECT_EQ(pin_category("a named prepared statement"), "prepared_statement");
  EXPECT_EQ(pin_category("something new"), "other");
  for (const char* r : PoolSample::kPinReasons) EXPECT_EQ(pin_category(r), r);
}

}  // namespace
}  // namespace rowguard::net
