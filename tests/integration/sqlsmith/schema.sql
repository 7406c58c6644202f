-- The schema and data of the sqlsmith differential test (tests/integration/sqlsmith_differential_test.cc),
-- run as superuser in database smith after the test created the roles:
--   smith_app  owns the tables, BYPASSRLS: rowguard's upstream role;
--   smith_t1   a plain role under row-level security (one policy per tenant table: tenant_id = 1),
--              the reference the statements also run as, and the role sqlsmith reads the schema as.
-- Every row of tenants 2 and 3 carries unmistakable markers, so that a leak shows without comparing
-- whole results: texts contain LEAK_T2_ / LEAK_T3_ (tenant 1's: T1_), ids are 2000000 + k /
-- 3000000 + k (tenant 1's 1000000 + k), dates and timestamps fall in 2032 / 2033 (tenant 1's in 2021).
SET client_min_messages = warning;
SET ROLE smith_app;

CREATE TABLE regions (            -- global: every tenant reads it, no tenant writes it
  id int PRIMARY KEY,
  code text NOT NULL UNIQUE,
  name text NOT NULL
);

CREATE TABLE customers (
  tenant_id int NOT NULL,
  id int NOT NULL,
  name text NOT NULL,
  email text,
  region_id int REFERENCES regions (id),
  score numeric(8, 2),
  active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE orders (
  tenant_id int NOT NULL,
  id int NOT NULL,
  customer_id int NOT NULL,
  amount numeric(10, 2),
  status text NOT NULL,
  note text,
  placed_at timestamp NOT NULL,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);

CREATE TABLE order_lines (
  tenant_id int NOT NULL,
  order_id int NOT NULL,
  line_no int NOT NULL,
  sku text NOT NULL,
  qty int NOT NULL,
  price float8,
  PRIMARY KEY (tenant_id, order_id, line_no),
  FOREIGN KEY (tenant_id, order_id) REFERENCES orders (tenant_id, id)
);

-- Partitioned by date: tenant 1's events land in events_early, the others' in events_late.
CREATE TABLE events (
  tenant_id int NOT NULL,
  id bigint NOT NULL,
  kind text NOT NULL,
  payload jsonb,
  happened_on date NOT NULL,
  PRIMARY KEY (tenant_id, id, happened_on)
) PARTITION BY RANGE (happened_on);
CREATE TABLE events_early PARTITION OF events FOR VALUES FROM (MINVALUE) TO ('2030-01-01');
CREATE TABLE events_late PARTITION OF events FOR VALUES FROM ('2030-01-01') TO (MAXVALUE);

-- A view over tenant tables (security_invoker: under RLS it is filtered as its reader).
CREATE VIEW customer_totals WITH (security_invoker = true) AS
  SELECT c.tenant_id, c.id AS customer_id, c.name, count(o.id) AS orders, sum(o.amount) AS total
    FROM customers c LEFT JOIN orders o ON o.tenant_id = c.tenant_id AND o.customer_id = c.id
   GROUP BY c.tenant_id, c.id, c.name;

INSERT INTO regions VALUES (1, 'EU', 'Europe'), (2, 'US', 'Americas'), (3, 'AP', 'Asia Pacific');

-- prefix(t): 'T1_' for tenant 1, 'LEAK_T2_' / 'LEAK_T3_' for the others; year(t): 2021 / 2032 / 2033.
INSERT INTO customers
SELECT t, t * 1000000 + k * 7,
       CASE t WHEN 1 THEN 'T1_' ELSE 'LEAK_T' || t || '_' END || 'customer_' || k,
       CASE t WHEN 1 THEN 'T1_' ELSE 'LEAK_T' || t || '_' END || 'c' || k || '@example.test',
       CASE WHEN k = 6 THEN NULL ELSE 1 + k % 3 END,
       t * 100 + k + 0.25,
       k % 4 <> 0,
       make_timestamptz(CASE t WHEN 1 THEN 2021 ELSE 2030 + t END, k, k + 1, 10, 30, 0, 'UTC')
  FROM generate_series(1, 3) t, generate_series(1, 6) k;

INSERT INTO orders
SELECT t, t * 1000000 + 500 + j, t * 1000000 + (1 + j % 6) * 7,
       CASE WHEN j = 5 THEN NULL ELSE t * 1000 + j * 10 + 0.5 END,
       (ARRAY['new', 'paid', 'shipped'])[1 + j % 3],
       CASE t WHEN 1 THEN 'T1_' ELSE 'LEAK_T' || t || '_' END || 'note_' || j,
       make_timestamp(CASE t WHEN 1 THEN 2021 ELSE 2030 + t END, 1 + j % 12, 1 + j, 8, j, 0)
  FROM generate_series(1, 3) t, generate_series(1, 10) j;

INSERT INTO order_lines
SELECT t, t * 1000000 + 500 + j, n,
       CASE t WHEN 1 THEN 'T1_' ELSE 'LEAK_T' || t || '_' END || 'sku_' || j || '_' || n,
       t * 10 + n, t * 100 + j + n / 4.0
  FROM generate_series(1, 3) t, generate_series(1, 10) j, generate_series(1, 2) n
 WHERE j % 3 <> 0 OR n = 1;

INSERT INTO events
SELECT t, t * 1000000 + 900 + k,
       CASE t WHEN 1 THEN 'T1_' ELSE 'LEAK_T' || t || '_' END || (ARRAY['login', 'export', 'invite'])[1 + k % 3],
       jsonb_build_object('who', CASE t WHEN 1 THEN 'T1_' ELSE 'LEAK_T' || t || '_' END || 'user_' || k, 'n', k),
       make_date(CASE t WHEN 1 THEN 2021 ELSE 2030 + t END, k, 10 + k)
  FROM generate_series(1, 3) t, generate_series(1, 8) k;

ANALYZE;

-- Row-level security for the reference role: each tenant table (the partitions too: a partition
-- read directly is not filtered by its parent's policy) shows smith_t1 only tenant 1's rows.
-- ENABLE + FORCE: the owner smith_app is BYPASSRLS, which FORCE does not override.
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['customers', 'orders', 'order_lines', 'events', 'events_early', 'events_late'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY tenant_1 ON %I TO smith_t1 USING (tenant_id = 1) WITH CHECK (tenant_id = 1)', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO smith_t1', t);
  END LOOP;
END
$$;
GRANT SELECT ON regions, customer_totals TO smith_t1;
