#include "tests/adversarial/state_leak.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <vector>

namespace rowguard::testing::adversarial::leak {

uint64_t seed_from_env(uint64_t fallback) {
  const char* v = std::getenv("ROWGUARD_LEAK_SEED");
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 10);
}

int ops_from_env(int fallback) {
  const char* v = std::getenv("ROWGUARD_LEAK_OPS");
  if (v == nullptr || *v == '\0') return fallback;
  return std::atoi(v);
}

namespace {

using Clock = std::chrono::steady_clock;

// ---- one libpq connection, every call bounded by a deadline ---------------------------------

struct Answer {
  bool ok = false;
  bool timed_out = false;
  bool lost = false;
  std::string sqlstate, message, tag;
  std::vector<std::string> fields;
  int nparams = -1;
  std::vector<std::vector<std::string>> rows;

  bool no_server() const { return !ok && sqlstate == "53300"; }
  std::string brief() const {
    if (timed_out) return "no answer (wedged)";
    if (lost) return "connection lost: " + message;
    if (!ok) return "error " + sqlstate + " " + message;
    std::string s = "ok '" + tag + "'";
    if (!rows.empty()) {
      s += " rows=[";
      for (size_t i = 0; i < rows.size(); ++i) {
        s += i ? " (" : "(";
        for (size_t c = 0; c < rows[i].size(); ++c) s += (c ? "," : "") + rows[i][c];
        s += ")";
      }
      s += "]";
    }
    return s;
  }
};

struct Note {
  std::string channel, payload;
  bool operator<(const Note& o) const { return std::tie(channel, payload) < std::tie(o.channel, o.payload); }
};

class Conn {
 public:
  Conn(PGconn* c, int timeout_ms) : c_(c), timeout_ms_(timeout_ms) {
    PQsetNoticeProcessor(c_, [](void*, const char*) {}, nullptr);  // SET LOCAL outside a block warns
  }
  ~Conn() { PQfinish(c_); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  static std::unique_ptr<Conn> open(const std::string& conninfo, int timeout_ms, std::string* error) {
    PGconn* c = PQconnectdb(conninfo.c_str());
    if (PQstatus(c) != CONNECTION_OK) {
      *error = PQerrorMessage(c);
      PQfinish(c);
      return nullptr;
    }
    return std::make_unique<Conn>(c, timeout_ms);
  }

  Answer exec(const std::string& sql) { return await(PQsendQuery(c_, sql.c_str())); }
  Answer prepare(const std::string& name, const std::string& sql) {
    return await(PQsendPrepare(c_, name.c_str(), sql.c_str(), 0, nullptr));
  }
  Answer exec_prepared(const std::string& name, const std::string& param) {
    const char* values[] = {param.c_str()};
    return await(PQsendQueryPrepared(c_, name.c_str(), 1, values, nullptr, nullptr, 0));
  }
  Answer describe_prepared(const std::string& name) { return await(PQsendDescribePrepared(c_, name.c_str())); }

  // Notifications that arrived so far (reads what the socket holds, never blocks).
  std::vector<Note> notes() {
    std::vector<Note> out;
    PQconsumeInput(c_);
    while (PGnotify* n = PQnotifies(c_)) {
      out.push_back({n->relname, n->extra});
      PQfreemem(n);
    }
    return out;
  }
  // Waits until the socket is readable or `ms` passed.
  void wait_input(int ms) {
    pollfd p{PQsocket(c_), POLLIN, 0};
    poll(&p, 1, ms);
  }
  bool cancel(std::string* error) {
    PGcancel* k = PQgetCancel(c_);
    if (k == nullptr) {
      *error = "PQgetCancel failed";
      return false;
    }
    char buf[256] = {0};
    const bool sent = PQcancel(k, buf, sizeof buf) == 1;
    PQfreeCancel(k);
    if (!sent) *error = buf;
    return sent;
  }
  PGTransactionStatusType tx_status() const { return PQtransactionStatus(c_); }
  std::optional<std::string> parameter(const std::string& name) const {
    const char* v = PQparameterStatus(c_, name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  }

 private:
  Answer await(int sent) {
    Answer a;
    if (!sent) {
      a.lost = true;
      a.message = PQerrorMessage(c_);
      return a;
    }
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms_);
    bool have = false, error = false;
    for (;;) {
      while (PQisBusy(c_)) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) {
          a.timed_out = true;
          return a;
        }
        pollfd p{PQsocket(c_), POLLIN, 0};
        const int r = poll(&p, 1, static_cast<int>(left));
        if (r < 0 && errno != EINTR) {
          a.lost = true;
          return a;
        }
        if (r > 0 && !PQconsumeInput(c_)) {
          a.lost = true;
          a.message = PQerrorMessage(c_);
          return a;
        }
      }
      PGresult* res = PQgetResult(c_);
      if (res == nullptr) break;
      have = true;
      const ExecStatusType st = PQresultStatus(res);
      if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
        if (!error) {
          a.ok = true;
          a.tag = PQcmdStatus(res);
          a.nparams = PQnparams(res);
          a.fields.clear();
          a.rows.clear();
          for (int c = 0; c < PQnfields(res); ++c) a.fields.emplace_back(PQfname(res, c));
          for (int i = 0; i < PQntuples(res); ++i) {
            std::vector<std::string> row;
            for (int c = 0; c < PQnfields(res); ++c) {
              row.emplace_back(PQgetisnull(res, i, c) ? "<NULL>" : std::string(PQgetvalue(res, i, c)));
            }
            a.rows.push_back(std::move(row));
          }
        }
      } else if (!error) {
        error = true;
        a.ok = false;
        const char* s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const char* m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        a.sqlstate = s ? s : "";
        a.message = m ? m : PQerrorMessage(c_);
      }
      PQclear(res);
    }
    if (!have || PQstatus(c_) == CONNECTION_BAD) {
      a.ok = false;
      a.lost = true;
      if (a.message.empty()) a.message = PQerrorMessage(c_);
    }
    return a;
  }

  PGconn* c_;
  int timeout_ms_;
};

// ---- the model --------------------------------------------------------------------------------

