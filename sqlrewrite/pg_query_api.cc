// RAII wrappers over libpg_query's C API (parse to protobuf, deparse from protobuf).
#include "sqlrewrite/pg_query_api.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <pg_query.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "sqlrewrite/parse_stack.h"
#include "sqlrewrite/statement_limits.h"

namespace rowguard::sqlrewrite {
namespace {

// Owners of libpg_query results: freed when they go out of scope.
struct ProtobufParse {
  PgQueryProtobufParseResult r;
  explicit ProtobufParse(const char* sql) : r(pg_query_parse_protobuf(sql)) {}
  ~ProtobufParse() { pg_query_free_protobuf_parse_result(r); }
  ProtobufParse(const ProtobufParse&) = delete;
  ProtobufParse& operator=(const ProtobufParse&) = delete;
};
struct Deparse {
  PgQueryDeparseResult r;
  explicit Deparse(PgQueryProtobuf pb) : r(pg_query_deparse_protobuf(pb)) {}
  ~Deparse() { pg_query_free_deparse_result(r); }
  Deparse(const Deparse&) = delete;
  Deparse& operator=(const Deparse&) = delete;
};

namespace gpb = google::protobuf;

// ---- same_tree_bytes: a lockstep walk of two protobuf encodings ------------------------------

constexpr int kWireVarint = 0;
constexpr int kWireFixed64 = 1;
constexpr int kWireLengthDelimited = 2;
constexpr int kWireFixed32 = 5;

// What the comparison needs to know about the fields of one message type, by field number.
struct MessageShape {
  struct Field {
    const MessageShape* message = nullptr;  // a message-typed field: compared recursively
    int location_wire_type = -1;            // a source position: skipped when it has this wire type
  };
  std::vector<Field> by_number;
  const Field* field(uint64_t number) const {
    return number < by_number.size() ? &by_number[number] : nullptr;
  }
};

int wire_type_of(const gpb::FieldDescriptor* f) {
  switch (f->type()) {
    case gpb::FieldDescriptor::TYPE_STRING:
    case gpb::FieldDescriptor::TYPE_BYTES:
    case gpb::FieldDescriptor::TYPE_MESSAGE:
      return kWireLengthDelimited;
    case gpb::FieldDescriptor::TYPE_FIXED64:
    case gpb::FieldDescriptor::TYPE_SFIXED64:
    case gpb::FieldDescriptor::TYPE_DOUBLE:
      return kWireFixed64;
    case gpb::FieldDescriptor::TYPE_FIXED32:
    case gpb::FieldDescriptor::TYPE_SFIXED32:
    case gpb::FieldDescriptor::TYPE_FLOAT:
      return kWireFixed32;
    default:
      return kWireVarint;
  }
}

// Built once from pg_query.proto's descriptors, immutable afterwards (thread-safe to read).
const MessageShape& parse_result_shape() {
  static const std::unordered_map<const gpb::Descriptor*, MessageShape> kShapes = [] {
    std::unordered_map<const gpb::Descriptor*, MessageShape> shapes;
    const gpb::FileDescriptor* file = pg_query::ParseResult::descriptor()->file();
    for (int i = 0; i < file->message_type_count(); ++i) shapes[file->message_type(i)];
    for (auto& [d, shape] : shapes) {
      int max_number = 0;
      for (int i = 0; i < d->field_count(); ++i) max_number = std::max(max_number, d->field(i)->number());
      shape.by_number.resize(static_cast<size_t>(max_number) + 1);
      for (int i = 0; i < d->field_count(); ++i) {
        const gpb::FieldDescriptor* f = d->field(i);
        auto& field = shape.by_number[static_cast<size_t>(f->number())];
        if (f->cpp_type() == gpb::FieldDescriptor::CPPTYPE_MESSAGE) {
          // A type from another file (none today) is compared as raw bytes: stricter.
          if (auto it = shapes.find(f->message_type()); it != shapes.end()) field.message = &it->second;
        } else if (!f->is_repeated() && (f->name() == "location" || f->name() == "stmt_location" ||
                                         f->name() == "stmt_len")) {
          field.location_wire_type = wire_type_of(f);
        }
      }
    }
    return shapes;
  }();
  return kShapes.at(pg_query::ParseResult::descriptor());
}

bool read_varint(const uint8_t*& p, const uint8_t* end, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    const uint8_t byte = *p++;
    value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

// One field of an encoded message: its tag and its payload bytes.
struct WireField {
  uint64_t tag = 0;
  const uint8_t* payload = nullptr;
  const uint8_t* payload_end = nullptr;
};

enum class Next { kField, kEnd, kMalformed };

// The next field of the message in [p, end) that is not a source position.
Next next_field(const MessageShape& shape, const uint8_t*& p, const uint8_t* end, WireField& out) {
  while (p < end) {
    if (!read_varint(p, end, out.tag)) return Next::kMalformed;
    const int wire_type = static_cast<int>(out.tag & 7);
    out.payload = p;
    switch (wire_type) {
      case kWireVarint: {
        uint64_t ignored;
        if (!read_varint(p, end, ignored)) return Next::kMalformed;
        break;
      }
      case kWireFixed64:
        if (end - p < 8) return Next::kMalformed;
        p += 8;
        break;
      case kWireFixed32:
        if (end - p < 4) return Next::kMalformed;
        p += 4;
        break;
      case kWireLengthDelimited: {
        uint64_t len;
        if (!read_varint(p, end, len) || len > static_cast<uint64_t>(end - p)) return Next::kMalformed;
        out.payload = p;
        p += len;
        break;
      }
      default:
        return Next::kMalformed;  // groups: not used by pg_query.proto
    }
    out.payload_end = p;
    const MessageShape::Field* f = shape.field(out.tag >> 3);
    if (f != nullptr && f->location_wire_type == wire_type) continue;
    return Next::kField;
  }
  return Next::kEnd;
}

// A message nested deeper than the C++ decoder's recursion limit (kProtobufRecursionLimit)
// compares unequal, as when the re-parse was decoded into C++ objects: the same decisions, and
// a bounded stack on any input (ParseResult is depth 0, its fields' messages depth 1, ...).
bool same_message(const MessageShape& shape, const uint8_t* a, const uint8_t* a_end, const uint8_t* b,
                  const uint8_t* b_end, int depth) {
  if (depth > kProtobufRecursionLimit) return false;
  WireField fa, fb;
  for (;;) {
    const Next na = next_field(shape, a, a_end, fa);
    const Next nb = next_field(shape, b, b_end, fb);
    if (na == Next::kMalformed || nb == Next::kMalformed || na != nb) return false;
    if (na == Next::kEnd) return true;
    if (fa.tag != fb.tag) return false;
    const MessageShape::Field* f = shape.field(fa.tag >> 3);
    if (f != nullptr && f->message != nullptr && (fa.tag & 7) == kWireLengthDelimited) {
      if (!same_message(*f->message, fa.payload, fa.payload_end, fb.payload, fb.payload_end, depth + 1)) {
        return false;
      }
    } else {
      const auto len = fa.payload_end - fa.payload;
      if (len != fb.payload_end - fb.payload || std::memcmp(fa.payload, fb.payload, static_cast<size_t>(len)) != 0) {
        return false;
      }
    }
  }
}

}  // namespace

namespace {

// The nesting bound (statement_limits.h) is within what the parse stack holds; else the error.
bool nesting_ok(std::string_view sql, std::string& error) {
  const StatementShape shape = scan_statement(sql);
  if (shape.lexer_rescans > max_lexer_rescans(sql.size())) {
    error = "statement text too costly to tokenize (a long run of operator characters, or of "
            "comment openers \"/*/*...\")";
    return false;
  }
  if (shape.nesting <= kMaxNestingBound) return true;
  error = "statement nested too deeply (more than " + std::to_string(kMaxNestingBound) +
          " levels of operators, brackets or subqueries; like PostgreSQL's \"stack depth limit exceeded\")";
  return false;
}

// Parses `sql` with libpg_query (on the parse stack); on success calls use(data, len) with the protobuf encoding of
// the tree (valid during the call) and returns true; else sets out.error (and the cursor).
template <class Out, class Use>
bool run_parse(std::string_view sql, Out& out, int* error_cursor, Use&& use) {
  if (sql.find('\0') != std::string_view::npos) {
    out.error = "statement text contains a NUL byte";
    return false;
  }
  if (!nesting_ok(sql, out.error)) return false;
  std::string text(sql);  // libpg_query wants a NUL-terminated string
  return run_on_parse_stack([&] {
    ProtobufParse p(text.c_str());
    if (p.r.error != nullptr) {
      out.error = p.r.error->message ? p.r.error->message : "syntax error";
      if (error_cursor != nullptr) *error_cursor = p.r.error->cursorpos;
      return false;
    }
    return use(p.r.parse_tree.data, p.r.parse_tree.len);
  });
}

}  // namespace

ParseOutput parse_sql(std::string_view sql) {
  ParseOutput out;
  out.ok = run_parse(sql, out, &out.error_cursor, [&](const char* data, size_t len) {
    // protobuf's default recursion limit (100) is far below the depth of trees PostgreSQL runs.
    gpb::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(data), static_cast<int>(len));
    in.SetRecursionLimit(kProtobufRecursionLimit);
    if (out.tree.ParseFromCodedStream(&in) && in.ConsumedEntireMessage()) return true;
    out.error = "cannot decode the parse tree";
    return false;
  });
  return out;
}

ProtobufParseOutput parse_sql_protobuf(std::string_view sql) {
  ProtobufParseOutput out;
  out.ok = run_parse(sql, out, nullptr, [&](const char* data, size_t len) {
    out.bytes.assign(data, len);
    return true;
  });
  return out;
}

bool same_tree_bytes(std::string_view a, std::string_view b) {
  const auto* pa = reinterpret_cast<const uint8_t*>(a.data());
  const auto* pb = reinterpret_cast<const uint8_t*>(b.data());
  return run_on_parse_stack(
      [&] { return same_message(parse_result_shape(), pa, pa + a.size(), pb, pb + b.size(), 0); });
}

DeparseOutput deparse_sql(const pg_query::ParseResult& tree, std::string* encoded) {
  std::string local;
  std::string& bytes = encoded != nullptr ? *encoded : local;
  if (!tree.SerializeToString(&bytes)) {
    DeparseOutput out;
    out.error = "cannot encode the parse tree";
    return out;
  }
  return deparse_protobuf(bytes);
}

DeparseOutput deparse_protobuf(std::string_view bytes) {
  DeparseOutput out;
  PgQueryProtobuf pb;
  pb.len = bytes.size();
  pb.data = const_cast<char*>(bytes.data());  // libpg_query only reads it
  run_on_parse_stack([&] {
    Deparse d(pb);
    if (d.r.error != nullptr) {
      out.error = d.r.error->message ? d.r.error->message : "deparse failed";
      return;
    }
    out.sql = d.r.query ? d.r.query : "";
    out.ok = true;
  });
  return out;
}

std::string fingerprint_sql(std::string_view sql) {
  std::string ignored;
  if (sql.find('\0') != std::string_view::npos || !nesting_ok(sql, ignored)) return "";
  std::string text(sql);
  return run_on_parse_stack([&]() -> std::string {
    struct Owner {
      PgQueryFingerprintResult r;
      ~Owner() { pg_query_free_fingerprint_result(r); }
    } f{pg_query_fingerprint(text.c_str())};
    if (f.r.error != nullptr || f.r.fingerprint_str == nullptr) return "";
    return f.r.fingerprint_str;
  });
}

std::string normalize_sql(std::string_view sql) {
  std::string ignored;
  if (sql.find('\0') != std::string_view::npos || !nesting_ok(sql, ignored)) return "";
  std::string text(sql);
  return run_on_parse_stack([&]() -> std::string {
    struct Owner {
      PgQueryNormalizeResult r;
      ~Owner() { pg_query_free_normalize_result(r); }
    } n{pg_query_normalize(text.c_str())};
    if (n.r.error != nullptr || n.r.normalized_query == nullptr) return "";
    return n.r.normalized_query;
  });
}

}  // namespace rowguard::sqlrewrite
