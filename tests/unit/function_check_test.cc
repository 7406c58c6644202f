// Goldens for the checks of sqlrewrite/function_check.h through rewrite(): attribute notation,
// system columns, transaction ids, operators; with and without a schema snapshot.
#include "sqlrewrite/function_check.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "policy/policy.h"
#include "sqlrewrite/rewriter.h"
#include "tests/support/test_policy.h"

namespace rowguard::sqlrewrite {
namespace {

const std::string kToml = test_support::test_policy_toml(
    {.tables = "[tables.\"public.orders\"]\n[tables.\"public.customers\"]\n", .allowed_functions = {"public.safe_fn"}});

policy::PolicyPtr make_policy(bool with_snapshot) {
  auto p = std::const_pointer_cast<policy::Policy>(policy::parse_policy(kToml, "function_check_test.toml"));
  if (with_snapshot) {
    auto s = std::make_shared<policy::SchemaSnapshot>();
    s->loaded = true;
    policy::TableInfo orders;
    orders.name = {"public", "orders"};
    for (const char* c : {"id", "tenant_id", "amount", "path", "date", "inet"}) orders.columns.push_back({c});
    s->tables[orders.name] = orders;
    policy::TableInfo customers;
    customers.name = {"public", "customers"};
    for (const char* c : {"id", "tenant_id", "name", "user_fn"}) customers.columns.push_back({c});
    s->tables[customers.name] = customers;
    s->function_names = {"lower", "pg_relation_size", "user_fn", "other_user_fn"};
    p->schema = s;
  }
  return p;
}

struct Golden {
  const char* name;
  const char* sql;
  const char* denial;  // "" = allowed
};

void expect(const policy::Policy& p, const Golden& g) {
  SCOPED_TRACE(std::string(g.name) + ": " + g.sql);
  RewriteResult r = rewrite(g.sql, p, "1");
  if (g.denial[0] == '\0') {
    EXPECT_TRUE(r.allowed) << r.reason;
  } else {
    EXPECT_FALSE(r.allowed) << r.sql;
    EXPECT_EQ(r.reason, g.denial);
  }
}

const char* const kRelSize =
    R"(rowguard: "(...).pg_relation_size" may call the function "pg_relation_size" (attribute notation: x.f means f(x) when x has no column f) and is not a column rowguard knows (the schema snapshot is not loaded); write a column of a policy table, or call an allowed function (rule: attribute_notation))";

TEST(FunctionCheck, AttributeNotationWithoutSnapshot) {
  auto p = make_policy(false);
  const Golden cases[] = {
      {"regclass_relation_size", "SELECT ('orders'::regclass).pg_relation_size", kRelSize},
      {"array_element", "SELECT (ARRAY['orders'::regclass])[1].pg_relation_size", kRelSize},
      {"three_names",
       "SELECT s.r.pg_relation_size FROM (SELECT 'orders'::regclass AS r) AS s",
       R"(rowguard: "s.r.pg_relation_size" may call the function "pg_relation_size" (attribute notation: x.f means f(x) when x has no column f) and is not a column rowguard knows (the schema snapshot is not loaded); write a column of a policy table, or call an allowed function (rule: attribute_notation))"},
      {"relation_whole_row",
       "SELECT o.pg_stat_get_live_tuples FROM orders AS o",
       R"(rowguard: "o.pg_stat_get_live_tuples" may call the function "pg_stat_get_live_tuples" (attribute notation: x.f means f(x) when x has no column f) and is not a column rowguard knows (the schema snapshot is not loaded); write a column of a policy table, or call an allowed function (rule: attribute_notation))"},
      {"paren_column",
       "SELECT (o).pg_relation_size FROM orders AS o",
       R"(rowguard: "(o).pg_relation_size" may call the function "pg_relation_size" (attribute notation: x.f means f(x) when x has no column f) and is not a column rowguard knows (the schema snapshot is not loaded); write a column of a policy table, or call an allowed function (rule: attribute_notation))"},
      {"xid_function",
       "SELECT (1::bigint).txid_status",
       R"(rowguard: "(...).txid_status" may call the function "txid_status" (attribute notation: x.f means f(x) when x has no column f) and is not a column rowguard knows (the schema snapshot is not loaded); write a column of a policy table, or call an allowed function (rule: attribute_notation))"},
      // Allowed: ordinary columns, allowlisted or immutable functions, user functions unknown
      // without a snapshot (a FuncCall of them is still refused).
      {"plain_columns", "SELECT o.id, o.amount, c.name FROM orders AS o JOIN customers AS c ON c.id = o.id", ""},
      {"immutable_name", "SELECT (c).name, c.name, c.path, c.date FROM customers AS c", ""},
      {"allowlisted", "SELECT (c).row_to_json, ('A'::text).lower FROM customers AS c", ""},
      {"allowed_user_function", "SELECT c.safe_fn FROM customers AS c", ""},
      {"star", "SELECT o.*, (o).* FROM orders AS o", ""},
  };
  for (const auto& g : cases) expect(*p, g);
}

TEST(FunctionCheck, AttributeNotationWithSnapshot) {
  auto p = make_policy(true);
  const Golden cases[] = {
      // A column of the policy table wins over a function of the same name (PostgreSQL does so).
      {"snapshot_column", "SELECT c.user_fn, (c).user_fn FROM customers AS c", ""},
      {"unaliased", "SELECT customers.user_fn FROM customers", ""},
      {"outer_scope", "SELECT (SELECT c.user_fn) FROM customers AS c", ""},
      // Not a column of that relation: a user function of public (from the snapshot).
      {"user_function_of_other_relation",
       "SELECT o.user_fn FROM orders AS o",
       R"(rowguard: "o.user_fn" may call the function "user_fn" (attribute notation: x.f means f(x) when x has no column f) and is not a column rowguard knows; write a column of a policy table, or call an allowed function (rule: attribute_notation))"},
      {"user_function_unknown_relation",
       "SELECT s.other_user_fn FROM (SELECT 1 AS a) AS s",
       R"(rowguard: "s.other_user_fn" may call the function "other_user_fn" (attribute notation: x.f means f(x) when x has no column f) and is not a column rowguard knows; write a column of a policy table, or call an allowed function (rule: attribute_notation))"},
      {"alias_shadows_table_name",
       "SELECT customers.user_fn FROM orders AS customers",
       R"(rowguard: "customers.user_fn" may call the function "user_fn" (attribute notation: x.f means f(x) when x has no column f) and is not a column rowguard knows; write a column of a policy table, or call an allowed function (rule: attribute_notation))"},
      {"output_alias_is_not_a_column",
       "SELECT ('orders'::regclass).pg_relation_size, 1 AS pg_relation_size",
       R"(rowguard: "(...).pg_relation_size" may call the function "pg_relation_size" (attribute notation: x.f means f(x) when x has no column f) and is not a column rowguard knows; write a column of a policy table, or call an allowed function (rule: attribute_notation))"},
      {"excluded", "INSERT INTO customers (id, name) VALUES (1, 'a') ON CONFLICT (tenant_id, id) DO UPDATE SET name = excluded.user_fn", ""},
  };
  for (const auto& g : cases) expect(*p, g);
}

TEST(FunctionCheck, SystemColumns) {
  auto p = make_policy(false);
  const std::string xmin =
      R"(rowguard: system column "xmin" is not allowed: it reveals other tenants' writes (row positions, transaction ids); use a version column (rule: system_columns))";
  const std::string ctid =
      R"(rowguard: system column "ctid" is not allowed: it reveals other tenants' writes (row positions, transaction ids); use a version column (rule: system_columns))";
  for (const char* sql : {"SELECT xmin FROM orders", "SELECT o.xmin FROM orders AS o", "SELECT (o).xmin FROM orders AS o",
                          "SELECT public.orders.xmin FROM public.orders",
                          "UPDATE orders SET amount = 1 WHERE id = 1 AND xmin = '5' RETURNING id"}) {
    expect(*p, {"xmin", sql, xmin.c_str()});
  }
  for (const char* sql : {"SELECT ctid FROM orders", "INSERT INTO orders (id, tenant_id) VALUES (1, '1') RETURNING ctid",
                          "DELETE FROM orders WHERE ctid = '(0,1)'"}) {
    expect(*p, {"ctid", sql, ctid.c_str()});
  }
  for (const char* name : {"xmax", "cmin", "cmax"}) {
    std::string sql = std::string("SELECT ") + name + " FROM customers";
    RewriteResult r = rewrite(sql, *p, "1");
    EXPECT_FALSE(r.allowed) << sql;
    EXPECT_NE(r.reason.find("(rule: system_columns)"), std::string::npos) << r.reason;
  }
  expect(*p, {"tableoid", "SELECT tableoid::regclass, o.tableoid FROM orders AS o", ""});
}

TEST(FunctionCheck, TransactionIds) {
  auto p = make_policy(false);
  expect(*p, {"txid_current", "SELECT txid_current()",
              R"(rowguard: function "txid_current" is not allowed: transaction ids and snapshots count other tenants' write transactions (rule: transaction_ids))"});
  expect(*p, {"pg_current_xact_id", "SELECT pg_catalog.pg_current_xact_id()",
              R"(rowguard: function "pg_catalog.pg_current_xact_id" is not allowed: transaction ids and snapshots count other tenants' write transactions (rule: transaction_ids))"});
  expect(*p, {"cast_xid", "SELECT age('5'::xid)",
              R"(rowguard: a cast to "xid" is not allowed: transaction ids and snapshots count other tenants' write transactions (rule: transaction_ids))"});
  expect(*p, {"cast_xid8", "SELECT CAST(5 AS pg_catalog.xid8)",
              R"(rowguard: a cast to "xid8" is not allowed: transaction ids and snapshots count other tenants' write transactions (rule: transaction_ids))"});
  expect(*p, {"prepare_xid", "PREPARE q(int, xid) AS SELECT age($2)",
              R"(rowguard: a parameter declared as "xid" is not allowed: transaction ids and snapshots count other tenants' write transactions (rule: transaction_ids))"});
  EXPECT_TRUE(check_parameter_type_oid(28).has_value());
  EXPECT_TRUE(check_parameter_type_oid(271).has_value());
  EXPECT_FALSE(check_parameter_type_oid(23).has_value());
  EXPECT_TRUE(check_parameter_type_oid(1248).has_value());   // pg_database
  EXPECT_TRUE(check_parameter_type_oid(12224).has_value());  // a system view's row type
  EXPECT_FALSE(check_parameter_type_oid(16384).has_value()); // the first user type
  expect(*p, {"populate_row_type", "SELECT jsonb_populate_record(NULL::pg_database, '{}')",
              R"(rowguard: a cast to the row type "pg_database" is not allowed: it holds transaction ids, which count other tenants' write transactions (rule: transaction_ids))"});
  expect(*p, {"null_xid", "SELECT NULL::xid, '0'::xid", ""});
  expect(*p, {"age_of_timestamp", "SELECT age(now())", ""});
}

TEST(FunctionCheck, Operators) {
  auto p = make_policy(false);
  expect(*p, {"user_operator", "SELECT 1 === 1",
              R"(rowguard: operator === is not one of pg_catalog's operators: a user-defined operator runs user code (rule: builtin_operators))"});
  expect(*p, {"qualified", "SELECT 1 OPERATOR(public.+) 1",
              R"(rowguard: operator OPERATOR(public.+) is not allowed: only pg_catalog's operators (rule: builtin_operators))"});
  expect(*p, {"using", "SELECT id FROM orders ORDER BY id USING ~<~~",
              R"(rowguard: operator ~<~~ is not one of pg_catalog's operators: a user-defined operator runs user code (rule: builtin_operators))"});
  expect(*p, {"sublink", "SELECT 1 WHERE 1 OPERATOR(public.=) ANY (SELECT 1)",
              R"(rowguard: operator OPERATOR(public.=) is not allowed: only pg_catalog's operators (rule: builtin_operators))"});
  expect(*p, {"builtins",
              "SELECT 1 + 2 * 3, 'a' || 'b', 'a' LIKE 'b', 'a' ILIKE 'b', 'a' SIMILAR TO 'b', 1 BETWEEN 0 AND 2, "
              "1 IS DISTINCT FROM 2, NULLIF(1, 2), 1 IN (1, 2), 1 = ANY (ARRAY[1]), '{}'::jsonb @> '{}', "
              "1 OPERATOR(pg_catalog.+) 1, 'a' !~~ 'b', -1, |/ 4.0, 1 # 2, '{}'::jsonb #> '{a}', # '((0,0),(1,1))'::path",
              ""});
}

// A builtin call is decided by the pg_catalog functions of that name that accept that many
// arguments (policy/builtin_functions.h): allowed only when every such candidate is pure or
// session.
TEST(FunctionCheck, BuiltinCallsByNameAndArgumentCount) {
  auto p = make_policy(false);
  const Golden cases[] = {
      // ts_rewrite(query, target, substitute) computes; ts_rewrite(query, 'SELECT ...') runs SQL.
      {"ts_rewrite_3", "SELECT ts_rewrite('a & b'::tsquery, 'a'::tsquery, 'c'::tsquery)", ""},
      {"ts_rewrite_2", "SELECT ts_rewrite('a & b'::tsquery, 'SELECT t, s FROM orders')",
       R"(rowguard: function "ts_rewrite" is not allowed (rule: builtin allowlist and [functions] allow))"},
      {"ts_rewrite_qualified", "SELECT pg_catalog.ts_rewrite('a'::tsquery, 'SELECT 1')",
       R"(rowguard: function "pg_catalog.ts_rewrite" is not allowed (rule: builtin allowlist and [functions] allow))"},
      // Pure functions the hand list did not name.
      {"function_style_casts", "SELECT float4(1), int2(1), textlen('a'), pg_size_bytes('1 kB'), to_tsvector('english', 'a')", ""},
      {"ordered_set", "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY amount), mode() WITHIN GROUP (ORDER BY id) FROM orders", ""},
      {"count_star", "SELECT count(*), count(id) FROM orders", ""},
      {"age_of_timestamp", "SELECT age(now()), age(now(), now())", ""},  // age(xid) takes an xid no tenant can make
      {"variadic", "SELECT concat_ws(',', 1, 2, 3), format('%s', VARIADIC ARRAY['a'])", ""},
      // No pg_catalog function takes that many arguments, every other lower is allowed: a DBA's
      // overload in public (trusted) or an error of PostgreSQL; the name decides, as before.
      {"other_arity", "SELECT lower(), lower('a', 'b', 'c')", ""},
      // ts_rewrite with one argument: none takes one, and not every ts_rewrite is allowed.
      {"other_arity_denied", "SELECT ts_rewrite('a'::tsquery)",
       R"(rowguard: function "ts_rewrite" is not allowed (rule: builtin allowlist and [functions] allow))"},
      // Other schemas are not builtins.
      {"other_schema", "SELECT public.lower('a')", R"(rowguard: function "public.lower" is not allowed (rule: builtin allowlist and [functions] allow))"},
      // Classes refused: sleeps, other data, state, and what a shared server session holds.
      {"sleep", "SELECT pg_sleep_for('1 s')", R"(rowguard: function "pg_sleep_for" is not allowed (rule: builtin allowlist and [functions] allow))"},
      {"prepared_statements", "SELECT * FROM pg_prepared_statement()",
       R"(rowguard: function "pg_prepared_statement" is not allowed (rule: builtin allowlist and [functions] allow))"},
      {"memory_contexts", "SELECT * FROM pg_get_backend_memory_contexts()",
       R"(rowguard: function "pg_get_backend_memory_contexts" is not allowed (rule: builtin allowlist and [functions] allow))"},
      // Catalog introspection for psql and drivers, unchanged.
      {"introspection", "SELECT pg_get_viewdef('orders'::regclass), format_type(23, -1), has_table_privilege('orders', 'SELECT')", ""},
  };
  for (const auto& g : cases) expect(*p, g);
}

// x.pg_walfile_name means pg_walfile_name(x): immutable, but it reads the server's timeline
// (class reads_other_data); the hand list treated every immutable one-argument function as
// harmless in attribute notation.
TEST(FunctionCheck, AttributeNotationFollowsTheClasses) {
  auto p = make_policy(false);
  expect(*p, {"walfile", "SELECT ('0/0'::pg_lsn).pg_walfile_name",
              R"(rowguard: "(...).pg_walfile_name" may call the function "pg_walfile_name" (attribute notation: x.f means f(x) when x has no column f) and is not a column rowguard knows (the schema snapshot is not loaded); write a column of a policy table, or call an allowed function (rule: attribute_notation))"});
  expect(*p, {"session_class", "SELECT (now()).date, ('a'::text).to_tsvector", ""});
  expect(*p, {"unreachable_candidates", "SELECT (c).int4recv FROM customers AS c", ""});  // int4recv(internal): no call reaches it
}

TEST(FunctionCheck, GeneratedTablesHaveTheExpectedEntries) {
  using policy::BuiltinCall;
  EXPECT_EQ(policy::builtin_call("pg_relation_size", 1).verdict, BuiltinCall::Verdict::kDenied);
  EXPECT_EQ(policy::builtin_call("name", 1).verdict, BuiltinCall::Verdict::kAllowed);
  EXPECT_EQ(policy::builtin_call("query_to_xml", 1).verdict, BuiltinCall::Verdict::kNotBuiltin);  // four arguments
  EXPECT_EQ(policy::builtin_call("query_to_xml", 4).verdict, BuiltinCall::Verdict::kDenied);
  EXPECT_EQ(policy::builtin_call("no_such_function", 1).verdict, BuiltinCall::Verdict::kNotBuiltin);
  ASSERT_TRUE(policy::builtin_operator("@>"));
  EXPECT_TRUE(policy::builtin_operator("@>")->allowed);
  EXPECT_FALSE(policy::builtin_operator("==="));
  EXPECT_TRUE(policy::builtin_operator("-", true));   // -x
  EXPECT_FALSE(policy::builtin_operator("@>", true));  // no prefix @>
}

// Every operator of pg_catalog runs a pure or session function (PostgreSQL 15): none is refused
// by class, as none was refused by name before.
TEST(FunctionCheck, EveryBuiltinOperatorIsAllowed) {
  for (const policy::BuiltinOperator& o : policy::builtin_operators()) {
    EXPECT_TRUE(policy::function_class_allowed(o.cls)) << o.name << " (" << o.left << ", " << o.right << ") -> " << o.function;
  }
}

}  // namespace
}  // namespace rowguard::sqlrewrite
