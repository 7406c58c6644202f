#pragma once
// Which statements of a bypass session may change the schema snapshot: a CommandComplete whose
// tag starts with CREATE, ALTER or DROP (CREATE TABLE, ALTER TABLE, CREATE UNIQUE INDEX, DROP
// INDEX, CREATE FUNCTION, ...). The snapshot is re-read when the session is next idle outside a
// transaction (ReadyForQuery 'I'), so DDL inside a transaction is read once committed.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace rowguard::net {

// `first`: the first byte of the CommandComplete body; `body`: the whole body when available
// (a message split across reads is not: then any tag that may be DDL counts).
inline bool schema_changing_command(char first, std::optional<std::string_view> body) {
  if (first != 'C' && first != 'A' && first != 'D') return false;
  if (!body) return true;
  return body->starts_with("CREATE") || body->starts_with("ALTER") || body->starts_with("DROP");
}

}  // namespace rowguard::net
