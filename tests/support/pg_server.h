// Servers the integration and end-to-end tests talk to:
//  - PgServer: a throwaway PostgreSQL 15 (initdb into a temp dir, free port, run as the
//    system user rowguard-pg when we are root, because PostgreSQL refuses to run as root);
//  - RowguardProcess: the rowguard binary started on a free port with a test config,
//    plus a psql helper that connects through it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tests/support/process.h"

namespace rowguard::testing {

// Where the PostgreSQL 15 server and client programs live.
inline constexpr const char* kPgBinDir = "/usr/lib/postgresql/15/bin";

// kPgBinDir + "/" + tool, e.g. pg_bin("psql").
std::string pg_bin(const std::string& tool);

// The repository root (ROWGUARD_SOURCE_DIR), e.g. to find examples/.
std::string source_dir();

// A PostgreSQL 15 cluster in a temp dir, listening on 127.0.0.1:<free port> (scram-sha-256)
// and on a unix socket in the temp dir (trust). Started by the constructor (throws
// std::runtime_error with the server log on failure); stopped with an immediate shutdown and
// its directory removed by the destructor. A watchdog process does the same cleanup if this
// process dies without running the destructor (SIGINT, SIGTERM, SIGKILL, crash).
// Settings of a dedicated PgServer (PgServer::shared() uses the defaults).
struct PgServerOptions {
  int max_connections = 300;
};

class PgServer {
 public:
  PgServer() : PgServer(PgServerOptions{}) {}
  explicit PgServer(const PgServerOptions& options);
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  int port() const { return port_; }
  std::string host() const { return "127.0.0.1"; }
  const std::string& socket_dir() const { return dir_; }
  std::string data_dir() const { return dir_ + "/data"; }
  std::string log() const;  // the server log

  // Runs sql with psql over the unix socket as superuser postgres
  // (-X -v ON_ERROR_STOP=1 -At -q).
  CommandResult psql_super(const std::string& sql, const std::string& db = "postgres") const;

  // Same, for a script file (-f path); psql meta-commands such as \c work there.
  CommandResult psql_super_file(const std::string& path, const std::string& db = "postgres") const;

  // SELECT pg_reload_conf(), then waits until the postmaster has taken the signal (its log says
  // "received SIGHUP"; it reloads postgresql.conf, pg_hba.conf and the TLS files before it accepts
  // the next connection): every connection opened afterwards sees the new settings. Throws
  // std::runtime_error when that does not happen within 30 s.
  void reload_config() const;

  // Runs examples/schema.sql as superuser: (re)creates role app and database appdb with the
  // example SaaS schema and data. Throws std::runtime_error on failure.
  void load_example_schema() const;

  // Stops the server and removes its directory; idempotent.
  void stop();

  // Fault injection: an immediate shutdown (like `pg_ctl stop -m immediate`: every backend
  // gets SIGQUIT and ends its client connection at once; a CHECKPOINT runs first so that what was
  // committed survives despite synchronous_commit = off), keeping the data
  // directory and the port; restart() starts it again on the same port (crash recovery).
  // Throw std::runtime_error on failure. Not for shared().
  void kill_immediate();
  void restart();
  bool running() const { return running_; }

  // A process-wide instance, started on first use and stopped at exit.
  static PgServer& shared();

 private:
  void start();
  std::vector<std::string> as_server_user(std::vector<std::string> argv) const;
  CommandResult run_server_tool(const std::vector<std::string>& argv, int timeout_seconds) const;
  void write_config() const;
  void start_watchdog();
  void dismiss_watchdog();

  PgServerOptions options_;
  std::string dir_;
  int port_ = 0;
  bool running_ = false;
  bool as_root_ = false;
  int watchdog_fd_ = -1;
  pid_t watchdog_pid_ = -1;
};

// rowguard running on 127.0.0.1:<free port> with a config made from a template: "{{LISTEN}}"
// becomes "127.0.0.1:<its port>" and "{{UPSTREAM}}" "127.0.0.1:<upstream port>". It runs
// `ROWGUARD_BIN --config FILE --log-level LEVEL` with stdout and stderr in a log file; the
// constructor waits up to 15 s for the port to accept connections (throws
// std::runtime_error with the log otherwise). The destructor stops it.
class RowguardProcess {
 public:
  RowguardProcess(const std::string& config_template, const PgServer& upstream, const std::string& log_level = "debug");
  RowguardProcess(const std::string& config_template, int upstream_port, const std::string& log_level = "debug");
  ~RowguardProcess();
  RowguardProcess(const RowguardProcess&) = delete;
  RowguardProcess& operator=(const RowguardProcess&) = delete;

  int port() const { return port_; }
  std::string host() const { return "127.0.0.1"; }
  std::string log() const;  // what rowguard printed so far
  const std::string& config_path() const { return config_path_; }
  bool running() { return process_ && process_->running(); }
  pid_t pid() const { return process_ ? process_->pid() : -1; }

  // SIGTERM, wait up to 5 s, then SIGKILL. Returns rowguard's exit code; idempotent.
  int stop();

  // "host=127.0.0.1 port=<port> user=<user> dbname=<db> sslmode=disable"
  std::string conninfo(const std::string& user, const std::string& db = "appdb") const;

  // psql through rowguard with PGPASSWORD=password and PGCONNECT_TIMEOUT=10, flags
  // -X -At -v ON_ERROR_STOP=0 -v VERBOSITY=verbose (so errors show their SQLSTATE):
  // psql runs sql with -c (one simple-protocol Query message); psql_script feeds script to
  // psql's stdin, statement by statement.
  CommandResult psql(const std::string& user, const std::string& password, const std::string& sql,
                     const std::string& db = "appdb") const;
  CommandResult psql_script(const std::string& user, const std::string& password, const std::string& script,
                            const std::string& db = "appdb") const;

 private:
  void start(const std::string& config_template, int upstream_port, const std::string& log_level);
  std::vector<std::string> psql_argv(const std::string& user, const std::string& db) const;
  std::map<std::string, std::string> psql_env(const std::string& password) const;

  std::string dir_;
  std::string config_path_;
  std::string log_path_;
  int port_ = 0;
  std::unique_ptr<BackgroundProcess> process_;
};

// Replaces every occurrence of from in text with to.
std::string replace_all(std::string text, const std::string& from, const std::string& to);

}  // namespace rowguard::testing
