// `rowguard check FILE --against URL` (see check_upstream.h). Only the rowguard executable links
// libpq; the proxy itself speaks the protocol on its own.
#include "proxy/tools/pq.h"
#include "proxy/tools/check_upstream.h"

#include "policy/schema_report.h"
#include "proxy/tools/schema_loader.h"

#include <libpq-fe.h>

#include <memory>
#include <set>

namespace rowguard::tools {

namespace {

using pq::Conn;
using pq::Result;
using pq::trim;
using pq::exec;
using pq::quoted;




}  // namespace

UpstreamCheck check_against(const policy::Policy& policy, const std::string& conninfo) {
  UpstreamCheck out;
  Conn conn(PQconnectdb(conninfo.c_str()));
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
    out.connect_error = conn ? trim(PQerrorMessage(conn.get())) : "out of memory";
    return out;
  }
  // Every listed table: does it exist, and does it have its tenant column? Which of its keys
  // cross tenants? (The same snapshot and report as rowguard's start-up.)
  const policy::SchemaSnapshot schema = read_schema(policy, conninfo);
  if (!schema.loaded) {
    out.errors.push_back(schema.error);
    return out;
  }
  const policy::SchemaReport report = policy::report_schema(policy, schema);
  out.errors = report.errors;
  out.warnings = report.warnings;
  std::set<std::string> columns{policy.default_column};
  for (const auto& [name, rule] : policy.tables) {
    if (!rule.global) columns.insert(rule.column);
  }
  // Tables that look tenant-scoped but are not in the policy (tenants cannot use them).
  std::string names = "{";
  for (const auto& c : columns) {
    if (names.size() > 1) names += ",";
    names += "\"";
    for (char ch : c) {
      if (ch == '"' || ch == '\\') names += '\\';
      names += ch;
    }
    names += "\"";
  }
  names += "}";
  constexpr const char* kCandidates =
      "SELECT n.nspname, c.relname, a.attname "
      "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
      "WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY ($1::text[]) "
      "AND c.relkind IN ('r', 'p', 'v', 'm', 'f') "
      "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' "
      "ORDER BY 1, 2, 3";
  Result r = exec(conn.get(), kCandidates, {names});
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    out.errors.push_back("listing tables with a tenant column failed: " + trim(PQresultErrorMessage(r.get())));
    return out;
  }
  std::set<std::string> reported;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    policy::QualifiedName name{PQgetvalue(r.get(), i, 0), PQgetvalue(r.get(), i, 1)};
    if (policy.table(name) != nullptr || !reported.insert(name.to_string()).second) continue;
    out.warnings.push_back("table " + quoted(name.to_string()) + " has a tenant column " +
                           quoted(PQgetvalue(r.get(), i, 2)) +
                           " but is not in the policy (tenants cannot use it; add [tables." +
                           quoted(name.to_string()) + "] if they should)");
  }
  return out;
}

}  // namespace rowguard::tools
