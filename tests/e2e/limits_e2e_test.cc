// End-to-end tests of [limits]: message length limits refused from the length word (tenant and
// bypass sessions, COPY data, the startup packet; nothing of the message forwarded), the idle
// and idle-in-transaction timeouts (57P05 / 25P03, the transaction rolled back), slow clients
// (slowloris) that hold neither memory nor other clients up, and clients that never read their
// results (rowguard stops reading the server: bounded memory; the backend ends when the client
// goes). The clients are tests/e2e/drivers/limits_test.py (raw v3 messages after a psycopg2 login).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/pg_server.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace rowguard::testing {
namespace {

std::string example_config_template() {
  std::string text = read_text_file(source_dir() + "/examples/rowguard.toml");
  text = replace_all(text, "\"127.0.0.1:6432\"", "\"{{LISTEN}}\"");
  return replace_all(text, "\"127.0.0.1:5432\"", "\"{{UPSTREAM}}\"");
}

std::string rowguard_pid(const RowguardProcess& rg) {
  CommandResult r = run_command({"pgrep", "-f", "--", "--config " + rg.config_path()}, {}, "", 10);
  return r.out.substr(0, r.out.find('\n'));
}

class LimitsE2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    try {
      pg_ = &PgServer::shared();
      pg_->load_example_schema();
    } catch (const std::exception& e) {
      setup_error_ = e.what();
    }
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }

  // Runs limits_test.py MODE against rg; every check it prints must be "ok".
  static CommandResult run_mode(const RowguardProcess& rg, const std::string& mode, int timeout_seconds) {
    const std::string pid = rowguard_pid(rg);
    EXPECT_FALSE(pid.empty());
    CommandResult r = run_command({"/usr/bin/python3", source_dir() + "/tests/e2e/drivers/limits_test.py", mode},
                       {{"ROWGUARD_HOST", rg.host()},
                        {"ROWGUARD_PORT", std::to_string(rg.port())},
                        {"ROWGUARD_PID", pid},
                        {"PG_SOCKET_DIR", pg_->socket_dir()},
                        {"PG_PORT", std::to_string(pg_->port())}},
                       "", timeout_seconds);
    std::printf("%s", r.out.c_str());  // the checks, and the figures (RSS growth) for the README
    return r;
  }

  static inline PgServer* pg_ = nullptr;
  static inline std::string setup_error_;
};

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST_F(LimitsE2e, OversizedMessagesAreRefusedFromTheirLengthWord) {
  RowguardProcess rg(example_config_template() + "\n[limits]\nmax_message_size = 1048576\nmax_startup_packet = 4096\n"
                         "max_server_message = 1048576\n",
                     *pg_, "info");
  CommandResult r = run_mode(rg, "oversize", 120);
  EXPECT_EQ(r.exit_code, 0) << describe(r) << tail_lines(rg.log(), 40);
  for (const char* check : {"ok tenant Bind over max_message_size: FATAL 08P01",
                            "ok bypass Query over max_message_size: FATAL 08P01",
                            "ok the oversized INSERT was not forwarded", "ok CopyData over max_message_size: FATAL 08P01",
                            "ok startup packet over max_startup_packet: FATAL 08P01",
                            "ok t1: a server message over max_server_message: FATAL 54000",
                            "ok dba: a server message over max_server_message: FATAL 54000",
                            "ok a 500 KB query under the limit works", "ok other clients still work"}) {
    EXPECT_TRUE(contains(r.out, check)) << check << "\n" << r.out;
  }
  EXPECT_TRUE(contains(rg.log(), "Bind of 2000004 bytes refused: over [limits] max_message_size")) << rg.log();
}

