// Keys that cross tenants. examples/schema.sql gives customers and orders composite keys
// (tenant_id, id), the safe schema; these cases run against legacy copies of them with a primary
// key on `id` alone (lk_customers, lk_orders, created here as superuser, with their own rowguard
// whose policy lists them), where tenant 1's write of id 201 would meet tenant 2's row 201:
//   INSERT ... ON CONFLICT (id) finds it as the conflicting row: DO UPDATE locks it (and waits for
//   tenant 2's open transaction) before the tenant filter of its WHERE clause is evaluated; DO
//   NOTHING skips the insert and so tells tenant 1 that id 201 exists;
//   a plain INSERT (or UPDATE SET id, MERGE, COPY) of id 201 fails with 23505, or waits on tenant
//   2's uncommitted row with that id.
// rowguard must refuse every such write before PostgreSQL sees it: no wait, no lock, no change,
// no "INSERT 0 0", no 23505 (rule cross_tenant_key, sqlrewrite/key_check.h).
#include <gtest/gtest.h>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

constexpr const char* kLegacySetup = R"sql(
DROP TABLE IF EXISTS lk_crefs, lk_private, lk_refs, lk_customers, lk_orders, lk_seq, lk_expr CASCADE;
CREATE TABLE lk_customers (id int PRIMARY KEY, tenant_id int NOT NULL, name text NOT NULL);
INSERT INTO lk_customers SELECT id, tenant_id, name FROM customers;
CREATE TABLE lk_orders (id int PRIMARY KEY, tenant_id int NOT NULL, customer_id int,
                        amount numeric(10,2) NOT NULL, status text NOT NULL DEFAULT 'new');
INSERT INTO lk_orders SELECT id, tenant_id, customer_id, amount, status FROM orders;
-- A key drawn from a sequence: safe to insert when left to its default.
CREATE TABLE lk_seq (id serial PRIMARY KEY, tenant_id int NOT NULL, body text);
INSERT INTO lk_seq (tenant_id, body) VALUES (2, 'globex-seq');
-- An expression index and a partial index without the tenant column.
CREATE TABLE lk_expr (id serial PRIMARY KEY, tenant_id int NOT NULL, email text, tag text);
CREATE UNIQUE INDEX lk_expr_email ON lk_expr (lower(email));
CREATE UNIQUE INDEX lk_expr_tag ON lk_expr (tag) WHERE tag <> '';
INSERT INTO lk_expr (tenant_id, email, tag) VALUES (2, 'hank@globex', 'globex-tag');
ALTER TABLE lk_customers OWNER TO app; ALTER TABLE lk_orders OWNER TO app;
-- A foreign key to lk_customers without the tenant column (issue #13 item 4), one to a table
-- not in the policy, and one to a global table.
CREATE TABLE lk_private (id int PRIMARY KEY);
INSERT INTO lk_private VALUES (1);
CREATE TABLE lk_refs (id serial, tenant_id int NOT NULL, customer_id int REFERENCES lk_customers (id),
                      private_id int REFERENCES lk_private (id), country_code text REFERENCES countries (code),
                      note text, PRIMARY KEY (tenant_id, id));
-- The safe form: a composite foreign key carrying the tenant column.
ALTER TABLE lk_customers ADD UNIQUE (tenant_id, id);
CREATE TABLE lk_crefs (id serial, tenant_id int NOT NULL, customer_id int, PRIMARY KEY (tenant_id, id),
                       FOREIGN KEY (tenant_id, customer_id) REFERENCES lk_customers (tenant_id, id));
ALTER TABLE lk_crefs OWNER TO app;
ALTER TABLE lk_seq OWNER TO app; ALTER TABLE lk_expr OWNER TO app; ALTER TABLE lk_refs OWNER TO app;
-- A unique key and a foreign key on STORED GENERATED columns: an UPDATE of the column they are
-- computed from writes them without naming them.
DROP TABLE IF EXISTS lk_accounts, lk_picks, lk_skus, lk_project_slots, lk_projects CASCADE;
CREATE TABLE lk_accounts (id serial, tenant_id int NOT NULL, email text,
                          email_norm text GENERATED ALWAYS AS (lower(email)) STORED, PRIMARY KEY (tenant_id, id));
CREATE UNIQUE INDEX lk_accounts_email_norm ON lk_accounts (email_norm);
INSERT INTO lk_accounts (tenant_id, email) VALUES (1, 'ann@acme.example'), (2, 'CEO@globex.example');
CREATE TABLE lk_skus (code text PRIMARY KEY, tenant_id int NOT NULL);
INSERT INTO lk_skus VALUES ('acme-sku', 1), ('globex-secret-sku', 2);
CREATE TABLE lk_picks (id serial, tenant_id int NOT NULL, raw text,
                       code text GENERATED ALWAYS AS (lower(raw)) STORED REFERENCES lk_skus (code),
                       PRIMARY KEY (tenant_id, id));
INSERT INTO lk_picks (tenant_id, raw) VALUES (1, 'ACME-SKU');
-- A referential action carries a tenant's UPDATE into a table (not in the policy) whose unique
-- key lacks the tenant column.
CREATE TABLE lk_projects (id int NOT NULL, tenant_id int NOT NULL, name text, PRIMARY KEY (tenant_id, id));
INSERT INTO lk_projects VALUES (10, 1, 'acme-p'), (777, 2, 'globex-p');
CREATE TABLE lk_project_slots (tenant_id int NOT NULL, project_id int NOT NULL DEFAULT 777, slot text NOT NULL,
                               FOREIGN KEY (tenant_id, project_id) REFERENCES lk_projects (tenant_id, id)
                                 ON UPDATE CASCADE ON DELETE SET DEFAULT);
CREATE UNIQUE INDEX lk_project_slots_u ON lk_project_slots (project_id, slot);
INSERT INTO lk_project_slots VALUES (1, 10, 'a'), (2, 777, 'a');
ALTER TABLE lk_accounts OWNER TO app; ALTER TABLE lk_skus OWNER TO app; ALTER TABLE lk_picks OWNER TO app;
ALTER TABLE lk_projects OWNER TO app; ALTER TABLE lk_project_slots OWNER TO app;
-- Imported data: tenant 2's explicit id 3 lies ahead of the sequence (not called yet).
DROP TABLE IF EXISTS lk_imported;
CREATE TABLE lk_imported (id serial PRIMARY KEY, tenant_id int NOT NULL, body text);
INSERT INTO lk_imported VALUES (3, 2, 'globex-imported');
ALTER TABLE lk_imported OWNER TO app;
)sql";

