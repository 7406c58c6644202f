#pragma once
// Advisory locks per tenant (issue 18): pg_advisory_lock and its variants keep working for
// tenants, each tenant in its own key space.
//
// PostgreSQL's advisory lock tag is (database, key high 32 bits, key low 32 bits, 1 for the
// bigint form | 2 for the (int4, int4) form), the same for every session of the database, so
// tenant 1's pg_advisory_lock(42) would block tenant 2's. rowguard rewrites the key argument(s)
// of every call into one bigint key, a hash of the tenant and the key(s) computed by builtin SQL
// functions in the same statement:
//   h = sha256(convert_to(<tenant>, 'UTF8') || decode('00', 'hex') || convert_to(<key text>, 'UTF8'))
//   <key text> = 'a:' || to_hex(<k> + 0::int8)                                    (bigint form)
//              | 'b:' || to_hex(<k1> + 0::int4) || ':' || to_hex(<k2> + 0::int4)  (two-int form)
//   pg_advisory_lock(k) / pg_advisory_lock(k1, k2)
//     -> pg_advisory_lock(('x' || left(encode(h, 'hex'), 16))::bit(64)::int8)
// Both forms take the bigint form upstream (each argument appears once, so a volatile key
// expression is evaluated once); the 'a:' / 'b:' prefix keeps their key spaces apart.
// The hashed bytes are injective: a tenant (text) holds no NUL byte, so the 0x00 separator ends
// it; the form prefix keeps the two forms apart; to_hex of an int8 (int4) is a unique hex text.
// A lock tag has 64 bits, so no mapping of (tenant, 64-bit key) into it is free of collisions:
// two tenants' keys meet only when 64 bits of sha256 agree, and finding a key of the own tenant
// that meets a given key of another tenant takes about 2^64 hash computations.
// `<k> + 0::int8` keeps PostgreSQL's argument typing (an int2/int4/int8 value, an unknown
// literal or an untyped parameter $n become int8; numeric or text fail as they fail for
// pg_advisory_lock(bigint)); `<k> + 0::int4` makes unknown literals and untyped parameters
// int4 (a bigint argument of the two-int form is accepted, where PostgreSQL would find no
// function). A NULL key gives a NULL key (the lock functions are strict: no lock, NULL result).
//
// pg_advisory_unlock_all() takes no key: it releases the session's own locks only (every
// rowguard client session has its own server connection). pg_locks stays refused, so no tenant
// sees another's locks; an unlock of another tenant's key hashes into the own key space and
// returns false.
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "pg_query/pg_query.pb.h"

namespace rowguard::sqlrewrite {

inline constexpr std::string_view kRuleAdvisoryLocks = "advisory_locks";

// pg_advisory_lock, pg_try_advisory_xact_lock_shared, pg_advisory_unlock_all, ... (the 13
// advisory-lock functions of pg_catalog).
bool is_advisory_lock_function(std::string_view name);

// Rewrites the key argument(s) of a call of the advisory-lock function `name` (positional
// arguments only) into the tenant's key space. `tenant_literal` makes the tenant constant (the
// Walker's, counted for the rewrite cache). The denial text (without "rowguard: ") when the call
// is not in a form rowguard maps: named or VARIADIC arguments, a wrong number of arguments,
// aggregate or window decoration.
std::optional<std::string> rewrite_advisory_lock_call(pg_query::FuncCall& call, std::string_view name,
                                                      const std::function<pg_query::Node()>& tenant_literal);

}  // namespace rowguard::sqlrewrite
