"""asyncpg through rowguard: extended protocol only, named statements from asyncpg's statement
cache, explicit prepared statements, binary parameters and results, the tenant column as a
binary int4 parameter, pipelined executemany, and COPY (copy_records_to_table is binary
COPY FROM STDIN; copy_to_table with csv and copy_from_query are text COPY), as tenant t1."""
import asyncio
import decimal
import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rgdriver as rg  # noqa: E402

import asyncpg  # noqa: E402

ID = 5201  # this script's rows: 5201..5249
Refused = asyncpg.exceptions.InsufficientPrivilegeError


async def expect_refused(name, coro_fn):
    try:
        result = await coro_fn()
    except Refused as e:
        rg.ok(name)
        print("   refused: %s" % str(e).splitlines()[0], flush=True)
        return e
    except Exception as e:  # noqa: BLE001
        rg.fail(name, "expected InsufficientPrivilegeError (42501), got %s %s: %s" % (
            type(e).__name__, getattr(e, "sqlstate", None), e))
        return e
    rg.fail(name, "expected a 42501 refusal, but it succeeded: %r" % (result,))
    return None


async def usable(conn, name):
    rg.check_eq(name, await conn.fetchval("SELECT 41 + $1::int", 1), 42)


async def crud(conn):
    rows = await conn.fetch("SELECT id, tenant_id FROM orders WHERE amount > $1 ORDER BY id", 0)
    rg.check_eq("fetch with params: own orders", [r["id"] for r in rows], rg.ORDERS[1])
    rg.check_eq("fetch with params: tenant ids", sorted({r["tenant_id"] for r in rows}), [1])

    status = await conn.execute("INSERT INTO orders (id, customer_id, amount) VALUES ($1, $2, $3)",
                                ID, 101, decimal.Decimal("12.50"))
    rg.check_eq("insert without tenant_id", status, "INSERT 0 1")
    row = await conn.fetchrow("SELECT tenant_id, amount, status FROM orders WHERE id = $1", ID)
    rg.check_eq("insert without tenant_id: read back with tenant 1", tuple(row), (1, decimal.Decimal("12.50"), "new"))
    async with conn.transaction():
        status = await conn.execute("UPDATE orders SET amount = $1, status = $2 WHERE id = $3",
                                    decimal.Decimal("13.50"), "paid", ID)
        rg.check_eq("update own row in a transaction", status, "UPDATE 1")
    row = await conn.fetchrow("SELECT amount, status FROM orders WHERE id = $1", ID)
    rg.check_eq("update own row: read back", tuple(row), (decimal.Decimal("13.50"), "paid"))
    rg.check_eq("delete own row", await conn.execute("DELETE FROM orders WHERE id = $1", ID), "DELETE 1")


async def prepared(conn):
    stmt = await conn.prepare("SELECT id, tenant_id, amount FROM orders WHERE id = $1")
    seen = []
    for oid in [101, 201, 102, 202, 103, 203, 204]:
        r = await stmt.fetchrow(oid)
        if r is not None:
            seen.append((r["id"], r["tenant_id"]))
    rg.check_eq("prepared statement: only own rows", seen, [(101, 1), (102, 1), (103, 1)])
    ins = await conn.prepare("INSERT INTO orders (id, amount) VALUES ($1, $2)")
    for i in range(6):
        await ins.fetch(ID + 10 + i, decimal.Decimal(i))
    rg.check_eq("prepared insert x6 without tenant_id",
                await conn.fetch("SELECT DISTINCT tenant_id FROM orders WHERE id BETWEEN $1 AND $2", ID + 10, ID + 15),
                [(1,)])
    await conn.execute("DELETE FROM orders WHERE id BETWEEN $1 AND $2", ID + 10, ID + 15)


async def tenant_param(conn):
    sql = "INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, $3)"
    rg.check_eq("tenant_id = 1 as a binary int4 parameter accepted", await conn.execute(sql, ID + 1, 1, 1), "INSERT 0 1")
    await expect_refused("tenant_id = 2 as a binary int4 parameter refused", lambda: conn.execute(sql, ID + 2, 2, 1))
    await usable(conn, "connection usable after the refusal")
    rg.check_eq("same statement (cached) accepted again with tenant 1", await conn.execute(sql, ID + 3, 1, 1), "INSERT 0 1")
    await expect_refused("tenant_id = 2 as a bigint parameter refused",
                         lambda: conn.execute("INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2::bigint, $3)",
                                              ID + 4, 2, 1))
    rg.check_eq("tenant_id = 1 as a bigint parameter accepted",
                await conn.execute("INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2::bigint, $3)", ID + 5, 1, 1),
                "INSERT 0 1")
    await expect_refused("moving a row to tenant 2 with a parameter refused",
                         lambda: conn.execute("UPDATE orders SET tenant_id = $1 WHERE id = $2", 2, 101))
    rows = await conn.fetch("SELECT id, tenant_id FROM orders WHERE id BETWEEN $1 AND $2 ORDER BY id", ID + 1, ID + 9)
    rg.check_eq("only the tenant-1 rows exist", [tuple(r) for r in rows], [(ID + 1, 1), (ID + 3, 1), (ID + 5, 1)])
    await conn.execute("DELETE FROM orders WHERE id BETWEEN $1 AND $2", ID + 1, ID + 9)


