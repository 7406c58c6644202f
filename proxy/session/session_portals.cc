// Portals and SQL cursors of a tenant session across policy reloads.
//
// A portal's rows were filtered when it was made (a Bind of a rewritten statement, a DECLARE
// rewritten like a SELECT). Most portals end with their transaction, and a session takes up a
// new policy only between transactions, but two outlive that boundary: a WITH HOLD cursor
// survives COMMIT (PostgreSQL materialises its rows), and the portals of a pipelined batch live
// until its Sync while rowguard may already have taken up the new policy for the batch's next
// messages. So the session records, by PostgreSQL's name for it (the parser folds and truncates
// SQL names; a protocol name counts by its first 63 bytes), the policy each portal was made
// under, and refuses (42501) any use of one made under another policy: FETCH / MOVE of the
// cursor and the protocol's Execute / Describe of the portal, which a SQL cursor is. CLOSE
// stays allowed; a cursor DECLAREd again afterwards belongs to the new policy.
//
// Rows of a cursor cannot be re-checked (a WITH HOLD cursor's rows are already materialised),
// hence invalidation. 42501 rather than PostgreSQL's 34000 (invalid_cursor_name): the cursor
// still exists on the server, and rowguard's refusals are 42501 throughout.
#include <algorithm>

#include "proxy/session/session.h"

namespace rowguard::session {

using CursorKind = sqlrewrite::CursorOp::Kind;

std::string TenantSession::stale_portal(std::string_view name, const policy::Policy& policy) {
  auto it = portals_.find(server_name(name));
  if (it == portals_.end() || it->second.policy_version == policy.version) return "";
  if (const uint64_t id = it->second.statement_id; id != 0) {
    // A protocol portal: if the statement it binds still rewrites to what the server holds,
    // its rows are those the new policy gives (a reload that changed nothing of it).
    Statement* st = nullptr;
    for (auto& [n, s] : statements_) {
      if (s.id == id) st = &s;
    }
    for (auto& a : awaited_) {
      if (a.kind == Await::kParse && !a.refused && a.statement.id == id) st = &a.statement;
    }
    if (st != nullptr && recheck(*st, name, policy).empty()) {
      it->second.policy_version = policy.version;
      return "";
    }
  }
  return "rowguard: cursor or portal \"" + std::string(name) + "\" was opened under an older policy that a "
         "reload has since changed; CLOSE it and open it again (rule: a reload applies to every cursor and portal)";
}

std::string TenantSession::room_for_portal(std::string_view name, const policy::LimitSettings& limits) const {
  if (portals_.size() < limits.max_prepared_statements || portals_.count(server_name(name)) > 0) return "";
  if (name.empty()) return "";  // the unnamed portal replaces the one there may be
  return "rowguard: this session has " + std::to_string(portals_.size()) + " cursors and portals open, the most "
         "rowguard allows per session ([limits] max_prepared_statements); close some first";
}

std::string TenantSession::check_cursors(const std::vector<sqlrewrite::CursorOp>& ops,
                                         const policy::Policy& policy) {
  // What earlier statements of this same Query did to a name (had one failed, the server would
  // skip the rest of the Query): closed (false) or declared under this policy (true).
  std::vector<std::pair<std::string_view, bool>> local;
  bool all_closed = false;
  auto find_local = [&](std::string_view name) -> const bool* {
    for (auto it = local.rbegin(); it != local.rend(); ++it) {
      if (it->first == name) return &it->second;
    }
    return nullptr;
  };
  size_t declared = 0;
  for (const auto& op : ops) {
    switch (op.kind) {
      case CursorKind::kFetch: {
        if (find_local(op.name) != nullptr || all_closed) break;  // made (or closed) by this Query
        if (std::string why = stale_portal(op.name, policy); !why.empty()) return why;
        break;
      }
      case CursorKind::kDeclare:
        if (portals_.count(op.name) == 0 && portals_.size() + ++declared > policy.limits.max_prepared_statements) {
          return room_for_portal(op.name, policy.limits);
        }
        local.emplace_back(op.name, true);
        break;
      case CursorKind::kClose:
        local.emplace_back(op.name, false);
        break;
      case CursorKind::kCloseAll:
        local.clear();
        all_closed = true;
        break;
    }
  }
  return "";
}

void TenantSession::send_cursors(const std::vector<sqlrewrite::CursorOp>& ops, uint64_t policy_version,
                                 Awaited& a) {
  for (const auto& op : ops) {
    if (op.kind == CursorKind::kFetch) continue;
    CursorChange c{op.kind, op.name, op.hold, false, policy_version};
    if (op.kind == CursorKind::kDeclare) {
      // A name already recorded keeps its record (if that cursor still exists, this DECLARE
      // fails on the server); a confirmed DECLARE replaces it.
      c.inserted = portals_.try_emplace(op.name, Portal{policy_version, a.seq, op.hold}).second;
    }
    a.cursors.push_back(std::move(c));
  }
}

std::string TenantSession::bind_cursors(const Statement& st, const policy::Policy& policy, uint64_t seq) {
  if (std::string why = check_cursors(st.cursors, policy); !why.empty()) return why;
  // Executed at some Execute of the portal: recorded now (as a DECLARE in flight), never
  // confirmed, so a name recorded under an older policy stays refused until CLOSE in a Query,
  // CLOSE ALL or DISCARD ALL. A CLOSE in the extended protocol is not relied on.
  for (const auto& op : st.cursors) {
    if (op.kind == CursorKind::kDeclare) portals_.try_emplace(op.name, Portal{policy.version, seq, op.hold});
  }
  return "";
}

void TenantSession::confirm_cursor(std::string_view tag, Awaited& a) {
  if (a.cursors.empty()) return;
  CursorChange& c = a.cursors.front();
  switch (c.kind) {
    case CursorKind::kDeclare:
      if (tag != "DECLARE CURSOR") return;
      portals_[c.name] = Portal{c.policy_version, a.seq, c.hold};
      break;
    case CursorKind::kClose:
      if (tag != "CLOSE CURSOR") return;
      portals_.erase(c.name);
      break;
    case CursorKind::kCloseAll:
      if (tag != "CLOSE CURSOR ALL") return;
      portals_.clear();
      break;
    case CursorKind::kFetch:
      break;
  }
  a.cursors.erase(a.cursors.begin());
}

void TenantSession::cursors_failed(Awaited& a) {
  // The DECLAREs the server did not run: their records made at sending go (a name recorded
  // before stays as it was).
  for (const auto& c : a.cursors) {
    if (c.kind != CursorKind::kDeclare || !c.inserted) continue;
    auto it = portals_.find(c.name);
    if (it != portals_.end() && it->second.seq == a.seq) portals_.erase(it);
  }
  a.cursors.clear();
}

void TenantSession::portal_bound(const Awaited& a) {
  portals_[a.name] = Portal{a.policy_version, a.seq, false, a.statement_id};
}

void TenantSession::transaction_ended(uint64_t seq) {
  // Every portal that is not a WITH HOLD cursor ends with its transaction; portals of messages
  // sent after the one just answered belong to the next one.
  if (portals_.empty()) return;
  std::erase_if(portals_, [&](const auto& kv) { return !kv.second.hold && kv.second.seq <= seq; });
}

}  // namespace rowguard::session
