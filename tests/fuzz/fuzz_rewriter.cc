// Fuzz target: sqlrewrite::rewrite() on arbitrary SQL text, with an independent checker of
// every ALLOWED result.
//
// Input: SQL text as is; or, when the first byte is 0x00 (NUL never occurs in a statement
// text, so no SQL input is lost), the remaining bytes drive a small SQL generator (joins, CTEs,
// subqueries, set operations, writes, ON CONFLICT, MERGE, ...), which reaches deep statement
// shapes far faster than byte mutation of text. Set ROWGUARD_FUZZ_PRINT=1 to print each
// generated statement and its rewrite.
//
// Properties (abort() with the SQL on violation):
//   * rewrite() returns allowed or denied (with a reason), never crashes or throws;
//   * an allowed rewrite re-parses (parse_sql) into as many statements as the input;
//   * in the re-parsed output, checked by the independent tenant oracle shared with the unit
//     tests (tests/support/tenant_oracle.h, written from PostgreSQL's rules and not from
//     sqlrewrite/; fixed policy: tenant tables public.orders and public.customers, tenant
//     column tenant_id, session tenant '1'; its rules, in short):
//       - CTE scoping as PostgreSQL does it (WITH: each CTE sees the earlier ones; WITH
//         RECURSIVE: all of them; schema-qualified names and write targets are never CTEs);
//       - every table that is not a CTE reference is in the policy; writes never target the
//         global table;
//       - [brief's rule] every RangeVar naming a tenant table has, somewhere in the same
//         statement, `<alias or relname>.tenant_id = '1'`;
//       - [placement] ...and that predicate is a top-level AND conjunct of the WHERE of the
//         query level whose FROM holds the table, or of the ON clause of a join above it in that
//         FROM tree where the table is not on the preserved side (inner join, right side of
//         LEFT, left side of RIGHT); UPDATE/DELETE targets: their WHERE; MERGE target: its join
//         condition; MERGE source tables: only inside the source itself (a predicate in the MERGE
//         join condition does not stop NOT MATCHED rows from being copied);
//       - INSERT (and MERGE ... INSERT) into a tenant table names tenant_id in its column list
//         and the value feeding it is '1' (or 1, or a $n parameter checked at Bind), mapped as
//         PostgreSQL maps it: `x.*` / `(expr).*` in VALUES or in a SELECT list expand to several
//         columns, so positions after a star are counted from the end;
//       - UPDATE / ON CONFLICT DO UPDATE / MERGE UPDATE never assign tenant_id; ON CONFLICT DO
//         UPDATE carries the target's predicate in its WHERE;
//       - a $n accepted as the tenant value is listed in RewriteResult::tenant_params (the
//         session checks those at Bind);
//       - COPY: a table goes TO the client only through a filtered query; COPY FROM STDIN into
//         a tenant table comes with a row-check plan pointing at tenant_id in the column list.
//   * the template rewrite cache gives exactly the fresh result, for tenant '1' and for a tenant
//     whose value holds a quote and a backslash.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/message.h>
#include <pg_query.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "policy/policy.h"
#include "sqlrewrite/literal_scan.h"
#include "sqlrewrite/pg_query_api.h"
#include "sqlrewrite/rewrite_cache.h"
#include "sqlrewrite/parse_stack.h"
#include "sqlrewrite/rewriter.h"
#include "tests/support/tenant_oracle.h"

namespace rowguard::fuzz {
const policy::Policy& fixed_policy();
}

namespace {

namespace gpb = google::protobuf;

constexpr std::string_view kTenant = "1";

// ---------------------------------------------------------------------------------------------
// Re-parsing the output

enum class Reparse { kOk, kTooDeep, kError };

// parse_sql, falling back to a protobuf decode with a higher nesting limit: the rewrite adds
// a few levels (subquery wrapping, AND nodes), and protobuf's default limit of 100 is the
// wrapper's limit, not PostgreSQL's.
Reparse reparse(const std::string& sql, pg_query::ParseResult& out, std::string& error) {
  auto p = rowguard::sqlrewrite::parse_sql(sql);
  if (p.ok) {
    out = std::move(p.tree);
    return Reparse::kOk;
  }
  error = p.error;
  if (error.find("stack depth") != std::string::npos) return Reparse::kTooDeep;
  if (error != "cannot decode the parse tree") return Reparse::kError;
  PgQueryProtobufParseResult r = pg_query_parse_protobuf(sql.c_str());
  Reparse result = Reparse::kError;
  if (r.error == nullptr) {
    gpb::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(r.parse_tree.data),
                                 static_cast<int>(r.parse_tree.len));
    in.SetRecursionLimit(100000);
    result = out.ParseFromCodedStream(&in) ? Reparse::kOk : Reparse::kError;
  }
  pg_query_free_protobuf_parse_result(r);
  return result;
}

