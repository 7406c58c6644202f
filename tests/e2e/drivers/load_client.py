"""Load client for tests/e2e/load_e2e_test.cc: N concurrent asyncpg connections through rowguard.

  load_client.py --port P --connections N --seconds S --rowguard-pid PID --out FILE
                 [--tenants t1:pw1:1,t2:pw2:2,t3:pw3:3] [--warmup S]

Connection i logs in as tenant i % len(tenants) and, until the deadline, runs short
transactions on public.load_rows (PRIMARY KEY (tenant_id, conn, seq), tenant_id filled in by rowguard):
  BEGIN; INSERT INTO load_rows (conn, seq) VALUES ($1, $2);
  SELECT tenant_id, conn, seq FROM load_rows WHERE conn IN ($1, $2, $3)  -- its own and its neighbours'
  COMMIT
The neighbours i-1 and i+1 belong to other tenants: every row returned must be its own tenant's
and its own rows must be exactly the ones it committed. The 1st and every 10th transaction is followed by
two statements rowguard must refuse with 42501 (an unknown table; a row for another tenant).
Every other error is recorded as a failure.

All connections are opened first (at most 50 logins at a time) and held until the end. The
warm-up lasts until every connection has committed 3 transactions (and at least --warmup
seconds); then the load runs --seconds more. rowguard's resident memory (VmRSS of
--rowguard-pid) is sampled when all connections are open, after the warm-up, and at the end
(before closing).

Writes to --out one line per connection, "conn|tenant|committed", sorted by conn (the format
of psql -At for SELECT conn, tenant_id, count(*) ... ORDER BY conn), and prints to stdout:
  connections N / transactions T / denials D / errors E / rss_open_kb A / rss_warm_kb W / rss_end_kb X
and the first errors ("error ..."). Exits 0 when it ran to the end (the caller checks the numbers).
"""
import argparse
import asyncio
import random
import sys
import time

import asyncpg


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


class Stats:
    def __init__(self):
        self.transactions = 0
        self.denials = 0
        self.errors = []

    def error(self, text):
        self.errors.append(text)


async def open_connection(args, i, user, password, sem, stats):
    async with sem:
        for attempt in range(3):
            try:
                return await asyncpg.connect(host="127.0.0.1", port=args.port, user=user, password=password,
                                             database="appdb", ssl=False, timeout=60)
            except (OSError, asyncio.TimeoutError) as e:  # transient: retry a couple of times
                last = e
                await asyncio.sleep(0.5)
            except Exception as e:  # noqa: BLE001 (a refusal, a protocol error: a failure)
                stats.error(f"conn {i} connect: {type(e).__name__}: {e}")
                return None
        stats.error(f"conn {i} connect: {type(last).__name__}: {last}")
        return None


async def expect_denied(conn, i, sql, params, stats):
    try:
        await conn.execute(sql, *params)
        stats.error(f"conn {i}: not refused: {sql}")
    except asyncpg.PostgresError as e:
        if e.sqlstate == "42501":
            stats.denials += 1
        else:
            stats.error(f"conn {i}: {sql}: {e.sqlstate} {e}")