async def isolation(conn):
    names = [r["name"] for r in await conn.fetch("SELECT name FROM customers WHERE id > $1", 0)]
    rg.check("customers: no globex rows", names and not any(n.startswith("globex-") for n in names), names)
    rg.check_eq("orders 201..203 invisible", await conn.fetch("SELECT id FROM orders WHERE id = ANY($1::int[])", [201, 202, 203]), [])
    rg.check_eq("update of tenant 2's row affects 0 rows",
                await conn.execute("UPDATE orders SET status = $1 WHERE id = $2", "hacked", 201), "UPDATE 0")
    await expect_refused("table outside the policy refused", lambda: conn.fetch("SELECT * FROM audit_log"))
    await usable(conn, "connection usable after refusals")


async def executemany(conn):
    await conn.executemany("INSERT INTO orders (id, customer_id, amount) VALUES ($1, $2, $3)",
                           [(ID + 20 + i, 101, decimal.Decimal(i)) for i in range(10)])
    rows = await conn.fetch("SELECT tenant_id, count(*) FROM orders WHERE id BETWEEN $1 AND $2 GROUP BY 1", ID + 20, ID + 29)
    rg.check_eq("pipelined executemany without tenant_id", [tuple(r) for r in rows], [(1, 10)])
    await conn.execute("DELETE FROM orders WHERE id BETWEEN $1 AND $2", ID + 20, ID + 29)

    # One bad row in the batch: executemany is atomic, nothing is inserted.
    await expect_refused("executemany with one tenant-2 row refused",
                         lambda: conn.executemany("INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, $3)",
                                                  [(ID + 30, 1, 1), (ID + 31, 2, 1), (ID + 32, 1, 1)]))
    await usable(conn, "connection usable after the refused executemany")
    n = await conn.fetchval("SELECT count(*) FROM orders WHERE id BETWEEN $1 AND $2", ID + 30, ID + 32)
    if n == 0:
        rg.ok("refused executemany inserted nothing")
    else:
        # asyncpg < 0.28 does not wrap executemany in a transaction: rows before the bad one stay
        # (they are tenant 1's, so this is the driver's semantics, not a leak).
        rows = await conn.fetch("SELECT id, tenant_id FROM orders WHERE id BETWEEN $1 AND $2 ORDER BY id", ID + 30, ID + 32)
        rg.check("refused executemany: only tenant-1 rows before the bad one", [tuple(r) for r in rows] in
                 ([(ID + 30, 1)], [(ID + 30, 1), (ID + 32, 1)]), rows)
        await conn.execute("DELETE FROM orders WHERE id BETWEEN $1 AND $2", ID + 30, ID + 32)


async def connect():
    return await asyncpg.connect(host=rg.HOST, port=rg.PORT, user="t1", password=rg.PASSWORDS["t1"],
                                 database=rg.DB, ssl=False, timeout=10)


# rowguard's log line when it closes a session because the client pipelined its COPY data
# (asyncpg sends CopyData and CopyDone without waiting for CopyInResponse).
COPY_PIPELINE_CLOSE = "connection closed during a pipelined COPY FROM STDIN"


async def copy_step(name, body):
    """Runs body(conn) on a fresh connection; a connection lost in the middle of the COPY is
    reported as UNSUPPORTED (rowguard logs why), anything else unexpected fails."""
    conn = await connect()
    try:
        await body(conn)
        await usable(conn, "connection usable after " + name)
    except (asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.exceptions.InterfaceError) as e:
        rg.unsupported(name, "%s: %s: %s" % (COPY_PIPELINE_CLOSE, type(e).__name__, e))
    except Exception as e:  # noqa: BLE001
        rg.fail(name, "%s %s: %s" % (type(e).__name__, getattr(e, "sqlstate", None), e))
    finally:
        await conn.close()


