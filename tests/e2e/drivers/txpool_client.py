"""Transaction pooling scenarios for tests/e2e/txpool_e2e_test.cc (psycopg2, libpq underneath).

Usage: txpool_client.py <scenario> <rowguard port> <postgres socket dir> <postgres port>
Each scenario prints "ok <scenario>" at the end, or fails with a traceback / an assertion message.
Waits are for conditions (polled, bounded), never fixed sleeps used as synchronisation.
"""
import sys
import threading
import time

import psycopg2
import psycopg2.errors
import psycopg2.extensions

SCENARIO, PORT, PG_SOCKET, PG_PORT = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
PASSWORDS = {"t1": "pw1", "t2": "pw2", "t3": "pw3", "dba": "pwdba"}
TENANT = {"t1": 1, "t2": 2, "t3": 3}


def connect(user, autocommit=True, **kw):
    c = psycopg2.connect(host="127.0.0.1", port=PORT, user=user, password=PASSWORDS[user], dbname="appdb",
                         sslmode="disable", connect_timeout=10, **kw)
    c.autocommit = autocommit
    return c


def direct():
    c = psycopg2.connect(host=PG_SOCKET, port=PG_PORT, user="postgres", dbname="appdb")
    c.autocommit = True
    return c


def one(conn, sql, args=None):
    cur = conn.cursor()
    cur.execute(sql, args)
    return cur.fetchone()[0]


