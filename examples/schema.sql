-- rowguard example schema: a small multi-tenant SaaS database.
--
-- Run as a PostgreSQL superuser against the database "postgres", e.g.
--   psql -h <socket dir> -p <port> -U postgres -d postgres -v ON_ERROR_STOP=1 -f examples/schema.sql
-- It (re)creates the login role "app" (the role rowguard uses upstream, password "secret"),
-- the database "appdb" owned by it, and in appdb's schema public, owned by app:
--   customers, orders  tenant-scoped by tenant_id (in the policy, examples/rowguard.toml)
--   countries          global reference data (in the policy as global = true)
--   audit_log          deliberately NOT in the policy: rowguard denies every query on it
-- Tenants: 1 = acme, 2 = globex, 3 = initech. Row ids are unique across tenants:
-- tenant 1 uses 101.., tenant 2 uses 201.., tenant 3 uses 301...
-- Re-running it starts from scratch (the old appdb is dropped, even with open connections).

\set ON_ERROR_STOP on
SET client_min_messages = warning;

DROP DATABASE IF EXISTS appdb WITH (FORCE);
DROP ROLE IF EXISTS app;
CREATE ROLE app LOGIN PASSWORD 'secret' NOSUPERUSER NOCREATEDB NOCREATEROLE;
CREATE DATABASE appdb OWNER app;

\c appdb
SET client_min_messages = warning;
-- Everything below is created by (and so owned by) app, the database owner.
SET ROLE app;

-- Keys are composite (tenant_id, id): a key without the tenant column would be checked across
-- tenants, and rowguard refuses tenant writes that give it a value (rule cross_tenant_key).
CREATE TABLE customers (
  id        int  NOT NULL,
  tenant_id int  NOT NULL,
  name      text NOT NULL,
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE orders (
  id          int           NOT NULL,
  tenant_id   int           NOT NULL,
  customer_id int,
  amount      numeric(10,2) NOT NULL,
  status      text          NOT NULL DEFAULT 'new',
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE countries (
  code text PRIMARY KEY,
  name text NOT NULL
);

CREATE TABLE audit_log (
  id        serial PRIMARY KEY,
  tenant_id int,
  event     text
);

INSERT INTO customers (id, tenant_id, name) VALUES
  (101, 1, 'acme-anvils'),
  (102, 1, 'acme-rockets'),
  (103, 1, 'acme-traps'),
  (201, 2, 'globex-hank'),
  (202, 2, 'globex-scorpio'),
  (203, 2, 'globex-mindy'),
  (301, 3, 'initech-peter'),
  (302, 3, 'initech-milton'),
  (303, 3, 'initech-lumbergh');

INSERT INTO orders (id, tenant_id, customer_id, amount, status) VALUES
  (101, 1, 101,  250.00, 'paid'),
  (102, 1, 102,   99.90, 'new'),
  (103, 1, 101, 1200.00, 'shipped'),
  (201, 2, 201,   42.00, 'paid'),
  (202, 2, 203,  310.50, 'new'),
  (203, 2, 202,    7.25, 'cancelled'),
  (204, 2, 201,  999.99, 'shipped'),
  (301, 3, 302,   15.00, 'new'),
  (302, 3, 303,  480.00, 'paid');

INSERT INTO countries (code, name) VALUES
  ('DE', 'Germany'),
  ('FR', 'France'),
  ('JP', 'Japan'),
  ('US', 'United States');

INSERT INTO audit_log (tenant_id, event) VALUES
  (1, 'acme: user login'),
  (2, 'globex: invoice exported'),
  (3, 'initech: stapler requested');

RESET ROLE;
-- app owns the tables already; this keeps working if someone recreates them as superuser.
GRANT ALL ON ALL TABLES IN SCHEMA public TO app;
GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO app;
