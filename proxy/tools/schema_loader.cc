// See schema_loader.h. All catalog queries run in one REPEATABLE READ READ ONLY transaction, so
// the snapshot is consistent even while DDL runs.
#include "proxy/tools/pq.h"
#include "proxy/tools/schema_loader.h"

#include <libpq-fe.h>

#include <chrono>
#include <map>
#include <memory>
#include <stdexcept>

namespace rowguard::tools {
namespace {

using pq::Conn;
using pq::Result;
using pq::trim;

struct QueryFailed {
  std::string what;
};


// A text[] / oid[] literal: {"a","b"} with " and \ escaped.
std::string array_literal(const std::vector<std::string>& items) {
  std::string out = "{";
  for (const auto& item : items) {
    if (out.size() > 1) out += ",";
    out += "\"";
    for (char ch : item) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += "\"";
  }
  return out + "}";
}

Result query(PGconn* conn, const char* sql, const std::vector<std::string>& params = {}) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  Result r(PQexecParams(conn, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0));
  const ExecStatusType st = PQresultStatus(r.get());
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) throw QueryFailed{trim(PQresultErrorMessage(r.get()))};
  return r;
}

std::string get(const Result& r, int row, int col) { return PQgetvalue(r.get(), row, col); }
bool flag(const Result& r, int row, int col) { return get(r, row, col) == "t"; }

// The policy tables and all their descendants (pg_inherits: inheritance children, partitions).
constexpr const char* kTables = R"sql(
WITH RECURSIVE wanted(nspname, relname) AS (SELECT * FROM unnest($1::text[], $2::text[])),
tree(oid) AS (
  SELECT c.oid FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN wanted w ON w.nspname = n.nspname AND w.relname = c.relname
  WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  UNION
  SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN tree t ON i.inhparent = t.oid)
SELECT c.oid::text, n.nspname, c.relname, c.relkind::text
FROM tree JOIN pg_catalog.pg_class c ON c.oid = tree.oid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace)sql";

constexpr const char* kColumns = R"sql(
SELECT a.attrelid::text, a.attname, a.attnum, a.atttypid::text,
       pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef,
       a.attgenerated = 's', a.attidentity <> ''
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = ANY ($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum)sql";

// Unique indexes, with their key columns (attnum 0: an expression column).
constexpr const char* kUnique = R"sql(
SELECT i.indrelid::text, i.indexrelid::text, ic.relname, COALESCE(con.conname, ''), i.indisprimary,
       i.indpred IS NOT NULL, i.indexprs IS NOT NULL
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
LEFT JOIN pg_catalog.pg_constraint con
  ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u')
WHERE i.indisunique AND i.indrelid = ANY ($1::oid[])
ORDER BY i.indrelid, ic.relname)sql";

constexpr const char* kUniqueColumns = R"sql(
SELECT i.indexrelid::text, k.attnum, COALESCE(a.attname, '')
FROM pg_catalog.pg_index i
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indisunique AND i.indrelid = ANY ($1::oid[]) AND k.ord <= i.indnkeyatts
ORDER BY i.indexrelid, k.ord)sql";

// The sequence each column's default draws from: a serial or nextval() default depends on it
// (pg_attrdef -> pg_class 'S'), an identity column owns it internally (deptype 'i').
constexpr const char* kDefaultSequences = R"sql(
SELECT ad.adrelid::text, ad.adnum, sn.nspname || '.' || s.relname, s.oid::text
FROM pg_catalog.pg_attrdef ad
JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::regclass AND d.objid = ad.oid
  AND d.refclassid = 'pg_catalog.pg_class'::regclass
JOIN pg_catalog.pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
WHERE ad.adrelid = ANY ($1::oid[])
UNION
SELECT d.refobjid::text, d.refobjsubid, sn.nspname || '.' || s.relname, s.oid::text
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
  AND d.deptype = 'i' AND d.refobjid = ANY ($1::oid[]) AND d.refobjsubid > 0
ORDER BY 1, 2, 3)sql";

constexpr const char* kExclusion = R"sql(
SELECT con.conrelid::text, con.conname FROM pg_catalog.pg_constraint con
WHERE con.contype = 'x' AND con.conrelid = ANY ($1::oid[]) ORDER BY 1, 2)sql";

constexpr const char* kForeignKeys = R"sql(
SELECT con.conrelid::text, con.conname, rn.nspname, rc.relname, a.attname, fa.attname
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid
JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace
CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(attnum, fattnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
JOIN pg_catalog.pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = k.fattnum
WHERE con.contype = 'f' AND con.conrelid = ANY ($1::oid[])
ORDER BY con.conrelid, con.conname, k.ord)sql";

