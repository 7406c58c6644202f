// Note: GCC 12 can destroy a temporary inside a co_await expression twice; arguments of
// co_await calls are named variables here.
//
// The admin console's I/O: startup completion, the simple-query loop, and each command.
#include "proxy/net/admin.h"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <cstring>

#include "pg/sqlstate.h"
#include "auth/scram.h"
#include "proxy/net/admin_format.h"
#include "proxy/net/admin_schema.h"
#include "proxy/net/clients.h"
#include "proxy/net/pool_runtime.h"
#include "proxy/net/server.h"

namespace rowguard::net {
namespace asio = boost::asio;

namespace {

constexpr auto kUse = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxConsoleMessage = 1 << 20;
constexpr size_t kReadChunk = 16 * 1024;

std::string u64(uint64_t v) { return std::to_string(v); }

std::vector<std::pair<std::string, std::string>> collect_stats(Server& server) {
  const Metrics& m = server.metrics();
  std::vector<std::pair<std::string, std::string>> s;
  auto add = [&](std::string name, uint64_t v) { s.emplace_back(std::move(name), u64(v)); };
  add("connections_total", m.connections_total.load());
  add("connections_active", static_cast<uint64_t>(std::max<int64_t>(0, m.connections_active.load())));
  add("connections_tenant", static_cast<uint64_t>(std::max<int64_t>(0, m.connections_tenant.load())));
  add("connections_bypass", static_cast<uint64_t>(std::max<int64_t>(0, m.connections_bypass.load())));
  add("auth_failures", m.auth_failures.load());
  add("upstream_failures", m.upstream_failures.load());
  add("listener_disconnects", m.listener_disconnects.load());
  add("notifications_dropped", m.notifications_dropped.load());
  add("statements_allowed", m.statements_allowed.load());
  add("statements_denied", m.statements_denied.load());
  add("client_bytes_received", m.bytes_from_clients.load());
  add("client_bytes_sent", m.bytes_to_clients.load());
  add("rewrite_checks", m.rewrite_checks());
  add("rewrite_us_total", m.rewrite_us_total());
  add("upstream_round_trips", m.upstream_round_trips());
  add("upstream_us_total", m.upstream_us_total());
  uint64_t hits = 0, misses = 0, entries = 0, constant_hits = 0;
  for (const auto& w : server.workers()) {
    hits += w->cache.hits();
    misses += w->cache.misses();
    entries += w->cache.size();
    constant_hits += w->cache.constant_hits();
  }
  add("rewrite_cache_hits", hits);
  add("rewrite_cache_constant_hits", constant_hits);
  add("rewrite_cache_misses", misses);
  add("rewrite_cache_entries", entries);
  add("paused", server.pause_gate().paused() ? 1 : 0);
  for (const auto& [rule, n] : m.denials_by_rule()) s.emplace_back("denials{rule=" + rule + "}", u64(n));
  return s;
}

class Console {
 public:
  Console(Server& server, ConsoleClient c) : server_(server), c_(std::move(c)) {}

