// RAII wrappers over libpg_query's C API (parse to protobuf, deparse from protobuf).
#include "sqlrewrite/pg_query_api.h"

#include <pg_query.h>


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

}  // namespace

ParseOutput parse_sql(std::string_view sql) {
  ParseOutput out;
  if (sql.find('\0') != std::string_view::npos) {
    out.error = "statement text contains a NUL byte";
    return out;
  }
  std::string text(sql);  // libpg_query wants a NUL-terminated string
  ProtobufParse p(text.c_str());
  if (p.r.error != nullptr) {
    out.error = p.r.error->message ? p.r.error->message : "syntax error";
    out.error_cursor = p.r.error->cursorpos;
    return out;
  }
  if (!out.tree.ParseFromArray(p.r.parse_tree.data, static_cast<int>(p.r.parse_tree.len))) {
    out.error = "cannot decode the parse tree";
    return out;
  }
  out.ok = true;
  return out;
}

DeparseOutput deparse_sql(const pg_query::ParseResult& tree) {
  DeparseOutput out;
  std::string bytes;
  if (!tree.SerializeToString(&bytes)) {
    out.error = "cannot encode the parse tree";
    return out;
  }
  PgQueryProtobuf pb;
  pb.len = bytes.size();
  pb.data = bytes.data();
  Deparse d(pb);
  if (d.r.error != nullptr) {
    out.error = d.r.error->message ? d.r.error->message : "deparse failed";
    return out;
  }
  out.sql = d.r.query ? d.r.query : "";
  out.ok = true;
  return out;
}

std::string fingerprint_sql(std::string_view sql) {
  std::string text(sql);
  struct Owner {
    PgQueryFingerprintResult r;
    ~Owner() { pg_query_free_fingerprint_result(r); }
  } f{pg_query_fingerprint(text.c_str())};
  if (f.r.error != nullptr || f.r.fingerprint_str == nullptr) return "";
  return f.r.fingerprint_str;
}

std::string normalize_sql(std::string_view sql) {
  std::string text(sql);
  struct Owner {
    PgQueryNormalizeResult r;
    ~Owner() { pg_query_free_normalize_result(r); }
  } n{pg_query_normalize(text.c_str())};
  if (n.r.error != nullptr || n.r.normalized_query == nullptr) return "";
  return n.r.normalized_query;
}

}  // namespace rowguard::sqlrewrite
