#pragma once
// What a tenant's statement may call, whatever the syntax that calls it.
//
// PostgreSQL runs a function for more than a FuncCall node of the raw tree:
//   * attribute notation: x.f, schema.table.f and (expr).f mean f(x) / f(expr) when no column f
//     exists (PostgreSQL 15 docs 8.16.5; parse_expr.c transformColumnRef / transformIndirection
//     end in ParseFuncOrColumn) — so the last name of a qualified ColumnRef and every name of an
//     A_Indirection may be a function call;
//   * operators (A_Expr, SubLink ANY/ALL, ORDER BY ... USING) run their operator's function;
//   * casts run the target type's input or cast function.
// These checks decide on names only (the raw tree has no types); what they cannot decide is
// refused. The Walker (sqlrewrite/rewriter.cc) calls them and knows the FROM scopes.
//
// Every raw node type the Walker accepts, and how it can end in a function call:
//   FuncCall                 the classified builtins (check_function_name, policy::builtin_call,
//                            by name and number of arguments), also in FROM (RangeFunction,
//                            ROWS FROM); pg_catalog's advisory-lock functions are not on it:
//                            called by name with positional arguments their keys are rewritten
//                            into the tenant's key space (advisory_locks.h), any other form is
//                            refused
//   RangeTableSample         its method's handler (check_sample_method); its arguments are
//                            expressions, walked like any other
//   ColumnDef (column definition lists of functions in FROM), RangeTableFuncCol (XMLTABLE
//                            columns): their type's input function (check_column_type)
//   XmlExpr, XmlSerialize, RangeTableFunc (XMLTABLE)
//                            builtin XML functions of their arguments (libxml2; PostgreSQL
//                            loads no external entity); query_to_xml & co. are FuncCalls,
//                            refused by the allowlist
//   ColumnRef, A_Indirection attribute notation and system columns (checked here)
//   A_Expr, SubLink, SortBy  operators: A_Expr.name, ANY/ALL oper_name, ORDER BY ... USING
//                            (check_operator_name); BETWEEN is named by keyword, runs < / >
//   TypeCast (and typed literals `xid '5'`), PREPARE argtypes, Parse parameter types
//                            the target type's input / cast function (check_cast,
//                            check_parameter_type*); builtin types' are pure; reg* casts look
//                            names up in readable catalogs; user-defined types are trusted
//   CaseExpr, CoalesceExpr, MinMaxExpr, NullTest, BooleanTest, RowExpr, A_ArrayExpr,
//   A_Indices, JoinExpr (USING/NATURAL), DISTINCT/GROUP BY/ORDER BY/set operations, CTE
//   SEARCH/CYCLE            the equality / ordering operators of the operand types: builtin for
//                            builtin types; user-defined types are trusted
//   SQLValueFunction         CURRENT_USER, CURRENT_DATE, ...: builtin, session-local
//   SetToDefault             the column's DEFAULT expression, written by the DBA (trusted)
//   A_Const, ParamRef, String, Integer, Float, Boolean, BitString, List, A_Star, TypeName,
//   ResTarget, Alias, CollateClause, WindowDef, GroupingSet, MultiAssignRef, LockingClause,
//   NamedArgExpr, RangeSubselect, OnConflictClause, InferClause, IndexElem (opclass only
//   matches an index), MergeWhenClause, BoolExpr
//                            no call of their own (their children are walked)
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pg_query/pg_query.pb.h"
#include "policy/builtin_functions.h"
#include "policy/tenant_scope.h"

namespace rowguard::sqlrewrite {

// Rule names, as shown in denials and in the README.
inline constexpr std::string_view kRuleFunctions = "builtin allowlist and [functions] allow";
inline constexpr std::string_view kRuleAttributeNotation = "attribute_notation";
inline constexpr std::string_view kRuleSystemColumns = "system_columns";
inline constexpr std::string_view kRuleTransactionIds = "transaction_ids";
inline constexpr std::string_view kRuleOperators = "builtin_operators";

// A function call by name (FuncCall.funcname, as written) with nargs arguments (nullopt: any
// number): the denial text (without the "rowguard: " prefix), or nullopt when the call is
// allowed. A builtin is allowed when every pg_catalog function of that name accepting that many
// arguments is (policy::builtin_call); a name qualified by another schema is not a builtin.
std::optional<std::string> check_function_name(const std::vector<std::string>& parts, const policy::TenantScope& scope,
                                               std::optional<int> nargs = std::nullopt);

// `name` in attribute position (x.name, (expr).name): true when it may name a function a tenant
// may not call: a pg_catalog function callable with one argument whose candidates are not all
// allowed (policy::builtin_call(name, 1)), a transaction-id function, or any name pg_catalog has
// no one-argument function of when the schema snapshot names a function by it or is not loaded
// (it cannot rule one out).
bool attribute_may_call_denied(std::string_view name, const policy::TenantScope& scope);

// ctid, xmin, xmax, cmin, cmax: each tells about other tenants' writes (see README,
// "System columns and transaction ids"). tableoid is allowed: it is the table's oid.
bool refused_system_column(std::string_view name);

// A cast: the denial text, or nullopt. Refused: casts to transaction-id and snapshot types
// (xid, xid8, txid_snapshot, pg_snapshot), whose values feed age() and the snapshot functions,
// except of NULL and of the invalid id 0; casts to the row types of catalogs holding such ids
// (NULL::pg_database given to jsonb_populate_record, ROW(...)::pg_class).
std::optional<std::string> check_cast(const pg_query::TypeCast& cast);

// The type of a column definition list entry (`f(...) AS (a int)`, ROWS FROM) or of an XMLTABLE
// column: the denial text, or nullopt. The function's output (or the XML text) is converted to it
// like a cast, so the types check_cast refuses are refused here too (without the NULL / 0
// exception: the value is not a constant).
std::optional<std::string> check_column_type(const pg_query::TypeName& type);

// A declared parameter type (Parse, PREPARE name(types)): the denial text, or nullopt. A $n
// declared as a transaction-id or snapshot type (or an array of one) is a cast of the bound
// value, like check_cast's.
std::optional<std::string> check_parameter_type(const pg_query::TypeName& type);
std::optional<std::string> check_parameter_type_oid(int32_t oid);

// A TABLESAMPLE method (RangeTableSample.method): the denial text, or nullopt. Only pg_catalog's
// SYSTEM and BERNOULLI (pure sampling of the table's own blocks / rows); the methods of
// extensions (tsm_system_rows, tsm_system_time) and anything else are refused.
std::optional<std::string> check_sample_method(const pg_query::RangeTableSample& sample);

// An operator name list (A_Expr.name, SubLink.oper_name, SortBy.use_op): the denial text, or
// nullopt. Only pg_catalog's operators (policy/builtin_operator_table.inc), unqualified or
// OPERATOR(pg_catalog.op): any other name can only be a user-defined operator, whose function
// is user code (a name pg_catalog has as an operator of either kind is left to the DBA's
// overloads, as before); and only when the function of every pg_catalog operator of that name
// and kind (prefix when `prefix` is true, infix when false, either when nullopt) is allowed, as
// for a call (every one is in PostgreSQL 15).
std::optional<std::string> check_operator_name(const google::protobuf::RepeatedPtrField<pg_query::Node>& name,
                                               std::optional<bool> prefix = std::nullopt);

}  // namespace rowguard::sqlrewrite
