// The policy the unit and integration tests parse: one TOML text, with the variants the tests
// need as parameters instead of a copy per test file.
//
//   test_policy_toml()  [proxy] 127.0.0.1:6432 -> 127.0.0.1:5432 as app; [tenancy]
//                       default_column = "tenant_id", explain = "costs_off"; tenant t1 (password pw1, tenant "1");
//                       tables orders (column tenant_id), customers (the default column) and
//                       countries (global).
//   .second_tenant      adds tenant t2 (password pw2, tenant "2").
//   .tables             replaces the three tables with other [tables."…"] sections.
//   .allowed_functions  adds [functions] allow = [...].
#pragma once

#include <string>
#include <vector>

namespace rowguard::test_support {

// orders (tenant column spelled out), customers (default column), countries (global).
inline constexpr const char* kShopTables =
    "[tables.\"public.orders\"]\n"
    "column = \"tenant_id\"\n"
    "\n"
    "[tables.\"public.customers\"]\n"
    "\n"
    "[tables.\"public.countries\"]\n"
    "global = true\n";

struct TestPolicyOptions {
  bool second_tenant = false;
  std::string tables = kShopTables;
  std::vector<std::string> allowed_functions;
};

inline std::string test_policy_toml(const TestPolicyOptions& o = {}) {
  std::string t =
      "[proxy]\n"
      "listen = \"127.0.0.1:6432\"\n"
      "upstream = \"127.0.0.1:5432\"\n"
      "upstream_user = \"app\"\n"
      "\n"
      "[tenancy]\n"
      "default_column = \"tenant_id\"\n"
      "explain = \"costs_off\"\n"  // the tests pin what EXPLAIN (COSTS OFF) allows; the default refuses EXPLAIN
      "\n"
      "[[tenants]]\n"
      "user = \"t1\"\n"
      "password = \"pw1\"\n"
      "tenant = \"1\"\n"
      "\n";
  if (o.second_tenant) t += "[[tenants]]\nuser = \"t2\"\npassword = \"pw2\"\ntenant = \"2\"\n\n";
  t += o.tables;
  if (!o.allowed_functions.empty()) {
    t += "\n[functions]\nallow = [";
    for (size_t i = 0; i < o.allowed_functions.size(); ++i) t += (i ? ", \"" : "\"") + o.allowed_functions[i] + "\"";
    t += "]\n";
  }
  return t;
}

}  // namespace rowguard::test_support
