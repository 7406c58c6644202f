-- pgbench custom script for tests/e2e/drivers_e2e_test.cc, run as tenant t1 through rowguard
-- with -M extended and -M prepared: parameterized reads of its own orders (101..103) and of
-- another tenant's (201..204, which must come back empty), and an UPDATE of its own order
-- that leaves the data unchanged. A wrong count ends the client with an error (1/0), so
-- pgbench then reports failures and exits non-zero.
\set id random(101, 103)
\set other random(201, 204)
BEGIN;
SELECT count(*) AS own, max(tenant_id) AS tid FROM orders WHERE id = :id \gset
\if :own != 1 or :tid != 1
SELECT 1 / 0 AS own_order_not_visible;
\endif
SELECT count(*) AS leaked FROM orders WHERE id = :other \gset
\if :leaked != 0
SELECT 1 / 0 AS other_tenant_order_visible;
\endif
SELECT amount FROM orders WHERE id = :id;
UPDATE orders SET amount = amount WHERE id = :id;
END;
