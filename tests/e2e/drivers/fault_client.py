"""Clients for tests/e2e/faults_e2e_test.cc (psycopg2, as a tenant through rowguard).

  fault_client.py vanish-query DSN   run a SELECT that blocks (the test holds a lock on orders)
  fault_client.py vanish-tx DSN      BEGIN; INSERT order 9001; then wait in the open transaction
  fault_client.py vanish-copy DSN    COPY orders FROM STDIN: one row (9101), then no more data
      each prints "ready" (flushed) before it blocks; the test then kills it with SIGKILL.
  fault_client.py load DSN N         N threads run SELECTs in a loop until their connection
      fails; prints "loaded" once each has run 3, then per thread "error <sqlstate|-> <message>"
      (first line) or "noerror" when nothing failed within 90 s.
"""
import sys
import threading
import time

import psycopg2


def vanish_query(dsn):
    conn = psycopg2.connect(dsn, application_name="rg-vanish-query")
    conn.autocommit = True
    print("ready", flush=True)
    conn.cursor().execute("SELECT count(*) FROM orders")  # blocks on the test's lock
    print("query returned (the lock was released)", flush=True)
    time.sleep(600)


def vanish_tx(dsn):
    conn = psycopg2.connect(dsn, application_name="rg-vanish-tx")
    cur = conn.cursor()  # psycopg2 opens a transaction at the first statement
    cur.execute("INSERT INTO orders (id, customer_id, amount) VALUES (9001, 101, 1)")
    print("ready", flush=True)
    time.sleep(600)


class Stalling:
    """A file for copy_expert: one row, then it never returns (the client hangs mid-COPY)."""

    def __init__(self):
        self.sent = False

    def read(self, size=-1):
        if not self.sent:
            self.sent = True
            return "9101\t101\t5.00\n"
        print("ready", flush=True)
        time.sleep(600)
        return ""

    readline = read


def vanish_copy(dsn):
    conn = psycopg2.connect(dsn, application_name="rg-vanish-copy")
    conn.cursor().copy_expert("COPY orders (id, customer_id, amount) FROM STDIN", Stalling(), size=64)


def load(dsn, n):
    results = [None] * n
    counts = [0] * n
    done = threading.Event()

    def run(i):
        try:
            conn = psycopg2.connect(dsn, application_name=f"rg-load-{i}")
            conn.autocommit = True
            cur = conn.cursor()
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                cur.execute("SELECT count(*) FROM orders")
                if cur.fetchone()[0] != 3:
                    results[i] = "wrong 3 rows expected"
                    return
                counts[i] += 1
                time.sleep(0.01)
            results[i] = "noerror"
        except psycopg2.Error as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            results[i] = f"error {e.pgcode or '-'} {first}"

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    while min(counts) < 3 and any(t.is_alive() for t in threads):
        time.sleep(0.05)
    print("loaded", flush=True)
    for t in threads:
        t.join()
    for r in results:
        print(r, flush=True)


if __name__ == "__main__":
    mode, dsn = sys.argv[1], sys.argv[2]
    if mode == "vanish-query":
        vanish_query(dsn)
    elif mode == "vanish-tx":
        vanish_tx(dsn)
    elif mode == "vanish-copy":
        vanish_copy(dsn)
    elif mode == "load":
        load(dsn, int(sys.argv[3]))
    else:
        sys.exit(f"unknown mode {mode}")
