#include "proxy/net/pool_runtime.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cerrno>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "pg/sqlstate.h"
#include "proxy/net/server.h"
#include "proxy/net/upstream.h"

namespace rowguard::net {
namespace asio = boost::asio;

namespace {
constexpr auto kUse = asio::as_tuple(asio::use_awaitable);

pool::PoolLimits limits_of(const policy::PoolSettings& p, int workers) {
  const size_t w = workers > 0 ? static_cast<size_t>(workers) : 1;
  pool::PoolLimits l;
  l.size = (p.size + w - 1) / w;  // ceil: every worker may open at least one
  l.min_size = (p.min_size + w - 1) / w;
  l.query_wait_timeout = std::chrono::seconds(p.query_wait_timeout_seconds);
  l.server_idle_timeout = std::chrono::seconds(p.server_idle_timeout_seconds);
  l.server_lifetime = std::chrono::seconds(p.server_lifetime_seconds);
  l.max_tenant_share = p.max_tenant_share;
  return l;
}

std::string make_settings_query() {
  std::string sql = "SELECT ";
  bool first = true;
  for (const std::string& name : pooled_settings()) {
    if (!first) sql += ", ";
    first = false;
    sql += "pg_catalog.current_setting(" + sql_literal(name) + ", true)";
  }
  return sql;
}

// Single writer (the worker thread); a scrape reads it.
inline void bump(std::atomic<uint64_t>& a, uint64_t n = 1) {
  a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

bool contains_ci(std::string_view text, std::string_view word) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  for (size_t i = 0; i + word.size() <= text.size(); ++i) {
    size_t j = 0;
    while (j < word.size() && lower(text[i + j]) == word[j]) ++j;
    if (j == word.size()) return true;
  }
  return false;
}

uint32_t be32(std::string_view s, size_t at) {
  return (uint32_t{static_cast<unsigned char>(s[at])} << 24) | (uint32_t{static_cast<unsigned char>(s[at + 1])} << 16) |
         (uint32_t{static_cast<unsigned char>(s[at + 2])} << 8) | uint32_t{static_cast<unsigned char>(s[at + 3])};
}

std::optional<std::vector<std::optional<std::string>>> parse_data_row(std::string_view body) {
  if (body.size() < 2) return std::nullopt;
  const size_t n = (size_t{static_cast<unsigned char>(body[0])} << 8) | static_cast<unsigned char>(body[1]);
  size_t at = 2;
  std::vector<std::optional<std::string>> row;
  for (size_t i = 0; i < n; ++i) {
    if (at + 4 > body.size()) return std::nullopt;
    const int32_t len = static_cast<int32_t>(be32(body, at));
    at += 4;
    if (len < 0) {
      row.emplace_back(std::nullopt);
      continue;
    }
    if (at + static_cast<size_t>(len) > body.size()) return std::nullopt;
    row.emplace_back(std::string(body.substr(at, static_cast<size_t>(len))));
    at += static_cast<size_t>(len);
  }
  return row;
}

}  // namespace

const std::string& read_settings_sql() {
  static const std::string kSql = make_settings_query();
  return kSql;
}

const std::vector<std::string>& pooled_settings() {
  // sqlrewrite/utility.cc settable() without the transaction_* ones (they end with their
  // transaction), plus fallback_application_name's target (application_name, already there).
  static const std::vector<std::string> kNames = {
      "application_name", "client_encoding", "datestyle", "timezone", "extra_float_digits",
      "intervalstyle", "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
      "client_min_messages", "bytea_output", "default_transaction_isolation", "default_transaction_read_only",
      "default_transaction_deferrable", "work_mem", "jit", "enable_seqscan", "enable_indexscan",
      "enable_bitmapscan", "enable_hashjoin", "enable_mergejoin", "enable_nestloop", "random_page_cost",
      "synchronous_commit", "lc_messages", "lc_monetary", "lc_numeric", "lc_time", "geqo", "xmloption",
      "row_security",
  };
  return kNames;
}

std::string_view pin_category(std::string_view why) {
  // PoolSample::kPinReasons: prepared_statement, listen, advisory_lock, cursor, sequence, other
  const auto& r = PoolSample::kPinReasons;
  if (contains_ci(why, "listen")) return r[1];
  if (contains_ci(why, "advisory")) return r[2];
  if (contains_ci(why, "cursor")) return r[3];
  if (contains_ci(why, "currval") || contains_ci(why, "sequence")) return r[4];
  if (contains_ci(why, "prepare") || contains_ci(why, "statement")) return r[0];
  return r[5];
}

bool idle_connection_alive(PooledServer& conn) {
  char byte = 0;
  const ssize_t n = ::recv(conn.stream.socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

std::string sql_literal(std::string_view v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

asio::awaitable<QueryAnswer> run_injected(PooledServer& conn, std::string sql, size_t max_message) {
  QueryAnswer answer;
  std::string out;
  protocol::append_query(out, sql);
  auto [wec, wn] = co_await conn.stream.write(asio::buffer(out));
  if (wec) {
    answer.sqlstate = std::string(pg::sqlstate::kConnectionFailure);
    answer.message = "rowguard: the connection to the server was lost";
    co_return answer;
  }
  std::string buf;
  bool error = false;
  for (;;) {
    auto r = protocol::decode_frame(buf, max_message);
    if (r.status == protocol::DecodeStatus::kMalformed) break;
    if (r.status == protocol::DecodeStatus::kNeedMore) {
      const size_t old = buf.size();
      buf.resize(old + 16 * 1024);
      auto [ec, n] = co_await conn.stream.read_some(asio::buffer(buf.data() + old, 16 * 1024));
      buf.resize(old + (ec ? 0 : n));
      if (ec) break;
      continue;
    }
    const protocol::Frame f = r.frame;
    if (f.tag == protocol::be::kDataRow) {
      if (auto row = parse_data_row(f.body)) answer.rows.push_back(std::move(*row));
    } else if (f.tag == protocol::be::kErrorResponse) {
      error = true;
      if (auto e = protocol::parse_error_fields(f.body)) {
        answer.sqlstate = e->get('C');
        answer.message = e->get('M');
      }
    } else if (f.tag == protocol::be::kReadyForQuery) {
      auto z = protocol::parse_ready_for_query(f.body);
      const bool rest = r.frame.size != buf.size();  // nothing may follow ReadyForQuery
      answer.ok = !error && z && z->status == 'I' && !rest;
      if (!answer.ok && answer.sqlstate.empty()) {
        answer.sqlstate = std::string(pg::sqlstate::kConnectionFailure);
        answer.message = "rowguard: unexpected answer to an injected query";
      }
      co_return answer;
    }
    buf.erase(0, r.frame.size);
  }
  answer.ok = false;
  answer.sqlstate = std::string(pg::sqlstate::kConnectionFailure);
  answer.message = "rowguard: the connection to the server was lost";
  co_return answer;
}

std::string pool_key(const policy::Upstream& upstream, const std::string& database) {
  return upstream.name + "\n" + upstream.settings.upstream_host + ":" + std::to_string(upstream.settings.upstream_port) +
         "\n" + database;
}

PoolRuntime::PoolRuntime(Server& server, asio::io_context& ctx, std::string upstream, std::string database,
                         policy::PolicyPtr policy, int workers)
    : server_(server),
      ctx_(ctx),
      upstream_(std::move(upstream)),
      database_(std::move(database)),
      policy_(std::move(policy)),
      pool_(limits_of(policy_->pool, workers)),
      tick_timer_(ctx) {
  asio::co_spawn(ctx_, ticker(), asio::detached);
}

PoolRuntime::~PoolRuntime() {
  *alive_ = false;
  tick_timer_.cancel();
}

void PoolRuntime::set_limits(const policy::PoolSettings& pool, int workers) {
  std::vector<pool::Action> actions;
  pool_.set_limits(limits_of(pool, workers), pool::Clock::now(), actions);
  run(actions);
}

void PoolRuntime::apply_policy(const policy::PolicyPtr& policy, int workers) {
  if (policy->version <= policy_->version) return;  // (versions only grow; a session may still run an older one)
  policy_ = policy;
  set_limits(policy->pool, workers);
  if (listener_) listener_->apply_policy(policy);
}

void PoolRuntime::pinned(int delta, std::string_view category) {
  pinned_ = static_cast<uint64_t>(static_cast<int64_t>(pinned_) + delta);
  for (size_t i = 0; i < PoolSample::kPinReasons.size(); ++i) {
    if (category != PoolSample::kPinReasons[i]) continue;
    std::atomic<uint64_t>& n = meters_.pinned[i];
    n.store(static_cast<uint64_t>(static_cast<int64_t>(n.load(std::memory_order_relaxed)) + delta),
            std::memory_order_relaxed);
  }
  publish();
}

void PoolRuntime::publish() {
  const pool::Clock::time_point now = pool::Clock::now();
  Snapshot s{pool_.stats(now), pool_.limits().size, pinned_, {}, pool_.tenant_cap()};
  s.oldest_wait_since = now - s.stats.longest_wait;
  std::lock_guard lock(snapshot_mu_);
  snapshot_ = s;
}

PoolRuntime::Snapshot PoolRuntime::snapshot() const {
  Snapshot s;
  {
    std::lock_guard lock(snapshot_mu_);
    s = snapshot_;
  }
  // (published at the last change: the oldest waiter has been waiting since then too)
  s.stats.longest_wait = s.stats.waiting > 0 ? pool::Clock::now() - s.oldest_wait_since : pool::Duration::zero();
  return s;
}

PoolSample PoolRuntime::sample() const {
  const Snapshot snap = snapshot();
  PoolSample p;
  p.database = database_;
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  p.checkouts = get(meters_.checkouts);
  p.wait_timeouts = get(meters_.wait_timeouts);
  p.wait_failures = get(meters_.wait_failures);
  p.opened = get(meters_.opened);
  for (size_t i = 0; i < p.closed.size(); ++i) p.closed[i] = get(meters_.closed[i]);
  for (size_t i = 0; i < p.wait_buckets.size(); ++i) p.wait_buckets[i] = get(meters_.wait[i]);
  p.wait_sum_us = get(meters_.wait_sum_us);
  for (size_t i = 0; i < p.pinned.size(); ++i) p.pinned[i] = get(meters_.pinned[i]);
  p.clients_active = snap.stats.lent;
  p.clients_waiting = snap.stats.waiting;
  p.servers_active = snap.stats.lent;
  p.servers_idle = snap.stats.idle;
  p.servers_opening = snap.stats.opening;
  p.longest_wait_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(snap.stats.longest_wait).count());
  return p;
}

void PoolRuntime::count_close(pool::ServerId id, const PooledServer& conn) {
  Closed why = Closed::kResize;  // above a (reloaded) smaller size
  const pool::Duration lifetime = pool_.limits().server_lifetime;
  if (auto it = close_as_.find(id); it != close_as_.end()) {
    why = it->second;
  } else if (lifetime > pool::Duration::zero() && pool::Clock::now() - conn.opened_at >= lifetime) {
    why = Closed::kLifetime;
  } else if (ticking_) {
    why = Closed::kIdleTimeout;
  }
  bump(meters_.closed[static_cast<size_t>(why)]);
}

void PoolRuntime::observe_wait(pool::Clock::time_point since, bool immediate) {
  const uint64_t us =
      immediate ? 0 : static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(pool::Clock::now() - since).count());
  size_t i = 0;
  while (i < PoolSample::kWaitBucketsUs.size() && us > PoolSample::kWaitBucketsUs[i]) ++i;
  bump(meters_.wait[i]);
  bump(meters_.wait_sum_us, us);
}

asio::awaitable<void> PoolRuntime::ticker() {
  std::shared_ptr<bool> alive = alive_;
  for (;;) {
    auto next = pool_.next_deadline();
    tick_timer_.expires_at(next ? *next : asio::steady_timer::time_point::max());
    co_await tick_timer_.async_wait(kUse);
    if (!*alive) co_return;
    std::vector<pool::Action> actions;
    pool_.tick(pool::Clock::now(), actions);
    ticking_ = true;  // (a kClose now: idle timeout or lifetime)
    if (!actions.empty()) run(actions);
    ticking_ = false;
  }
}

void PoolRuntime::rearm() {
  // The ticker wakes, ticks (harmless) and waits for the new next_deadline().
  tick_timer_.cancel();
}

void PoolRuntime::run(std::vector<pool::Action>& actions) {
  for (const pool::Action& a : actions) {
    switch (a.kind) {
      case pool::Action::Kind::kOpen:
        asio::co_spawn(ctx_, open(a.server), asio::detached);
        break;
      case pool::Action::Kind::kClose:
        if (auto it = conns_.find(a.server); it != conns_.end()) {
          count_close(a.server, *it->second);
          it->second->stream.close();
          conns_.erase(it);
        }
        lent_to_.erase(a.server);
        break;
      case pool::Action::Kind::kGrant:
      case pool::Action::Kind::kTimedOut:
      case pool::Action::Kind::kFailed: {
        auto w = waiting_.find(a.waiter);
        if (w == waiting_.end()) {  // (cannot happen: a cancelled waiter is no longer in the pool)
          if (a.kind == pool::Action::Kind::kGrant) {
            std::vector<pool::Action> more;
            pool_.release(a.server, true, pool::Clock::now(), more);
            run(more);
          }
          break;
        }
        Waiting& waiting = *w->second;
        waiting_.erase(w);
        waiting.done = true;
        if (a.kind == pool::Action::Kind::kGrant) {
          waiting.lease.conn = conns_.at(a.server).get();
        } else if (a.kind == pool::Action::Kind::kTimedOut) {
          waiting.lease.sqlstate = std::string(pg::sqlstate::kTooManyConnections);
          waiting.lease.message = "rowguard: no server connection became free within [pool] query_wait_timeout (" +
                                  std::to_string(policy_->pool.query_wait_timeout_seconds) + " s)";
        } else {
          waiting.lease.sqlstate =
              last_open_sqlstate_.empty() ? std::string(pg::sqlstate::kConnectionFailure) : last_open_sqlstate_;
          waiting.lease.message = "rowguard: cannot open a server connection: " + last_open_error_;
        }
        waiting.wake->cancel();
        break;
      }
    }
  }
  actions.clear();
  rearm();
  publish();
}

NotificationListener& PoolRuntime::listener() {
  if (!listener_) listener_ = std::make_unique<NotificationListener>(server_, ctx_, upstream_, database_, policy_);
  return *listener_;
}

asio::awaitable<void> PoolRuntime::open(pool::ServerId id) {
  std::shared_ptr<bool> alive = alive_;
  auto conn = std::make_unique<PooledServer>(ctx_);
  conn->id = id;
  std::vector<std::pair<std::string, std::string>> params = {{"search_path", "public"}};
  policy::PolicyPtr policy = policy_;
  // Tenant placement: this pool's upstream as the policy has it now.
  const policy::Upstream* where = policy->upstream(upstream_);
  UpstreamLogin up;
  if (where == nullptr) {
    up.sqlstate = std::string(pg::sqlstate::kConnectionFailure);
    up.message = "the upstream \"" + upstream_ + "\" is no longer in the policy";
  } else {
    conn->host = where->settings.upstream_host;
    conn->port = where->settings.upstream_port;
    asio::ssl::context* tls = upstream_ == policy::kDefaultUpstream ? server_.upstream_tls()
                                                                    : server_.upstream_tls_for(where->settings);
    up = co_await login_upstream(conn->stream, tls, where->settings, database_, params);
  }
  if (!*alive) co_return;
  std::string why, code;
  if (!up.ok) {
    why = up.message;
    code = up.sqlstate;
  } else if (!up.leftover.empty() || up.tx_status != 'I') {
    why = "unexpected data after the login";
  } else {
    for (const auto& p : up.parameters) {
      if (p.name == "standard_conforming_strings" && p.value != "on") why = "the server has standard_conforming_strings off";
      if (p.name == "server_encoding" && p.value != "UTF8") why = "the database's server_encoding is " + p.value + ", not UTF8";
    }
  }
  if (why.empty()) {
    QueryAnswer a = co_await run_injected(*conn, read_settings_sql(), policy->limits.max_server_message);
    if (!*alive) co_return;
    if (!a.ok || a.rows.size() != 1 || a.rows[0].size() != pooled_settings().size()) {
      why = "cannot read the session settings: " + a.message;
      code = a.sqlstate;
    } else {
      for (size_t i = 0; i < pooled_settings().size(); ++i) {
        if (a.rows[0][i]) conn->settings[pooled_settings()[i]] = *a.rows[0][i];
      }
    }
  }
  std::vector<pool::Action> actions;
  if (!why.empty()) {
    spdlog::error("pool upstream={} database={} cannot open a server connection: {}", upstream_, database_, why);
    server_.metrics().upstream_failures.fetch_add(1, std::memory_order_relaxed);
    last_open_error_ = why;
    last_open_sqlstate_ = code;
    pool_.open_failed(id, pool::Clock::now(), actions);
    run(actions);
    co_return;
  }
  conn->pid = up.key.pid;
  conn->key = up.key.key;
  conn->opened_at = pool::Clock::now();
  bump(meters_.opened);
  if (!baseline_) baseline_ = Baseline{true, {}, {}, up.parameters, conn->settings};
  spdlog::debug("pool upstream={} database={} opened server connection {} (backend pid {})", upstream_, database_, id, conn->pid);
  conns_[id] = std::move(conn);
  pool_.opened(id, pool::Clock::now(), actions);
  run(actions);
}

asio::awaitable<PoolRuntime::Lease> PoolRuntime::acquire(uint64_t session, std::optional<std::string> tenant) {
  std::shared_ptr<bool> alive = alive_;
  asio::steady_timer wake(ctx_, asio::steady_timer::time_point::max());
  Waiting w{&wake, {}, false};
  std::vector<pool::Action> actions;
  const pool::Clock::time_point since = pool::Clock::now();
  const pool::WaiterId id = pool_.acquire(since, actions, tenant);
  waiting_[id] = &w;
  struct Forget {  // however this coroutine ends (its frame destroyed while waiting too)
    PoolRuntime* self;
    std::shared_ptr<bool> alive;
    pool::WaiterId id;
    Waiting& w;
    ~Forget() {
      if (!*alive || w.done) return;
      self->waiting_.erase(id);
      std::vector<pool::Action> a;
      self->pool_.cancel(id, pool::Clock::now(), a);
    }
  } forget{this, alive, id, w};
  run(actions);
  const bool immediate = w.done;  // an idle connection was there
  if (!w.done) co_await wake.async_wait(kUse);
  if (!*alive || !w.done) co_return Lease{nullptr, std::string(pg::sqlstate::kConnectionFailure), "cancelled"};
  observe_wait(since, immediate);
  if (w.lease.conn) bump(meters_.checkouts);
  else if (w.lease.sqlstate == pg::sqlstate::kTooManyConnections) bump(meters_.wait_timeouts);
  else bump(meters_.wait_failures);
  if (w.lease.conn) {
    w.lease.conn->holder = session;
    lent_to_[w.lease.conn->id] = session;
  }
  co_return w.lease;
}

void PoolRuntime::release(PooledServer* conn, bool reusable) {
  if (conn == nullptr) return;
  conn->holder = 0;
  lent_to_.erase(conn->id);
  if (conn->cancel_sent->load()) reusable = false;  // a late cancel must not hit the next client
  const pool::ServerId id = conn->id;
  if (!reusable) close_as_[id] = conn->cancel_sent->load() ? Closed::kCancel : conn->failed ? Closed::kError : Closed::kDirty;
  std::vector<pool::Action> actions;
  pool_.release(id, reusable, pool::Clock::now(), actions);
  run(actions);
  close_as_.erase(id);
}

asio::awaitable<PoolRuntime::Baseline> PoolRuntime::baseline() {
  if (baseline_) co_return *baseline_;
  Lease l = co_await acquire(0);
  if (l.conn) release(l.conn, true);
  if (baseline_) co_return *baseline_;
  Baseline b;
  b.sqlstate = l.sqlstate.empty() ? std::string(pg::sqlstate::kConnectionFailure) : l.sqlstate;
  b.message = l.message;
  co_return b;
}

}  // namespace rowguard::net
