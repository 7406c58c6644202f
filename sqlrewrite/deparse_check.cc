// The deparser safety net's refusal (deparse_check.h): where the deparsed text parses back into
// another tree than the one checked, found by walking both trees (protobuf reflection) to their
// first difference. Runs only for a refused statement, on the parse stack (rewriter.cc).
#include "sqlrewrite/deparse_check.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/text_format.h>

#include <map>

#include "sqlrewrite/statement_limits.h"

namespace rowguard::sqlrewrite {

namespace {

namespace gpb = google::protobuf;

// Where the walk stands: the innermost statement clause, node and source position around it.
struct Place {
  std::string clause;    // e.g. "WHERE", "the select list"
  std::string node;      // the innermost node's type, e.g. "FuncCall"
  std::string function;  // the innermost FuncCall's name, e.g. "pg_catalog.overlay"
  int location = -1;     // the nearest enclosing source position (byte offset in the client's text)
};

struct Difference {
  Place place;
  std::string what;  // e.g. "its funcformat COERCE_EXPLICIT_CALL becomes COERCE_SQL_SYNTAX"
};

const std::map<std::string, std::string, std::less<>>& clause_names() {
  static const std::map<std::string, std::string, std::less<>> names = {
      {"target_list", "the select list"}, {"returning_list", "RETURNING"}, {"where_clause", "WHERE"},
      {"from_clause", "FROM"},            {"group_clause", "GROUP BY"},    {"having_clause", "HAVING"},
      {"sort_clause", "ORDER BY"},        {"window_clause", "WINDOW"},     {"values_lists", "VALUES"},
      {"limit_count", "LIMIT"},           {"limit_offset", "OFFSET"},      {"with_clause", "WITH"},
      {"distinct_clause", "DISTINCT"},    {"using_clause", "USING"},       {"join_condition", "ON"},
      {"merge_when_clauses", "WHEN"},     {"on_conflict_clause", "ON CONFLICT"},
      {"source_relation", "USING"},       {"relation", "the target table"}, {"cols", "the column list"},
      {"locking_clause", "FOR UPDATE/SHARE"},
  };
  return names;
}

std::string clause_name(const std::string& statement, const std::string& field) {
  if (field == "target_list" && statement == "UpdateStmt") return "SET";
  auto it = clause_names().find(field);
  return it != clause_names().end() ? it->second : field;
}

std::string node_words(const std::string& type) {
  static const std::map<std::string, std::string, std::less<>> words = {
      {"FuncCall", "function call"},        {"A_Expr", "operator expression"},
      {"BoolExpr", "AND/OR/NOT expression"}, {"BooleanTest", "IS [NOT] TRUE/FALSE/UNKNOWN test"},
      {"NullTest", "IS [NOT] NULL test"},    {"TypeCast", "cast"},
      {"CaseExpr", "CASE expression"},       {"CaseWhen", "CASE WHEN branch"},
      {"SubLink", "subquery expression"},    {"ColumnRef", "column reference"},
      {"A_Const", "constant"},               {"RangeVar", "table reference"},
      {"RangeSubselect", "subquery in FROM"}, {"JoinExpr", "join"},
      {"SortBy", "ORDER BY item"},           {"ResTarget", "output column or assignment"},
      {"WindowDef", "window definition"},    {"A_Indirection", "subscript or field selection"},
      {"A_ArrayExpr", "ARRAY[...] constructor"}, {"RowExpr", "ROW(...) constructor"},
      {"CoalesceExpr", "COALESCE"},          {"MinMaxExpr", "GREATEST/LEAST"},
      {"SQLValueFunction", "SQL value function"}, {"XmlExpr", "XML expression"},
      {"CollateClause", "COLLATE clause"},   {"ParamRef", "parameter"},
      {"RangeTableSample", "TABLESAMPLE clause"}, {"RangeFunction", "function in FROM"},
      {"SelectStmt", "SELECT"},              {"InsertStmt", "INSERT"},
      {"UpdateStmt", "UPDATE"},              {"DeleteStmt", "DELETE"},
      {"MergeStmt", "MERGE"},                {"FetchStmt", "FETCH / MOVE"},
      {"DeclareCursorStmt", "DECLARE"},      {"ExplainStmt", "EXPLAIN"},
      {"LockingClause", "FOR UPDATE/SHARE clause"},
  };
  auto it = words.find(type);
  return it != words.end() ? it->second : type;
}

std::string with_article(const std::string& words) {
  return (words.find_first_of("AEIOUaeiou") == 0 ? "an " : "a ") + words;
}

bool is_position(const gpb::FieldDescriptor* f) {
  return !f->is_repeated() && (f->name() == "location" || f->name() == "stmt_location" || f->name() == "stmt_len");
}

std::string scalar_text(const gpb::Message& m, const gpb::FieldDescriptor* f, int index) {
  std::string out;
  gpb::TextFormat::PrintFieldValueToString(m, f, index, &out);
  if (out.size() > 60) out = out.substr(0, 57) + "...";
  return out;
}

// The place inside message `m`, entered from `outer`.
Place enter(const gpb::Message& m, Place outer) {
  const gpb::Descriptor* d = m.GetDescriptor();
  const gpb::Reflection* r = m.GetReflection();
  if (d->name() != "Node") outer.node = d->name();
  if (const gpb::FieldDescriptor* loc = d->FindFieldByName("location");
      loc != nullptr && loc->cpp_type() == gpb::FieldDescriptor::CPPTYPE_INT32 && r->GetInt32(m, loc) >= 0) {
    outer.location = r->GetInt32(m, loc);
  }
  if (d->name() == "FuncCall") {
    std::string name;
    const gpb::FieldDescriptor* names = d->FindFieldByName("funcname");
    for (int i = 0; names != nullptr && i < r->FieldSize(m, names); ++i) {
      const gpb::Message& n = r->GetRepeatedMessage(m, names, i);
      std::string part = "?";
      const gpb::FieldDescriptor* s = n.GetDescriptor()->FindFieldByName("string");
      if (s != nullptr && n.GetReflection()->HasField(n, s)) {
        const gpb::Message& str = n.GetReflection()->GetMessage(n, s);
        part = str.GetReflection()->GetString(str, str.GetDescriptor()->FindFieldByName("sval"));
      }
      name += (name.empty() ? "" : ".") + part;
    }
    outer.function = name;
  }
  return outer;
}

bool find(const gpb::Message& a, const gpb::Message& b, const Place& outer, Difference& out, int depth) {
  const Place here = enter(a, outer);
  if (depth > kProtobufRecursionLimit) {
    out = {here, "it is nested too deeply to compare"};
    return true;
  }
  const gpb::Descriptor* d = a.GetDescriptor();
  const gpb::Reflection* ra = a.GetReflection();
  const gpb::Reflection* rb = b.GetReflection();
  if (d->name() == "Node" && d->oneof_decl_count() > 0) {
    const gpb::FieldDescriptor* ka = ra->GetOneofFieldDescriptor(a, d->oneof_decl(0));
    const gpb::FieldDescriptor* kb = rb->GetOneofFieldDescriptor(b, d->oneof_decl(0));
    if (ka != kb) {
      out = {here, with_article(ka ? node_words(ka->message_type()->name()) : std::string("empty node")) +
                       " parses back as " +
                       with_article(kb ? node_words(kb->message_type()->name()) : std::string("empty node"))};
      if (ka != nullptr && ka->message_type() != nullptr) out.place = enter(ra->GetMessage(a, ka), here);
      return true;
    }
  }
  for (int i = 0; i < d->field_count(); ++i) {
    const gpb::FieldDescriptor* f = d->field(i);
    if (is_position(f)) continue;
    Place inner = here;
    if (d->name().size() > 4 && d->name().ends_with("Stmt") && d->name() != "RawStmt" &&
        f->type() == gpb::FieldDescriptor::TYPE_MESSAGE) {
      inner.clause = clause_name(d->name(), f->name());
    }
    if (f->is_repeated()) {
      const int na = ra->FieldSize(a, f), nb = rb->FieldSize(b, f);
      if (na != nb) {
        out = {inner, "its " + f->name() + " has " + std::to_string(nb) + " items instead of " + std::to_string(na)};
        return true;
      }
      for (int k = 0; k < na; ++k) {
        if (f->type() == gpb::FieldDescriptor::TYPE_MESSAGE) {
          if (find(ra->GetRepeatedMessage(a, f, k), rb->GetRepeatedMessage(b, f, k), inner, out, depth + 1)) return true;
        } else if (scalar_text(a, f, k) != scalar_text(b, f, k)) {
          out = {inner, "its " + f->name() + " " + scalar_text(a, f, k) + " becomes " + scalar_text(b, f, k)};
          return true;
        }
      }
    } else if (f->type() == gpb::FieldDescriptor::TYPE_MESSAGE) {
      const bool ha = ra->HasField(a, f), hb = rb->HasField(b, f);
      if (ha != hb) {
        out = {inner, ha ? "its " + f->name() + " is lost" : "it gains a " + f->name()};
        return true;
      }
      if (ha && find(ra->GetMessage(a, f), rb->GetMessage(b, f), inner, out, depth + 1)) return true;
    } else if (scalar_text(a, f, -1) != scalar_text(b, f, -1)) {
      out = {inner, "its " + f->name() + " " + scalar_text(a, f, -1) + " becomes " + scalar_text(b, f, -1)};
      return true;
    }
  }
  return false;
}

// 1-based character position of byte offset `location` in `sql`, as PostgreSQL reports positions.
std::string position_text(std::string_view sql, int location) {
  if (location < 0 || static_cast<size_t>(location) > sql.size()) return "";
  long chars = 1;
  for (size_t i = 0; i < static_cast<size_t>(location); ++i) {
    if ((static_cast<unsigned char>(sql[i]) & 0xC0) != 0x80) ++chars;
  }
  return " at position " + std::to_string(chars);
}

constexpr std::string_view kHead = "rowguard: the rewritten statement would not mean what was checked: ";

std::string rule_text() { return "(rule: " + std::string(kRuleDeparseCheck) + ")"; }

}  // namespace

std::string deparse_check_denial(std::string_view sql, const pg_query::ParseResult& checked, bool reparsed_ok,
                                 std::string_view reparsed, std::string_view reparse_error) {
  if (!reparsed_ok) {
    return std::string(kHead) + "libpg_query's deparser wrote a text that does not parse back (" +
           std::string(reparse_error) + ") " + rule_text();
  }
  pg_query::ParseResult back;
  gpb::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(reparsed.data()), static_cast<int>(reparsed.size()));
  in.SetRecursionLimit(kProtobufRecursionLimit);
  Difference diff;
  const bool decoded = back.ParseFromCodedStream(&in) && in.ConsumedEntireMessage();
  if (!decoded || !find(checked, back, Place{}, diff, 0)) {
    // Equal as C++ objects but not as encodings (or undecodable): still refused, nothing to name.
    return std::string(kHead) + "libpg_query's deparser wrote a text that parses back into another tree " +
           rule_text();
  }
  std::string part = "the " + node_words(diff.place.node);
  if (!diff.place.function.empty() && diff.place.node == "FuncCall") part += " " + diff.place.function + "(...)";
  if (!diff.place.clause.empty()) part += " in " + diff.place.clause;
  part += position_text(sql, diff.place.location);
  return std::string(kHead) + "libpg_query's deparser writes " + part + " so that it parses back differently (" +
         diff.what + ") " + rule_text() + "; write that part another way, e.g. with explicit parentheses";
}

}  // namespace rowguard::sqlrewrite
