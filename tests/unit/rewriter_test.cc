// Golden tests for sqlrewrite::rewrite(): every case asserts the exact rewritten SQL or the exact
// denial reason. Every allowed output is also re-parsed and checked by an independent walker
// (written here, sharing no code with the rewriter) that requires each tenant-table reference to
// be filtered by `<alias-or-relname>.tenant_id = '<tenant>'` in a place that really filters it.
#include "sqlrewrite/rewriter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"
#include "sqlrewrite/pg_query_api.h"
#include "sqlrewrite/rewrite_cache.h"
#include "tests/support/tenant_keys_schema.h"
#include "tests/support/tenant_oracle.h"
#include "tests/support/test_policy.h"

namespace rowguard::sqlrewrite {
namespace {

const std::string kPolicyToml =
    test_support::test_policy_toml({.second_tenant = true, .allowed_functions = {"public.safe_fn"}});

const policy::Policy& test_policy() {
  static const policy::PolicyPtr p = unit_test::with_tenant_keys(policy::parse_policy(kPolicyToml, "rewriter_test.toml"));
  return *p;
}

// ---- the independent checker ---------------------------------------------------------------
//
// tests/support/tenant_oracle.h (shared with the rewriter fuzz target): walks a parse tree of
// rewritten SQL and requires every tenant-table reference to be filtered by
// `<alias-or-relname>.tenant_id = '<tenant>'` in a place that really filters it, tenant values
// on every written row, and no other table than the policy's (and the system catalogs).

test_support::TenantOracleOptions oracle_options(const std::string& tenant) {
  return {.tenant = tenant, .system_catalogs = true};
}

std::string join_problems(const std::vector<std::string>& p) {
  std::string out;
  for (const auto& s : p) out += "\n  - " + s;
  return out;
}

// Parses `sql` (which must parse) and returns the checker's complaints.
std::vector<std::string> independent_problems(const std::string& sql, const std::string& tenant = "1") {
  ParseOutput parsed = parse_sql(sql);
  if (!parsed.ok) return {"output does not parse: " + parsed.error};
  return test_support::tenant_problems(parsed.tree, oracle_options(tenant));
}

// The checker must reject unsafe SQL, or its approval of the rewriter's output means nothing.
TEST(TenantChecker, RejectsUnfilteredAndMisplacedPredicates) {
  const std::vector<std::string> bad = {
      "SELECT * FROM orders",
      "SELECT * FROM orders WHERE id = 1 OR orders.tenant_id = '1'",
      "SELECT * FROM orders o WHERE orders.tenant_id = '1'",
      "SELECT * FROM orders WHERE orders.tenant_id = '2'",
      "SELECT * FROM orders WHERE orders.status = '1'",
      "SELECT * FROM orders o LEFT JOIN customers c ON c.id = o.customer_id AND o.tenant_id = '1' "
      "WHERE c.tenant_id = '1'",
      "SELECT * FROM orders o FULL JOIN customers c ON o.tenant_id = '1' AND c.tenant_id = '1'",
      "SELECT * FROM (orders o JOIN customers c ON true) j WHERE o.tenant_id = '1' AND c.tenant_id = '1'",
      "SELECT * FROM orders AS o(a, b, tenant_id) WHERE o.tenant_id = '1'",
      "SELECT (SELECT count(*) FROM customers) FROM orders WHERE orders.tenant_id = '1'",
      "WITH x AS (SELECT 1) SELECT * FROM x, orders",
      "WITH a AS (SELECT * FROM orders), orders AS (SELECT 1) SELECT * FROM a",
      "UPDATE orders SET amount = 1",
      "UPDATE orders SET tenant_id = '1' WHERE orders.tenant_id = '1'",
      "DELETE FROM orders o USING customers c WHERE o.tenant_id = '1'",
      "INSERT INTO orders (id) VALUES (1)",
      "INSERT INTO orders (id, tenant_id) VALUES (1, '1'), (2, '2')",
      "INSERT INTO orders (id, tenant_id) SELECT 1, '2'",
      "INSERT INTO orders (id, tenant_id, amount) VALUES ((ROW(5, 2)).*, '1')",
      "INSERT INTO orders (id, tenant_id, amount) SELECT v.*, '1' FROM (VALUES (6, 2)) v(a, b)",
      "INSERT INTO orders (id, amount) VALUES (1, 10) ON CONFLICT (id) DO UPDATE SET amount = 1",
      "MERGE INTO orders o USING customers c ON o.id = c.id AND o.tenant_id = '1' WHEN MATCHED THEN DELETE",
      "MERGE INTO orders o USING (SELECT 1 AS id) c ON o.id = c.id WHEN MATCHED THEN DELETE",
      "MERGE INTO orders o USING (SELECT 1 AS a, 2 AS b) s ON o.id = s.a AND o.tenant_id = '1' "
      "WHEN NOT MATCHED THEN INSERT (id, tenant_id, amount) VALUES (s.*, '1')",
      "COPY orders TO STDOUT",
      "COPY orders (id) FROM STDIN",
      "SELECT * FROM audit_log",
      "SELECT * FROM other.countries",
      "INSERT INTO countries (code) VALUES ('xx')",
      "COPY orders (id, tenant_id) FROM '/tmp/orders.csv'",
      "COPY orders (id, tenant_id, tenant_id) FROM STDIN",
      "INSERT INTO orders (id, tenant_id) VALUES (1, $1)",
  };
  for (const auto& sql : bad) {
    EXPECT_FALSE(independent_problems(sql).empty()) << sql;
  }
  const std::vector<std::string> good = {
      "SELECT * FROM public.orders WHERE orders.tenant_id = '1'",
      "SELECT * FROM countries",
      "SELECT * FROM customers c LEFT JOIN orders o ON o.customer_id = c.id AND o.tenant_id = '1' "
      "WHERE c.tenant_id = '1'",
      "WITH orders AS (SELECT 1 AS id) SELECT * FROM orders",
      "WITH RECURSIVE a AS (SELECT * FROM orders), orders AS (SELECT 1) SELECT * FROM a",
      "INSERT INTO orders (id, tenant_id) VALUES (1, '1'), (2, 1)",
      "INSERT INTO orders (id, amount, tenant_id) SELECT s.*, '1' FROM (SELECT 1, 2) s",
      "INSERT INTO orders (id, amount, tenant_id) VALUES (1, 10, '1') ON CONFLICT (id) DO UPDATE "
      "SET amount = 1 WHERE orders.tenant_id = '1'",
      "MERGE INTO orders o USING (SELECT * FROM customers WHERE customers.tenant_id = '1') c "
      "ON o.id = c.id AND o.tenant_id = '1' WHEN NOT MATCHED THEN INSERT (id, tenant_id) VALUES (c.id, '1')",
      "COPY (SELECT * FROM orders WHERE orders.tenant_id = '1') TO STDOUT",
      "COPY orders (id, tenant_id) FROM STDIN",
      "SELECT relname FROM pg_catalog.pg_class",
  };
  for (const auto& sql : good) {
    EXPECT_EQ(join_problems(independent_problems(sql)), "") << sql;
  }
}

// ---- golden cases -----------------------------------------------------------------------------

struct Case {
  const char* name;
  const char* sql;
  const char* expected_sql;     // when allowed (may be empty: comment-only text)
  const char* expected_reason;  // non-empty: denied with exactly this reason
};

const Case kCases[] = {
    {"select_plain",
     R"sql(SELECT * FROM orders)sql",
     R"sql(SELECT * FROM public.orders WHERE orders.tenant_id = '1')sql",
     ""},
    {"select_alias",
     R"sql(SELECT o.id FROM orders o)sql",
     R"sql(SELECT o.id FROM public.orders o WHERE o.tenant_id = '1')sql",
     ""},
    {"select_alias_as_where",
     R"sql(SELECT o.id FROM orders AS o WHERE o.id = 5)sql",
     R"sql(SELECT o.id FROM public.orders o WHERE o.id = 5 AND o.tenant_id = '1')sql",
     ""},
    {"where_or_parenthesised",
     R"sql(SELECT * FROM orders WHERE id = 1 OR id = 2)sql",
     R"sql(SELECT * FROM public.orders WHERE (id = 1 OR id = 2) AND orders.tenant_id = '1')sql",
     ""},
    {"global_table_unchanged",
     R"sql(SELECT * FROM countries)sql",
     R"sql(SELECT * FROM public.countries)sql",
     ""},
    {"schema_qualified",
     R"sql(SELECT * FROM public.orders)sql",
     R"sql(SELECT * FROM public.orders WHERE orders.tenant_id = '1')sql",
     ""},
    {"quoted_lower_matches",
     R"sql(SELECT * FROM "orders")sql",
     R"sql(SELECT * FROM public.orders WHERE orders.tenant_id = '1')sql",
     ""},
    {"quoted_mixed_case_unknown",
     R"sql(SELECT * FROM "Orders")sql",
     "",
     R"sql(rowguard: table "public.Orders" is not in the policy (FROM of SELECT; rule: unknown_tables = "deny"))sql"},
    {"unknown_table",
     R"sql(SELECT * FROM audit_log)sql",
     "",
     R"sql(rowguard: table "public.audit_log" is not in the policy (FROM of SELECT; rule: unknown_tables = "deny"))sql"},
    {"other_schema_unknown",
     R"sql(SELECT * FROM other.orders)sql",
     "",
     R"sql(rowguard: table "other.orders" is not in the policy (FROM of SELECT; rule: unknown_tables = "deny"))sql"},
    {"cross_database",
     R"sql(SELECT * FROM otherdb.public.orders)sql",
     "",
     R"sql(rowguard: cross-database reference "otherdb" in FROM of SELECT (rule: cross_database))sql"},
    {"only_table",
     R"sql(SELECT * FROM ONLY orders)sql",
     R"sql(SELECT * FROM ONLY public.orders WHERE orders.tenant_id = '1')sql",
     ""},
    {"table_statement",
     R"sql(TABLE orders)sql",
     R"sql(SELECT * FROM public.orders WHERE orders.tenant_id = '1')sql",
     ""},
    {"inner_join",
     R"sql(SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id)sql",
     R"sql(SELECT * FROM public.orders o JOIN public.customers c ON CASE WHEN o.tenant_id = '1' AND c.tenant_id = '1' THEN c.id = o.customer_id END WHERE o.tenant_id = '1' AND c.tenant_id = '1')sql",
     ""},
    {"cross_join",
     R"sql(SELECT * FROM orders CROSS JOIN countries)sql",
     R"sql(SELECT * FROM public.orders CROSS JOIN public.countries WHERE orders.tenant_id = '1')sql",
     ""},
    {"comma_join",
     R"sql(SELECT * FROM orders, customers WHERE orders.customer_id = customers.id)sql",
     R"sql(SELECT * FROM public.orders, public.customers WHERE CASE WHEN orders.tenant_id = '1' AND customers.tenant_id = '1' THEN orders.customer_id = customers.id END AND orders.tenant_id = '1' AND customers.tenant_id = '1')sql",
     ""},
    {"left_join",
     R"sql(SELECT * FROM customers c LEFT JOIN orders o ON o.customer_id = c.id)sql",
     R"sql(SELECT * FROM public.customers c LEFT JOIN public.orders o ON CASE WHEN c.tenant_id = '1' AND o.tenant_id = '1' THEN o.customer_id = c.id END AND o.tenant_id = '1' WHERE c.tenant_id = '1')sql",
     ""},
    {"right_join",
     R"sql(SELECT * FROM orders o RIGHT JOIN customers c ON o.customer_id = c.id)sql",
     R"sql(SELECT * FROM public.orders o RIGHT JOIN public.customers c ON CASE WHEN o.tenant_id = '1' AND c.tenant_id = '1' THEN o.customer_id = c.id END AND o.tenant_id = '1' WHERE c.tenant_id = '1')sql",
     ""},
    {"full_join",
     R"sql(SELECT * FROM orders o FULL JOIN customers c ON o.customer_id = c.id)sql",
     R"sql(SELECT * FROM (SELECT * FROM public.orders WHERE orders.tenant_id = '1' OFFSET 0) o FULL JOIN (SELECT * FROM public.customers WHERE customers.tenant_id = '1' OFFSET 0) c ON o.customer_id = c.id)sql",
     ""},
    {"left_join_using",
     R"sql(SELECT * FROM customers LEFT JOIN orders USING (id))sql",
     R"sql(SELECT * FROM public.customers LEFT JOIN (SELECT * FROM public.orders WHERE orders.tenant_id = '1' OFFSET 0) orders USING (id) WHERE customers.tenant_id = '1')sql",
     ""},
    {"natural_left_join",
     R"sql(SELECT * FROM customers NATURAL LEFT JOIN orders)sql",
     R"sql(SELECT * FROM public.customers NATURAL LEFT JOIN (SELECT * FROM public.orders WHERE orders.tenant_id = '1' OFFSET 0) orders WHERE customers.tenant_id = '1')sql",
     ""},
    {"inner_join_using",
     R"sql(SELECT * FROM orders JOIN customers USING (id))sql",
     R"sql(SELECT * FROM public.orders JOIN public.customers USING (id) WHERE orders.tenant_id = '1' AND customers.tenant_id = '1')sql",
     ""},
    {"aliased_join",
     R"sql(SELECT * FROM (orders o JOIN customers c ON o.customer_id = c.id) AS j)sql",
     R"sql(SELECT * FROM ((SELECT * FROM public.orders WHERE orders.tenant_id = '1' OFFSET 0) o JOIN (SELECT * FROM public.customers WHERE customers.tenant_id = '1' OFFSET 0) c ON CASE WHEN o.tenant_id = '1' AND c.tenant_id = '1' THEN o.customer_id = c.id END ) j)sql",
     ""},
    {"left_join_global",
     R"sql(SELECT * FROM orders o LEFT JOIN countries k ON k.code = o.status)sql",
     R"sql(SELECT * FROM public.orders o LEFT JOIN public.countries k ON CASE WHEN o.tenant_id = '1' THEN k.code = o.status END WHERE o.tenant_id = '1')sql",
     ""},
    {"left_join_nested_nullable",
     R"sql(SELECT * FROM customers c LEFT JOIN (orders o JOIN countries k ON k.code = o.status) ON o.customer_id = c.id)sql",
     R"sql(SELECT * FROM public.customers c LEFT JOIN (public.orders o JOIN public.countries k ON CASE WHEN o.tenant_id = '1' THEN k.code = o.status END) ON CASE WHEN c.tenant_id = '1' AND o.tenant_id = '1' THEN o.customer_id = c.id END AND o.tenant_id = '1' WHERE c.tenant_id = '1')sql",
     ""},
    {"subquery_in_from",
     R"sql(SELECT * FROM (SELECT * FROM orders) s)sql",
     R"sql(SELECT * FROM (SELECT * FROM public.orders WHERE orders.tenant_id = '1' OFFSET 0) s)sql",
     ""},
    {"subquery_in_where_in",
     R"sql(SELECT * FROM customers WHERE id IN (SELECT customer_id FROM orders))sql",
     R"sql(SELECT * FROM public.customers WHERE CASE WHEN customers.tenant_id = '1' THEN id IN (SELECT customer_id FROM public.orders WHERE orders.tenant_id = '1') END AND customers.tenant_id = '1')sql",
     ""},
    {"exists_subquery",
     R"sql(SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id))sql",
     R"sql(SELECT * FROM public.customers c WHERE CASE WHEN c.tenant_id = '1' THEN EXISTS (SELECT 1 FROM public.orders o WHERE CASE WHEN o.tenant_id = '1' THEN o.customer_id = c.id END AND o.tenant_id = '1') END AND c.tenant_id = '1')sql",
     ""},
    {"any_subquery",
     R"sql(SELECT * FROM customers WHERE id = ANY (SELECT customer_id FROM orders))sql",
     R"sql(SELECT * FROM public.customers WHERE CASE WHEN customers.tenant_id = '1' THEN id = ANY (SELECT customer_id FROM public.orders WHERE orders.tenant_id = '1') END AND customers.tenant_id = '1')sql",
     ""},
    {"select_list_subquery",
     R"sql(SELECT (SELECT count(*) FROM orders) AS n)sql",
     R"sql(SELECT (SELECT count(*) FROM public.orders WHERE orders.tenant_id = '1') AS n)sql",
     ""},
    {"having_subquery",
     R"sql(SELECT customer_id FROM orders GROUP BY customer_id HAVING count(*) > (SELECT count(*) FROM customers))sql",
     R"sql(SELECT customer_id FROM public.orders WHERE orders.tenant_id = '1' GROUP BY customer_id HAVING CASE WHEN count(*) >= 0 THEN count(*) > (SELECT count(*) FROM public.customers WHERE customers.tenant_id = '1') END)sql",
     ""},
    {"lateral_subquery",
     R"sql(SELECT * FROM customers c, LATERAL (SELECT * FROM orders o WHERE o.customer_id = c.id) x)sql",
     R"sql(SELECT * FROM public.customers c, LATERAL (SELECT * FROM public.orders o WHERE CASE WHEN o.tenant_id = '1' THEN o.customer_id = c.id END AND o.tenant_id = '1' OFFSET 0) x WHERE c.tenant_id = '1')sql",
     ""},
    {"subquery_in_join_on",
     R"sql(SELECT * FROM customers c JOIN orders o ON o.id = (SELECT max(id) FROM orders))sql",
     R"sql(SELECT * FROM public.customers c JOIN public.orders o ON CASE WHEN c.tenant_id = '1' AND o.tenant_id = '1' THEN o.id = (SELECT max(id) FROM public.orders WHERE orders.tenant_id = '1') END WHERE c.tenant_id = '1' AND o.tenant_id = '1')sql",
     ""},
    {"cte_plain",
     R"sql(WITH x AS (SELECT * FROM orders) SELECT * FROM x)sql",
     R"sql(WITH x AS MATERIALIZED (SELECT * FROM public.orders WHERE orders.tenant_id = '1') SELECT * FROM x)sql",
     ""},
    {"cte_shadows_table",
     R"sql(WITH orders AS (SELECT * FROM customers) SELECT * FROM orders)sql",
     R"sql(WITH orders AS MATERIALIZED (SELECT * FROM public.customers WHERE customers.tenant_id = '1') SELECT * FROM orders)sql",
     ""},
    {"cte_self_name_is_table",
     R"sql(WITH orders AS (SELECT * FROM orders) SELECT * FROM orders)sql",
     R"sql(WITH orders AS MATERIALIZED (SELECT * FROM public.orders WHERE orders.tenant_id = '1') SELECT * FROM orders)sql",
     ""},
    {"cte_forward_reference_is_table",
     R"sql(WITH a AS (SELECT * FROM orders), orders AS (SELECT 1 AS id) SELECT * FROM a, orders)sql",
     R"sql(WITH a AS MATERIALIZED (SELECT * FROM public.orders WHERE orders.tenant_id = '1'), orders AS MATERIALIZED (SELECT 1 AS id) SELECT * FROM a, orders)sql",
     ""},
    {"cte_recursive",
     R"sql(WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT * FROM t)sql",
     R"sql(WITH RECURSIVE t(n) AS MATERIALIZED (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT * FROM t)sql",
     ""},
    {"cte_recursive_tenant_table",
     R"sql(WITH RECURSIVE r AS (SELECT id FROM customers WHERE id = 101 UNION ALL SELECT c.id FROM customers c JOIN r ON c.id = r.id + 1) SELECT * FROM r)sql",
     R"sql(WITH RECURSIVE r AS MATERIALIZED (SELECT id FROM public.customers WHERE id = 101 AND customers.tenant_id = '1' UNION ALL SELECT c.id FROM public.customers c JOIN r ON CASE WHEN c.tenant_id = '1' THEN c.id = (r.id + 1) END WHERE c.tenant_id = '1') SELECT * FROM r)sql",
     ""},
    {"cte_scope_ends_with_subquery",
     R"sql(SELECT * FROM (WITH orders AS (SELECT 1 AS id) SELECT * FROM orders) s WHERE s.id IN (SELECT id FROM orders))sql",
     R"sql(SELECT * FROM (WITH orders AS MATERIALIZED (SELECT 1 AS id) SELECT * FROM orders OFFSET 0) s WHERE s.id IN (SELECT id FROM public.orders WHERE orders.tenant_id = '1'))sql",
     ""},
    {"cte_delete_returning",
     R"sql(WITH d AS (DELETE FROM orders WHERE id = 1 RETURNING *) SELECT * FROM d)sql",
     R"sql(WITH d AS (DELETE FROM public.orders WHERE id = 1 AND orders.tenant_id = '1' RETURNING *) SELECT * FROM d)sql",
     ""},
    {"union",
     R"sql(SELECT id FROM orders UNION SELECT id FROM customers)sql",
     R"sql(SELECT id FROM public.orders WHERE orders.tenant_id = '1' UNION SELECT id FROM public.customers WHERE customers.tenant_id = '1')sql",
     ""},
    {"intersect",
     R"sql(SELECT id FROM orders INTERSECT SELECT id FROM customers)sql",
     R"sql(SELECT id FROM public.orders WHERE orders.tenant_id = '1' INTERSECT SELECT id FROM public.customers WHERE customers.tenant_id = '1')sql",
     ""},
    {"except",
     R"sql(SELECT id FROM orders EXCEPT ALL SELECT id FROM customers)sql",
     R"sql(SELECT id FROM public.orders WHERE orders.tenant_id = '1' EXCEPT ALL SELECT id FROM public.customers WHERE customers.tenant_id = '1')sql",
     ""},
    {"group_order_limit_offset",
     R"sql(SELECT customer_id, count(*) FROM orders GROUP BY customer_id ORDER BY 2 DESC LIMIT 10 OFFSET 5)sql",
     R"sql(SELECT customer_id, count(*) FROM public.orders WHERE orders.tenant_id = '1' GROUP BY customer_id ORDER BY 2 DESC LIMIT 10 OFFSET 5)sql",
     ""},
    {"distinct_on",
     R"sql(SELECT DISTINCT ON (customer_id) * FROM orders ORDER BY customer_id, id)sql",
     R"sql(SELECT DISTINCT ON (customer_id) * FROM public.orders WHERE orders.tenant_id = '1' ORDER BY customer_id, id)sql",
     ""},
    {"window_function",
     R"sql(SELECT id, row_number() OVER (PARTITION BY customer_id ORDER BY id) FROM orders)sql",
     R"sql(SELECT id, row_number() OVER (PARTITION BY customer_id ORDER BY id) FROM public.orders WHERE orders.tenant_id = '1')sql",
     ""},
    {"for_update_of",
     R"sql(SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id FOR UPDATE OF o)sql",
     R"sql(SELECT * FROM public.orders o JOIN public.customers c ON CASE WHEN o.tenant_id = '1' AND c.tenant_id = '1' THEN c.id = o.customer_id END WHERE o.tenant_id = '1' AND c.tenant_id = '1' FOR UPDATE OF o)sql",
     ""},
    {"values_list",
     R"sql(VALUES (1, 'a'), (2, 'b'))sql",
     R"sql(VALUES (1, 'a'), (2, 'b'))sql",
     ""},
    {"values_in_from",
     R"sql(SELECT * FROM (VALUES (1), (2)) v(x))sql",
     R"sql(SELECT * FROM (VALUES (1), (2)) v(x))sql",
     ""},
    {"update_where",
     R"sql(UPDATE orders SET amount = 10 WHERE id = 5)sql",
     R"sql(UPDATE public.orders SET amount = 10 WHERE id = 5 AND orders.tenant_id = '1')sql",
     ""},
    {"update_no_where",
     R"sql(UPDATE orders SET amount = 0)sql",
     R"sql(UPDATE public.orders SET amount = 0 WHERE orders.tenant_id = '1')sql",
     ""},
    {"update_where_or",
     R"sql(UPDATE orders o SET amount = 0 WHERE o.id = 1 OR o.id = 2)sql",
     R"sql(UPDATE public.orders o SET amount = 0 WHERE (o.id = 1 OR o.id = 2) AND o.tenant_id = '1')sql",
     ""},
    {"update_set_tenant_denied",
     R"sql(UPDATE orders SET tenant_id = 2 WHERE id = 5)sql",
     "",
     R"sql(rowguard: UPDATE "public.orders" SET "tenant_id": the tenant column cannot be changed (rule: tables."public.orders".column))sql"},
    {"update_multi_set_tenant_denied",
     R"sql(UPDATE orders SET (amount, tenant_id) = (1, 2))sql",
     "",
     R"sql(rowguard: UPDATE "public.orders" SET "tenant_id": the tenant column cannot be changed (rule: tables."public.orders".column))sql"},
    {"update_from",
     R"sql(UPDATE orders o SET amount = 1 FROM customers c WHERE c.id = o.customer_id)sql",
     R"sql(UPDATE public.orders o SET amount = 1 FROM public.customers c WHERE CASE WHEN o.tenant_id = '1' AND c.tenant_id = '1' THEN c.id = o.customer_id END AND o.tenant_id = '1' AND c.tenant_id = '1')sql",
     ""},
    {"update_subquery_in_set",
     R"sql(UPDATE orders SET amount = (SELECT count(*) FROM customers))sql",
     R"sql(UPDATE public.orders SET amount = (SELECT count(*) FROM public.customers WHERE customers.tenant_id = '1') WHERE orders.tenant_id = '1')sql",
     ""},
    {"update_global_denied",
     R"sql(UPDATE countries SET name = 'x')sql",
     "",
     R"sql(rowguard: UPDATE "public.countries": tenants cannot write to a global table (rule: tables."public.countries".global = true))sql"},
    {"delete_where",
     R"sql(DELETE FROM orders WHERE id = 1)sql",
     R"sql(DELETE FROM public.orders WHERE id = 1 AND orders.tenant_id = '1')sql",
     ""},
    {"delete_using",
     R"sql(DELETE FROM orders o USING customers c WHERE c.id = o.customer_id AND c.name = 'x')sql",
     R"sql(DELETE FROM public.orders o USING public.customers c WHERE CASE WHEN o.tenant_id = '1' AND c.tenant_id = '1' THEN c.id = o.customer_id END AND CASE WHEN c.tenant_id = '1' THEN c.name = 'x' END AND o.tenant_id = '1' AND c.tenant_id = '1')sql",
     ""},
    {"delete_global_denied",
     R"sql(DELETE FROM countries)sql",
     "",
     R"sql(rowguard: DELETE FROM "public.countries": tenants cannot write to a global table (rule: tables."public.countries".global = true))sql"},
    {"delete_unknown_denied",
     R"sql(DELETE FROM audit_log)sql",
     "",
     R"sql(rowguard: table "public.audit_log" is not in the policy (DELETE FROM target; rule: unknown_tables = "deny"))sql"},
    {"insert_fills_tenant",
     R"sql(INSERT INTO orders (id, amount) VALUES (1, 10))sql",
     R"sql(INSERT INTO public.orders (id, amount, tenant_id) VALUES (1, 10, '1'))sql",
     ""},
    {"insert_multi_row_fills_tenant",
     R"sql(INSERT INTO orders (id, amount) VALUES (1, 10), (2, 20))sql",
     R"sql(INSERT INTO public.orders (id, amount, tenant_id) VALUES (1, 10, '1'), (2, 20, '1'))sql",
     ""},
    {"insert_tenant_string",
     R"sql(INSERT INTO orders (id, tenant_id, amount) VALUES (1, '1', 10))sql",
     R"sql(INSERT INTO public.orders (id, tenant_id, amount) VALUES (1, '1', 10))sql",
     ""},
    {"insert_tenant_integer",
     R"sql(INSERT INTO orders (tenant_id, id, amount) VALUES (1, 1, 10))sql",
     R"sql(INSERT INTO public.orders (tenant_id, id, amount) VALUES (1, 1, 10))sql",
     ""},
    {"insert_returning",
     R"sql(INSERT INTO customers (id, name) VALUES (1, 'x') RETURNING id)sql",
     R"sql(INSERT INTO public.customers (id, name, tenant_id) VALUES (1, 'x', '1') RETURNING id)sql",
     ""},
    {"insert_other_tenant_denied",
     R"sql(INSERT INTO orders (id, tenant_id, amount) VALUES (1, 2, 10))sql",
     "",
     R"sql(rowguard: INSERT INTO "public.orders" sets "tenant_id" to a value other than the session tenant '1' (rule: tables."public.orders".column))sql"},
    {"insert_other_tenant_second_row_denied",
     R"sql(INSERT INTO orders (id, tenant_id) VALUES (1, '1'), (2, '2'))sql",
     "",
     R"sql(rowguard: INSERT INTO "public.orders" sets "tenant_id" to a value other than the session tenant '1' (rule: tables."public.orders".column))sql"},
    {"insert_default_tenant_filled",  // DEFAULT for the tenant column: filled in as when left out
     R"sql(INSERT INTO orders (id, tenant_id) VALUES (1, DEFAULT))sql",
     R"sql(INSERT INTO public.orders (id, tenant_id) VALUES (1, '1'))sql",
     ""},
    {"insert_null_tenant_denied",
     R"sql(INSERT INTO orders (id, tenant_id) VALUES (1, NULL))sql",
     "",
     R"sql(rowguard: INSERT INTO "public.orders" sets "tenant_id" to a value other than the session tenant '1' (rule: tables."public.orders".column))sql"},
    {"insert_no_column_list_denied",
     R"sql(INSERT INTO orders VALUES (1, 1, NULL, 10, 'new'))sql",
     "",
     R"sql(rowguard: INSERT INTO "public.orders" without a column list: the schema snapshot does not know the table's columns; name the columns, so that rowguard can check the tenant column "tenant_id" (rule: tables."public.orders".column))sql"},
    {"insert_default_values",
     R"sql(INSERT INTO orders DEFAULT VALUES)sql",
     R"sql(INSERT INTO public.orders (tenant_id) VALUES ('1'))sql",
     ""},
    {"insert_global_denied",
     R"sql(INSERT INTO countries (code, name) VALUES ('xx', 'X'))sql",
     "",
     R"sql(rowguard: INSERT INTO "public.countries": tenants cannot write to a global table (rule: tables."public.countries".global = true))sql"},
    {"insert_unknown_denied",
     R"sql(INSERT INTO audit_log (event) VALUES ('x'))sql",
     "",
     R"sql(rowguard: table "public.audit_log" is not in the policy (INSERT INTO target; rule: unknown_tables = "deny"))sql"},
    {"insert_subquery_in_values",
     R"sql(INSERT INTO orders (id, amount) VALUES (1, (SELECT max(amount) FROM orders)))sql",
     R"sql(INSERT INTO public.orders (id, amount, tenant_id) VALUES (1, (SELECT max(amount) FROM public.orders WHERE orders.tenant_id = '1'), '1'))sql",
     ""},
    {"multi_statement_allowed",
     R"sql(SELECT 1; SELECT * FROM orders)sql",
     R"sql(SELECT 1; SELECT * FROM public.orders WHERE orders.tenant_id = '1')sql",
     ""},
    {"multi_statement_one_denied",
     R"sql(SELECT * FROM orders; DROP TABLE orders)sql",
     "",
     R"sql(rowguard: DropStmt is not allowed for tenants (rule: only SELECT, INSERT, UPDATE, DELETE, transaction control, SET/SHOW of session settings, DEALLOCATE and EXPLAIN))sql"},
    {"begin",
     R"sql(BEGIN)sql",
     R"sql(BEGIN)sql",
     ""},
    {"commit",
     R"sql(COMMIT)sql",
     R"sql(COMMIT)sql",
     ""},
    {"rollback",
     R"sql(ROLLBACK)sql",
     R"sql(ROLLBACK)sql",
     ""},
    {"savepoint",
     R"sql(SAVEPOINT s1)sql",
     R"sql(SAVEPOINT s1)sql",
     ""},
    {"release_savepoint",
     R"sql(RELEASE SAVEPOINT s1)sql",
     R"sql(RELEASE s1)sql",
     ""},
    {"rollback_to_savepoint",
     R"sql(ROLLBACK TO SAVEPOINT s1)sql",
     R"sql(ROLLBACK TO SAVEPOINT s1)sql",
     ""},
    {"prepare_transaction_denied",
     R"sql(PREPARE TRANSACTION 'x')sql",
     "",
     R"sql(rowguard: two-phase commit (PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED) is not allowed for tenants (rule: statement_kinds))sql"},
    {"set_application_name",
     R"sql(SET application_name = 'app')sql",
     R"sql(SET application_name TO app)sql",
     ""},
    {"set_time_zone",
     R"sql(SET TIME ZONE 'UTC')sql",
     R"sql(SET timezone TO "UTC")sql",
     ""},
    {"set_client_encoding_utf8",
     R"sql(SET client_encoding = 'UTF8')sql",
     R"sql(SET client_encoding TO "UTF8")sql",
     ""},
    {"set_transaction_isolation",
     R"sql(SET TRANSACTION ISOLATION LEVEL SERIALIZABLE)sql",
     R"sql(SET TRANSACTION ISOLATION LEVEL SERIALIZABLE)sql",
     ""},
    {"set_search_path_denied",
     R"sql(SET search_path = evil, public)sql",
     "",
     R"sql(rowguard: SET search_path may only be set to public, the path rowguard pins for tenant sessions: another path would change which tables and functions unqualified names resolve to (rule: only session settings that cannot change name resolution, identity, string parsing or the tenant))sql"},
    {"set_schema_denied",
     R"sql(SET SCHEMA 'evil')sql",
     "",
     R"sql(rowguard: SET search_path may only be set to public, the path rowguard pins for tenant sessions: another path would change which tables and functions unqualified names resolve to (rule: only session settings that cannot change name resolution, identity, string parsing or the tenant))sql"},
    {"set_role_denied",
     R"sql(SET ROLE admin)sql",
     "",
     R"sql(rowguard: SET role is not allowed for tenants: it changes the identity the server checks privileges against (rule: only session settings that cannot change name resolution, identity, string parsing or the tenant))sql"},
    {"set_session_authorization_denied",
     R"sql(SET SESSION AUTHORIZATION admin)sql",
     "",
     R"sql(rowguard: SET session_authorization is not allowed for tenants: it changes the identity the server checks privileges against (rule: only session settings that cannot change name resolution, identity, string parsing or the tenant))sql"},
    {"reset_all_denied",
     R"sql(RESET ALL)sql",
     "",
     R"sql(rowguard: RESET ALL is not allowed for tenants (reset settings one by one) (rule: only session settings that cannot change name resolution, identity, string parsing or the tenant))sql"},
    {"set_standard_conforming_strings_denied",
     R"sql(SET standard_conforming_strings = off)sql",
     "",
     R"sql(rowguard: SET standard_conforming_strings may only be set to on (the value rowguard requires): off would change how the server reads backslashes in string literals, rowguard's own tenant literals included (rule: only session settings that cannot change name resolution, identity, string parsing or the tenant))sql"},
    {"set_client_encoding_sjis_denied",
     R"sql(SET client_encoding = 'SJIS')sql",
     "",
     R"sql(rowguard: client_encoding must be UTF8 (or SQL_ASCII): the server converts a statement in another encoding and would read its names and literals differently from the statement checker (rule: only session settings that cannot change name resolution, identity, string parsing or the tenant))sql"},
    {"set_names_sjis_denied",
     R"sql(SET NAMES 'SJIS')sql",
     "",
     R"sql(rowguard: client_encoding must be UTF8 (or SQL_ASCII): the server converts a statement in another encoding and would read its names and literals differently from the statement checker (rule: only session settings that cannot change name resolution, identity, string parsing or the tenant))sql"},
    {"show",
     R"sql(SHOW application_name)sql",
     R"sql(SHOW application_name)sql",
     ""},
    {"explain",
     R"sql(EXPLAIN (COSTS OFF) SELECT * FROM orders)sql",
     R"sql(EXPLAIN (COSTS OFF) SELECT * FROM public.orders WHERE orders.tenant_id = '1')sql",
     ""},
    {"explain_analyze_denied",
     R"sql(EXPLAIN ANALYZE SELECT * FROM orders)sql",
     "",
     R"sql(rowguard: EXPLAIN ANALYZE shows other tenants' row counts (Rows Removed by Filter); use EXPLAIN without ANALYZE (rule: no EXPLAIN ANALYZE for tenants))sql"},
    {"explain_analyze_option_denied",
     R"sql(EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM orders)sql",
     "",
     R"sql(rowguard: EXPLAIN ANALYZE shows other tenants' row counts (Rows Removed by Filter); use EXPLAIN without ANALYZE (rule: no EXPLAIN ANALYZE for tenants))sql"},
    {"create_table_denied",
     R"sql(CREATE TABLE x (a int))sql",
     "",
     R"sql(rowguard: CreateStmt is not allowed for tenants (rule: only SELECT, INSERT, UPDATE, DELETE, transaction control, SET/SHOW of session settings, DEALLOCATE and EXPLAIN))sql"},
    {"alter_table_denied",
     R"sql(ALTER TABLE orders ADD COLUMN x int)sql",
     "",
     R"sql(rowguard: AlterTableStmt is not allowed for tenants (rule: only SELECT, INSERT, UPDATE, DELETE, transaction control, SET/SHOW of session settings, DEALLOCATE and EXPLAIN))sql"},
    {"drop_table_denied",
     R"sql(DROP TABLE orders)sql",
     "",
     R"sql(rowguard: DropStmt is not allowed for tenants (rule: only SELECT, INSERT, UPDATE, DELETE, transaction control, SET/SHOW of session settings, DEALLOCATE and EXPLAIN))sql"},
    {"truncate_denied",
     R"sql(TRUNCATE orders)sql",
     "",
     R"sql(rowguard: TruncateStmt is not allowed for tenants (rule: only SELECT, INSERT, UPDATE, DELETE, transaction control, SET/SHOW of session settings, DEALLOCATE and EXPLAIN))sql"},
    {"grant_denied",
     R"sql(GRANT SELECT ON orders TO PUBLIC)sql",
     "",
     R"sql(rowguard: GrantStmt is not allowed for tenants (rule: only SELECT, INSERT, UPDATE, DELETE, transaction control, SET/SHOW of session settings, DEALLOCATE and EXPLAIN))sql"},
    {"do_block_denied",
     R"sql(DO $$ BEGIN PERFORM 1; END $$)sql",
     "",
     R"sql(rowguard: DoStmt is not allowed for tenants (rule: only SELECT, INSERT, UPDATE, DELETE, transaction control, SET/SHOW of session settings, DEALLOCATE and EXPLAIN))sql"},
    // SQL-level prepared statements: the statement of a PREPARE is rewritten like a Parse text;
    // EXECUTE arguments are walked like any expression (the session checks them against the
    // statement's tenant parameters).
    {"prepare_select",
     R"sql(PREPARE p AS SELECT * FROM orders WHERE id = $1)sql",
     R"sql(PREPARE p AS SELECT * FROM public.orders WHERE CASE WHEN orders.tenant_id = '1' THEN id = $1 END AND orders.tenant_id = '1')sql",
     ""},
    {"prepare_insert_fills_tenant",
     R"sql(PREPARE p(int) AS INSERT INTO orders (id) VALUES ($1))sql",
     R"sql(PREPARE p(int) AS INSERT INTO public.orders (id, tenant_id) VALUES ($1, '1'))sql",
     ""},
    {"prepare_update_join",
     R"sql(PREPARE u AS UPDATE orders o SET amount = $1 FROM customers c WHERE c.id = o.customer_id)sql",
     R"sql(PREPARE u AS UPDATE public.orders o SET amount = $1 FROM public.customers c WHERE CASE WHEN o.tenant_id = '1' AND c.tenant_id = '1' THEN c.id = o.customer_id END AND o.tenant_id = '1' AND c.tenant_id = '1')sql",
     ""},
    {"prepare_unknown_table_denied",
     R"sql(PREPARE p AS SELECT * FROM audit_log)sql",
     "",
     R"sql(rowguard: table "public.audit_log" is not in the policy (FROM of SELECT; rule: unknown_tables = "deny"))sql"},
    {"prepare_other_tenant_literal_denied",
     R"sql(PREPARE p AS INSERT INTO orders (id, tenant_id) VALUES ($1, '2'))sql",
     "",
     R"sql(rowguard: INSERT INTO "public.orders" sets "tenant_id" to a value other than the session tenant '1' (rule: tables."public.orders".column))sql"},
    {"prepare_tenant_param_declared_bool_denied",
     R"sql(PREPARE p(int, bool) AS INSERT INTO orders (id, tenant_id) VALUES ($1, $2))sql",
     "",
     R"sql(rowguard: PREPARE "p": parameter $2 feeds the tenant column but is declared with a type rowguard cannot check (declare it as int2/int4/int8/text/varchar/uuid, or leave it undeclared) (rule: tenant_parameter_types))sql"},
    {"prepare_function_denied",
     R"sql(PREPARE p AS SELECT pg_read_file($1))sql",
     "",
     R"sql(rowguard: function "pg_read_file" is not allowed (rule: builtin allowlist and [functions] allow))sql"},
    {"execute_literals",
     R"sql(EXECUTE p(1, '1'))sql",
     R"sql(EXECUTE p(1, '1'))sql",
     ""},
    {"execute_subquery_filtered",
     R"sql(EXECUTE p((SELECT max(id) FROM orders), '1'))sql",
     R"sql(EXECUTE p((SELECT max(id) FROM public.orders WHERE orders.tenant_id = '1'), '1'))sql",
     ""},
    {"execute_subquery_unknown_table_denied",
     R"sql(EXECUTE p((SELECT 1 FROM audit_log)))sql",
     "",
     R"sql(rowguard: table "public.audit_log" is not in the policy (FROM of SELECT; rule: unknown_tables = "deny"))sql"},
    {"execute_function_denied",
     R"sql(EXECUTE p(pg_read_file('/etc/passwd')))sql",
     "",
     R"sql(rowguard: function "pg_read_file" is not allowed (rule: builtin allowlist and [functions] allow))sql"},
    {"explain_execute",
     R"sql(EXPLAIN (COSTS OFF) EXECUTE p(1))sql",
     R"sql(EXPLAIN (COSTS OFF) EXECUTE p(1))sql",
     ""},
    {"explain_analyze_execute_denied",
     R"sql(EXPLAIN ANALYZE EXECUTE p(1))sql",
     "",
     R"sql(rowguard: EXPLAIN ANALYZE shows other tenants' row counts (Rows Removed by Filter); use EXPLAIN without ANALYZE (rule: no EXPLAIN ANALYZE for tenants))sql"},
    {"create_table_as_execute_denied",
     R"sql(CREATE TABLE t AS EXECUTE p(1))sql",
     "",
     R"sql(rowguard: CreateTableAsStmt is not allowed for tenants (rule: only SELECT, INSERT, UPDATE, DELETE, transaction control, SET/SHOW of session settings, DEALLOCATE and EXPLAIN))sql"},
    {"deallocate_name",
     R"sql(DEALLOCATE PREPARE p)sql",
     R"sql(DEALLOCATE p)sql",
     ""},
    {"fn_count",
     R"sql(SELECT count(*) FROM orders)sql",
     R"sql(SELECT count(*) FROM public.orders WHERE orders.tenant_id = '1')sql",
     ""},
    {"fn_lower",
     R"sql(SELECT lower(name) FROM customers)sql",
     R"sql(SELECT lower(name) FROM public.customers WHERE customers.tenant_id = '1')sql",
     ""},
    {"fn_now",
     R"sql(SELECT now())sql",
     R"sql(SELECT now())sql",
     ""},
    {"fn_query_to_xml_denied",
     R"sql(SELECT query_to_xml('select * from orders', true, true, ''))sql",
     "",
     R"sql(rowguard: function "query_to_xml" is not allowed (rule: builtin allowlist and [functions] allow))sql"},
    {"fn_pg_read_file_denied",
     R"sql(SELECT pg_read_file('/etc/passwd'))sql",
     "",
     R"sql(rowguard: function "pg_read_file" is not allowed (rule: builtin allowlist and [functions] allow))sql"},
    {"fn_dblink_denied",
     R"sql(SELECT * FROM dblink('host=x', 'select 1') AS t(a int))sql",
     "",
     R"sql(rowguard: function "dblink" is not allowed (rule: builtin allowlist and [functions] allow))sql"},
    {"fn_lo_import_denied",
     R"sql(SELECT lo_import('/etc/passwd'))sql",
     "",
     R"sql(rowguard: function "lo_import" is not allowed (rule: builtin allowlist and [functions] allow))sql"},
    {"fn_set_config_denied",
     R"sql(SELECT set_config('search_path', 'evil', false))sql",
     "",
     R"sql(rowguard: function "set_config" is not allowed (rule: builtin allowlist and [functions] allow))sql"},
    {"fn_pg_sleep_denied",
     R"sql(SELECT pg_sleep(1))sql",
     "",
     R"sql(rowguard: function "pg_sleep" is not allowed (rule: builtin allowlist and [functions] allow))sql"},
    {"fn_user_function_denied",
     R"sql(SELECT my_fn())sql",
     "",
     R"sql(rowguard: function "my_fn" is not allowed (rule: builtin allowlist and [functions] allow))sql"},
    {"fn_public_safe_fn",
     R"sql(SELECT public.safe_fn(1))sql",
     R"sql(SELECT public.safe_fn(1))sql",
     ""},
    {"fn_unqualified_safe_fn",
     R"sql(SELECT safe_fn(1))sql",
     R"sql(SELECT safe_fn(1))sql",
     ""},
    {"fn_pg_catalog_lower",
     R"sql(SELECT pg_catalog.lower('A'))sql",
     R"sql(SELECT pg_catalog.lower('A'))sql",
     ""},
    {"fn_public_lower_denied",
     R"sql(SELECT public.lower('A'))sql",
     "",
     R"sql(rowguard: function "public.lower" is not allowed (rule: builtin allowlist and [functions] allow))sql"},
    {"select_into_denied",
     R"sql(SELECT * INTO newtab FROM orders)sql",
     "",
     R"sql(rowguard: SELECT ... INTO creates a table (rule: no DDL for tenants))sql"},
    {"tablesample",  // more in tests/unit/constructs_test.cc
     R"sql(SELECT * FROM orders TABLESAMPLE BERNOULLI (10))sql",
     R"sql(SELECT * FROM (SELECT * FROM public.orders TABLESAMPLE bernoulli(10) WHERE orders.tenant_id = '1' OFFSET 0) orders)sql",
     ""},
    {"empty_text",
     "",
     "",
     ""},
    {"comment_only",
     R"sql(-- just a comment)sql",
     "",
     ""},
    {"syntax_error",
     R"sql(SELEC 1)sql",
     "",
     R"sql(rowguard: the statement does not parse: syntax error at or near "SELEC")sql"},
    {"nested_outer",
     R"sql(SELECT * FROM (orders a LEFT JOIN customers b ON a.customer_id = b.id) RIGHT JOIN customers c ON c.id = a.customer_id)sql",
     R"sql(SELECT * FROM public.orders a LEFT JOIN public.customers b ON CASE WHEN a.tenant_id = '1' AND b.tenant_id = '1' THEN a.customer_id = b.id END AND b.tenant_id = '1' RIGHT JOIN public.customers c ON CASE WHEN a.tenant_id = '1' AND c.tenant_id = '1' THEN c.id = a.customer_id END AND a.tenant_id = '1' WHERE c.tenant_id = '1')sql",
     ""},
    {"explain_analyse_kw",
     R"sql(EXPLAIN ANALYSE SELECT * FROM orders)sql",
     "",
     R"sql(rowguard: EXPLAIN ANALYZE shows other tenants' row counts (Rows Removed by Filter); use EXPLAIN without ANALYZE (rule: no EXPLAIN ANALYZE for tenants))sql"},
    {"explain_with_costs",
     R"sql(EXPLAIN SELECT * FROM orders WHERE status = 'x')sql",
     "",
     R"sql(rowguard: EXPLAIN shows row estimates and costs computed from every tenant's rows; use EXPLAIN (COSTS OFF) (rule: explain_costs_off))sql"},
    {"explain_costs_on_last",
     R"sql(EXPLAIN (COSTS OFF, COSTS) SELECT * FROM orders)sql",
     "",
     R"sql(rowguard: EXPLAIN shows row estimates and costs computed from every tenant's rows; use EXPLAIN (COSTS OFF) (rule: explain_costs_off))sql"},
    {"explain_costs_zero",
     R"sql(EXPLAIN (COSTS 0, FORMAT JSON) SELECT id FROM orders)sql",
     R"sql(EXPLAIN (COSTS 0, FORMAT json) SELECT id FROM public.orders WHERE orders.tenant_id = '1')sql",
     ""},
    {"explain_buffers",
     R"sql(EXPLAIN (COSTS FALSE, BUFFERS) SELECT id FROM orders)sql",
     "",
     R"sql(rowguard: EXPLAIN option buffers is not allowed for tenants (allowed: COSTS OFF, VERBOSE, FORMAT, SETTINGS; rule: explain_costs_off))sql"},
    {"explain_verbose",
     R"sql(EXPLAIN (COSTS OFF, VERBOSE) SELECT * FROM orders)sql",
     R"sql(EXPLAIN (COSTS OFF, VERBOSE) SELECT * FROM public.orders WHERE orders.tenant_id = '1')sql",
     ""},
    {"current_of",
     R"sql(DELETE FROM orders WHERE CURRENT OF c)sql",
     "",
     R"sql(rowguard: unsupported SQL construct CurrentOfExpr (rule: rowguard denies what it cannot check))sql"},
    {"xml",
     R"sql(SELECT xmlelement(name a))sql",
     R"sql(SELECT xmlelement(name a))sql",
     ""},
    {"op_qualified",
     R"sql(SELECT 1 OPERATOR(public.+) 2)sql",
     "",
     R"sql(rowguard: operator OPERATOR(public.+) is not allowed: only pg_catalog's operators (rule: builtin_operators))sql"},
    {"op_pgcat",
     R"sql(SELECT 1 OPERATOR(pg_catalog.+) 2)sql",
     R"sql(SELECT 1 OPERATOR(pg_catalog.+) 2)sql",
     ""},
    {"set_local_sp",
     R"sql(SET LOCAL search_path = evil)sql",
     "",
     R"sql(rowguard: SET search_path may only be set to public, the path rowguard pins for tenant sessions: another path would change which tables and functions unqualified names resolve to (rule: only session settings that cannot change name resolution, identity, string parsing or the tenant))sql"},
    {"reset_sp",
     R"sql(RESET search_path)sql",
     R"sql(RESET search_path)sql",
     ""},
    {"reset_role",
     R"sql(RESET ROLE)sql",
     "",
     R"sql(rowguard: SET role is not allowed for tenants: it changes the identity the server checks privileges against (rule: only session settings that cannot change name resolution, identity, string parsing or the tenant))sql"},
    {"insert_tenant_cast",
     R"sql(INSERT INTO orders (id, tenant_id) VALUES (1, '1'::int))sql",
     "",
     R"sql(rowguard: INSERT INTO "public.orders" sets "tenant_id" to a value other than the session tenant '1' (rule: tables."public.orders".column))sql"},
    {"insert_with_cte",
     R"sql(WITH x AS (SELECT * FROM orders) INSERT INTO orders (id) VALUES (1))sql",
     R"sql(WITH x AS MATERIALIZED (SELECT * FROM public.orders WHERE orders.tenant_id = '1') INSERT INTO public.orders (id, tenant_id) VALUES (1, '1'))sql",
     ""},
    {"cte_insert_returning",
     R"sql(WITH i AS (INSERT INTO orders (id) VALUES (1) RETURNING *) SELECT * FROM i)sql",
     R"sql(WITH i AS (INSERT INTO public.orders (id, tenant_id) VALUES (1, '1') RETURNING *) SELECT * FROM i)sql",
     ""},
    {"cte_update",
     R"sql(WITH u AS (UPDATE orders SET amount = 1 RETURNING *) SELECT * FROM u)sql",
     R"sql(WITH u AS (UPDATE public.orders SET amount = 1 WHERE orders.tenant_id = '1' RETURNING *) SELECT * FROM u)sql",
     ""},
    {"join_alias_left",
     R"sql(SELECT * FROM (customers c LEFT JOIN orders o ON o.customer_id = c.id) j)sql",
     R"sql(SELECT * FROM ((SELECT * FROM public.customers WHERE customers.tenant_id = '1' OFFSET 0) c LEFT JOIN (SELECT * FROM public.orders WHERE orders.tenant_id = '1' OFFSET 0) o ON CASE WHEN c.tenant_id = '1' AND o.tenant_id = '1' THEN o.customer_id = c.id END AND o.tenant_id = '1' ) j)sql",
     ""},
    {"recursive_forward",
     R"sql(WITH RECURSIVE a AS (SELECT * FROM orders), orders AS (SELECT 1 AS id) SELECT * FROM a)sql",
     R"sql(WITH RECURSIVE a AS MATERIALIZED (SELECT * FROM orders), orders AS MATERIALIZED (SELECT 1 AS id) SELECT * FROM a)sql",
     ""},
    {"full_join_using",
     R"sql(SELECT * FROM orders FULL JOIN customers USING (id))sql",
     R"sql(SELECT * FROM (SELECT * FROM public.orders WHERE orders.tenant_id = '1' OFFSET 0) orders FULL JOIN (SELECT * FROM public.customers WHERE customers.tenant_id = '1' OFFSET 0) customers USING (id))sql",
     ""},
    {"right_join_using",
     R"sql(SELECT * FROM orders RIGHT JOIN customers USING (id))sql",
     R"sql(SELECT * FROM (SELECT * FROM public.orders WHERE orders.tenant_id = '1' OFFSET 0) orders RIGHT JOIN public.customers USING (id) WHERE customers.tenant_id = '1')sql",
     ""},
    {"lateral_join",
     R"sql(SELECT * FROM customers c LEFT JOIN LATERAL (SELECT * FROM orders o WHERE o.customer_id = c.id) x ON true)sql",
     R"sql(SELECT * FROM public.customers c LEFT JOIN LATERAL (SELECT * FROM public.orders o WHERE CASE WHEN o.tenant_id = '1' THEN o.customer_id = c.id END AND o.tenant_id = '1' OFFSET 0) x ON true WHERE c.tenant_id = '1')sql",
     ""},
    {"schema_pg_catalog_table",
     R"sql(SELECT * FROM pg_catalog.pg_class)sql",
     R"sql(SELECT * FROM (SELECT oid, relname, relnamespace, reltype, reloftype, relowner, relam, relfilenode, reltablespace, 0::int AS relpages, (-1)::real AS reltuples, 0::int AS relallvisible, reltoastrelid, relhasindex, relisshared, relpersistence, relkind, relnatts, relchecks, relhasrules, relhastriggers, relhassubclass, relrowsecurity, relforcerowsecurity, relispopulated, relreplident, relispartition, relrewrite, '0'::text AS relfrozenxid, '0'::text AS relminmxid, relacl, reloptions, relpartbound FROM pg_catalog.pg_class) pg_class)sql",
     ""},
    {"start_tx",
     R"sql(START TRANSACTION ISOLATION LEVEL REPEATABLE READ)sql",
     R"sql(START TRANSACTION ISOLATION LEVEL REPEATABLE READ)sql",
     ""},
    {"commit_prepared",
     R"sql(COMMIT PREPARED 'x')sql",
     "",
     R"sql(rowguard: two-phase commit (PREPARE TRANSACTION / COMMIT PREPARED / ROLLBACK PREPARED) is not allowed for tenants (rule: statement_kinds))sql"},
    {"insert_tenant_uppercase_col",
     R"sql(INSERT INTO orders (id, "Tenant_id") VALUES (1, 2))sql",
     R"sql(INSERT INTO public.orders (id, "Tenant_id", tenant_id) VALUES (1, 2, '1'))sql",
     ""},
    {"set_app_upper",
     R"sql(SET application_name = 'MyApp')sql",
     R"sql(SET application_name TO "MyApp")sql",
     ""},
    {"join_alias_cols",
     R"sql(SELECT * FROM (orders o JOIN customers c ON o.customer_id = c.id) AS j(a, b))sql",
     R"sql(SELECT * FROM ((SELECT * FROM public.orders WHERE orders.tenant_id = '1' OFFSET 0) o JOIN (SELECT * FROM public.customers WHERE customers.tenant_id = '1' OFFSET 0) c ON CASE WHEN o.tenant_id = '1' AND c.tenant_id = '1' THEN o.customer_id = c.id END ) j(a, b))sql",
     ""},
    {"sub_alias_cols",
     R"sql(SELECT * FROM (SELECT * FROM orders) s(x, tenant_id))sql",
     R"sql(SELECT * FROM (SELECT * FROM public.orders WHERE orders.tenant_id = '1' OFFSET 0) s(x, tenant_id))sql",
     ""},
    {"union_paren_cte",
     R"sql((WITH orders AS (SELECT 1 AS id) SELECT * FROM orders) UNION SELECT id FROM orders)sql",
     R"sql((WITH orders AS MATERIALIZED (SELECT 1 AS id) SELECT * FROM orders) UNION SELECT id FROM public.orders WHERE orders.tenant_id = '1')sql",
     ""},
    {"with_union_cte",
     R"sql(WITH orders AS (SELECT 1 AS id) SELECT * FROM orders UNION SELECT id FROM orders)sql",
     R"sql(WITH orders AS MATERIALIZED (SELECT 1 AS id) SELECT * FROM orders UNION SELECT id FROM orders)sql",
     ""},
    {"cte_in_cte",
     R"sql(WITH a AS (WITH orders AS (SELECT 1 AS id) SELECT * FROM orders) SELECT * FROM a, orders)sql",
     R"sql(WITH a AS MATERIALIZED (WITH orders AS MATERIALIZED (SELECT 1 AS id) SELECT * FROM orders) SELECT * FROM a, public.orders WHERE orders.tenant_id = '1')sql",
     ""},
    {"update_from_cte_shadow",
     R"sql(WITH customers AS (SELECT 1 AS id) UPDATE orders SET amount = 1 FROM customers WHERE customers.id = orders.customer_id)sql",
     R"sql(WITH customers AS MATERIALIZED (SELECT 1 AS id) UPDATE public.orders SET amount = 1 FROM customers WHERE CASE WHEN orders.tenant_id = '1' THEN customers.id = orders.customer_id END AND orders.tenant_id = '1')sql",
     ""},
    {"escaped_string",
     R"sql(SELECT * FROM customers WHERE name = E'a\'b')sql",
     R"sql(SELECT * FROM public.customers WHERE CASE WHEN customers.tenant_id = '1' THEN name = 'a''b' END AND customers.tenant_id = '1')sql",
     ""},
    {"insert_cols_dup_tenant",
     R"sql(INSERT INTO orders (tenant_id, tenant_id) VALUES ('1', '2'))sql",
     "",
     R"sql(rowguard: INSERT INTO "public.orders" assigns the tenant column in an unsupported way (rule: tables."public.orders".column))sql"},
    // Was allowed: a tenant's row lock on a shared global row blocks other tenants (and NOWAIT /
    // SKIP LOCKED shows their activity). Red-team finding; refused now.
    {"select_lock_of_global",
     R"sql(SELECT * FROM orders o, countries k FOR UPDATE OF o, k)sql",
     "",
     R"sql(rowguard: FROM of SELECT: SELECT ... FOR UPDATE/SHARE would lock rows of the global table "public.countries", which every tenant shares: a row lock is a write, it blocks other tenants and NOWAIT/SKIP LOCKED would show their activity (rule: tables."public.countries".global = true; read the global table in a query without FOR UPDATE/SHARE))sql"},
    {"select_lock_global_in_subquery",
     R"sql(SELECT * FROM (SELECT * FROM countries) s FOR KEY SHARE OF s)sql",
     "",
     R"sql(rowguard: FROM of SELECT: SELECT ... FOR UPDATE/SHARE would lock rows of the global table "public.countries", which every tenant shares: a row lock is a write, it blocks other tenants and NOWAIT/SKIP LOCKED would show their activity (rule: tables."public.countries".global = true; read the global table in a query without FOR UPDATE/SHARE))sql"},
    {"select_global_without_lock_beside_locked_tenant_rows",
     R"sql(SELECT * FROM orders o WHERE o.customer_id IN (SELECT 1 FROM countries) FOR UPDATE)sql",
     R"sql(SELECT * FROM public.orders o WHERE CASE WHEN o.tenant_id = '1' THEN o.customer_id IN (SELECT 1 FROM public.countries) END AND o.tenant_id = '1' FOR UPDATE)sql",
     ""},
    {"explain_insert",
     R"sql(EXPLAIN (COSTS OFF) INSERT INTO orders (id) VALUES (1))sql",
     R"sql(EXPLAIN (COSTS OFF) INSERT INTO public.orders (id, tenant_id) VALUES (1, '1'))sql",
     ""},
    {"create_table_as",
     R"sql(CREATE TABLE t AS SELECT * FROM orders)sql",
     "",
     R"sql(rowguard: CreateTableAsStmt is not allowed for tenants (rule: only SELECT, INSERT, UPDATE, DELETE, transaction control, SET/SHOW of session settings, DEALLOCATE and EXPLAIN))sql"},
    {"call",
     R"sql(CALL my_proc())sql",
     "",
     R"sql(rowguard: CallStmt is not allowed for tenants (rule: only SELECT, INSERT, UPDATE, DELETE, transaction control, SET/SHOW of session settings, DEALLOCATE and EXPLAIN))sql"},
    {"discard_all",
     R"sql(DISCARD ALL)sql",
     R"sql(DISCARD ALL)sql",
     ""},
    {"discard_temp",
     R"sql(DISCARD TEMP)sql",
     R"sql(DISCARD TEMP)sql",
     ""},
    // Cursors: the query of DECLARE is filtered like any SELECT, at every depth; FETCH / MOVE /
    // CLOSE name a cursor of the session and carry nothing else.
    {"declare",
     R"sql(DECLARE c CURSOR FOR SELECT * FROM orders)sql",
     R"sql(DECLARE c CURSOR FOR SELECT * FROM public.orders WHERE orders.tenant_id = '1')sql",
     ""},
    {"declare_all_options",
     R"sql(DECLARE c BINARY INSENSITIVE SCROLL CURSOR WITH HOLD FOR SELECT id FROM orders o ORDER BY id)sql",
     R"sql(DECLARE c BINARY SCROLL INSENSITIVE CURSOR WITH HOLD FOR SELECT id FROM public.orders o WHERE o.tenant_id = '1' ORDER BY id)sql",
     ""},
    {"declare_no_scroll",
     R"sql(DECLARE c NO SCROLL CURSOR WITHOUT HOLD FOR SELECT * FROM countries)sql",
     R"sql(DECLARE c NO SCROLL CURSOR FOR SELECT * FROM public.countries)sql",
     ""},
    {"declare_nested",
     R"sql(DECLARE c CURSOR FOR WITH x AS (SELECT customer_id FROM orders) SELECT c.name, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) FROM customers c LEFT JOIN orders o2 ON o2.customer_id = c.id WHERE c.id IN (SELECT customer_id FROM x) UNION ALL SELECT name, 0 FROM customers)sql",
     R"sql(DECLARE c CURSOR FOR WITH x AS MATERIALIZED (SELECT customer_id FROM public.orders WHERE orders.tenant_id = '1') SELECT c.name, (SELECT count(*) FROM public.orders o WHERE CASE WHEN o.tenant_id = '1' THEN o.customer_id = c.id END AND o.tenant_id = '1') FROM public.customers c LEFT JOIN public.orders o2 ON CASE WHEN c.tenant_id = '1' AND o2.tenant_id = '1' THEN o2.customer_id = c.id END AND o2.tenant_id = '1' WHERE CASE WHEN c.tenant_id = '1' AND (o2.tenant_id = '1' OR o2.* IS NULL) THEN c.id IN (SELECT customer_id FROM x) END AND c.tenant_id = '1' UNION ALL SELECT name, 0 FROM public.customers WHERE customers.tenant_id = '1')sql",
     ""},
    {"declare_for_update",
     R"sql(DECLARE c CURSOR FOR SELECT * FROM orders FOR UPDATE)sql",
     R"sql(DECLARE c CURSOR FOR SELECT * FROM public.orders WHERE orders.tenant_id = '1' FOR UPDATE)sql",
     ""},
    {"declare_values",
     R"sql(DECLARE c CURSOR FOR VALUES (1), (2))sql",
     R"sql(DECLARE c CURSOR FOR VALUES (1), (2))sql",
     ""},
    {"declare_unknown_table",
     R"sql(DECLARE c CURSOR FOR SELECT * FROM audit_log)sql",
     "",
     R"sql(rowguard: table "public.audit_log" is not in the policy (FROM of SELECT; rule: unknown_tables = "deny"))sql"},
    {"declare_denied_function",
     R"sql(DECLARE c CURSOR FOR SELECT query_to_xml('select * from orders', true, true, ''))sql",
     "",
     R"sql(rowguard: function "query_to_xml" is not allowed (rule: builtin allowlist and [functions] allow))sql"},
    {"declare_select_into",
     R"sql(DECLARE c CURSOR FOR SELECT * INTO t FROM orders)sql",
     "",
     R"sql(rowguard: SELECT ... INTO creates a table (rule: no DDL for tenants))sql"},
    {"declare_catalog_masked",
     R"sql(DECLARE c CURSOR FOR SELECT reltuples FROM pg_class)sql",
     R"sql(DECLARE c CURSOR FOR SELECT reltuples FROM (SELECT oid, relname, relnamespace, reltype, reloftype, relowner, relam, relfilenode, reltablespace, 0::int AS relpages, (-1)::real AS reltuples, 0::int AS relallvisible, reltoastrelid, relhasindex, relisshared, relpersistence, relkind, relnatts, relchecks, relhasrules, relhastriggers, relhassubclass, relrowsecurity, relforcerowsecurity, relispopulated, relreplident, relispartition, relrewrite, '0'::text AS relfrozenxid, '0'::text AS relminmxid, relacl, reloptions, relpartbound FROM pg_catalog.pg_class) pg_class)sql",
     ""},
    {"explain_declare",
     R"sql(EXPLAIN (COSTS OFF) DECLARE c CURSOR FOR SELECT * FROM orders)sql",
     R"sql(EXPLAIN (COSTS OFF) DECLARE c CURSOR FOR SELECT * FROM public.orders WHERE orders.tenant_id = '1')sql",
     ""},
    {"explain_analyze_declare",
     R"sql(EXPLAIN ANALYZE DECLARE c CURSOR FOR SELECT * FROM orders)sql",
     "",
     R"sql(rowguard: EXPLAIN ANALYZE shows other tenants' row counts (Rows Removed by Filter); use EXPLAIN without ANALYZE (rule: no EXPLAIN ANALYZE for tenants))sql"},
    {"fetch_next",
     R"sql(FETCH c)sql",
     R"sql(FETCH c)sql",
     ""},
    {"fetch_forms",
     R"sql(FETCH 5 FROM c; FETCH ALL IN c; FETCH BACKWARD 2 FROM c; FETCH ABSOLUTE -1 FROM c; FETCH PRIOR FROM c)sql",
     R"sql(FETCH FORWARD 5 c; FETCH ALL c; FETCH BACKWARD 2 c; FETCH LAST c; FETCH PRIOR c)sql",
     ""},
    {"move",
     R"sql(MOVE FORWARD 3 IN c)sql",
     R"sql(MOVE FORWARD 3 c)sql",
     ""},
    {"close",
     R"sql(CLOSE c; CLOSE ALL)sql",
     R"sql(CLOSE c; CLOSE ALL)sql",
     ""},
    {"current_of_update",
     R"sql(UPDATE orders SET amount = 0 WHERE CURRENT OF c)sql",
     "",
     R"sql(rowguard: unsupported SQL construct CurrentOfExpr (rule: rowguard denies what it cannot check))sql"},
    {"semicolons",
     R"sql(SELECT 1;;SELECT 2;)sql",
     R"sql(SELECT 1; SELECT 2)sql",
     ""},
    {"insert_select_fills_tenant",
     R"sql(INSERT INTO orders (id, amount) SELECT id, 1 FROM customers)sql",
     R"sql(INSERT INTO public.orders (id, amount, tenant_id) SELECT rowguard_src.*, '1' FROM (SELECT id, 1 FROM public.customers WHERE customers.tenant_id = '1' OFFSET 0) rowguard_src)sql",
     ""},
    {"insert_select_tenant_literal",
     R"sql(INSERT INTO orders (id, tenant_id, amount) SELECT id, '1', 1 FROM customers)sql",
     R"sql(INSERT INTO public.orders (id, tenant_id, amount) SELECT id, '1', 1 FROM public.customers WHERE customers.tenant_id = '1')sql",
     ""},
    {"insert_select_other_tenant_denied",
     R"sql(INSERT INTO orders (id, tenant_id, amount) SELECT id, '2', 1 FROM customers)sql",
     "",
     R"sql(rowguard: INSERT INTO "public.orders" ... SELECT sets "tenant_id" to something other than the session tenant '1' (rule: tables."public.orders".column))sql"},
    {"insert_select_union_tenant_denied",
     R"sql(INSERT INTO orders (id, tenant_id) SELECT 1, '1' UNION SELECT 2, '2')sql",
     "",
     R"sql(rowguard: INSERT INTO "public.orders" ... SELECT sets "tenant_id" to something other than the session tenant '1' (rule: tables."public.orders".column))sql"},
    // ON CONFLICT needs the schema snapshot (this policy has none: refused); the rewrites with a
    // snapshot are in tests/unit/on_conflict_check_test.cc.
    {"insert_on_conflict_do_nothing",
     R"sql(INSERT INTO orders (id, amount) VALUES (1, 10) ON CONFLICT DO NOTHING)sql",
     R"sql(INSERT INTO public.orders (id, amount, tenant_id) VALUES (1, 10, '1') ON CONFLICT DO NOTHING)sql",
     ""},
    {"insert_on_conflict_do_update",
     R"sql(INSERT INTO orders AS o (id, amount) VALUES (1, 10) ON CONFLICT (tenant_id, id) DO UPDATE SET amount = excluded.amount)sql",
     R"sql(INSERT INTO public.orders AS o (id, amount, tenant_id) VALUES (1, 10, '1') ON CONFLICT (tenant_id, id) DO UPDATE SET amount = excluded.amount WHERE o.tenant_id = '1')sql",
     ""},
    {"insert_on_conflict_do_update_where",
     R"sql(INSERT INTO orders (id, amount) VALUES (1, 10) ON CONFLICT (tenant_id, id) DO UPDATE SET amount = excluded.amount WHERE orders.amount < 5)sql",
     R"sql(INSERT INTO public.orders (id, amount, tenant_id) VALUES (1, 10, '1') ON CONFLICT (tenant_id, id) DO UPDATE SET amount = excluded.amount WHERE orders.amount < 5 AND orders.tenant_id = '1')sql",
     ""},
    {"insert_on_conflict_set_tenant_denied",
     R"sql(INSERT INTO orders (id, amount) VALUES (1, 10) ON CONFLICT (id) DO UPDATE SET tenant_id = 2)sql",
     "",
     R"sql(rowguard: INSERT ... ON CONFLICT DO UPDATE "public.orders" SET "tenant_id": the tenant column cannot be changed (rule: tables."public.orders".column))sql"},
    {"merge_filters_target_and_source",
     R"sql(MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN MATCHED THEN UPDATE SET amount = 0 WHEN NOT MATCHED THEN INSERT (id, amount) VALUES (c.id, 0))sql",
     R"sql(MERGE INTO public.orders o USING (SELECT * FROM public.customers WHERE customers.tenant_id = '1' OFFSET 0) c ON CASE WHEN o.tenant_id = '1' THEN o.customer_id = c.id END AND o.tenant_id = '1' WHEN MATCHED THEN UPDATE SET amount = 0 WHEN NOT MATCHED THEN INSERT (id, amount, tenant_id) VALUES (c.id, 0, '1'))sql",
     ""},
    {"merge_set_tenant_denied",
     R"sql(MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN MATCHED THEN UPDATE SET tenant_id = 2)sql",
     "",
     R"sql(rowguard: MERGE ... UPDATE "public.orders" SET "tenant_id": the tenant column cannot be changed (rule: tables."public.orders".column))sql"},
    {"merge_insert_other_tenant_denied",
     R"sql(MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN NOT MATCHED THEN INSERT (id, tenant_id, amount) VALUES (c.id, 2, 0))sql",
     "",
     R"sql(rowguard: MERGE ... INSERT "public.orders" sets "tenant_id" to a value other than the session tenant '1' (rule: tables."public.orders".column))sql"},
    {"merge_global_denied",
     R"sql(MERGE INTO countries k USING customers c ON k.code = c.name WHEN MATCHED THEN DELETE)sql",
     "",
     R"sql(rowguard: MERGE INTO "public.countries": tenants cannot write to a global table (rule: tables."public.countries".global = true))sql"},
    {"copy_to_stdout_filtered",
     R"sql(COPY orders TO STDOUT)sql",
     R"sql(COPY (SELECT * FROM ONLY public.orders WHERE orders.tenant_id = '1') TO STDOUT)sql",
     ""},
    {"copy_query_to_stdout",
     R"sql(COPY (SELECT * FROM customers) TO STDOUT)sql",
     R"sql(COPY (SELECT * FROM public.customers WHERE customers.tenant_id = '1') TO STDOUT)sql",
     ""},
    {"copy_from_stdin_adds_tenant_column",
     R"sql(COPY orders (id, amount) FROM STDIN)sql",
     R"sql(COPY public.orders(id, amount, tenant_id) FROM STDIN)sql",
     ""},
    {"copy_from_no_column_list_without_table_columns_denied",
     R"sql(COPY orders FROM STDIN)sql",
     "",
     R"sql(rowguard: COPY "public.orders" FROM STDIN without a column list: the schema snapshot does not know the table's columns; name the columns, so that rowguard can check the tenant column "tenant_id" (rule: tables."public.orders".column))sql"},
    {"copy_from_file_denied",
     R"sql(COPY orders FROM '/etc/passwd')sql",
     "",
     R"sql(rowguard: COPY FROM a server file or program is not allowed (rule: tenants COPY only FROM STDIN / TO STDOUT))sql"},
    {"copy_to_program_denied",
     R"sql(COPY orders TO PROGRAM 'id')sql",
     "",
     R"sql(rowguard: COPY TO a server file or program is not allowed (rule: tenants COPY only FROM STDIN / TO STDOUT))sql"},
    {"copy_from_binary_denied",
     R"sql(COPY orders (id, amount) FROM STDIN WITH (FORMAT binary))sql",
     "",
     R"sql(rowguard: COPY FROM STDIN in binary format cannot be checked row by row; use text or csv (rule: copy_options))sql"},
    {"copy_encoding_denied",
     R"sql(COPY orders (id, amount) FROM STDIN WITH (ENCODING 'SJIS'))sql",
     "",
     R"sql(rowguard: COPY option encoding is not allowed for tenants (rule: copy_options))sql"},
    {"copy_into_global_denied",
     R"sql(COPY countries (code, name) FROM STDIN)sql",
     "",
     R"sql(rowguard: COPY "public.countries": tenants cannot write to a global table (rule: tables."public.countries".global = true))sql"},
    {"listen_is_tenant_private",
     R"sql(LISTEN jobs)sql",
     R"sql(LISTEN rg1_1_jobs)sql",
     ""},
    {"notify_is_tenant_private",
     R"sql(NOTIFY jobs, 'x')sql",
     R"sql(NOTIFY rg1_1_jobs, 'x')sql",
     ""},
    {"pg_notify_is_tenant_private",
     R"sql(SELECT pg_notify('jobs', 'x'))sql",
     R"sql(SELECT pg_notify('rg1_1_jobs', 'x'))sql",
     ""},
    {"pg_notify_computed_channel_denied",
     R"sql(SELECT pg_notify(name, 'x') FROM customers)sql",
     "",
     R"sql(rowguard: pg_notify needs a literal channel name (rule: channels are private to a tenant))sql"},
    {"unlisten_all",
     R"sql(UNLISTEN *)sql",
     R"sql(UNLISTEN *)sql",
     ""},
    {"catalog_pg_class_masked",
     R"sql(SELECT relname FROM pg_class)sql",
     R"sql(SELECT relname FROM (SELECT oid, relname, relnamespace, reltype, reloftype, relowner, relam, relfilenode, reltablespace, 0::int AS relpages, (-1)::real AS reltuples, 0::int AS relallvisible, reltoastrelid, relhasindex, relisshared, relpersistence, relkind, relnatts, relchecks, relhasrules, relhastriggers, relhassubclass, relrowsecurity, relforcerowsecurity, relispopulated, relreplident, relispartition, relrewrite, '0'::text AS relfrozenxid, '0'::text AS relminmxid, relacl, reloptions, relpartbound FROM pg_catalog.pg_class) pg_class)sql",
     ""},
    {"catalog_pg_namespace_readable",
     R"sql(SELECT nspname FROM pg_catalog.pg_namespace)sql",
     R"sql(SELECT nspname FROM pg_catalog.pg_namespace)sql",
     ""},
    {"catalog_pg_stats_denied",
     R"sql(SELECT * FROM pg_stats)sql",
     "",
     R"sql(rowguard: catalog "pg_catalog.pg_stats" is denied: column statistics (most common values, histograms) hold every tenant's values (FROM of SELECT; rule: catalog_allowlist))sql"},
    {"catalog_pg_stat_activity_denied",
     R"sql(SELECT query FROM pg_stat_activity)sql",
     "",
     R"sql(rowguard: catalog "pg_catalog.pg_stat_activity" is denied: shows other sessions' queries (FROM of SELECT; rule: catalog_allowlist))sql"},
    {"catalog_information_schema_columns",
     R"sql(SELECT column_name FROM information_schema.columns)sql",
     R"sql(SELECT column_name FROM information_schema.columns)sql",
     ""},
    {"catalog_write_denied",
     R"sql(UPDATE pg_catalog.pg_class SET relname = 'x')sql",
     "",
     R"sql(rowguard: UPDATE "pg_catalog.pg_class": tenants cannot write to system catalogs (rule: catalog_allowlist))sql"},
    {"deallocate_all",
     R"sql(DEALLOCATE ALL)sql",
     R"sql(DEALLOCATE ALL)sql",
     ""},
    {"three_part_fn",
     R"sql(SELECT a.b.c())sql",
     "",
     R"sql(rowguard: function "a.b.c" is not allowed (rule: builtin allowlist and [functions] allow))sql"},
};

class RewriteGolden : public ::testing::TestWithParam<Case> {};

TEST_P(RewriteGolden, ExactOutput) {
  const Case& c = GetParam();
  const RewriteResult r = rewrite(c.sql, test_policy(), "1");
  const std::string expected_reason = c.expected_reason;
  if (!expected_reason.empty()) {
    EXPECT_FALSE(r.allowed) << "rewritten to: " << r.sql;
    EXPECT_EQ(r.reason, expected_reason);
    EXPECT_EQ(r.sql, "");
    EXPECT_TRUE(r.kinds.empty());
    return;
  }
  ASSERT_TRUE(r.allowed) << r.reason;
  EXPECT_EQ(r.sql, c.expected_sql);
  EXPECT_EQ(r.reason, "");
  if (r.sql.empty()) {
    EXPECT_TRUE(r.kinds.empty());
    return;
  }
  // The independent check of the output.
  EXPECT_EQ(join_problems(independent_problems(r.sql)), "") << "output: " << r.sql;
  // Rewriting the output again (when the rewriter accepts it) must stay safe too.
  const RewriteResult again = rewrite(r.sql, test_policy(), "1");
  if (again.allowed && !again.sql.empty()) {
    EXPECT_EQ(join_problems(independent_problems(again.sql)), "") << "output: " << again.sql;
  }
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Cases, RewriteGolden, ::testing::ValuesIn(kCases), case_name);

// Issue #17: every refusal names its rule ("rule: <name>", which the audit log and
// rowguard_denials_total{rule} report); the golden refusals are one corpus of it
// (tests/unit/refusal_rules_test.cc has one statement per deny site and scans the sources).
TEST(RewriteGoldenTable, EveryRefusalNamesItsRule) {
  int refusals = 0;
  for (const Case& c : kCases) {
    // A syntax error is the parser's ("the statement does not parse: ..."), not a refusal by rule.
    if (std::string_view(c.expected_reason).empty() ||
        std::string_view(c.expected_reason).starts_with("rowguard: the statement does not parse")) {
      continue;
    }
    ++refusals;
    EXPECT_NE(std::string_view(c.expected_reason).find("rule: "), std::string_view::npos) << c.name;
    const RewriteResult r = rewrite(c.sql, test_policy(), "1");
    EXPECT_NE(r.reason.find("rule: "), std::string::npos) << c.name << ": " << r.reason;
  }
  EXPECT_GT(refusals, 50);
}

// The template cache (rewrite_cache.h) must give exactly a fresh rewrite's result for every
// golden statement and every tenant, whichever tenant filled the entry.
TEST(RewriteGoldenTable, TemplateCacheEqualsFreshRewriteForEveryTenant) {
  const std::vector<std::string> tenants = {"1", "2", "o'brien", "a\\b'c", "Ünï ☃", "1_2", "rowguardTenantSentinel0"};
  RewriteCache cache;
  for (int pass = 0; pass < 2; ++pass) {
    for (const Case& c : kCases) {
      for (const std::string& t : tenants) {
        const RewriteResult fresh = rewrite(c.sql, test_policy(), t);
        const RewriteHandle cached = cache.rewrite(c.sql, test_policy(), t);
        EXPECT_EQ(cached->allowed, fresh.allowed) << c.name << " tenant " << t;
        EXPECT_EQ(cached->sql, fresh.sql) << c.name << " tenant " << t;
        EXPECT_EQ(cached->reason, fresh.reason) << c.name << " tenant " << t;
        EXPECT_EQ(cached->kinds, fresh.kinds) << c.name << " tenant " << t;
        EXPECT_EQ(cached->tenant_params, fresh.tenant_params) << c.name << " tenant " << t;
        EXPECT_EQ(cached->copy_in.has_value(), fresh.copy_in.has_value()) << c.name << " tenant " << t;
      }
    }
  }
  EXPECT_LT(cache.misses(), std::size(kCases) * tenants.size() / 2);
}

TEST(RewriteGoldenTable, HasEnoughCasesWithUniqueNames) {
  std::set<std::string> names;
  size_t allowed = 0, denied = 0;
  for (const Case& c : kCases) {
    EXPECT_TRUE(names.insert(c.name).second) << "duplicate case name " << c.name;
    (std::string(c.expected_reason).empty() ? allowed : denied)++;
  }
  EXPECT_GE(allowed + denied, 60u);
  EXPECT_GE(allowed, 30u);
  EXPECT_GE(denied, 30u);
}

// ---- more specific properties -----------------------------------------------------------------

TEST(Rewrite, StatementKinds) {
  const RewriteResult r = rewrite(
      "SELECT 1; INSERT INTO orders (id) VALUES (1); UPDATE orders SET amount = 1; "
      "DELETE FROM orders; BEGIN; SET application_name = 'x'; SHOW application_name; "
      "EXPLAIN (COSTS OFF) SELECT 1",
      test_policy(), "1");
  ASSERT_TRUE(r.allowed) << r.reason;
  EXPECT_EQ(r.kinds, (std::vector<StatementKind>{
                         StatementKind::kSelect, StatementKind::kInsert, StatementKind::kUpdate,
                         StatementKind::kDelete, StatementKind::kTransaction, StatementKind::kSet,
                         StatementKind::kShow, StatementKind::kExplain}));
}

TEST(Rewrite, TenantParamsAreReportedForBindCheck) {
  const RewriteResult r =
      rewrite("INSERT INTO orders (id, tenant_id) VALUES ($1, $2), ($3, $4::int)", test_policy(), "1");
  ASSERT_TRUE(r.allowed) << r.reason;
  EXPECT_EQ(r.sql, "INSERT INTO public.orders (id, tenant_id) VALUES ($1, $2), ($3, $4::int)");
  EXPECT_EQ(r.tenant_params, (std::vector<int>{2, 4}));

  const RewriteResult plain = rewrite("INSERT INTO orders (id) VALUES ($1)", test_policy(), "1");
  ASSERT_TRUE(plain.allowed) << plain.reason;
  EXPECT_TRUE(plain.tenant_params.empty());
  EXPECT_EQ(plain.sql, "INSERT INTO public.orders (id, tenant_id) VALUES ($1, '1')");

  // Parameters of other statements of the text are collected too, in order.
  const RewriteResult two = rewrite(
      "INSERT INTO orders (tenant_id) VALUES ($1); INSERT INTO customers (id, tenant_id) VALUES ($2, $3)",
      test_policy(), "1");
  ASSERT_TRUE(two.allowed) << two.reason;
  EXPECT_EQ(two.tenant_params, (std::vector<int>{1, 3}));
}

TEST(Rewrite, TenantParamCastToATypeThatChangesTheValueIsRefused) {
  // '1' bound to $2::bool would be stored in a text tenant column as 'true'.
  for (const char* cast : {"bool", "numeric", "money", "interval", "public.int4", "int4[]"}) {
    const std::string sql = std::string("INSERT INTO orders (id, tenant_id) VALUES ($1, $2::") + cast + ")";
    EXPECT_FALSE(rewrite(sql, test_policy(), "1").allowed) << sql;
    const std::string prepared = "PREPARE p AS " + sql;
    EXPECT_FALSE(rewrite(prepared, test_policy(), "1").allowed) << prepared;
  }
  for (const char* cast : {"int", "integer", "int2", "bigint", "int8", "text", "varchar", "uuid", "pg_catalog.int4"}) {
    const std::string sql = std::string("INSERT INTO orders (id, tenant_id) VALUES ($1, $2::") + cast + ")";
    const RewriteResult r = rewrite(sql, test_policy(), "1");
    EXPECT_TRUE(r.allowed) << sql << ": " << r.reason;
    EXPECT_EQ(r.tenant_params, (std::vector<int>{2})) << sql;
  }
}

TEST(Rewrite, PreparedStatementOpsAreReportedInOrder) {
  using Kind = PreparedStatementOp::Kind;
  const RewriteResult r = rewrite(
      "PREPARE p(int, text) AS INSERT INTO orders (id, tenant_id) VALUES ($1, $2); "
      "SELECT 1; EXECUTE p(5, '1'); EXECUTE p(-5, 1::text, 2::int, $1, 1.5, '1'::varchar(3), NULL, true); "
      "DEALLOCATE p; DEALLOCATE ALL; DISCARD ALL; EXPLAIN (COSTS OFF) EXECUTE q",
      test_policy(), "1");
  ASSERT_TRUE(r.allowed) << r.reason;
  // The PREPAREd statement's parameters are the statement's, not the text's (no Bind runs them).
  EXPECT_TRUE(r.tenant_params.empty());
  ASSERT_EQ(r.prepared.size(), 7u);
  EXPECT_EQ(r.prepared[0].kind, Kind::kPrepare);
  EXPECT_EQ(r.prepared[0].name, "p");
  EXPECT_EQ(r.prepared[0].tenant_params, (std::vector<int>{2}));
  EXPECT_EQ(r.prepared[0].param_types, (std::vector<int32_t>{23, 25}));
  EXPECT_EQ(r.prepared[0].command_tag, "PREPARE");
  EXPECT_EQ(r.prepared[1].kind, Kind::kExecute);
  EXPECT_EQ(r.prepared[1].args, (std::vector<std::optional<std::string>>{"5", "1"}));
  EXPECT_EQ(r.prepared[1].command_tag, "");
  // Only string / integer literals (cast to text or varchar at most) count as constants.
  EXPECT_EQ(r.prepared[2].args,
            (std::vector<std::optional<std::string>>{"-5", "1", std::nullopt, std::nullopt,
                                                     std::nullopt, std::nullopt, std::nullopt,
                                                     std::nullopt}));
  EXPECT_EQ(r.prepared[3].kind, Kind::kDeallocate);
  EXPECT_EQ(r.prepared[3].name, "p");
  EXPECT_EQ(r.prepared[3].command_tag, "DEALLOCATE");
  EXPECT_EQ(r.prepared[4].kind, Kind::kDeallocateAll);
  EXPECT_EQ(r.prepared[4].command_tag, "DEALLOCATE ALL");
  EXPECT_EQ(r.prepared[5].kind, Kind::kDeallocateAll);
  EXPECT_EQ(r.prepared[5].command_tag, "DISCARD ALL");
  EXPECT_EQ(r.prepared[6].kind, Kind::kExecute);
  EXPECT_EQ(r.prepared[6].name, "q");
  EXPECT_TRUE(r.prepared[6].args.empty());

  // Undeclared and unknown declared types; quoted names keep their case.
  const RewriteResult u = rewrite(
      "PREPARE \"MyStmt\"(numeric, pg_catalog.int8, public.text) AS "
      "UPDATE orders SET amount = $1, tenant_id = $4 WHERE id = $2",
      test_policy(), "1");
  ASSERT_TRUE(u.allowed) << u.reason;
  ASSERT_EQ(u.prepared.size(), 1u);
  EXPECT_EQ(u.prepared[0].name, "MyStmt");
  EXPECT_EQ(u.prepared[0].tenant_params, (std::vector<int>{4}));
  EXPECT_EQ(u.prepared[0].param_types, (std::vector<int32_t>{0, 20, 0}));
  // A denial reports nothing.
  const RewriteResult d = rewrite("PREPARE p AS SELECT 1; DROP TABLE orders", test_policy(), "1");
  EXPECT_FALSE(d.allowed);
  EXPECT_TRUE(d.prepared.empty());
}

TEST(Rewrite, OtherTenantGetsItsOwnLiteral) {
  const RewriteResult r = rewrite("SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id",
                                  test_policy(), "2");
  ASSERT_TRUE(r.allowed) << r.reason;
  EXPECT_EQ(r.sql,
            "SELECT * FROM public.orders o JOIN public.customers c ON CASE WHEN o.tenant_id = '2' AND "
            "c.tenant_id = '2' THEN c.id = o.customer_id END WHERE o.tenant_id = '2' AND c.tenant_id = '2'");
  EXPECT_EQ(join_problems(independent_problems(r.sql, "2")), "");
  // Tenant 2 may insert '2' and not '1'.
  EXPECT_TRUE(rewrite("INSERT INTO orders (id, tenant_id) VALUES (1, 2)", test_policy(), "2").allowed);
  EXPECT_FALSE(rewrite("INSERT INTO orders (id, tenant_id) VALUES (1, 1)", test_policy(), "2").allowed);
}

TEST(Rewrite, TenantValueIsQuotedAsALiteral) {
  // A tenant value with a quote must stay one string literal in the output.
  const std::string tenant = "o'brien; DROP TABLE orders; --";
  const RewriteResult r = rewrite("SELECT * FROM orders", test_policy(), tenant);
  ASSERT_TRUE(r.allowed) << r.reason;
  EXPECT_EQ(r.sql,
            "SELECT * FROM public.orders WHERE orders.tenant_id = 'o''brien; DROP TABLE orders; --'");
  ParseOutput parsed = parse_sql(r.sql);
  ASSERT_TRUE(parsed.ok) << parsed.error;
  EXPECT_EQ(parsed.tree.stmts_size(), 1);
  EXPECT_EQ(join_problems(test_support::tenant_problems(parsed.tree, oracle_options(tenant))), "");
}

TEST(Rewrite, IsDeterministic) {
  const char* sql =
      "WITH x AS (SELECT * FROM orders) SELECT * FROM x JOIN customers c ON c.id = x.customer_id "
      "LEFT JOIN orders o ON o.id = x.id";
  const RewriteResult a = rewrite(sql, test_policy(), "1");
  const RewriteResult b = rewrite(sql, test_policy(), "1");
  ASSERT_TRUE(a.allowed) << a.reason;
  EXPECT_EQ(a.sql, b.sql);
  EXPECT_EQ(join_problems(independent_problems(a.sql)), "") << a.sql;
}

TEST(Rewrite, NulByteIsDenied) {
  const RewriteResult r = rewrite(std::string_view("SELECT 1\0; DROP TABLE orders", 29), test_policy(), "1");
  EXPECT_FALSE(r.allowed);
  EXPECT_EQ(r.reason, "rowguard: the statement does not parse: statement text contains a NUL byte");
}

// A column alias list renames the table's columns by position, so `o.tenant_id` in the added
// predicate can name a different column: `orders AS o(x, y, tenant_id)` makes the third column
// (customer_id) "tenant_id" and the real tenant column "y". The rewriter must not place the
// predicate on such a reference (deny it, or filter a subquery of the table instead).
TEST(Rewrite, ColumnAliasListCannotRedirectTheTenantPredicate) {
  const std::vector<std::string> inputs = {
      "SELECT * FROM orders AS o(x, y, tenant_id)",
      "SELECT * FROM customers c(tenant_id, real_tenant)",
      "SELECT * FROM customers c LEFT JOIN orders o(a, b, tenant_id) ON o.a = c.id",
      "DELETE FROM orders o USING customers c(tenant_id) WHERE c.tenant_id = o.customer_id",
  };
  std::string failures;
  for (const auto& sql : inputs) {
    const RewriteResult r = rewrite(sql, test_policy(), "1");
    if (!r.allowed) continue;  // denying is a correct answer
    auto problems = independent_problems(r.sql);
    if (!problems.empty()) failures += "\n" + sql + "\n  -> " + r.sql + join_problems(problems);
  }
  if (!failures.empty()) {
    FAIL() << "regression (was a bug): the tenant predicate is qualified by an alias whose column list renames "
                    "tenant_id:" << failures;
  }
}

// PostgreSQL expands `x.*` / `(row).*` in a VALUES row, an INSERT ... SELECT target list and a
// MERGE INSERT VALUES list into several values, so an item before the tenant column's position
// shifts which value lands in tenant_id: `INSERT INTO orders (id, tenant_id, amount) VALUES
// ((ROW(5, 2)).*, '1')` stores id 5, tenant_id 2, amount 1 (checked on PostgreSQL 15). The
// rewriter must not accept the tenant literal at a position a star expansion can shift.
TEST(Rewrite, StarExpansionCannotShiftTheTenantValue) {
  const std::vector<std::string> inputs = {
      "INSERT INTO orders (id, tenant_id, amount) VALUES ((ROW(5, 2)).*, '1')",
      "INSERT INTO orders (id, tenant_id, amount) SELECT v.*, '1' FROM (VALUES (6, 2)) v(a, b)",
      "MERGE INTO orders o USING (SELECT 9 AS a, 2 AS b) s ON o.id = s.a "
      "WHEN NOT MATCHED THEN INSERT (id, tenant_id, amount) VALUES (s.*, '1')",
  };
  std::string failures;
  for (const auto& sql : inputs) {
    const RewriteResult r = rewrite(sql, test_policy(), "1");
    if (!r.allowed) continue;  // denying is a correct answer
    auto problems = independent_problems(r.sql);
    if (!problems.empty()) failures += "\n" + sql + "\n  -> " + r.sql + join_problems(problems);
  }
  if (!failures.empty()) {
    FAIL() << "regression (was a bug): a star expansion before the tenant column lets another tenant's value "
                    "into tenant_id:" << failures;
  }
}

// A star AFTER the checked position cannot shift it, and the rewriter's own INSERT ... SELECT
// form (tenant literal last) is aligned from the end: both stay allowed and pass the check.
TEST(Rewrite, StarExpansionThatCannotShiftIsAllowed) {
  for (const char* sql : {"INSERT INTO orders (tenant_id, id, amount) SELECT '1', v.* FROM (VALUES (6, 2)) v(a, b)",
                          "INSERT INTO orders (id, amount) SELECT v.* FROM (VALUES (6, 2)) v(a, b)"}) {
    const RewriteResult r = rewrite(sql, test_policy(), "1");
    ASSERT_TRUE(r.allowed) << sql << ": " << r.reason;
    EXPECT_EQ(join_problems(independent_problems(r.sql)), "") << r.sql;
  }
}

TEST(Rewrite, CopyFromStdinPlan) {
  const RewriteResult r = rewrite("COPY orders (id, amount) FROM STDIN WITH (FORMAT csv, HEADER)", test_policy(), "1");
  ASSERT_TRUE(r.allowed) << r.reason;
  ASSERT_TRUE(r.copy_in.has_value());
  EXPECT_TRUE(r.copy_in->csv);
  EXPECT_TRUE(r.copy_in->header);
  EXPECT_EQ(r.copy_in->delimiter, ',');
  EXPECT_EQ(r.copy_in->tenant_index, -1);
  EXPECT_EQ(r.copy_in->columns, 2);
  EXPECT_EQ(r.copy_in->tenant_column, "tenant_id");
  EXPECT_EQ(r.copy_in->table, "public.orders");
  EXPECT_EQ(r.kinds, (std::vector<StatementKind>{StatementKind::kCopyIn}));

  const RewriteResult t = rewrite("COPY orders (tenant_id, id) FROM STDIN", test_policy(), "1");
  ASSERT_TRUE(t.allowed) << t.reason;
  ASSERT_TRUE(t.copy_in.has_value());
  EXPECT_FALSE(t.copy_in->csv);
  EXPECT_EQ(t.copy_in->delimiter, '\t');
  EXPECT_EQ(t.copy_in->null_string, "\\N");
  EXPECT_EQ(t.copy_in->tenant_index, 0);
  EXPECT_EQ(t.sql, "COPY public.orders(tenant_id, id) FROM STDIN");

  const RewriteResult two = rewrite("SELECT 1; COPY orders (id) FROM STDIN", test_policy(), "1");
  EXPECT_FALSE(two.allowed);
  EXPECT_EQ(two.reason, "rowguard: COPY must be the only statement of its Query (rule: copy_options)");

  const RewriteResult out = rewrite("COPY orders TO STDOUT", test_policy(), "1");
  ASSERT_TRUE(out.allowed);
  EXPECT_FALSE(out.copy_in.has_value());
  EXPECT_EQ(out.kinds, (std::vector<StatementKind>{StatementKind::kCopyOut}));
}

TEST(Rewrite, TenantChannelsCannotCollide) {
  // tenant "1" + channel "2_x" and tenant "1_2" + channel "x" must differ upstream.
  const RewriteResult a = rewrite("LISTEN \"2_x\"", test_policy(), "1");
  const RewriteResult b = rewrite("LISTEN x", test_policy(), "1_2");
  ASSERT_TRUE(a.allowed && b.allowed);
  EXPECT_NE(a.sql, b.sql);
  EXPECT_EQ(a.sql, "LISTEN rg1_1_2_x");
  EXPECT_EQ(b.sql, "LISTEN rg3_1_2_x");
  const RewriteResult longname = rewrite("LISTEN " + std::string(60, 'c'), test_policy(), "1");
  EXPECT_FALSE(longname.allowed);
}

// ---- RewriteCache ----------------------------------------------------------------------------

TEST(RewriteCache, CountsHitsAndMisses) {
  RewriteCache cache;
  const RewriteHandle a = cache.rewrite("SELECT * FROM orders", test_policy(), "1");
  EXPECT_TRUE(a->allowed);
  EXPECT_EQ(a->sql, "SELECT * FROM public.orders WHERE orders.tenant_id = '1'");
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_EQ(cache.hits(), 0u);
  const RewriteHandle b = cache.rewrite("SELECT * FROM orders", test_policy(), "1");
  EXPECT_EQ(b->sql, a->sql);
  EXPECT_EQ(cache.misses(), 1u);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_GT(cache.bytes(), 0u);
}

TEST(RewriteCache, DenialsAreCachedToo) {
  RewriteCache cache;
  EXPECT_FALSE(cache.rewrite("DROP TABLE orders", test_policy(), "1")->allowed);
  const RewriteHandle again = cache.rewrite("DROP TABLE orders", test_policy(), "1");
  EXPECT_FALSE(again->allowed);
  EXPECT_EQ(again->reason, rewrite("DROP TABLE orders", test_policy(), "1").reason);
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.misses(), 1u);
}

TEST(RewriteCache, SameTextDifferentTenantSharesOneTemplate) {
  RewriteCache cache;
  const std::string one = cache.rewrite("SELECT * FROM customers", test_policy(), "1")->sql;
  const std::string two = cache.rewrite("SELECT * FROM customers", test_policy(), "2")->sql;
  EXPECT_EQ(one, "SELECT * FROM public.customers WHERE customers.tenant_id = '1'");
  EXPECT_EQ(two, "SELECT * FROM public.customers WHERE customers.tenant_id = '2'");
  EXPECT_EQ(cache.misses(), 1u);  // one template serves both tenants (rewrite_cache_test.cc)
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.size(), 1u);
  // The key must not be ambiguous between (tenant, text) splits.
  RewriteCache c2;
  EXPECT_EQ(c2.rewrite("2SELECT 1", test_policy(), "1")->allowed, false);
  EXPECT_EQ(c2.rewrite("SELECT 1", test_policy(), "12")->allowed, true);
  EXPECT_EQ(c2.misses(), 2u);
}

