#pragma once
#include <compare>
#include <string>

namespace rowguard::policy {

// A schema-qualified name exactly as PostgreSQL stores it (unquoted identifiers lower case).
struct QualifiedName {
  std::string schema;
  std::string name;
  std::string to_string() const { return schema + "." + name; }
  auto operator<=>(const QualifiedName&) const = default;
};

}  // namespace rowguard::policy