struct SettingSpec {
  std::string name;                 // as SHOW and ParameterStatus spell it
  std::vector<std::string> values;  // canonical forms (what SHOW prints back); empty: generated
  bool reported;                    // GUC_REPORT: the server sends ParameterStatus for it
};

const std::vector<SettingSpec>& setting_specs() {
  static const std::vector<SettingSpec> kSpecs = {
      {"statement_timeout", {"31s", "1min", "45s", "2min"}, false},
      {"lock_timeout", {"33s", "50s", "3min"}, false},
      {"application_name", {}, true},
      {"TimeZone", {"UTC", "Europe/Berlin", "Asia/Tokyo", "America/New_York"}, true},
      {"DateStyle", {"ISO, MDY", "SQL, DMY", "German, DMY", "Postgres, MDY", "ISO, YMD"}, true},
      {"IntervalStyle", {"postgres", "iso_8601", "sql_standard", "postgres_verbose"}, true},
      {"extra_float_digits", {"0", "2", "3", "-1"}, false},
      {"search_path", {"public"}, false},
  };
  return kSpecs;
}

using Values = std::map<std::string, std::string>;
using Rows = std::map<int64_t, int64_t>;                   // id -> amount in cents
using Overlay = std::map<int64_t, std::optional<int64_t>>;  // a transaction's own changes; nullopt: deleted

enum class Tx { kIdle, kOpen, kFailed };

struct Cursor {
  std::vector<int64_t> ids;
  size_t pos = 0;
  bool hold = false;
  int serial = 0;  // creation order: a rollback drops the cursors created after its mark
};

struct Savepoint {
  std::string name;
  Values session, current;
  Overlay overlay;
  int cursor_serial = 0;
  size_t notifies = 0;
};

struct Client {
  int index = 0, tenant = 0;
  std::unique_ptr<Conn> conn;
  Tx tx = Tx::kIdle;
  Values session, current;
  Values begin_session;
  int begin_serial = 0;
  Overlay overlay;
  std::vector<Savepoint> savepoints;
  std::map<std::string, Cursor> cursors;
  int next_serial = 1;
  std::map<std::string, std::string> prepared;  // name -> label the statement answers with
  std::set<std::string> sql_prepared;            // the names of `prepared` made by SQL PREPARE
  std::set<std::string> listening;
  std::vector<Note> tx_notifies;
  std::multiset<Note> expected;  // notified, not received yet
  int64_t next_id = 0;
  int generation = 0;
  bool cancel_pending = false;  // a cancel was sent while idle and no 57014 has shown it landed
  std::deque<std::string> history;

  int64_t lo() const { return kFirstLeakId + static_cast<int64_t>(index) * 1000000; }
  int64_t hi() const { return lo() + 1000000; }
  std::string name() const { return "c" + std::to_string(index) + "/t" + std::to_string(tenant); }
};

const char* tx_name(Tx t) { return t == Tx::kIdle ? "idle" : t == Tx::kOpen ? "in transaction" : "failed transaction"; }

struct Failure {
  std::string kind, text;
};

class Run {
 public:
  Run(const RunConfig& config, const std::function<std::string(int)>& conninfo)
      : cfg_(config), conninfo_(conninfo), rng_(config.seed) {}

  RunResult go();

 private:
  // The op chosen for a client, by name; returns a failure or nothing.
  std::optional<Failure> step(Client& c, const std::string& op);
  std::vector<std::string> candidates(const Client& c) const;
  bool pinned(const Client& c) const;
  int pinned_count() const;

  std::optional<Failure> connect(Client& c);
  void reset_model(Client& c);
  std::optional<Failure> check(Client& c, bool after_cancel);
  std::optional<Failure> check_notes();
  std::string holders(const std::string& setting, const std::string& value, const Client& self) const;
  std::optional<Failure> drain(Client& c);

  Rows visible(const Client& c) const;  // the tenant's rows >= kFirstLeakId as c sees them
  Rows own(const Client& c) const;
  void commit(Client& c);
  void rollback(Client& c);
  void deliver(Client& from, const Note& n);
  // An error in a transaction block aborts the innermost (sub)transaction at once: PostgreSQL
  // reverts the settings to where that savepoint (or BEGIN) found them before ROLLBACK comes.
  // A 57014 answer of a client whose idle cancel has not landed yet, when tolerated: counted,
  // and the statement failed like any error (its transaction is aborted).
  bool late_cancel(Client& c, const Answer& a) {
    if (!cfg_.tolerate_late_cancel || !c.cancel_pending || a.ok || a.sqlstate != "57014") return false;
    ++result_.late_cancels;
    c.cancel_pending = false;
    fail_tx(c);
    return true;
  }
  void fail_tx(Client& c) {
    if (c.tx != Tx::kOpen) return;
    c.tx = Tx::kFailed;
    if (c.savepoints.empty()) {
      c.session = c.current = c.begin_session;
    } else {
      c.session = c.savepoints.back().session;
      c.current = c.savepoints.back().current;
    }
  }

  std::string label(Client& c) { return "c" + std::to_string(c.index) + "g" + std::to_string(++c.generation); }
  static std::string statement_text(const std::string& lbl) {
    return "SELECT '" + lbl + "'::text AS who_" + lbl +
           ", count(*) AS n, coalesce(sum(id::bigint * (amount * 100)::bigint), 0) AS s FROM orders WHERE id >= $1";
  }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng_)];
  }
  int below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  // Expectation helpers: nullopt when the answer is what the model predicts.
  std::optional<Failure> want_ok(const Answer& a, const std::string& kind, const std::string& what);
  std::optional<Failure> want_error(const Answer& a, const std::set<std::string>& states, const std::string& kind,
                                    const std::string& what);
  std::string expected_exec_row(const Client& c, const std::string& lbl) const;

  const RunConfig& cfg_;
  std::function<std::string(int)> conninfo_;
  std::mt19937_64 rng_;
  std::vector<Client> clients_;
  std::map<int, Rows> committed_;  // tenant -> rows
  Values defaults_;
  int op_ = 0;
  RunResult result_;
  bool skipped_ = false;  // the current op was answered 53300
};

