// Functions reached by any syntax (issue #13, item 1): attribute notation on any expression and
// on relation names (x.f / (expr).f mean f(x) when x has no column f, PostgreSQL docs 8.16.5),
// user-defined operators, casts to transaction-id types, and the transaction-id / snapshot
// functions (item 3). Every case runs as tenant 1 and must be refused by rowguard (42501 with a
// "rowguard:" message naming the rule) or leak nothing; the connection must stay usable.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

struct Case {
  const char* name;
  const char* sql;
  const char* rule;  // a part of rowguard's message: the rule it names
};

::testing::AssertionResult refused_by_rowguard(const QueryResult& r, const std::string& rule) {
  if (r.ok) return ::testing::AssertionFailure() << "answered (" << r.rows.size() << " rows): " << r.everything();
  if (r.sqlstate != "42501" || r.message.find("rowguard:") == std::string::npos ||
      r.message.find(rule) == std::string::npos) {
    return ::testing::AssertionFailure() << "not refused by rowguard with rule " << rule << ": " << r.sqlstate << " "
                                         << r.message;
  }
  return ::testing::AssertionSuccess();
}

void run_refused(const std::vector<Case>& cases) {
  auto t1 = Env::get().tenant(1);
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.name) + ": " + c.sql);
    ASSERT_TRUE(t1->exec("BEGIN").ok);  // rolled back: a write that got through changes nothing
    QueryResult r = t1->exec(c.sql);
    t1->exec("ROLLBACK");
    EXPECT_TRUE(refused_by_rowguard(r, c.rule));
    EXPECT_TRUE(no_leak(r));
    ASSERT_TRUE(t1->alive());
  }
}

