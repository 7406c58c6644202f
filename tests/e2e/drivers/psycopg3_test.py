"""psycopg 3 through rowguard: server-side parameters (extended protocol, unnamed statements),
explicitly prepared statements (prepare=True) and automatic preparation (prepare_threshold),
binary results and binary parameters (%b), the tenant column passed as a parameter, pipeline
mode, as tenant t1."""
import decimal
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rgdriver as rg  # noqa: E402

import psycopg  # noqa: E402
import psycopg.errors  # noqa: E402

ID = 5101  # this script's rows: 5101..5129
Refused = psycopg.errors.InsufficientPrivilege

conn = psycopg.connect(rg.conninfo("t1"), autocommit=True)


def crud():
    rows = conn.execute("SELECT id, tenant_id FROM orders WHERE amount > %s ORDER BY id", (0,)).fetchall()
    rg.check_eq("read own orders (server-side params)", [r[0] for r in rows], rg.ORDERS[1])
    rg.check_eq("read own orders: tenant ids", sorted({r[1] for r in rows}), [1])

    cur = conn.execute("INSERT INTO orders (id, customer_id, amount) VALUES (%s, %s, %s)",
                       (ID, 101, decimal.Decimal("12.50")))
    rg.check_eq("insert without tenant_id: rowcount", cur.rowcount, 1)
    row = conn.execute("SELECT tenant_id, amount, status FROM orders WHERE id = %s", (ID,)).fetchone()
    rg.check_eq("insert without tenant_id: read back with tenant 1", row, (1, decimal.Decimal("12.50"), "new"))

    with conn.transaction():
        cur = conn.execute("UPDATE orders SET amount = %s, status = %s WHERE id = %s",
                           (decimal.Decimal("13.50"), "paid", ID))
        rg.check_eq("update own row in a transaction: rowcount", cur.rowcount, 1)
    row = conn.execute("SELECT amount, status FROM orders WHERE id = %s", (ID,)).fetchone()
    rg.check_eq("update own row: read back", row, (decimal.Decimal("13.50"), "paid"))

    cur = conn.execute("DELETE FROM orders WHERE id = %s", (ID,))
    rg.check_eq("delete own row: rowcount", cur.rowcount, 1)
    rg.check_eq("delete own row: gone",
                conn.execute("SELECT count(*) FROM orders WHERE id = %s", (ID,)).fetchone()[0], 0)


def prepared():
    # libpq's protocol trace shows which statements were named (prepared) ones.
    trace = tempfile.TemporaryFile(mode="w+")
    conn.pgconn.trace(trace.fileno())
    # prepare=True: a named server-side prepared statement from the first execution.
    q = "SELECT id, tenant_id FROM orders WHERE id = %s"
    seen = []
    for oid in [101, 201, 102, 202, 103, 203, 204]:
        seen += conn.execute(q, (oid,), prepare=True).fetchall()
    rg.check_eq("prepare=True: only own rows", seen, [(101, 1), (102, 1), (103, 1)])

    # Automatic preparation after prepare_threshold (5) executions of the same query.
    n = 0
    for i in range(8):
        cur = conn.execute("INSERT INTO orders (id, amount) VALUES (%s, %s)", (ID + 10 + i, i))
        n += cur.rowcount
    rg.check_eq("auto-prepared insert without tenant_id x8: rowcount", n, 8)
    rows = conn.execute("SELECT DISTINCT tenant_id FROM orders WHERE id BETWEEN %s AND %s",
                        (ID + 10, ID + 17)).fetchall()
    rg.check_eq("auto-prepared inserts got tenant 1", rows, [(1,)])
    cur = conn.execute("DELETE FROM orders WHERE id BETWEEN %s AND %s", (ID + 10, ID + 17), prepare=True)
    rg.check_eq("prepared delete: rowcount", cur.rowcount, 8)
    conn.pgconn.untrace()
    trace.seek(0)
    named = sorted(set(re.findall(r'\tParse\t *"(_pg3_\d+)"', trace.read())))
    rg.check("named server-side statements were used", len(named) >= 3, named)


def binary():
    cur = conn.cursor(binary=True)
    cur.execute("SELECT id, tenant_id, amount FROM orders WHERE id >= %b ORDER BY id", (0,))
    rows = cur.fetchall()
    rg.check_eq("binary cursor: own orders", [r[0] for r in rows], rg.ORDERS[1])
    rg.check_eq("binary cursor: tenant ids", sorted({r[1] for r in rows}), [1])
    cur.execute("INSERT INTO orders (id, customer_id, amount) VALUES (%b, %b, %b)", (ID + 1, 102, decimal.Decimal("7.25")))
    rg.check_eq("binary params: insert without tenant_id", cur.rowcount, 1)
    cur.execute("SELECT tenant_id, amount FROM orders WHERE id = %b", (ID + 1,))
    rg.check_eq("binary params: read back", cur.fetchone(), (1, decimal.Decimal("7.25")))
    cur.execute("SELECT count(*) FROM orders WHERE id = %b", (201,), prepare=True)
    rg.check_eq("binary prepared: tenant 2's row invisible", cur.fetchone()[0], 0)
    cur.execute("DELETE FROM orders WHERE id = %b", (ID + 1,))
    rg.check_eq("binary params: delete", cur.rowcount, 1)


