// End-to-end tests of running several rowguard instances as one service (issue #19): two
// processes share one client port ([proxy] reuse_port = true, SO_REUSEPORT) and both serve
// clients; GET /health on the metrics listener answers 200 while serving and 503 while a
// SIGTERM drain lets open transactions finish, and HAProxy (TCP mode, httpchk) uses it to take a
// draining instance out; a cancel reaches its session whichever instance receives it ([proxy]
// peer_id, peer_listen, [[peers]]), forged keys cancel nothing; startups asking for protocol 3.2,
// 3.9999 or with _pq_ options get NegotiateProtocolVersion and go on.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>

#include "tests/support/pg_server.h"
#include "tests/support/process.h"
#include "tests/support/wait.h"

namespace rowguard::testing {
namespace {

std::string example_config() { return read_text_file(source_dir() + "/examples/rowguard.toml"); }

// The value of one metric line "name value" in a Prometheus exposition, or -1.
double metric(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

// "<HTTP status> <body>" of GET http://127.0.0.1:<port><path> (curl; "000" when unreachable).
std::string http_get(int port, const std::string& path) {
  CommandResult r = run_command(
      {"curl", "-s", "-w", " %{http_code}", "http://127.0.0.1:" + std::to_string(port) + path}, {}, "", 20);
  auto sp = r.out.rfind(' ');
  if (sp == std::string::npos) return r.out;
  return r.out.substr(sp + 1) + " " + r.out.substr(0, sp);
}

// One rowguard process on a given client port (shared with other instances when reuse_port is
// set) with its own metrics port; ready once its metrics port accepts connections.
class Instance {
 public:
  // proxy_extra: lines added to [proxy] after its listen line; tail: text appended to the file.
  Instance(int client_port, int upstream_port, const std::string& proxy_extra, const std::string& tail = "")
      : client_port_(client_port) {
    dir_ = make_temp_dir("rowguard-fleet-");
    metrics_port_ = free_tcp_port();
    std::string config = example_config();
    config = replace_all(config, "\"127.0.0.1:6432\"",
                         "\"127.0.0.1:" + std::to_string(client_port) + "\"\n" + proxy_extra);
    config = replace_all(config, "\"127.0.0.1:5432\"", "\"127.0.0.1:" + std::to_string(upstream_port) + "\"");
    config += "\n[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port_) + "\"\n" + tail;
    config_path_ = dir_ + "/rowguard.toml";
    log_path_ = dir_ + "/rowguard.log";
    write_text_file(config_path_, config);
    write_text_file(log_path_, "");
    process_ = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{ROWGUARD_BIN, "--config", config_path_, "--log-level", "info"}, log_path_);
    ready_ = wait_until([&] { return !process_->running() || tcp_port_open("127.0.0.1", metrics_port_); },
                        std::chrono::seconds(15)) &&
             process_->running();
  }
  ~Instance() {
    process_->stop();
    remove_tree(dir_);
  }
  bool ready() const { return ready_; }
  bool running() { return process_->running(); }
  pid_t pid() const { return process_->pid(); }
  int metrics_port() const { return metrics_port_; }
  int client_port() const { return client_port_; }
  std::string log() const { return read_text_file(log_path_); }
  const std::string& log_path() const { return log_path_; }
  std::string metrics() const { return http_get(metrics_port_, "/metrics"); }

 private:
  std::string dir_, config_path_, log_path_;
  int client_port_ = 0;
  int metrics_port_ = 0;
  bool ready_ = false;
  std::unique_ptr<BackgroundProcess> process_;
};

class FleetE2e : public ::testing::Test {
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
  static inline PgServer* pg_ = nullptr;
  static inline std::string setup_error_;
};

TEST_F(FleetE2e, TwoInstancesShareOnePortWithReusePort) {
  const int port = free_tcp_port();
  Instance a(port, pg_->port(), "reuse_port = true");
  ASSERT_TRUE(a.ready()) << a.log();
  Instance b(port, pg_->port(), "reuse_port = true");
  ASSERT_TRUE(b.ready()) << "the second instance did not start on the shared port:\n" << b.log();

  // 60 connections, each running one tenant statement: the kernel spreads them over both.
  const std::string script = R"PY(
import psycopg2, sys
for i in range(60):
    c = psycopg2.connect(sys.argv[1])
    cur = c.cursor()
    cur.execute("SELECT count(*) FROM orders")
    assert cur.fetchone()[0] == 3, "tenant t1 sees its 3 orders"
    c.close()
print("ok")
)PY";
  const std::string dsn = "host=127.0.0.1 port=" + std::to_string(port) + " user=t1 password=pw1 dbname=appdb";
  CommandResult r = run_command({"/usr/bin/python3", "-c", script, dsn}, {}, "", 120);
  ASSERT_EQ(r.exit_code, 0) << describe(r) << a.log() << b.log();
  EXPECT_EQ(r.out, "ok\n");

