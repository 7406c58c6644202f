// Row checker for COPY FROM STDIN: splits rows the way PostgreSQL's COPY does (text format:
// backslash escapes, CSV: quotes), then checks or appends the tenant column. Anything it cannot
// read with certainty (a bare carriage return, a wrong column count) refuses the COPY.
#include "proxy/session/copy_checker.h"

#include <vector>

namespace rowguard::session {

CopyRowChecker::CopyRowChecker(sqlrewrite::CopyInPlan plan, std::string tenant)
    : plan_(std::move(plan)), tenant_(std::move(tenant)), header_pending_(plan_.header) {}

std::string CopyRowChecker::feed(std::string_view data, std::string& out) {
  if (ended_) return "";  // data after the end marker is ignored, as PostgreSQL does
  pending_.append(data);
  size_t start = 0;
  for (size_t i = scanned_; i < pending_.size(); ++i) {
    char c = pending_[i];
    if (plan_.csv) {
      if (in_quotes_) {
        if (c == plan_.escape && plan_.escape != plan_.quote && i + 1 < pending_.size()) {
          ++i;  // escaped character inside quotes
        } else if (c == plan_.escape && plan_.escape != plan_.quote) {
          scanned_ = i;  // need the next byte
          pending_.erase(0, start);
          scanned_ -= start;
          return "";
        } else if (c == plan_.quote) {
          in_quotes_ = false;  // a doubled quote re-enters quotes on the next byte
        }
        continue;
      }
      if (c == plan_.quote) {
        in_quotes_ = true;
        continue;
      }
    } else {
      if (escaped_) {
        escaped_ = false;  // the byte after a backslash is data, even a newline
        continue;
      }
      if (c == '\\') {
        escaped_ = true;
        continue;
      }
    }
    if (c == '\r') return "rowguard: COPY data with carriage-return line endings is not supported";
    if (c != '\n') continue;
    std::string why = row(std::string_view(pending_).substr(start, i - start), out);
    if (!why.empty()) return why;
    start = i + 1;
    if (ended_) {
      pending_.clear();
      scanned_ = 0;
      return "";
    }
  }
  pending_.erase(0, start);
  scanned_ = pending_.size();
  if (pending_.size() > kMaxRow) return "rowguard: a COPY row is larger than 64 MiB";
  return "";
}

std::string CopyRowChecker::finish(std::string& out) {
  if (ended_ || pending_.empty()) return "";
  if (in_quotes_) return "rowguard: COPY data ends inside a quoted field";
  std::string last = std::move(pending_);
  pending_.clear();
  return row(last, out);
}

std::string CopyRowChecker::append_value() const {
  std::string v(1, plan_.delimiter);
  if (plan_.csv) {
    v += plan_.quote;
    for (char c : tenant_) {
      if (c == plan_.quote || c == plan_.escape) v += plan_.escape;
      v += c;
    }
    v += plan_.quote;
  } else {
    for (char c : tenant_) {
      if (c == '\\' || c == plan_.delimiter) v += '\\';
      v += c;
    }
  }
  return v;
}

std::string CopyRowChecker::row(std::string_view line, std::string& out) {
  if (line == "\\.") {  // end-of-data marker
    ended_ = true;
    out.append(line);
    out.push_back('\n');
    return "";
  }
  if (header_pending_) {
    header_pending_ = false;
    out.append(line);
    if (plan_.tenant_index < 0) {
      out.push_back(plan_.delimiter);
      out.append(plan_.tenant_column);
    }
    out.push_back('\n');
    return "";
  }
  ++rows_;
  const std::string where = "rowguard: COPY row " + std::to_string(rows_) + ": ";
  // Split into fields; keep the value of the tenant field as PostgreSQL will read it.
  int field = 0;
  std::string value;
  bool value_quoted = false;
  bool quoted = false;
  std::string current;
  bool any_quote = false;
  auto end_field = [&] {
    if (field == plan_.tenant_index) {
      value = current;
      value_quoted = any_quote;
    }
    ++field;
    current.clear();
    any_quote = false;
  };
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (plan_.csv) {
      if (quoted) {
        // Inside quotes, as PostgreSQL reads CSV: ESCAPE before QUOTE or ESCAPE makes it data;
        // with ESCAPE = QUOTE (the default) a doubled quote is one quote character.
        bool next_special = i + 1 < line.size() && (line[i + 1] == plan_.quote || line[i + 1] == plan_.escape);
        if (c == plan_.escape && next_special && (plan_.escape != plan_.quote || line[i + 1] == plan_.quote)) {
          current += line[++i];
        } else if (c == plan_.quote) {
          quoted = false;
        } else {
          current += c;
        }
        continue;
      }
      if (c == plan_.quote) {
        quoted = true;
        any_quote = true;
        continue;
      }
      if (c == plan_.delimiter) {
        end_field();
        continue;
      }
      current += c;
    } else {
      if (c == '\\' && i + 1 < line.size()) {
        current += c;
        current += line[++i];
        continue;
      }
      if (c == plan_.delimiter) {
        end_field();
        continue;
      }
      current += c;
    }
  }
  end_field();
  if (field != plan_.columns) {
    return where + "has " + std::to_string(field) + " columns, the COPY column list has " +
           std::to_string(plan_.columns);
  }
  if (plan_.tenant_index >= 0) {
    bool is_null = !value_quoted && value == plan_.null_string;
    if (is_null || value != tenant_) {
      return where + "the tenant column \"" + plan_.tenant_column +
             "\" is not the session tenant (rule: tables.\"" + plan_.table + "\".column)";
    }
    out.append(line);
  } else {
    out.append(line);
    out.append(append_value());
  }
  out.push_back('\n');
  return "";
}

}  // namespace rowguard::session