// ---------------------------------------------------------------------------------------------
// The generator (input bytes -> one or more statements)

class Gen {
 public:
  Gen(const uint8_t* data, size_t size) : d_(data), n_(size) {}

  std::string statements() {
    std::string s = stmt();
    for (int i = 0; i < 3 && pick(4) == 3; ++i) s += "; " + stmt();
    return s;
  }

 private:
  unsigned pick(unsigned k) {
    if (k <= 1 || i_ >= n_) return 0;
    return d_[i_++] % k;
  }
  bool coin() { return pick(2) == 1; }
  template <size_t N>
  std::string one(const char* const (&a)[N]) { return a[pick(N)]; }

  struct Depth {
    explicit Depth(int& d) : d_(d) { ++d_; }
    ~Depth() { --d_; }
    int& d_;
  };
  bool deep() const { return depth_ > 4; }

  std::string table() {
    static const char* const k[] = {"orders", "public.orders", "customers", "public.customers",
                                    "countries", "ONLY orders", "orders *", "\"orders\"", "c1",
                                    "c2", "audit_log", "public.countries", "x"};
    return one(k);
  }
  std::string alias() {
    static const char* const k[] = {"", " o", " AS o", " c", " AS orders", " customers", " \"O\"",
                                    " AS x(a, b)", " t", " AS c1", " j", " s"};
    return one(k);
  }
  std::string sub_alias() {
    static const char* const k[] = {" AS s", " s", " AS orders", " t(a)", " AS o", " x", " c1"};
    return one(k);
  }
  std::string col() {
    static const char* const k[] = {"id", "tenant_id", "customer_id", "amount", "status", "name",
                                    "o.id", "o.tenant_id", "orders.id", "orders.tenant_id", "c.id",
                                    "customers.tenant_id", "t.id", "x.a", "\"O\".id", "j.id",
                                    "s.id", "c1.id", "excluded.amount", "n"};
    return one(k);
  }
  std::string lit() {
    static const char* const k[] = {"1", "'1'", "2", "'2'", "NULL", "$1", "$2", "now()", "'x'",
                                    "1.5", "TRUE", "$1::int", "'1'::int", "DEFAULT"};
    return one(k);
  }
  std::string value() {  // a VALUES item
    switch (pick(6)) {
      case 0: return lit();
      case 1: return expr();
      case 2: return "(ROW(7, 2)).*";
      case 3: return "s.*";
      case 4: return "(ROW(2)).*";
      default: return lit();
    }
  }
  std::string expr() {
    Depth g(depth_);
    if (deep()) return col();
    switch (pick(11)) {
      case 0: return col();
      case 1: return lit();
      case 2: return col() + " + 1";
      case 3: return "(" + query() + ")";
      case 4: return "coalesce(" + col() + ", " + lit() + ")";
      case 5: return "CASE WHEN " + cond() + " THEN 1 ELSE 2 END";
      case 6: return "count(*)";
      case 7: return "lower(" + col() + ")";
      case 8: return "ARRAY(" + query() + ")";
      case 9: return col() + "::text";
      default: return "(" + expr() + ")";
    }
  }
  std::string cond() {
    Depth g(depth_);
    if (deep()) return col() + " = " + lit();
    static const char* const ops[] = {" = ", " < ", " <> ", " >= ", " LIKE ", " IS DISTINCT FROM "};
    switch (pick(16)) {
      case 0: return col() + one(ops) + expr();
      case 1: return cond() + " AND " + cond();
      case 2: return cond() + " OR " + cond();
      case 3: return "NOT (" + cond() + ")";
      case 4: return "EXISTS (" + query() + ")";
      case 5: return col() + " IN (" + query() + ")";
      case 6: return col() + " IN (1, 2)";
      case 7: return col() + " = ANY (ARRAY[1, 2])";
      case 8: return col() + " IS NULL";
      case 9: return "TRUE";
      case 10: return col() + " BETWEEN 1 AND 2";
      case 11: return "(" + col() + ", " + col() + ") = (1, 2)";
      case 12: return col() + " = (" + query() + ")";
      case 13: return "tenant_id = '2'";
      case 14: return "(" + cond() + ")";
      default: return "CASE WHEN " + cond() + " THEN TRUE ELSE FALSE END";
    }
  }
  std::string target() {
    switch (pick(9)) {
      case 0: return "*";
      case 1: return expr();
      case 2: return expr() + " AS v";
      case 3: return "o.*";
      case 4: return "count(*)";
      case 5: return "row_number() OVER (PARTITION BY " + col() + " ORDER BY id)";
      case 6: return "s.*";
      case 7: return "'1'";
      default: return col();
    }
  }
  std::string targets() {
    std::string s = target();
    while (pick(3) == 2) s += ", " + target();
    return s;
  }
  std::string join_kind() {
    static const char* const k[] = {" JOIN ", " INNER JOIN ", " LEFT JOIN ", " LEFT OUTER JOIN ",
                                    " RIGHT JOIN ", " FULL JOIN ", " FULL OUTER JOIN "};
    return one(k);
  }
  std::string from_item() {
    Depth g(depth_);
    if (deep()) return table() + alias();
    switch (pick(12)) {
      case 0: return table() + alias();
      case 1: return "(" + query() + ")" + sub_alias();
      case 2: return "LATERAL (" + query() + ")" + sub_alias();
      case 3: return from_item() + join_kind() + from_item() + " ON " + cond();
      case 4: return from_item() + " CROSS JOIN " + from_item();
      case 5: return from_item() + (coin() ? " NATURAL JOIN " : " NATURAL LEFT JOIN ") + from_item();
      case 6: return from_item() + join_kind() + from_item() + " USING (id)";
      case 7: return "(" + from_item() + join_kind() + from_item() + " ON " + cond() + ")" + (coin() ? " AS j" : "");
      case 8: return "generate_series(1, 3) AS g";
      case 9: return "unnest(ARRAY[1, 2]) WITH ORDINALITY AS u(a, n)";
      case 10: return table() + alias();
      default: return "(" + from_item() + (coin() ? " LEFT JOIN " : " RIGHT JOIN ") + from_item() +
                      " ON " + cond() + ")" + (coin() ? " AS j" : "");
    }
  }
  std::string from_list() {
    std::string s = from_item();
    while (pick(3) == 2) s += ", " + from_item();
    return s;
  }
  std::string core() {
    switch (pick(8)) {
      case 0: case 1: {
        std::string s = std::string("SELECT ") + (pick(4) == 3 ? "DISTINCT " : "") + targets() +
                        " FROM " + from_list();
        if (coin()) s += " WHERE " + cond();
        if (pick(4) == 3) s += " GROUP BY " + col() + (coin() ? " HAVING " + cond() : "");
        return s;
      }
      case 2: return "SELECT " + targets();
      case 3: return "TABLE " + table();
      case 4: return "VALUES (1, '1'), (2, '2')";
      case 5: return "SELECT " + targets() + " FROM " + from_list() + " WHERE " + cond();
      case 6: return "(" + query() + ")";
      default: return "SELECT " + targets() + " FROM " + table() + alias();
    }
  }
  std::string cte_body() {
    switch (pick(6)) {
      case 0: case 1: case 2: return query();
      case 3: return "DELETE FROM " + write_table() + (coin() ? " WHERE " + cond() : "") + " RETURNING *";
      case 4: return "UPDATE " + write_table() + " SET amount = 1" + (coin() ? " WHERE " + cond() : "") + " RETURNING *";
      default: return "INSERT INTO " + write_table() + " (" + cols() + ") VALUES " + rows() + " RETURNING *";
    }
  }
  std::string with_clause() {
    static const char* const names[] = {"c1", "c2", "orders", "customers", "x"};
    const bool recursive = pick(4) == 3;
    std::string s = recursive ? "WITH RECURSIVE " : "WITH ";
    int n = 0;
    do {
      if (n++) s += ", ";
      if (recursive && coin()) {
        std::string name = one(names);
        s += name + "(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM " + name + " WHERE n < 3)";
      } else {
        static const char* const mat[] = {"", "", "MATERIALIZED ", "NOT MATERIALIZED "};
        s += one(names) + std::string(coin() ? "(id)" : "") + " AS " + one(mat) + "(" + cte_body() + ")";
      }
    } while (n < 3 && pick(3) == 2);
    return s + " ";
  }
  std::string query() {
    Depth g(depth_);
    if (deep()) return "SELECT 1";
    std::string s = pick(5) == 4 ? with_clause() : "";
    s += core();
    static const char* const setops[] = {" UNION ", " UNION ALL ", " INTERSECT ", " EXCEPT "};
    while (pick(4) == 3) s += one(setops) + core();
    static const char* const tails[] = {"", "", "", " ORDER BY 1", " LIMIT 1", " OFFSET 1",
                                        " FOR UPDATE", " FOR SHARE", " FOR UPDATE OF o",
                                        " FOR NO KEY UPDATE SKIP LOCKED", " FETCH FIRST 1 ROWS ONLY"};
    return s + one(tails);
  }
  std::string write_table() {
    static const char* const k[] = {"orders", "public.orders", "customers", "countries",
                                    "ONLY orders", "orders AS o", "customers AS c", "orders o",
                                    "customers AS orders", "c1"};
    return one(k);
  }
  std::string cols() {
    static const char* const k[] = {"id, amount", "id, tenant_id, amount", "tenant_id, id",
                                    "id, amount, tenant_id", "id", "tenant_id", "id, customer_id, tenant_id, amount"};
    return one(k);
  }
  std::string row() {
    std::string s = "(" + value();
    while (pick(3) != 0) s += ", " + value();
    return s + ")";
  }
  std::string rows() {
    std::string s = row();
    while (pick(4) == 3) s += ", " + row();
    return s;
  }
  std::string set_list() {
    static const char* const k[] = {"amount = 1", "status = 'x', amount = amount + 1",
                                    "(amount, status) = (1, 'x')", "tenant_id = '2'",
                                    "status = DEFAULT", "(amount, status) = (ROW(1, 'x'))"};
    switch (pick(3)) {
      case 0: return one(k);
      case 1: return "amount = (" + query() + ")";
      default: return "(amount, status) = (" + query() + ")";
    }
  }
  std::string dml() {
    switch (pick(4)) {
      case 0: {
        std::string s = "UPDATE " + write_table() + " SET " + set_list();
        if (coin()) s += " FROM " + from_list();
        if (coin()) s += " WHERE " + cond();
        return s + (pick(4) == 3 ? " RETURNING *" : "");
      }
      case 1: {
        std::string s = "DELETE FROM " + write_table();
        if (coin()) s += " USING " + from_list();
        if (coin()) s += " WHERE " + cond();
        return s + (pick(4) == 3 ? " RETURNING id" : "");
      }
      case 2: {
        std::string s = "INSERT INTO " + write_table() + " (" + cols() + ") ";
        switch (pick(4)) {
          case 0: s += "VALUES " + rows(); break;
          case 1: s += "SELECT " + targets() + (coin() ? " FROM " + from_list() : ""); break;
          case 2: s += query(); break;
          default: s += "SELECT s.*, '1' FROM (SELECT 7, 2) AS s"; break;
        }
        static const char* const oc[] = {"", "", " ON CONFLICT DO NOTHING",
                                         " ON CONFLICT (id) DO UPDATE SET amount = excluded.amount",
                                         " ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id",
                                         " ON CONFLICT (id) DO UPDATE SET amount = 1 WHERE amount > 0"};
        return s + one(oc) + (pick(4) == 3 ? " RETURNING *" : "");
      }
      default: {
        std::string s = "MERGE INTO " + write_table() + " USING " + from_item() + " ON " + cond();
        int n = 0;
        do {
          switch (pick(6)) {
            case 0: s += " WHEN MATCHED THEN UPDATE SET amount = 1"; break;
            case 1: s += " WHEN MATCHED AND " + cond() + " THEN DELETE"; break;
            case 2: s += " WHEN NOT MATCHED THEN INSERT (" + cols() + ") VALUES " + row(); break;
            case 3: s += " WHEN NOT MATCHED THEN DO NOTHING"; break;
            case 4: s += " WHEN MATCHED THEN UPDATE SET tenant_id = 2"; break;
            default: s += " WHEN NOT MATCHED THEN INSERT DEFAULT VALUES"; break;
          }
        } while (++n < 3 && coin());
        return s;
      }
    }
  }
  std::string stmt() {
    switch (pick(11)) {
      case 0: case 1: case 2: return query();
      case 3: case 4: case 5: return dml();
      case 6: return with_clause() + dml();
      case 7: return "EXPLAIN " + (coin() ? query() : dml());
      case 8: {
        static const char* const k[] = {"BEGIN", "COMMIT", "ROLLBACK", "SET statement_timeout = 0",
                                        "SHOW timezone", "DEALLOCATE ALL", "SAVEPOINT a",
                                        "SET search_path = x", "RESET ALL", "-- only a comment",
                                        "COPY orders (id, amount) FROM STDIN",
                                        "COPY customers (id, tenant_id, name) FROM STDIN WITH (FORMAT csv)",
                                        "COPY orders (tenant_id, id) FROM STDIN WITH (NULL '1')",
                                        "COPY orders TO STDOUT", "COPY customers (id, name) TO STDOUT WITH (FORMAT csv)",
                                        "LISTEN x", "COPY orders (id, tenant_id, tenant_id) FROM STDIN"};
        return one(k);
      }
      case 9: return with_clause() + query();
      default: return "COPY (" + query() + ") TO STDOUT";
    }
  }

