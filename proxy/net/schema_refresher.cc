// See schema_refresher.h.
#include "proxy/net/schema_refresher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "policy/schema_report.h"
#include "proxy/tools/schema_loader.h"

namespace rowguard::net {
namespace {

constexpr int kConnectTimeoutSeconds = 5;
// How long start-up waits for the first read before listening without it.
constexpr std::chrono::seconds kStartupWait{5};
constexpr int kMaxBackoffSeconds = 30;

int64_t unix_now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "" when the tables rowguard reads are the same on both, else the first difference found.
std::string schema_difference(const policy::SchemaSnapshot& a, const policy::SchemaSnapshot& b) {
  for (const auto& [name, t] : a.tables) {
    const policy::TableInfo* other = b.table(name);
    if (other == nullptr) return "table " + name.schema + "." + name.name + " is on one only";
    if (!(t == *other)) return "table " + name.schema + "." + name.name + " differs";
  }
  for (const auto& [name, t] : b.tables) {
    if (a.table(name) == nullptr) return "table " + name.schema + "." + name.name + " is on one only";
  }
  return "";
}

policy::SchemaSnapshot read_upstream(const policy::Policy& p) {
  if (!p.proxy.upstream_database) {
    // Sessions then reach the database their client names, which may differ from any one
    // rowguard could read: the snapshot stays unknown and what needs it is refused.
    policy::SchemaSnapshot s;
    s.read_at_us = unix_now_us();
    s.error = "[proxy] upstream_database is not set, so rowguard cannot know which database's schema "
              "its sessions use";
    return s;
  }
  // Tenant placement: every upstream that holds tenants ("default", which also takes every tenant
  // not placed elsewhere, and each one a placement names) is read. The rewriter has one snapshot,
  // so they must agree: a DDL run on one primary only makes them differ, and then the snapshot is
  // not loaded (fail closed: what needs the schema is refused, SHOW SCHEMA says why) until the
  // DBA runs it on the others.
  std::set<std::string> names = {std::string(policy::kDefaultUpstream)};
  for (const auto& [tenant, name] : p.placement) names.insert(name);
  policy::SchemaSnapshot first;
  std::string first_name;
  for (const std::string& name : names) {
    const policy::Upstream* u = p.upstream(name);
    const policy::ProxySettings& settings = u ? u->settings : p.proxy;
    if (!settings.upstream_database) {
      policy::SchemaSnapshot s;
      s.read_at_us = unix_now_us();
      s.error = "[[upstreams]] \"" + name + "\" has no database (nor [proxy] upstream_database), so rowguard "
                "cannot know which database's schema its sessions use";
      return s;
    }
    policy::SchemaSnapshot s = tools::read_schema(p, tools::upstream_params(settings, kConnectTimeoutSeconds));
    if (!s.loaded) {
      if (names.size() > 1) s.error = "upstream \"" + name + "\": " + s.error;
      return s;
    }
    if (first_name.empty()) {
      first = std::move(s);
      first_name = name;
      continue;
    }
    if (std::string diff = schema_difference(first, s); !diff.empty()) {
      policy::SchemaSnapshot failed;
      failed.read_at_us = unix_now_us();
      failed.error = "the schemas of upstreams \"" + first_name + "\" and \"" + name + "\" differ (" + diff +
                     "); run the same DDL on every upstream that holds tenants";
      failed.placement_mismatch = true;
      return failed;
    }
    // A function name on any upstream counts (the stricter reading of attribute notation).
    first.function_names.insert(s.function_names.begin(), s.function_names.end());
  }
  return first;
}

}  // namespace

SchemaRefresher::SchemaRefresher(std::function<policy::PolicyPtr()> current, std::function<void(Snapshot)> install,
                                 Read read)
    : current_(std::move(current)), install_(std::move(install)), read_(read ? std::move(read) : Read(read_upstream)) {}

SchemaRefresher::~SchemaRefresher() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SchemaRefresher::start() {
  // The first read runs on the background thread; start() waits for it a bounded time, so a
  // PostgreSQL that accepts connections but does not answer cannot keep rowguard from listening.
  {
    std::lock_guard lock(mu_);
    pending_ = true;
    pending_reason_ = "start-up";
  }
  thread_ = std::thread([this] { loop(); });
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, kStartupWait, [this] { return completed_ > 0; })) {
    spdlog::warn("schema snapshot: the start-up read has not finished after {} s; listening without it "
                 "(statements that need the schema are refused until it arrives)",
                 std::chrono::duration_cast<std::chrono::seconds>(kStartupWait).count());
  }
}