std::string legacy_policy(const std::string& extra = "", const std::string& refs_extra = "",
                          const std::string& projects_extra = "") {
  return example_config_template() +
         "\n[tables.\"public.lk_customers\"]\n" + extra +
         "[tables.\"public.lk_orders\"]\n[tables.\"public.lk_seq\"]\n[tables.\"public.lk_expr\"]\n"
         "[tables.\"public.lk_refs\"]\n" + refs_extra + "[tables.\"public.lk_crefs\"]\n"
         "[tables.\"public.lk_accounts\"]\n[tables.\"public.lk_skus\"]\n[tables.\"public.lk_picks\"]\n"
         "[tables.\"public.lk_projects\"]\n" + projects_extra + "[tables.\"public.lk_imported\"]\n";
}

class SqlKeys : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto super = Env::get().direct_super();
    QueryResult r = super->exec(kLegacySetup);
    ASSERT_TRUE(r.ok) << r.message;
    rowguard_ = new RowguardProcess(legacy_policy(), Env::get().pg(), "info");
  }
  static void TearDownTestSuite() {
    delete rowguard_;
    rowguard_ = nullptr;
  }
  static std::unique_ptr<Client> tenant(int n) {
    return std::make_unique<Client>(rowguard_->conninfo("t" + std::to_string(n)) + " password=pw" + std::to_string(n));
  }
  static RowguardProcess* rowguard_;

 public:
  static std::unique_ptr<Client> tenant_for_test(int n) { return tenant(n); }
};

RowguardProcess* SqlKeys::rowguard_ = nullptr;

// Tenant 2 holds row 201 of `table` locked in an open transaction for the life of this object.
class Tenant2HoldsRow {
 public:
  explicit Tenant2HoldsRow(const std::string& table) : t2_(SqlKeys::tenant_for_test(2)) {
    QueryResult b = t2_->exec("BEGIN");
    EXPECT_TRUE(b.ok) << b.message;
    QueryResult lock = t2_->exec("SELECT id FROM " + table + " WHERE id = 201 FOR UPDATE");
    EXPECT_TRUE(lock.ok) << lock.message;
    EXPECT_EQ(lock.rows.size(), 1u);
  }
  ~Tenant2HoldsRow() { t2_->exec("ROLLBACK"); }

 private:
  std::unique_ptr<Client> t2_;
};

// Tenant 1 with a lock/statement timeout, so a statement that would wait on tenant 2 fails with
// 55P03 / 57014 instead of hanging the test.
std::unique_ptr<Client> impatient_tenant1() {
  auto t1 = SqlKeys::tenant_for_test(1);
  EXPECT_TRUE(t1->exec("SET lock_timeout = '1s'").ok);
  EXPECT_TRUE(t1->exec("SET statement_timeout = '5s'").ok);
  return t1;
}

std::string customer_201_name() {
  auto su = Env::get().direct_super();
  QueryResult r = su->exec("SELECT name FROM lk_customers WHERE id = 201");
  EXPECT_TRUE(r.ok) << r.message;
  return r.rows.empty() || !r.rows[0][0] ? std::string("(none)") : *r.rows[0][0];
}

void expect_refused_naming_key(const QueryResult& r) {
  EXPECT_TRUE(r.refused()) << "sqlstate " << r.sqlstate << ": " << r.message << " tag " << r.command_tag;
  EXPECT_NE(r.message.find("tenant column"), std::string::npos) << r.message;
  EXPECT_TRUE(no_leak(r));
}

