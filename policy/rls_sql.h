#pragma once
// The RLS backstop ([tenancy] backstop = "rls"): PostgreSQL row-level security policies that
// mirror the policy file, and the session settings they read. Pure text generation, no I/O.
//
// Every tenant table gets RLS enabled and forced (the upstream role usually owns the tables,
// and owners skip RLS unless it is forced) and one policy, rowguard_tenant:
//   USING / WITH CHECK (current_setting('rowguard.bypass', true) = 'on'
//                       OR <column> = current_setting('rowguard.tenant', true)::<column type>)
// Global tables: everyone reads (rowguard_read, FOR SELECT), only bypass sessions write.
// rowguard sets rowguard.tenant (tenants) or rowguard.bypass (bypass users) on the upstream
// session; a session with neither compares with NULL: it sees no row of a tenant table and can
// write none (fail closed). Tenants can never set, reset or discard these settings (rowguard refuses
// SET / set_config() of any setting outside its allow-list and every startup parameter it does
// not know; DISCARD ALL and RESET return to the startup value rowguard sent).
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/policy.h"

namespace rowguard::policy {

inline constexpr std::string_view kTenantSetting = "rowguard.tenant";
inline constexpr std::string_view kBypassSetting = "rowguard.bypass";
inline constexpr std::string_view kRlsPolicyName = "rowguard_tenant";
inline constexpr std::string_view kRlsReadPolicyName = "rowguard_read";

struct RlsSqlOptions {
  // The tenant column's SQL type when the schema snapshot does not know it (rowguard rls-sql
  // --type). Empty and unknown: compare as text (correct, but the policy's own qual then cannot
  // use an index on the column; rowguard's rewritten qual still can).
  std::string column_type;
};

// The SQL script (idempotent: DROP POLICY IF EXISTS before every CREATE POLICY), to be run by
// the tables' owner or a superuser. std::nullopt + `error` when --type is not a plain type name.
std::optional<std::string> rls_sql(const Policy& policy, const RlsSqlOptions& options, std::string& error);

// The expression a tenant table's policy uses, e.g.
//   current_setting('rowguard.bypass', true) = 'on' OR "tenant_id" = current_setting('rowguard.tenant', true)::integer
// `type` empty: text comparison.
std::string rls_tenant_expression(const std::string& column, const std::string& type);

// The upstream session's backstop settings, as startup parameters (session mode: sent in the
// StartupMessage, so they cost no round trip and are the values RESET / DISCARD ALL return to).
// tenant nullopt: a bypass session. std::nullopt when the tenant value cannot be sent (a NUL).
std::optional<std::vector<std::pair<std::string, std::string>>> backstop_startup_params(
    const std::optional<std::string>& tenant);

// The same settings as one SQL statement, for a connection that changes hands (a transaction
// pooler sends it at every checkout; `local`: SET LOCAL semantics, i.e. set_config(..., true),
// for the start of a transaction). std::nullopt when the tenant value cannot be sent.
std::optional<std::string> backstop_setup_sql(const std::optional<std::string>& tenant, bool local);

}  // namespace rowguard::policy
