#pragma once
// Small libpq helpers shared by the tools that talk to the upstream with libpq
// (check_upstream.cc, backstop_check.cc, schema_loader.cc): owning handles and a parameterised query.
#include <libpq-fe.h>

#include <memory>
#include <string>
#include <vector>

namespace rowguard::tools::pq {

struct ConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct ResultCloser {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Conn = std::unique_ptr<PGconn, ConnCloser>;
using Result = std::unique_ptr<PGresult, ResultCloser>;

// libpq's messages end in a newline: without trailing newlines and spaces.
inline std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// PQexecParams with text parameters.
inline Result exec(PGconn* conn, const char* sql, const std::vector<std::string>& params) {
  std::vector<const char*> values;
  for (const auto& p : params) values.push_back(p.c_str());
  return Result(PQexecParams(conn, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0));
}

inline std::string quoted(const std::string& s) { return "\"" + s + "\""; }

}  // namespace rowguard::tools::pq