TEST_F(SqlKeys, OnConflictDoUpdateOnAnotherTenantsIdNeitherWaitsNorModifies) {
  const std::string before = customer_201_name();
  Tenant2HoldsRow hold("lk_customers");
  auto t1 = impatient_tenant1();
  QueryResult r = t1->exec(
      "INSERT INTO lk_customers (id, name) VALUES (201, 'acme-stolen') "
      "ON CONFLICT (id) DO UPDATE SET name = excluded.name RETURNING id, name");
  expect_refused_naming_key(r);
  EXPECT_NE(r.sqlstate, "55P03") << "tenant 1 waited on tenant 2's row lock";
  EXPECT_NE(r.message.find("lk_customers_pkey"), std::string::npos) << r.message;
  EXPECT_TRUE(t1->alive());
  EXPECT_EQ(customer_201_name(), before);
}

TEST_F(SqlKeys, OnConflictOnConstraintOfAnotherTenantsIdIsRefused) {
  Tenant2HoldsRow hold("lk_orders");
  auto t1 = impatient_tenant1();
  QueryResult r = t1->exec(
      "INSERT INTO lk_orders (id, customer_id, amount, status) VALUES (201, 101, 1, 'new') "
      "ON CONFLICT ON CONSTRAINT lk_orders_pkey DO UPDATE SET amount = excluded.amount");
  expect_refused_naming_key(r);
  EXPECT_NE(r.message.find("lk_orders_pkey"), std::string::npos) << r.message;
  EXPECT_TRUE(t1->alive());
}

// DO NOTHING does not lock, but "INSERT 0 0" for id 201 and "INSERT 0 1" for a free id tell
// tenant 1 which ids tenant 2 uses.
TEST_F(SqlKeys, OnConflictDoNothingDoesNotRevealAnotherTenantsId) {
  auto t1 = impatient_tenant1();
  for (const char* sql : {
           "INSERT INTO lk_customers (id, name) VALUES (201, 'acme-probe') ON CONFLICT (id) DO NOTHING",
           "INSERT INTO lk_customers (id, name) VALUES (201, 'acme-probe') ON CONFLICT DO NOTHING",
           "INSERT INTO lk_customers (id, name) VALUES (201, 'acme-probe') "
           "ON CONFLICT ON CONSTRAINT lk_customers_pkey DO NOTHING",
           "INSERT INTO lk_customers (id, name) VALUES (201, 'acme-probe') ON CONFLICT (id) WHERE id > 0 DO NOTHING",
           "INSERT INTO lk_customers (id, name) VALUES (201, 'acme-probe') ON CONFLICT ((id)) DO NOTHING",
           "INSERT INTO lk_customers AS c (id, name) VALUES (201, 'acme-probe') ON CONFLICT (id, name) DO NOTHING",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.refused()) << sql << " -> " << r.sqlstate << " " << r.message << " tag " << r.command_tag;
    EXPECT_TRUE(no_leak(r)) << sql;
  }
  EXPECT_TRUE(t1->alive());
}

TEST_F(SqlKeys, OnConflictInsideCteExtendedProtocolPrepareAndSelectIsRefused) {
  Tenant2HoldsRow hold("lk_customers");
  auto t1 = impatient_tenant1();
  QueryResult cte = t1->exec(
      "WITH up AS (INSERT INTO lk_customers (id, name) VALUES (201, 'acme-x') "
      "ON CONFLICT (id) DO UPDATE SET name = excluded.name RETURNING id) SELECT count(*) FROM up");
  expect_refused_naming_key(cte);
  QueryResult ext = t1->exec_params(
      "INSERT INTO lk_customers (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = excluded.name",
      {"201", "acme-x"});
  expect_refused_naming_key(ext);
  QueryResult prep = t1->exec(
      "PREPARE up(int) AS INSERT INTO lk_customers (id, name) VALUES ($1, 'acme-x') "
      "ON CONFLICT (id) DO UPDATE SET name = excluded.name");
  expect_refused_naming_key(prep);
  QueryResult select_src = t1->exec(
      "INSERT INTO lk_customers (id, name) SELECT 201, 'acme-x' ON CONFLICT (id) DO UPDATE SET name = excluded.name");
  expect_refused_naming_key(select_src);
  EXPECT_TRUE(t1->alive());
}

// A conflict target naming the tenant column can only infer indexes that have it as a key
// column; on the example schema there is none, so PostgreSQL itself refuses (42P10), and no
// other tenant's row is reached.
TEST_F(SqlKeys, OnConflictNamingTheTenantColumnReachesNoOtherTenant) {
  Tenant2HoldsRow hold("lk_customers");
  auto t1 = impatient_tenant1();
  QueryResult r = t1->exec(
      "INSERT INTO lk_customers (id, name) VALUES (201, 'acme-x') "
      "ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.name");
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.sqlstate, "55P03");
  EXPECT_TRUE(no_leak(r));
  EXPECT_TRUE(t1->alive());
}

