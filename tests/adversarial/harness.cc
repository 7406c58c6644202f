#include "tests/adversarial/harness.h"

#include <gtest/gtest.h>

#include <signal.h>

#include <regex>
#include <stdexcept>
#include <thread>

#include "tests/support/process.h"

namespace rowguard::testing::adversarial {

std::string QueryResult::everything() const {
  std::string out = message;
  for (const auto& row : rows) {
    for (const auto& v : row) {
      out += '\x1f';
      out += v.value_or("<NULL>");
    }
  }
  return out;
}

namespace {

QueryResult collect(PGresult* res, PGconn* conn) {
  QueryResult r;
  if (res == nullptr) {
    r.message = PQerrorMessage(conn);
    r.sqlstate = "connection";
    return r;
  }
  ExecStatusType st = PQresultStatus(res);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_COPY_IN || st == PGRES_COPY_OUT ||
      st == PGRES_EMPTY_QUERY) {
    r.ok = true;
    r.command_tag = PQcmdStatus(res);
    for (int c = 0; c < PQnfields(res); ++c) r.columns.emplace_back(PQfname(res, c));
    for (int i = 0; i < PQntuples(res); ++i) {
      std::vector<std::optional<std::string>> row;
      for (int c = 0; c < PQnfields(res); ++c) {
        if (PQgetisnull(res, i, c)) row.emplace_back(std::nullopt);
        else row.emplace_back(std::string(PQgetvalue(res, i, c), PQgetlength(res, i, c)));
      }
      r.rows.push_back(std::move(row));
    }
  } else {
    const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    r.sqlstate = state ? state : "";
    for (int field : {PG_DIAG_MESSAGE_PRIMARY, PG_DIAG_MESSAGE_DETAIL, PG_DIAG_MESSAGE_HINT, PG_DIAG_CONTEXT}) {
      if (const char* v = PQresultErrorField(res, field)) {
        if (!r.message.empty()) r.message += " | ";
        r.message += v;
      }
    }
    if (r.message.empty()) r.message = PQerrorMessage(conn);
  }
  PQclear(res);
  return r;
}

}  // namespace

Client::Client(const std::string& conninfo) {
  conn_ = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn_);
    PQfinish(conn_);
    conn_ = nullptr;
    throw std::runtime_error("connect failed (" + conninfo + "): " + msg);
  }
}

Client::~Client() {
  if (conn_ != nullptr) PQfinish(conn_);
}

QueryResult Client::exec(const std::string& sql) {
  // PQexec keeps only the last result of a multi-statement text; that is what the cases need.
  return collect(PQexec(conn_, sql.c_str()), conn_);
}

QueryResult Client::exec_params(const std::string& sql, const std::vector<std::optional<std::string>>& params) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  return collect(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                              nullptr, nullptr, 0),
                 conn_);
}

bool Client::alive() {
  QueryResult r = exec("SELECT 1");
  return r.ok && r.rows.size() == 1 && r.rows[0][0] == std::optional<std::string>("1");
}

std::string example_config_template() {
  std::string text = read_text_file(source_dir() + "/examples/rowguard.toml");
  text = replace_all(text, "\"127.0.0.1:6432\"", "\"{{LISTEN}}\"");
  return replace_all(text, "\"127.0.0.1:5432\"", "\"{{UPSTREAM}}\"");
}

Env::Env() {
  pg_ = &PgServer::shared();
  pg_->load_example_schema();
  rowguard_ = std::make_unique<RowguardProcess>(example_config_template(), *pg_, "info");
}

Env& Env::get() {
  static Env* env = new Env();  // lives until exit; PgServer::shared() stops the server then
  return *env;
}

std::unique_ptr<Client> Env::tenant(int n) {
  const std::string user = "t" + std::to_string(n);
  return std::make_unique<Client>(rowguard_->conninfo(user) + " password=pw" + std::to_string(n));
}

std::unique_ptr<Client> Env::bypass() {
  return std::make_unique<Client>(rowguard_->conninfo("dba") + " password=pwdba");
}

std::unique_ptr<Client> Env::direct_super() {
  return std::make_unique<Client>("host=" + pg_->socket_dir() + " port=" + std::to_string(pg_->port()) +
                                  " user=postgres dbname=appdb");
}

