// The permanent adversarial suite's harness: a throwaway PostgreSQL 15 with the example schema
// (examples/schema.sql: tenants 1, 2, 3; customers and orders tenant-scoped, countries global,
// audit_log not in the policy), rowguard in front of it, and a libpq client.
//
// Every case attacks as tenant 1 (user t1 / pw1) and asserts that nothing of tenant 2 or 3
// reaches it: no row, no count, no value in an error, no wait. The other tenants' rows are
// recognisable: ids 2xx / 3xx, names "globex-…" / "initech-…" (see other_tenant_marker()).
//
// Test files in this folder are globbed into one binary (rowguard_adversarial_tests); each case
// class lives in a file of its own (sql_functions_test.cc, protocol_desync_test.cc, ...).
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/pg_server.h"
#include "tests/support/wait.h"

namespace rowguard::testing::adversarial {

// What one statement returned through libpq.
struct QueryResult {
  bool ok = false;                 // PGRES_COMMAND_OK / TUPLES_OK / COPY_*
  std::string sqlstate;            // when !ok
  std::string message;             // primary message (and detail/hint/context) when !ok
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;
  std::string command_tag;

  bool refused() const { return !ok && sqlstate == "42501"; }
  // Every value and the message, joined: for "does any other tenant's data appear" checks.
  std::string everything() const;
};

// A libpq connection (owned). Connect failures throw std::runtime_error with libpq's message.
class Client {
 public:
  Client(const std::string& conninfo);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  QueryResult exec(const std::string& sql);
  // Extended protocol (unnamed statement), text parameters; nullopt = NULL.
  QueryResult exec_params(const std::string& sql, const std::vector<std::optional<std::string>>& params);
  bool alive();  // SELECT 1 answers
  PGconn* raw() { return conn_; }

 private:
  PGconn* conn_ = nullptr;
};

// The shared environment, started on first use and stopped at exit: the example schema loaded
// into PgServer::shared() and one rowguard in front of it with examples/rowguard.toml.
class Env {
 public:
  static Env& get();
  PgServer& pg() { return *pg_; }
  RowguardProcess& rowguard() { return *rowguard_; }
  // A new connection through rowguard as tenant user t1 (pw1), t2 (pw2), or the bypass user dba.
  std::unique_ptr<Client> tenant(int n = 1);
  std::unique_ptr<Client> bypass();
  // A superuser connection straight to PostgreSQL (for setting up and checking data).
  std::unique_ptr<Client> direct_super();

 private:
  Env();
  PgServer* pg_ = nullptr;
  std::unique_ptr<RowguardProcess> rowguard_;
};

// examples/rowguard.toml with {{LISTEN}} / {{UPSTREAM}} placeholders, for a rowguard of one's own.
std::string example_config_template();

// True when `text` carries a value only another tenant has (ids 201-204, 301-303, names
// globex-*, initech-*, amounts 42.00/310.50/7.25/999.99/15.00/480.00).
bool has_other_tenant_marker(const std::string& text);

// The outcome every read attack must have: refused with 42501, or answered with nothing of
// another tenant (and an error, if any, carries no other tenant's value).
::testing::AssertionResult no_leak(const QueryResult& r);

}  // namespace rowguard::testing::adversarial

namespace rowguard::testing::adversarial {

// Polls `condition` until it holds or `timeout` passes; true when it held (tests/support/wait.h).
using ::rowguard::testing::wait_until;

}  // namespace rowguard::testing::adversarial

namespace rowguard::testing::adversarial {

// How often `what` occurs in `text`.
size_t occurrences(const std::string& text, const std::string& what);

// Writes `text` as rg's policy file, sends SIGHUP and waits (10 s at most) until rowguard has
// loaded it; fails when it was rejected or no reload was logged.
::testing::AssertionResult reload_policy(RowguardProcess& rg, const std::string& text);

}  // namespace rowguard::testing::adversarial

namespace rowguard::testing::adversarial {

// A rowguard of the example policy with one worker thread, so that an attacker's sessions and a
// bystander's share it (started on first use, shared by the tests of the binary).
class OneWorker {
 public:
  OneWorker();
  std::unique_ptr<Client> tenant(int n);
  RowguardProcess& rowguard() { return *rowguard_; }

 private:
  std::unique_ptr<RowguardProcess> rowguard_;
};
OneWorker& one_worker();

// `s` repeated `n` times.
std::string repeat(const std::string& s, int n);

// Runs `sql` (a COPY FROM STDIN) on `c`, sends `data`, ends the COPY; returns "ok" or
// "<sqlstate> <message>".
std::string copy_in(Client& c, const std::string& sql, const std::string& data);

}  // namespace rowguard::testing::adversarial
