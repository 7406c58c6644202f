#pragma once
// Rule names of the rewriter's refusals that have no module of their own (issue #17: every
// refusal names its rule, "(rule: <name>)", which the audit log and rowguard_denials_total{rule}
// report). The modules' own rules live in their headers (kRuleDeparseCheck, kRuleSequences, ...);
// README.md "Refusal rules" lists them all.
#include <string>
#include <string_view>

namespace rowguard::sqlrewrite {

// A parse tree rowguard does not expect (malformed, a form it does not know): it refuses what it
// cannot check.
inline constexpr std::string_view kRuleCannotCheck = "rowguard denies what it cannot check";
// A statement kind not allowed for tenants, also inside EXPLAIN, PREPARE and DECLARE; two-phase commit.
inline constexpr std::string_view kRuleStatementKinds = "statement_kinds";
// COPY options, formats and forms rowguard cannot check row by row.
inline constexpr std::string_view kRuleCopyOptions = "copy_options";
// A system catalog outside rowguard's catalog allowlist, or one the allowlist denies; writes to catalogs.
inline constexpr std::string_view kRuleCatalogAllowlist = "catalog_allowlist";
// A three-part name naming another database.
inline constexpr std::string_view kRuleCrossDatabase = "cross_database";
// A setting over its [limits.settings] ceiling.
inline constexpr std::string_view kRuleSettingLimits = "limits.settings";
// A PREPARE parameter feeding the tenant column declared with a type rowguard cannot check.
inline constexpr std::string_view kRuleTenantParameterTypes = "tenant_parameter_types";
// LISTEN / NOTIFY / UNLISTEN channel names.
inline constexpr std::string_view kRuleChannels = "channels are private to a tenant";

// " (rule: <name>)", appended to a refusal's reason.
inline std::string rule_suffix(std::string_view rule) { return " (rule: " + std::string(rule) + ")"; }

}  // namespace rowguard::sqlrewrite