std::optional<Failure> Run::want_ok(const Answer& a, const std::string& kind, const std::string& what) {
  if (a.timed_out) return Failure{"wedge", what + ": " + a.brief()};
  if (a.lost) return Failure{"connection", what + ": " + a.brief()};
  if (!a.ok) return Failure{kind, what + ": expected success, got " + a.brief()};
  return std::nullopt;
}

std::optional<Failure> Run::want_error(const Answer& a, const std::set<std::string>& states, const std::string& kind,
                                       const std::string& what) {
  if (a.timed_out) return Failure{"wedge", what + ": " + a.brief()};
  if (a.lost) return Failure{"connection", what + ": " + a.brief()};
  if (a.ok || !states.contains(a.sqlstate)) {
    std::string want;
    for (const auto& s : states) want += (want.empty() ? "" : "/") + s;
    return Failure{kind, what + ": expected error " + want + ", got " + a.brief()};
  }
  return std::nullopt;
}

bool Run::pinned(const Client& c) const {
  if (cfg_.pins.contains(Pin::kTransaction) && c.tx != Tx::kIdle) return true;
  if (cfg_.pins.contains(Pin::kListen) && !c.listening.empty()) return true;
  if (cfg_.pins.contains(Pin::kPrepared) && !c.prepared.empty()) return true;
  if (cfg_.pins.contains(Pin::kSqlPrepared) && !c.sql_prepared.empty()) return true;
  if (cfg_.pins.contains(Pin::kHoldCursor)) {
    for (const auto& [n, cur] : c.cursors) {
      if (cur.hold) return true;
    }
  }
  return false;
}

int Run::pinned_count() const {
  int n = 0;
  for (const auto& c : clients_) n += pinned(c) ? 1 : 0;
  return n;
}

Rows Run::visible(const Client& c) const {
  Rows rows;
  if (auto it = committed_.find(c.tenant); it != committed_.end()) rows = it->second;
  for (const auto& [id, v] : c.overlay) {
    if (v) rows[id] = *v;
    else rows.erase(id);
  }
  return rows;
}

Rows Run::own(const Client& c) const {
  Rows out;
  for (const auto& [id, cents] : visible(c)) {
    if (id >= c.lo() && id < c.hi()) out[id] = cents;
  }
  return out;
}

std::string Run::expected_exec_row(const Client& c, const std::string& lbl) const {
  int64_t n = 0, s = 0;
  for (const auto& [id, cents] : visible(c)) {
    ++n;
    s += id * cents;
  }
  return "(" + lbl + "," + std::to_string(n) + "," + std::to_string(s) + ")";
}

void Run::reset_model(Client& c) {
  c.tx = Tx::kIdle;
  c.session = c.current = defaults_;
  c.overlay.clear();
  c.savepoints.clear();
  c.cursors.clear();
  c.prepared.clear();
  c.sql_prepared.clear();
  c.listening.clear();
  c.tx_notifies.clear();
  c.expected.clear();
  c.cancel_pending = false;
}

std::optional<Failure> Run::connect(Client& c) {
  std::string error;
  c.conn = Conn::open(conninfo_(c.tenant), cfg_.op_timeout_ms, &error);
  if (!c.conn) return Failure{"connection", "login as tenant " + std::to_string(c.tenant) + " failed: " + error};
  reset_model(c);
  return std::nullopt;
}

void Run::deliver(Client& from, const Note& n) {
  for (auto& other : clients_) {
    if (other.tenant == from.tenant && other.listening.contains(n.channel)) other.expected.insert(n);
  }
}

void Run::commit(Client& c) {
  auto& rows = committed_[c.tenant];
  for (const auto& [id, v] : c.overlay) {
    if (v) rows[id] = *v;
    else rows.erase(id);
  }
  c.overlay.clear();
  for (auto it = c.cursors.begin(); it != c.cursors.end();) {
    it = it->second.hold ? std::next(it) : c.cursors.erase(it);
  }
  c.current = c.session;  // SET LOCAL ends with the transaction
  for (const auto& n : c.tx_notifies) deliver(c, n);
  c.tx_notifies.clear();
  c.savepoints.clear();
  c.tx = Tx::kIdle;
}

void Run::rollback(Client& c) {
  c.overlay.clear();
  for (auto it = c.cursors.begin(); it != c.cursors.end();) {
    const bool drop = !it->second.hold || it->second.serial >= c.begin_serial;
    it = drop ? c.cursors.erase(it) : std::next(it);
  }
  c.session = c.current = c.begin_session;
  c.tx_notifies.clear();
  c.savepoints.clear();
  c.tx = Tx::kIdle;
}

// What one operation may be, given the client's state and the pool bound.
std::vector<std::string> Run::candidates(const Client& c) const {
  std::vector<std::pair<std::string, int>> w;
  const bool may_pin = pinned(c) || pinned_count() < cfg_.max_pinned;
  auto pins = [&](Pin p) { return cfg_.pins.contains(p) && !may_pin; };  // true: the op is not allowed now
  switch (c.tx) {
    case Tx::kIdle:
      w = {{"set", 10},     {"set_local", 2},  {"reset", 4},       {"reset_all", 1}, {"show", 5},
           {"insert", 5},   {"update", 3},     {"delete", 3},      {"execute_sql", 5}, {"exec_prepared", 5},
           {"describe", 3}, {"deallocate", 3}, {"deallocate_all", 1}, {"fetch", 3},   {"close", 2},
           {"unlisten", 2}, {"unlisten_all", 1}, {"notify", 4},    {"error", 2},     {"cancel", 2},
           {"disconnect", 1}, {"discard_all", 1}};
      if (!pins(Pin::kTransaction)) w.push_back({"begin", 10});
      if (!pins(Pin::kPrepared)) {
        if (!pins(Pin::kSqlPrepared)) w.push_back({"prepare_sql", 4});
        w.push_back({"parse", 4});
      }
      if (!pins(Pin::kListen)) w.push_back({"listen", 3});
      break;
    case Tx::kOpen:
      w = {{"set", 8},         {"set_local", 6},     {"reset", 3},      {"reset_all", 1},  {"show", 4},
           {"savepoint", 4},   {"rollback_to", 3},   {"release", 2},    {"insert", 5},     {"update", 3},
           {"delete", 3},      {"execute_sql", 3},   {"exec_prepared", 3}, {"describe", 2}, {"deallocate", 2},
           {"declare", 4},     {"fetch", 5},         {"close", 2},      {"notify", 3},     {"error", 2},
           {"commit", 6},      {"rollback", 5},      {"disconnect", 1}, {"discard_all", 1}};
      if (!pins(Pin::kPrepared)) {
        if (!pins(Pin::kSqlPrepared)) w.push_back({"prepare_sql", 2});
        w.push_back({"parse", 2});
      }
      break;
    case Tx::kFailed:
      w = {{"rollback", 5}, {"rollback_to", 3}, {"probe_failed", 2}, {"commit", 3}, {"disconnect", 1}};
      break;
  }
  std::vector<std::string> out;
  for (const auto& [op, n] : w) {
    if (cfg_.only.empty() || cfg_.only.contains(op) || op == "commit" || op == "rollback") {
      out.insert(out.end(), static_cast<size_t>(n), op);
    }
  }
  if (out.empty()) out.push_back(c.tx == Tx::kIdle ? "show" : "rollback");
  return out;
}

