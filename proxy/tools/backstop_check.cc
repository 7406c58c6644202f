// The RLS backstop's start-up check (see backstop_check.h). Only the rowguard executable links
// libpq; the proxy itself speaks the protocol on its own.
#include "proxy/tools/pq.h"
#include "proxy/tools/backstop_check.h"

#include <libpq-fe.h>

#include <memory>

#include "policy/rls_sql.h"

namespace rowguard::tools {

namespace {

using pq::Conn;
using pq::Result;
using pq::trim;
using pq::exec;
using pq::quoted;




Conn connect(const policy::ProxySettings& s) {
  const std::string port = std::to_string(s.upstream_port);
  std::vector<const char*> keys = {"host", "port", "user", "password", "dbname", "sslmode", "connect_timeout",
                                   "application_name"};
  std::vector<const char*> values = {s.upstream_host.c_str(), port.c_str(), s.upstream_user.c_str(),
                                     s.upstream_password.c_str(), s.upstream_database->c_str(),
                                     policy::to_string(s.upstream_tls).data(), "10", "rowguard backstop check"};  // (a literal: NUL-terminated)
  if (!s.upstream_ca.empty()) {
    keys.push_back("sslrootcert");
    values.push_back(s.upstream_ca.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  return Conn(PQconnectdbParams(keys.data(), values.data(), 0));
}

}  // namespace

BackstopCheck check_backstop(const policy::Policy& policy) {
  BackstopCheck out;
  const auto& s = policy.proxy;
  if (s.upstream_user.empty() || !s.upstream_database) {
    out.errors.push_back("[tenancy] backstop = \"rls\" needs [proxy] upstream_user and upstream_database: rowguard "
                         "logs in there at start-up to check the RLS policies");
    return out;
  }
  Conn conn = connect(s);
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
    out.errors.push_back("cannot connect to the upstream database to check the RLS policies: " +
                         (conn ? trim(PQerrorMessage(conn.get())) : std::string("out of memory")));
    return out;
  }
  // Superusers and BYPASSRLS roles skip every policy, FORCE ROW LEVEL SECURITY included.
  Result role = exec(conn.get(), "SELECT rolsuper, rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = current_user", {});
  if (PQresultStatus(role.get()) != PGRES_TUPLES_OK || PQntuples(role.get()) != 1) {
    out.errors.push_back("cannot read the upstream role's attributes: " + trim(PQresultErrorMessage(role.get())));
  } else if (std::string(PQgetvalue(role.get(), 0, 0)) == "t" || std::string(PQgetvalue(role.get(), 0, 1)) == "t") {
    out.errors.push_back("upstream_user " + quoted(s.upstream_user) +
                         " is a superuser or has BYPASSRLS: PostgreSQL skips row-level security for it");
  }
  constexpr const char* kTable =
      "SELECT c.relkind::text, c.relrowsecurity, c.relforcerowsecurity, "
      "  (SELECT pg_catalog.pg_get_expr(p.polqual, p.polrelid) || ' / ' || "
      "          coalesce(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), '') "
      "   FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid AND p.polname = $3 "
      "   AND p.polcmd = '*' AND p.polpermissive AND p.polroles = '{0}'), "
      "  (SELECT pg_catalog.string_agg(p.polname, ', ' ORDER BY p.polname) FROM pg_catalog.pg_policy p "
      "   WHERE p.polrelid = c.oid AND p.polpermissive AND p.polname <> $3) "
      "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
      "WHERE n.nspname = $1 AND c.relname = $2";
  const std::string policy_name(policy::kRlsPolicyName);
  const std::string needle = "current_setting('" + std::string(policy::kTenantSetting) + "'::text, true)";
  for (const auto& [name, rule] : policy.tables) {
    const std::string t = quoted(name.to_string());
    Result r = exec(conn.get(), kTable, {name.schema, name.name, policy_name});
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
      out.errors.push_back("table " + t + ": " + trim(PQresultErrorMessage(r.get())));
      continue;
    }
    auto& problems = rule.global ? out.warnings : out.errors;
    if (PQntuples(r.get()) == 0) {
      problems.push_back("table " + t + " does not exist upstream");
      continue;
    }
    const std::string relkind = PQgetvalue(r.get(), 0, 0);
    if (relkind == "v" || relkind == "m") {
      problems.push_back("table " + t + " is a view: PostgreSQL RLS does not apply to it (make a view "
                         "security_invoker so its tables' policies apply)");
      continue;
    }
    if (std::string(PQgetvalue(r.get(), 0, 1)) != "t") problems.push_back("table " + t + " does not have row level security enabled");
    if (std::string(PQgetvalue(r.get(), 0, 2)) != "t") {
      problems.push_back("table " + t + " does not force row level security (its owner skips the policies)");
    }
    const std::string expr = PQgetisnull(r.get(), 0, 3) ? "" : PQgetvalue(r.get(), 0, 3);
    if (expr.empty()) {
      problems.push_back("table " + t + " has no permissive policy " + quoted(policy_name) + " for all commands and roles");
    } else if (!rule.global && expr.find(needle) == std::string::npos) {
      problems.push_back("table " + t + ": policy " + quoted(policy_name) + " does not compare with " + needle + ")");
    }
    if (!rule.global && !PQgetisnull(r.get(), 0, 4)) {
      problems.push_back("table " + t + " has other permissive policies (" + std::string(PQgetvalue(r.get(), 0, 4)) +
                         "): they are OR-ed with " + quoted(policy_name) + " and could widen what a tenant sees");
    }
  }
  return out;
}

}  // namespace rowguard::tools
