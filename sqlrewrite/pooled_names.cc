// Name translation of SQL-level prepared statements for transaction pooling (pooled_names.h).
#include "sqlrewrite/pooled_names.h"

#include "sqlrewrite/pg_query_api.h"

namespace rowguard::sqlrewrite {
namespace {

using pg_query::Node;

std::optional<std::string> deparse_one(const Node& stmt, int32_t version) {
  pg_query::ParseResult tree;
  tree.set_version(version);
  *tree.add_stmts()->mutable_stmt() = stmt;
  DeparseOutput d = deparse_sql(tree);
  if (!d.ok) return std::nullopt;
  return std::move(d.sql);
}

// The one statement of `text`, or nullptr.
Node* only_statement(ParseOutput& p) {
  if (!p.ok || p.tree.stmts_size() != 1 || !p.tree.stmts(0).has_stmt()) return nullptr;
  return p.tree.mutable_stmts(0)->mutable_stmt();
}

// The type name of a Parse-declared type OID rowguard can write in SQL, or "".
std::string_view type_name(int32_t oid) {
  switch (oid) {
    case 0: return "unknown";
    case 16: return "bool";
    case 17: return "bytea";
    case 20: return "int8";
    case 21: return "int2";
    case 23: return "int4";
    case 25: return "text";
    case 26: return "oid";
    case 114: return "json";
    case 700: return "float4";
    case 701: return "float8";
    case 705: return "unknown";
    case 1042: return "bpchar";
    case 1043: return "varchar";
    case 1082: return "date";
    case 1083: return "time";
    case 1114: return "timestamp";
    case 1184: return "timestamptz";
    case 1186: return "interval";
    case 1700: return "numeric";
    case 2950: return "uuid";
    case 3802: return "jsonb";
    default: return "";
  }
}

}  // namespace

std::optional<std::vector<std::string>> split_statements(std::string_view sql) {
  ParseOutput p = parse_sql(sql);
  if (!p.ok) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& raw : p.tree.stmts()) {
    if (!raw.has_stmt()) return std::nullopt;
    auto one = deparse_one(raw.stmt(), p.tree.version());
    if (!one) return std::nullopt;
    out.push_back(std::move(*one));
  }
  return out;
}

std::optional<std::string> rename_prepared(std::string_view statement, std::string_view name) {
  ParseOutput p = parse_sql(statement);
  Node* s = only_statement(p);
  if (s == nullptr) return std::nullopt;
  if (s->has_explain_stmt() && s->explain_stmt().has_query()) s = s->mutable_explain_stmt()->mutable_query();
  if (s->has_create_table_as_stmt() && s->create_table_as_stmt().has_query()) {
    s = s->mutable_create_table_as_stmt()->mutable_query();
  }
  if (s->has_prepare_stmt()) {
    s->mutable_prepare_stmt()->set_name(std::string(name));
  } else if (s->has_execute_stmt()) {
    s->mutable_execute_stmt()->set_name(std::string(name));
  } else if (s->has_deallocate_stmt() && !s->deallocate_stmt().name().empty()) {
    s->mutable_deallocate_stmt()->set_name(std::string(name));
  } else {
    return std::nullopt;
  }
  return deparse_one(p.tree.stmts(0).stmt(), p.tree.version());
}

std::optional<std::string> prepared_query(std::string_view prepare_statement) {
  ParseOutput p = parse_sql(prepare_statement);
  Node* s = only_statement(p);
  if (s == nullptr || !s->has_prepare_stmt() || !s->prepare_stmt().has_query()) return std::nullopt;
  return deparse_one(s->prepare_stmt().query(), p.tree.version());
}

std::optional<std::string> prepare_sql(std::string_view name, const std::vector<int32_t>& types,
                                       std::string_view statement) {
  ParseOutput p = parse_sql(statement);
  Node* s = only_statement(p);
  if (s == nullptr) return std::nullopt;
  Node prepare;
  auto* ps = prepare.mutable_prepare_stmt();
  ps->set_name(std::string(name));
  for (int32_t oid : types) {
    const std::string_view t = type_name(oid);
    if (t.empty()) return std::nullopt;
    auto* tn = ps->add_argtypes()->mutable_type_name();
    tn->add_names()->mutable_string()->set_sval("pg_catalog");
    tn->add_names()->mutable_string()->set_sval(std::string(t));
    tn->set_typemod(-1);
  }
  *ps->mutable_query() = std::move(*s);
  return deparse_one(prepare, p.tree.version());
}

}  // namespace rowguard::sqlrewrite
