// See sequence_check.h.
#include "sqlrewrite/sequence_check.h"

#include "sqlrewrite/check_text.h"

#include "pg_query/pg_query.pb.h"

#include <vector>

namespace rowguard::sqlrewrite {
namespace {

using check_text::q;

std::string rule_text() { return "(rule: " + std::string(kRuleSequences) + ")"; }

// The name parts of a regclass literal as PostgreSQL's regclassin reads them
// (stringToQualifiedNameList / SplitIdentifierString): unquoted parts are folded to lower case,
// "quoted" parts kept with "" as a quote. Anything else (spaces, empty parts, odd characters):
// nullopt, refused.
std::optional<std::vector<std::string>> split_name(std::string_view s) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (true) {
    std::string part;
    if (i < s.size() && s[i] == '"') {
      ++i;
      while (true) {
        if (i >= s.size()) return std::nullopt;
        if (s[i] == '"') {
          if (i + 1 < s.size() && s[i + 1] == '"') {
            part += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        part += s[i++];
      }
      if (part.empty()) return std::nullopt;
    } else {
      while (i < s.size() && s[i] != '.') {
        char c = s[i++];
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                        (!part.empty() && ((c >= '0' && c <= '9') || c == '$'));
        if (!ok) return std::nullopt;
        part += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
      }
      if (part.empty()) return std::nullopt;
    }
    parts.push_back(std::move(part));
    if (i == s.size()) break;
    if (s[i] != '.') return std::nullopt;
    ++i;
  }
  return parts;
}

std::string quote(const std::string& ident) {
  std::string out = "\"";
  for (char c : ident) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// The string literal of `arg` ('seq' or 'seq'::regclass), or null.
pg_query::String* literal(pg_query::Node& arg) {
  pg_query::Node* n = &arg;
  if (n->has_type_cast()) {
    auto& cast = *n->mutable_type_cast();
    if (!cast.has_type_name() || !cast.has_arg()) return nullptr;
    const auto& names = cast.type_name().names();
    if (names.empty() || !names[names.size() - 1].has_string() ||
        names[names.size() - 1].string().sval() != "regclass" || cast.type_name().array_bounds_size() > 0) {
      return nullptr;
    }
    if (names.size() == 2 && (!names[0].has_string() || names[0].string().sval() != "pg_catalog")) return nullptr;
    if (names.size() > 2) return nullptr;
    n = cast.mutable_arg();
  }
  if (!n->has_a_const() || n->a_const().isnull() || !n->a_const().has_sval()) return nullptr;
  return n->mutable_a_const()->mutable_sval();
}

// True when a column default of a tenant-scoped policy table draws from `sequence`.
bool tenant_sequence(const policy::TenantScope& scope, const std::string& sequence) {
  for (const auto& [name, info] : scope.schema->tables) {
    const policy::TableRule* rule = scope.table(name);
    if (rule == nullptr || rule->global) continue;
    for (const auto& c : info.columns) {
      if (c.default_sequence == sequence) return true;
    }
  }
  return false;
}

}  // namespace

bool is_sequence_function(std::string_view name) {
  return name == "nextval" || name == "currval" || name == "setval" || name == "lastval";
}

std::optional<std::string> check_sequence_call(pg_query::FuncCall& call, std::string_view name, const policy::TenantScope& scope) {
  const std::string fn = std::string(name);
  if (name == "setval") {
    return "function \"setval\" is not allowed: a sequence is shared by all tenants, and setval changes the values "
           "other tenants' inserts get " + rule_text();
  }
  if (name == "lastval") {
    return "function \"lastval\" is not allowed: it names no sequence, and can return a value of one the tenant cannot "
           "reach (advanced by a trigger); use currval('sequence') or INSERT ... RETURNING " + rule_text();
  }
  if (call.args_size() != 1 || call.agg_star() || call.agg_distinct() || call.func_variadic() ||
      call.agg_order_size() > 0 || call.has_agg_filter() || call.has_over()) {
    return "function " + q(fn) + " needs exactly one argument, a literal sequence name " + rule_text();
  }
  pg_query::String* sval = literal(*call.mutable_args(0));
  if (sval == nullptr) {
    return "function " + q(fn) + " needs a literal sequence name ('seq' or 'seq'::regclass), so that rowguard can "
           "check which sequence it reads " + rule_text();
  }
  auto parts = split_name(sval->sval());
  if (!parts || parts->size() > 2) {
    return "function " + q(fn) + ": " + q(sval->sval()) + " is not a sequence name rowguard can read " + rule_text();
  }
  const std::string schema = parts->size() == 2 ? (*parts)[0] : "public";
  const std::string& seq = parts->back();
  const std::string qualified = schema + "." + seq;
  if (scope.schema == nullptr || !scope.schema->loaded) {
    return "function " + q(fn) + "(" + q(qualified) + "): the schema is not known yet (rowguard has not read which "
           "sequences the policy tables use) " + rule_text();
  }
  if (!tenant_sequence(scope, qualified)) {
    return "function " + q(fn) + "(" + q(qualified) + ") is not allowed: it is not the default sequence of a column of "
           "a tenant-scoped policy table, and its values tell about activity the tenant cannot see " + rule_text();
  }
  sval->set_sval(quote(schema) + "." + quote(seq));
  return std::nullopt;
}

}  // namespace rowguard::sqlrewrite