def tenant_param():
    sql = "INSERT INTO orders (id, tenant_id, amount) VALUES (%s, %s, %s)"
    cur = conn.execute(sql, (ID + 2, 1, 1))
    rg.check_eq("tenant_id = 1 as a text parameter accepted", cur.rowcount, 1)
    rg.expect_refused("tenant_id = 2 as a text parameter refused", lambda: conn.execute(sql, (ID + 3, 2, 1)), Refused)
    rg.check_eq("connection usable after the refusal", conn.execute("SELECT 1").fetchone()[0], 1)

    cur = conn.execute(sql, (ID + 4, 1, 1), prepare=True)
    rg.check_eq("tenant_id = 1 as a prepared parameter accepted", cur.rowcount, 1)
    rg.expect_refused("tenant_id = 2 as a prepared parameter refused",
                      lambda: conn.execute(sql, (ID + 5, 2, 1), prepare=True), Refused)
    cur = conn.execute(sql, (ID + 6, 1, 1), prepare=True)
    rg.check_eq("prepared statement still usable after the refusal", cur.rowcount, 1)

    bsql = "INSERT INTO orders (id, tenant_id, amount) VALUES (%b, %b, %b)"
    cur = conn.execute(bsql, (ID + 7, 1, 1))
    rg.check_eq("tenant_id = 1 as a binary parameter accepted", cur.rowcount, 1)
    rg.expect_refused("tenant_id = 2 as a binary parameter refused", lambda: conn.execute(bsql, (ID + 8, 2, 1)), Refused)
    rg.expect_refused("tenant_id = 2 as a binary int8 parameter refused",
                      lambda: conn.execute("INSERT INTO orders (id, tenant_id, amount) VALUES (%b, %b::int8, %b)",
                                           (ID + 9, psycopg.types.numeric.Int8(2), 1)), Refused)
    rg.expect_refused("tenant_id = NULL parameter refused", lambda: conn.execute(sql, (ID + 9, None, 1)), Refused)
    rows = conn.execute("SELECT id, tenant_id FROM orders WHERE id BETWEEN %s AND %s ORDER BY id",
                        (ID + 2, ID + 9)).fetchall()
    rg.check_eq("only the tenant-1 parameter rows exist", rows, [(ID + 2, 1), (ID + 4, 1), (ID + 6, 1), (ID + 7, 1)])
    conn.execute("DELETE FROM orders WHERE id BETWEEN %s AND %s", (ID + 2, ID + 9))


def isolation():
    names = [r[0] for r in conn.execute("SELECT name FROM customers WHERE id > %s", (0,))]
    rg.check("customers: no globex rows", names and not any(n.startswith("globex-") for n in names), names)
    rg.check_eq("orders 201..203 invisible",
                conn.execute("SELECT id FROM orders WHERE id IN (%s, %s, %s)", (201, 202, 203)).fetchall(), [])
    cur = conn.execute("UPDATE orders SET status = %s WHERE id = %s", ("hacked", 201))
    rg.check_eq("update of tenant 2's row affects 0 rows", cur.rowcount, 0)
    rg.expect_refused("moving a row to tenant 2 refused",
                      lambda: conn.execute("UPDATE orders SET tenant_id = %s WHERE id = %s", (2, 101)), Refused)
    rg.expect_refused("table outside the policy refused",
                      lambda: conn.execute("SELECT * FROM audit_log WHERE id = %s", (1,)), Refused)
    rg.check_eq("connection usable after refusals", conn.execute("SELECT %s::int + 1", (41,)).fetchone()[0], 42)


def pipeline():
    with conn.pipeline():
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO orders (id, amount) VALUES (%s, %s)",
                            [(ID + 20 + i, i) for i in range(5)])
    rows = conn.execute("SELECT tenant_id, count(*) FROM orders WHERE id BETWEEN %s AND %s GROUP BY 1",
                        (ID + 20, ID + 24)).fetchall()
    rg.check_eq("pipeline executemany without tenant_id", rows, [(1, 5)])
    try:
        with conn.pipeline():
            conn.execute("INSERT INTO orders (id, amount) VALUES (%s, 1)", (ID + 25,))
            conn.execute("INSERT INTO orders (id, tenant_id, amount) VALUES (%s, %s, 1)", (ID + 26, 2))
        rg.fail("pipeline: cross-tenant insert refused", "not refused")
    except Refused:
        rg.ok("pipeline: cross-tenant insert refused")
    rg.check_eq("connection usable after a refused pipeline", conn.execute("SELECT 3").fetchone()[0], 3)
    n = conn.execute("SELECT count(*) FROM orders WHERE id = %s", (ID + 26,)).fetchone()[0]
    rg.check_eq("pipeline: refused row not inserted", n, 0)
    conn.execute("DELETE FROM orders WHERE id BETWEEN %s AND %s", (ID + 20, ID + 29))


rg.run("crud", crud)
rg.run("prepared", prepared)
rg.run("binary", binary)
rg.run("tenant_param", tenant_param)
rg.run("isolation", isolation)
rg.run("pipeline", pipeline)
conn.close()
rg.cleanup_psycopg2("DELETE FROM orders WHERE id BETWEEN %d AND %d" % (ID, ID + 28))
rg.finish()
