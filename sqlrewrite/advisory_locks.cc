// Advisory locks per tenant: the key arguments become a hash of (tenant, form, keys)
// (advisory_locks.h).
#include "sqlrewrite/advisory_locks.h"

#include <algorithm>
#include <array>
#include <stdexcept>

#include "sqlrewrite/pg_query_api.h"

namespace rowguard::sqlrewrite {
namespace {

using pg_query::Node;

constexpr std::string_view kTenantPlaceholder = "rowguard_advisory_tenant";

// The key expressions, with $1 / $2 standing for the call's arguments and a placeholder string
// for the tenant. Parsed once; every call copies the tree and fills the holes.
std::string hash_sql(std::string_view key_text) {
  return "pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to('" + std::string(kTenantPlaceholder) +
         "', 'UTF8') || pg_catalog.decode('00', 'hex') || pg_catalog.convert_to(" + std::string(key_text) + ", 'UTF8')), 'hex')";
}

// Both forms become one bigint key: each argument appears once in the expression, so a
// volatile key expression is evaluated once, as PostgreSQL would.
std::string template_sql(int args) {
  const std::string key = args == 1 ? "'a:' || pg_catalog.to_hex($1 + 0::int8)"
                                    : "'b:' || pg_catalog.to_hex($1 + 0::int4) || ':' || pg_catalog.to_hex($2 + 0::int4)";
  return "SELECT ('x' || pg_catalog.\"left\"(" + hash_sql(key) + ", 16))::bit(64)::int8";
}

Node parse_template(int args) {
  ParseOutput p = parse_sql(template_sql(args));
  if (!p.ok || p.tree.stmts_size() != 1 || !p.tree.stmts(0).stmt().has_select_stmt() ||
      p.tree.stmts(0).stmt().select_stmt().target_list_size() != 1) {
    throw std::logic_error("advisory lock template does not parse: " + p.error);
  }
  return p.tree.stmts(0).stmt().select_stmt().target_list(0).res_target().val();
}

const Node& key_template(int args) {
  static const Node kOne = parse_template(1);
  static const Node kTwo = parse_template(2);
  return args == 1 ? kOne : kTwo;
}

// Replaces $n by keys[n-1] and the tenant placeholder by a tenant literal, everywhere in m.
void fill(google::protobuf::Message& m, const std::vector<Node>& keys, const std::function<Node()>& tenant_literal) {
  const auto* d = m.GetDescriptor();
  const auto* r = m.GetReflection();
  if (d == Node::descriptor()) {
    auto& n = static_cast<Node&>(m);
    if (n.has_param_ref()) {
      n = keys.at(static_cast<size_t>(n.param_ref().number() - 1));
      return;
    }
    if (n.has_a_const() && n.a_const().has_sval() && n.a_const().sval().sval() == kTenantPlaceholder) {
      n = tenant_literal();
      return;
    }
  }
  for (int i = 0; i < d->field_count(); ++i) {
    const auto* f = d->field(i);
    if (f->cpp_type() != google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_repeated()) {
      for (int k = 0; k < r->FieldSize(m, f); ++k) fill(*r->MutableRepeatedMessage(&m, f, k), keys, tenant_literal);
    } else if (r->HasField(m, f)) {
      fill(*r->MutableMessage(&m, f), keys, tenant_literal);
    }
  }
}

std::string rule_text() { return "(rule: " + std::string(kRuleAdvisoryLocks) + ")"; }

}  // namespace

bool is_advisory_lock_function(std::string_view name) {
  static constexpr auto kNames = std::to_array<std::string_view>({
      "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared",
      "pg_advisory_xact_lock", "pg_advisory_xact_lock_shared", "pg_try_advisory_xact_lock",
      "pg_try_advisory_xact_lock_shared", "pg_advisory_unlock", "pg_advisory_unlock_shared",
      "pg_advisory_unlock_all"});
  return std::find(kNames.begin(), kNames.end(), name) != kNames.end();
}

std::optional<std::string> rewrite_advisory_lock_call(pg_query::FuncCall& call, std::string_view name,
                                                      const std::function<Node()>& tenant_literal) {
  const std::string fn = "\"" + std::string(name) + "\"";
  if (call.agg_star() || call.agg_distinct() || call.func_variadic() || call.agg_order_size() > 0 ||
      call.has_agg_filter() || call.has_over() || call.agg_within_group()) {
    return "function " + fn + " must be called with plain positional arguments " + rule_text();
  }
  for (const auto& a : call.args()) {
    if (a.has_named_arg_expr()) {
      return "function " + fn + " must be called with positional arguments (named arguments are not mapped into the "
             "tenant's key space) " + rule_text();
    }
  }
  if (name == "pg_advisory_unlock_all") {
    if (call.args_size() != 0) return "function " + fn + " takes no arguments " + rule_text();
    return std::nullopt;  // the session's own locks only
  }
  const int n = call.args_size();
  if (n != 1 && n != 2) {
    return "function " + fn + " takes one bigint key or two int4 keys " + rule_text();
  }
  std::vector<Node> keys(call.args().begin(), call.args().end());
  Node key = key_template(n);
  fill(key, keys, tenant_literal);
  call.clear_args();
  *call.add_args() = std::move(key);
  return std::nullopt;
}

}  // namespace rowguard::sqlrewrite