std::optional<Failure> Run::step(Client& c, const std::string& op) {
  static const std::vector<std::string> kStatements = {"p1", "p2", "p3"};
  static const std::vector<std::string> kCursors = {"cur1", "cur2"};
  static const std::vector<std::string> kChannels = {"ch1", "ch2"};
  static const std::vector<std::string> kSavepoints = {"sa", "sb"};
  const bool in_tx = c.tx == Tx::kOpen;
  auto note = [&](const std::string& sql) {
    c.history.push_back("#" + std::to_string(op_) + " " + sql + " [" + tx_name(c.tx) + "]");
    if (c.history.size() > static_cast<size_t>(cfg_.first_failure_context)) c.history.pop_front();
  };
  // True when the answer says the operation did not happen: 53300, or the late cancel (see
  // RunConfig::tolerate_late_cancel) landing on this statement, an error like any other.
  auto busy = [&](const Answer& a) {
    if (late_cancel(c, a)) {
      skipped_ = true;
      return true;
    }
    if (!a.no_server()) return false;
    ++result_.answers_53300;
    skipped_ = true;
    return true;
  };

  if (op == "set" || op == "set_local") {
    const auto& spec = pick(setting_specs());
    std::string v = spec.values.empty() ? "c" + std::to_string(c.index) + "_o" + std::to_string(op_) : pick(spec.values);
    const std::string sql = std::string(op == "set" ? "SET " : "SET LOCAL ") + spec.name + " = '" + v + "'";
    note(sql);
    Answer a = c.conn->exec(sql);
    if (busy(a)) return std::nullopt;
    if (auto f = want_ok(a, "setting", sql)) return f;
    if (op == "set") {
      c.session[spec.name] = c.current[spec.name] = v;
    } else if (in_tx) {
      c.current[spec.name] = v;  // outside a transaction block SET LOCAL only warns
    }
    return std::nullopt;
  }
  if (op == "reset") {
    const auto& spec = pick(setting_specs());
    const std::string sql = "RESET " + spec.name;
    note(sql);
    Answer a = c.conn->exec(sql);
    if (busy(a)) return std::nullopt;
    if (auto f = want_ok(a, "setting", sql)) return f;
    c.session[spec.name] = c.current[spec.name] = defaults_[spec.name];
    return std::nullopt;
  }
  if (op == "reset_all") {
    note("RESET ALL");
    Answer a = c.conn->exec("RESET ALL");
    if (busy(a)) return std::nullopt;
    if (!cfg_.reset_all_allowed) {
      if (auto f = want_error(a, {"42501"}, "setting", "RESET ALL (refused for tenants today)")) return f;
      fail_tx(c);
      return std::nullopt;
    }
    if (auto f = want_ok(a, "setting", "RESET ALL")) return f;
    c.session = c.current = defaults_;
    return std::nullopt;
  }
  if (op == "show") {
    const auto& spec = pick(setting_specs());
    const std::string sql = "SHOW " + spec.name;
    note(sql);
    Answer a = c.conn->exec(sql);
    if (busy(a)) return std::nullopt;
    if (auto f = want_ok(a, "setting", sql)) return f;
    const std::string got = a.rows.size() == 1 && a.rows[0].size() == 1 ? a.rows[0][0] : a.brief();
    if (got != c.current[spec.name]) {
      return Failure{"setting", sql + ": expected '" + c.current[spec.name] + "', got '" + got + "'" +
                                    holders(spec.name, got, c)};
    }
    return std::nullopt;
  }
  if (op == "begin") {
    note("BEGIN");
    Answer a = c.conn->exec("BEGIN");
    if (busy(a)) return std::nullopt;
    if (auto f = want_ok(a, "transaction", "BEGIN")) return f;
    c.tx = Tx::kOpen;
    c.begin_session = c.session;
    c.begin_serial = c.next_serial;
    return std::nullopt;
  }
  if (op == "commit") {
    note("COMMIT");
    Answer a = c.conn->exec("COMMIT");
    if (busy(a)) return std::nullopt;
    if (auto f = want_ok(a, "transaction", "COMMIT")) return f;
    const bool was_failed = c.tx == Tx::kFailed;
    if (a.tag != (was_failed ? "ROLLBACK" : "COMMIT")) {
      return Failure{"transaction", std::string("COMMIT of a ") + tx_name(c.tx) + ": expected tag " +
                                        (was_failed ? "ROLLBACK" : "COMMIT") + ", got " + a.brief()};
    }
    if (was_failed) rollback(c);
    else commit(c);
    return std::nullopt;
  }
  if (op == "rollback") {
    note("ROLLBACK");
    Answer a = c.conn->exec("ROLLBACK");
    if (busy(a)) return std::nullopt;
    if (auto f = want_ok(a, "transaction", "ROLLBACK")) return f;
    rollback(c);
    return std::nullopt;
  }
  if (op == "savepoint") {
    const std::string name = pick(kSavepoints);
    note("SAVEPOINT " + name);
    Answer a = c.conn->exec("SAVEPOINT " + name);
    if (busy(a)) return std::nullopt;
    if (auto f = want_ok(a, "transaction", "SAVEPOINT " + name)) return f;
    c.savepoints.push_back({name, c.session, c.current, c.overlay, c.next_serial, c.tx_notifies.size()});
    return std::nullopt;
  }
  if (op == "rollback_to" || op == "release") {
    const std::string name = pick(kSavepoints);
    const std::string sql = (op == "release" ? "RELEASE SAVEPOINT " : "ROLLBACK TO SAVEPOINT ") + name;
    note(sql);
    Answer a = c.conn->exec(sql);
    if (busy(a)) return std::nullopt;
    int at = -1;
    for (int i = static_cast<int>(c.savepoints.size()) - 1; i >= 0; --i) {
      if (c.savepoints[static_cast<size_t>(i)].name == name) {
        at = i;
        break;
      }
    }
    if (at < 0) {
      if (auto f = want_error(a, {"3B001"}, "transaction", sql + " (no such savepoint)")) return f;
      fail_tx(c);
      return std::nullopt;
    }
    if (auto f = want_ok(a, "transaction", sql)) return f;
    if (op == "release") {
      c.savepoints.resize(static_cast<size_t>(at));
      return std::nullopt;
    }
    const Savepoint& sp = c.savepoints[static_cast<size_t>(at)];
    c.session = sp.session;
    c.current = sp.current;
    c.overlay = sp.overlay;
    for (auto it = c.cursors.begin(); it != c.cursors.end();) {
      it = it->second.serial >= sp.cursor_serial ? c.cursors.erase(it) : std::next(it);
    }
    c.tx_notifies.resize(sp.notifies);
    c.savepoints.resize(static_cast<size_t>(at) + 1);
    c.tx = Tx::kOpen;
    return std::nullopt;
  }
  if (op == "error") {
    note("SELECT 1/0");
    Answer a = c.conn->exec("SELECT 1/0");
    if (busy(a)) return std::nullopt;
    if (auto f = want_error(a, {"22012"}, "error", "SELECT 1/0")) return f;
    fail_tx(c);
    return std::nullopt;
  }
  if (op == "probe_failed") {
    note("SELECT 1");
    Answer a = c.conn->exec("SELECT 1");
    if (busy(a)) return std::nullopt;
    return want_error(a, {"25P02"}, "transaction", "SELECT 1 in a failed transaction");
  }
  if (op == "insert") {
    const int64_t id = c.lo() + c.next_id++;
    const int64_t cents = 1 + below(99999);
    char amount[32];
    std::snprintf(amount, sizeof amount, "%lld.%02lld", static_cast<long long>(cents / 100),
                  static_cast<long long>(cents % 100));
    const std::string sql = "INSERT INTO orders (id, amount, status) VALUES (" + std::to_string(id) + ", " + amount +
                            ", 'leak')";
    note(sql);
    Answer a = c.conn->exec(sql);
    if (busy(a)) return std::nullopt;
    if (auto f = want_ok(a, "rows", sql)) return f;
    if (a.tag != "INSERT 0 1") return Failure{"rows", sql + ": expected INSERT 0 1, got " + a.brief()};
    if (in_tx) c.overlay[id] = cents;
    else committed_[c.tenant][id] = cents;
    return std::nullopt;
  }
  if (op == "update") {
    const std::string sql = "UPDATE orders SET amount = amount + 1 WHERE id >= " + std::to_string(c.lo()) +
                            " AND id < " + std::to_string(c.hi());
    note(sql);
    Answer a = c.conn->exec(sql);
    if (busy(a)) return std::nullopt;
    if (auto f = want_ok(a, "rows", sql)) return f;
    const Rows mine = own(c);
    if (a.tag != "UPDATE " + std::to_string(mine.size())) {
      return Failure{"rows", sql + ": expected UPDATE " + std::to_string(mine.size()) + ", got " + a.brief()};
    }
    for (const auto& [id, cents] : mine) {
      if (in_tx) c.overlay[id] = cents + 100;
      else committed_[c.tenant][id] = cents + 100;
    }
    return std::nullopt;
  }
  if (op == "delete") {
    const Rows mine = own(c);
    int64_t id = c.lo() + c.next_id + 1;  // not inserted yet: DELETE 0
    if (!mine.empty() && below(5) != 0) id = std::next(mine.begin(), below(static_cast<int>(mine.size())))->first;
    const std::string sql = "DELETE FROM orders WHERE id = " + std::to_string(id);
    note(sql);
    Answer a = c.conn->exec(sql);
    if (busy(a)) return std::nullopt;
    if (auto f = want_ok(a, "rows", sql)) return f;
    const bool there = mine.contains(id);
    if (a.tag != (there ? "DELETE 1" : "DELETE 0")) {
      return Failure{"rows", sql + ": expected " + (there ? "DELETE 1" : "DELETE 0") + ", got " + a.brief()};
    }
    if (there) {
      if (in_tx) c.overlay[id] = std::nullopt;
      else committed_[c.tenant].erase(id);
    }
    return std::nullopt;
  }
  if (op == "prepare_sql" || op == "parse") {
    const std::string name = pick(kStatements);
    const std::string lbl = label(c);
    const std::string text = statement_text(lbl);
    const bool sql_level = op == "prepare_sql";
    const std::string what = sql_level ? "PREPARE " + name + " (int) AS " + text
                                       : "Parse(" + name + ", " + text + ")";
    note(what);
    Answer a = sql_level ? c.conn->exec("PREPARE " + name + " (int) AS " + text) : c.conn->prepare(name, text);
    if (busy(a)) return std::nullopt;
    if (c.prepared.contains(name) && sql_level && !cfg_.sql_sees_protocol_statements &&
        !c.sql_prepared.contains(name) && a.ok) {
      // Transaction pooling: the protocol-level statement is not in the server's SQL namespace,
      // so PREPARE of its name succeeds and replaces it for this client (README, not supported
      // yet). The client's own statement, no other client's.
      c.prepared[name] = lbl;
      c.sql_prepared.insert(name);
      return std::nullopt;
    }
    if (c.prepared.contains(name)) {
      if (auto f = want_error(a, {"42P05"}, "prepared", what + " (this client prepared " + name + " already)")) return f;
      fail_tx(c);
      return std::nullopt;
    }
    if (auto f = want_ok(a, "prepared", what + " (" + name + " is not prepared by this client)")) return f;
    c.prepared[name] = lbl;
    if (sql_level) c.sql_prepared.insert(name);
    return std::nullopt;
  }
  if (op == "execute_sql" || op == "exec_prepared" || op == "describe") {
    const std::string name = pick(kStatements);
    std::string what;
    Answer a;
    if (op == "execute_sql") {
      what = "EXECUTE " + name + "(" + std::to_string(kFirstLeakId) + ")";
      note(what);
      a = c.conn->exec(what);
    } else if (op == "exec_prepared") {
      what = "Bind/Execute(" + name + ", " + std::to_string(kFirstLeakId) + ")";
      note(what);
      a = c.conn->exec_prepared(name, std::to_string(kFirstLeakId));
    } else {
      what = "Describe(statement " + name + ")";
      note(what);
      a = c.conn->describe_prepared(name);
    }
    if (busy(a)) return std::nullopt;
    auto it = c.prepared.find(name);
    if (it != c.prepared.end() && op == "execute_sql" && !cfg_.sql_sees_protocol_statements &&
        !c.sql_prepared.contains(name)) {
      // Transaction pooling: a protocol-level statement lives under rowguard's name on the
      // server, so SQL EXECUTE does not find it (README: not supported yet). An error, no leak.
      if (auto f = want_error(a, {"26000", "42501"}, "prepared", what + " (a protocol-level statement, not SQL)")) {
        return f;
      }
      fail_tx(c);
      return std::nullopt;
    }
    if (it == c.prepared.end()) {
      // PostgreSQL says 26000; rowguard refuses a name its session did not prepare with 42501.
      if (auto f = want_error(a, {"26000", "42501"}, "prepared", what + " (this client has no statement " + name + ")")) {
        return f;
      }
      fail_tx(c);
      return std::nullopt;
    }
    if (auto f = want_ok(a, "prepared", what + " (this client prepared " + name + " as " + it->second + ")")) return f;
    if (op == "describe") {
      if (a.nparams != 1 || a.fields.size() != 3 || a.fields[0] != "who_" + it->second) {
        std::string fields;
        for (const auto& f : a.fields) fields += (fields.empty() ? "" : ",") + f;
        return Failure{"prepared", what + ": expected 1 parameter and columns who_" + it->second +
                                       ",n,s, got " + std::to_string(a.nparams) + " parameters and columns " + fields};
      }
      return std::nullopt;
    }
    const std::string want = expected_exec_row(c, it->second);
    const std::string got = a.rows.size() == 1 && a.rows[0].size() == 3
                                ? "(" + a.rows[0][0] + "," + a.rows[0][1] + "," + a.rows[0][2] + ")"
                                : a.brief();
    if (got != want) {
      const bool other_statement = a.rows.size() == 1 && !a.rows[0].empty() && a.rows[0][0] != it->second;
      return Failure{other_statement ? "prepared" : "rows", what + ": expected " + want + ", got " + got};
    }
    return std::nullopt;
  }
  if (op == "deallocate" || op == "deallocate_all") {
    const bool all = op == "deallocate_all";
    const std::string name = all ? "ALL" : pick(kStatements);
    const std::string sql = "DEALLOCATE " + name;
    note(sql);
    Answer a = c.conn->exec(sql);
    if (busy(a)) return std::nullopt;
    const bool invisible = !all && !cfg_.sql_sees_protocol_statements && c.prepared.contains(name) &&
                           !c.sql_prepared.contains(name);  // (see execute_sql above)
    if (!all && (!c.prepared.contains(name) || invisible)) {
      if (auto f = want_error(a, {"26000", "42501"}, "prepared", sql + " (this client has no statement " + name + ")")) {
        return f;
      }
      fail_tx(c);
      return std::nullopt;
    }
    if (auto f = want_ok(a, "prepared", sql)) return f;
    if (all) {
      c.prepared.clear();
      c.sql_prepared.clear();
    } else {
      c.prepared.erase(name);
      c.sql_prepared.erase(name);
    }
    return std::nullopt;
  }
  if (op == "declare") {
    const std::string name = pick(kCursors);
    const bool hold = below(3) == 0;
    const std::string sql = "DECLARE " + name + " NO SCROLL CURSOR " + (hold ? "WITH HOLD " : "") +
                            "FOR SELECT id FROM orders WHERE id >= " + std::to_string(kFirstLeakId) + " ORDER BY id";
    note(sql);
    Answer a = c.conn->exec(sql);
    if (busy(a)) return std::nullopt;
    if (c.cursors.contains(name)) {
      if (auto f = want_error(a, {"42P03"}, "cursor", sql + " (this client has a cursor " + name + " already)")) return f;
      fail_tx(c);
      return std::nullopt;
    }
    if (auto f = want_ok(a, "cursor", sql)) return f;
    Cursor cur;
    for (const auto& [id, cents] : visible(c)) cur.ids.push_back(id);
    cur.hold = hold;
    cur.serial = c.next_serial++;
    c.cursors[name] = std::move(cur);
    return std::nullopt;
  }
  if (op == "fetch" || op == "close") {
    const std::string name = pick(kCursors);
    const int n = 1 + below(3);
    const std::string sql = op == "fetch" ? "FETCH " + std::to_string(n) + " FROM " + name : "CLOSE " + name;
    note(sql);
    Answer a = c.conn->exec(sql);
    if (busy(a)) return std::nullopt;
    auto it = c.cursors.find(name);
    if (it == c.cursors.end()) {
      if (auto f = want_error(a, {"34000"}, "cursor", sql + " (this client has no cursor " + name + ")")) return f;
      fail_tx(c);
      return std::nullopt;
    }
    if (auto f = want_ok(a, "cursor", sql)) return f;
    if (op == "close") {
      c.cursors.erase(it);
      return std::nullopt;
    }
    Cursor& cur = it->second;
    std::string want, got;
    for (size_t i = cur.pos; i < cur.ids.size() && i < cur.pos + static_cast<size_t>(n); ++i) {
      want += (want.empty() ? "" : ",") + std::to_string(cur.ids[i]);
    }
    for (const auto& row : a.rows) got += (got.empty() ? "" : ",") + (row.empty() ? "?" : row[0]);
    cur.pos = std::min(cur.ids.size(), cur.pos + static_cast<size_t>(n));
    if (want != got) return Failure{"cursor", sql + ": expected ids [" + want + "], got [" + got + "]"};
    return std::nullopt;
  }
  if (op == "listen" || op == "unlisten" || op == "unlisten_all") {
    const std::string ch = pick(kChannels);
    const std::string sql = op == "listen" ? "LISTEN " + ch : op == "unlisten" ? "UNLISTEN " + ch : "UNLISTEN *";
    note(sql);
    Answer a = c.conn->exec(sql);
    if (busy(a)) return std::nullopt;
    if (auto f = want_ok(a, "notification", sql)) return f;
    if (op == "listen") c.listening.insert(ch);
    else if (op == "unlisten") c.listening.erase(ch);
    else c.listening.clear();
    return std::nullopt;
  }
  if (op == "notify") {
    const Note n{pick(kChannels), "t" + std::to_string(c.tenant) + "c" + std::to_string(c.index) + "o" +
                                      std::to_string(op_)};
    const std::string sql = "NOTIFY " + n.channel + ", '" + n.payload + "'";
    note(sql);
    Answer a = c.conn->exec(sql);
    if (busy(a)) return std::nullopt;
    if (auto f = want_ok(a, "notification", sql)) return f;
    if (in_tx) c.tx_notifies.push_back(n);
    else deliver(c, n);
    return std::nullopt;
  }
  if (op == "discard_all") {
    note("DISCARD ALL");
    Answer a = c.conn->exec("DISCARD ALL");
    if (busy(a)) return std::nullopt;
    if (in_tx) {
      if (auto f = want_error(a, {"25001"}, "transaction", "DISCARD ALL in a transaction block")) return f;
      fail_tx(c);
      return std::nullopt;
    }
    if (auto f = want_ok(a, "setting", "DISCARD ALL")) return f;
    // RESET ALL (rowguard's search_path is a startup parameter: RESET returns to it), CLOSE ALL,
    // DEALLOCATE ALL, UNLISTEN *.
    c.session = c.current = defaults_;
    c.cursors.clear();
    c.prepared.clear();
    c.sql_prepared.clear();
    c.listening.clear();
    return std::nullopt;
  }
  if (op == "cancel") {
    note("PQcancel (idle)");
    std::string error;
    if (!c.conn->cancel(&error)) return Failure{"connection", "PQcancel of an idle client failed: " + error};
    c.cancel_pending = true;
    return std::nullopt;  // the check that follows must not be cancelled
  }
  if (op == "disconnect") {
    note("disconnect + reconnect");
    c.conn.reset();
    return connect(c);
  }
  return Failure{"harness", "unknown op " + op};
}

