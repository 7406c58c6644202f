// The builtin functions and operators of pg_catalog, classified (policy/builtin_functions.h).
//
// A tenant's statement may call a builtin function whose every candidate is pure (computes from
// its arguments) or reads only the caller's own session. Everything else is denied: functions that
// run SQL (query_to_xml, table_to_xml, cursor_to_xml, database_to_xml, schema_to_xml, ts_stat,
// ts_rewrite(tsquery, text), ...), large objects (lo_*), files (pg_read_file, pg_ls_dir, ...),
// administration (pg_terminate_backend, pg_reload_conf, set_config, ...), statistics (pg_stat_*),
// sizes (pg_relation_size, ...), transaction ids and snapshots (txid_current, pg_current_xact_id,
// pg_current_snapshot, ...: they count every tenant's write transactions), sleeps, and every
// user-defined function unless [functions] allow lists it. The classes are generated
// (scripts/gen-builtin-functions); the two hand lists below are the catalog introspection psql
// and drivers need (unchanged) and the names allowed though pg_catalog has no function of theirs.
#include "policy/builtin_functions.h"

#include <algorithm>
#include <array>
#include <optional>
#include <string_view>

namespace rowguard::policy {
namespace {

constexpr auto kFunctions = std::to_array<BuiltinFunction>({
#include "policy/builtin_function_table.inc"
});

constexpr auto kOperators = std::to_array<BuiltinOperator>({
#include "policy/builtin_operator_table.inc"
});

constexpr bool function_before(const BuiltinFunction& a, const BuiltinFunction& b) {
  return a.name < b.name || (a.name == b.name && a.oid < b.oid);
}
constexpr bool operator_before(const BuiltinOperator& a, const BuiltinOperator& b) { return a.name < b.name; }
static_assert(std::is_sorted(kFunctions.begin(), kFunctions.end(), function_before), "regenerate the .inc (sorted, COLLATE C)");
static_assert(std::is_sorted(kOperators.begin(), kOperators.end(), operator_before), "regenerate the .inc (sorted, COLLATE C)");

// Catalog introspection used by psql and drivers: definitions of objects, never table data.
// Allowed by name whatever their class (most read the catalogs: reads_other_data).
constexpr auto kIntrospection = [] {
  auto a = std::to_array<std::string_view>({
      "pg_table_is_visible", "pg_type_is_visible", "pg_function_is_visible",
      "pg_operator_is_visible", "pg_opclass_is_visible", "pg_collation_is_visible",
      "pg_conversion_is_visible", "pg_ts_config_is_visible", "pg_ts_dict_is_visible",
      "pg_ts_parser_is_visible", "pg_ts_template_is_visible", "pg_statistics_obj_is_visible",
      "format_type", "pg_get_expr", "pg_get_indexdef", "pg_get_constraintdef", "pg_get_triggerdef",
      "pg_get_viewdef", "pg_get_ruledef", "pg_get_functiondef", "pg_get_function_arguments",
      "pg_get_function_result", "pg_get_function_identity_arguments", "pg_get_userbyid",
      "pg_get_partkeydef", "pg_get_partition_constraintdef", "pg_get_statisticsobjdef",
      "pg_get_statisticsobjdef_columns", "pg_get_serial_sequence", "obj_description",
      "col_description", "shobj_description", "pg_encoding_to_char", "pg_char_to_encoding",
      "has_table_privilege", "has_schema_privilege", "has_column_privilege",
      "has_database_privilege", "has_function_privilege", "has_sequence_privilege",
      "has_type_privilege", "pg_has_role", "to_regclass", "to_regtype", "to_regproc",
      "to_regprocedure", "to_regnamespace", "to_regrole", "pg_get_keywords", "pg_is_in_recovery",
      "pg_backend_pid", "pg_postmaster_start_time", "pg_size_pretty",
      "array_in", "pg_column_is_updatable", "pg_relation_is_updatable", "pg_index_column_has_property",
      "pg_indexam_has_property", "pg_index_has_property", "pg_get_object_address",
      "pg_describe_object", "pg_identify_object",
      "current_user", "session_user", "pg_client_encoding", "pg_jit_available",
      "pg_relation_is_publishable", "pg_get_publication_tables", "pg_get_replica_identity_index",
      "pg_partition_root", "pg_partition_ancestors", "pg_options_to_table", "array_to_string",
      "unnest", "pg_tablespace_location",
      "regclass", "oidvectortypes",  // the function-style cast regclass('t'); psql's completion
  });
  std::sort(a.begin(), a.end());
  return a;
}();

// Allowed by name though pg_catalog has no function of that name.
constexpr auto kNotInPgProc = std::to_array<std::string_view>({
    "inet",              // inet(x) is a function-style cast (PostgreSQL casts when no function exists)
    "uuid_generate_v4",  // uuid-ossp's random uuid, common in legacy SQL
});

bool introspection(std::string_view name) {
  return std::binary_search(kIntrospection.begin(), kIntrospection.end(), name);
}

// A candidate no SQL call can reach (see builtin_call in the header).
bool unreachable(const BuiltinFunction& f) {
  std::string_view args = f.args;
  while (!args.empty()) {
    const auto comma = args.find(',');
    std::string_view t = args.substr(0, comma);
    if (t.starts_with("VARIADIC ")) t.remove_prefix(9);
    if (t == "internal" || t == "xid" || t == "xid8" || t == "txid_snapshot" || t == "pg_snapshot") return true;
    if (comma == std::string_view::npos) break;
    args.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

std::string_view function_class_name(FunctionClass c) {
  switch (c) {
    case FunctionClass::kPure: return "pure";
    case FunctionClass::kSession: return "session";
    case FunctionClass::kReadsOtherData: return "reads_other_data";
    case FunctionClass::kRunsSql: return "runs_sql";
    case FunctionClass::kChangesState: return "changes_state";
    case FunctionClass::kSleepsOrBurns: return "sleeps_or_burns";
  }
  return "?";
}

std::span<const BuiltinFunction> builtin_functions() { return kFunctions; }

std::span<const BuiltinFunction> builtin_functions_named(std::string_view name) {
  const auto lo = std::lower_bound(kFunctions.begin(), kFunctions.end(), name,
                                   [](const BuiltinFunction& f, std::string_view n) { return f.name < n; });
  auto hi = lo;
  while (hi != kFunctions.end() && hi->name == name) ++hi;
  return {lo, hi};
}

std::span<const BuiltinOperator> builtin_operators() { return kOperators; }

BuiltinCall builtin_call(std::string_view name, std::optional<int> nargs) {
  BuiltinCall out;
  const bool listed = introspection(name) ||
                      std::find(kNotInPgProc.begin(), kNotInPgProc.end(), name) != kNotInPgProc.end();
  bool any = false;
  for (const BuiltinFunction& f : builtin_functions_named(name)) {
    if ((nargs && !f.accepts(*nargs)) || unreachable(f)) continue;
    any = true;
    if (!listed && !function_class_allowed(f.cls) && out.denied == nullptr) out.denied = &f;
  }
  if (listed) {
    out.verdict = BuiltinCall::Verdict::kAllowed;
  } else if (out.denied != nullptr) {
    out.verdict = BuiltinCall::Verdict::kDenied;
  } else {
    out.verdict = any ? BuiltinCall::Verdict::kAllowed : BuiltinCall::Verdict::kNotBuiltin;
  }
  return out;
}

bool builtin_function_allowed(std::string_view name, std::optional<int> nargs) {
  return builtin_call(name, nargs).verdict == BuiltinCall::Verdict::kAllowed;
}

std::span<const std::string_view> builtin_introspection_names() { return kIntrospection; }

std::optional<BuiltinOperatorCheck> builtin_operator(std::string_view name, std::optional<bool> prefix) {
  const auto range = std::equal_range(kOperators.begin(), kOperators.end(), BuiltinOperator{name, {}, {}, {}, {}},
                                      operator_before);
  std::optional<BuiltinOperatorCheck> out;
  for (auto it = range.first; it != range.second; ++it) {
    if (prefix && *prefix != it->left.empty()) continue;
    if (!out) out.emplace();
    if (!function_class_allowed(it->cls) && out->allowed) {
      out->allowed = false;
      out->denied = &*it;
    }
  }
  return out;
}

}  // namespace rowguard::policy
