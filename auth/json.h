#pragma once
// A small strict JSON reader (RFC 8259) for JWT headers and claims: UTF-8 checked, no
// duplicate object keys (a token whose two parsers could disagree is refused), no trailing
// data, bounded nesting. Numbers keep their text (an integer tenant id is never rounded
// through a double). No I/O, no exceptions.
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rowguard::auth {

struct JsonMember;

struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  std::string text;  // kString: the decoded string; kNumber: the number as written
  std::vector<JsonValue> items;                             // kArray
  std::vector<JsonMember> members;                          // kObject, in order

  // The member named `key` of an object, or nullptr.
  const JsonValue* get(std::string_view key) const;
  // kNumber without fraction or exponent.
  bool is_integer() const;
};

// (A struct rather than std::pair: pair<string, JsonValue> needs JsonValue complete, which
// libstdc++ checks under clang.)
struct JsonMember {
  std::string name;
  JsonValue value;
};

// nullopt when `text` is not exactly one valid JSON value.
std::optional<JsonValue> parse_json(std::string_view text, int max_depth = 16);

}  // namespace rowguard::auth