// With a key that includes the tenant column, ON CONFLICT works as usual and only ever meets
// the tenant's own rows (its own rowguard: the snapshot is read at start-up).
TEST_F(SqlKeys, OnConflictOnATenantKeyWorks) {
  auto su = Env::get().direct_super();
  ASSERT_TRUE(su->exec("DROP TABLE IF EXISTS keyed_notes").ok);
  ASSERT_TRUE(su->exec("CREATE TABLE keyed_notes (tenant_id int NOT NULL, id int NOT NULL, body text, "
                       "PRIMARY KEY (tenant_id, id))").ok);
  ASSERT_TRUE(su->exec("GRANT ALL ON keyed_notes TO app").ok);
  ASSERT_TRUE(su->exec("INSERT INTO keyed_notes VALUES (2, 201, 'globex-note')").ok);
  std::string config = example_config_template() + "\n[tables.\"public.keyed_notes\"]\ncolumn = \"tenant_id\"\n";
  RowguardProcess rg(config, Env::get().pg(), "info");
  Client t1(rg.conninfo("t1") + " password=pw1");
  ASSERT_TRUE(t1.exec("SET lock_timeout = '1s'").ok);
  QueryResult up = t1.exec(
      "INSERT INTO keyed_notes (id, body) VALUES (201, 'acme-note') "
      "ON CONFLICT (tenant_id, id) DO UPDATE SET body = excluded.body RETURNING tenant_id, id, body");
  ASSERT_TRUE(up.ok) << up.message;
  ASSERT_EQ(up.rows.size(), 1u);
  EXPECT_EQ(up.rows[0][0], std::optional<std::string>("1"));
  QueryResult again = t1.exec(
      "INSERT INTO keyed_notes (id, body) VALUES (201, 'acme-note-2') "
      "ON CONFLICT (tenant_id, id) DO UPDATE SET body = excluded.body RETURNING body");
  ASSERT_TRUE(again.ok) << again.message;
  EXPECT_EQ(again.rows[0][0], std::optional<std::string>("acme-note-2"));
  QueryResult nothing = t1.exec("INSERT INTO keyed_notes (id, body) VALUES (201, 'x') ON CONFLICT DO NOTHING");
  EXPECT_TRUE(nothing.ok) << nothing.message;
  QueryResult named = t1.exec(
      "INSERT INTO keyed_notes (id, body) VALUES (201, 'x') ON CONFLICT ON CONSTRAINT keyed_notes_pkey DO NOTHING");
  EXPECT_TRUE(named.ok) << named.message;
  QueryResult other = su->exec("SELECT body FROM keyed_notes WHERE tenant_id = 2");
  ASSERT_EQ(other.rows.size(), 1u);
  EXPECT_EQ(other.rows[0][0], std::optional<std::string>("globex-note"));
  su->exec("DROP TABLE keyed_notes");
}


// ---- plain writes of a key without the tenant column (issue #13 item 4) ----------------------

void expect_cross_tenant_key(const QueryResult& r, const std::string& sql, const std::string& key) {
  EXPECT_TRUE(r.refused()) << sql << "\n  -> " << r.sqlstate << " " << r.message << " tag " << r.command_tag;
  EXPECT_NE(r.message.find("cross_tenant_key"), std::string::npos) << sql << "\n  -> " << r.message;
  EXPECT_NE(r.message.find(key), std::string::npos) << sql << "\n  -> " << r.message;
  EXPECT_NE(r.sqlstate, "23505") << sql << ": the unique violation reveals another tenant's key";
  EXPECT_NE(r.sqlstate, "55P03") << sql << ": waited on another tenant's row";
  EXPECT_TRUE(no_leak(r)) << sql;
}

// On the unchanged proxy: 23505 "duplicate key value violates unique constraint" - tenant 1
// learns that id 201 exists.
TEST_F(SqlKeys, PlainInsertOfAnotherTenantsIdDoesNotRevealIt) {
  auto t1 = impatient_tenant1();
  const std::string sql = "INSERT INTO lk_customers (id, name) VALUES (201, 'acme-probe')";
  expect_cross_tenant_key(t1->exec(sql), sql, "lk_customers_pkey");
  EXPECT_TRUE(t1->alive());
}

// On the unchanged proxy: tenant 1's INSERT waits for the open transaction that inserted tenant
// 2's row 250 (55P03 after lock_timeout) - the wait reveals tenant 2's uncommitted row. (Tenant 2
// cannot insert an explicit id itself any more; its row comes from the DBA here, as it could from
// a sequence default.)
TEST_F(SqlKeys, PlainInsertDoesNotWaitOnAnotherTenantsUncommittedRow) {
  auto t2 = Env::get().direct_super();
  ASSERT_TRUE(t2->exec("BEGIN").ok);
  QueryResult ins = t2->exec("INSERT INTO lk_customers (id, tenant_id, name) VALUES (250, 2, 'globex-new')");
  ASSERT_TRUE(ins.ok) << ins.message;
  auto t1 = impatient_tenant1();
  const std::string sql = "INSERT INTO lk_customers (id, name) VALUES (250, 'acme-probe')";
  expect_cross_tenant_key(t1->exec(sql), sql, "lk_customers_pkey");
  EXPECT_TRUE(t1->alive());
  t2->exec("ROLLBACK");
}

