#include "policy/tenant_scope.h"

#include "policy/policy.h"

namespace rowguard::policy {

TenantScope::TenantScope(const Policy& policy)
    : schema(policy.schema.get()),
      setting_limits(policy.setting_limits),
      cache(policy.cache),
      version(policy.version),
      explain(policy.explain),
      tables_(&policy.tables),
      allowed_functions_(&policy.allowed_functions) {}

bool TenantScope::function_allowed(const QualifiedName& name) const {
  for (const auto& f : *allowed_functions_) {
    if (f == name) return true;
  }
  return false;
}

}  // namespace rowguard::policy