TEST(RewriteCache, EvictsLeastRecentlyUsedAtMaxEntries) {
  // Exponent constants: each text is its own entry (integers would share a constant template).
  RewriteCache cache(2);
  cache.rewrite("SELECT 1e1", test_policy(), "1");
  cache.rewrite("SELECT 2e1", test_policy(), "1");
  cache.rewrite("SELECT 1e1", test_policy(), "1");  // hit: "SELECT 1e1" becomes most recent
  EXPECT_EQ(cache.hits(), 1u);
  cache.rewrite("SELECT 3e1", test_policy(), "1");  // evicts "SELECT 2e1"
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.misses(), 3u);
  cache.rewrite("SELECT 1e1", test_policy(), "1");
  EXPECT_EQ(cache.hits(), 2u);
  cache.rewrite("SELECT 2e1", test_policy(), "1");  // was evicted: a miss again
  EXPECT_EQ(cache.misses(), 4u);
  EXPECT_EQ(cache.size(), 2u);
}

TEST(RewriteCache, ByteBoundKeepsOnlyTheNewestEntry) {
  RewriteCache cache(100, 1);
  cache.rewrite("SELECT 1", test_policy(), "1");
  const RewriteHandle r = cache.rewrite("SELECT 2", test_policy(), "1");
  EXPECT_EQ(r->sql, "SELECT 2");
  EXPECT_EQ(cache.size(), 1u);
}