  asio::awaitable<void> run() {
    auto policy = server_.policy();
    const policy::Login* login = policy->login(c_.user);
    if (login == nullptr || !login->bypass()) {
      spdlog::warn("session={} client={} user={} refused: the admin console is for bypass users", c_.id, c_.peer,
                   c_.user);
      std::string out;
      protocol::append_error_response(out, "FATAL", pg::sqlstate::kInsufficientPrivilege,
                                      "rowguard: permission denied for the admin console (database \"rowguard\"): "
                                      "only [[bypass]] users may use it");
      co_await write(out);
      co_return;
    }
    c_.info.set_login(c_.user, std::nullopt, ClientInfo::Kind::kConsole);
    spdlog::info("session={} admin console user={} client={}", c_.id, c_.user, c_.peer);
    std::string out;
    for (const auto& [name, value] : std::initializer_list<std::pair<const char*, const char*>>{
             {"server_version", "15.0 (rowguard admin console)"},
             {"server_encoding", "UTF8"},
             {"client_encoding", "UTF8"},
             {"DateStyle", "ISO, MDY"},
             {"IntervalStyle", "postgres"},
             {"TimeZone", "UTC"},
             {"integer_datetimes", "on"},
             {"standard_conforming_strings", "on"},
             {"application_name", ""},
             {"is_superuser", "off"}}) {
      protocol::append_parameter_status(out, name, value);
    }
    std::string r = auth::random_bytes(8);
    int32_t pid = 0, key = 0;
    std::memcpy(&pid, r.data(), 4);
    std::memcpy(&key, r.data() + 4, 4);
    protocol::append_backend_key_data(out, (pid & 0x3fffffff) | 1, key);  // cancels are ignored
    protocol::append_ready_for_query(out, 'I');
    if (!co_await write(out)) co_return;

    bool skip_to_sync = false;
    for (;;) {
      auto f = protocol::decode_frame(c_.buf, kMaxConsoleMessage);
      if (f.status == protocol::DecodeStatus::kMalformed) {
        out.clear();
        protocol::append_error_response(out, "FATAL", pg::sqlstate::kProtocolViolation, "invalid message: " + f.error);
        co_await write(out);
        co_return;
      }
      if (f.status == protocol::DecodeStatus::kNeedMore) {
        if (!co_await read_more()) co_return;
        continue;
      }
      char tag = f.frame.tag;
      std::string body(f.frame.body);
      c_.buf.erase(0, f.frame.size);
      out.clear();
      switch (tag) {
        case protocol::fe::kTerminate:
          co_return;
        case protocol::fe::kQuery: {
          auto text = protocol::parse_query(body);
          if (!text) {
            protocol::append_error_response(out, "FATAL", pg::sqlstate::kProtocolViolation, "invalid Query message");
            co_await write(out);
            co_return;
          }
          std::string sql(*text);
          co_await query(sql, out);
          protocol::append_ready_for_query(out, 'I');
          break;
        }
        case protocol::fe::kSync:
          skip_to_sync = false;
          protocol::append_ready_for_query(out, 'I');
          break;
        case protocol::fe::kFlush:
          break;
        default:
          if (!skip_to_sync) {
            protocol::append_error_response(out, "ERROR", pg::sqlstate::kFeatureNotSupported,
                                            "rowguard: the admin console answers the simple query protocol only");
            skip_to_sync = tag != protocol::fe::kFunctionCall;
            if (tag == protocol::fe::kFunctionCall) protocol::append_ready_for_query(out, 'I');
          }
          break;
      }
      if (!out.empty() && !co_await write(out)) co_return;
    }
  }

 private:
  asio::awaitable<void> query(const std::string& sql, std::string& out) {
    auto commands = admin::split_commands(sql);
    if (commands.empty()) {
      protocol::append_frame(out, protocol::be::kEmptyQueryResponse, {});
      co_return;
    }
    for (const auto& text : commands) {
      spdlog::info("session={} console user={}: {}", c_.id, c_.user, text);
      bool ok = co_await command(text, out);
      if (!ok) co_return;  // like PostgreSQL: the rest of a multi-statement query is skipped
    }
  }

  // SHOW POOLS: one row per worker and upstream database (transaction pooling).
  admin::ResultSet pools_result() {
    admin::ResultSet r{{"worker", "database", "size", "clients_active", "clients_waiting", "servers_active", "servers_idle",
                        "servers_opening", "checkouts", "longest_wait_ms", "pinned_clients", "wait_timeouts",
                        "servers_opened", "servers_closed", "open_failures", "tenant_cap", "clients_waiting_at_share",
                        "upstream"},
                       {},
                       "SHOW"};
    const auto& workers = server_.workers();
    for (size_t i = 0; i < workers.size(); ++i) {
      std::vector<std::pair<std::string, std::shared_ptr<PoolRuntime>>> pools;
      {
        std::lock_guard lock(workers[i]->pools_mu);
        pools.assign(workers[i]->pools.begin(), workers[i]->pools.end());
      }
      for (const auto& [key, pool] : pools) {
        const std::string& db = pool->database();
        const PoolRuntime::Snapshot s = pool->snapshot();
        const auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(s.stats.longest_wait).count();
        r.rows.push_back({u64(i), db, u64(s.size), u64(s.stats.lent), u64(s.stats.waiting), u64(s.stats.lent),
                          u64(s.stats.idle), u64(s.stats.opening), u64(s.stats.grants),
                          u64(static_cast<uint64_t>(wait_ms)), u64(s.pinned), u64(s.stats.timed_out),
                          u64(s.stats.opened), u64(s.stats.closed), u64(s.stats.open_failures), u64(s.tenant_cap),
                          u64(s.stats.waiting_at_share), pool->upstream()});
      }
    }
    return r;
  }