// Attribute notation: the function a FuncCall of the same name would be refused.
const std::vector<Case> kAttributeNotation = {
    {"relation_size_of_regclass", "SELECT ('orders'::regclass).pg_relation_size", "attribute_notation"},
    {"total_relation_size", "SELECT ('public.orders'::regclass).pg_total_relation_size", "attribute_notation"},
    {"table_size", "SELECT ('orders'::regclass).pg_table_size", "attribute_notation"},
    {"indexes_size", "SELECT ('customers'::regclass).pg_indexes_size", "attribute_notation"},
    {"index_size", "SELECT ('orders_pkey'::regclass).pg_relation_size", "attribute_notation"},
    {"relation_filepath", "SELECT ('orders'::regclass).pg_relation_filepath", "attribute_notation"},
    {"live_tuples_every_tenant", "SELECT ('orders'::regclass).pg_stat_get_live_tuples", "attribute_notation"},
    {"tuples_inserted", "SELECT ('orders'::regclass).pg_stat_get_tuples_inserted", "attribute_notation"},
    {"numscans", "SELECT ('customers'::regclass).pg_stat_get_numscans", "attribute_notation"},
    {"quoted_function_name", "SELECT ('orders'::regclass).\"pg_relation_size\"", "attribute_notation"},
    {"other_sessions_sql", "SELECT (g).pg_stat_get_backend_activity FROM generate_series(1, 50) AS g", "attribute_notation"},
    {"other_sessions_pids", "SELECT (g).pg_stat_get_backend_pid FROM generate_series(1, 50) AS g", "attribute_notation"},
    {"other_sessions_users", "SELECT (g).pg_stat_get_backend_userid FROM generate_series(1, 50) AS g", "attribute_notation"},
    {"terminate_backend", "SELECT (0).pg_terminate_backend", "attribute_notation"},
    {"cancel_backend", "SELECT (0).pg_cancel_backend", "attribute_notation"},
    {"sleep", "SELECT (0.01).pg_sleep", "attribute_notation"},
    {"query_text_run_unfiltered_paren", "SELECT (('SELECT to_tsvector(name) FROM public.customers')::text).ts_stat",
     "attribute_notation"},
    {"read_file", "SELECT ('postgresql.conf'::text).pg_read_file", "attribute_notation"},
    {"ls_dir", "SELECT ('.'::text).pg_ls_dir", "attribute_notation"},
    {"large_object", "SELECT (1::oid).lo_get", "attribute_notation"},
    {"subquery_column_three_names",
     "SELECT s.r.pg_relation_size FROM (SELECT 'orders'::regclass AS r) AS s", "attribute_notation"},
    {"subquery_column_paren", "SELECT (s.r).pg_relation_size FROM (SELECT 'orders'::regclass AS r) AS s",
     "attribute_notation"},
    {"function_in_from_whole_row", "SELECT r.pg_relation_size FROM to_regclass('orders') AS r", "attribute_notation"},
    {"cte_column", "WITH t AS (SELECT 'orders'::regclass AS r) SELECT t.r.pg_relation_size FROM t",
     "attribute_notation"},
    {"cte_whole_row", "WITH t AS (SELECT 'orders'::regclass AS r) SELECT (t.r).pg_stat_get_live_tuples FROM t",
     "attribute_notation"},
    {"row_constructor", "SELECT (ROW('orders'::regclass)).f1.pg_relation_size", "attribute_notation"},
    {"relation_whole_row", "SELECT o.pg_relation_size FROM orders AS o", "attribute_notation"},
    {"relation_name_whole_row", "SELECT orders.pg_stat_get_live_tuples FROM orders", "attribute_notation"},
    {"schema_table_whole_row", "SELECT public.orders.pg_relation_size FROM public.orders", "attribute_notation"},
    {"in_where", "SELECT id FROM orders WHERE ('orders'::regclass).pg_stat_get_live_tuples > 0", "attribute_notation"},
    {"in_order_by", "SELECT id FROM orders ORDER BY ('orders'::regclass).pg_relation_size", "attribute_notation"},
    {"in_scalar_subquery", "SELECT (SELECT ('orders'::regclass).pg_relation_size)", "attribute_notation"},
    {"in_exists", "SELECT 1 WHERE EXISTS (SELECT ('orders'::regclass).pg_relation_size)", "attribute_notation"},
    {"in_returning",
     "UPDATE orders SET status = status WHERE id = 101 RETURNING ('orders'::regclass).pg_stat_get_live_tuples",
     "attribute_notation"},
    {"in_insert_values",
     "INSERT INTO orders (id, tenant_id, amount) VALUES (('orders'::regclass).pg_relation_size::int + 9000, 1, 1)",
     "attribute_notation"},
    {"in_group_by", "SELECT count(*) FROM orders GROUP BY ('orders'::regclass).pg_relation_size", "attribute_notation"},
    {"in_cte_body", "WITH x AS (SELECT ('orders'::regclass).pg_table_size AS s) SELECT s FROM x", "attribute_notation"},
    {"in_case", "SELECT CASE WHEN true THEN ('orders'::regclass).pg_relation_size END", "attribute_notation"},
    {"in_function_argument", "SELECT coalesce(('orders'::regclass).pg_relation_size, 0)", "attribute_notation"},
    {"array_element", "SELECT (ARRAY['orders'::regclass])[1].pg_relation_size", "attribute_notation"},
    {"xid_function_attribute", "SELECT (1::bigint).txid_status", "attribute_notation"},
};

TEST(AdversarialSqlFunctions, AttributeNotationCannotCallDeniedFunctions) { run_refused(kAttributeNotation); }

TEST(AdversarialSqlFunctions, AttributeNotationInAPreparedStatementIsRefused) {
  auto t1 = Env::get().tenant(1);
  QueryResult r = t1->exec_params("SELECT ($1::regclass).pg_stat_get_live_tuples", {"orders"});
  EXPECT_TRUE(refused_by_rowguard(r, "attribute_notation"));
  EXPECT_TRUE(t1->alive());
}

