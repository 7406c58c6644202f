// A throwaway PostgreSQL 15 and a running rowguard for tests (see pg_server.h).
#include "tests/support/pg_server.h"
#include "tests/support/wait.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>

#ifndef ROWGUARD_BIN
#error "ROWGUARD_BIN must be defined (path of the rowguard executable)"
#endif
#ifndef ROWGUARD_SOURCE_DIR
#error "ROWGUARD_SOURCE_DIR must be defined (the repository root)"
#endif

namespace rowguard::testing {
namespace {

// PostgreSQL refuses to run as root; as root we run the server as this system user.
constexpr const char* kServerUser = "rowguard-pg";

// Creates kServerUser unless it exists (another test binary may be creating it right now,
// so a failing useradd is only an error if the user still does not exist afterwards).
passwd ensure_server_user() {
  if (passwd* pw = ::getpwnam(kServerUser)) return *pw;
  CommandResult added = run_command(
      {"useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", kServerUser});
  passwd* pw = ::getpwnam(kServerUser);
  if (pw == nullptr) throw std::runtime_error(std::string("cannot create user ") + kServerUser + ": " + describe(added));
  return *pw;
}

std::string postgresql_conf(int port, const std::string& socket_dir, const PgServerOptions& options) {
  return "\n# --- rowguard test settings ---\n"
         "listen_addresses = '127.0.0.1'\n"
         "port = " + std::to_string(port) + "\n"
         "unix_socket_directories = '" + socket_dir + "'\n"
         "fsync = off\n"
         "synchronous_commit = off\n"
         "full_page_writes = off\n"
         "max_connections = " + std::to_string(options.max_connections) + "\n"
         "shared_buffers = 16MB\n"
         "max_wal_senders = 0\n"
         "wal_level = minimal\n"
         "password_encryption = 'scram-sha-256'\n"
         "log_min_messages = warning\n"
         "log_connections = off\n";
}

constexpr const char* kPgHbaConf =
    "# rowguard tests: trust on the unix socket (superuser access for setup and checks),\n"
    "# SCRAM over TCP (what rowguard and the tests' clients use).\n"
    "local all all trust\n"
    "host  all all 127.0.0.1/32 scram-sha-256\n";

// The watchdog: a shell in its own session that waits on a pipe. A byte on the pipe means
// "the server was stopped properly"; EOF means this process died first, so the shell stops
// the server ("${@:2}" is the pg_ctl stop command) and removes its directory ($1).
constexpr const char* kWatchdogScript =
    "trap '' INT HUP QUIT PIPE\n"
    "if IFS= read -r -n 1 _; then exit 0; fi\n"
    "\"${@:2}\" >/dev/null 2>&1\n"
    "rm -rf -- \"$1\"\n";

}  // namespace

std::string pg_bin(const std::string& tool) { return std::string(kPgBinDir) + "/" + tool; }

std::string source_dir() { return ROWGUARD_SOURCE_DIR; }

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  if (from.empty()) return text;
  for (std::size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size()))
    text.replace(pos, from.size(), to);
  return text;
}

// ---------------------------------------------------------------------------------------------
// PgServer

PgServer::PgServer(const PgServerOptions& options) : options_(options) {
  try {
    start();
  } catch (...) {
    stop();
    throw;
  }
}

PgServer::~PgServer() { stop(); }

