"""Raw-socket clients for tests/e2e/limits_e2e_test.cc: [limits] sizes and timeouts, slow
clients (slowloris) and a client that never reads its results (backpressure).

    limits_test.py MODE      MODE: oversize | idle | slowloris | backpressure

Environment: ROWGUARD_HOST, ROWGUARD_PORT (rowguard), ROWGUARD_PID (its process, for VmRSS),
PG_SOCKET_DIR, PG_PORT (the PostgreSQL under test, superuser postgres over its unix socket).

A "raw" client logs in with psycopg2 (SCRAM and all) and then talks the v3 protocol itself on a
duplicate of psycopg2's socket; psycopg2 is not used on that connection again, and the script
ends with os._exit so that libpq never writes on it. Prints "ok <check>" per check and
"FAIL <check>: ..." on failure; exit code 0 only when every check passed.
"""
import os
import signal
import socket
import struct
import sys
import threading
import time
import traceback

import psycopg2

HOST = os.environ.get("ROWGUARD_HOST", "127.0.0.1")
PORT = int(os.environ["ROWGUARD_PORT"])
PASSWORDS = {"t1": "pw1", "t2": "pw2", "t3": "pw3", "dba": "pwdba"}
failures = []
keep = []  # psycopg2 connections whose sockets are used raw: never closed by libpq


def ok(name):
    print("ok " + name, flush=True)


def fail(name, details):
    failures.append(name)
    print("FAIL %s: %s" % (name, details), flush=True)


def check(name, cond, details=""):
    (ok if cond else lambda n: fail(n, details))(name)
    return cond


def finish():
    sys.stdout.flush()
    os._exit(1 if failures else 0)


def dsn(user):
    return "host=%s port=%d dbname=appdb user=%s password=%s sslmode=disable connect_timeout=10" % (
        HOST, PORT, user, PASSWORDS[user])


def connect(user, autocommit=True):
    c = psycopg2.connect(dsn(user))
    c.autocommit = autocommit
    return c


def superuser():
    c = psycopg2.connect(host=os.environ["PG_SOCKET_DIR"], port=int(os.environ["PG_PORT"]),
                         user="postgres", dbname="appdb")
    c.autocommit = True
    return c


def super_value(sql, params=None):
    c = superuser()
    try:
        cur = c.cursor()
        cur.execute(sql, params)
        return cur.fetchone()[0]
    finally:
        c.close()


def raw_after_login(user, conn=None):
    """A socket on a session that psycopg2 has logged in (and may have used)."""
    if conn is None:
        conn = connect(user)
    keep.append(conn)
    s = socket.socket(fileno=os.dup(conn.fileno()))
    s.setblocking(True)
    return s


def message(tag, body):
    return tag + struct.pack("!i", 4 + len(body)) + body


def query(sql):
    return message(b"Q", sql.encode() + b"\0")


def startup(params):
    body = struct.pack("!i", 196608)
    for k, v in params:
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", 4 + len(body)) + body


def read_messages(s, timeout):
    """Messages until the peer closes (or timeout): [(tag, body)], closed?"""
    s.settimeout(timeout)
    data = b""
    closed = False
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except (ConnectionResetError, BrokenPipeError):
            closed = True
            break
        if not chunk:
            closed = True
            break
        data += chunk
    out = []
    while len(data) >= 5:
        n = struct.unpack("!i", data[1:5])[0]
        if len(data) < 1 + n:
            break
        out.append((data[0:1], data[5:1 + n]))
        data = data[1 + n:]
    return out, closed


def error_fields(body):
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return fields


def expect_fatal(name, s, sqlstate, text, timeout=30):
    msgs, closed = read_messages(s, timeout)
    errors = [error_fields(b) for t, b in msgs if t == b"E"]
    good = [e for e in errors if e.get("S") == "FATAL" and e.get("C") == sqlstate and text in e.get("M", "") + " " +
            e.get("D", "")]
    check(name, good and closed, "messages %r closed=%r" % (errors or [t for t, _ in msgs], closed))
    return good[0] if good else None


def rss_kib():
    with open("/proc/%s/status" % os.environ["ROWGUARD_PID"]) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def normal_client_works(name, user="t2", expected=4):
    c = connect(user)
    cur = c.cursor()
    cur.execute("SELECT count(*) FROM orders")
    n = cur.fetchone()[0]
    c.close()
    return check(name, n == expected, "count %r" % (n,))


