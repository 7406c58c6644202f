"""psycopg2 through rowguard: simple query protocol (client-side parameter interpolation),
psycopg2's implicit transactions (BEGIN before the first statement), as tenant t1."""
import decimal
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rgdriver as rg  # noqa: E402

import psycopg2  # noqa: E402
import psycopg2.errors  # noqa: E402

ID = 5001  # this script's rows: 5001..5009

conn = psycopg2.connect(rg.conninfo("t1"))


def crud():
    cur = conn.cursor()
    cur.execute("SELECT id, tenant_id FROM orders ORDER BY id")
    rows = cur.fetchall()
    rg.check_eq("read own orders", [r[0] for r in rows], rg.ORDERS[1])
    rg.check_eq("read own orders: tenant ids", sorted({r[1] for r in rows}), [1])

    cur.execute("INSERT INTO orders (id, customer_id, amount, status) VALUES (%s, %s, %s, %s)",
                (ID, 101, decimal.Decimal("12.50"), "new"))
    rg.check_eq("insert without tenant_id: rowcount", cur.rowcount, 1)
    conn.commit()
    cur.execute("SELECT tenant_id, amount, status FROM orders WHERE id = %s", (ID,))
    rg.check_eq("insert without tenant_id: read back with tenant 1", cur.fetchall(),
                [(1, decimal.Decimal("12.50"), "new")])

    cur.execute("UPDATE orders SET amount = amount + 1, status = %s WHERE id = %s", ("paid", ID))
    rg.check_eq("update own row: rowcount", cur.rowcount, 1)
    cur.execute("SELECT amount, status FROM orders WHERE id = %s", (ID,))
    rg.check_eq("update own row: read back", cur.fetchone(), (decimal.Decimal("13.50"), "paid"))
    conn.commit()

    cur.execute("DELETE FROM orders WHERE id = %s", (ID,))
    rg.check_eq("delete own row: rowcount", cur.rowcount, 1)
    conn.commit()
    cur.execute("SELECT count(*) FROM orders WHERE id = %s", (ID,))
    rg.check_eq("delete own row: gone", cur.fetchone()[0], 0)
    conn.commit()


def isolation():
    cur = conn.cursor()
    cur.execute("SELECT name FROM customers ORDER BY id")
    names = [r[0] for r in cur.fetchall()]
    rg.check("customers: no globex rows", names and not any(n.startswith("globex-") for n in names), names)
    cur.execute("SELECT id FROM orders WHERE id BETWEEN 201 AND 204 OR tenant_id = 2")
    rg.check_eq("orders: tenant 2's rows invisible", cur.fetchall(), [])
    cur.execute("SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.name LIKE 'globex-%%'")
    rg.check_eq("join: tenant 2's rows invisible", cur.fetchone()[0], 0)

    cur.execute("UPDATE orders SET status = 'hacked' WHERE id = 201")
    rg.check_eq("update of tenant 2's row affects 0 rows", cur.rowcount, 0)
    cur.execute("DELETE FROM orders WHERE id = 202")
    rg.check_eq("delete of tenant 2's row affects 0 rows", cur.rowcount, 0)
    conn.commit()

    rg.expect_refused("insert with tenant_id 2 refused",
                      lambda: cur.execute("INSERT INTO orders (id, tenant_id, amount) VALUES (%s, %s, %s)",
                                          (ID + 1, 2, 1)),
                      psycopg2.errors.InsufficientPrivilege)
    conn.rollback()
    rg.expect_refused("moving a row to tenant 2 refused",
                      lambda: cur.execute("UPDATE orders SET tenant_id = 2 WHERE id = 101"),
                      psycopg2.errors.InsufficientPrivilege)
    conn.rollback()
    rg.expect_refused("table outside the policy refused",
                      lambda: cur.execute("SELECT * FROM audit_log"), psycopg2.errors.InsufficientPrivilege)
    conn.rollback()
    cur.execute("SELECT 41 + 1")
    rg.check_eq("connection usable after refusals", cur.fetchone()[0], 42)

    # A refusal inside a transaction aborts it, as a server error would.
    cur.execute("INSERT INTO orders (id, amount) VALUES (%s, 1)", (ID + 2,))
    try:
        cur.execute("INSERT INTO orders (id, tenant_id, amount) VALUES (%s, 2, 1)", (ID + 3,))
        rg.fail("refusal inside a transaction", "not refused")
    except psycopg2.errors.InsufficientPrivilege:
        rg.ok("refusal inside a transaction")
    conn.rollback()
    cur.execute("SELECT count(*) FROM orders WHERE id IN (%s, %s)", (ID + 2, ID + 3))
    rg.check_eq("refusal inside a transaction: nothing committed", cur.fetchone()[0], 0)
    conn.commit()


rg.run("crud", crud)
rg.run("isolation", isolation)
conn.close()
rg.cleanup_psycopg2("DELETE FROM orders WHERE id BETWEEN %d AND %d" % (ID, ID + 8))
rg.finish()