TEST_F(LimitsE2e, IdleAndIdleInTransactionTimeouts) {
  RowguardProcess rg(example_config_template() + "\n[limits]\nidle_client_timeout = 2\nidle_in_transaction_timeout = 2\n",
                     *pg_, "info");
  CommandResult r = run_mode(rg, "idle", 180);
  EXPECT_EQ(r.exit_code, 0) << describe(r) << tail_lines(rg.log(), 40);
  for (const char* check :
       {"ok idle tenant session: FATAL 57P05", "ok idle bypass session: FATAL 57P05",
        "ok idle in transaction (tenant): FATAL 25P03", "ok the tenant's transaction was rolled back",
        "ok idle in transaction (bypass): FATAL 25P03", "ok the bypass transaction was rolled back",
        "ok the bypass session's backend is gone", "ok a bypass statement running past the timeouts completes",
        "ok a tenant statement waiting on a lock past the timeouts completes", "ok an active session stays open"}) {
    EXPECT_TRUE(contains(r.out, check)) << check << "\n" << r.out;
  }
}

TEST_F(LimitsE2e, IdleTimeoutOverTls) {
  // The timeout cancels a read on a TLS stream and still writes the FATAL over TLS.
  const std::string dir = make_temp_dir("rowguard-limits-tls");
  CommandResult cert = run_command({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                                    dir + "/server.key", "-out", dir + "/server.crt", "-days", "1", "-subj",
                                    "/CN=localhost"},
                                   {}, "", 60);
  ASSERT_EQ(cert.exit_code, 0) << describe(cert);
  RowguardProcess rg(example_config_template() + "\n[tls]\ncert = \"" + dir + "/server.crt\"\nkey = \"" + dir +
                         "/server.key\"\nmode = \"require\"\n\n[limits]\nidle_client_timeout = 1\n",
                     *pg_, "info");
  const std::string conninfo = "host=127.0.0.1 port=" + std::to_string(rg.port()) + " user=t1 dbname=appdb sslmode=require";
  CommandResult r = run_command({pg_bin("psql"), conninfo, "-X", "-At", "-v", "VERBOSITY=verbose"},
                                {{"PGPASSWORD", "pw1"}, {"PGCONNECT_TIMEOUT", "10"}},
                                "SELECT 'before';\n\\! sleep 3\nSELECT 'after';\n", 60);
  EXPECT_TRUE(contains(r.out, "before")) << describe(r);
  EXPECT_FALSE(contains(r.out, "after")) << describe(r);
  EXPECT_TRUE(contains(r.err, "57P05")) << describe(r) << tail_lines(rg.log(), 20);
  EXPECT_TRUE(contains(r.err, "terminating connection due to idle-session timeout")) << describe(r);
  EXPECT_TRUE(contains(rg.log(), "tls=on")) << rg.log();
  remove_tree(dir);
}

TEST_F(LimitsE2e, SlowClientsHoldNeitherMemoryNorOthersUp) {
  // 30 clients trickle a startup packet (auth_timeout ends them), 15 logged-in clients trickle a
  // Query and 5 stall after 900 KB of a 1 MB Bind (message_timeout ends them), one byte every
  // 0.5 s, while a normal client logs in and works ten times.
  std::string config = replace_all(example_config_template(), "upstream_database = \"appdb\"",
                                   "upstream_database = \"appdb\"\nauth_timeout = 2");
  RowguardProcess rg(config + "\n[limits]\nmessage_timeout = 2\n", *pg_, "info");
  CommandResult r = run_mode(rg, "slowloris", 180);
  EXPECT_EQ(r.exit_code, 0) << describe(r) << tail_lines(rg.log(), 40);
  for (const char* check : {"ok a normal client worked throughout (10 sessions)",
                            "ok every slow startup was closed by rowguard (auth timeout)",
                            "ok every trickled message ended in FATAL 08P01 (message_timeout)",
                            "ok every stalled 900 KB message ended in FATAL 08P01", "ok rowguard RSS grew < 64 MiB",
                            "ok a normal client works afterwards"}) {
    EXPECT_TRUE(contains(r.out, check)) << check << "\n" << r.out;
  }
}

