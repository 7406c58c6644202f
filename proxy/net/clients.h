#pragma once
// What the admin console knows about client connections: a registry of per-connection info
// (written by the connection's worker thread, read by a console on any thread) and the PAUSE
// gate that tenant sessions pass at each transaction boundary.
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "proxy/net/admin_format.h"

namespace rowguard::net {

class ClientInfo {
 public:
  enum class Kind { kLogin, kTenant, kBypass, kConsole };

  ClientInfo(uint64_t id, std::string peer);

  // After authentication: who it is and what kind of session it became.
  void set_login(std::string user, std::optional<std::string> tenant, Kind kind);
  // After the upstream login.
  // `name`: the upstream's name in the policy ("default": [proxy] upstream; tenant placement).
  void set_upstream(std::string server, std::string local, std::string database, int32_t backend_pid, bool tls,
                    std::string name = "default");
  // Transaction pooling: the backend of the server connection held now (0: none).
  void set_backend_pid(int32_t pid) {
    std::lock_guard lock(mu_);
    backend_pid_ = pid;
  }
  // At each ReadyForQuery relayed to the client: its transaction status, and whether more
  // batches are still in flight.
  void set_tx(char tx, bool in_flight) {
    tx_.store(tx);
    busy_.store(in_flight || tx != 'I');
  }
  void count_statement() { statements_.fetch_add(1, std::memory_order_relaxed); }
  // Tenant sessions, whenever the server has answered everything: its prepared statements.
  void set_prepared(uint64_t count, uint64_t bytes, uint64_t portals) {
    prepared_.store(count, std::memory_order_relaxed);
    prepared_bytes_.store(bytes, std::memory_order_relaxed);
    portals_.store(portals, std::memory_order_relaxed);
  }

  uint64_t id() const { return id_; }
  admin::ClientRow snapshot() const;
  // A tenant session that could start a new statement right now (neither paused, nor in a
  // transaction, nor with a statement in flight) would not stop a PAUSE from completing.
  bool blocks_pause() const;

 private:
  friend class PauseGate;
  const uint64_t id_;
  const std::string peer_;
  const int64_t connected_at_us_;
  mutable std::mutex mu_;
  std::string user_;
  std::optional<std::string> tenant_;
  Kind kind_ = Kind::kLogin;
  bool upstream_ = false;
  std::string server_, local_, database_, upstream_name_;
  int32_t backend_pid_ = 0;
  bool upstream_tls_ = false;
  std::atomic<char> tx_{'I'};
  std::atomic<bool> busy_{false};     // a statement or transaction is under way
  std::atomic<bool> waiting_{false};  // held by PAUSE
  std::atomic<uint64_t> statements_{0};
  std::atomic<uint64_t> prepared_{0}, prepared_bytes_{0}, portals_{0};
};

class ClientRegistry {
 public:
  void add(std::shared_ptr<ClientInfo> info);
  void remove(uint64_t id);
  std::vector<admin::ClientRow> snapshot() const;  // by id
  // How many tenant sessions still have a transaction or statement under way (PAUSE waits for 0).
  size_t blocking_pause() const;

 private:
  mutable std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<ClientInfo>> clients_;
};

// PAUSE / RESUME. A tenant session calls at_boundary() before handling a client message when it
// is between transactions with nothing in flight; while paused it waits there.
class PauseGate {
 public:
  bool paused() const { return paused_.load(); }
  void pause() { paused_.store(true); }
  // Returns false when it was not paused.
  bool resume() { return paused_.exchange(false); }

  boost::asio::awaitable<void> at_boundary(ClientInfo& info);

 private:
  std::atomic<bool> paused_{false};
};

}  // namespace rowguard::net