  // Appends the answer to `out`; false after an ErrorResponse.
  asio::awaitable<bool> command(const std::string& text, std::string& out) {
    switch (admin::parse_command(text)) {
      case admin::Command::kEmpty:
        co_return true;
      case admin::Command::kShowHelp:
        admin::append_result(out, admin::help_result());
        co_return true;
      case admin::Command::kShowClients:
        admin::append_result(out, admin::clients_result(server_.clients().snapshot()));
        co_return true;
      case admin::Command::kShowServers:
        admin::append_result(out, admin::servers_result(server_.clients().snapshot()));
        co_return true;
      case admin::Command::kShowPools:
        admin::append_result(out, pools_result());
        co_return true;
      case admin::Command::kShowStats:
        admin::append_result(out, admin::stats_result(collect_stats(server_)));
        co_return true;
      case admin::Command::kShowPolicy: {
        auto p = server_.policy();
        admin::append_result(out, admin::policy_result(*p, server_.policy_loaded_at_us()));
        co_return true;
      }
      case admin::Command::kShowCache: {
        std::vector<admin::CacheRow> rows;
        size_t i = 0;
        for (const auto& w : server_.workers()) {
          rows.push_back({i++, w->cache.size(), w->cache.hits(), w->cache.misses(), w->cache.bytes()});
        }
        admin::append_result(out, admin::cache_result(rows));
        co_return true;
      }
      case admin::Command::kShowSchema: {
        auto p = server_.policy();
        auto status = server_.schema_status();
        admin::append_result(out, admin::schema_result(*p, status ? &*status : nullptr, admin::unix_now_us()));
        co_return true;
      }
      case admin::Command::kReload: {
        uint64_t before = server_.policy()->version;
        auto error = server_.reload();
        if (error) {
          std::string msg = "rowguard: policy rejected, keeping version " + std::to_string(before) + ": " + *error;
          protocol::append_error_response(out, "ERROR", pg::sqlstate::kConfigFileError, msg);
          co_return false;
        }
        auto p = server_.policy();
        std::string msg = "policy version " + std::to_string(p->version) + " loaded (" +
                          std::to_string(p->tables.size()) + " tables, " + std::to_string(p->logins.size()) +
                          " users); sessions switch at their next transaction boundary";
        protocol::append_notice_response(out, pg::sqlstate::kSuccessfulCompletion, msg);
        append_complete(out, "RELOAD");
        co_return true;
      }
      case admin::Command::kPause: {
        PauseGate& gate = server_.pause_gate();
        gate.pause();
        spdlog::warn("session={} console user={}: PAUSE: tenant sessions wait at their next transaction boundary",
                     c_.id, c_.user);
        // Like PgBouncer: return once no tenant transaction or statement is under way.
        asio::steady_timer timer(co_await asio::this_coro::executor);
        while (gate.paused() && server_.clients().blocking_pause() > 0) {
          timer.expires_after(std::chrono::milliseconds(20));
          co_await timer.async_wait(kUse);
        }
        if (!gate.paused()) {
          protocol::append_error_response(out, "ERROR", pg::sqlstate::kObjectNotInPrerequisiteState,
                                          "rowguard: RESUME was issued before every session had paused");
          co_return false;
        }
        append_complete(out, "PAUSE");
        co_return true;
      }
      case admin::Command::kResume:
        if (!server_.pause_gate().resume()) {
          protocol::append_error_response(out, "ERROR", pg::sqlstate::kObjectNotInPrerequisiteState,
                                          "rowguard: not paused");
          co_return false;
        }
        spdlog::warn("session={} console user={}: RESUME", c_.id, c_.user);
        append_complete(out, "RESUME");
        co_return true;
      case admin::Command::kUnknown:
        break;
    }
    std::string msg = "rowguard: unknown admin console command \"" + text.substr(0, 200) + "\"";
    protocol::append_error_response(out, "ERROR", pg::sqlstate::kSyntaxError, msg, {}, "SHOW HELP lists the commands");
    co_return false;
  }

  static void append_complete(std::string& out, std::string_view tag) {
    std::string body(tag);
    body.push_back('\0');
    protocol::append_frame(out, protocol::be::kCommandComplete, body);
  }

  asio::awaitable<bool> read_more() {
    size_t old = c_.buf.size();
    c_.buf.resize(old + kReadChunk);
    auto [ec, n] = co_await c_.stream.read_some(asio::buffer(c_.buf.data() + old, kReadChunk));
    c_.buf.resize(old + (ec ? 0 : n));
    if (!ec) server_.metrics().bytes_from_clients.fetch_add(n, std::memory_order_relaxed);
    co_return !ec;
  }

  asio::awaitable<bool> write(const std::string& bytes) {
    auto [ec, n] = co_await c_.stream.write(asio::buffer(bytes.data(), bytes.size()));
    if (!ec) server_.metrics().bytes_to_clients.fetch_add(n, std::memory_order_relaxed);
    co_return !ec;
  }

  Server& server_;
  ConsoleClient c_;
};

}  // namespace

bool wants_console(const protocol::StartupPacket& startup) {
  const std::string* db = startup.param("database");
  if (db == nullptr || db->empty()) db = startup.param("user");  // PostgreSQL's default
  return db != nullptr && *db == admin::kConsoleDatabase;
}

asio::awaitable<void> serve_console(Server& server, ConsoleClient client) {
  Console console(server, std::move(client));
  co_await console.run();
}

}  // namespace rowguard::net