async def worker(conn, i, tenant, n, ntenants, stop, committed, stats):
    # Its own rows and those of the neighbouring connections, which belong to other tenants.
    neighbours = [j if j == i or j % ntenants != i % ntenants else i for j in ((i - 1) % n, i, (i + 1) % n)]
    other_tenant = str(int(tenant) % 3 + 1)
    seq = 0
    rng = random.Random(i)
    while not stop.is_set():
        seq += 1
        try:
            async with conn.transaction():
                await conn.execute("INSERT INTO load_rows (conn, seq) VALUES ($1, $2)", i, seq)
                # (three int parameters, not an int[]: asyncpg would run a type introspection query)
                rows = await conn.fetch("SELECT tenant_id, conn, seq FROM load_rows WHERE conn IN ($1, $2, $3)",
                                        *neighbours)
            committed[i] = seq
            stats.transactions += 1
            foreign = [r for r in rows if str(r["tenant_id"]) != tenant or r["conn"] != i]
            if foreign:
                stats.error(f"conn {i} tenant {tenant}: saw rows of others: {foreign[:3]}")
                return
            seqs = sorted(r["seq"] for r in rows)
            if seqs != list(range(1, seq + 1)):
                stats.error(f"conn {i}: own rows {seqs[:5]}... ({len(seqs)}) != 1..{seq}")
                return
        except Exception as e:  # noqa: BLE001
            stats.error(f"conn {i} tx {seq}: {type(e).__name__}: {getattr(e, 'sqlstate', '')} {e}")
            return
        if seq % 10 == 1:
            await expect_denied(conn, i, "SELECT count(*) FROM audit_log", [], stats)
            await expect_denied(conn, i, "INSERT INTO load_rows (tenant_id, conn, seq) VALUES ($1, $2, $3)",
                                [int(other_tenant), i, 1000000 + seq], stats)
        await asyncio.sleep(rng.uniform(0.0, 0.1))


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--rowguard-pid", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tenants", default="t1:pw1:1,t2:pw2:2,t3:pw3:3")
    args = ap.parse_args()
    tenants = [t.split(":") for t in args.tenants.split(",")]
    n = args.connections
    stats = Stats()

    sem = asyncio.Semaphore(50)
    t0 = time.monotonic()
    conns = await asyncio.gather(*(open_connection(args, i, tenants[i % len(tenants)][0],
                                                   tenants[i % len(tenants)][1], sem, stats) for i in range(n)))
    opened = sum(1 for c in conns if c is not None)
    print(f"opened {opened} connections in {time.monotonic() - t0:.1f} s", flush=True)
    rss_open = rss_kb(args.rowguard_pid)

    committed = [0] * n
    stop = asyncio.Event()
    t1 = time.monotonic()
    tasks = [asyncio.create_task(worker(c, i, tenants[i % len(tenants)][2], n, len(tenants), stop, committed, stats))
             for i, c in enumerate(conns) if c is not None]
    # Warm-up: every connection has committed a few transactions (its statements are prepared,
    # rowguard's caches are filled), and at least --warmup seconds passed.
    while time.monotonic() < t1 + args.warmup or (
            min(committed[i] for i, c in enumerate(conns) if c is not None) < 3 and time.monotonic() < t1 + 300):
        await asyncio.sleep(0.1)
        if all(t.done() for t in tasks):
            break
    print(f"warm-up took {time.monotonic() - t1:.1f} s", flush=True)
    rss_warm = rss_kb(args.rowguard_pid)
    tx_warm = stats.transactions
    t_warm = time.monotonic()
    await asyncio.sleep(args.seconds)
    stop.set()
    await asyncio.gather(*tasks)
    print(f"traffic after warm-up for {time.monotonic() - t_warm:.1f} s", flush=True)
    rss_end = rss_kb(args.rowguard_pid)
    still_open = sum(1 for c in conns if c is not None and not c.is_closed())
    t2 = time.monotonic()
    await asyncio.gather(*(c.close(timeout=30) for c in conns if c is not None), return_exceptions=True)
    print(f"closed in {time.monotonic() - t2:.1f} s", flush=True)

    with open(args.out, "w") as f:
        for i in range(n):
            if committed[i]:
                f.write(f"{i}|{tenants[i % len(tenants)][2]}|{committed[i]}\n")
    print(f"connections {opened}")
    print(f"held_to_end {still_open}")
    print(f"transactions {stats.transactions}")
    print(f"transactions_after_warmup {stats.transactions - tx_warm}")
    print(f"denials {stats.denials}")
    print(f"errors {len(stats.errors)}")
    print(f"rss_open_kb {rss_open}")
    print(f"rss_warm_kb {rss_warm}")
    print(f"rss_end_kb {rss_end}")
    for e in stats.errors[:20]:
        print(f"error {e}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