# ---- oversize: [limits] max_message_size = max_server_message = 1048576, max_startup_packet = 4096 -

def mode_oversize():
    # A tenant's Bind claiming 2 MB: refused from its header, FATAL 08P01, connection closed.
    s = raw_after_login("t1")
    s.sendall(b"B" + struct.pack("!i", 2000004) + b"\0\0" + b"x" * 100)
    e = expect_fatal("tenant Bind over max_message_size: FATAL 08P01", s, "08P01",
                     "Bind message of 2000004 bytes exceeds the limit of 1048576 bytes ([limits] max_message_size)")
    if e:
        print("message: " + e["M"], flush=True)

    # A bypass user's complete 1.5 MB Query holding an INSERT: refused, and nothing of it reaches
    # the server (the row does not exist afterwards).
    s = raw_after_login("dba")
    big = query("INSERT INTO countries VALUES ('zz', 'limits-e2e') -- " + "p" * 1500000)
    result = {}

    def reader():
        result["fatal"] = expect_fatal("bypass Query over max_message_size: FATAL 08P01", s, "08P01",
                                       "Query message of %d bytes exceeds the limit" % (len(big) - 1))
    t = threading.Thread(target=reader)
    t.start()
    try:
        s.sendall(big)
    except OSError:
        pass  # rowguard closed the connection while we were still sending
    t.join()
    n = super_value("SELECT count(*) FROM countries WHERE code = 'zz'")
    check("the oversized INSERT was not forwarded", n == 0, "found %r rows" % (n,))

    # A CopyData over the limit inside COPY FROM STDIN (tenant).
    c = connect("t1")
    s = raw_after_login("t1", c)
    s.sendall(query("COPY orders (id, amount) FROM STDIN"))
    msgs, _ = read_messages(s, 2)
    check("COPY FROM started", any(t == b"G" for t, _ in msgs), repr(msgs))
    s.sendall(b"d" + struct.pack("!i", 1 << 24))
    expect_fatal("CopyData over max_message_size: FATAL 08P01", s, "08P01", "CopyData message of 16777216 bytes")

    # A startup packet over max_startup_packet (only its length word and version sent).
    s = socket.create_connection((HOST, PORT))
    s.sendall(struct.pack("!ii", 5000, 196608))
    expect_fatal("startup packet over max_startup_packet: FATAL 08P01", s, "08P01", "max_startup_packet")
    # The same, whole (a long application_name), sent by a real client.
    try:
        psycopg2.connect(dsn("t1") + " application_name=" + "a" * 5000)
        fail("libpq with a 5 KB startup packet is refused", "connected")
    except psycopg2.OperationalError as e:
        ok("libpq with a 5 KB startup packet is refused")

    # A result row over max_server_message (also 1 MiB here): FATAL 54000, tenant and bypass.
    for user in ("t1", "dba"):
        s = raw_after_login(user)
        s.sendall(query("SELECT repeat('x', 2000000)"))
        expect_fatal("%s: a server message over max_server_message: FATAL 54000" % user, s, "54000",
                     "max_server_message")

    # Under the limit: a 500 KB statement goes through.
    c = connect("t1")
    cur = c.cursor()
    cur.execute("SELECT length(%s)", ("y" * 500000,))
    check("a 500 KB query under the limit works", cur.fetchone()[0] == 500000)
    c.close()
    normal_client_works("other clients still work")


# ---- idle: idle_client_timeout = 2, idle_in_transaction_timeout = 2 ----------------------------