// User-defined operators run user code: only pg_catalog's operators.
const std::vector<Case> kOperators = {
    {"schema_qualified_operator", "SELECT 1 OPERATOR(public.+) 1", "rowguard"},
    {"unknown_operator", "SELECT 1 === 1", "builtin_operators"},
    {"unknown_prefix_operator", "SELECT !== 1", "builtin_operators"},
    {"order_by_using_user_operator", "SELECT id FROM orders ORDER BY id USING OPERATOR(public.<)", "builtin_operators"},
    {"order_by_using_unknown_operator", "SELECT id FROM orders ORDER BY id USING <<<", "builtin_operators"},
    {"any_with_user_operator", "SELECT id FROM orders WHERE id OPERATOR(public.=) ANY (SELECT 1)", "builtin_operators"},
    {"any_with_unknown_operator", "SELECT id FROM orders WHERE id =*= ANY (SELECT 1)", "builtin_operators"},
    {"pg_catalog_unknown_operator", "SELECT 1 OPERATOR(pg_catalog.===) 1", "builtin_operators"},
};

TEST(AdversarialSqlFunctions, OnlyPgCatalogOperators) { run_refused(kOperators); }

// Transaction ids and snapshots count every tenant's write transactions.
const std::vector<Case> kTransactionIds = {
    {"txid_current", "SELECT txid_current()", "transaction_ids"},
    {"pg_current_xact_id", "SELECT pg_current_xact_id()", "transaction_ids"},
    {"txid_current_if_assigned", "SELECT txid_current_if_assigned()", "transaction_ids"},
    {"pg_current_xact_id_if_assigned", "SELECT pg_current_xact_id_if_assigned()", "transaction_ids"},
    {"txid_current_snapshot", "SELECT txid_current_snapshot()", "transaction_ids"},
    {"pg_current_snapshot", "SELECT pg_current_snapshot()", "transaction_ids"},
    {"snapshot_xmin", "SELECT pg_snapshot_xmin(pg_current_snapshot())", "transaction_ids"},
    {"txid_snapshot_xmax", "SELECT txid_snapshot_xmax(txid_current_snapshot())", "transaction_ids"},
    {"txid_status", "SELECT txid_status(3)", "transaction_ids"},
    {"pg_xact_status", "SELECT pg_xact_status('3'::xid8)", "transaction_ids"},
    {"commit_timestamp", "SELECT pg_xact_commit_timestamp('3'::xid)", "transaction_ids"},
    {"mxid_age", "SELECT mxid_age('1'::xid)", "transaction_ids"},
    {"last_committed", "SELECT pg_last_committed_xact()", "transaction_ids"},
    {"qualified_txid_current", "SELECT pg_catalog.txid_current()", "transaction_ids"},
    {"cast_to_xid", "SELECT '5'::xid", "transaction_ids"},
    {"age_of_literal_xid", "SELECT age('5'::xid)", "transaction_ids"},
    {"cast_syntax_xid8", "SELECT CAST('5' AS xid8)", "transaction_ids"},
    {"typed_literal_xid", "SELECT xid '5'", "transaction_ids"},
    {"xid_array", "SELECT age(x) FROM unnest('{5}'::xid[]) AS x", "transaction_ids"},
    {"qualified_xid_type", "SELECT age('5'::pg_catalog.xid)", "transaction_ids"},
    {"snapshot_literal", "SELECT '10:20:'::pg_snapshot", "transaction_ids"},
    {"txid_snapshot_literal", "SELECT '10:20:'::txid_snapshot", "transaction_ids"},
    {"populate_catalog_row_type",
     "SELECT age((jsonb_populate_record(NULL::pg_database, '{\"datfrozenxid\": \"5\"}')).datfrozenxid)",
     "transaction_ids"},
    {"populate_qualified_row_type",
     "SELECT age((json_populate_record(NULL::pg_catalog.pg_class, '{\"relfrozenxid\": \"5\"}')).relfrozenxid)",
     "transaction_ids"},
    {"populate_view_row_type",
     "SELECT age((jsonb_populate_record(NULL::pg_stat_activity, '{\"backend_xid\": \"5\"}')).backend_xid)",
     "transaction_ids"},
};

TEST(AdversarialSqlFunctions, TransactionIdsAndSnapshotsAreRefused) { run_refused(kTransactionIds); }