  double na = metric(a.metrics(), "rowguard_connections_total");
  double nb = metric(b.metrics(), "rowguard_connections_total");
  EXPECT_GT(na, 0) << a.metrics();
  EXPECT_GT(nb, 0) << b.metrics();
  EXPECT_EQ(na + nb, 60);
}

TEST_F(FleetE2e, WithoutReusePortTheSecondInstanceCannotBind) {
  const int port = free_tcp_port();
  Instance a(port, pg_->port(), "");
  ASSERT_TRUE(a.ready()) << a.log();
  Instance b(port, pg_->port(), "");
  EXPECT_FALSE(b.ready());
  EXPECT_NE(b.log().find("cannot listen"), std::string::npos) << b.log();
}

TEST_F(FleetE2e, HealthIs200WhileServingAnd503WhileDraining) {
  const int port = free_tcp_port();
  Instance a(port, pg_->port(), "shutdown_timeout = 60");
  ASSERT_TRUE(a.ready()) << a.log();
  EXPECT_EQ(http_get(a.metrics_port(), "/health"), "200 ok\n");

  // An open transaction holds the drain open; meanwhile /health says 503, then the transaction
  // commits and the instance stops.
  const std::string script = R"PY(
import psycopg2, sys, time, os, signal, urllib.request, urllib.error
busy = psycopg2.connect(sys.argv[1])
cur = busy.cursor()
cur.execute("UPDATE orders SET amount = amount WHERE id = 101")
os.kill(int(sys.argv[2]), signal.SIGTERM)
deadline = time.time() + 30
while True:
    try:
        code = urllib.request.urlopen(sys.argv[3], timeout=5).status
    except urllib.error.HTTPError as e:
        code = e.code
    if code == 503:
        break
    if time.time() > deadline:
        print("health still", code, "30 s after SIGTERM"); sys.exit(1)
    time.sleep(0.05)
cur.execute("SELECT count(*) FROM orders")
assert cur.fetchone()[0] == 3
busy.commit()
print("draining seen, committed")
)PY";
  const std::string dsn = "host=127.0.0.1 port=" + std::to_string(port) + " user=t1 password=pw1 dbname=appdb";
  const std::string health = "http://127.0.0.1:" + std::to_string(a.metrics_port()) + "/health";
  CommandResult r =
      run_command({"/usr/bin/python3", "-c", script, dsn, std::to_string(a.pid()), health}, {}, "", 90);
  EXPECT_EQ(r.exit_code, 0) << describe(r) << a.log();
  EXPECT_EQ(r.out, "draining seen, committed\n");
  EXPECT_TRUE(wait_until([&] { return !a.running(); }, std::chrono::seconds(30))) << a.log();
}

