// The catalog allowlist and masks, as data. One entry per relation, with the reason.
// Relations of pg_catalog / information_schema not listed here are denied.
#include "policy/catalogs.h"

#include <algorithm>
#include <array>

namespace rowguard::policy {
namespace {

using Kind = CatalogRule::Kind;

struct Entry {
  std::string_view schema;
  std::string_view name;
  CatalogRule rule;
};

constexpr CatalogRule kReadable{Kind::kReadable, {}, {}};
constexpr CatalogRule deny(std::string_view why) { return {Kind::kDenied, {}, why}; }

// pg_class: relpages / reltuples / relallvisible are the size and row count of every table, all
// tenants together; relfrozenxid / relminmxid are transaction ids (age() of them counts every
// tenant's write transactions). The substitute keeps every column (same names and order, same
// types except those two): they read as the text '0', not as an xid, because a column of type xid
// makes an untyped literal or parameter unified with it (COALESCE('3', relfrozenxid), CASE,
// NULLIF, an untyped $1) an xid of the tenant's choosing, whose age() is the transaction counter
// (red team 3). age() / mxid_age() of them is then an error, as of any text.
constexpr std::string_view kPgClassSubstitute =
    "SELECT oid, relname, relnamespace, reltype, reloftype, relowner, relam, relfilenode, "
    "reltablespace, 0::integer AS relpages, (-1)::real AS reltuples, 0::integer AS relallvisible, "
    "reltoastrelid, relhasindex, relisshared, relpersistence, relkind, relnatts, relchecks, "
    "relhasrules, relhastriggers, relhassubclass, relrowsecurity, relforcerowsecurity, "
    "relispopulated, relreplident, relispartition, relrewrite, '0'::text AS relfrozenxid, "
    "'0'::text AS relminmxid, relacl, "
    "reloptions, relpartbound FROM pg_catalog.pg_class";

// pg_database: datfrozenxid / datminmxid are transaction ids, like pg_class's (text '0' as there).
constexpr std::string_view kPgDatabaseSubstitute =
    "SELECT oid, datname, datdba, encoding, datlocprovider, datistemplate, datallowconn, "
    "datconnlimit, '0'::text AS datfrozenxid, '0'::text AS datminmxid, dattablespace, datcollate, "
    "datctype, daticulocale, datcollversion, datacl FROM pg_catalog.pg_database";

constexpr auto kEntries = std::to_array<Entry>({
    // ---- pg_catalog: structure, readable (definitions only, no data of any table) ----
    {"pg_catalog", "pg_aggregate", kReadable},
    {"pg_catalog", "pg_am", kReadable},
    {"pg_catalog", "pg_amop", kReadable},
    {"pg_catalog", "pg_amproc", kReadable},
    {"pg_catalog", "pg_attrdef", kReadable},
    {"pg_catalog", "pg_attribute", kReadable},  // column definitions; attstattarget is a setting
    {"pg_catalog", "pg_cast", kReadable},
    {"pg_catalog", "pg_class", {Kind::kMasked, kPgClassSubstitute, "row counts and sizes (relpages, reltuples, relallvisible) are masked"}},
    {"pg_catalog", "pg_collation", kReadable},
    {"pg_catalog", "pg_constraint", kReadable},
    {"pg_catalog", "pg_conversion", kReadable},
    {"pg_catalog", "pg_database", {Kind::kMasked, kPgDatabaseSubstitute, "transaction ids (datfrozenxid, datminmxid) are masked"}},
    {"pg_catalog", "pg_depend", kReadable},
    {"pg_catalog", "pg_description", kReadable},  // comments on objects
    {"pg_catalog", "pg_enum", kReadable},
    {"pg_catalog", "pg_event_trigger", kReadable},
    {"pg_catalog", "pg_extension", kReadable},
    {"pg_catalog", "pg_index", kReadable},
    {"pg_catalog", "pg_indexes", kReadable},
    {"pg_catalog", "pg_inherits", kReadable},
    {"pg_catalog", "pg_language", kReadable},
    {"pg_catalog", "pg_matviews", kReadable},
    {"pg_catalog", "pg_namespace", kReadable},
    {"pg_catalog", "pg_opclass", kReadable},
    {"pg_catalog", "pg_operator", kReadable},
    {"pg_catalog", "pg_opfamily", kReadable},
    {"pg_catalog", "pg_partitioned_table", kReadable},
    {"pg_catalog", "pg_policies", kReadable},
    {"pg_catalog", "pg_policy", kReadable},
    {"pg_catalog", "pg_proc", kReadable},
    {"pg_catalog", "pg_range", kReadable},
    {"pg_catalog", "pg_rewrite", kReadable},
    {"pg_catalog", "pg_roles", kReadable},  // rolpassword shows as ********
    {"pg_catalog", "pg_rules", kReadable},
    {"pg_catalog", "pg_sequence", kReadable},  // parameters only; the current value is elsewhere
    {"pg_catalog", "pg_settings", kReadable},
    {"pg_catalog", "pg_tables", kReadable},
    {"pg_catalog", "pg_tablespace", kReadable},
    {"pg_catalog", "pg_timezone_abbrevs", kReadable},
    {"pg_catalog", "pg_timezone_names", kReadable},
    {"pg_catalog", "pg_trigger", kReadable},
    {"pg_catalog", "pg_ts_config", kReadable},
    {"pg_catalog", "pg_ts_config_map", kReadable},
    {"pg_catalog", "pg_ts_dict", kReadable},
    {"pg_catalog", "pg_ts_parser", kReadable},
    {"pg_catalog", "pg_ts_template", kReadable},
    {"pg_catalog", "pg_type", kReadable},
    {"pg_catalog", "pg_user", kReadable},
    {"pg_catalog", "pg_views", kReadable},
    {"pg_catalog", "pg_statistic_ext", kReadable},  // definitions; the data is pg_statistic_ext_data
    {"pg_catalog", "pg_publication", kReadable},  // psql's \d TABLE lists publications
    {"pg_catalog", "pg_publication_rel", kReadable},
    {"pg_catalog", "pg_publication_namespace", kReadable},
    {"pg_catalog", "pg_publication_tables", kReadable},
    {"pg_catalog", "pg_auth_members", kReadable},  // psql's \du
    {"pg_catalog", "pg_default_acl", kReadable},
    {"pg_catalog", "pg_init_privs", kReadable},
    {"pg_catalog", "pg_db_role_setting", kReadable},
    {"pg_catalog", "pg_shdescription", kReadable},
    {"pg_catalog", "pg_seclabel", kReadable},
    {"pg_catalog", "pg_seclabels", kReadable},
    {"pg_catalog", "pg_shseclabel", kReadable},
    {"pg_catalog", "pg_foreign_data_wrapper", kReadable},
    {"pg_catalog", "pg_foreign_server", kReadable},
    {"pg_catalog", "pg_foreign_table", kReadable},
    {"pg_catalog", "pg_transform", kReadable},
    {"pg_catalog", "pg_available_extensions", kReadable},
    {"pg_catalog", "pg_available_extension_versions", kReadable},
    {"pg_catalog", "pg_subscription", deny("holds connection strings with credentials")},
    // ---- pg_catalog: denied, each leaks other tenants' data or other sessions' activity ----
    {"pg_catalog", "pg_statistic", deny("column statistics hold values of every tenant's rows")},
    {"pg_catalog", "pg_statistic_ext_data", deny("extended statistics hold values of every tenant's rows")},
    {"pg_catalog", "pg_stats", deny("column statistics (most common values, histograms) hold every tenant's values")},
    {"pg_catalog", "pg_stats_ext", deny("extended statistics hold every tenant's values")},
    {"pg_catalog", "pg_stats_ext_exprs", deny("expression statistics hold every tenant's values")},
    {"pg_catalog", "pg_stat_activity", deny("shows other sessions' queries")},
    {"pg_catalog", "pg_locks", deny("shows other sessions' locks")},
    {"pg_catalog", "pg_prepared_xacts", deny("shows other sessions' prepared transactions")},
    {"pg_catalog", "pg_sequences", deny("shows every sequence's current value (other tenants' activity)")},
    {"pg_catalog", "pg_largeobject", deny("large objects are not tenant-scoped")},
    {"pg_catalog", "pg_largeobject_metadata", deny("large objects are not tenant-scoped")},
    {"pg_catalog", "pg_authid", deny("holds password hashes")},
    {"pg_catalog", "pg_shadow", deny("holds password hashes")},
    {"pg_catalog", "pg_user_mapping", deny("holds foreign-server credentials")},
    {"pg_catalog", "pg_user_mappings", deny("holds foreign-server credentials")},
    {"pg_catalog", "pg_hba_file_rules", deny("server configuration files")},
    {"pg_catalog", "pg_file_settings", deny("server configuration files")},
    {"pg_catalog", "pg_ident_file_mappings", deny("server configuration files")},
    {"pg_catalog", "pg_prepared_statements", deny("not meaningful through rowguard")},
    {"pg_catalog", "pg_cursors", deny("not meaningful through rowguard")},
    // ---- information_schema: views over the catalogs above (structure only) ----
    {"information_schema", "check_constraints", kReadable},
    {"information_schema", "column_privileges", kReadable},
    {"information_schema", "columns", kReadable},
    {"information_schema", "constraint_column_usage", kReadable},
    {"information_schema", "constraint_table_usage", kReadable},
    {"information_schema", "domains", kReadable},
    {"information_schema", "element_types", kReadable},
    {"information_schema", "key_column_usage", kReadable},
    {"information_schema", "parameters", kReadable},
    {"information_schema", "referential_constraints", kReadable},
    {"information_schema", "routines", kReadable},
    {"information_schema", "schemata", kReadable},
    {"information_schema", "sequences", kReadable},
    {"information_schema", "table_constraints", kReadable},
    {"information_schema", "table_privileges", kReadable},
    {"information_schema", "tables", kReadable},
    {"information_schema", "triggers", kReadable},
    {"information_schema", "views", kReadable},
});

// Every relation (table or view) of pg_catalog in PostgreSQL 15: an unqualified name that is one
// of these resolves to pg_catalog, whatever "public" holds.
constexpr auto kPgCatalogRelations = std::to_array<std::string_view>({
    "pg_aggregate", "pg_am", "pg_amop", "pg_amproc", "pg_attrdef", "pg_attribute",
    "pg_auth_members", "pg_authid", "pg_available_extension_versions", "pg_available_extensions",
    "pg_backend_memory_contexts", "pg_cast", "pg_class", "pg_collation", "pg_config",
    "pg_constraint", "pg_conversion", "pg_cursors", "pg_database", "pg_db_role_setting",
    "pg_default_acl", "pg_depend", "pg_description", "pg_enum", "pg_event_trigger",
    "pg_extension", "pg_file_settings", "pg_foreign_data_wrapper", "pg_foreign_server",
    "pg_foreign_table", "pg_group", "pg_hba_file_rules", "pg_ident_file_mappings", "pg_index",
    "pg_indexes", "pg_inherits", "pg_init_privs", "pg_language", "pg_largeobject",
    "pg_largeobject_metadata", "pg_locks", "pg_matviews", "pg_namespace", "pg_opclass",
    "pg_operator", "pg_opfamily", "pg_parameter_acl", "pg_partitioned_table", "pg_policies",
    "pg_policy", "pg_prepared_statements", "pg_prepared_xacts", "pg_proc", "pg_publication",
    "pg_publication_namespace", "pg_publication_rel", "pg_publication_tables", "pg_range",
    "pg_replication_origin", "pg_replication_origin_status", "pg_replication_slots",
    "pg_rewrite", "pg_roles", "pg_rules", "pg_seclabel", "pg_seclabels", "pg_sequence",
    "pg_sequences", "pg_settings", "pg_shadow", "pg_shdepend", "pg_shdescription",
    "pg_shmem_allocations", "pg_shseclabel", "pg_stat_activity", "pg_stat_all_indexes",
    "pg_stat_all_tables", "pg_stat_archiver", "pg_stat_bgwriter", "pg_stat_database",
    "pg_stat_database_conflicts", "pg_stat_gssapi", "pg_stat_progress_analyze",
    "pg_stat_progress_basebackup", "pg_stat_progress_cluster", "pg_stat_progress_copy",
    "pg_stat_progress_create_index", "pg_stat_progress_vacuum", "pg_stat_recovery_prefetch",
    "pg_stat_replication", "pg_stat_replication_slots", "pg_stat_slru", "pg_stat_ssl",
    "pg_stat_subscription", "pg_stat_subscription_stats", "pg_stat_sys_indexes",
    "pg_stat_sys_tables", "pg_stat_user_functions", "pg_stat_user_indexes",
    "pg_stat_user_tables", "pg_stat_wal", "pg_stat_wal_receiver", "pg_stat_xact_all_tables",
    "pg_stat_xact_sys_tables", "pg_stat_xact_user_functions", "pg_stat_xact_user_tables",
    "pg_statio_all_indexes", "pg_statio_all_sequences", "pg_statio_all_tables",
    "pg_statio_sys_indexes", "pg_statio_sys_sequences", "pg_statio_sys_tables",
    "pg_statio_user_indexes", "pg_statio_user_sequences", "pg_statio_user_tables",
    "pg_statistic", "pg_statistic_ext", "pg_statistic_ext_data", "pg_stats", "pg_stats_ext",
    "pg_stats_ext_exprs", "pg_subscription", "pg_subscription_rel", "pg_tables",
    "pg_tablespace", "pg_timezone_abbrevs", "pg_timezone_names", "pg_transform", "pg_trigger",
    "pg_ts_config", "pg_ts_config_map", "pg_ts_dict", "pg_ts_parser", "pg_ts_template",
    "pg_type", "pg_user", "pg_user_mapping", "pg_user_mappings", "pg_views",
});

constexpr auto kSortedRelations = [] {
  auto a = kPgCatalogRelations;
  std::sort(a.begin(), a.end());
  return a;
}();

}  // namespace

const CatalogRule* catalog_rule(std::string_view schema, std::string_view name) {
  for (const auto& e : kEntries) {
    if (e.schema == schema && e.name == name) return &e.rule;
  }
  return nullptr;
}

bool is_pg_catalog_relation(std::string_view name) {
  return std::binary_search(kSortedRelations.begin(), kSortedRelations.end(), name);
}

}  // namespace rowguard::policy
