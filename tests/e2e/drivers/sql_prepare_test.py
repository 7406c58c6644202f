"""SQL-level PREPARE / EXECUTE / DEALLOCATE through rowguard, as tenant t1.

psycopg2 sends them as text in simple Query messages. psycopg 3's libpq-level API
(pgconn.prepare / pgconn.exec_prepared: protocol Parse and Bind) is mixed with SQL text under
the same names: PostgreSQL has one namespace for both, and rowguard must check an EXECUTE of a
Parse'd name and a Bind of a PREPAREd name alike."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rgdriver as rg  # noqa: E402

import psycopg  # noqa: E402
import psycopg.pq  # noqa: E402
import psycopg2  # noqa: E402
import psycopg2.errors  # noqa: E402

ID = 5101  # this script's rows: 5101..5109

conn = psycopg2.connect(rg.conninfo("t1"))
conn.autocommit = True
cur = conn.cursor()


def own_ids():
    cur.execute("SELECT id, tenant_id FROM orders WHERE id BETWEEN %s AND %s ORDER BY id", (ID, ID + 8))
    return cur.fetchall()


def own_tenant():
    cur.execute("PREPARE ins(int, int) AS INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, 1)")
    cur.execute("EXECUTE ins(%s, 1)", (ID,))
    rg.check_eq("EXECUTE with the own tenant inserts", cur.rowcount, 1)
    cur.execute("EXECUTE ins(%s, '1')", (ID + 1,))
    rg.check_eq("EXECUTE with the own tenant as a string inserts", cur.rowcount, 1)
    cur.execute("PREPARE ins_fill AS INSERT INTO orders (id, amount) VALUES ($1, $2)")
    cur.execute("EXECUTE ins_fill(%s, 2)", (ID + 2,))
    rg.check_eq("PREPAREd INSERT without tenant_id gets the tenant", own_ids(),
                [(ID, 1), (ID + 1, 1), (ID + 2, 1)])

    cur.execute("PREPARE sel AS SELECT id FROM orders WHERE id < $1 ORDER BY id")
    cur.execute("EXECUTE sel(1000)")
    rg.check_eq("PREPAREd SELECT is filtered", [r[0] for r in cur.fetchall()], rg.ORDERS[1])
    cur.execute("PREPARE upd AS UPDATE orders SET status = $1 WHERE id = $2")
    cur.execute("EXECUTE upd('hacked', 201)")
    rg.check_eq("PREPAREd UPDATE of tenant 2's row affects 0 rows", cur.rowcount, 0)

    # PREPARE and EXECUTE in one Query string (one simple Query message).
    cur.execute("PREPARE multi AS SELECT count(*) FROM orders WHERE id = $1; EXECUTE multi(101)")
    rg.check_eq("PREPARE; EXECUTE in one Query", cur.fetchone()[0], 1)
    cur.execute("EXECUTE multi(201)")
    rg.check_eq("EXECUTE of tenant 2's id sees nothing", cur.fetchone()[0], 0)
    # The example policy refuses EXPLAIN ([tenancy] explain defaults to "refuse"); the session stays usable.
    rg.expect_refused("EXPLAIN (COSTS OFF) EXECUTE is refused by default",
                      lambda: cur.execute("EXPLAIN (COSTS OFF) EXECUTE multi(101)"))
    cur.execute("EXECUTE multi(101)")
    rg.check_eq("EXECUTE after the refused EXPLAIN", cur.fetchone()[0], 1)


def cross_tenant():
    rg.expect_refused("EXECUTE with tenant 2 refused",
                      lambda: cur.execute("EXECUTE ins(%s, 2)", (ID + 3,)), psycopg2.errors.InsufficientPrivilege)
    rg.expect_refused("EXECUTE with a computed tenant refused",
                      lambda: cur.execute("EXECUTE ins(%s, 3 - 2)", (ID + 3,)), psycopg2.errors.InsufficientPrivilege)
    rg.expect_refused("PREPARE; EXECUTE with tenant 2 in one Query refused",
                      lambda: cur.execute("PREPARE ins2 AS INSERT INTO orders (id, tenant_id, amount) "
                                          "VALUES ($1, $2, 1); EXECUTE ins2(%s, 2)", (ID + 3,)),
                      psycopg2.errors.InsufficientPrivilege)
    rg.expect_refused("the refused Query prepared nothing",
                      lambda: cur.execute("EXECUTE ins2(%s, 1)", (ID + 3,)), psycopg2.errors.InsufficientPrivilege)
    rg.expect_refused("PREPARE with tenant 2 as a literal refused",
                      lambda: cur.execute("PREPARE bad AS INSERT INTO orders (id, tenant_id, amount) "
                                          "VALUES ($1, 2, 1)"), psycopg2.errors.InsufficientPrivilege)
    rg.expect_refused("EXECUTE of a statement never prepared refused",
                      lambda: cur.execute("EXECUTE never_prepared(1)"), psycopg2.errors.InsufficientPrivilege)
    cur.execute("SELECT 41 + 1")
    rg.check_eq("connection usable after refusals", cur.fetchone()[0], 42)
    rg.check_eq("no row written by refused EXECUTEs", own_ids(), [(ID, 1), (ID + 1, 1), (ID + 2, 1)])

    # Arguments are expressions: a subquery over a table outside the policy or a forbidden
    # function is refused by rowguard; a subquery over a tenant table is filtered and forwarded
    # (PostgreSQL itself then refuses subqueries in EXECUTE parameters, 0A000).
    rg.expect_refused("subquery over a table outside the policy in EXECUTE args refused",
                      lambda: cur.execute("EXECUTE sel((SELECT max(id) FROM audit_log))"),
                      psycopg2.errors.InsufficientPrivilege)
    rg.expect_refused("forbidden function in EXECUTE args refused",
                      lambda: cur.execute("EXECUTE sel(length(pg_read_file('/etc/passwd')))"),
                      psycopg2.errors.InsufficientPrivilege)
    try:
        cur.execute("EXECUTE sel((SELECT max(id) FROM orders))")
        rg.fail("subquery over a tenant table in EXECUTE args reaches the server", "no error")
    except psycopg2.errors.FeatureNotSupported as e:
        rg.check("subquery over a tenant table in EXECUTE args reaches the server",
                 "cannot use subquery in EXECUTE parameter" in str(e), str(e))


def deallocate():
    cur.execute("DEALLOCATE ins")
    rg.expect_refused("EXECUTE after DEALLOCATE refused",
                      lambda: cur.execute("EXECUTE ins(%s, 1)", (ID + 3,)), psycopg2.errors.InsufficientPrivilege)
    cur.execute("EXECUTE sel(1000)")
    rg.check_eq("other statements survive DEALLOCATE name", len(cur.fetchall()), 3)
    cur.execute("DEALLOCATE ALL")
    rg.expect_refused("EXECUTE after DEALLOCATE ALL refused",
                      lambda: cur.execute("EXECUTE sel(1000)"), psycopg2.errors.InsufficientPrivilege)
    cur.execute("PREPARE again AS SELECT 1")
    cur.execute("DISCARD ALL")
    rg.expect_refused("EXECUTE after DISCARD ALL refused",
                      lambda: cur.execute("EXECUTE again"), psycopg2.errors.InsufficientPrivilege)
    cur.execute("PREPARE again AS SELECT 7")
    cur.execute("EXECUTE again")
    rg.check_eq("the name can be prepared again", cur.fetchone()[0], 7)


def failed_transaction():
    conn.autocommit = False
    try:
        cur.execute("SELECT 1 / 0")
    except psycopg2.errors.DivisionByZero:
        pass
    try:
        cur.execute("PREPARE late AS SELECT 1")
        rg.fail("PREPARE in a failed transaction fails", "it succeeded")
    except psycopg2.errors.InFailedSqlTransaction:
        rg.ok("PREPARE in a failed transaction fails")
    conn.rollback()
    conn.autocommit = True
    rg.expect_refused("a PREPARE the server refused is not registered",
                      lambda: cur.execute("EXECUTE late"), psycopg2.errors.InsufficientPrivilege)
    # PREPARE is not transactional: it survives a ROLLBACK, as in PostgreSQL.
    conn.autocommit = False
    cur.execute("PREPARE kept AS INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, 1)")
    conn.rollback()
    conn.autocommit = True
    rg.expect_refused("a PREPARE kept after ROLLBACK is still checked",
                      lambda: cur.execute("EXECUTE kept(%s, 2)", (ID + 4,)), psycopg2.errors.InsufficientPrivilege)
    cur.execute("EXECUTE kept(%s, 1)", (ID + 4,))
    rg.check_eq("a PREPARE kept after ROLLBACK runs for the own tenant", cur.rowcount, 1)


def one_namespace():
    c3 = psycopg.connect(rg.conninfo("t1"), autocommit=True)
    pg = c3.pgconn
    ok = psycopg.pq.ExecStatus.COMMAND_OK
    sqlstate = psycopg.pq.DiagnosticField.SQLSTATE

    # Prepared with the protocol (Parse), executed with SQL EXECUTE.
    r = pg.prepare(b"proto_ins", b"INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, 1)")
    rg.check_eq("protocol Parse of an INSERT", r.status, ok)
    rg.expect_refused("SQL EXECUTE of a Parse'd statement with tenant 2 refused",
                      lambda: c3.execute("EXECUTE proto_ins(%d, 2)" % (ID + 5)))
    c3.execute("EXECUTE proto_ins(%d, 1)" % (ID + 5))
    rg.ok("SQL EXECUTE of a Parse'd statement with the own tenant")

    # Prepared with SQL PREPARE, executed with the protocol (Bind / Execute).
    c3.execute("PREPARE sql_ins AS INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, 1)")
    r = pg.exec_prepared(b"sql_ins", [b"%d" % (ID + 6), b"2"])
    rg.check_eq("Bind of a PREPAREd statement with tenant 2 refused",
                (r.status, r.error_field(sqlstate)), (psycopg.pq.ExecStatus.FATAL_ERROR, b"42501"))
    r = pg.exec_prepared(b"sql_ins", [b"%d" % (ID + 6), b"1"])
    rg.check_eq("Bind of a PREPAREd statement with the own tenant", r.status, ok)

    # SQL DEALLOCATE of a Parse'd name: a later EXECUTE is unknown.
    c3.execute("DEALLOCATE proto_ins")
    rg.expect_refused("EXECUTE of a Parse'd statement after DEALLOCATE refused",
                      lambda: c3.execute("EXECUTE proto_ins(%d, 1)" % (ID + 7)))
    c3.execute("SELECT 1")
    rg.ok("psycopg 3 connection usable after refusals")
    c3.close()
    rg.check_eq("rows written through both namespaces", own_ids(),
                [(ID, 1), (ID + 1, 1), (ID + 2, 1), (ID + 4, 1), (ID + 5, 1), (ID + 6, 1)])

    # Tenant 2 sees none of them and tenant 2's rows were never touched.
    with psycopg2.connect(rg.conninfo("t2")) as c2, c2.cursor() as cur2:
        cur2.execute("SELECT count(*) FROM orders WHERE id BETWEEN %s AND %s OR status = 'hacked'",
                     (ID, ID + 8))
        rg.check_eq("tenant 2 sees no row of this script", cur2.fetchone()[0], 0)
    c2.close()


rg.run("own tenant", own_tenant)
rg.run("cross tenant", cross_tenant)
rg.run("deallocate", deallocate)
rg.run("failed transaction", failed_transaction)
rg.run("one namespace", one_namespace)
conn.close()
rg.cleanup_psycopg2("DELETE FROM orders WHERE id BETWEEN %d AND %d" % (ID, ID + 8))
rg.finish()