TEST(RewriteCache, NewPolicyVersionInvalidates) {
  RewriteCache cache;
  policy::PolicyPtr v1 = policy::parse_policy(kPolicyToml, "v1.toml");
  // The reloaded policy no longer lists public.customers.
  std::string text = kPolicyToml;
  const std::string section = "[tables.\"public.customers\"]\n";
  text.erase(text.find(section), section.size());
  policy::PolicyPtr v2 = policy::parse_policy(text, "v2.toml");
  ASSERT_NE(v1->version, v2->version);

  EXPECT_TRUE(cache.rewrite("SELECT * FROM customers", *v1, "1")->allowed);
  EXPECT_TRUE(cache.rewrite("SELECT * FROM customers", *v1, "1")->allowed);
  EXPECT_EQ(cache.hits(), 1u);
  const RewriteHandle after = cache.rewrite("SELECT * FROM customers", *v2, "1");
  EXPECT_FALSE(after->allowed);
  EXPECT_EQ(after->reason,
            "rowguard: table \"public.customers\" is not in the policy (FROM of SELECT; rule: "
            "unknown_tables = \"deny\")");
  EXPECT_EQ(cache.misses(), 2u);
  EXPECT_EQ(cache.size(), 1u);
}

}  // namespace
}  // namespace rowguard::sqlrewrite