def wait_for(what, cond, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def app_backends(d):
    return one(d, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND backend_type = 'client backend'")


def isolation():
    d = direct()
    stop = threading.Event()
    peak = [0]

    def monitor():
        while not stop.is_set():
            peak[0] = max(peak[0], app_backends(d))
            time.sleep(0.005)

    errors = []

    def client(i):
        try:
            user = ["t1", "t2", "t3"][i % 3]
            c = connect(user, autocommit=(i % 2 == 0))
            cur = c.cursor()
            for k in range(8):
                cur.execute("SELECT DISTINCT tenant_id FROM orders")
                seen = sorted(r[0] for r in cur.fetchall())
                assert seen == [TENANT[user]], (user, seen)
                if not c.autocommit:
                    cur.execute("UPDATE orders SET amount = amount WHERE id = %s", (TENANT[user] * 100 + 1,))
                    assert cur.rowcount == 1, (user, cur.rowcount)
                    cur.execute("SELECT count(*) FROM customers")
                    assert cur.fetchone()[0] == 3
                    c.commit()
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    m = threading.Thread(target=monitor)
    m.start()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    m.join()
    assert not errors, errors
    assert 1 <= peak[0] <= 2, "server backends of app: %d (size = 2)" % peak[0]


def settings():
    a = connect("t1", application_name="clientA")
    b = connect("t2", application_name="clientB")
    c = connect("t3")
    default_tz = one(c, "SHOW TimeZone")
    one(a, "SELECT 1")
    ca = a.cursor()
    ca.execute("SET statement_timeout = '1234ms'")
    ca.execute("SET TimeZone = 'Asia/Tokyo'")
    # B and C use both connections in between (size = 2): A's settings must never show.
    for _ in range(5):
        for conn in (b, c):
            assert one(conn, "SHOW statement_timeout") == "0"
            assert one(conn, "SHOW TimeZone") == default_tz
        assert one(b, "SHOW application_name") == "clientB"
        assert one(a, "SHOW statement_timeout") == "1234ms"
        assert one(a, "SHOW TimeZone") == "Asia/Tokyo"
        assert one(a, "SHOW application_name") == "clientA"
    # A SET in a rolled-back transaction is undone; SET LOCAL does not stick; a savepoint rollback undoes.
    a.autocommit = False
    ca = a.cursor()
    ca.execute("SET statement_timeout = '5s'")
    a.rollback()
    ca.execute("SET LOCAL statement_timeout = '7s'")
    assert one(a, "SHOW statement_timeout") == "7s"
    a.commit()
    ca.execute("SAVEPOINT s")
    ca.execute("SET work_mem = '8MB'")
    ca.execute("ROLLBACK TO SAVEPOINT s")
    ca.execute("SET application_name = 'clientA2'")
    a.commit()
    a.autocommit = True
    for _ in range(3):
        for conn in (b, c):
            assert one(conn, "SHOW statement_timeout") == "0"
            assert one(conn, "SHOW work_mem") == "4MB"
        assert one(a, "SHOW statement_timeout") == "1234ms"
        assert one(a, "SHOW work_mem") == "4MB"
        assert one(a, "SHOW application_name") == "clientA2"
        assert one(b, "SHOW application_name") == "clientB"
    ca = a.cursor()
    ca.execute("RESET statement_timeout")
    assert one(b, "SHOW statement_timeout") == "0"
    assert one(a, "SHOW statement_timeout") == "0"


def wait_timeout():
    holders = [connect("t1", autocommit=False), connect("t2", autocommit=False)]
    for h in holders:
        one(h, "SELECT count(*) FROM orders")  # a transaction is open: the connection is held
    w = connect("t3")
    t0 = time.monotonic()
    try:
        one(w, "SELECT count(*) FROM orders")
        raise AssertionError("expected 53300")
    except psycopg2.OperationalError as e:
        assert e.pgcode == "53300", (e.pgcode, str(e))
    assert time.monotonic() - t0 >= 1.5
    for h in holders:
        h.commit()
    assert one(w, "SELECT count(*) FROM orders") == 2  # the same connection keeps working
    for h in holders:
        assert one(h, "SELECT count(*) FROM orders") in (3, 4)


def kill():
    d = direct()
    a = connect("t1", autocommit=False)
    b = connect("t2")
    assert one(a, "SELECT count(*) FROM orders") == 3
    pid = wait_for("a backend idle in transaction", lambda: one(
        d, "SELECT pid FROM pg_stat_activity WHERE usename = 'app' AND state = 'idle in transaction'"))
    assert one(d, "SELECT pg_terminate_backend(%s)", (pid,)) is True
    wait_for("the backend gone", lambda: one(d, "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = %s", (pid,)))
    try:
        one(a, "SELECT count(*) FROM orders")
        raise AssertionError("expected 08006")
    except psycopg2.Error as e:
        assert e.pgcode == "08006", (e.pgcode, str(e))
    a.rollback()
    assert one(a, "SELECT count(*) FROM orders") == 3
    a.commit()
    assert one(b, "SELECT count(*) FROM orders") == 4
    # Backends that die while idle in the pool are noticed at checkout: no error for the client.
    one(d, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'app' AND state = 'idle'")
    wait_for("the idle backends gone", lambda: app_backends(d) == 0)
    assert one(b, "SELECT count(*) FROM orders") == 4
    assert one(a, "SELECT count(*) FROM orders") == 3


def vanish():
    d = direct()
    a = connect("t1", autocommit=False)
    cur = a.cursor()
    cur.execute("INSERT INTO orders (id, tenant_id, customer_id, amount) VALUES (901, 1, 101, 1)")
    a.close()  # mid-transaction
    b = connect("t1")
    for _ in range(6):
        assert one(b, "SELECT count(*) FROM orders WHERE id = 901") == 0
    wait_for("no transaction left open", lambda: one(
        d, "SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = 'app' AND state LIKE 'idle in transaction%'"))


def pinned():
    # (B is of another tenant than A: with 2 server connections a tenant's share is 1, and A's
    # pin holds it: a second client of t1 would wait for A, [pool] max_tenant_share.)
    a = connect("t1")
    b = connect("t3")
    c = connect("t2")
    assert one(a, "SELECT pg_advisory_lock(42)") is not None
    for _ in range(4):
        assert one(b, "SELECT count(*) FROM orders") == 2
        assert one(c, "SELECT count(*) FROM orders") == 4
        assert one(a, "SELECT count(*) FROM orders") == 3
    console = psycopg2.connect(host="127.0.0.1", port=PORT, user="dba", password="pwdba", dbname="rowguard",
                               sslmode="disable", connect_timeout=10)
    console.autocommit = True
    cur = console.cursor()
    cur.execute("SHOW POOLS")
    cols = [x[0] for x in cur.description]
    rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    assert sum(int(r["pinned_clients"]) for r in rows) == 1, rows
    assert all(int(r["tenant_cap"]) == 1 for r in rows), rows  # [pool] max_tenant_share 0.75 of 2
    assert all(int(r["clients_waiting_at_share"]) == 0 for r in rows), rows
    assert one(a, "SELECT pg_advisory_unlock(42)") is True  # still on the backend that holds the lock
    assert one(b, "SELECT pg_try_advisory_lock(42)") is True  # released: A's backend held it
    assert one(b, "SELECT pg_advisory_unlock(42)") is True
    a.close()
    b.close()  # (pinned too: its statement named an advisory lock)
    b = connect("t1")
    p = connect("t3")
    p.cursor().execute("PREPARE q AS SELECT count(*) FROM orders")
    for _ in range(4):
        assert one(b, "SELECT count(*) FROM orders") == 3
        assert one(c, "SELECT count(*) FROM orders") == 4
    assert one(p, "EXECUTE q") == 2
    p.close()


def show_pools():
    console = psycopg2.connect(host="127.0.0.1", port=PORT, user="dba", password="pwdba", dbname="rowguard",
                               sslmode="disable", connect_timeout=10)
    console.autocommit = True
    cur = console.cursor()
    cur.execute("SHOW POOLS")
    cols = [x[0] for x in cur.description]
    rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    console.close()
    return rows


def notes(conn):
    conn.poll()
    return [(n.channel, n.payload, n.pid) for n in conn.notifies]


def got(conn, count):
    return lambda: len(notes(conn)) >= count


def listen():
    # [pool] size = 1: a LISTEN does not keep the one server connection; B's NOTIFY reaches A
    # while A is idle (nothing sent), under A's channel name and B's pid as B knows it.
    a = connect("t1")
    b = connect("t1")
    c = connect("t2")
    a_pid, b_pid, c_pid = a.get_backend_pid(), b.get_backend_pid(), c.get_backend_pid()
    a.cursor().execute("LISTEN jobs")
    c.cursor().execute("LISTEN jobs")  # the same name, another tenant: another channel
    assert one(b, "SELECT count(*) FROM orders") == 3  # (A holds nothing: B gets the connection)
    assert one(c, "SELECT count(*) FROM orders") == 4
    assert sum(int(r["pinned_clients"]) for r in show_pools()) == 0, show_pools()
    b.cursor().execute("NOTIFY jobs, 'hello'")
    wait_for("A notified while idle", got(a, 1))
    assert notes(a) == [("jobs", "hello", b_pid)], notes(a)
    # Tenant 2's own notification on "jobs": C gets it, and nothing of tenant 1 before it.
    c.cursor().execute("SELECT pg_notify('jobs', 'two')")
    wait_for("C notified", got(c, 1))
    assert notes(c) == [("jobs", "two", c_pid)], notes(c)
    # A notifies itself: its own pid, as PostgreSQL shows a self-notification.
    a.cursor().execute("NOTIFY jobs, 'self'")
    wait_for("A notified of its own", got(a, 2))
    assert notes(a)[1] == ("jobs", "self", a_pid), notes(a)
    # A LISTEN that rolls back does nothing; one that commits inside a transaction works.
    b.autocommit = False
    b.cursor().execute("LISTEN jobs")
    b.rollback()
    b.cursor().execute("LISTEN later")
    b.commit()
    b.autocommit = True
    a.cursor().execute("NOTIFY jobs, 'second'; NOTIFY later, 'l'")
    wait_for("B notified on later", got(b, 1))
    assert notes(b) == [("later", "l", a_pid)], notes(b)  # (not "jobs": its LISTEN rolled back)
    wait_for("A notified again", got(a, 3))
    assert notes(a)[2] == ("jobs", "second", a_pid), notes(a)
    # UNLISTEN: A no longer gets "jobs"; UNLISTEN * drops the rest. A and B stay unpinned.
    a.cursor().execute("UNLISTEN jobs")
    a.cursor().execute("LISTEN later")
    b.cursor().execute("NOTIFY jobs, 'gone'; NOTIFY later, 'l2'")
    wait_for("A notified on later", got(a, 4))
    assert notes(a)[3] == ("later", "l2", b_pid), notes(a)
    b.cursor().execute("UNLISTEN *")
    a.cursor().execute("NOTIFY later, 'l3'")
    wait_for("A notified on later again", got(a, 5))
    assert len(notes(b)) == 2 and notes(b)[1] == ("later", "l2", b_pid), notes(b)
    assert notes(c) == [("jobs", "two", c_pid)], notes(c)  # tenant 1's "jobs" never reached C
    # A LISTEN rolled back to a savepoint does nothing; the one after it commits.
    b.autocommit = False
    cur = b.cursor()
    cur.execute("SAVEPOINT s")
    cur.execute("LISTEN sp")
    cur.execute("ROLLBACK TO SAVEPOINT s")
    cur.execute("LISTEN kept")
    b.commit()
    b.autocommit = True
    a.cursor().execute("NOTIFY sp, 'no'; NOTIFY kept, 'yes'")
    wait_for("B notified on kept", got(b, 3))
    assert notes(b)[2:] == [("kept", "yes", a_pid)], notes(b)
    assert sum(int(r["pinned_clients"]) for r in show_pools()) == 0, show_pools()
    # What the client asks PostgreSQL about listening is refused (another tenant's channels
    # could share the server connection).
    try:
        one(a, "SELECT count(*) FROM pg_listening_channels()")
        raise AssertionError("pg_listening_channels() was allowed")
    except psycopg2.errors.InsufficientPrivilege:
        pass
    a.close()
    b.close()
    c.close()


def listener_backend(d):
    return one(d, "SELECT coalesce(max(pid), 0) FROM pg_stat_activity WHERE application_name = 'rowguard listener'")


def stat(name):
    console = psycopg2.connect(host="127.0.0.1", port=PORT, user="dba", password="pwdba", dbname="rowguard",
                               sslmode="disable", connect_timeout=10)
    console.autocommit = True
    cur = console.cursor()
    cur.execute("SHOW STATS")
    rows = {r[0]: r[1] for r in cur.fetchall()}
    console.close()
    return int(rows[name])


def listen_lost():
    # The listener connection terminated: it comes back and LISTENs again (counted); a client
    # gone: the listener UNLISTENs its channel (the last one to listen on it).
    d = direct()
    a = connect("t1")
    b = connect("t1")
    a.cursor().execute("LISTEN jobs")
    first = wait_for("a listener connection", lambda: listener_backend(d))
    assert stat("listener_disconnects") == 0
    assert one(d, "SELECT pg_terminate_backend(%s)", (first,)) is True
    wait_for("the listener back", lambda: listener_backend(d) not in (0, first) and one(
        d, "SELECT query FROM pg_stat_activity WHERE application_name = 'rowguard listener'") == 'LISTEN "rg1_1_jobs";')
    assert stat("listener_disconnects") == 1
    b.cursor().execute("NOTIFY jobs, 'after'")
    wait_for("A notified through the new listener", got(a, 1))
    assert notes(a) == [("jobs", "after", b.get_backend_pid())], notes(a)
    a.close()
    wait_for("the listener UNLISTENs A's channel", lambda: one(
        d, "SELECT query FROM pg_stat_activity WHERE application_name = 'rowguard listener'") == 'UNLISTEN "rg1_1_jobs"')
    b.close()


def idle_transaction():
    # [pool] idle_transaction_timeout = 2: a client idle inside a transaction is ended as by
    # PostgreSQL's idle_in_transaction_session_timeout (FATAL 25P03), its transaction rolled back
    # and its server connection closed (never handed on); the other clients go on.
    d = direct()
    a = connect("t1", autocommit=False)
    b = connect("t2")
    a.cursor().execute("INSERT INTO orders (id, tenant_id, customer_id, amount) VALUES (902, 1, 101, 1)")
    pid = wait_for("A's backend idle in transaction", lambda: one(
        d, "SELECT pid FROM pg_stat_activity WHERE usename = 'app' AND state = 'idle in transaction'"))
    t0 = time.monotonic()
    assert one(b, "SELECT count(*) FROM orders") == 4
    wait_for("A's backend gone", lambda: one(d, "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = %s", (pid,)))
    assert time.monotonic() - t0 >= 1.0, time.monotonic() - t0
    try:
        one(a, "SELECT 1")
        raise AssertionError("expected FATAL 25P03")
    except psycopg2.OperationalError as e:
        # libpq reports the FATAL 25P03 it read, or only the closed connection when its write
        # failed first (as with PostgreSQL's own timeout); the C++ test checks rowguard's log.
        assert "idle-in-transaction timeout" in str(e) or "closed the connection" in str(e), (e.pgcode, str(e))
        assert e.pgcode in ("25P03", None), (e.pgcode, str(e))
    assert a.closed
    assert one(d, "SELECT count(*) FROM orders WHERE id = 902") == 0  # rolled back
    assert one(b, "SELECT count(*) FROM orders") == 4
    c = connect("t1")
    assert one(c, "SELECT count(*) FROM orders") == 3
    # A client idle outside a transaction is not ended.
    wait_for("2.5 s of idleness", lambda: time.monotonic() - t0 > 4.5)
    assert one(b, "SELECT count(*) FROM orders") == 4


def cancel_running_statement(a, d):
    """A's pg_sleep(20), seen running in pg_stat_activity (direct connection d), is cancelled."""
    result = {}

    def slow():
        try:
            one(a, "SELECT count(*) FROM (SELECT pg_sleep(20)) s")
            result["a"] = "finished"
        except psycopg2.errors.QueryCanceled:
            result["a"] = "cancelled"

    t = threading.Thread(target=slow)
    t.start()
    wait_for("A's statement running", lambda: one(
        d, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app' AND state = 'active' AND query LIKE '%pg_sleep(20)%'"))
    a.cancel()
    t.join(15)
    assert result.get("a") == "cancelled", result


def cancel():
    d = direct()
    a = connect("t1")
    b = connect("t2")
    # A cancel while A holds nothing cancels nothing: B's statement on (maybe) A's old connection runs on.
    assert one(a, "SELECT count(*) FROM orders") == 3
    a.cancel()
    assert one(b, "SELECT count(*) FROM (SELECT pg_sleep(0.3)) s") == 1
    cancel_running_statement(a, d)
    assert one(b, "SELECT count(*) FROM orders") == 4
    assert one(a, "SELECT count(*) FROM orders") == 3


# ---- Prometheus metrics of the pool (size 1, query_wait_timeout 2; RG_METRICS_PORT) ----------

def scrape():
    """{(name, frozenset(labels)): value} of the /metrics exposition."""
    import os
    import re
    import urllib.request
    url = "http://127.0.0.1:%s/metrics" % os.environ["RG_METRICS_PORT"]
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        pairs = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
        out[(name, pairs)] = float(value)
    return out


def metric(s, name, **labels):
    labels.setdefault("database", "appdb")
    labels.setdefault("mode", "transaction")
    return s.get((name, frozenset(labels.items())), 0.0)


def console():
    c = psycopg2.connect(host="127.0.0.1", port=PORT, user="dba", password="pwdba", dbname="rowguard",
                         sslmode="disable", connect_timeout=10)
    c.autocommit = True
    return c


def show_pools_on(con):
    cur = con.cursor()
    cur.execute("SHOW POOLS")
    cols = [x[0] for x in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def metrics():
    d = direct()
    con = console()
    s = scrape()
    assert metric(s, "rowguard_pool_checkouts_total") == 0, s
    a = connect("t1")  # the pool's first connection opens at the first login (one checkout)
    for _ in range(5):
        assert one(a, "SELECT count(*) FROM orders") == 3
    s = scrape()
    assert metric(s, "rowguard_pool_server_connections_opened_total") == 1, s
    assert metric(s, "rowguard_pool_checkouts_total") == 6, metric(s, "rowguard_pool_checkouts_total")
    # 5 checkouts found the connection idle: no wait (le="0"); the login's waited for the open
    assert metric(s, "rowguard_pool_wait_seconds_count") == 6
    assert metric(s, "rowguard_pool_wait_seconds_bucket", le="0") >= 5
    assert metric(s, "rowguard_pool_servers", state="idle") == 1
    assert metric(s, "rowguard_pool_servers", state="active") == 0
    assert metric(s, "rowguard_pool_clients_waiting") == 0

    # A held transaction and a second client: it waits (gauge, SHOW POOLS longest wait), then 53300.
    h = connect("t2", autocommit=False)
    assert one(h, "SELECT count(*) FROM orders") == 4
    s = scrape()
    assert metric(s, "rowguard_pool_servers", state="active") == 1
    assert metric(s, "rowguard_pool_servers", state="idle") == 0
    assert metric(s, "rowguard_pool_clients_active") == 1
    w = connect("t3")
    result = {}

    def waiter():
        try:
            one(w, "SELECT count(*) FROM orders")
            result["w"] = "served"
        except psycopg2.OperationalError as e:
            result["w"] = e.pgcode
    t = threading.Thread(target=waiter)
    t.start()
    wait_for("a waiting client", lambda: metric(scrape(), "rowguard_pool_clients_waiting") == 1)
    longest = [0, 0.0]  # SHOW POOLS longest_wait_ms, /metrics longest wait seconds (max seen)
    while t.is_alive():
        for r in show_pools_on(con):
            longest[0] = max(longest[0], int(r["longest_wait_ms"]))
        longest[1] = max(longest[1], metric(scrape(), "rowguard_pool_longest_wait_seconds"))
        time.sleep(0.05)
    t.join()
    assert result.get("w") == "53300", result
    assert longest[0] >= 300, longest  # the wait lasted 2 s; the answer is computed when asked
    assert longest[1] >= 0.3, longest
    s = scrape()
    assert metric(s, "rowguard_pool_wait_timeouts_total") == 1
    assert metric(s, "rowguard_pool_clients_waiting") == 0
    assert metric(s, "rowguard_pool_wait_seconds_count") == 8  # 7 checkouts, 1 timeout
    assert metric(s, "rowguard_pool_wait_seconds_sum") >= 1.9
    assert metric(s, "rowguard_pool_wait_seconds_bucket", le="0.5") <= 7
    h.commit()
    assert one(w, "SELECT count(*) FROM orders") == 2
    assert metric(scrape(), "rowguard_pool_checkouts_total") == 8

    # Pinned by a session-level advisory lock, unpinned by its unlock.
    assert one(a, "SELECT pg_advisory_lock(5)") is not None
    s = scrape()
    assert metric(s, "rowguard_pool_clients_pinned", reason="advisory_lock") == 1, s
    assert metric(s, "rowguard_pool_servers", state="active") == 1
    assert one(a, "SELECT pg_advisory_unlock(5)") is True
    assert metric(scrape(), "rowguard_pool_clients_pinned", reason="advisory_lock") == 0

    # Closed connections by reason: the server ended it mid-transaction (error), the client
    # vanished mid-transaction (dirty), a cancel was sent during the lease (cancel).
    assert one(h, "SELECT count(*) FROM orders") == 4
    pid = wait_for("a backend idle in transaction", lambda: one(
        d, "SELECT pid FROM pg_stat_activity WHERE usename = 'app' AND state = 'idle in transaction'"))
    assert one(d, "SELECT pg_terminate_backend(%s)", (pid,)) is True
    try:
        one(h, "SELECT count(*) FROM orders")
        raise AssertionError("expected 08006")
    except psycopg2.Error as e:
        assert e.pgcode == "08006", (e.pgcode, str(e))
    h.rollback()
    s = scrape()
    assert metric(s, "rowguard_pool_server_connections_closed_total", reason="error") == 1, s
    assert one(h, "SELECT count(*) FROM orders") == 4  # a new connection
    h.commit()
    assert metric(scrape(), "rowguard_pool_server_connections_opened_total") == 2
    v = connect("t1", autocommit=False)
    assert one(v, "SELECT count(*) FROM orders") == 3
    v.close()
    wait_for("the vanished client's connection closed", lambda: metric(
        scrape(), "rowguard_pool_server_connections_closed_total", reason="dirty") == 1)
    cancel_running_statement(a, d)
    s = scrape()
    assert metric(s, "rowguard_pool_server_connections_closed_total", reason="cancel") == 1, s
    assert one(a, "SELECT count(*) FROM orders") == 3
    s = scrape()
    assert metric(s, "rowguard_pool_server_connections_opened_total") == 4, s
    for reason in ("idle_timeout", "lifetime", "resize"):
        assert metric(s, "rowguard_pool_server_connections_closed_total", reason=reason) == 0, (reason, s)
    opened = metric(s, "rowguard_pool_server_connections_opened_total")
    closed = sum(v for (n, _), v in s.items() if n == "rowguard_pool_server_connections_closed_total")
    assert opened - closed == metric(s, "rowguard_pool_servers", state="idle") + metric(
        s, "rowguard_pool_servers", state="active") == 1, s
    pools = show_pools_on(con)
    assert sum(int(r["checkouts"]) for r in pools) == metric(s, "rowguard_pool_checkouts_total"), (pools, s)
    assert sum(int(r["wait_timeouts"]) for r in pools) == 1


def metrics_idle():
    """server_idle_timeout = 1, server_lifetime = 2: one connection closed for each reason."""
    a = connect("t1", autocommit=False)
    wait_for("the idle connection closed", lambda: metric(
        scrape(), "rowguard_pool_server_connections_closed_total", reason="idle_timeout") == 1)
    # held past its lifetime: closed when given back, not reused
    assert one(a, "SELECT count(*) FROM (SELECT pg_sleep(2.5)) s") == 1
    a.commit()
    s = scrape()
    assert metric(s, "rowguard_pool_server_connections_closed_total", reason="lifetime") == 1, s
    assert metric(s, "rowguard_pool_server_connections_opened_total") == 2, s
    assert metric(s, "rowguard_pool_servers", state="idle") == 0, s


def sql_prepared():
    """SQL PREPARE / EXECUTE / DEALLOCATE follow the client between server connections (issue #16)."""
    d = direct()
    a = connect("t1")
    b = connect("t2")
    h = connect("t3", autocommit=False)
    ca, cb = a.cursor(), b.cursor()
    ca.execute("PREPARE q (int) AS SELECT count(*) FROM orders WHERE id > $1")
    cb.execute("PREPARE q AS SELECT count(*) FROM orders")  # the same name in another client: its own
    try:
        ca.execute("PREPARE q AS SELECT 1")
        raise AssertionError("a second PREPARE q was accepted")
    except psycopg2.errors.DuplicatePreparedStatement:
        pass
    for k in range(6):  # every other round h's open transaction holds one of the two connections
        if k % 2:
            assert one(h, "SELECT count(*) FROM orders") == 2
        assert one(a, "EXECUTE q(0)") == 3
        assert one(b, "EXECUTE q") == 4
        assert one(a, "EXECUTE q(101)") == 2
        if k % 2:
            h.commit()
    # Every server connection replaced: the statements are prepared again where they run.
    one(d, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
           "WHERE usename = 'app' AND backend_type = 'client backend'")
    wait_for("the old server connections gone", lambda: app_backends(d) == 0)
    assert one(a, "EXECUTE q(0)") == 3
    assert one(b, "EXECUTE q") == 4
    # Not pinned.
    console = psycopg2.connect(host="127.0.0.1", port=PORT, user="dba", password="pwdba", dbname="rowguard",
                               sslmode="disable", connect_timeout=10)
    console.autocommit = True
    cur = console.cursor()
    cur.execute("SHOW POOLS")
    cols = [x[0] for x in cur.description]
    rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    assert sum(int(r["pinned_clients"]) for r in rows) == 0, rows
    # A PREPARE survives the ROLLBACK of its transaction (it is not transactional in PostgreSQL).
    h.cursor().execute("PREPARE r AS SELECT count(*) FROM customers")
    h.rollback()
    assert one(h, "EXECUTE r") == 3
    h.commit()
    # EXECUTE in a multi-statement Query, after a PREPARE of the same Query; arguments with casts.
    ca.execute("PREPARE m AS SELECT 7; SELECT 1; EXECUTE m")
    assert ca.fetchone()[0] == 7
    assert one(a, "EXECUTE q('101'::int)") == 2
    assert one(a, "EXECUTE q(CAST(100 + 1 AS int))") == 2
    try:
        ca.execute("EXECUTE q")
        raise AssertionError("EXECUTE with a missing argument was accepted")
    except psycopg2.errors.SyntaxError as e:  # the server's error, naming the client's statement
        assert 'prepared statement "q"' in str(e), str(e)
    ca.execute("EXPLAIN (COSTS OFF) EXECUTE q(0)")
    plan = " ".join(r[0] for r in ca.fetchall())
    assert "orders" in plan, plan
    for sql, error in [("CREATE TABLE copy_of_m AS EXECUTE m", psycopg2.errors.InsufficientPrivilege),
                       ("SELECT count(*) FROM pg_prepared_statements", psycopg2.errors.InsufficientPrivilege),
                       ("DEALLOCATE nope", psycopg2.errors.InvalidSqlStatementName)]:
        try:
            ca.execute(sql)
            raise AssertionError(sql + " was accepted")
        except error:
            pass
    # DEALLOCATE forgets the client's statement only.
    ca.execute("DEALLOCATE q")
    assert ca.statusmessage == "DEALLOCATE", ca.statusmessage
    try:
        ca.execute("EXECUTE q(0)")
        raise AssertionError("EXECUTE of a deallocated statement was accepted")
    except psycopg2.errors.InvalidSqlStatementName:
        pass
    assert one(b, "EXECUTE q") == 4
    ca.execute("DEALLOCATE ALL")
    assert ca.statusmessage == "DEALLOCATE ALL", ca.statusmessage
    try:
        ca.execute("EXECUTE m")
        raise AssertionError("EXECUTE after DEALLOCATE ALL was accepted")
    except psycopg2.errors.InvalidSqlStatementName:
        pass
    ca.execute("PREPARE q AS SELECT 8")  # the name is free again
    assert one(a, "EXECUTE q") == 8
    # A statement whose column is renamed fails at EXECUTE, as in PostgreSQL, and works again after.
    cb.execute("PREPARE n AS SELECT name FROM customers ORDER BY id LIMIT 1")
    d.cursor().execute("ALTER TABLE customers RENAME COLUMN name TO name2")
    try:
        cb.execute("EXECUTE n")
        raise AssertionError("EXECUTE of a statement on a renamed column was accepted")
    except psycopg2.errors.UndefinedColumn:
        pass
    d.cursor().execute("ALTER TABLE customers RENAME COLUMN name2 TO name")
    assert one(b, "EXECUTE n") == "globex-hank"
    # One namespace with protocol statements (psycopg 3 prepares with Parse, as _pg3_<n>): SQL
    # EXECUTE runs one, on a connection that lacks it too (prepared in SQL with its Parse types:
    # an int and an untyped str), and a SQL PREPARE of its name is 42P05.
    import psycopg
    p3 = psycopg.connect(host="127.0.0.1", port=PORT, user="t2", password=PASSWORDS["t2"], dbname="appdb",
                         sslmode="disable", connect_timeout=10, autocommit=True)
    q3 = "SELECT count(*) FROM orders WHERE id > %s AND status <> %s"
    assert p3.execute(q3, (0, "x"), prepare=True).fetchone()[0] == 4
    assert p3.execute(q3, (0, "x"), prepare=True).fetchone()[0] == 4
    one(d, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
           "WHERE usename = 'app' AND backend_type = 'client backend'")
    wait_for("the old server connections gone", lambda: app_backends(d) == 0)
    # Its server statement takes the tenant as parameters after the client's (one statement for
    # every tenant): SQL EXECUTE's arguments would bind them, so EXECUTE of it is refused (42501);
    # it stays usable through Bind.
    try:
        p3.execute("EXECUTE _pg3_0(201, 'new', '1')")
        raise AssertionError("EXECUTE of a statement with the tenant as a parameter was accepted")
    except psycopg.errors.InsufficientPrivilege:
        pass
    try:
        p3.execute("PREPARE _pg3_0 AS SELECT 1")
        raise AssertionError("PREPARE of a Parse'd name was accepted")
    except psycopg.errors.DuplicatePreparedStatement:
        pass
    assert p3.execute(q3, (0, "paid"), prepare=True).fetchone()[0] == 3
    p3.close()
    a.close()
    b.close()
    h.close()


globals()[SCENARIO]()
print("ok " + SCENARIO)