TEST_F(SqlKeys, EveryWriteFormThatGivesTheKeyAValueIsRefused) {
  Tenant2HoldsRow hold("lk_customers");
  auto t1 = impatient_tenant1();
  for (const char* sql : {
           "INSERT INTO lk_customers (id, name) VALUES (101, 'a'), (201, 'acme-probe')",
           "INSERT INTO lk_customers (name, id) VALUES ('acme-probe', 201)",
           "INSERT INTO lk_customers (id, name) SELECT 201, 'acme-probe'",
           "INSERT INTO lk_customers (id, name) SELECT id + 100, name FROM lk_customers",
           "INSERT INTO lk_customers (id, name) VALUES (DEFAULT, 'x'), (201, 'acme-probe')",
           "INSERT INTO lk_customers (id, name) VALUES (201, 'acme-probe') ON CONFLICT (tenant_id, id) DO NOTHING",
           "UPDATE lk_customers SET id = 201 WHERE id = 101",
           "UPDATE lk_customers SET (id, name) = (201, 'acme-probe') WHERE id = 101",
           "UPDATE lk_customers SET (id, name) = (SELECT 201, 'acme-probe') WHERE id = 101",
           "UPDATE lk_customers SET id = id + 100",
           "MERGE INTO lk_customers c USING (SELECT 201 AS id) s ON c.id = s.id "
           "WHEN NOT MATCHED THEN INSERT (id, name) VALUES (s.id, 'acme-probe')",
           "MERGE INTO lk_customers c USING (SELECT 101 AS id) s ON c.id = s.id "
           "WHEN MATCHED THEN UPDATE SET id = 201",
           "WITH w AS (INSERT INTO lk_customers (id, name) VALUES (201, 'acme-probe') RETURNING id) SELECT * FROM w",
           "WITH w AS (UPDATE lk_customers SET id = 201 WHERE id = 101 RETURNING id) SELECT * FROM w",
           "PREPARE p_key(int) AS INSERT INTO lk_customers (id, name) VALUES ($1, 'acme-probe')",
           "COPY lk_customers (id, name) FROM STDIN",
       }) {
    expect_cross_tenant_key(t1->exec(sql), sql, "lk_customers_pkey");
  }
  QueryResult ext = t1->exec_params("INSERT INTO lk_customers (id, name) VALUES ($1, $2)", {"201", "acme-probe"});
  expect_cross_tenant_key(ext, "extended INSERT", "lk_customers_pkey");
  QueryResult ext_up = t1->exec_params("UPDATE lk_orders SET id = $1 WHERE id = 101", {"201"});
  expect_cross_tenant_key(ext_up, "extended UPDATE", "lk_orders_pkey");
  EXPECT_TRUE(t1->alive());
}

// Writes that leave the key alone, or draw it from a sequence, keep working.
TEST_F(SqlKeys, WritesThatCannotCollideWork) {
  auto t1 = impatient_tenant1();
  ASSERT_TRUE(t1->exec("BEGIN").ok);
  for (const char* sql : {
           "UPDATE lk_customers SET name = 'acme-renamed' WHERE id = 101",
           "UPDATE lk_orders SET (amount, status) = (SELECT 1, 'paid') WHERE id = 101",
           "INSERT INTO lk_seq (body) VALUES ('acme-1'), ('acme-2')",
           "INSERT INTO lk_seq (id, body) VALUES (DEFAULT, 'acme-3')",
           "INSERT INTO lk_seq (body) SELECT 'acme-' || g FROM generate_series(4, 5) g",
           "UPDATE lk_seq SET body = 'acme-x'",
           "MERGE INTO lk_seq s USING (SELECT 'acme-m' AS b) v ON s.body = v.b "
           "WHEN NOT MATCHED THEN INSERT (body) VALUES (v.b) WHEN MATCHED THEN UPDATE SET body = v.b",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.ok) << sql << "\n  -> " << r.sqlstate << " " << r.message;
  }
  QueryResult mine = t1->exec("SELECT count(*) FROM lk_seq");
  ASSERT_TRUE(mine.ok) << mine.message;
  EXPECT_EQ(mine.rows[0][0], std::optional<std::string>("6"));
  ASSERT_TRUE(t1->exec("ROLLBACK").ok);
  const std::string explicit_id = "INSERT INTO lk_seq (id, body) VALUES (1, 'acme-probe')";
  expect_cross_tenant_key(t1->exec(explicit_id), explicit_id, "lk_seq_pkey");
}

// An expression index is given a value by every new row; a partial index's predicate may bring
// any updated row into it: both refused, naming the index.
TEST_F(SqlKeys, ExpressionAndPartialIndexesAreRefused) {
  auto t1 = impatient_tenant1();
  const std::string email = "INSERT INTO lk_expr (email) VALUES ('HANK@globex')";
  expect_cross_tenant_key(t1->exec(email), email, "lk_expr_email");
  const std::string tag = "UPDATE lk_expr SET tag = 'globex-tag'";
  QueryResult r = t1->exec(tag);
  EXPECT_TRUE(r.refused()) << r.sqlstate << " " << r.message;
  EXPECT_NE(r.message.find("cross_tenant_key"), std::string::npos) << r.message;
  EXPECT_TRUE(t1->alive());
}

