-- Point select, tenant predicate written by hand (direct PostgreSQL and PgBouncer).
-- Tenant 1 owns the accounts with aid % 4 = 0, so every lookup finds its row.
\set aid 4 * random(1, (100000 * :scale) / 4)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid AND tenant_id = 1;
