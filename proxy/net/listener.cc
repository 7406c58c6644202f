#include "proxy/net/listener.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proxy/net/server.h"
#include "proxy/net/upstream.h"
#include "proxy/protocol/codec.h"

namespace rowguard::net {
namespace asio = boost::asio;

namespace {

constexpr auto kFirstBackoff = std::chrono::milliseconds(100);
constexpr auto kMaxBackoff = std::chrono::seconds(10);
constexpr auto kAckWait = std::chrono::seconds(10);  // a LISTEN's answer, at most
constexpr size_t kMaxHolders = 65536;  // server pids remembered (forgotten all at once past it)

struct Holders {
  std::mutex mu;
  std::unordered_map<int32_t, std::pair<std::string, int32_t>> by_pid;  // server pid -> (tenant, client pid)
};
Holders& holders() {
  static Holders h;
  return h;
}

}  // namespace

std::string quote_channel(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

void note_server_holder(int32_t server_pid, const std::string& tenant, int32_t client_pid) {
  Holders& h = holders();
  std::lock_guard lock(h.mu);
  if (h.by_pid.size() >= kMaxHolders && !h.by_pid.contains(server_pid)) h.by_pid.clear();
  h.by_pid[server_pid] = {tenant, client_pid};
}

std::optional<int32_t> server_holder(int32_t server_pid, const std::string& tenant) {
  Holders& h = holders();
  std::lock_guard lock(h.mu);
  auto it = h.by_pid.find(server_pid);
  if (it == h.by_pid.end() || it->second.first != tenant) return std::nullopt;
  return it->second.second;
}

NotificationListener::NotificationListener(Server& server, asio::io_context& ctx, std::string upstream,
                                           std::string database, policy::PolicyPtr policy)
    : server_(server),
      ctx_(ctx),
      upstream_(std::move(upstream)),
      database_(std::move(database)),
      policy_(std::move(policy)),
      backoff_timer_(ctx) {}

NotificationListener::~NotificationListener() {
  *alive_ = false;
  backoff_timer_.cancel();
  if (stream_) {
    boost::system::error_code ec;
    stream_->socket().close(ec);
  }
  release_acks();
  for (auto& waiter : connect_waiters_) waiter->timer.cancel();
}

asio::awaitable<void> NotificationListener::listen(NotificationSink* sink, std::string server_channel) {
  std::set<NotificationSink*>& sinks = channels_[server_channel];
  const bool first = sinks.empty();
  sinks.insert(sink);
  if (!started_) {
    started_ = true;  // the connection is opened when the first client listens
    asio::co_spawn(ctx_, run(), asio::detached);
  }
  if (!first) co_return;
  // Bounded: a listener that cannot connect does not hold the client (it LISTENs once back).
  std::shared_ptr<bool> alive = alive_;
  const auto deadline = std::chrono::steady_clock::now() + kAckWait;
  auto ack = std::make_shared<Ack>(ctx_);
  if (!stream_) {
    connect_waiters_.push_back(ack);
    ack->timer.expires_at(deadline);
    co_await ack->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (!*alive || !stream_ || !ack->done || !channels_.contains(server_channel)) co_return;
    ack = std::make_shared<Ack>(ctx_);
  }
  send("LISTEN " + quote_channel(server_channel), ack);
  ack->timer.expires_at(deadline);
  co_await ack->timer.async_wait(asio::as_tuple(asio::use_awaitable));
}

void NotificationListener::unlisten(NotificationSink* sink, const std::string& server_channel) {
  auto it = channels_.find(server_channel);
  if (it == channels_.end()) return;
  it->second.erase(sink);
  if (!it->second.empty()) return;
  channels_.erase(it);
  if (stream_) send("UNLISTEN " + quote_channel(server_channel), nullptr);
}

void NotificationListener::send(const std::string& sql, std::shared_ptr<Ack> ack) {
  protocol::append_query(outbox_, sql);
  acks_.push_back(std::move(ack));
  if (!writing_ && stream_) {
    writing_ = true;
    asio::co_spawn(ctx_, writer(), asio::detached);
  }
}

// The only writer of the listener connection: one write at a time, in order.
asio::awaitable<void> NotificationListener::writer() {
  std::shared_ptr<bool> alive = alive_;
  while (!outbox_.empty() && stream_) {
    std::shared_ptr<Stream> stream = stream_;  // (kept alive while written to)
    std::string out = std::move(outbox_);
    outbox_.clear();
    auto [ec, n] = co_await stream->write(asio::buffer(out));
    if (!*alive) co_return;
    if (ec) break;  // the read loop sees the connection end (and LISTENs everything again)
  }
  writing_ = false;
}

void NotificationListener::release_acks() {
  for (auto& ack : acks_) {
    if (!ack) continue;
    ack->done = true;
    ack->timer.cancel();
  }
  acks_.clear();
}

void NotificationListener::dispatch(std::string_view body) {
  // int32 sender pid, channel\0, payload\0
  if (body.size() < 4) return;
  const auto* b = reinterpret_cast<const unsigned char*>(body.data());
  const int32_t pid = static_cast<int32_t>((uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3]);
  std::string_view rest = body.substr(4);
  const size_t nul = rest.find('\0');
  if (nul == std::string_view::npos) return;
  const std::string channel(rest.substr(0, nul));
  std::string_view payload = rest.substr(nul + 1);
  if (!payload.empty() && payload.back() == '\0') payload.remove_suffix(1);
  auto it = channels_.find(channel);
  if (it == channels_.end()) return;
  // A copy: a sink's notified() only queues, but the set must not move under the loop.
  const std::vector<NotificationSink*> sinks(it->second.begin(), it->second.end());
  for (NotificationSink* s : sinks) s->notified(pid, channel, payload);
}

asio::awaitable<void> NotificationListener::run() {
  std::shared_ptr<bool> alive = alive_;
  auto backoff = std::chrono::duration_cast<std::chrono::milliseconds>(kFirstBackoff);
  for (;;) {
    auto stream = std::make_shared<Stream>(asio::ip::tcp::socket(ctx_));
    std::vector<std::pair<std::string, std::string>> params = {{"application_name", "rowguard listener"}};
    policy::PolicyPtr policy = policy_;
    // Tenant placement: the upstream of this listener's pool as the policy has it now.
    UpstreamLogin up;
    if (const policy::Upstream* where = policy->upstream(upstream_); where == nullptr) {
      up.message = "the upstream \"" + upstream_ + "\" is no longer in the policy";
    } else {
      asio::ssl::context* tls = upstream_ == policy::kDefaultUpstream ? server_.upstream_tls()
                                                                      : server_.upstream_tls_for(where->settings);
      up = co_await login_upstream(*stream, tls, where->settings, database_, params);
    }
    if (!*alive) co_return;
    if (!up.ok || up.tx_status != 'I') {
      spdlog::error("listener database={} cannot connect: {} (retrying in {} ms)", database_,
                    up.ok ? "unexpected state after the login" : up.message, backoff.count());
      server_.metrics().upstream_failures.fetch_add(1, std::memory_order_relaxed);
      backoff_timer_.expires_after(backoff);
      co_await backoff_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
      if (!*alive) co_return;
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxBackoff);
      continue;
    }
    backoff = kFirstBackoff;
    stream_ = stream;
    outbox_.clear();
    acks_.clear();
    std::string sql;
    for (const auto& [channel, sinks] : channels_) sql += "LISTEN " + quote_channel(channel) + ";";
    if (!sql.empty()) send(sql, nullptr);
    for (auto& waiter : connect_waiters_) {  // (their own LISTEN follows this one)
      waiter->done = true;
      waiter->timer.cancel();
    }
    connect_waiters_.clear();
    spdlog::info("listener database={} connected (backend pid {}), {} channel(s)", database_, up.key.pid,
                 channels_.size());
    std::string buf = std::move(up.leftover);
    const size_t max = policy->limits.max_server_message;
    bool lost = false;
    while (!lost) {
      auto r = protocol::decode_frame(buf, max);
      if (r.status == protocol::DecodeStatus::kNeedMore) {
        const size_t old = buf.size();
        buf.resize(old + 16 * 1024);
        auto [ec, n] = co_await stream->read_some(asio::buffer(buf.data() + old, 16 * 1024));
        if (!*alive) co_return;
        buf.resize(old + (ec ? 0 : n));
        if (ec) lost = true;
        continue;
      }
      if (r.status == protocol::DecodeStatus::kMalformed || r.too_long) {
        spdlog::error("listener database={} malformed message from the server: {}", database_, r.error);
        break;
      }
      const protocol::Frame f = r.frame;
      if (f.tag == protocol::be::kNotificationResponse) {
        dispatch(f.body);
      } else if (f.tag == protocol::be::kReadyForQuery) {
        if (!acks_.empty()) {
          if (auto ack = acks_.front()) {
            ack->done = true;
            ack->timer.cancel();
          }
          acks_.pop_front();
        }
      } else if (f.tag == protocol::be::kErrorResponse) {
        auto e = protocol::parse_error_fields(f.body);
        spdlog::error("listener database={} server error: {}", database_, e ? e->get('M') : std::string("?"));
        if (e && (e->get('V') == "FATAL" || e->get('S') == "FATAL" || e->get('V') == "PANIC")) break;
      }
      buf.erase(0, f.size);
    }
    // Lost: what was notified meanwhile is gone for good.
    stream_.reset();
    boost::system::error_code ec;
    stream->socket().close(ec);
    release_acks();
    outbox_.clear();
    server_.metrics().listener_disconnects.fetch_add(1, std::memory_order_relaxed);
    spdlog::error("listener database={} lost its connection with {} channel(s) listened on: notifications sent "
                  "until it is back are lost; reconnecting in {} ms",
                  database_, channels_.size(), backoff.count());
    backoff_timer_.expires_after(backoff);
    co_await backoff_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    if (!*alive) co_return;
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxBackoff);
  }
}

}  // namespace rowguard::net