// A key the DBA lists in shared_keys is shared knowingly: the write is forwarded, and reveals
// existence (the documented price of the opt-in).
TEST_F(SqlKeys, SharedKeysOptInForwardsTheWrite) {
  RowguardProcess rg(legacy_policy("shared_keys = [\"lk_customers_pkey\"]\n"), Env::get().pg(), "info");
  Client t1(rg.conninfo("t1") + " password=pw1");
  QueryResult r = t1.exec("INSERT INTO lk_customers (id, name) VALUES (201, 'acme-probe')");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.sqlstate, "23505") << r.message;
  QueryResult other = t1.exec("INSERT INTO lk_orders (id, amount) VALUES (201, 1)");
  EXPECT_TRUE(other.refused()) << other.sqlstate << " " << other.message;
}


// ---- foreign keys without the tenant column (issue #13 item 4, rule cross_tenant_fk) ---------
// lk_refs.customer_id REFERENCES lk_customers (id): PostgreSQL's RI trigger checks the referenced
// row as the table owner, without the tenant filter (ri_triggers.c RI_FKey_check: SELECT 1 FROM
// ONLY pk WHERE id = $1 FOR KEY SHARE). On the unchanged proxy the three attacks below succeed.

// Existence: referencing tenant 2's customer 201 succeeds, an unused id fails with 23503.
TEST_F(SqlKeys, ForeignKeyDoesNotRevealAnotherTenantsRow) {
  auto t1 = impatient_tenant1();
  ASSERT_TRUE(t1->exec("BEGIN").ok);
  QueryResult r = t1->exec("INSERT INTO lk_refs (customer_id) VALUES (201)");
  EXPECT_TRUE(r.refused()) << "referencing tenant 2's row: " << r.sqlstate << " " << r.message << " " << r.command_tag;
  t1->exec("ROLLBACK");
}

// Lock: tenant 1's open reference holds KEY SHARE on tenant 2's row; tenant 2's DELETE waits.
TEST_F(SqlKeys, ForeignKeyLockDoesNotMakeAnotherTenantWait) {
  auto t1 = impatient_tenant1();
  ASSERT_TRUE(t1->exec("BEGIN").ok);
  t1->exec("INSERT INTO lk_refs (customer_id) VALUES (201)");
  auto t2 = tenant(2);
  ASSERT_TRUE(t2->exec("SET lock_timeout = '1s'").ok);
  ASSERT_TRUE(t2->exec("BEGIN").ok);
  QueryResult d = t2->exec("DELETE FROM lk_customers WHERE id = 201");
  EXPECT_NE(d.sqlstate, "55P03") << "tenant 2 waited on tenant 1's reference to its own row";
  t2->exec("ROLLBACK");
  t1->exec("ROLLBACK");
}

// RESTRICT: a committed reference by tenant 1 makes tenant 2's DELETE of its own row fail.
TEST_F(SqlKeys, ForeignKeyDoesNotBlockAnotherTenantsDelete) {
  auto t1 = impatient_tenant1();
  QueryResult ins = t1->exec("INSERT INTO lk_refs (customer_id) VALUES (202) RETURNING id");
  auto t2 = tenant(2);
  ASSERT_TRUE(t2->exec("BEGIN").ok);
  QueryResult d = t2->exec("DELETE FROM lk_customers WHERE id = 202");
  EXPECT_TRUE(d.ok) << "tenant 2 cannot delete its own row: " << d.sqlstate << " " << d.message;
  t2->exec("ROLLBACK");
  Env::get().direct_super()->exec("DELETE FROM lk_refs WHERE tenant_id = 1");
}

void expect_cross_tenant_fk(const QueryResult& r, const std::string& sql, const std::string& fk) {
  EXPECT_TRUE(r.refused()) << sql << "\n  -> " << r.sqlstate << " " << r.message << " tag " << r.command_tag;
  EXPECT_NE(r.message.find("cross_tenant_fk"), std::string::npos) << sql << "\n  -> " << r.message;
  EXPECT_NE(r.message.find(fk), std::string::npos) << sql << "\n  -> " << r.message;
  EXPECT_NE(r.sqlstate, "23503") << sql << ": the foreign-key check reveals another tenant's row";
  EXPECT_TRUE(no_leak(r)) << sql;
}

