#pragma once
// What rowguard knows about the upstream database beyond the policy file: the columns, keys and
// children of each policy table and the functions callable by name. Read over an upstream
// connection at start-up, at every reload and after DDL run by a bypass session; immutable once
// built. It travels with the policy: a Policy carries a shared_ptr<const SchemaSnapshot> (null
// or !loaded = unknown), so a new snapshot is a new Policy version, swapped atomically like a
// reload, and the rewrite caches keyed on the policy version are invalidated with it.
//
// Consumers must fail closed when the snapshot is unknown: refuse what needs it, with a message
// that says the schema is not known yet.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "policy/qualified_name.h"

namespace rowguard::policy {

struct ColumnInfo {
  std::string name;
  int attnum = 0;              // pg_attribute.attnum (1-based, no dropped columns)
  uint32_t type_oid = 0;
  std::string type_name;       // format_type(atttypid, atttypmod)
  bool not_null = false;
  bool has_default = false;
  bool generated = false;      // attgenerated = 's'
  bool identity = false;       // attidentity <> ''
  // The sequence its default draws from ("schema.name": serial, identity, or a default calling
  // nextval), "" when none. Every tenant's inserts draw from it.
  std::string default_sequence;
  // The sequence can still produce a value the column already holds (explicit ids stored above
  // its position, a descending or CYCLE sequence), or rowguard could not tell (the column does
  // not lead a unique index, so max() would scan; the read failed): its default is not fresh.
  bool sequence_behind = false;

  bool operator==(const ColumnInfo&) const = default;
};

// A unique index or constraint (primary keys included) of a table.
struct UniqueKey {
  std::string name;                  // the index (or constraint) name
  std::string constraint;            // the constraint name, "" for a bare unique index
  std::vector<std::string> columns;  // empty for an expression index
  std::vector<std::string> plain_columns;  // its plain key columns, also of an expression index
  bool primary = false;
  bool partial = false;              // has a WHERE predicate

  bool operator==(const UniqueKey&) const = default;
};

struct ForeignKey {
  std::string name;
  std::vector<std::string> columns;
  QualifiedName references;
  std::vector<std::string> referenced_columns;

  bool operator==(const ForeignKey&) const = default;
};

// A foreign key of any table (in the policy or not) that references this table, with its
// referential actions (pg_constraint confupdtype / confdeltype: 'a' no action, 'r' restrict,
// 'c' cascade, 'n' set null, 'd' set default). An action writes the referencing table as the
// constraint's owner, past rowguard. `via_cascade`: it references not this table but one that a
// chain of ON DELETE CASCADE keys deletes from when this table's rows are deleted
// (referenced_columns are then that table's).
struct ReferencingKey {
  std::string name;
  QualifiedName table;                          // the referencing table
  std::vector<std::string> columns;             // its referencing columns
  std::vector<std::string> referenced_columns;
  char on_update = 'a';
  char on_delete = 'a';
  bool via_cascade = false;

  bool operator==(const ReferencingKey&) const = default;
};

// A view or materialized view whose definition reads a table (pg_depend of the view's pg_rewrite
// rule on the table): it hands out the table's rows under its own name, past the filter rowguard
// puts on the table. schema_report.cc checks that the policy does not list it as global (or with a
// tenant column it does not expose).
struct DependentView {
  QualifiedName name;
  char relkind = 'v';                // v (view) or m (materialized view)
  std::vector<std::string> columns;  // its columns, in attnum order

  bool operator==(const DependentView&) const = default;
};

struct TableInfo {
  QualifiedName name;
  char relkind = 'r';                       // r, p (partitioned), v (view), m, f
  std::vector<ColumnInfo> columns;          // in attnum order
  std::vector<UniqueKey> unique_keys;
  std::vector<ForeignKey> foreign_keys;
  std::vector<ReferencingKey> referenced_by;  // foreign keys referencing it (and its cascade chains)
  std::vector<QualifiedName> children;      // inheritance children and partitions (direct)
  std::vector<std::string> exclusion_constraints;  // names of EXCLUDE constraints (arbiters too)
  std::vector<DependentView> views;         // views and materialized views reading it directly

  bool operator==(const TableInfo&) const = default;

  const ColumnInfo* column(std::string_view column_name) const {
    for (const auto& c : columns) {
      if (c.name == column_name) return &c;
    }
    return nullptr;
  }
};

struct SchemaSnapshot {
  bool loaded = false;                      // false: the upstream has not been read yet
  std::string error;                        // why the last read failed, when !loaded
  bool placement_mismatch = false;          // !loaded: the upstreams holding tenants have different schemas
  std::map<QualifiedName, TableInfo> tables;  // the policy tables found upstream
  // Every function name (pg_proc.proname) in the schemas a tenant's statement can name
  // unqualified (pg_catalog, public): attribute notation x.f means f(x) for these.
  std::set<std::string, std::less<>> function_names;
  int64_t read_at_us = 0;                   // unix time of the last read attempt (microseconds)

  const TableInfo* table(const QualifiedName& name) const {
    auto it = tables.find(name);
    return it == tables.end() ? nullptr : &it->second;
  }

  // Everything the rewriter reads is the same (the time of the read aside): installing `other`
  // in place of this one would change no rewrite (nor the schema report: TableInfo's == compares
  // every field, the views reading a table included).
  bool same_content(const SchemaSnapshot& other) const {
    return loaded == other.loaded && error == other.error && tables == other.tables &&
           function_names == other.function_names;
  }
};

}  // namespace rowguard::policy