// ", the value other clients set: c3/t1 c7/t2": whose session state a client saw.
std::string Run::holders(const std::string& setting, const std::string& value, const Client& self) const {
  std::string out;
  for (const auto& o : clients_) {
    if (&o == &self) continue;
    auto it = o.current.find(setting);
    if (it != o.current.end() && it->second == value && value != defaults_.at(setting)) out += " " + o.name();
  }
  return out.empty() ? "" : " (the value of other clients' sessions:" + out + ")";
}

// What the client sees after an operation: its transaction status and reported parameters, then
// (outside a failed transaction) one query reading every modelled setting and its tenant's rows.
std::optional<Failure> Run::check(Client& c, bool after_cancel) {
  const PGTransactionStatusType want_status =
      c.tx == Tx::kIdle ? PQTRANS_IDLE : c.tx == Tx::kOpen ? PQTRANS_INTRANS : PQTRANS_INERROR;
  if (c.conn->tx_status() != want_status) {
    return Failure{"transaction", std::string("transaction status: expected ") + tx_name(c.tx) + ", libpq says " +
                                      std::to_string(static_cast<int>(c.conn->tx_status()))};
  }
  for (const auto& spec : setting_specs()) {
    if (!spec.reported) continue;
    const auto got = c.conn->parameter(spec.name);
    if (got.value_or("<none>") != c.current[spec.name]) {
      return Failure{"parameter_status", "ParameterStatus " + spec.name + ": expected '" + c.current[spec.name] +
                                             "', the client was told '" + got.value_or("<none>") + "'"};
    }
  }
  if (c.tx == Tx::kFailed) return std::nullopt;
  std::string sql = "SELECT ";
  for (const auto& spec : setting_specs()) sql += "current_setting('" + spec.name + "'), ";
  sql += "count(*), coalesce(sum(id::bigint * (amount * 100)::bigint), 0) FROM orders WHERE id >= " +
         std::to_string(kFirstLeakId);
  Answer a = c.conn->exec(sql);
  if (late_cancel(c, a)) return c.tx == Tx::kIdle ? check(c, false) : std::nullopt;
  if (a.no_server()) {
    ++result_.answers_53300;
    return std::nullopt;
  }
  if (auto f = want_ok(a, "setting", after_cancel ? "the check query right after a cancel of the idle client" : "the check query")) return f;
  const auto& specs = setting_specs();
  if (a.rows.size() != 1 || a.rows[0].size() != specs.size() + 2) return Failure{"harness", "check: " + a.brief()};
  for (size_t i = 0; i < specs.size(); ++i) {
    if (a.rows[0][i] != c.current[specs[i].name]) {
      return Failure{"setting", "current_setting('" + specs[i].name + "'): expected '" + c.current[specs[i].name] +
                                    "', got '" + a.rows[0][i] + "'" + holders(specs[i].name, a.rows[0][i], c)};
    }
  }
  int64_t n = 0, s = 0;
  for (const auto& [id, cents] : visible(c)) {
    ++n;
    s += id * cents;
  }
  const std::string want = std::to_string(n) + "/" + std::to_string(s);
  const std::string got = a.rows[0][specs.size()] + "/" + a.rows[0][specs.size() + 1];
  if (want != got) return Failure{"rows", "tenant rows (count/checksum): expected " + want + ", got " + got};
  return std::nullopt;
}

