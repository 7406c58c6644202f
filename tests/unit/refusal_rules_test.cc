// Issue #17: every refusal names its rule. Each refusal of the rewriter ends with "(rule: <name>)"
// (or "...; rule: <name>)"): the audit log's "rule" field and rowguard_denials_total{rule} are
// read from it (proxy/net/metrics.cc denial_rule). Two guards: one statement per deny site of
// sqlrewrite/*.cc must be refused with a rule, and a scan of sqlrewrite/*.cc finds any deny(...)
// whose text names no rule, so that a new refusal without one fails here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "policy/policy.h"
#include "sqlrewrite/rewriter.h"
#include "tests/support/tenant_keys_schema.h"
#include "tests/support/test_policy.h"

namespace rowguard::sqlrewrite {
namespace {

const policy::Policy& test_policy() {
  static const policy::PolicyPtr p = unit_test::with_tenant_keys(
      policy::parse_policy(test_support::test_policy_toml({.second_tenant = true}), "refusal_rules_test.toml"));
  return *p;
}

struct Refusal {
  const char* sql;
  const char* rule;  // the rule the refusal must name
};

// One statement per deny site (and per refusal a helper returns), with the rule it names.
const Refusal kRefusals[] = {
    // COPY
    {"COPY orders TO '/tmp/x'", "tenants COPY only FROM STDIN / TO STDOUT"},
    {"COPY orders (id, tenant_id) FROM STDIN WITH (FORMAT binary)", "copy_options"},
    {"COPY orders (id, tenant_id) FROM STDIN WITH (FORMAT xml)", "copy_options"},
    {"COPY orders (id, tenant_id) FROM STDIN WITH (DELIMITER 'ab')", "copy_options"},
    {"COPY orders (id, tenant_id) FROM STDIN WITH (QUOTE 'ab', FORMAT csv)", "copy_options"},
    {"COPY orders (id, tenant_id) FROM STDIN WITH (ENCODING 'LATIN1')", "copy_options"},
    {"COPY orders (id, tenant_id) FROM STDIN WITH (NULL '1')", "tables.\"public.orders\".column"},
    // tables, catalogs, databases
    {"SELECT * FROM audit_log", "unknown_tables = \"deny\""},
    {"SELECT * FROM otherdb.public.orders", "cross_database"},
    {"SELECT * FROM pg_catalog.pg_no_such_catalog", "catalog_allowlist"},
    {"SELECT * FROM pg_catalog.pg_authid", "catalog_allowlist"},
    {"INSERT INTO pg_catalog.pg_class (relname) VALUES ('x')", "catalog_allowlist"},
    {"UPDATE countries SET name = 'x'", "tables.\"public.countries\".global = true"},
    // statement kinds, also inside EXPLAIN and PREPARE; two-phase commit
    {"CREATE TABLE t (a int)", "only SELECT, INSERT, UPDATE, DELETE, transaction control, SET/SHOW of session "
                               "settings, DEALLOCATE and EXPLAIN"},
    {"EXPLAIN (COSTS OFF) CREATE TABLE t AS SELECT 1", "statement_kinds"},
    {"PREPARE TRANSACTION 'x'", "statement_kinds"},
    {"COMMIT PREPARED 'x'", "statement_kinds"},
    {"ROLLBACK PREPARED 'x'", "statement_kinds"},
    // session settings
    {"RESET ALL", "only session settings that cannot change name resolution, identity, string parsing or the tenant"},
    {"SET TIME ZONE INTERVAL '1 day'",
     "only session settings that cannot change name resolution, identity, string parsing or the tenant"},
    {"SET client_encoding = 'SJIS'",
     "only session settings that cannot change name resolution, identity, string parsing or the tenant"},
    {"SET search_path = other",
     "only session settings that cannot change name resolution, identity, string parsing or the tenant"},
    {"SET role = admin", "only session settings that cannot change name resolution, identity, string parsing or the tenant"},
    {"EXPLAIN SELECT 1", "explain_costs_off"},
    {"EXPLAIN (ANALYZE) SELECT 1", "no EXPLAIN ANALYZE for tenants"},
    // writes and the tenant column
    {"INSERT INTO orders SELECT * FROM orders", "tables.\"public.orders\".column"},
    {"INSERT INTO orders (id, tenant_id) VALUES (1, '2')", "tables.\"public.orders\".column"},
    {"UPDATE orders SET tenant_id = '2'", "tables.\"public.orders\".column"},
    {"INSERT INTO orders (tenant_id, tenant_id) VALUES ('1', '1')", "tables.\"public.orders\".column"},
    {"DELETE FROM countries", "tables.\"public.countries\".global = true"},
    // functions, casts, operators, system columns, channels
    {"SELECT pg_read_file('x')", "builtin allowlist and [functions] allow"},
    {"SELECT txid_current()", "transaction_ids"},
    {"SELECT 1::xid", "transaction_ids"},
    {"SELECT ctid FROM orders", "system_columns"},
    {"SELECT pg_notify(current_user, 'x')", "channels are private to a tenant"},
    {"LISTEN a012345678901234567890123456789012345678901234567890123456789012345",
     "channels are private to a tenant"},
    {"SELECT nextval('audit_log_id_seq')", "sequences"},
    {"SELECT * FROM orders TABLESAMPLE SYSTEM (10)", "system_columns"},
    {"SELECT * FROM orders TABLESAMPLE tsm_system_rows (10)", "builtin allowlist and [functions] allow"},
    {"SELECT * INTO newtable FROM orders", "no DDL for tenants"},
    {"DELETE FROM orders WHERE CURRENT OF c", "rowguard denies what it cannot check"},
};

TEST(RefusalRules, EveryDenySiteNamesItsRule) {
  for (const Refusal& c : kRefusals) {
    const RewriteResult r = rewrite(c.sql, test_policy(), "1");
    ASSERT_FALSE(r.allowed) << c.sql << " -> " << r.sql;
    EXPECT_NE(r.reason.find("rule: "), std::string::npos) << c.sql << " -> " << r.reason;
    const std::string named = "rule: " + std::string(c.rule) + ")";
    EXPECT_NE(r.reason.find(named), std::string::npos) << c.sql << " -> " << r.reason << "\n  expected " << named;
  }
}

// Every deny(...) of sqlrewrite/*.cc names a rule in its own text, or passes on a reason a helper
// returned (deny(*why)), whose rules kRefusals above checks. A rule: "rule: " in a literal, a
// kRule... constant through rule_suffix() / rule_text(), or the settings rule kSettingsRule.
TEST(RefusalRules, EveryDenyCallInTheSourcesNamesARule) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(ROWGUARD_SOURCE_DIR) / "sqlrewrite";
  ASSERT_TRUE(fs::is_directory(dir)) << dir;
  int calls = 0;
  std::string missing;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".cc") continue;
    std::ifstream in(entry.path());
    std::stringstream buf;
    buf << in.rdbuf();
    const std::string src = buf.str();
    for (size_t at = src.find("deny("); at != std::string::npos; at = src.find("deny(", at + 5)) {
      // Skip declarations and other names ending in deny( (e.g. "deparse_check_denial(").
      if (at > 0 && (std::isalnum(static_cast<unsigned char>(src[at - 1])) || src[at - 1] == '_')) continue;
      // The call's argument: up to the matching parenthesis (string literals skipped).
      size_t i = at + 5;
      int depth = 1;
      bool in_string = false;
      for (; i < src.size() && depth > 0; ++i) {
        const char ch = src[i];
        if (in_string) {
          if (ch == '\\') ++i;
          else if (ch == '"') in_string = false;
        } else if (ch == '"') {
          in_string = true;
        } else if (ch == '(') {
          ++depth;
        } else if (ch == ')') {
          --depth;
        }
      }
      const std::string arg = src.substr(at + 5, i - at - 6);
      ++calls;
      if (arg == "*why" || arg == "std::move(*why)" || arg.find("std::string reason") != std::string::npos) continue;
      if (arg.find("rule: ") != std::string::npos || arg.find("rule_suffix(") != std::string::npos ||
          arg.find("rule_text()") != std::string::npos || arg.find("kSettingsRule") != std::string::npos) {
        continue;
      }
      const size_t line = static_cast<size_t>(std::count(src.begin(), src.begin() + static_cast<long>(at), '\n')) + 1;
      missing += "\n  " + entry.path().filename().string() + ":" + std::to_string(line) + ": deny(" + arg + ")";
    }
  }
  EXPECT_GT(calls, 80);
  EXPECT_EQ(missing, "") << "deny() calls whose reason names no rule (add \" (rule: <name>)\", README \"Refusal rules\")";
}

}  // namespace
}  // namespace rowguard::sqlrewrite
