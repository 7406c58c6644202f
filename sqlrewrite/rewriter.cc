// The rewriter's entry point: parse, walk every statement (walker.h), deparse, and check that the
// text forwarded parses back into exactly the tree that was checked.
#include "sqlrewrite/rewriter.h"

#include <exception>

#include "sqlrewrite/deparse_check.h"
#include "sqlrewrite/parse_stack.h"
#include "sqlrewrite/pg_query_api.h"
#include "sqlrewrite/walker.h"
#include "sqlrewrite/refusal_rules.h"

namespace rowguard::sqlrewrite {

namespace {

// libpg_query 15-4.0 writes a locking clause's OF list and its wait policy without a space between
// them: "FOR UPDATE OF oSKIP LOCKED", "FOR SHARE OF tNOWAIT" (a syntax error, or another relation
// name). The keywords are written in upper case, and unquoted identifiers in lower case, so an
// upper-case NOWAIT / SKIP LOCKED outside string literals and quoted identifiers that follows a
// non-space character is that clause: the space is put back. Used only when the deparsed text
// did not parse back into the checked tree; the patched text is checked the same way.
std::string with_lock_wait_spaced(const std::string& text) {
  std::string out;
  out.reserve(text.size() + 8);
  char quote = 0;        // ' or " while inside a literal / quoted identifier
  bool escapes = false;  // inside E'...': a backslash escapes the next character
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quote != 0) {
      out += c;
      if (escapes && c == '\\' && i + 1 < text.size()) {
        out += text[++i];
      } else if (c == quote) {
        if (i + 1 < text.size() && text[i + 1] == quote) {
          out += text[++i];  // '' or "" inside
        } else {
          quote = 0;
        }
      }
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
      escapes = c == '\'' && i > 0 && (text[i - 1] == 'E' || text[i - 1] == 'e');
      out += c;
      continue;
    }
    const std::string_view rest(text.data() + i, text.size() - i);
    if (i > 0 && text[i - 1] != ' ' && (rest.starts_with("NOWAIT") || rest.starts_with("SKIP LOCKED"))) out += ' ';
    out += c;
  }
  return out;
}

RewriteResult rewrite_here(std::string_view sql, const policy::TenantScope& scope, std::string_view tenant,
                           RewriteTrace* trace) {
  RewriteResult out;
  ParseOutput parsed = parse_sql(sql);
  if (!parsed.ok) {
    out.reason = "rowguard: the statement does not parse: " + parsed.error;
    return out;
  }
  try {
    for (auto& raw : *parsed.tree.mutable_stmts()) {
      Walker w(scope, tenant, trace);
      out.kinds.push_back(w.statement(*raw.mutable_stmt()));
      out.tenant_params.insert(out.tenant_params.end(), w.tenant_params_.begin(), w.tenant_params_.end());
      if (w.prepared_op_) out.prepared.push_back(std::move(*w.prepared_op_));
      if (w.cursor_op_) out.cursors.push_back(std::move(*w.cursor_op_));
      if (w.copy_plan_) {
        if (parsed.tree.stmts_size() != 1) deny("COPY must be the only statement of its Query" + rule_suffix(kRuleCopyOptions));
        out.copy_in = w.copy_plan_;
      }
    }
  } catch (const Denied& d) {
    out.kinds.clear();
    out.prepared.clear();
    out.cursors.clear();
    out.reason = d.reason;
    return out;
  } catch (const std::exception& e) {
    out.kinds.clear();
    out.prepared.clear();
    out.cursors.clear();
    out.reason = std::string("rowguard: internal error while checking the statement: ") + e.what() + rule_suffix(kRuleCannotCheck);
    return out;
  }
  if (parsed.tree.stmts_size() == 0) {
    out.allowed = true;  // only comments / whitespace: the server answers EmptyQueryResponse
    return out;
  }
  std::string checked;  // the checked tree, serialized: deparsed, then compared with the reparse
  DeparseOutput dep = deparse_sql(parsed.tree, &checked);
  if (!dep.ok) {
    out.kinds.clear();
    out.prepared.clear();
    out.cursors.clear();
    out.reason = "rowguard: cannot rebuild the rewritten statement: " + dep.error + rule_suffix(kRuleCannotCheck);
    return out;
  }
  // The deparser is not trusted: the text rowguard forwards must parse back into exactly the
  // tree it checked (libpg_query 15-4.0 drops needed parentheses in some expressions, e.g.
  // "(a OR b) IS TRUE"). Any difference: deny, naming the part that differs (deparse_check.h).
  // Compared as encodings, source positions skipped (sqlrewrite::same_tree_bytes).
  ProtobufParseOutput reparsed = parse_sql_protobuf(dep.sql);
  bool same = reparsed.ok && same_tree_bytes(checked, reparsed.bytes);
  // Repairs of the deparser's known slips, each checked exactly like the first text.
  auto try_text = [&](std::string candidate) {
    if (same || candidate == dep.sql) return;
    ProtobufParseOutput again = parse_sql_protobuf(candidate);
    if (again.ok && same_tree_bytes(checked, again.bytes)) {
      dep.sql = std::move(candidate);
      same = true;
    }
  };
  if (!same && (dep.sql.find("NOWAIT") != std::string::npos || dep.sql.find("SKIP LOCKED") != std::string::npos)) {
    try_text(with_lock_wait_spaced(dep.sql));
  }
  // FETCH / MOVE: the deparser writes the cursor name last and unquoted ("FETCH FORWARD 5
  // MixedCase", which names the cursor mixedcase).
  if (!same && parsed.tree.stmts_size() == 1 && parsed.tree.stmts(0).stmt().has_fetch_stmt()) {
    const std::string& name = parsed.tree.stmts(0).stmt().fetch_stmt().portalname();
    if (!name.empty() && dep.sql.ends_with(name)) {
      std::string quoted = "\"";
      for (char ch : name) quoted += ch == '"' ? std::string("\"\"") : std::string(1, ch);
      try_text(dep.sql.substr(0, dep.sql.size() - name.size()) + quoted + "\"");
    }
  }
  if (!same) {
    out.kinds.clear();
    out.prepared.clear();
    out.cursors.clear();
    out.reason = deparse_check_denial(sql, parsed.tree, reparsed.ok, reparsed.bytes, reparsed.error);
    return out;
  }
  out.allowed = true;
  out.sql = std::move(dep.sql);
  return out;
}
}  // namespace

// The walk, the deparse and the tree's destruction recurse per tree level: all of it runs on the
// parse stack (parse_stack.h), like the parse.
RewriteResult rewrite(std::string_view sql, const policy::TenantScope& scope, std::string_view tenant,
                      RewriteTrace* trace) {
  return run_on_parse_stack([&] { return rewrite_here(sql, scope, tenant, trace); });
}

}  // namespace rowguard::sqlrewrite
