#pragma once
// The audit trail: one JSON line per denial (and per statement with mode = "all"), written by
// spdlog's async logger so the session never waits on the disk; when the queue is full the
// oldest lines are dropped (counted), and a full disk does not stop traffic.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "policy/policy.h"

namespace spdlog {
class logger;
}

namespace rowguard::net {

struct AuditEvent {
  std::string user;
  std::string tenant;  // "" for bypass users
  std::string client;
  uint64_t session = 0;
  std::string statement;
  bool allowed = false;
  std::string reason;  // the denial, when !allowed
  // The statement's fingerprint and (with mask_literals) normalized text when the caller has
  // them (the worker's rewrite cache keeps them with the statement's entry:
  // RewriteCache::audit_text); null: record() parses the statement for them.
  const std::string* fingerprint = nullptr;
  const std::string* normalized = nullptr;
};

class AuditLog {
 public:
  // nullptr when [audit] is not configured. Throws std::exception when the file cannot be opened.
  static std::unique_ptr<AuditLog> open(const policy::AuditSettings& settings);
  ~AuditLog();

  bool wants(bool allowed) const { return !allowed || settings_.mode == policy::AuditMode::kAll; }
  bool masks_literals() const { return settings_.mask_literals; }
  void record(const AuditEvent& e);
  uint64_t errors() const { return errors_.load(); }

 private:
  explicit AuditLog(policy::AuditSettings settings);
  policy::AuditSettings settings_;
  std::shared_ptr<spdlog::logger> logger_;
  std::shared_ptr<std::atomic<uint64_t>> error_count_;
  std::atomic<uint64_t> errors_{0};
};

std::string json_escape(std::string_view s);

}  // namespace rowguard::net
