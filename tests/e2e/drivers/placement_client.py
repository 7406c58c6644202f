"""Clients for tests/e2e/placement_e2e_test.cc (tenant placement, issue #19 item 3).

Usage: placement_client.py SCENARIO RG_PORT WORKDIR
  load   tenant t1 runs transactions (BEGIN; two reads; COMMIT) in a loop and prints, per
         transaction, "tx <status>" (the `status` of its orders rows: 'on-A' or 'on-B', which
         upstream answered); both reads of one transaction must come from one server. Any error
         prints "FAIL ...". Stops when WORKDIR/stop exists, then prints "done".
  cancel tenant t2 runs pg_sleep(20); the statement is cancelled from another thread once it
         runs; prints "cancelled <pgcode> <seconds>".
"""
import os
import sys
import threading
import time

import psycopg2

scenario, port, workdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def connect(user, password):
    return psycopg2.connect(host="127.0.0.1", port=port, user=user, password=password, dbname="appdb",
                            connect_timeout=10)


def load():
    conn = connect("t1", "pw1")
    n = 0
    while not os.path.exists(os.path.join(workdir, "stop")):
        try:
            with conn:
                cur = conn.cursor()
                cur.execute("SELECT DISTINCT status FROM orders")
                first = sorted(r[0] for r in cur.fetchall())
                cur.execute("SELECT DISTINCT status FROM orders")
                second = sorted(r[0] for r in cur.fetchall())
            if first != second or len(first) != 1:
                print("FAIL one transaction saw", first, second, flush=True)
            else:
                print("tx", first[0], flush=True)
            n += 1
        except Exception as e:  # noqa: BLE001 - any failure fails the test
            print("FAIL", type(e).__name__, getattr(e, "pgcode", None), str(e).strip(), flush=True)
            return
    print("done", n, flush=True)


def cancel():
    conn = connect("t2", "pw2")
    conn.autocommit = True
    done = threading.Event()

    def keep_cancelling():
        # A cancel that lands before the statement runs cancels nothing (PostgreSQL drops it):
        # sent again until the statement has ended.
        while not done.wait(0.2):
            conn.cancel()

    t = threading.Thread(target=keep_cancelling)
    started = time.time()
    t.start()
    try:
        conn.cursor().execute("SELECT pg_sleep(20)")
        print("FAIL pg_sleep was not cancelled", flush=True)
    except Exception as e:  # noqa: BLE001
        print("cancelled", getattr(e, "pgcode", None), round(time.time() - started, 1), flush=True)
    done.set()
    t.join()


{"load": load, "cancel": cancel}[scenario]()
