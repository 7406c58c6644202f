-- TPC-B-like read/write transaction through rowguard as tenant user t1: no tenant predicates
-- and no tenant column in the INSERT; rowguard adds "AND <table>.tenant_id = '1'" to each
-- UPDATE/SELECT and appends tenant_id = '1' to the INSERT (whose column list it requires).
\set aid 4 * random(1, (100000 * :scale) / 4)
\set bid 4 * random(1, :scale / 4)
\set tid 4 * random(1, (10 * :scale) / 4)
\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
