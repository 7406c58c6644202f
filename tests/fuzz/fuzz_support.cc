// Shared by the fuzz targets: the fixed policy they run with (examples/rowguard.toml, inlined
// so that a replay does not depend on the working directory). Each target declares what it uses:
//   namespace rowguard::fuzz { const policy::Policy& fixed_policy(); }
#include <cstdio>
#include <cstdlib>
#include <string>

#include "policy/policy.h"

namespace rowguard::fuzz {

// examples/rowguard.toml without the comments: tenants t1/t2/t3 = "1"/"2"/"3", bypass dba,
// public.orders (tenant_id), public.customers (default column tenant_id), public.countries
// global. Tenant tables of this policy: public.orders, public.customers.
extern const char kFixedPolicyToml[] = R"TOML(
[proxy]
listen = "127.0.0.1:6432"
upstream = "127.0.0.1:5432"
upstream_user = "app"
upstream_password = "secret"
upstream_database = "appdb"

[tenancy]
default_column = "tenant_id"
unknown_tables = "deny"

[[tenants]]
user = "t1"
password = "pw1"
tenant = "1"

[[tenants]]
user = "t2"
password = "pw2"
tenant = "2"

[[tenants]]
user = "t3"
password = "pw3"
tenant = "3"

[[bypass]]
user = "dba"
password = "pwdba"

[tables."public.orders"]
column = "tenant_id"

[tables."public.customers"]

[tables."public.countries"]
global = true
)TOML";

const policy::Policy& fixed_policy() {
  static const policy::PolicyPtr p = [] {
    try {
      return policy::parse_policy(kFixedPolicyToml, "fuzz-fixed-policy.toml");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "fuzz: the fixed policy does not load: %s\n", e.what());
      std::abort();
    }
  }();
  return *p;
}

}  // namespace rowguard::fuzz