// Two instances on one port that forward cancels to each other: a cancel sent to the shared port
// lands on either instance (the kernel picks), and the query is cancelled either way.
TEST_F(FleetE2e, CancelReachesTheSessionWhicheverInstanceReceivesIt) {
  const int port = free_tcp_port();
  const int peer_a = free_tcp_port(), peer_b = free_tcp_port();
  // [proxy] keys of instance `id`, listening for its peers on `own`; [[peers]] names the other.
  auto extra = [&](int id, int own) {
    return "reuse_port = true\npeer_id = " + std::to_string(id) + "\npeer_listen = \"127.0.0.1:" + std::to_string(own) +
           "\"";
  };
  // pg_sleep is not on the builtin allowlist: allowed here for the long-running statement.
  const std::string sleep = "[functions]\nallow = [\"pg_catalog.pg_sleep\"]\n";
  Instance a(port, pg_->port(), extra(3, peer_a), sleep + "[[peers]]\nid = 7\naddress = \"127.0.0.1:" + std::to_string(peer_b) + "\"\n");
  ASSERT_TRUE(a.ready()) << a.log();
  Instance b(port, pg_->port(), extra(7, peer_b), sleep + "[[peers]]\nid = 3\naddress = \"127.0.0.1:" + std::to_string(peer_a) + "\"\n");
  ASSERT_TRUE(b.ready()) << b.log();

  // Each round: a tenant query that would sleep 30 s, cancelled through the shared port with
  // libpq's PQcancel (a new connection: either instance). Rounds go on until cancels were seen
  // taking both paths (local and forwarded), each round's query ending in 57014.
  const std::string script = R"PY(
import psycopg2, sys, threading, time, socket, struct, os
dsn, logs, super_dsn = sys.argv[1], sys.argv[2:4], sys.argv[7]
def seen(text):
    return any(text in open(p).read() for p in logs)
# Runs action() once `sql` is running upstream (seen active in pg_stat_activity as superuser).
def when_running(sql, action):
    def watch():
        w = psycopg2.connect(super_dsn); w.autocommit = True; wc = w.cursor()
        deadline = time.time() + 10
        while time.time() < deadline:
            wc.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s", (sql + "%",))
            if wc.fetchone()[0] > 0:
                break
            time.sleep(0.02)
        w.close()
        action()
    t = threading.Thread(target=watch); t.start(); return t
for rnd in range(40):
    c = psycopg2.connect(dsn)
    cur = c.cursor()
    t = when_running("SELECT pg_catalog.pg_sleep(30)", c.cancel)
    try:
        cur.execute("SELECT pg_catalog.pg_sleep(30) FROM orders LIMIT 1")
        print("round", rnd, "not cancelled"); sys.exit(1)
    except psycopg2.Error as e:
        if e.pgcode != "57014":
            print("round", rnd, "failed with", e.pgcode, e); sys.exit(1)
    t.join()
    c.close()
    if seen("cancel request forwarded to peer") and seen("cancel forwarded to its backend"):
        break
else:
    print("40 rounds without both paths"); sys.exit(1)
assert seen("forwarded cancel request sent to its backend")

# Forged keys cancel nothing: random keys naming either instance, sent to the shared port and to
# both peer listeners, while a 2 s query runs.
c = psycopg2.connect(dsn)
cur = c.cursor()
def forge():
    for target in [int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])]:
        for inst in (3, 7):
            pid = (inst << 22) | (int.from_bytes(os.urandom(3), "big") & 0x3fffff) | 1
            key = int.from_bytes(os.urandom(4), "big", signed=True)
            s = socket.create_connection(("127.0.0.1", target))
            s.sendall(struct.pack("!iiii", 16, 80877102, pid, key))
            s.close()
f = when_running("SELECT pg_catalog.pg_sleep(2)", forge)
cur.execute("SELECT pg_catalog.pg_sleep(2) FROM orders LIMIT 1")
f.join()
print("ok")
)PY";
  const std::string dsn = "host=127.0.0.1 port=" + std::to_string(port) + " user=t1 password=pw1 dbname=appdb";
  CommandResult r = run_command({"/usr/bin/python3", "-c", script, dsn, a.log_path(), b.log_path(),
                                 std::to_string(port), std::to_string(peer_a), std::to_string(peer_b),
                                 "host=" + pg_->socket_dir() + " port=" + std::to_string(pg_->port()) +
                                     " user=postgres dbname=appdb"},
                                {}, "", 180);
  EXPECT_EQ(r.exit_code, 0) << describe(r) << a.log() << b.log();
  EXPECT_EQ(r.out, "ok\n");
}

