#pragma once
// Keeps the policy's schema snapshot (policy/schema_snapshot.h) up to date: reads it once at
// start-up (before listening, waiting a bounded time for it), then on a thread of its own
// whenever asked (RELOAD / SIGHUP, DDL by a bypass session) and, while PostgreSQL cannot be
// read, again with a bounded backoff (1 s doubling to 30 s). The read is blocking libpq
// (proxy/tools/schema_loader.h) and never runs on a worker's io_context; request() only takes
// a mutex. Each successful read is handed to `install`, which makes a new Policy version.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "policy/policy.h"
#include "policy/schema_snapshot.h"

namespace rowguard::net {

struct SchemaStatus {
  std::string last_error;        // of the last read; "" when it succeeded
  int64_t last_attempt_us = 0;   // unix time of the last read attempt
  int64_t loaded_at_us = 0;      // unix time of the last successful read, 0: never
  uint64_t reads = 0;            // successful reads
  uint64_t failures = 0;         // failed reads
  std::string last_reason;       // why the last read was made
};

class SchemaRefresher {
 public:
  using Snapshot = std::shared_ptr<const policy::SchemaSnapshot>;
  // Reads `policy`'s snapshot (blocking); tests may pass their own.
  using Read = std::function<policy::SchemaSnapshot(const policy::Policy&)>;

  SchemaRefresher(std::function<policy::PolicyPtr()> current, std::function<void(Snapshot)> install,
                  Read read = {});
  ~SchemaRefresher();  // stops the thread (waits for a read under way)
  SchemaRefresher(const SchemaRefresher&) = delete;
  SchemaRefresher& operator=(const SchemaRefresher&) = delete;

  // Starts the background thread with a first read and waits for it (at most a few seconds).
  void start();
  // Schedules a read soon (coalesced with one already pending). Never blocks on I/O.
  void request(std::string reason);
  SchemaStatus status() const;

 private:
  void read_once(const std::string& reason);
  void loop();

  std::function<policy::PolicyPtr()> current_;
  std::function<void(Snapshot)> install_;
  Read read_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool pending_ = false;
  std::string pending_reason_;
  int backoff_step_ = 0;  // consecutive failures
  uint64_t completed_ = 0;  // reads finished (installed or failed)
  std::chrono::steady_clock::time_point retry_at_{};
  bool retry_ = false;
  SchemaStatus status_;
  std::string last_report_;  // the warnings last logged, to log them again only when they change
  std::thread thread_;
};

}  // namespace rowguard::net
