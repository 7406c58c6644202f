// The RLS backstop's SQL (see rls_sql.h).
#include "policy/rls_sql.h"

namespace rowguard::policy {
namespace {

std::string ident(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// A string constant that reads the same whatever standard_conforming_strings is.
std::string literal(std::string_view s) {
  const bool backslash = s.find('\\') != std::string_view::npos;
  std::string out = backslash ? "E'" : "'";
  for (char c : s) {
    if (c == '\'' || (backslash && c == '\\')) out += c;
    out += c;
  }
  return out + "'";
}

std::string table_name(const QualifiedName& n) { return ident(n.schema) + "." + ident(n.name); }

// A type name as format_type() prints it or an operator types it: no statement separators,
// comments or string literals.
bool plain_type_name(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  for (char c : t) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == ' ' || c == '.' || c == '(' || c == ')' || c == ',' || c == '"' || c == '[' || c == ']';
    if (!ok) return false;
  }
  return true;
}

std::string bypass_expression() {
  return "current_setting(" + literal(kBypassSetting) + ", true) = 'on'";
}

}  // namespace

std::string rls_tenant_expression(const std::string& column, const std::string& type) {
  // missing_ok: a session without the setting compares with NULL, so sees no row and writes
  // none. (Without it, the planner's estimate of the comparison already raises an error, for
  // bypass sessions too.)
  std::string setting = "current_setting(" + literal(kTenantSetting) + ", true)";
  std::string compare = type.empty() ? ident(column) + "::text = " + setting
                                     : ident(column) + " = " + setting + "::" + type;
  return bypass_expression() + " OR " + compare;
}

std::optional<std::string> rls_sql(const Policy& policy, const RlsSqlOptions& options, std::string& error) {
  if (!options.column_type.empty() && !plain_type_name(options.column_type)) {
    error = "--type \"" + options.column_type + "\" is not a plain type name";
    return std::nullopt;
  }
  std::string out;
  out += "-- rowguard RLS backstop for " + (policy.source.empty() ? std::string("the policy") : policy.source) + "\n";
  out += "-- Run as the tables' owner (or a superuser); safe to run again. With [tenancy] backstop = \"rls\"\n";
  out += "-- rowguard sets " + std::string(kTenantSetting) + " (tenants) or " + std::string(kBypassSetting) +
         " = 'on' (bypass users)\n";
  out += "-- on its upstream sessions. The upstream role must not be a superuser or have BYPASSRLS\n";
  out += "-- (both skip RLS, even FORCEd). Other sessions on these tables must set one of the two\n";
  out += "-- (e.g. migrations: SET " + std::string(kBypassSetting) + " = 'on'); without either, a session\n";
  out += "-- sees no row of a tenant table and can write none.\n";
  out += "BEGIN;\n";
  for (const auto& [name, rule] : policy.tables) {
    const std::string t = table_name(name);
    const TableInfo* info = policy.schema && policy.schema->loaded ? policy.schema->table(name) : nullptr;
    out += "\n";
    if (info != nullptr && info->relkind == 'v') {
      out += "-- " + t + " is a view: RLS cannot be enabled on a view. Make it read its tables with the\n";
      out += "-- caller's rights so their policies apply: ALTER VIEW " + t + " SET (security_invoker = on);\n";
      continue;
    }
    if (rule.global) {
      out += "-- " + t + ": global (every tenant reads; only bypass sessions write)\n";
    } else {
      out += "-- " + t + ": tenant column " + ident(rule.column) + "\n";
    }
    out += "ALTER TABLE " + t + " ENABLE ROW LEVEL SECURITY;\n";
    out += "ALTER TABLE " + t + " FORCE ROW LEVEL SECURITY;\n";
    out += "DROP POLICY IF EXISTS " + std::string(kRlsReadPolicyName) + " ON " + t + ";\n";
    out += "DROP POLICY IF EXISTS " + std::string(kRlsPolicyName) + " ON " + t + ";\n";
    if (rule.global) {
      out += "CREATE POLICY " + std::string(kRlsReadPolicyName) + " ON " + t + " FOR SELECT USING (true);\n";
      const std::string e = bypass_expression();
      out += "CREATE POLICY " + std::string(kRlsPolicyName) + " ON " + t + "\n  USING (" + e + ")\n  WITH CHECK (" + e +
             ");\n";
      continue;
    }
    std::string type = options.column_type;
    if (info != nullptr) {
      if (const ColumnInfo* c = info->column(rule.column); c != nullptr && plain_type_name(c->type_name)) {
        type = c->type_name;
      }
    }
    const std::string e = rls_tenant_expression(rule.column, type);
    out += "CREATE POLICY " + std::string(kRlsPolicyName) + " ON " + t + "\n  USING (" + e + ")\n  WITH CHECK (" + e +
           ");\n";
    if (info != nullptr && !info->children.empty()) {
      out += "-- Partitions and inheritance children of " + t + " queried by name need their own policy:\n";
      for (const auto& child : info->children) out += "--   " + table_name(child) + "\n";
    }
  }
  out += "\nCOMMIT;\n";
  return out;
}

std::optional<std::vector<std::pair<std::string, std::string>>> backstop_startup_params(
    const std::optional<std::string>& tenant) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!tenant) {
    out.emplace_back(kBypassSetting, "on");
    return out;
  }
  if (tenant->empty() || tenant->find('\0') != std::string::npos) return std::nullopt;
  out.emplace_back(kTenantSetting, *tenant);
  out.emplace_back(kBypassSetting, "off");
  return out;
}

std::optional<std::string> backstop_setup_sql(const std::optional<std::string>& tenant, bool local) {
  auto params = backstop_startup_params(tenant);
  if (!params) return std::nullopt;
  std::string sql = "SELECT ";
  bool first = true;
  for (const auto& [name, value] : *params) {
    if (!first) sql += ", ";
    first = false;
    sql += "pg_catalog.set_config(" + literal(name) + ", " + literal(value) + ", " + (local ? "true" : "false") + ")";
  }
  return sql;
}

}  // namespace rowguard::policy
