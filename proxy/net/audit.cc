// Audit log lines (JSON) through an spdlog async file logger.
#include "proxy/net/audit.h"

#include <spdlog/async.h>
#include <spdlog/async_logger.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>

#include "proxy/net/metrics.h"
#include "sqlrewrite/pg_query_api.h"

namespace rowguard::net {

std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

AuditLog::AuditLog(policy::AuditSettings settings) : settings_(std::move(settings)) {}

AuditLog::~AuditLog() {
  if (logger_) logger_->flush();
}

std::unique_ptr<AuditLog> AuditLog::open(const policy::AuditSettings& settings) {
  if (settings.file.empty()) return nullptr;
  std::unique_ptr<AuditLog> log(new AuditLog(settings));
  spdlog::init_thread_pool(16384, 1);
  auto sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(settings.file);
  log->logger_ = std::make_shared<spdlog::async_logger>("audit", sink, spdlog::thread_pool(),
                                                        spdlog::async_overflow_policy::overrun_oldest);
  log->logger_->set_pattern("%v");
  log->logger_->set_level(spdlog::level::info);
  log->logger_->flush_on(spdlog::level::info);
  auto* errors = &log->errors_;
  log->logger_->set_error_handler([errors](const std::string& msg) {
    if (errors->fetch_add(1) % 1000 == 0) spdlog::error("audit log write failed (traffic continues): {}", msg);
  });
  return log;
}

void AuditLog::record(const AuditEvent& e) {
  using namespace std::chrono;
  std::string text = !settings_.mask_literals ? e.statement
                     : e.normalized != nullptr ? *e.normalized
                                               : sqlrewrite::normalize_sql(e.statement);
  if (text.empty()) text = e.statement;
  if (text.size() > settings_.max_statement) text = text.substr(0, settings_.max_statement) + "...";
  auto now = duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(now / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[40];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long>(now % 1000000));
  std::string line = "{\"time\":\"" + std::string(ts) + "\",\"user\":\"" + json_escape(e.user) +
                     "\",\"tenant\":" + (e.tenant.empty() ? std::string("null") : "\"" + json_escape(e.tenant) + "\"") +
                     ",\"client\":\"" + json_escape(e.client) + "\",\"session\":" + std::to_string(e.session) +
                     ",\"fingerprint\":\"" + (e.fingerprint != nullptr ? *e.fingerprint : sqlrewrite::fingerprint_sql(e.statement)) + "\",\"statement\":\"" +
                     json_escape(text) + "\",\"decision\":\"" + (e.allowed ? "allowed" : "denied") + "\"";
  if (!e.allowed) {
    line += ",\"rule\":\"" + json_escape(denial_rule(e.reason)) + "\",\"reason\":\"" + json_escape(e.reason) + "\"";
  }
  line += "}";
  logger_->info(line);
}

}  // namespace rowguard::net
