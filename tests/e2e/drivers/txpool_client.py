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


def cancel():
    d = direct()
    a = connect("t1")
    b = connect("t2")
    # A cancel while A holds nothing cancels nothing: B's statement on (maybe) A's old connection runs on.
    assert one(a, "SELECT count(*) FROM orders") == 3
    a.cancel()
    assert one(b, "SELECT count(*) FROM (SELECT pg_sleep(0.3)) s") == 1
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
    assert one(b, "SELECT count(*) FROM orders") == 4
    assert one(a, "SELECT count(*) FROM orders") == 3


globals()[SCENARIO]()
print("ok " + SCENARIO)
