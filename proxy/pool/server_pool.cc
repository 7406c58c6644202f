#include "proxy/pool/server_pool.h"

#include <algorithm>
#include <cassert>

namespace rowguard::pool {

ServerPool::ServerPool(PoolLimits limits) : limits_(limits) {}

bool ServerPool::expired(const Server& s, Clock::time_point now) const {
  return limits_.server_lifetime > Duration::zero() && now - s.born >= limits_.server_lifetime;
}

size_t ServerPool::tenant_cap() const {
  const size_t size = limits_.size;
  if (limits_.max_tenant_share >= 1.0 || size < 2) return size;
  const auto share = static_cast<size_t>(limits_.max_tenant_share * static_cast<double>(size));
  return std::clamp<size_t>(share, 1, size - 1);
}

bool ServerPool::at_share(const std::optional<std::string>& tenant) const {
  if (!tenant) return false;
  auto it = held_.find(*tenant);
  return it != held_.end() && it->second >= tenant_cap();
}

void ServerPool::unlend(Server& s) {
  --lent_;
  if (!s.tenant) return;
  auto it = held_.find(*s.tenant);
  if (it != held_.end() && --it->second == 0) held_.erase(it);
  s.tenant.reset();
}

void ServerPool::forget(std::unordered_map<ServerId, Server>::iterator it) {
  switch (it->second.state) {
    case State::kIdle: idle_.erase(std::find(idle_.begin(), idle_.end(), it->first)); break;
    case State::kLent: unlend(it->second); break;
    case State::kOpening: --opening_; break;
  }
  servers_.erase(it);
  ++counters_.closed;
}

void ServerPool::close(ServerId id, std::vector<Action>& out) {
  auto it = servers_.find(id);
  if (it == servers_.end()) return;
  forget(it);
  out.push_back({Action::Kind::kClose, id, 0});
}

void ServerPool::make_idle(ServerId id, Clock::time_point now, std::vector<Action>& out) {
  Server& s = servers_.at(id);
  s.state = State::kIdle;
  s.idle_since = now;
  idle_.push_back(id);
  if (total() > limits_.size || expired(s, now)) close(id, out);
}

void ServerPool::balance(Clock::time_point now, std::vector<Action>& out) {
  // The oldest waiter whose tenant is under its share gets the most recently used connection.
  auto next = waiters_.begin();
  while (!idle_.empty()) {
    while (next != waiters_.end() && at_share(next->tenant)) ++next;
    if (next == waiters_.end()) break;
    const ServerId id = idle_.back();
    Server& s = servers_.at(id);
    if (expired(s, now)) {
      close(id, out);
      continue;
    }
    idle_.pop_back();
    s.state = State::kLent;
    s.tenant = next->tenant;
    if (s.tenant) ++held_[*s.tenant];
    ++lent_;
    ++counters_.grants;
    out.push_back({Action::Kind::kGrant, id, next->id});
    next = waiters_.erase(next);
  }
  if (retry_at_ && now < *retry_at_) return;
  // Open for the waiters that could take a connection (up to their tenants' shares).
  size_t servable = 0;
  {
    std::unordered_map<std::string, size_t> would_hold;
    const size_t cap = tenant_cap();
    for (const Waiter& w : waiters_) {
      if (!w.tenant) {
        ++servable;
        continue;
      }
      auto [it, fresh] = would_hold.try_emplace(*w.tenant, 0);
      if (fresh) {
        auto h = held_.find(*w.tenant);
        it->second = h == held_.end() ? 0 : h->second;
      }
      size_t& n = it->second;
      if (n < cap) {
        ++n;
        ++servable;
      }
    }
  }
  const size_t for_waiters = servable > opening_ ? servable - opening_ : 0;
  const size_t for_minimum = limits_.min_size > total() ? limits_.min_size - total() : 0;
  const size_t room = limits_.size > total() ? limits_.size - total() : 0;
  for (size_t n = std::min(std::max(for_waiters, for_minimum), room); n > 0; --n) {
    const ServerId id = next_server_++;
    servers_.emplace(id, Server{});
    ++opening_;
    out.push_back({Action::Kind::kOpen, id, 0});
  }
}

WaiterId ServerPool::acquire(Clock::time_point now, std::vector<Action>& out,
                             const std::optional<std::string>& tenant) {
  const WaiterId id = next_waiter_++;
  waiters_.push_back({id, now, tenant});
  balance(now, out);
  return id;
}

void ServerPool::cancel(WaiterId waiter, Clock::time_point, std::vector<Action>&) {
  auto it = std::find_if(waiters_.begin(), waiters_.end(), [&](const Waiter& w) { return w.id == waiter; });
  if (it != waiters_.end()) waiters_.erase(it);
}

void ServerPool::release(ServerId server, bool reusable, Clock::time_point now, std::vector<Action>& out) {
  auto it = servers_.find(server);
  if (it == servers_.end() || it->second.state != State::kLent) return;
  if (reusable) {
    unlend(it->second);
    make_idle(server, now, out);
  } else {
    close(server, out);  // forget() counts it out of lent_
  }
  balance(now, out);
}

void ServerPool::opened(ServerId server, Clock::time_point now, std::vector<Action>& out) {
  auto it = servers_.find(server);
  if (it == servers_.end() || it->second.state != State::kOpening) return;
  --opening_;
  ++counters_.opened;
  it->second.born = now;
  retry_at_.reset();
  make_idle(server, now, out);
  balance(now, out);
}

void ServerPool::open_failed(ServerId server, Clock::time_point now, std::vector<Action>& out) {
  auto it = servers_.find(server);
  if (it == servers_.end() || it->second.state != State::kOpening) return;
  --opening_;
  ++counters_.open_failures;
  servers_.erase(it);
  retry_at_ = now + limits_.open_retry;
  if (total() == 0) {
    // Nothing lent, idle or being opened could ever serve the waiters: fail them now rather
    // than let them sit out query_wait_timeout against a server that refuses connections.
    for (const Waiter& w : waiters_) out.push_back({Action::Kind::kFailed, 0, w.id});
    waiters_.clear();
  }
}

void ServerPool::lost(ServerId server, Clock::time_point now, std::vector<Action>& out) {
  auto it = servers_.find(server);
  if (it == servers_.end()) return;
  forget(it);
  balance(now, out);
}

void ServerPool::tick(Clock::time_point now, std::vector<Action>& out) {
  if (limits_.query_wait_timeout > Duration::zero()) {
    while (!waiters_.empty() && now - waiters_.front().since >= limits_.query_wait_timeout) {
      out.push_back({Action::Kind::kTimedOut, 0, waiters_.front().id});
      ++counters_.timed_out;
      waiters_.pop_front();
    }
  }
  // Least recently used first (the front of idle_), so the warm set survives.
  std::vector<ServerId> to_close;
  size_t remaining = total();
  for (ServerId id : idle_) {
    const Server& s = servers_.at(id);
    const bool idle_too_long = limits_.server_idle_timeout > Duration::zero() &&
                               now - s.idle_since >= limits_.server_idle_timeout && remaining > limits_.min_size;
    if (expired(s, now) || idle_too_long) {
      to_close.push_back(id);
      --remaining;
    }
  }
  for (ServerId id : to_close) close(id, out);
  balance(now, out);
}

std::optional<Clock::time_point> ServerPool::next_deadline() const {
  std::optional<Clock::time_point> next;
  auto consider = [&](Clock::time_point t) {
    if (!next || t < *next) next = t;
  };
  if (!waiters_.empty() && limits_.query_wait_timeout > Duration::zero())
    consider(waiters_.front().since + limits_.query_wait_timeout);
  for (ServerId id : idle_) {
    const Server& s = servers_.at(id);
    if (limits_.server_lifetime > Duration::zero()) consider(s.born + limits_.server_lifetime);
    if (limits_.server_idle_timeout > Duration::zero() && total() > limits_.min_size)
      consider(s.idle_since + limits_.server_idle_timeout);
  }
  const bool needs_open = waiters_.size() > opening_ || total() < limits_.min_size;
  if (retry_at_ && needs_open && total() < limits_.size) consider(*retry_at_);
  return next;
}

void ServerPool::set_limits(const PoolLimits& limits, Clock::time_point now, std::vector<Action>& out) {
  limits_ = limits;
  while (total() > limits_.size && !idle_.empty()) close(idle_.front(), out);
  balance(now, out);
}

PoolStats ServerPool::stats(Clock::time_point now) const {
  PoolStats s = counters_;
  s.idle = idle_.size();
  s.lent = lent_;
  s.opening = opening_;
  s.waiting = waiters_.size();
  for (const Waiter& w : waiters_) s.waiting_at_share += at_share(w.tenant) ? 1 : 0;
  s.longest_wait = waiters_.empty() ? Duration::zero() : now - waiters_.front().since;
  return s;
}

}  // namespace rowguard::pool