void SchemaRefresher::request(std::string reason) {
  {
    std::lock_guard lock(mu_);
    // Requests that arrive while one waits are served by one read, named after all of them.
    if (!pending_) {
      pending_reason_ = std::move(reason);
    } else if (("," + pending_reason_ + ",").find("," + reason + ",") == std::string::npos) {
      pending_reason_ += "," + reason;
    }
    pending_ = true;
  }
  cv_.notify_all();
}

SchemaStatus SchemaRefresher::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

void SchemaRefresher::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (retry_) {
      cv_.wait_until(lock, retry_at_, [this] { return stop_ || pending_; });
    } else {
      cv_.wait(lock, [this] { return stop_ || pending_; });
    }
    if (stop_) return;
    std::string reason = pending_ ? pending_reason_ : std::string("retry");
    pending_ = false;
    retry_ = false;
    lock.unlock();
    read_once(reason);
    lock.lock();
    ++completed_;
    cv_.notify_all();
  }
}

void SchemaRefresher::read_once(const std::string& reason) {
  policy::PolicyPtr p = current_();
  const auto started = std::chrono::steady_clock::now();
  auto snapshot = std::make_shared<policy::SchemaSnapshot>(read_(*p));
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
  if (!snapshot->loaded) {
    int delay = 0;
    {
      std::lock_guard lock(mu_);
      status_.last_error = snapshot->error;
      status_.last_attempt_us = snapshot->read_at_us;
      status_.last_reason = reason;
      ++status_.failures;
      delay = std::min(kMaxBackoffSeconds, 1 << std::min(backoff_step_, 5));
      ++backoff_step_;
      retry_ = true;
      retry_at_ = std::chrono::steady_clock::now() + std::chrono::seconds(delay);
    }
    const bool known = p->schema && p->schema->loaded;
    spdlog::error("schema snapshot ({}): {}; {}; retrying in {} s", reason, snapshot->error,
                  known ? "keeping the previous snapshot"
                        : "until it is read, INSERT ... ON CONFLICT and other statements that need the schema "
                          "are refused",
                  delay);
    // Until a first snapshot is read, the policy carries the failure (SHOW SCHEMA shows it); so
    // does it when the upstreams of a placement disagree (the previous snapshot may be wrong for some).
    if (!known || snapshot->placement_mismatch) install_(snapshot);
    return;
  }
  {
    std::lock_guard lock(mu_);
    status_.last_error.clear();
    status_.last_attempt_us = snapshot->read_at_us;
    status_.loaded_at_us = snapshot->read_at_us;
    status_.last_reason = reason;
    ++status_.reads;
    backoff_step_ = 0;
  }
  install_(snapshot);
  size_t keys = 0;
  for (const auto& [name, t] : snapshot->tables) keys += t.unique_keys.size();
  spdlog::info("schema snapshot ({}): {} tables, {} unique keys, {} function names read in {} ms", reason,
               snapshot->tables.size(), keys, snapshot->function_names.size(), ms);
  const policy::SchemaReport report = policy::report_schema(*p, *snapshot);
  std::string text;
  for (const auto& e : report.errors) text += e + "\n";
  for (const auto& w : report.warnings) text += w + "\n";
  bool changed = false;
  {
    std::lock_guard lock(mu_);
    changed = text != last_report_;
    last_report_ = text;
  }
  if (!changed) return;
  for (const auto& e : report.errors) spdlog::warn("schema: {} (policy {})", e, p->source);
  for (const auto& w : report.warnings) spdlog::warn("schema: {}", w);
}

}  // namespace rowguard::net