TEST_F(SqlKeys, EveryWriteFormThatGivesAForeignKeyAValueIsRefused) {
  auto t1 = impatient_tenant1();
  ASSERT_TRUE(t1->exec("BEGIN").ok);
  QueryResult own = t1->exec("INSERT INTO lk_refs (note) VALUES ('acme-ref') RETURNING id");
  ASSERT_TRUE(own.ok) << own.message;
  ASSERT_TRUE(t1->exec("COMMIT").ok);
  for (const char* sql : {
           "INSERT INTO lk_refs (customer_id) VALUES (201)",
           "INSERT INTO lk_refs (note, customer_id) VALUES ('x', NULL), ('y', 201)",
           "INSERT INTO lk_refs (customer_id) SELECT 201",
           "INSERT INTO lk_refs (customer_id) SELECT id FROM lk_customers",
           "UPDATE lk_refs SET customer_id = 201",
           "UPDATE lk_refs SET (note, customer_id) = (SELECT 'x', 201)",
           "MERGE INTO lk_refs r USING (SELECT 201 AS c) s ON r.customer_id = s.c "
           "WHEN NOT MATCHED THEN INSERT (customer_id) VALUES (s.c)",
           "MERGE INTO lk_refs r USING (SELECT 1 AS c) s ON true WHEN MATCHED THEN UPDATE SET customer_id = 201",
           "INSERT INTO lk_refs (id, note) VALUES (1, 'x') ON CONFLICT (tenant_id, id) DO UPDATE SET customer_id = 201",
           "WITH w AS (INSERT INTO lk_refs (customer_id) VALUES (201) RETURNING id) SELECT * FROM w",
           "PREPARE p_fk(int) AS INSERT INTO lk_refs (customer_id) VALUES ($1)",
           "COPY lk_refs (customer_id) FROM STDIN",
       }) {
    expect_cross_tenant_fk(t1->exec(sql), sql, "lk_refs_customer_id_fkey");
  }
  QueryResult ext = t1->exec_params("INSERT INTO lk_refs (customer_id) VALUES ($1)", {"201"});
  expect_cross_tenant_fk(ext, "extended INSERT", "lk_refs_customer_id_fkey");
  // A referenced table that is not in the policy: rows no tenant may read.
  const std::string priv = "INSERT INTO lk_refs (private_id) VALUES (1)";
  expect_cross_tenant_fk(t1->exec(priv), priv, "lk_refs_private_id_fkey");
  EXPECT_TRUE(t1->alive());
  Env::get().direct_super()->exec("DELETE FROM lk_refs WHERE tenant_id = 1");
}

// Writes that leave the foreign key NULL, reference a global table, or use a composite foreign
// key with the tenant column keep working; the composite key cannot reach tenant 2's row.
TEST_F(SqlKeys, ForeignKeysThatStayInTheTenantWork) {
  auto t1 = impatient_tenant1();
  ASSERT_TRUE(t1->exec("BEGIN").ok);
  for (const char* sql : {
           "INSERT INTO lk_refs (note) VALUES ('acme-ref')",
           "INSERT INTO lk_refs (note, country_code) VALUES ('acme-ref', 'DE')",
           "UPDATE lk_refs SET country_code = 'FR', note = 'x'",
           "INSERT INTO lk_crefs (customer_id) VALUES (101)",
           "UPDATE lk_crefs SET customer_id = 101",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.ok) << sql << "\n  -> " << r.sqlstate << " " << r.message;
  }
  ASSERT_TRUE(t1->exec("ROLLBACK").ok);
  QueryResult other = t1->exec("INSERT INTO lk_crefs (customer_id) VALUES (201)");
  EXPECT_FALSE(other.ok);
  EXPECT_EQ(other.sqlstate, "23503") << other.message;  // (1, 201) does not exist: same answer as any free id
  EXPECT_TRUE(t1->alive());
}

// A foreign key the DBA lists in shared_keys is shared knowingly: the write is forwarded.
TEST_F(SqlKeys, SharedKeysOptInForwardsAForeignKeyWrite) {
  RowguardProcess rg(legacy_policy("", "shared_keys = [\"lk_refs_customer_id_fkey\"]\n"), Env::get().pg(), "info");
  Client t1(rg.conninfo("t1") + " password=pw1");
  ASSERT_TRUE(t1.exec("BEGIN").ok);
  QueryResult r = t1.exec("INSERT INTO lk_refs (customer_id) VALUES (201)");
  EXPECT_TRUE(r.ok) << r.sqlstate << " " << r.message;
  ASSERT_TRUE(t1.exec("ROLLBACK").ok);
  QueryResult priv = t1.exec("INSERT INTO lk_refs (private_id) VALUES (1)");
  EXPECT_TRUE(priv.refused()) << priv.sqlstate << " " << priv.message;
}

// An UPDATE of the column a STORED GENERATED key column is computed from writes that key: tenant
// 1 setting its email to tenant 2's (lower-cased) address got 23505 naming tenant 2's value.
TEST_F(SqlKeys, UpdateOfAGeneratedKeysSourceColumnIsRefused) {
  auto t1 = impatient_tenant1();
  for (const char* sql : {
           "UPDATE lk_accounts SET email = 'ceo@GLOBEX.example'",
           "MERGE INTO lk_accounts a USING (SELECT 1) s ON true WHEN MATCHED THEN UPDATE SET email = 'ceo@globex.example'",
           "INSERT INTO lk_accounts (id, email) VALUES (1, 'x') ON CONFLICT (tenant_id, id) DO UPDATE "
           "SET email = 'ceo@globex.example'",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.refused()) << sql << "\n  -> " << r.sqlstate << " " << r.message;
    EXPECT_NE(r.sqlstate, "23505") << sql << ": reveals another tenant's key";
    EXPECT_NE(r.message.find("lk_accounts_email_norm"), std::string::npos) << sql << "\n  -> " << r.message;
    EXPECT_TRUE(no_leak(r)) << sql;
  }
  EXPECT_TRUE(t1->alive());
}