std::vector<std::string> PgServer::as_server_user(std::vector<std::string> argv) const {
  if (!as_root_) return argv;
  std::vector<std::string> wrapped = {"runuser", "-u", kServerUser, "--"};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

CommandResult PgServer::run_server_tool(const std::vector<std::string>& argv, int timeout_seconds) const {
  CommandOptions options;
  options.cwd = dir_;  // readable by the server user, unlike e.g. /root
  options.timeout_seconds = timeout_seconds;
  return run_command_with(as_server_user(argv), options);
}

void PgServer::write_config() const {
  append_text_file(data_dir() + "/postgresql.conf", postgresql_conf(port_, dir_, options_));
  write_text_file(data_dir() + "/pg_hba.conf", kPgHbaConf);
}

void PgServer::start() {
  as_root_ = ::geteuid() == 0;
  dir_ = make_temp_dir("rowguard-pg-");
  if (::chmod(dir_.c_str(), 0755) != 0) throw std::runtime_error("chmod " + dir_ + ": " + std::strerror(errno));
  if (as_root_) {
    passwd pw = ensure_server_user();
    if (::chown(dir_.c_str(), pw.pw_uid, pw.pw_gid) != 0)
      throw std::runtime_error("chown " + dir_ + ": " + std::strerror(errno));
  }

  CommandResult init = run_server_tool({pg_bin("initdb"), "-D", data_dir(), "-U", "postgres", "--auth-local=trust",
                                        "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"},
                                       180);
  if (init.exit_code != 0) throw std::runtime_error("initdb failed: " + describe(init));

  // The free port may be taken by someone else before the server binds it: retry then.
  for (int attempt = 1;; ++attempt) {
    port_ = free_tcp_port();
    write_config();
    CommandResult started = run_server_tool(
        {pg_bin("pg_ctl"), "-D", data_dir(), "-l", dir_ + "/postgres.log", "-w", "-t", "60", "start"}, 90);
    if (started.exit_code == 0) break;
    run_server_tool({pg_bin("pg_ctl"), "-D", data_dir(), "-m", "immediate", "-w", "stop"}, 30);
    bool port_taken = log().find("could not bind") != std::string::npos;
    if (!port_taken || attempt == 3)
      throw std::runtime_error("pg_ctl start failed: " + describe(started) + "\nserver log:\n" + tail_lines(log(), 40));
  }
  running_ = true;
  start_watchdog();
}

void PgServer::start_watchdog() {
  std::vector<std::string> args = {"/bin/bash", "-c", kWatchdogScript, "rowguard-pg-watchdog", dir_};
  for (auto& arg : as_server_user({pg_bin("pg_ctl"), "-D", data_dir(), "-m", "immediate", "-w", "stop"}))
    args.push_back(arg);
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
  int dev_null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();  // not hit by a Ctrl-C meant for the test binary
    ::dup2(fds[0], 0);
    ::dup2(dev_null, 1);
    ::dup2(dev_null, 2);
    ::syscall(SYS_close_range, 3U, ~0U, 0U);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fds[0]);
  if (dev_null >= 0) ::close(dev_null);
  if (pid < 0) {
    ::close(fds[1]);
    return;  // no watchdog: cleanup then relies on the destructor only
  }
  watchdog_fd_ = fds[1];
  watchdog_pid_ = pid;
}

void PgServer::dismiss_watchdog() {
  if (watchdog_fd_ >= 0) {
    (void)!::write(watchdog_fd_, "x", 1);
    ::close(watchdog_fd_);
    watchdog_fd_ = -1;
  }
  if (watchdog_pid_ > 0) {
    ::waitpid(watchdog_pid_, nullptr, 0);
    watchdog_pid_ = -1;
  }
}

void PgServer::stop() {
  if (running_) {
    run_server_tool({pg_bin("pg_ctl"), "-D", data_dir(), "-m", "immediate", "-w", "stop"}, 60);
    running_ = false;
  }
  if (!dir_.empty()) {
    remove_tree(dir_);
    dir_.clear();
  }
  dismiss_watchdog();
}

void PgServer::kill_immediate() {
  if (!running_) return;
  // The server runs with synchronous_commit = off (postgresql_conf): a commit the WAL writer has
  // not written yet would be lost by the kill, where a production server (synchronous commits)
  // keeps it. A checkpoint first makes everything committed so far survive, as there; on a loaded
  // machine FaultsE2e lost the example data without it. Best effort: the kill follows regardless.
  psql_super("CHECKPOINT");
  CommandResult stopped =
      run_server_tool({pg_bin("pg_ctl"), "-D", data_dir(), "-m", "immediate", "-w", "stop"}, 60);
  if (stopped.exit_code != 0) throw std::runtime_error("pg_ctl stop -m immediate failed: " + describe(stopped));
  running_ = false;
}

void PgServer::restart() {
  if (running_) return;
  CommandResult started = run_server_tool(
      {pg_bin("pg_ctl"), "-D", data_dir(), "-l", dir_ + "/postgres.log", "-w", "-t", "60", "start"}, 90);
  if (started.exit_code != 0)
    throw std::runtime_error("pg_ctl start (restart) failed: " + describe(started) + "\nserver log:\n" +
                             tail_lines(log(), 40));
  running_ = true;
}

std::string PgServer::log() const { return read_text_file(dir_ + "/postgres.log"); }

void PgServer::reload_config() const {
  static const std::string kReloading = "received SIGHUP, reloading configuration files";
  auto reloads = [&] {
    const std::string text = log();
    size_t n = 0;
    for (size_t at = text.find(kReloading); at != std::string::npos; at = text.find(kReloading, at + 1)) ++n;
    return n;
  };
  const size_t before = reloads();
  CommandResult r = psql_super("SELECT pg_reload_conf()");
  if (r.exit_code != 0) throw std::runtime_error("pg_reload_conf() failed: " + describe(r));
  if (!wait_until([&] { return reloads() > before; }, std::chrono::seconds(30)))
    throw std::runtime_error("the server did not log a configuration reload within 30 s:\n" + tail_lines(log(), 20));
}

CommandResult PgServer::psql_super(const std::string& sql, const std::string& db) const {
  return run_command({pg_bin("psql"), "-X", "-v", "ON_ERROR_STOP=1", "-At", "-q", "-h", dir_, "-p",
                      std::to_string(port_), "-U", "postgres", "-d", db, "-c", sql},
                     {{"PGCONNECT_TIMEOUT", "10"}}, "", 300);
}

