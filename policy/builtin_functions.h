#pragma once
// What rowguard knows about PostgreSQL's builtin functions and operators (policy/builtin_functions.cc,
// generated name lists *.inc).
#include <optional>
#include <span>
#include <string_view>

namespace rowguard::policy {

// Builtin functions (pg_catalog) that a tenant's statements may call: pure functions of their
// arguments that run no SQL and read no table. Name-only match, lower case.
bool builtin_function_allowed(std::string_view name);

// Every name builtin_function_allowed() accepts, sorted (for the test that checks each against a
// real server's pg_proc: tests/integration/builtin_names_test.cc).
std::span<const std::string_view> builtin_allowed_function_names();

// pg_catalog functions callable with one argument (policy/builtin_function_names.inc, generated
// by scripts/gen-builtin-functions): nullopt when no such function has this name, else whether
// every such overload is immutable. What attribute notation x.name / (expr).name can call.
std::optional<bool> builtin_one_arg_function(std::string_view name);

// True when pg_catalog has an operator of this name (policy/builtin_operator_names.inc).
bool builtin_operator_name(std::string_view name);

}  // namespace rowguard::policy