// Takes what reached c's socket: each notification must be one the model expects it to get.
std::optional<Failure> Run::drain(Client& c) {
  for (const auto& n : c.conn->notes()) {
    auto it = c.expected.find(n);
    if (it == c.expected.end()) {
      std::string listening;
      for (const auto& ch : c.listening) listening += (listening.empty() ? "" : ",") + ch;
      return Failure{"notification", c.name() + " (listening on [" + listening + "]) received notification " +
                                         n.channel + " '" + n.payload + "' it should not see"};
    }
    c.expected.erase(it);
  }
  return std::nullopt;
}

// Every expected notification reaches an idle listener within notify_timeout_ms (the server
// sends them unasked), and nothing else.
std::optional<Failure> Run::check_notes() {
  for (auto& c : clients_) {
    // PostgreSQL holds notifications back from a session inside a transaction block until it ends.
    if (c.expected.empty() || c.tx != Tx::kIdle) continue;
    const auto deadline = Clock::now() + std::chrono::milliseconds(cfg_.notify_timeout_ms);
    for (;;) {
      if (auto f = drain(c)) return f;
      if (c.expected.empty()) break;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) {
        const Note& n = *c.expected.begin();
        return Failure{"notification", c.name() + " did not receive notification " + n.channel + " '" + n.payload +
                                           "' of its tenant's channel it listens on within " +
                                           std::to_string(cfg_.notify_timeout_ms) + " ms"};
      }
      c.conn->wait_input(static_cast<int>(left));
    }
  }
  return std::nullopt;
}

