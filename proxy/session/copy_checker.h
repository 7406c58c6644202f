#pragma once
// Streams the rows of a tenant's COPY ... FROM STDIN (text or CSV format) and checks that the
// tenant column of every row is the session tenant, or appends it when the client's column list
// omitted it. Rows may be split across CopyData messages in any way. No I/O.
#include <cstdint>
#include <string>
#include <string_view>

#include "sqlrewrite/rewriter.h"

namespace rowguard::session {

class CopyRowChecker {
 public:
  CopyRowChecker(sqlrewrite::CopyInPlan plan, std::string tenant);

  // Consumes client data; appends the complete rows checked so far to `out` (unchanged, or with
  // the tenant column appended). Returns "" or the reason to refuse the whole COPY.
  std::string feed(std::string_view data, std::string& out);
  // End of the client's data (CopyDone): a last row without a newline is checked too.
  std::string finish(std::string& out);

  uint64_t rows() const { return rows_; }

  // Upper bound for one row kept in memory while waiting for its end.
  static constexpr size_t kMaxRow = 64u << 20;

 private:
  std::string row(std::string_view line, std::string& out);  // one complete row, without EOL
  std::string append_value() const;

  sqlrewrite::CopyInPlan plan_;
  std::string tenant_;
  std::string pending_;     // bytes of the row being received
  size_t scanned_ = 0;      // how far pending_ was scanned for the end of the row
  bool in_quotes_ = false;  // CSV scanner state at scanned_
  bool escaped_ = false;    // text: the previous byte was an escaping backslash
  bool header_pending_;
  bool ended_ = false;      // saw the end-of-data marker line "\."
  uint64_t rows_ = 0;
};

}  // namespace rowguard::session