// A parameter declared as xid is a cast the SQL text does not show: age($1) then counts every
// tenant's write transactions since the bound id.
TEST(AdversarialSqlFunctions, ParametersDeclaredAsTransactionIdsAreRefused) {
  auto t1 = Env::get().tenant(1);
  QueryResult view_type = Env::get().direct_super()->exec("SELECT 'pg_stat_activity'::regtype::oid");
  ASSERT_TRUE(view_type.ok && view_type.rows.size() == 1) << view_type.message;
  const Oid activity = static_cast<Oid>(std::stoul(view_type.rows[0][0].value_or("0")));
  for (Oid type : {Oid{28}, Oid{5069}, Oid{1011}, Oid{1248}, activity}) {  // ..., pg_database, a view's row type
    SCOPED_TRACE(type);
    PGresult* res = PQprepare(t1->raw(), "", "SELECT age($1)", 1, &type);
    const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char* message = PQresultErrorMessage(res);
    EXPECT_EQ(std::string(state ? state : ""), "42501") << message;
    EXPECT_NE(std::string(message).find("transaction_ids"), std::string::npos) << message;
    PQclear(res);
    ASSERT_TRUE(t1->alive());
  }
  QueryResult r = t1->exec("PREPARE px(xid) AS SELECT age($1)");
  EXPECT_TRUE(refused_by_rowguard(r, "transaction_ids"));
  r = t1->exec("PREPARE py(pg_catalog.xid8) AS SELECT pg_xact_status($1)");
  EXPECT_TRUE(refused_by_rowguard(r, "transaction_ids"));
  r = t1->exec("PREPARE pz(pg_database) AS SELECT age(($1).datfrozenxid)");
  EXPECT_TRUE(refused_by_rowguard(r, "transaction_ids"));
  EXPECT_TRUE(t1->alive());
}

// The xid columns of readable catalogs are masked: they read as the text '0', so age() of them is
// an error, never the number of transactions (every tenant's) since the last freeze.
TEST(AdversarialSqlFunctions, CatalogFreezeHorizonsAreMasked) {
  auto t1 = Env::get().tenant(1);
  for (const char* sql : {"SELECT datfrozenxid, datminmxid FROM pg_database WHERE datname = current_database()",
                          "SELECT relfrozenxid, relminmxid FROM pg_class WHERE relname = 'orders'"}) {
    SCOPED_TRACE(sql);
    QueryResult r = t1->exec(sql);
    ASSERT_TRUE(r.ok) << r.message;
    ASSERT_EQ(r.rows.size(), 1u);
    EXPECT_EQ(r.rows[0][0].value_or(""), "0");
    EXPECT_EQ(r.rows[0][1].value_or(""), "0");
  }
  for (const char* sql : {"SELECT age(datfrozenxid) FROM pg_database WHERE datname = current_database()",
                          "SELECT age(relfrozenxid) FROM pg_class WHERE relname = 'orders'"}) {
    SCOPED_TRACE(sql);
    QueryResult r = t1->exec(sql);
    EXPECT_FALSE(r.ok) << "age() of a masked column answered " << r.everything();
    EXPECT_TRUE(t1->alive());
  }
}

// Ordinary SQL using attribute-like names keeps working.
TEST(AdversarialSqlFunctions, OrdinaryColumnsAndAllowedAttributeCallsStillWork) {
  auto t1 = Env::get().tenant(1);
  for (const char* sql : {"SELECT c.name, o.status, o.amount FROM customers AS c JOIN orders AS o ON o.customer_id = c.id",
                          "SELECT (c).name, (c).id FROM customers AS c",
                          "SELECT s.name FROM (SELECT name FROM customers) AS s",
                          "WITH x AS (SELECT id, name FROM customers) SELECT x.name FROM x",
                          "SELECT (c).row_to_json FROM customers AS c",
                          "SELECT o.id, o.tenant_id FROM orders AS o WHERE o.amount > 0",
                          "SELECT customers.name FROM customers",
                          "SELECT id FROM orders WHERE status LIKE 'p%' AND amount BETWEEN 1 AND 5000 ORDER BY id USING <"}) {
    SCOPED_TRACE(sql);
    QueryResult r = t1->exec(sql);
    EXPECT_TRUE(r.ok) << r.sqlstate << " " << r.message;
    EXPECT_TRUE(no_leak(r));
  }
}

}  // namespace
}  // namespace rowguard::testing::adversarial
