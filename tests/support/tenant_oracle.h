// An independent checker of rewritten SQL ("tenant oracle"), shared by the rewriter's unit tests
// (tests/unit/rewriter_test.cc) and the rewriter fuzz target (tests/fuzz/fuzz_rewriter.cc). It
// walks the parse tree of an ALLOWED rewrite with rules written from PostgreSQL's semantics, not
// from sqlrewrite/ (it shares no code with the rewriter), for a fixed test policy: tenant tables
// public.orders and public.customers with tenant column tenant_id, global table public.countries.
//
//   - CTE scoping as PostgreSQL does it (WITH: each CTE sees the earlier ones; WITH RECURSIVE: all
//     of them; schema-qualified names and write targets are never CTEs);
//   - every table that is not a CTE reference is in the policy (or, with system_catalogs, in
//     pg_catalog / information_schema); writes never target the global table; a tenant table
//     appears only in a FROM list, a USING list or as a write target;
//   - `t TABLESAMPLE ...` is a FROM item t of its level (the level's quals filter the sample);
//   - every tenant table has `<alias or relname>.tenant_id = '<tenant>'` (or `= $n` for a $n listed
//     in bound_tenant_params: rowguard binds the tenant to it) somewhere in the
//     statement, and that predicate is a top-level AND conjunct of the WHERE of the query level
//     whose FROM holds the table (not when the table sits inside an aliased join, which hides its
//     name), or of the ON clause of a join above it where the table is not on the preserved side
//     (inner join, right side of LEFT, left side of RIGHT); a tenant table with a column alias
//     list is refused (<alias>.tenant_id may then name another column); UPDATE/DELETE targets:
//     their WHERE; MERGE target: its join condition; MERGE source tables: only inside the source;
//   - INSERT (and MERGE ... INSERT) into a tenant table names tenant_id once in its column list,
//     and the value feeding it is the tenant ('<tenant>' or the integer, possibly cast, or a $n
//     listed in tenant_params), mapped as PostgreSQL maps it: `x.*` / `(expr).*` expand to several
//     columns, so the value is aligned from the start with no star before it or from the end with
//     no star after it; INSERT ... <set operation> into a tenant table is refused;
//   - UPDATE / ON CONFLICT DO UPDATE / MERGE UPDATE never assign tenant_id; ON CONFLICT DO UPDATE
//     carries the target's predicate in its WHERE;
//   - COPY: a tenant table goes TO the client only through a (filtered) query; COPY FROM a server
//     file or program is refused; COPY FROM STDIN into a tenant table names tenant_id once in its
//     column list, and (when the rewrite's copy_in plan is given) the plan points at it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "pg_query/pg_query.pb.h"
#include "sqlrewrite/rewriter.h"

namespace rowguard::test_support {

struct TenantOracleOptions {
  std::string tenant = "1";
  // pg_catalog.* and information_schema.* may appear (unfiltered) in the output.
  bool system_catalogs = false;
  // From the RewriteResult: the $n parameters the session checks at Bind (accepted as the tenant
  // value), and, with rewrite_known, its COPY FROM STDIN row check plan (then a COPY FROM into a
  // tenant table must have one, pointing at tenant_id).
  std::vector<int> tenant_params;
  // The $n rowguard itself binds to the tenant's value (a tenant-parameter form,
  // RewriteCache::tenant_param_form): accepted in place of '<tenant>' in a tenant predicate only.
  std::vector<int> bound_tenant_params;
  bool rewrite_known = false;
  std::optional<sqlrewrite::CopyInPlan> copy_in;
};

// The problems found in every statement of `tree` (empty: the output is safe by these rules).
std::vector<std::string> tenant_problems(const pg_query::ParseResult& tree, const TenantOracleOptions& options);

// Same for one statement (a RawStmt's stmt node).
std::vector<std::string> tenant_problems(const pg_query::Node& statement, const TenantOracleOptions& options);

}  // namespace rowguard::test_support