CommandResult PgServer::psql_super_file(const std::string& path, const std::string& db) const {
  return run_command({pg_bin("psql"), "-X", "-v", "ON_ERROR_STOP=1", "-At", "-q", "-h", dir_, "-p",
                      std::to_string(port_), "-U", "postgres", "-d", db, "-f", path},
                     {{"PGCONNECT_TIMEOUT", "10"}}, "", 300);
}

void PgServer::load_example_schema() const {
  CommandResult loaded = psql_super_file(source_dir() + "/examples/schema.sql");
  if (loaded.exit_code != 0) throw std::runtime_error("examples/schema.sql failed: " + describe(loaded));
}

PgServer& PgServer::shared() {
  static std::mutex mutex;
  static std::string failure;
  static std::unique_ptr<PgServer> instance;  // destroyed (server stopped) at exit
  std::lock_guard<std::mutex> lock(mutex);
  if (instance) return *instance;
  if (!failure.empty()) throw std::runtime_error(failure);
  try {
    instance = std::make_unique<PgServer>();
  } catch (const std::exception& e) {
    failure = std::string("shared PostgreSQL did not start: ") + e.what();
    throw std::runtime_error(failure);
  }
  return *instance;
}

// ---------------------------------------------------------------------------------------------
// RowguardProcess

RowguardProcess::RowguardProcess(const std::string& config_template, const PgServer& upstream,
                                 const std::string& log_level)
    : RowguardProcess(config_template, upstream.port(), log_level) {}

RowguardProcess::RowguardProcess(const std::string& config_template, int upstream_port,
                                 const std::string& log_level) {
  dir_ = make_temp_dir("rowguard-test-");
  try {
    start(config_template, upstream_port, log_level);
  } catch (...) {
    process_.reset();
    remove_tree(dir_);
    throw;
  }
}

RowguardProcess::~RowguardProcess() {
  stop();
  remove_tree(dir_);
}

void RowguardProcess::start(const std::string& config_template, int upstream_port, const std::string& log_level) {
  config_path_ = dir_ + "/rowguard.toml";
  log_path_ = dir_ + "/rowguard.log";
  const std::string upstream = "127.0.0.1:" + std::to_string(upstream_port);
  // The free port may be taken by someone else before rowguard binds it: retry then.
  for (int attempt = 1;; ++attempt) {
    port_ = free_tcp_port();
    std::string config = replace_all(config_template, "{{LISTEN}}", "127.0.0.1:" + std::to_string(port_));
    write_text_file(config_path_, replace_all(config, "{{UPSTREAM}}", upstream));
    write_text_file(log_path_, "");
    std::vector<std::string> argv = {ROWGUARD_BIN, "--config", config_path_, "--log-level", log_level};
    process_ = std::make_unique<BackgroundProcess>(argv, log_path_);

    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (process_->running() && !tcp_port_open(host(), port_) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (process_->running() && tcp_port_open(host(), port_)) return;

    std::string why = process_->running() ? "is not listening after 15 s"
                                          : "exited with code " + std::to_string(process_->stop());
    process_->stop();
    bool port_taken = log().find("in use") != std::string::npos;
    if (!port_taken || attempt == 3)
      throw std::runtime_error("rowguard (" + format_command(argv) + ") " + why + " on port " +
                               std::to_string(port_) + "; log:\n" + tail_lines(log(), 60));
  }
}

int RowguardProcess::stop() { return process_ ? process_->stop() : -1; }

std::string RowguardProcess::log() const { return read_text_file(log_path_); }

std::string RowguardProcess::conninfo(const std::string& user, const std::string& db) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=" + user + " dbname=" + db + " sslmode=disable";
}

std::vector<std::string> RowguardProcess::psql_argv(const std::string& user, const std::string& db) const {
  return {pg_bin("psql"), conninfo(user, db), "-X", "-At", "-v", "ON_ERROR_STOP=0", "-v", "VERBOSITY=verbose"};
}

std::map<std::string, std::string> RowguardProcess::psql_env(const std::string& password) const {
  return {{"PGPASSWORD", password}, {"PGCONNECT_TIMEOUT", "10"}};
}

CommandResult RowguardProcess::psql(const std::string& user, const std::string& password, const std::string& sql,
                                    const std::string& db) const {
  std::vector<std::string> argv = psql_argv(user, db);
  argv.push_back("-c");
  argv.push_back(sql);
  return run_command(argv, psql_env(password));
}

CommandResult RowguardProcess::psql_script(const std::string& user, const std::string& password,
                                           const std::string& script, const std::string& db) const {
  std::vector<std::string> argv = psql_argv(user, db);
  argv.push_back("-f");
  argv.push_back("-");
  return run_command(argv, psql_env(password), script);
}

}  // namespace rowguard::testing
