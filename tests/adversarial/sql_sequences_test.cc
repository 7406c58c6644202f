// Sequences are shared by all tenants (issue #13 item 3, "no fact about other tenants'
// activity"). audit_log (examples/schema.sql, not in the policy) has the serial id
// audit_log_id_seq: its values count every tenant's audit events. A tenant must not read or
// move it: nextval / currval / lastval / setval / pg_sequence_last_value / pg_sequences / the
// sequence as a relation, however the name is spelled. nextval / currval of a sequence that a
// tenant table's default draws from stay allowed (the tenant's own inserts draw from it anyway;
// that remaining leak is the schema's, named by the start-up report).
#include <gtest/gtest.h>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

std::string audit_log_last_value() {
  auto su = Env::get().direct_super();
  QueryResult r = su->exec("SELECT last_value FROM audit_log_id_seq");
  EXPECT_TRUE(r.ok) << r.message;
  return r.rows.empty() || !r.rows[0][0] ? std::string("?") : *r.rows[0][0];
}

void expect_refused(const QueryResult& r, const std::string& sql) {
  EXPECT_TRUE(r.refused()) << sql << "\n  -> " << r.sqlstate << " " << r.message << " rows " << r.rows.size();
  EXPECT_TRUE(no_leak(r)) << sql;
}

// On the unchanged proxy nextval('audit_log_id_seq') answers the next audit id (and moves the
// sequence), currval / lastval answer or fail with 55000 after it.
TEST(SqlSequences, SequencesOfTablesOutsideThePolicyCannotBeReadOrMoved) {
  const std::string before = audit_log_last_value();
  auto t1 = Env::get().tenant(1);
  for (const char* sql : {
           "SELECT nextval('audit_log_id_seq')",
           "SELECT nextval('audit_log_id_seq'::regclass)",
           "SELECT nextval('public.audit_log_id_seq')",
           "SELECT nextval('\"audit_log_id_seq\"')",
           "SELECT nextval('PUBLIC.AUDIT_LOG_ID_SEQ')",
           "SELECT pg_catalog.nextval('audit_log_id_seq')",
           "SELECT nextval('audit_' || 'log_id_seq')",
           "SELECT nextval(('audit_log_id_seq')::text::regclass)",
           "SELECT nextval(to_regclass('audit_log_id_seq'))",
           "SELECT nextval(c.oid) FROM pg_class c WHERE c.relname = 'audit_log_id_seq'",
           "SELECT ('audit_log_id_seq'::regclass).nextval",
           "SELECT currval('audit_log_id_seq')",
           "SELECT lastval()",
           "SELECT setval('audit_log_id_seq', 1)",
           "SELECT setval('audit_log_id_seq', 1, false)",
           "SELECT pg_sequence_last_value('audit_log_id_seq')",
           "SELECT last_value FROM audit_log_id_seq",
           "SELECT * FROM pg_sequences",
           "SELECT id FROM customers WHERE id < nextval('audit_log_id_seq')",
           "INSERT INTO orders (id, amount) VALUES (nextval('audit_log_id_seq'), 1)",
           "PREPARE nv AS SELECT nextval('audit_log_id_seq')",
       }) {
    expect_refused(t1->exec(sql), sql);
  }
  expect_refused(t1->exec_params("SELECT nextval($1)", {"audit_log_id_seq"}), "nextval($1)");
  expect_refused(t1->exec_params("SELECT nextval($1::regclass)", {"audit_log_id_seq"}), "nextval($1::regclass)");
  EXPECT_TRUE(t1->alive());
  EXPECT_EQ(audit_log_last_value(), before) << "a tenant moved audit_log's sequence";
}

// A tenant table with a serial id: its own sequence stays usable, by any spelling of its name,
// and the literal cannot be re-pointed by search_path (rewritten schema-qualified).
TEST(SqlSequences, TheSequenceOfATenantTableIsUsable) {
  auto su = Env::get().direct_super();
  ASSERT_TRUE(su->exec("DROP TABLE IF EXISTS sq_items").ok);
  ASSERT_TRUE(su->exec("CREATE TABLE sq_items (id serial, tenant_id int NOT NULL, body text, PRIMARY KEY (tenant_id, id))").ok);
  ASSERT_TRUE(su->exec("ALTER TABLE sq_items OWNER TO app").ok);
  RowguardProcess rg(example_config_template() + "\n[tables.\"public.sq_items\"]\n", Env::get().pg(), "info");
  Client t1(rg.conninfo("t1") + " password=pw1");
  QueryResult ins = t1.exec("INSERT INTO sq_items (body) VALUES ('acme') RETURNING id");
  ASSERT_TRUE(ins.ok) << ins.message;
  for (const char* sql : {"SELECT currval('sq_items_id_seq')", "SELECT nextval('sq_items_id_seq')",
                          "SELECT nextval('public.sq_items_id_seq'::regclass)", "SELECT currval('\"sq_items_id_seq\"')",
                          "INSERT INTO sq_items (body) VALUES ('acme-2') RETURNING currval('sq_items_id_seq')"}) {
    QueryResult r = t1.exec(sql);
    EXPECT_TRUE(r.ok) << sql << "\n  -> " << r.sqlstate << " " << r.message;
  }
  expect_refused(t1.exec("SELECT lastval()"), "lastval()");
  expect_refused(t1.exec("SELECT setval('sq_items_id_seq', 1)"), "setval");
  expect_refused(t1.exec("SELECT nextval('audit_log_id_seq')"), "nextval(audit_log_id_seq)");
  su->exec("DROP TABLE sq_items");
}

}  // namespace
}  // namespace rowguard::testing::adversarial