async def copy(conn):
    # copy_records_to_table: COPY orders (cols) FROM STDIN (FORMAT binary). Binary rows cannot be
    # checked for the tenant column, so rowguard refuses it: cleanly, the connection stays usable.
    try:
        await conn.copy_records_to_table("orders", records=[(ID + 40, 101, decimal.Decimal("1.00"))],
                                         columns=["id", "customer_id", "amount"])
        rows = await conn.fetch("SELECT tenant_id FROM orders WHERE id = $1", ID + 40)
        rg.check_eq("copy_records_to_table accepted: row has tenant 1", [tuple(r) for r in rows], [(1,)])
        rg.ok("copy_records_to_table (binary COPY FROM STDIN)")
    except Refused as e:
        rg.unsupported("copy_records_to_table (binary COPY FROM STDIN)", str(e).splitlines()[0])
    except Exception as e:  # noqa: BLE001
        rg.fail("copy_records_to_table (binary COPY FROM STDIN)", "not a clean refusal: %s: %s" % (type(e).__name__, e))
    await usable(conn, "connection usable after copy_records_to_table")

    # copy_to_table with csv: text COPY FROM STDIN without the tenant column: rowguard adds it.
    # asyncpg sends the COPY data right behind the COPY statement; five rounds, as whether the
    # data reaches rowguard before the server's CopyInResponse is a matter of timing.
    async def csv_own(c):
        for _ in range(5):
            status = await c.copy_to_table("orders", source=io.BytesIO(b"%d,101,2.50\n%d,102,3.50\n" % (ID + 41, ID + 42)),
                                           columns=["id", "customer_id", "amount"], format="csv")
            rows = await c.fetch("SELECT id, tenant_id FROM orders WHERE id BETWEEN $1 AND $2 ORDER BY id", ID + 41, ID + 42)
            await c.execute("DELETE FROM orders WHERE id BETWEEN $1 AND $2", ID + 41, ID + 42)
            if status != "COPY 2" or [tuple(r) for r in rows] != [(ID + 41, 1), (ID + 42, 1)]:
                rg.fail("copy_to_table csv", "status %r, rows %r" % (status, rows))
                return
        rg.ok("copy_to_table csv")
        rg.ok("copy_to_table csv without tenant_id: rows have tenant 1")
    await copy_step("copy_to_table csv", csv_own)

    # The same with tenant 2 in the tenant column: refused row by row, nothing inserted.
    async def csv_other(c):
        for _ in range(3):
            try:
                await c.copy_to_table("orders", source=io.BytesIO(b"%d,1,9.99\n%d,2,9.99\n" % (ID + 43, ID + 44)),
                                      columns=["id", "tenant_id", "amount"], format="csv")
                rg.fail("copy_to_table csv with tenant_id 2", "accepted")
                return
            except Refused as e:
                refusal = str(e).splitlines()[0]
        rg.ok("copy_to_table csv with tenant_id 2")
        print("   refused: %s" % refusal, flush=True)
        rg.check_eq("refused copy inserted nothing",
                    await c.fetchval("SELECT count(*) FROM orders WHERE id BETWEEN $1 AND $2", ID + 43, ID + 44), 0)
    await copy_step("copy_to_table csv with tenant_id 2", csv_other)

    # copy_from_query / copy_from_table: COPY ... TO STDOUT, filtered like a SELECT.
    async def copy_out(c):
        out = io.BytesIO()
        await c.copy_from_query("SELECT id FROM orders WHERE id < $1 ORDER BY id", 1000, output=out, format="csv")
        rg.check_eq("copy_from_query: own rows only", out.getvalue().decode().split(), [str(i) for i in rg.ORDERS[1]])
        out = io.BytesIO()
        await c.copy_from_table("customers", columns=["name"], output=out, format="csv")
        names = out.getvalue().decode().split()
        rg.check("copy_from_table: no globex rows", names and not any(n.startswith("globex-") for n in names), names)
    await copy_step("copy_from_query", copy_out)


async def main():
    conn = await connect()
    try:
        for name, fn in [("crud", crud), ("prepared", prepared), ("tenant_param", tenant_param),
                         ("isolation", isolation), ("executemany", executemany), ("copy", copy)]:
            try:
                await fn(conn)
            except Exception:  # noqa: BLE001
                import traceback
                rg.fail(name, "unexpected exception:\n" + traceback.format_exc())
    finally:
        await conn.close()
        cleanup = await connect()  # whatever happened above: leave the data as it was
        await cleanup.execute("DELETE FROM orders WHERE id BETWEEN $1 AND $2", ID, ID + 48)
        await cleanup.close()


asyncio.run(main())
rg.finish()
