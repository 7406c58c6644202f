#pragma once
// [tenancy] identity and [[roles]]: how a client's tenant is established (internal to the
// policy loader; the settings themselves are in policy.h).
//   identity = "map"  (default) [[tenants]] user -> tenant, rowguard authenticates (SCRAM)
//   identity = "jwt"  the password is a JWT; a claim names the tenant ([[bypass]] users: SCRAM)
//   identity = "role" PostgreSQL authenticates the client's own role; [[roles]] maps it
#include <set>
#include <string>
#include <toml.hpp>

#include "policy/policy.h"

namespace rowguard::policy {

// "file:line:column: " + toml11's message with the source excerpt, for a PolicyError about `at`
// (parse_policy redacts secrets from it before it leaves; see redact_policy_message).
std::string format_policy_error(const toml::value& at, const std::string& what, const std::string& here);

// Keys of [tenancy] read by parse_identity.
const std::set<std::string>& identity_tenancy_keys();

// Reads identity and jwt_* from the [tenancy] table. Throws PolicyError.
void parse_identity(const toml::value& tenancy, Policy& p);

// Reads [[roles]] and checks that the login tables fit the identity mode. Throws PolicyError.
void parse_roles(const toml::value& root, Policy& p);

}  // namespace rowguard::policy