bool has_other_tenant_marker(const std::string& text) {
  static const std::regex kMarker(
      R"((^|[^0-9.])(20[1-4]|30[1-3])([^0-9]|$)|globex|initech|42\.00|310\.50|7\.25|999\.99|15\.00|480\.00)");
  return std::regex_search(text, kMarker);
}

::testing::AssertionResult no_leak(const QueryResult& r) {
  if (r.refused()) return ::testing::AssertionSuccess() << "refused: " << r.message;
  if (has_other_tenant_marker(r.everything())) {
    return ::testing::AssertionFailure() << "another tenant's value reached tenant 1: ok=" << r.ok
                                         << " sqlstate=" << r.sqlstate << " text=" << r.everything();
  }
  return ::testing::AssertionSuccess();
}

}  // namespace rowguard::testing::adversarial

namespace rowguard::testing::adversarial {

size_t occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

namespace {
// Schema reads done for a reload ("schema snapshot (reload): ..." or, coalesced with other
// requests, "schema snapshot (ddl,reload): ...").
size_t reload_schema_reads(const std::string& log) {
  size_t n = 0;
  for (size_t at = log.find("schema snapshot ("); at != std::string::npos; at = log.find("schema snapshot (", at + 1)) {
    const size_t open = at + std::string_view("schema snapshot (").size();
    const size_t close = log.find(')', open);
    if (close == std::string::npos) break;
    if (("," + log.substr(open, close - open) + ",").find(",reload,") != std::string::npos) ++n;
  }
  return n;
}
}  // namespace

::testing::AssertionResult reload_policy(RowguardProcess& rg, const std::string& text) {
  const size_t before = occurrences(rg.log(), "reload: policy");
  const size_t reads_before = reload_schema_reads(rg.log());
  write_text_file(rg.config_path(), text);
  if (kill(rg.pid(), SIGHUP) != 0) return ::testing::AssertionFailure() << "kill failed";
  if (!wait_until([&] { return occurrences(rg.log(), "reload: policy") > before; }, std::chrono::seconds(10))) {
    return ::testing::AssertionFailure() << "no reload in the log: " << rg.log();
  }
  // The reload is complete once the schema snapshot of the new policy's tables has been read
  // (installed as a further policy version when it differs): a statement sent earlier could run
  // under the reloaded file and then see its cursor invalidated by the snapshot that follows.
  if (rg.log().find("policy rejected") == std::string::npos &&
      !wait_until([&] { return reload_schema_reads(rg.log()) > reads_before; }, std::chrono::seconds(10))) {
    return ::testing::AssertionFailure() << "no schema read after the reload: " << rg.log();
  }
  if (rg.log().find("policy rejected") != std::string::npos) return ::testing::AssertionFailure() << rg.log();
  return ::testing::AssertionSuccess();
}

}  // namespace rowguard::testing::adversarial

namespace rowguard::testing::adversarial {

OneWorker::OneWorker() {
  std::string config = example_config_template();
  const std::string proxy = "[proxy]\n";
  config.replace(config.find(proxy), proxy.size(), proxy + "workers = 1\n");
  rowguard_ = std::make_unique<RowguardProcess>(config, Env::get().pg(), "info");
}

std::unique_ptr<Client> OneWorker::tenant(int n) {
  return std::make_unique<Client>(rowguard_->conninfo("t" + std::to_string(n)) + " password=pw" + std::to_string(n));
}

OneWorker& one_worker() {
  static OneWorker* w = new OneWorker();  // lives until exit
  return *w;
}

std::string repeat(const std::string& s, int n) {
  std::string out;
  out.reserve(s.size() * static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

std::string copy_in(Client& c, const std::string& sql, const std::string& data) {
  PGresult* r = PQexec(c.raw(), sql.c_str());
  std::string out;
  if (PQresultStatus(r) != PGRES_COPY_IN) {
    const char* st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    out = std::string(st ? st : "?") + " " + PQresultErrorMessage(r);
    PQclear(r);
    return out;
  }
  PQclear(r);
  if (PQputCopyData(c.raw(), data.data(), static_cast<int>(data.size())) != 1 || PQputCopyEnd(c.raw(), nullptr) != 1) {
    return std::string("send failed: ") + PQerrorMessage(c.raw());
  }
  out = "ok";
  while (PGresult* res = PQgetResult(c.raw())) {
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
      const char* st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
      out = std::string(st ? st : "?") + " " + PQresultErrorMessage(res);
    }
    PQclear(res);
  }
  return out;
}

}  // namespace rowguard::testing::adversarial