// The same for a foreign key on a generated column: UPDATE SET raw = tenant 2's code succeeded
// (existence of tenant 2's row, and a KEY SHARE lock on it).
TEST_F(SqlKeys, UpdateOfAGeneratedForeignKeysSourceColumnIsRefused) {
  auto t1 = impatient_tenant1();
  for (const char* sql : {
           "UPDATE lk_picks SET raw = 'GLOBEX-SECRET-SKU'",
           "MERGE INTO lk_picks p USING (SELECT 1) s ON true WHEN MATCHED THEN UPDATE SET raw = 'GLOBEX-SECRET-SKU'",
       }) {
    QueryResult r = t1->exec(sql);
    expect_cross_tenant_fk(r, sql, "lk_picks_code_fkey");
  }
  EXPECT_TRUE(t1->alive());
  auto su = Env::get().direct_super();
  QueryResult raw = su->exec("SELECT raw FROM lk_picks WHERE tenant_id = 1");
  ASSERT_TRUE(raw.ok) << raw.message;
  ASSERT_EQ(raw.rows.size(), 1u);
  EXPECT_EQ(*raw.rows[0][0], "ACME-SKU");
}

// ON UPDATE CASCADE carries tenant 1's UPDATE of lk_projects.id into lk_project_slots, whose
// unique key (project_id, slot) lacks the tenant column: 23505 about tenant 2's slot row.
// ON DELETE SET DEFAULT writes the default (777) into tenant 1's slot rows likewise.
TEST_F(SqlKeys, ReferentialActionsThatWriteAnotherTableAreRefused) {
  auto t1 = impatient_tenant1();
  for (const char* sql : {
           "UPDATE lk_projects SET id = 777 WHERE id = 10",
           "MERGE INTO lk_projects p USING (SELECT 10 AS id) s ON p.id = s.id WHEN MATCHED THEN UPDATE SET id = 777",
           "DELETE FROM lk_projects WHERE id = 10",
       }) {
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.refused()) << sql << "\n  -> " << r.sqlstate << " " << r.message;
    EXPECT_NE(r.sqlstate, "23505") << sql << ": reveals another tenant's key";
    EXPECT_NE(r.message.find("lk_project_slots_tenant_id_project_id_fkey"), std::string::npos) << sql << "\n  -> " << r.message;
    EXPECT_NE(r.message.find("lk_project_slots"), std::string::npos) << sql << "\n  -> " << r.message;
    EXPECT_TRUE(no_leak(r)) << sql;
  }
  // Columns the foreign key does not reference stay writable.
  QueryResult name = t1->exec("UPDATE lk_projects SET name = 'acme-renamed' WHERE id = 10");
  EXPECT_TRUE(name.ok) << name.sqlstate << " " << name.message;
  EXPECT_TRUE(t1->alive());
  auto su = Env::get().direct_super();
  QueryResult slots = su->exec("SELECT project_id FROM lk_project_slots WHERE tenant_id = 1");
  ASSERT_TRUE(slots.ok) << slots.message;
  ASSERT_EQ(slots.rows.size(), 1u);
  EXPECT_EQ(*slots.rows[0][0], "10");
}

// The DBA can share such a foreign key knowingly by listing it in the referenced table's shared_keys.
TEST_F(SqlKeys, SharedKeysOptInForwardsAReferentialAction) {
  RowguardProcess rg(legacy_policy("", "", "shared_keys = [\"lk_project_slots_tenant_id_project_id_fkey\"]\n"),
                     Env::get().pg(), "info");
  Client t1(rg.conninfo("t1") + " password=pw1");
  ASSERT_TRUE(t1.exec("BEGIN").ok);
  QueryResult r = t1.exec("UPDATE lk_projects SET id = 11 WHERE id = 10");
  EXPECT_TRUE(r.ok) << r.sqlstate << " " << r.message;
  ASSERT_TRUE(t1.exec("ROLLBACK").ok);
}

// A sequence behind ids stored by hand is not fresh: tenant 1 walking it with inserts reached
// tenant 2's imported id 3 (23505). The default no longer counts as fresh: refused; a sequence
// ahead of every stored id (lk_seq) keeps working.
TEST_F(SqlKeys, ASequenceBehindStoredIdsIsNotFresh) {
  auto t1 = impatient_tenant1();
  ASSERT_TRUE(t1->exec("BEGIN").ok);
  for (int i = 0; i < 4; ++i) {
    QueryResult r = t1->exec("INSERT INTO lk_imported (body) VALUES ('acme')");
    EXPECT_NE(r.sqlstate, "23505") << "insert " << i << " reveals another tenant's id: " << r.message;
    EXPECT_TRUE(r.refused()) << "insert " << i << ": " << r.sqlstate << " " << r.message << " tag " << r.command_tag;
    if (!r.ok) break;
  }
  t1->exec("ROLLBACK");
  ASSERT_TRUE(t1->exec("BEGIN").ok);
  QueryResult fresh = t1->exec("INSERT INTO lk_seq (body) VALUES ('acme')");
  EXPECT_TRUE(fresh.ok) << fresh.sqlstate << " " << fresh.message;
  t1->exec("ROLLBACK");
  EXPECT_TRUE(t1->alive());
}

}  // namespace
}  // namespace rowguard::testing::adversarial
