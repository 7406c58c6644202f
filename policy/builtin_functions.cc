// The allowlist of PostgreSQL builtin functions a tenant's statement may call.
//
// Rule for an entry: the function is a pure computation over its arguments (or reads only the
// caller's own session state), runs no SQL text, reads no table, file or other session, and
// changes nothing outside the statement. Everything not listed is denied: functions that run SQL
// (query_to_xml, table_to_xml, cursor_to_xml, database_to_xml, schema_to_xml, ...), dblink*,
// large objects (lo_*), files (pg_read_file, pg_ls_dir, ...), administration
// (pg_terminate_backend, pg_reload_conf, set_config, ...), statistics (pg_stat_*), sizes
// (pg_relation_size, ...), transaction ids and snapshots (txid_current, pg_current_xact_id,
// pg_current_snapshot, ...: they count every tenant's write transactions) and every
// user-defined function unless [functions] allow lists it.
#include <algorithm>
#include <array>
#include <optional>
#include <string_view>

#include "policy/policy.h"

namespace rowguard::policy {
namespace {

// Sorted at compile time below; keep entries lower case, grouped by kind.
constexpr auto kAllowed = std::to_array<std::string_view>({
    // aggregates
    "array_agg", "avg", "bit_and", "bit_or", "bit_xor", "bool_and", "bool_or", "count", "every",
    "json_agg", "json_object_agg", "jsonb_agg", "jsonb_object_agg", "max", "min", "string_agg",
    "sum", "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp", "corr",
    "covar_pop", "covar_samp", "regr_avgx", "regr_avgy", "regr_count", "regr_intercept",
    "regr_r2", "regr_slope", "regr_sxx", "regr_sxy", "regr_syy", "mode", "percentile_cont",
    "percentile_disc", "xmlagg", "range_agg", "range_intersect_agg",
    // window functions
    "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
    "first_value", "last_value", "nth_value",
    // conditional / comparison
    "coalesce", "nullif", "greatest", "least", "num_nulls", "num_nonnulls",
    // math
    "abs", "cbrt", "ceil", "ceiling", "degrees", "div", "exp", "factorial", "floor", "gcd", "lcm",
    "ln", "log", "log10", "min_scale", "mod", "pi", "power", "radians", "round", "scale", "sign",
    "sqrt", "trim_scale", "trunc", "width_bucket", "random", "setseed", "acos", "asin", "atan",
    "atan2", "cos", "cot", "sin", "tan", "acosd", "asind", "atand", "atan2d", "cosd", "cotd",
    "sind", "tand", "sinh", "cosh", "tanh", "asinh", "acosh", "atanh",
    // strings
    "ascii", "bit_length", "btrim", "char_length", "character_length", "chr", "concat",
    "concat_ws", "format", "initcap", "left", "length", "lower", "lpad", "ltrim", "md5",
    "normalize", "octet_length", "overlay", "position", "quote_ident", "quote_literal",
    "quote_nullable", "regexp_count", "regexp_instr", "regexp_like", "regexp_match",
    "regexp_matches", "regexp_replace", "regexp_split_to_array", "regexp_split_to_table",
    "regexp_substr", "repeat", "replace", "reverse", "right", "rpad", "rtrim", "split_part",
    "starts_with", "string_to_array", "string_to_table", "strpos", "substr", "substring",
    "to_ascii", "to_hex", "translate", "trim", "upper", "unistr", "encode", "decode", "sha224",
    "similar_to_escape", "similar_escape", "like_escape",  // SIMILAR TO / LIKE ... ESCAPE
    "sha256", "sha384", "sha512", "convert", "convert_from", "convert_to", "get_byte", "set_byte",
    "get_bit", "set_bit", "bit_count",
    // formatting
    "to_char", "to_date", "to_number", "to_timestamp",
    // date / time
    "age", "clock_timestamp", "current_date", "date_bin", "date_part", "date_trunc", "extract",
    "isfinite", "justify_days", "justify_hours", "justify_interval", "make_date", "make_interval",
    "make_time", "make_timestamp", "make_timestamptz", "now", "statement_timestamp", "timeofday",
    "transaction_timestamp", "timezone", "overlaps",
    // arrays
    "array_append", "array_cat", "array_dims", "array_fill", "array_length", "array_lower",
    "array_ndims", "array_position", "array_positions", "array_prepend", "array_remove",
    "array_replace", "array_to_string", "array_upper", "cardinality", "trim_array", "unnest",
    // ranges
    "lower_inf", "upper_inf", "lower_inc", "upper_inc", "isempty", "range_merge", "int4range",
    "int8range", "numrange", "tsrange", "tstzrange", "daterange", "multirange",
    // json
    "to_json", "to_jsonb", "array_to_json", "row_to_json", "json_build_array", "jsonb_build_array",
    "json_build_object", "jsonb_build_object", "json_object", "jsonb_object", "json_array_length",
    "jsonb_array_length", "json_each", "jsonb_each", "json_each_text", "jsonb_each_text",
    "json_extract_path", "jsonb_extract_path", "json_extract_path_text", "jsonb_extract_path_text",
    "json_object_keys", "jsonb_object_keys", "json_array_elements", "jsonb_array_elements",
    "json_array_elements_text", "jsonb_array_elements_text", "json_typeof", "jsonb_typeof",
    "json_strip_nulls", "jsonb_strip_nulls", "jsonb_set", "jsonb_set_lax", "jsonb_insert",
    "jsonb_pretty", "jsonb_path_exists", "jsonb_path_match", "jsonb_path_query",
    "jsonb_path_query_array", "jsonb_path_query_first", "json_populate_record",
    "jsonb_populate_record", "json_to_record", "jsonb_to_record", "json_to_recordset",
    "jsonb_to_recordset",
    // uuid, misc pure
    "gen_random_uuid", "uuid_generate_v4", "generate_series", "generate_subscripts",
    "pg_typeof", "version", "current_setting", "current_database", "current_schema",
    "current_schemas", "inet_client_addr", "host", "masklen", "network", "family", "text",
    "hashtext", "int4", "int8", "float8", "numeric", "bool",
    // type conversions named like their type (stable only through timezone / lc_monetary)
    "date", "time", "timetz", "timestamp", "timestamptz", "money",
    // more function-style casts and constructors: immutable pg_catalog functions of their
    // arguments only (checked against PostgreSQL 15's pg_proc: every overload provolatile 'i')
    "float4", "int2", "interval", "bpchar", "varchar", "name", "char", "bit", "varbit",
    // geometric constructors and measures
    "point", "box", "circle", "lseg", "path", "polygon", "line", "area", "center", "diameter",
    "radius", "height", "width", "npoints", "isclosed", "isopen", "pclose", "popen", "diagonal",
    "slope", "bound_box", "close_ls", "lseg_length", "isvertical", "ishorizontal", "isparallel",
    // network addresses
    "inet", "cidr", "hostmask", "netmask", "broadcast", "abbrev", "set_masklen", "inet_same_family",
    "inet_merge", "macaddr", "macaddr8", "macaddr8_set7bit",
    // multirange constructors
    "int4multirange", "int8multirange", "nummultirange", "tsmultirange", "tstzmultirange",
    "datemultirange",
    // XML over values (the XML expressions xmlelement, xmlforest, xmlconcat, xmlparse, xmlpi,
    // xmlroot, xmlserialize, IS DOCUMENT and XMLTABLE are syntax, checked by the rewriter; PostgreSQL
    // loads no external entity). Not query_to_xml, table_to_xml, cursor_to_xml, schema_to_xml,
    // database_to_xml and their *_xmlschema / *_and_xmlschema forms: they run SQL text or read
    // whole tables.
    "xml", "xmlcomment", "xmlexists", "xpath", "xpath_exists", "xml_is_well_formed",
    "xml_is_well_formed_document", "xml_is_well_formed_content",
    // full text search over values (no table access)
    "to_tsvector", "to_tsquery", "plainto_tsquery", "phraseto_tsquery", "websearch_to_tsquery",
    "ts_rank", "ts_rank_cd", "ts_headline", "setweight", "strip", "numnode", "querytree",
    // catalog introspection used by psql and drivers: definitions of objects, never table data
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
    "pg_backend_pid", "pg_postmaster_start_time", "pg_size_pretty", "pg_get_indexdef",
    "array_in", "pg_column_is_updatable", "pg_relation_is_updatable", "pg_index_column_has_property",
    "pg_indexam_has_property", "pg_index_has_property", "pg_get_object_address",
    "pg_describe_object", "pg_identify_object",
    "current_user", "session_user", "pg_client_encoding", "pg_jit_available",
    "pg_relation_is_publishable", "pg_get_publication_tables", "pg_get_replica_identity_index",
    "pg_partition_root", "pg_partition_ancestors", "pg_options_to_table", "array_to_string",
    "unnest", "pg_get_constraintdef", "pg_tablespace_location",
    // nextval / currval: decided per call by sqlrewrite/sequence_check.h, not by name
});

constexpr auto kSorted = [] {
  auto a = kAllowed;
  std::sort(a.begin(), a.end());
  return a;
}();

struct OneArgFunction {
  std::string_view name;
  bool all_immutable;
};

constexpr auto kOneArg = std::to_array<OneArgFunction>({
#include "policy/builtin_function_names.inc"
});

constexpr auto kOperators = std::to_array<std::string_view>({
#include "policy/builtin_operator_names.inc"
});

constexpr bool by_name(const OneArgFunction& a, const OneArgFunction& b) { return a.name < b.name; }
static_assert(std::is_sorted(kOneArg.begin(), kOneArg.end(), by_name), "regenerate the .inc (sorted, COLLATE C)");
static_assert(std::is_sorted(kOperators.begin(), kOperators.end()), "regenerate the .inc (sorted, COLLATE C)");

}  // namespace

std::optional<bool> builtin_one_arg_function(std::string_view name) {
  auto it = std::lower_bound(kOneArg.begin(), kOneArg.end(), OneArgFunction{name, false}, by_name);
  if (it == kOneArg.end() || it->name != name) return std::nullopt;
  return it->all_immutable;
}

bool builtin_operator_name(std::string_view name) {
  return std::binary_search(kOperators.begin(), kOperators.end(), name);
}

bool builtin_function_allowed(std::string_view name) {
  return std::binary_search(kSorted.begin(), kSorted.end(), name);
}

std::span<const std::string_view> builtin_allowed_function_names() { return kSorted; }

}  // namespace rowguard::policy