namespace rowguard::sqlrewrite {
namespace {

// libpg_query 15-4.0 writes a locking clause's OF list and its wait policy without a space
// ("FOR UPDATE OF oSKIP LOCKED"): the job-queue pattern was refused by the deparser check. The
// rewriter puts the space back and checks the text again.
TEST(Rewrite, LockingClauseOfListWithWaitPolicyRuns) {
  const std::pair<const char*, const char*> cases[] = {
      {"SELECT id FROM orders o ORDER BY id LIMIT 1 FOR UPDATE OF o SKIP LOCKED",
       "SELECT id FROM public.orders o WHERE o.tenant_id = '1' ORDER BY id LIMIT 1 FOR UPDATE OF o SKIP LOCKED"},
      {"SELECT * FROM orders FOR UPDATE OF orders NOWAIT",
       "SELECT * FROM public.orders WHERE orders.tenant_id = '1' FOR UPDATE OF orders NOWAIT"},
      {"SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id FOR NO KEY UPDATE OF o NOWAIT "
       "FOR SHARE OF c SKIP LOCKED",
       "SELECT o.id FROM public.orders o JOIN public.customers c ON CASE WHEN o.tenant_id = '1' AND c.tenant_id = '1' "
       "THEN c.id = o.customer_id END WHERE o.tenant_id = '1' AND c.tenant_id = '1' FOR NO KEY UPDATE OF o NOWAIT "
       "FOR SHARE OF c SKIP LOCKED"},
  };
  for (const auto& [sql, want] : cases) {
    const RewriteResult r = rewrite(sql, test_policy(), "1");
    EXPECT_TRUE(r.allowed) << sql << "\n  -> " << r.reason;
    EXPECT_EQ(r.sql, want) << sql;
  }
  // A literal or identifier spelled like the keyword is left alone (the re-parse decides).
  const RewriteResult lit = rewrite("SELECT 'xNOWAIT', \"aSKIP LOCKED\" FROM orders FOR UPDATE OF orders NOWAIT",
                                    test_policy(), "1");
  EXPECT_TRUE(lit.allowed) << lit.reason;
  EXPECT_EQ(lit.sql, "SELECT 'xNOWAIT', \"aSKIP LOCKED\" FROM public.orders WHERE orders.tenant_id = '1' FOR UPDATE OF "
                     "orders NOWAIT");
}

// The deparser writes a FETCH / MOVE cursor name unquoted: FETCH ... FROM "MixedCase" was refused
// by the deparser check (red team, session 9: an over-refusal). The name is quoted back.
TEST(Rewrite, FetchAndMoveOfAQuotedCursorNameRun) {
  const std::pair<const char*, const char*> cases[] = {
      {"FETCH 5 FROM \"MixedCase\"", "FETCH FORWARD 5 \"MixedCase\""},
      {"MOVE NEXT IN \"MixedCase\"", "MOVE \"MixedCase\""},
      {"FETCH ALL FROM \"with space\"", "FETCH ALL \"with space\""},
      {"FETCH 1 FROM \"q\"\"uote\"", "FETCH \"q\"\"uote\""},
      {"FETCH 2 FROM lower_case", "FETCH FORWARD 2 lower_case"},
  };
  for (const auto& [sql, want] : cases) {
    const RewriteResult r = rewrite(sql, test_policy(), "1");
    EXPECT_TRUE(r.allowed) << sql << "\n  -> " << r.reason;
    EXPECT_EQ(r.sql, want) << sql;
  }
}

// libpg_query 15-4.0's deparser drops needed parentheses in some expressions: "(a OR b) IS TRUE"
// comes out as "a OR b IS TRUE", which means something else (and with the tenant predicate
// appended, lets other tenants' rows through). rowguard re-parses every rewrite and refuses when
// the text would not parse back into the tree it checked (the shapes the walker knows how to keep
// delimited run: BooleanOperandsTheDeparserWouldNotParenthesizeAreWrapped above).
TEST(Rewrite, DeparserChangesOfMeaningAreRefused) {
  // The refusal names the rule, the statement part whose deparse differs, its position in the
  // client's text and what changed (sqlrewrite/deparse_check.h).
  const std::string kHead = "rowguard: the rewritten statement would not mean what was checked: libpg_query's deparser writes ";
  const std::string kTail = " (rule: deparse_check); write that part another way, e.g. with explicit parentheses";
  const std::pair<const char*, std::string> cases[] = {
      {"SELECT * FROM orders WHERE (id > 1) LIKE 't%'",
       kHead + "the operator expression in WHERE at position 37 so that it parses back differently (its kind "
               "AEXPR_LIKE becomes AEXPR_OP)" + kTail},
      // Positions count characters, as PostgreSQL's do ('é' is 2 bytes).
      {"SELECT 'é' AS e, * FROM orders WHERE (id > 1) LIKE 't%'",
       kHead + "the operator expression in WHERE at position 47 so that it parses back differently (its kind "
               "AEXPR_LIKE becomes AEXPR_OP)" + kTail},
  };
  for (const auto& [sql, reason] : cases) {
    const RewriteResult r = rewrite(sql, test_policy(), "1");
    EXPECT_FALSE(r.allowed) << sql << "\n  -> " << r.sql;
    EXPECT_EQ(r.reason, reason) << sql;
  }
  // The same shapes without the problem stay allowed.
  EXPECT_TRUE(rewrite("SELECT * FROM orders WHERE (id = 1 OR id = 2) AND amount > 5", test_policy(), "1").allowed);
  EXPECT_TRUE(rewrite("SELECT * FROM orders WHERE (id = 1 OR id = 2) IS TRUE", test_policy(), "1").allowed);
  EXPECT_TRUE(rewrite("SELECT * FROM orders FOR UPDATE OF orders", test_policy(), "1").allowed);
}

}  // namespace
}  // namespace rowguard::sqlrewrite