// The foreign keys of any table that reference a policy table (or a partition / child), and,
// through chains of ON DELETE CASCADE keys, the tables a DELETE of its rows deletes from: their
// actions run as the constraint's owner, past rowguard. UNION stops at cycles.
constexpr const char* kReferencedBy = R"sql(
WITH RECURSIVE reach(root, rel) AS (
  SELECT u.r, u.r FROM unnest($1::oid[]) AS u(r)
  UNION
  SELECT reach.root, con.conrelid FROM reach
  JOIN pg_catalog.pg_constraint con ON con.contype = 'f' AND con.confrelid = reach.rel AND con.confdeltype = 'c')
SELECT reach.root::text, con.oid::text, con.conname, n.nspname, c.relname, con.confupdtype::text,
       con.confdeltype::text, reach.rel <> reach.root, a.attname, fa.attname
FROM reach
JOIN pg_catalog.pg_constraint con ON con.contype = 'f' AND con.confrelid = reach.rel
JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(attnum, fattnum, ord)
JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
JOIN pg_catalog.pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = k.fattnum
ORDER BY 1, 2, k.ord)sql";

constexpr const char* kChildren = R"sql(
SELECT i.inhparent::text, n.nspname, c.relname
FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE i.inhparent = ANY ($1::oid[]) ORDER BY 1, 2, 3)sql";

// The views and materialized views whose definition reads a policy table (or a child): the
// view's rewrite rule (pg_rewrite) depends on the table (pg_depend), with the view's columns.
constexpr const char* kViews = R"sql(
SELECT DISTINCT d.refobjid::text, vn.nspname, v.relname, v.relkind::text, a.attnum, a.attname
FROM pg_catalog.pg_depend d
JOIN pg_catalog.pg_rewrite rw ON rw.oid = d.objid
JOIN pg_catalog.pg_class v ON v.oid = rw.ev_class AND v.relkind IN ('v', 'm')
JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = v.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
  AND d.refobjid = ANY ($1::oid[]) AND v.oid <> d.refobjid
ORDER BY 1, 2, 3, 5)sql";

constexpr const char* kFunctions = R"sql(
SELECT DISTINCT p.proname FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname IN ('pg_catalog', 'public'))sql";

// Whether the sequence `seq_oid` feeding column `column` of table `table_oid` can still produce a
// value the column holds: its next value is not above max(column), or it descends or cycles. Only
// for a column leading a unique index (max() is then one index probe); any other column, and
// any failure (no privilege on the sequence, a non-numeric column), count as behind (fail
// closed). Inside a savepoint, so a failure leaves the read transaction usable. Residual: a
// bypass session can still insert explicit ids above the sequence later; the next schema read
// (reload, bypass DDL) sees them, a plain INSERT does not trigger one.
bool sequence_behind(PGconn* conn, const std::string& table_oid, const std::string& seq_oid, const std::string& column,
                     const policy::TableInfo& t) {
  bool leads = false;
  for (const auto& k : t.unique_keys) leads = leads || (!k.partial && !k.columns.empty() && k.columns.front() == column);
  if (!leads) return true;
  char* ident = PQescapeIdentifier(conn, column.c_str(), column.size());
  if (ident == nullptr) return true;
  const std::string col(ident);
  PQfreemem(ident);
  Result names = query(conn, "SELECT $1::oid::regclass::text, $2::oid::regclass::text", {table_oid, seq_oid});
  const std::string sql =
      "SELECT s.seqincrement > 0 AND NOT s.seqcycle AND (m.mx IS NULL OR m.mx::numeric < "
      "CASE WHEN q.is_called THEN q.last_value::numeric + s.seqincrement ELSE q.last_value::numeric END) "
      "FROM pg_catalog.pg_sequence s, (SELECT last_value, is_called FROM " + get(names, 0, 1) + ") q, "
      "(SELECT max(" + col + ") AS mx FROM " + get(names, 0, 0) + ") m WHERE s.seqrelid = $1::oid";
  query(conn, "SAVEPOINT rowguard_seq");
  try {
    Result fresh = query(conn, sql.c_str(), {seq_oid});
    query(conn, "RELEASE SAVEPOINT rowguard_seq");
    return !(PQntuples(fresh.get()) == 1 && flag(fresh, 0, 0));
  } catch (const QueryFailed&) {
    query(conn, "ROLLBACK TO SAVEPOINT rowguard_seq");
    return true;
  }
}

