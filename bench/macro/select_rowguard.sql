-- Point select through rowguard as tenant user t1: no tenant predicate here, rowguard adds
-- "AND pgbench_accounts.tenant_id = '1'". Same rows as select_direct.sql.
\set aid 4 * random(1, (100000 * :scale) / 4)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
