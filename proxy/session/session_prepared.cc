// SQL-level prepared statements of a tenant session: PREPARE / EXECUTE / DEALLOCATE /
// DISCARD ALL in the simple query protocol.
//
// PostgreSQL keeps one namespace for statements prepared with SQL PREPARE and with the
// protocol's Parse, so both live in `statements_`: a Bind of a SQL-prepared name and an EXECUTE
// of a protocol-prepared name are checked against the same record. The rewriter rewrites the
// statement of a PREPARE like a Parse text and reports which $n feed a tenant column; an EXECUTE
// is allowed only for a name this session prepared, and only when every argument at such a
// position is a literal equal to the tenant (compared like a text-format Bind value).
// A PREPARE / DEALLOCATE counts once the server's CommandComplete confirms it, as ParseComplete
// confirms a Parse; until then it is a candidate like a Parse in flight.
#include <algorithm>

#include "proxy/session/session.h"

namespace rowguard::session {

using Kind = sqlrewrite::PreparedStatementOp::Kind;

std::vector<const TenantSession::Statement*> TenantSession::candidates(std::string_view name) const {
  std::vector<const Statement*> out;
  if (auto it = statements_.find(name); it != statements_.end()) out.push_back(&it->second);
  for (const auto& pp : pending_parses_) {
    if (pp.name == name && !pp.refused) out.push_back(&pp.statement);
  }
  for (const auto& ps : pending_sql_) {
    if (ps.kind == Kind::kPrepare && ps.name == name) out.push_back(&ps.statement);
  }
  return out;
}

std::string TenantSession::check_sql_prepared(const std::vector<sqlrewrite::PreparedStatementOp>& ops) const {
  if (extended_open_ && std::any_of(ops.begin(), ops.end(), [](const auto& op) { return !op.command_tag.empty(); })) {
    // Its CommandComplete could not be told apart from those of the unfinished extended batch.
    return "rowguard: PREPARE / DEALLOCATE / DISCARD ALL in a Query must not follow extended-protocol "
           "messages without a Sync";
  }
  // Statements prepared (or dropped: nullopt) by earlier statements of this same Query. One of
  // them decides alone: had it failed, the server would skip the rest of the Query.
  std::map<std::string, std::optional<Statement>, std::less<>> local;
  bool all_dropped = false;
  for (const auto& op : ops) {
    switch (op.kind) {
      case Kind::kPrepare:
        local[op.name] = Statement{op.tenant_params, op.param_types};
        break;
      case Kind::kDeallocate:
        local[op.name] = std::nullopt;
        break;
      case Kind::kDeallocateAll:
        local.clear();
        all_dropped = true;
        break;
      case Kind::kExecute: {
        std::vector<const Statement*> cands;
        if (auto it = local.find(op.name); it != local.end()) {
          if (it->second) cands.push_back(&*it->second);
        } else if (!all_dropped) {
          cands = candidates(op.name);
        }
        if (cands.empty()) {
          return "rowguard: EXECUTE of prepared statement \"" + op.name + "\", which this session "
                 "has not prepared (rule: fail closed on unknown statements)";
        }
        for (const Statement* st : cands) {
          for (int p : st->tenant_params) {
            const auto i = static_cast<size_t>(p - 1);
            if (i >= op.args.size()) continue;  // wrong argument count: the server refuses it
            if (!op.args[i] || *op.args[i] != tenant_) {
              return "rowguard: argument " + std::to_string(p) + " of EXECUTE \"" + op.name +
                     "\" feeds the tenant column and is not the session tenant as a literal";
            }
          }
        }
        break;
      }
    }
  }
  return "";
}

void TenantSession::note_sql_prepared(const std::vector<sqlrewrite::PreparedStatementOp>& ops) {
  for (const auto& op : ops) {
    if (op.command_tag.empty()) continue;
    pending_sql_.push_back({batches_sent_ + 1, op.kind, op.name, op.command_tag,
                            Statement{op.tenant_params, op.param_types}});
  }
}

void TenantSession::on_command_complete(std::string_view body) {
  // The statements of a Query run in order and the first error ends it, so each confirmation
  // is for the oldest statement of the current Query still in flight.
  while (!pending_sql_.empty() && pending_sql_.front().batch <= batches_done_) pending_sql_.pop_front();
  if (pending_sql_.empty() || pending_sql_.front().batch != batches_done_ + 1) return;
  const std::string_view tag = body.substr(0, body.find('\0'));
  PendingSql& front = pending_sql_.front();
  if (tag != front.tag) return;  // another statement of the Query
  switch (front.kind) {
    case Kind::kPrepare:
      statements_[front.name] = std::move(front.statement);
      break;
    case Kind::kDeallocate:
      if (auto it = statements_.find(front.name); it != statements_.end()) statements_.erase(it);
      break;
    case Kind::kDeallocateAll:
      statements_.clear();
      break;
    case Kind::kExecute:
      break;
  }
  pending_sql_.pop_front();
}

}  // namespace rowguard::session