// Two instances behind HAProxy (TCP mode, `option httpchk GET /health`): both serve; once one
// is draining (SIGTERM with an open transaction) its /health says 503, HAProxy takes it out and
// every new client goes to the other instance, while the draining one's transaction commits.
TEST_F(FleetE2e, HaproxyTakesADrainingInstanceOut) {
  if (run_command({"sh", "-c", "command -v haproxy"}, {}, "", 10).exit_code != 0) {
    FAIL() << "haproxy is not installed: run scripts/deps (Debian haproxy)";
  }
  Instance a(free_tcp_port(), pg_->port(), "shutdown_timeout = 60");
  ASSERT_TRUE(a.ready()) << a.log();
  const int port_a = a.client_port();
  Instance b(free_tcp_port(), pg_->port(), "");
  ASSERT_TRUE(b.ready()) << b.log();
  const std::string dir = make_temp_dir("rowguard-haproxy-");
  struct RemoveDir {
    std::string path;
    ~RemoveDir() { remove_tree(path); }
  } remove_dir{dir};
  const int front = free_tcp_port();
  const std::string cfg = dir + "/haproxy.cfg", log = dir + "/haproxy.log";
  write_text_file(cfg, "global\n  maxconn 200\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n"
                       "  timeout server 60s\nfrontend fe\n  bind 127.0.0.1:" + std::to_string(front) +
                       "\n  default_backend rg\nbackend rg\n  option httpchk GET /health\n"
                       "  default-server inter 100ms fall 1 rise 1\n"
                       "  server a 127.0.0.1:" + std::to_string(port_a) + " check port " +
                       std::to_string(a.metrics_port()) + "\n  server b 127.0.0.1:" + std::to_string(b.client_port()) +
                       " check port " + std::to_string(b.metrics_port()) + "\n");
  write_text_file(log, "");
  {
    BackgroundProcess haproxy({"haproxy", "-db", "-f", cfg}, log);
    ASSERT_TRUE(wait_until([&] { return tcp_port_open("127.0.0.1", front); }, std::chrono::seconds(15)))
        << read_text_file(log);
    const std::string script = R"PY(
import psycopg2, sys, time, os, signal, urllib.request, urllib.error
front, direct_a, pid_a, health_a, log = sys.argv[1:6]
def connect_many(n):
    for i in range(n):
        c = psycopg2.connect(front, connect_timeout=5)
        c.cursor().execute("SELECT 1")
        c.close()
connect_many(20)
served_a = [l for l in urllib.request.urlopen(health_a.replace("/health", "/metrics")).read().decode().splitlines()
            if l.startswith("rowguard_connections_total ")]
assert float(served_a[0].split()[1]) > 0, "haproxy sent nothing to a while it was healthy"
assert "is DOWN" not in open(log).read(), "a server was down before the drain"
busy = psycopg2.connect(direct_a)
cur = busy.cursor()
cur.execute("UPDATE orders SET amount = amount WHERE id = 101")
os.kill(int(pid_a), signal.SIGTERM)
deadline = time.time() + 30
while "rg/a is DOWN" not in open(log).read():
    if time.time() > deadline:
        print("haproxy did not take a out"); sys.exit(1)
    time.sleep(0.05)
try:
    urllib.request.urlopen(health_a, timeout=5)
    print("a still healthy"); sys.exit(1)
except urllib.error.HTTPError as e:
    assert e.code == 503, e.code
print("after", flush=True)
connect_many(20)
busy.commit()
print("ok")
)PY";
    auto dsn = [](int port) {
      return "host=127.0.0.1 port=" + std::to_string(port) + " user=t1 password=pw1 dbname=appdb";
    };
    CommandResult r = run_command({"/usr/bin/python3", "-c", script, dsn(front), dsn(port_a), std::to_string(a.pid()),
                                   "http://127.0.0.1:" + std::to_string(a.metrics_port()) + "/health", log},
                                  {}, "", 120);
    EXPECT_EQ(r.exit_code, 0) << describe(r) << read_text_file(log) << a.log() << b.log();
    EXPECT_EQ(r.out, "after\nok\n");
    // b served its share of the first 20 and all of the last 20.
    EXPECT_GE(metric(b.metrics(), "rowguard_connections_total"), 20) << b.metrics();
    EXPECT_TRUE(wait_until([&] { return !a.running(); }, std::chrono::seconds(30))) << a.log();
    haproxy.stop();
  }
}

// Protocol 3.2 (PostgreSQL 18) and unknown minor versions: rowguard speaks 3.0 and says so with
// NegotiateProtocolVersion, as PostgreSQL does, then goes on with the startup (authentication).
// An unknown "_pq_." protocol option is listed there as not recognized, not an error.
TEST_F(FleetE2e, NewerMinorProtocolVersionsAreNegotiatedDown) {
  const int port = free_tcp_port();
  Instance a(port, pg_->port(), "");
  ASSERT_TRUE(a.ready()) << a.log();
  const std::string script = R"PY(
import socket, struct, sys
def startup(minor, extra):
    params = b"user\0t1\0database\0appdb\0" + extra + b"\0"
    body = struct.pack("!i", (3 << 16) | minor) + params
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    s.sendall(struct.pack("!i", len(body) + 4) + body)
    out = []
    buf = b""
    while len(out) < 2:
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 5:
            n = struct.unpack("!i", buf[1:5])[0]
            if len(buf) < n + 1:
                break
            out.append((buf[0:1].decode(), buf[5:n + 1]))
            buf = buf[n + 1:]
    s.close()
    return out
for minor, extra, unrecognized in [(2, b"", []), (9999, b"", []), (2, b"_pq_.frobnicate\0on\0", ["_pq_.frobnicate"])]:
    m = startup(minor, extra)
    assert len(m) == 2, (minor, m)
    assert m[0][0] == "v", ("first message must be NegotiateProtocolVersion", minor, m)
    newest, count = struct.unpack("!ii", m[0][1][:8])
    names = [x.decode() for x in m[0][1][8:].split(b"\0") if x]
    assert newest == 0 and count == len(unrecognized) and names == unrecognized, (minor, m)
    assert m[1][0] == "R" and struct.unpack("!i", m[1][1][:4])[0] == 10, ("then SASL authentication", minor, m)
print("ok")
)PY";
  CommandResult r = run_command({"/usr/bin/python3", "-c", script, std::to_string(port)}, {}, "", 60);
  EXPECT_EQ(r.exit_code, 0) << describe(r) << a.log();
  EXPECT_EQ(r.out, "ok\n");
}

}  // namespace
}  // namespace rowguard::testing