void read_into(PGconn* conn, const policy::Policy& policy, policy::SchemaSnapshot& out) {
  query(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  query(conn, "SET LOCAL search_path = pg_catalog");  // unnest() etc. are the catalog's own
  std::vector<std::string> schemas, names;
  for (const auto& [name, rule] : policy.tables) {
    schemas.push_back(name.schema);
    names.push_back(name.name);
  }
  std::map<std::string, policy::TableInfo*> by_oid;
  std::vector<std::string> oids;
  Result tables = query(conn, kTables, {array_literal(schemas), array_literal(names)});
  for (int i = 0; i < PQntuples(tables.get()); ++i) {
    policy::QualifiedName name{get(tables, i, 1), get(tables, i, 2)};
    policy::TableInfo& t = out.tables[name];
    t.name = name;
    t.relkind = get(tables, i, 3).empty() ? '?' : get(tables, i, 3)[0];
    by_oid[get(tables, i, 0)] = &t;
    oids.push_back(get(tables, i, 0));
  }
  const std::string oid_array = array_literal(oids);
  auto table_of = [&](const std::string& oid) -> policy::TableInfo& {
    auto it = by_oid.find(oid);
    if (it == by_oid.end()) throw QueryFailed{"catalog answer names an unexpected relation " + oid};
    return *it->second;
  };

  Result cols = query(conn, kColumns, {oid_array});
  for (int i = 0; i < PQntuples(cols.get()); ++i) {
    policy::ColumnInfo c;
    c.name = get(cols, i, 1);
    c.attnum = std::stoi(get(cols, i, 2));
    c.type_oid = static_cast<uint32_t>(std::stoul(get(cols, i, 3)));
    c.type_name = get(cols, i, 4);
    c.not_null = flag(cols, i, 5);
    c.has_default = flag(cols, i, 6);
    c.generated = flag(cols, i, 7);
    c.identity = flag(cols, i, 8);
    table_of(get(cols, i, 0)).columns.push_back(std::move(c));
  }

  std::map<std::string, std::pair<policy::TableInfo*, size_t>> index_slot;  // index oid -> key
  std::map<std::string, bool> has_expression;
  Result unique = query(conn, kUnique, {oid_array});
  for (int i = 0; i < PQntuples(unique.get()); ++i) {
    policy::TableInfo& t = table_of(get(unique, i, 0));
    policy::UniqueKey k;
    k.name = get(unique, i, 2);
    k.constraint = get(unique, i, 3);
    k.primary = flag(unique, i, 4);
    k.partial = flag(unique, i, 5);
    has_expression[get(unique, i, 1)] = flag(unique, i, 6);
    t.unique_keys.push_back(std::move(k));
    index_slot[get(unique, i, 1)] = {&t, t.unique_keys.size() - 1};
  }
  Result ucols = query(conn, kUniqueColumns, {oid_array});
  for (int i = 0; i < PQntuples(ucols.get()); ++i) {
    auto it = index_slot.find(get(ucols, i, 0));
    if (it == index_slot.end()) continue;  // an index created between the two queries cannot happen (one snapshot)
    auto& key = it->second.first->unique_keys[it->second.second];
    if (get(ucols, i, 1) == "0") {
      has_expression[get(ucols, i, 0)] = true;
    } else {
      key.plain_columns.push_back(get(ucols, i, 2));
    }
    key.columns.push_back(get(ucols, i, 2));
  }
  for (const auto& [oid, slot] : index_slot) {
    // An index with an expression column: columns stays empty (schema_snapshot.h).
    if (has_expression[oid]) slot.first->unique_keys[slot.second].columns.clear();
  }

  Result seqs = query(conn, kDefaultSequences, {oid_array});
  for (int i = 0; i < PQntuples(seqs.get()); ++i) {
    policy::TableInfo& t = table_of(get(seqs, i, 0));
    const int attnum = std::stoi(get(seqs, i, 1));
    for (auto& c : t.columns) {
      if (c.attnum == attnum && c.default_sequence.empty()) {
        c.default_sequence = get(seqs, i, 2);
        c.sequence_behind = sequence_behind(conn, get(seqs, i, 0), get(seqs, i, 3), c.name, t);
      }
    }
  }

  Result excl = query(conn, kExclusion, {oid_array});
  for (int i = 0; i < PQntuples(excl.get()); ++i) {
    table_of(get(excl, i, 0)).exclusion_constraints.push_back(get(excl, i, 1));
  }

  Result fks = query(conn, kForeignKeys, {oid_array});
  for (int i = 0; i < PQntuples(fks.get()); ++i) {
    policy::TableInfo& t = table_of(get(fks, i, 0));
    if (t.foreign_keys.empty() || t.foreign_keys.back().name != get(fks, i, 1)) {
      policy::ForeignKey fk;
      fk.name = get(fks, i, 1);
      fk.references = {get(fks, i, 2), get(fks, i, 3)};
      t.foreign_keys.push_back(std::move(fk));
    }
    t.foreign_keys.back().columns.push_back(get(fks, i, 4));
    t.foreign_keys.back().referenced_columns.push_back(get(fks, i, 5));
  }

  Result refs = query(conn, kReferencedBy, {oid_array});
  std::string last_ref;
  for (int i = 0; i < PQntuples(refs.get()); ++i) {
    policy::TableInfo& t = table_of(get(refs, i, 0));
    const std::string id = get(refs, i, 0) + "/" + get(refs, i, 1);
    if (id != last_ref) {
      policy::ReferencingKey rk;
      rk.name = get(refs, i, 2);
      rk.table = {get(refs, i, 3), get(refs, i, 4)};
      rk.on_update = get(refs, i, 5).empty() ? '?' : get(refs, i, 5)[0];
      rk.on_delete = get(refs, i, 6).empty() ? '?' : get(refs, i, 6)[0];
      rk.via_cascade = flag(refs, i, 7);
      t.referenced_by.push_back(std::move(rk));
      last_ref = id;
    }
    t.referenced_by.back().columns.push_back(get(refs, i, 8));
    t.referenced_by.back().referenced_columns.push_back(get(refs, i, 9));
  }

  Result children = query(conn, kChildren, {oid_array});
  for (int i = 0; i < PQntuples(children.get()); ++i) {
    table_of(get(children, i, 0)).children.push_back({get(children, i, 1), get(children, i, 2)});
  }

  Result views = query(conn, kViews, {oid_array});
  for (int i = 0; i < PQntuples(views.get()); ++i) {
    policy::TableInfo& t = table_of(get(views, i, 0));
    const policy::QualifiedName view{get(views, i, 1), get(views, i, 2)};
    if (t.views.empty() || t.views.back().name != view) {
      policy::DependentView v;
      v.name = view;
      v.relkind = get(views, i, 3).empty() ? '?' : get(views, i, 3)[0];
      t.views.push_back(std::move(v));
    }
    if (!PQgetisnull(views.get(), i, 5)) t.views.back().columns.push_back(get(views, i, 5));
  }

  Result funcs = query(conn, kFunctions);
  for (int i = 0; i < PQntuples(funcs.get()); ++i) out.function_names.insert(get(funcs, i, 0));
  query(conn, "COMMIT");
}

int64_t unix_now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

policy::SchemaSnapshot read_with(Conn conn, const policy::Policy& policy) {
  policy::SchemaSnapshot out;
  out.read_at_us = unix_now_us();
  if (!conn) {
    out.error = "cannot connect to the upstream database: out of memory";
    return out;
  }
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    out.error = "cannot connect to the upstream database: " + trim(PQerrorMessage(conn.get()));
    return out;
  }
  try {
    read_into(conn.get(), policy, out);
    out.loaded = true;
  } catch (const QueryFailed& e) {
    policy::SchemaSnapshot failed;
    failed.read_at_us = out.read_at_us;
    failed.error = "reading the upstream catalogs failed: " + e.what;
    return failed;
  } catch (const std::exception& e) {  // std::stoi on a catalog value, bad_alloc
    policy::SchemaSnapshot failed;
    failed.read_at_us = out.read_at_us;
    failed.error = std::string("reading the upstream catalogs failed: ") + e.what();
    return failed;
  }
  return out;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> upstream_params(const policy::ProxySettings& proxy,
                                                                 int connect_timeout_seconds) {
  std::vector<std::pair<std::string, std::string>> p = {
      {"host", proxy.upstream_host},
      {"port", std::to_string(proxy.upstream_port)},
      {"user", proxy.upstream_user},
      {"application_name", "rowguard schema snapshot"},
      {"connect_timeout", std::to_string(connect_timeout_seconds)},
      {"sslmode", std::string(policy::to_string(proxy.upstream_tls))},
  };
  if (!proxy.upstream_password.empty()) p.emplace_back("password", proxy.upstream_password);
  if (proxy.upstream_database) p.emplace_back("dbname", *proxy.upstream_database);
  if (proxy.upstream_tls == policy::UpstreamTls::kVerifyFull && !proxy.upstream_ca.empty()) p.emplace_back("sslrootcert", proxy.upstream_ca);
  return p;
}

policy::SchemaSnapshot read_schema(const policy::Policy& policy,
                                   const std::vector<std::pair<std::string, std::string>>& params) {
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : params) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  return read_with(Conn(PQconnectdbParams(keys.data(), values.data(), 0)), policy);
}

policy::SchemaSnapshot read_schema(const policy::Policy& policy, const std::string& conninfo) {
  return read_with(Conn(PQconnectdb(conninfo.c_str())), policy);
}

}  // namespace rowguard::tools
