// Client registry and PAUSE gate for the admin console (see clients.h).
#include "proxy/net/clients.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>

namespace rowguard::net {
namespace asio = boost::asio;

namespace {
constexpr auto kUse = asio::as_tuple(asio::use_awaitable);

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

ClientInfo::ClientInfo(uint64_t id, std::string peer) : id_(id), peer_(std::move(peer)), connected_at_us_(now_us()) {}

void ClientInfo::set_login(std::string user, std::optional<std::string> tenant, Kind kind) {
  std::lock_guard lock(mu_);
  user_ = std::move(user);
  tenant_ = std::move(tenant);
  kind_ = kind;
}

void ClientInfo::set_upstream(std::string server, std::string local, std::string database, int32_t backend_pid,
                              bool tls, std::string name) {
  std::lock_guard lock(mu_);
  upstream_ = true;
  upstream_name_ = std::move(name);
  server_ = std::move(server);
  local_ = std::move(local);
  database_ = std::move(database);
  backend_pid_ = backend_pid;
  upstream_tls_ = tls;
}

admin::ClientRow ClientInfo::snapshot() const {
  admin::ClientRow r;
  r.id = id_;
  r.client = peer_;
  r.connected_at_us = connected_at_us_;
  std::lock_guard lock(mu_);
  r.user = user_;
  r.tenant = tenant_;
  r.upstream = upstream_;
  r.upstream_addr = server_;
  r.upstream_name = upstream_name_;
  r.upstream_local = local_;
  r.database = database_;
  r.backend_pid = backend_pid_;
  r.upstream_tls = upstream_tls_;
  switch (kind_) {
    case Kind::kLogin:
      r.kind = "login";
      r.state = "login";
      break;
    case Kind::kBypass:
      r.kind = "bypass";
      r.state = "relay";  // bytes relayed unchanged: rowguard does not track its transactions
      break;
    case Kind::kConsole:
      r.kind = "console";
      r.state = "console";
      break;
    case Kind::kTenant:
      r.kind = "tenant";
      r.tx = tx_.load();
      r.statements = statements_.load(std::memory_order_relaxed);
      r.prepared = prepared_.load(std::memory_order_relaxed);
      r.prepared_bytes = prepared_bytes_.load(std::memory_order_relaxed);
      r.portals = portals_.load(std::memory_order_relaxed);
      r.state = waiting_.load() ? "paused" : busy_.load() ? "active" : "idle";
      break;
  }
  return r;
}

bool ClientInfo::blocks_pause() const {
  {
    std::lock_guard lock(mu_);
    if (kind_ != Kind::kTenant) return false;
  }
  return !waiting_.load() && busy_.load();
}

void ClientRegistry::add(std::shared_ptr<ClientInfo> info) {
  std::lock_guard lock(mu_);
  uint64_t id = info->id();
  clients_[id] = std::move(info);
}

void ClientRegistry::remove(uint64_t id) {
  std::lock_guard lock(mu_);
  clients_.erase(id);
}

std::vector<admin::ClientRow> ClientRegistry::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<admin::ClientRow> out;
  out.reserve(clients_.size());
  for (const auto& [id, info] : clients_) out.push_back(info->snapshot());
  return out;
}

size_t ClientRegistry::blocking_pause() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [id, info] : clients_) n += info->blocks_pause() ? 1 : 0;
  return n;
}

asio::awaitable<void> PauseGate::at_boundary(ClientInfo& info) {
  // Claim "busy" before looking at the flag (both sequentially consistent): a PAUSE that set the
  // flag either sees this session busy and waits for it, or this session sees the flag and waits.
  info.busy_.store(true);
  if (!paused_.load()) co_return;
  info.waiting_.store(true);
  info.busy_.store(false);
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (paused_.load()) {
    timer.expires_after(std::chrono::milliseconds(20));
    co_await timer.async_wait(kUse);
  }
  info.busy_.store(true);
  info.waiting_.store(false);
}

}  // namespace rowguard::net
