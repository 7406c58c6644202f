"""Shared helpers for the Python driver scripts of tests/e2e/drivers_e2e_test.cc.

The test starts rowguard with the example policy (examples/rowguard.toml) in front of a
PostgreSQL loaded with examples/schema.sql and passes its address in the environment:
  ROWGUARD_HOST, ROWGUARD_PORT, ROWGUARD_DB
Tenant users and passwords are the example policy's: t1/pw1 (tenant 1), t2/pw2 (tenant 2).

Every script prints one line per check:
  ok <name>                    the check passed
  FAIL <name>: <details>       the check failed (the script then exits 1)
  UNSUPPORTED <name>: <details> rowguard refused something it does not support yet, with
                               the refusal recognised precisely (the test reports it)
and exits 0 only if nothing failed. Scripts leave the example data as they found it.
"""
import os
import sys
import traceback

HOST = os.environ.get("ROWGUARD_HOST", "127.0.0.1")
PORT = int(os.environ.get("ROWGUARD_PORT", "6432"))
DB = os.environ.get("ROWGUARD_DB", "appdb")
PASSWORDS = {"t1": "pw1", "t2": "pw2", "t3": "pw3"}

# The example data (examples/schema.sql) as each tenant should see it.
ORDERS = {1: [101, 102, 103], 2: [201, 202, 203, 204], 3: [301, 302]}
CUSTOMER_PREFIX = {1: "acme-", 2: "globex-", 3: "initech-"}

_failures = []


def conninfo(user):
    return "host=%s port=%d dbname=%s user=%s password=%s sslmode=disable connect_timeout=10" % (
        HOST, PORT, DB, user, PASSWORDS[user])


def ok(name):
    print("ok " + name, flush=True)


def fail(name, details):
    _failures.append(name)
    print("FAIL %s: %s" % (name, details), flush=True)


def unsupported(name, details):
    print("UNSUPPORTED %s: %s" % (name, details), flush=True)


def check(name, condition, details=""):
    if condition:
        ok(name)
    else:
        fail(name, details)
    return condition


def check_eq(name, actual, expected):
    return check(name, actual == expected, "got %r, expected %r" % (actual, expected))


def sqlstate_of(exc):
    """The SQLSTATE of a driver exception (psycopg2, psycopg 3, asyncpg, SQLAlchemy/Django wrappers)."""
    for e in (exc, getattr(exc, "orig", None), getattr(exc, "__cause__", None)):
        if e is None:
            continue
        for attr in ("pgcode", "sqlstate"):
            v = getattr(e, attr, None)
            if isinstance(v, str) and v:
                return v
        diag = getattr(e, "diag", None)
        if diag is not None and getattr(diag, "sqlstate", None):
            return diag.sqlstate
    return None


def expect_refused(name, fn, exc_class=None):
    """Runs fn(), which must raise a 42501 refusal (of exc_class when given). Returns the exception."""
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001 - we classify below
        state = sqlstate_of(e)
        if state == "42501" and (exc_class is None or isinstance(e, exc_class)
                                 or isinstance(getattr(e, "orig", None), exc_class)
                                 or isinstance(e.__cause__, exc_class)):
            ok(name)
            print("   refused: %s" % str(e).strip().splitlines()[0], flush=True)
        else:
            fail(name, "expected SQLSTATE 42501%s, got %s %s: %s" % (
                " (" + exc_class.__name__ + ")" if exc_class else "", type(e).__name__, state, e))
        return e
    fail(name, "expected a 42501 refusal, but it succeeded: %r" % (result,))
    return None


def expect_works(name, fn, known_refusal):
    """Runs fn(), which should succeed: that is the correct behaviour. When rowguard refuses it
    with SQLSTATE 42501 and a message containing known_refusal (a feature rowguard lacks), the
    case is reported UNSUPPORTED with the message; any other error fails it.
    Returns (result, exception)."""
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001
        msg = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
        if sqlstate_of(e) == "42501" and known_refusal in str(e):
            unsupported(name, msg)
        else:
            fail(name, "%s %s: %s" % (type(e).__name__, sqlstate_of(e), msg))
        return None, e
    ok(name)
    return result, None


def run(name, fn):
    """Runs one group of checks; an unexpected exception fails the group instead of the script."""
    try:
        fn()
    except Exception:  # noqa: BLE001
        fail(name, "unexpected exception:\n" + traceback.format_exc())


def cleanup_psycopg2(sql, user="t1"):
    """Runs sql as user on a fresh psycopg2 connection, so that rows a failed check left
    behind are removed whatever state the script's own connection is in."""
    import psycopg2
    try:
        with psycopg2.connect(conninfo(user)) as c, c.cursor() as cur:
            cur.execute(sql)
        c.close()
    except Exception as e:  # noqa: BLE001
        fail("cleanup", "%s: %s" % (sql, e))


def finish():
    if _failures:
        print("%d check(s) failed: %s" % (len(_failures), ", ".join(_failures)), flush=True)
        sys.exit(1)
    print("all checks passed", flush=True)
    sys.exit(0)