def backend_gone(pid, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if super_value("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)) == 0:
            return True
        time.sleep(0.2)
    return False


def upstream_pid(conn):
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    return cur.fetchone()[0]


def mode_idle():
    # Idle outside a transaction: 57P05, like PostgreSQL's idle_session_timeout.
    s = raw_after_login("t1")
    expect_fatal("idle tenant session: FATAL 57P05", s, "57P05", "idle-session timeout")
    s = raw_after_login("dba")
    expect_fatal("idle bypass session: FATAL 57P05", s, "57P05", "idle-session timeout")

    # Idle inside a transaction: 25P03; the transaction is rolled back, the backend ends.
    c = connect("t1", autocommit=False)
    cur = c.cursor()
    cur.execute("INSERT INTO orders (id, amount) VALUES (9901, 1)")
    check("the tenant's INSERT ran (a transaction is open)", cur.rowcount == 1, repr(cur.rowcount))
    s = raw_after_login("t1", c)
    e = expect_fatal("idle in transaction (tenant): FATAL 25P03", s, "25P03", "idle-in-transaction timeout")
    if e:
        print("message: %s | %s" % (e["M"], e.get("D", "")), flush=True)
    check("the tenant's transaction was rolled back",
          super_value("SELECT count(*) FROM orders WHERE id = 9901") == 0)

    d = connect("dba", autocommit=False)
    pid = upstream_pid(d)  # opens a transaction
    dc = d.cursor()
    dc.execute("INSERT INTO audit_log (tenant_id, event) VALUES (1, 'limits-e2e-idle')")
    check("the bypass INSERT ran (a transaction is open)", dc.rowcount == 1, repr(dc.rowcount))
    s = raw_after_login("dba", d)
    expect_fatal("idle in transaction (bypass): FATAL 25P03", s, "25P03", "idle-in-transaction timeout")
    check("the bypass transaction was rolled back",
          super_value("SELECT count(*) FROM audit_log WHERE event = 'limits-e2e-idle'") == 0)
    check("the bypass session's backend is gone", backend_gone(pid))

    # Busy is not idle: a statement that runs longer than the timeouts (a bypass pg_sleep, and a
    # tenant UPDATE waiting on a lock the superuser holds) completes.
    d = connect("dba")
    cur = d.cursor()
    cur.execute("SELECT pg_sleep(3), 'slept'")
    check("a bypass statement running past the timeouts completes", cur.fetchone()[1] == "slept")
    d.close()
    su = superuser()
    su.autocommit = False
    su.cursor().execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
    t1 = connect("t1")
    result = {}

    def update():
        try:
            cur = t1.cursor()
            cur.execute("UPDATE orders SET amount = amount WHERE id = 101")
            result["rows"] = cur.rowcount
        except Exception as e:  # noqa: BLE001
            result["error"] = repr(e)
    th = threading.Thread(target=update)
    th.start()
    time.sleep(3)
    su.commit()
    su.close()
    th.join(30)
    check("a tenant statement waiting on a lock past the timeouts completes", result.get("rows") == 1, repr(result))

    # Activity keeps a session alive past the timeouts.
    c = connect("t2")
    cur = c.cursor()
    n = 0
    t0 = time.time()
    while time.time() - t0 < 4:
        cur.execute("SELECT count(*) FROM orders")
        n += cur.fetchone()[0] == 4
        time.sleep(0.2)
    cur.execute("SELECT 1")
    check("an active session stays open", cur.fetchone()[0] == 1 and n > 0)
    c.close()


# ---- slowloris: auth_timeout = 2, message_timeout = 2 ------------------------------------------

def mode_slowloris():
    rss0 = rss_kib()
    results = {"startup": [], "message": [], "bulk": []}
    lock = threading.Lock()

    def trickle(s, data, kind):
        closed_by_server = False
        got = b""
        for b in data:
            try:
                s.sendall(bytes([b]))
            except OSError:
                closed_by_server = True
                break
            time.sleep(0.5)
        s.settimeout(30)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    closed_by_server = True
                    break
                got += chunk
        except (ConnectionResetError, BrokenPipeError):
            closed_by_server = True
        except socket.timeout:
            pass
        with lock:
            results[kind].append((closed_by_server, got))

    threads = []
    pkt = startup([("user", "t1"), ("database", "appdb"), ("application_name", "slow" * 20)])
    for _ in range(30):  # slow startup packets: the auth timeout ends them
        s = socket.create_connection((HOST, PORT))
        threads.append(threading.Thread(target=trickle, args=(s, pkt, "startup")))
    q = query("SELECT count(*) FROM orders WHERE amount > 0 -- " + "slow" * 20)
    for _ in range(15):  # logged-in clients trickling a Query: message_timeout ends them
        s = raw_after_login("t1")
        threads.append(threading.Thread(target=trickle, args=(s, q, "message")))

    def bulk():
        # 900 KB of a 1 MB Bind sent at once, then silence: the memory is held only until
        # message_timeout.
        s = raw_after_login("t3")
        s.sendall(b"B" + struct.pack("!i", 1000000) + b"\0\0" + b"z" * 900000)
        msgs, closed = read_messages(s, 30)
        with lock:
            results["bulk"].append((closed, msgs))
    for _ in range(5):
        threads.append(threading.Thread(target=bulk))
    for t in threads:
        t.start()

    # Meanwhile a normal client logs in and works, again and again.
    good = 0
    for _ in range(10):
        good += normal_client_works("normal client during the slow ones", "t2")
        time.sleep(0.3)
    check("a normal client worked throughout (10 sessions)", good == 10)
    for t in threads:
        t.join(60)
    starts = results["startup"]
    check("every slow startup was closed by rowguard (auth timeout)",
          len(starts) == 30 and all(c for c, _ in starts), repr([c for c, _ in starts]))
    msgs = results["message"]
    fatal = b"not received whole within 2 s"
    check("every trickled message ended in FATAL 08P01 (message_timeout)",
          len(msgs) == 15 and all(c and b"08P01" in g and fatal in g for c, g in msgs),
          repr([(c, g[-120:]) for c, g in msgs]))
    bulks = results["bulk"]

    def bulk_fatal(m):
        return any(t == b"E" and error_fields(b).get("C") == "08P01" for t, b in m)
    check("every stalled 900 KB message ended in FATAL 08P01",
          len(bulks) == 5 and all(c and bulk_fatal(m) for c, m in bulks), repr(bulks))
    growth = (rss_kib() - rss0) // 1024
    print("rss growth MiB: %d" % growth, flush=True)
    check("rowguard RSS grew < 64 MiB", growth < 64, "%d MiB" % growth)
    normal_client_works("a normal client works afterwards")


# ---- backpressure: clients that never read their results --------------------------------------

# The marker is a literal: a tenant's statement reaches the server rewritten, without comments.
BIG_TENANT = "SELECT repeat('x', 1000), 'limits-e2e' FROM orders, generate_series(1, 10000000) AS g"
BIG_BYPASS = "SELECT repeat('y', 1000), 'limits-e2e' FROM generate_series(1, 30000000) AS g"


def never_reads(user, sql):
    """A child process that logs in, sends sql and never reads; returns its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            s = raw_after_login(user)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            s.sendall(query(sql))
            time.sleep(600)
        finally:
            os._exit(0)
    return pid


def backends_running(marker):
    return super_value("SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
                       ("%" + marker + "%",))


def mode_backpressure():
    normal_client_works("warm-up")
    rss0 = rss_kib()
    kids = [never_reads("t1", BIG_TENANT), never_reads("dba", BIG_BYPASS)]
    # Wait until both backends are blocked writing to rowguard (wait_event ClientWrite): the
    # server is producing faster than anyone reads, and rowguard has stopped reading it.
    deadline = time.time() + 60
    blocked = 0
    while time.time() < deadline:
        blocked = super_value("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%%limits-e2e%%' "
                              "AND wait_event = 'ClientWrite' AND pid <> pg_backend_pid()")
        if blocked == 2:
            break
        time.sleep(0.5)
    check("both server backends block on writing (backpressure reached PostgreSQL)", blocked == 2,
          "blocked=%r" % (blocked,))
    # Give the server time to produce far more than the bound (it would, at ~1 GB/s, if rowguard
    # kept reading), then sample rowguard's memory a few times.
    worst = 0
    for _ in range(6):
        time.sleep(1)
        worst = max(worst, rss_kib() - rss0)
    print("rss growth MiB: %d" % (worst // 1024), flush=True)
    check("rowguard RSS grew < 64 MiB while the clients do not read", worst // 1024 < 64, "%d MiB" % (worst // 1024))
    check("both backends are still running their query", backends_running("limits-e2e") == 2)
    normal_client_works("other clients work meanwhile")
    # The clients vanish: rowguard notices, closes the upstream connections, the backends end.
    for k in kids:
        os.kill(k, signal.SIGKILL)
        os.waitpid(k, 0)
    deadline = time.time() + 30
    left = None
    while time.time() < deadline:
        left = backends_running("limits-e2e")
        if left == 0:
            break
        time.sleep(0.3)
    check("closing the clients frees their server backends", left == 0, "left=%r" % (left,))
    normal_client_works("a normal client works afterwards")


if __name__ == "__main__":
    try:
        {"oversize": mode_oversize, "idle": mode_idle, "slowloris": mode_slowloris,
         "backpressure": mode_backpressure}[sys.argv[1]]()
    except Exception:  # noqa: BLE001
        fail("exception", traceback.format_exc())
    finish()