TEST_F(LimitsE2e, ClientThatNeverReadsCannotMakeRowguardBuffer) {
  // Default limits. A tenant (and a bypass user) send a query producing tens of GB and never
  // read: PostgreSQL must end up blocked writing (rowguard stopped reading it), rowguard's RSS
  // stays within 64 MiB of where it was, others work; killing the clients frees the backends.
  RowguardProcess rg(example_config_template(), *pg_, "info");
  CommandResult r = run_mode(rg, "backpressure", 180);
  EXPECT_EQ(r.exit_code, 0) << describe(r) << tail_lines(rg.log(), 40);
  for (const char* check : {"ok both server backends block on writing (backpressure reached PostgreSQL)",
                            "ok rowguard RSS grew < 64 MiB while the clients do not read",
                            "ok both backends are still running their query", "ok other clients work meanwhile",
                            "ok closing the clients frees their server backends", "ok a normal client works afterwards"}) {
    EXPECT_TRUE(contains(r.out, check)) << check << "\n" << r.out;
  }
}

// CPU time (user + system, clock ticks) the process has used so far: /proc/<pid>/stat fields 14, 15.
long cpu_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));  // after "pid (comm) "
  std::string f;
  long utime = 0, stime = 0;
  for (int i = 3; fields >> f; ++i) {
    if (i == 14) utime = std::stol(f);
    if (i == 15) {
      stime = std::stol(f);
      break;
    }
  }
  return utime + stime;
}

size_t open_fds(pid_t pid) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) ++n;
  return n;
}

int connect_raw(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Out of file descriptors (EMFILE), accept() fails at once while connections wait in the backlog:
// rowguard must back off instead of retrying in a busy loop (a core burnt, the log flooded), and
// serve again once descriptors are free.
TEST_F(LimitsE2e, OutOfFileDescriptorsTheAcceptLoopBacksOff) {
  RowguardProcess rg(example_config_template(), *pg_, "info");
  ASSERT_EQ(rg.psql("t1", "pw1", "SELECT 1").out, "1\n");
  const pid_t pid = rg.pid();
  const size_t base = open_fds(pid);
  std::string soft;  // "Max open files   <soft>   <hard>   files"
  {
    std::ifstream limits("/proc/" + std::to_string(pid) + "/limits");
    for (std::string line; std::getline(limits, line);) {
      if (line.rfind("Max open files", 0) == 0) std::istringstream(line.substr(14)) >> soft;
    }
  }
  ASSERT_FALSE(soft.empty());
  const std::string limit = std::to_string(base + 4);
  CommandResult lowered = run_command({"prlimit", "--pid", std::to_string(pid), "--nofile=" + limit + ":"}, {}, "", 10);
  ASSERT_EQ(lowered.exit_code, 0) << describe(lowered);
  std::vector<int> fds;
  for (int i = 0; i < 20; ++i) {
    int fd = connect_raw(rg.port());
    if (fd >= 0) fds.push_back(fd);
  }
  ASSERT_EQ(fds.size(), 20u);
  // The descriptors run out; the rest wait in the backlog.
  ASSERT_TRUE(wait_until([&] { return rg.log().find("accept") != std::string::npos; }, std::chrono::seconds(10))) << rg.log();
  const long t0 = cpu_ticks(pid);
  std::this_thread::sleep_for(std::chrono::seconds(2));  // a measurement window, not a synchronisation
  const long used = cpu_ticks(pid) - t0;
  EXPECT_LT(used, 15) << "rowguard used " << used << " clock ticks in 2 s while out of descriptors (a busy accept loop)";
  size_t warnings = 0;
  for (size_t at = 0; (at = rg.log().find("accept failed", at)) != std::string::npos; ++at) ++warnings;
  EXPECT_LT(warnings, 10u) << tail_lines(rg.log(), 20);
  for (int fd : fds) ::close(fd);
  CommandResult raised = run_command({"prlimit", "--pid", std::to_string(pid), "--nofile=" + soft + ":"}, {}, "", 10);
  ASSERT_EQ(raised.exit_code, 0) << describe(raised);
  EXPECT_TRUE(wait_until([&] { return rg.psql("t1", "pw1", "SELECT 2").out == "2\n"; }, std::chrono::seconds(10)))
      << tail_lines(rg.log(), 20);
}

}  // namespace
}  // namespace rowguard::testing