RunResult Run::go() {
  const auto started = Clock::now();
  // The defaults every fresh session must show, from a first session before anything was set.
  {
    std::string error;
    auto first = Conn::open(conninfo_(1), cfg_.op_timeout_ms, &error);
    if (!first) {
      result_.failed = true;
      result_.failure_kind = "connection";
      result_.failure = "first login failed: " + error;
      return result_;
    }
    for (const auto& spec : setting_specs()) {
      Answer a = first->exec("SHOW " + spec.name);
      if (!a.ok || a.rows.size() != 1) {
        result_.failed = true;
        result_.failure_kind = "harness";
        result_.failure = "SHOW " + spec.name + ": " + a.brief();
        return result_;
      }
      defaults_[spec.name] = a.rows[0][0];
    }
  }
  clients_.resize(static_cast<size_t>(cfg_.clients));
  std::optional<Failure> failure;
  for (int i = 0; i < cfg_.clients && !failure; ++i) {
    Client& c = clients_[static_cast<size_t>(i)];
    c.index = i;
    c.tenant = (i % cfg_.tenants) + 1;
    failure = connect(c);
  }
  Client* actor = nullptr;
  for (op_ = 0; op_ < cfg_.ops && !failure; ++op_) {
    std::vector<Client*> pinned_clients;
    for (auto& c : clients_) {
      if (pinned(c)) pinned_clients.push_back(&c);
    }
    actor = !pinned_clients.empty() && below(100) < 35 ? pick(pinned_clients) : &clients_[static_cast<size_t>(below(cfg_.clients))];
    const std::string op = pick(candidates(*actor));
    ++result_.ops_by_kind[op];
    skipped_ = false;
    failure = step(*actor, op);
    if (!failure && !skipped_) failure = check(*actor, op == "cancel");
    if (!failure) failure = drain(*actor);
    if (!failure) failure = check_notes();
    if (!failure && op_ % 50 == 49) {
      for (auto& c : clients_) {
        if ((failure = drain(c))) break;
      }
    }
  }
  result_.ops_done = op_;
  if (!failure) {
    // Late notifications: every client once more, after a round trip of its own.
    for (auto& c : clients_) {
      if (c.tx == Tx::kFailed) continue;
      Answer a = c.conn->exec("SELECT 1");
      if (late_cancel(c, a)) a = c.conn->exec("SELECT 1");
      if (!a.ok && !a.no_server()) {
        failure = Failure{"connection", c.name() + " final SELECT 1: " + a.brief()};
        break;
      }
      if ((failure = drain(c))) break;
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();

  std::ostringstream s;
  s << "state-leak run '" << cfg_.name << "': seed " << cfg_.seed << " (ROWGUARD_LEAK_SEED), " << result_.ops_done
    << " of " << cfg_.ops << " ops, " << cfg_.clients << " clients of " << cfg_.tenants << " tenants, max "
    << cfg_.max_pinned << " pinned, " << result_.answers_53300 << " answers 53300, " << result_.late_cancels
    << " late cancels, " << static_cast<int>(seconds * 10) / 10.0
    << " s\n  ops:";
  for (const auto& [k, n] : result_.ops_by_kind) s << " " << k << "=" << n;
  s << "\n";
  if (failure) {
    result_.failed = true;
    result_.failure_kind = failure->kind;
    result_.failure_op = op_ - 1;
    std::ostringstream f;
    f << "op #" << result_.failure_op << " by " << (actor ? actor->name() : "?") << " [" << failure->kind
      << "]: " << failure->text << "\n  that client's last operations:\n";
    if (actor) {
      for (const auto& h : actor->history) f << "    " << h << "\n";
    }
    f << "  rerun: ROWGUARD_LEAK_SEED=" << cfg_.seed;
    result_.failure = f.str();
    s << "  FIRST DISAGREEMENT " << result_.failure << "\n";
  } else {
    s << "  no disagreement\n";
  }
  if (result_.ops_done > 0 &&
      result_.answers_53300 > static_cast<int>(cfg_.max_53300_share * result_.ops_done) && !failure) {
    result_.failed = true;
    result_.failure_kind = "53300";
    result_.failure = std::to_string(result_.answers_53300) + " answers 53300 in " + std::to_string(result_.ops_done) +
                      " ops: more than " + std::to_string(cfg_.max_53300_share * 100) + "% (seed " +
                      std::to_string(cfg_.seed) + ")";
    s << "  " << result_.failure << "\n";
  }
  result_.summary = s.str();
  return result_;
}

}  // namespace

RunResult run(const RunConfig& config, const std::function<std::string(int tenant)>& conninfo) {
  Run r(config, conninfo);
  return r.go();
}

}  // namespace rowguard::testing::adversarial::leak