  const uint8_t* d_;
  size_t n_;
  size_t i_ = 0;
  int depth_ = 0;
};

[[noreturn]] void fail(const std::string& sql, const rowguard::sqlrewrite::RewriteResult& r,
                       const std::vector<std::string>& problems) {
  std::fprintf(stderr, "\n==== fuzz_rewriter: INVARIANT VIOLATION ====\ninput SQL:\n%s\n", sql.c_str());
  std::fprintf(stderr, "rewrite: %s\n%s\n", r.allowed ? "ALLOWED" : "DENIED",
               r.allowed ? r.sql.c_str() : r.reason.c_str());
  for (const auto& p : problems) std::fprintf(stderr, "  - %s\n", p.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace

namespace {
int check_one(const uint8_t* data, size_t size);
}  // namespace

// The independent checker walks the tree recursively, as deep as rowguard accepts (25,000 levels):
// it runs on the parse stack (sqlrewrite/parse_stack.h), not on the 8 MB main stack.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return rowguard::sqlrewrite::run_on_parse_stack([&] { return check_one(data, size); });
}

namespace {
int check_one(const uint8_t* data, size_t size) {
  std::string sql;
  if (size > 0 && data[0] == 0) {
    sql = Gen(data + 1, size - 1).statements();
  } else {
    sql.assign(reinterpret_cast<const char*>(data), size);
  }
  static const bool print = std::getenv("ROWGUARD_FUZZ_PRINT") != nullptr;
  const auto& policy = rowguard::fuzz::fixed_policy();

  if (print) std::fprintf(stderr, "SQL: %s\n", sql.c_str());
  const rowguard::sqlrewrite::RewriteResult r = rowguard::sqlrewrite::rewrite(sql, policy, kTenant);
  if (print) {
    std::fprintf(stderr, "  -> %s: %s\n", r.allowed ? "allowed" : "denied",
                 r.allowed ? r.sql.c_str() : r.reason.c_str());
  }
  // The template cache must give exactly the fresh result, for this tenant and for a tenant whose
  // value needs quoting (the template is made by whichever call comes first).
  {
    static rowguard::sqlrewrite::RewriteCache cache(64, 1 << 20);
    const std::string other = "o'b\\";
    const rowguard::sqlrewrite::RewriteResult other_fresh = rowguard::sqlrewrite::rewrite(sql, policy, other);
    for (int i = 0; i < 2; ++i) {
      const std::string_view tenant = i == 0 ? std::string_view(other) : kTenant;
      const rowguard::sqlrewrite::RewriteResult& fresh = i == 0 ? other_fresh : r;
      const rowguard::sqlrewrite::RewriteHandle c = cache.rewrite(sql, policy, tenant);
      if (c->allowed != fresh.allowed || c->sql != fresh.sql || c->reason != fresh.reason ||
          c->kinds != fresh.kinds || c->tenant_params != fresh.tenant_params ||
          c->copy_in.has_value() != fresh.copy_in.has_value()) {
        fail(sql, r, {"the rewrite cache differs from a fresh rewrite for tenant " + std::string(tenant) +
                      ": cached " + (c->allowed ? c->sql : c->reason) + " / fresh " +
                      (fresh.allowed ? fresh.sql : fresh.reason)});
      }
    }
  }
  // Constant templates: the same statement with other literals (integers changed, strings
  // changed, a string turned into the tenant's value, strings turned into 'f') must get from the cache exactly its own
  // fresh rewrite, whichever text made the entry.
  {
    static rowguard::sqlrewrite::RewriteCache cache(64, 1 << 20);
    std::vector<rowguard::sqlrewrite::Literal> lits;
    if (rowguard::sqlrewrite::scan_literals(sql, lits) && !lits.empty()) {
      cache.rewrite(sql, policy, kTenant);
      for (int variant = 0; variant < 3; ++variant) {
        std::string varied;
        bool tenant_done = false;
        rowguard::sqlrewrite::replace_literals(
            varied, sql, lits,
            [&](std::string& out, size_t, const rowguard::sqlrewrite::Literal& l, std::string_view token) {
              if (l.kind == rowguard::sqlrewrite::Literal::Kind::kInteger) {
                out.append(token.size() < 8 ? token : token.substr(0, token.size() - 1));
                if (token.size() < 8) out.push_back('7');
              } else if (l.kind == rowguard::sqlrewrite::Literal::Kind::kNumeric) {
                out.append("9").append(token);
              } else if (variant == 1 && !tenant_done) {
                rowguard::sqlrewrite::append_string_literal(out, kTenant);
                tenant_done = true;
              } else if (variant == 2) {
                out.append("'f'");  // a value the deparser spells differently in some places
              } else {
                out.append("'v").append(token.substr(1));
              }
            });
        const rowguard::sqlrewrite::RewriteResult fresh = rowguard::sqlrewrite::rewrite(varied, policy, kTenant);
        const rowguard::sqlrewrite::RewriteHandle c = cache.rewrite(varied, policy, kTenant);
        if (c->allowed != fresh.allowed || c->sql != fresh.sql || c->reason != fresh.reason ||
            c->kinds != fresh.kinds || c->tenant_params != fresh.tenant_params ||
            c->copy_in.has_value() != fresh.copy_in.has_value()) {
          fail(varied, fresh, {"a constant template differs from a fresh rewrite: cached " +
                               (c->allowed ? c->sql : c->reason) + " / fresh " +
                               (fresh.allowed ? fresh.sql : fresh.reason)});
        }
      }
    }
  }
  if (!r.allowed) {
    if (r.reason.empty()) fail(sql, r, {"denied without a reason"});
    return 0;
  }

  std::vector<std::string> problems;
  auto original = rowguard::sqlrewrite::parse_sql(sql);
  pg_query::ParseResult tree;
  std::string error;
  switch (reparse(r.sql, tree, error)) {
    case Reparse::kTooDeep:
      return 0;  // nesting beyond libpg_query's stack limit: not a property of the rewrite
    case Reparse::kError:
      fail(sql, r, {"the rewritten SQL does not parse: " + error});
    case Reparse::kOk:
      break;
  }
  if (original.ok && original.tree.stmts_size() != tree.stmts_size()) {
    problems.push_back("statement count changed: " + std::to_string(original.tree.stmts_size()) +
                       " -> " + std::to_string(tree.stmts_size()));
  }
  if (r.kinds.size() != static_cast<size_t>(tree.stmts_size())) {
    problems.push_back("kinds has " + std::to_string(r.kinds.size()) + " entries for " +
                       std::to_string(tree.stmts_size()) + " statements");
  }
  const auto checked = rowguard::test_support::tenant_problems(
      tree, {.tenant = std::string(kTenant), .tenant_params = r.tenant_params, .rewrite_known = true, .copy_in = r.copy_in});
  problems.insert(problems.end(), checked.begin(), checked.end());
  if (!problems.empty()) fail(sql, r, problems);
  return 0;
}
}  // namespace
