-- TPC-B-like read/write transaction (pgbench's built-in tpcb-like), confined by hand to
-- tenant 1 (direct PostgreSQL and PgBouncer). Tenant 1 owns the rows whose id % 4 = 0 in
-- pgbench_accounts (aid), pgbench_tellers (tid) and pgbench_branches (bid).
\set aid 4 * random(1, (100000 * :scale) / 4)
\set bid 4 * random(1, :scale / 4)
\set tid 4 * random(1, (10 * :scale) / 4)
\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid AND tenant_id = 1;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid AND tenant_id = 1;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid AND tenant_id = 1;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid AND tenant_id = 1;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime, tenant_id) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP, 1);
END;
