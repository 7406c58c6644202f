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

#include "sqlrewrite/pooled_names.h"

#include "pg/sqlstate.h"
#include "proxy/session/session.h"

namespace rowguard::session {

using Kind = sqlrewrite::PreparedStatementOp::Kind;

std::vector<TenantSession::Statement*> TenantSession::candidates(std::string_view name) {
  name = server_name(name);
  std::vector<Statement*> out;
  // A Parse of this name after the last Sync decides alone: if it fails, the server skips the
  // rest of the batch (a Bind of it too); if it succeeds, that is the statement.
  for (auto it = awaited_.rbegin(); it != awaited_.rend(); ++it) {
    if (it->kind == Await::kSync || it->kind == Await::kQuery) break;
    if (it->kind == Await::kParse && it->name == name && !it->injected) {
      if (!it->refused) out.push_back(&it->statement);
      return out;
    }
  }
  if (auto it = statements_.find(name); it != statements_.end()) out.push_back(&it->second);
  for (auto& a : awaited_) {
    if (a.kind == Await::kParse && a.name == name && !a.refused && !a.injected) out.push_back(&a.statement);
    for (auto& op : a.sql) {
      if (op.kind == Kind::kPrepare && op.name == name) out.push_back(&op.statement);
    }
  }
  return out;
}

std::string TenantSession::check_sql_prepared(const std::vector<sqlrewrite::PreparedStatementOp>& ops,
                                              const policy::Policy& policy) {
  if (extended_open_ && std::any_of(ops.begin(), ops.end(), [](const auto& op) { return !op.command_tag.empty(); })) {
    // Refused for simplicity: the server would run it only if the open batch has not failed.
    return "rowguard: PREPARE / DEALLOCATE / DISCARD ALL in a Query must not follow extended-protocol "
           "messages without a Sync";
  }
  // Statements prepared (or dropped: nullopt) by earlier statements of this same Query. One of
  // them decides alone: had it failed, the server would skip the rest of the Query.
  std::map<std::string, std::optional<Statement>, std::less<>> local;
  bool all_dropped = false;
  for (const auto& op : ops) {
    const std::string name(server_name(op.name));
    // EXECUTE too: the server connection's rg_* statements are rowguard's, shared by every tenant
    // (with the tenant as a parameter, an EXECUTE naming one could bind another tenant's value).
    if (pooled_ && name.starts_with("rg_") &&
        (op.kind == Kind::kPrepare || op.kind == Kind::kDeallocate || op.kind == Kind::kExecute)) {
      return "rowguard: prepared statement names starting with rg_ are rowguard's on a pooled server "
             "connection ([pool] mode = \"transaction\"); use another name";
    }
    switch (op.kind) {
      case Kind::kPrepare:
        local[name] = Statement{op.tenant_params, op.param_types, {}, 0, {}, {}, 0, {}, {}, {}};
        break;
      case Kind::kDeallocate:
        local[name] = std::nullopt;
        break;
      case Kind::kDeallocateAll:
        local.clear();
        all_dropped = true;
        break;
      case Kind::kExecute: {
        std::vector<Statement*> cands;
        bool from_this_query = false;
        if (auto it = local.find(name); it != local.end()) {
          if (it->second) cands.push_back(&*it->second);
          from_this_query = true;
        } else if (!all_dropped) {
          cands = candidates(name);
        }
        if (cands.empty()) {
          return "rowguard: EXECUTE of prepared statement \"" + op.name + "\", which this session "
                 "has not prepared (rule: fail closed on unknown statements)";
        }
        for (Statement* st : cands) {
          if (!from_this_query) {
            if (std::string why = recheck(*st, op.name, policy); !why.empty()) return why;
          }
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

std::vector<TenantSession::SqlOp> TenantSession::sql_ops(const std::vector<sqlrewrite::PreparedStatementOp>& ops,
                                                         std::string_view text, const std::string& rewritten,
                                                         uint64_t policy_version) const {
  std::vector<SqlOp> out;
  for (const auto& op : ops) {
    if (op.command_tag.empty()) continue;
    SqlOp s{op.kind, std::string(server_name(op.name)), op.command_tag, {}};
    if (op.kind == Kind::kPrepare) {
      // A reload re-checks the whole Query text it came in (its rewrite must stay the same).
      s.statement = Statement{op.tenant_params, op.param_types, std::string(text), policy_version, rewritten, {}, 0, {}, {}, {}};
    }
    out.push_back(std::move(s));
  }
  return out;
}

void TenantSession::on_command_complete(std::string_view body) {
  // The statements of a Query run in order and the first error ends it, so each confirmation
  // is for the oldest statement of the current Query still in flight.
  std::vector<SqlOp>& ops = awaited_.front().sql;
  if (ops.empty()) return;
  const std::string_view tag = body.substr(0, body.find('\0'));
  SqlOp& front = ops.front();
  if (tag != front.tag) return;  // another statement of the Query
  switch (front.kind) {
    case Kind::kPrepare:
      commit_statement(front.name, std::move(front.statement));
      break;
    case Kind::kDeallocate:
      drop_statement(front.name);
      break;
    case Kind::kDeallocateAll:
      if (conn_ != nullptr) conn_->clear();  // the connection's statements are gone too
      statements_.clear();
      statement_bytes_ = 0;
      if (front.tag == "DISCARD ALL") portals_.clear();  // closes every portal and cursor too
      break;
    case Kind::kExecute:
      break;
  }
  ops.erase(ops.begin());
}

// ---- transaction pooling: named protocol statements follow the client ----------------------

void TenantSession::attach(ServerStatements* conn) {
  conn_ = conn;
  batch_tick_ = conn != nullptr ? conn->tick() : 0;
}

std::string TenantSession::pin_reason() const {
  if (!pooled_) return "";
  // (Only a statement prepared before the session was pooled: pooled ones follow the client.)
  for (const auto& [name, st] : statements_) {
    if (st.id == 0) return "SQL-level prepared statement \"" + name + "\" (PREPARE) lives on its server connection";
  }
  return "";
}

std::string TenantSession::undefined_statement(std::string_view name) {
  std::string out;
  protocol::append_error_response(out, "ERROR", "26000", "prepared statement \"" + std::string(name) + "\" does not exist");
  return out;
}

void TenantSession::no_connection(ClientStep& step) {
  step.close = true;
  protocol::append_error_response(step.to_client, "FATAL", pg::sqlstate::kProtocolViolation,
                                  "rowguard: internal error: no server connection attached to a pooled session");
}

TenantSession::Statement* TenantSession::resolve(std::string_view name) {
  name = server_name(name);
  for (auto it = awaited_.rbegin(); it != awaited_.rend(); ++it) {
    Awaited& a = *it;
    if (a.kind == Await::kParse && !a.injected && !a.refused && a.name == name) return &a.statement;
    if (a.kind == Await::kClose && !a.injected && a.close_kind == 'S' && a.name == name) return nullptr;
    for (auto op = a.sql.rbegin(); op != a.sql.rend(); ++op) {
      if (op->kind == Kind::kDeallocateAll) return nullptr;
      if (op->name != name) continue;
      if (op->kind == Kind::kPrepare) return &op->statement;
      if (op->kind == Kind::kDeallocate) return nullptr;
    }
  }
  auto it = statements_.find(name);
  return it == statements_.end() ? nullptr : &it->second;
}

TenantSession::Awaited& TenantSession::stand_in(Await kind, ClientStep& step) {
  // Closing a statement that does not exist does nothing but answer CloseComplete; no statement
  // is ever named rg_0 (ServerStatements counts from 1, and a tenant may not PREPARE rg_*).
  if (skipping_) return expect(kind);  // the server skips to Sync: nothing is sent
  Awaited& a = expect(kind);
  protocol::append_frame(step.to_server, protocol::fe::kClose, std::string_view("Srg_0\0", 6));
  a.synthetic = true;
  return a;
}

void TenantSession::queue_eviction(ClientStep& step) {
  // Down to the bound again (one at a time unless a batch used more than the bound).
  while (std::optional<std::string> victim = conn_->evict(batch_tick_)) {
    std::string body(1, 'S');
    body += *victim;
    body.push_back('\0');
    protocol::append_frame(step.to_server, protocol::fe::kClose, body);
    Awaited& a = expect(Await::kClose);
    a.close_kind = 'S';
    a.injected = true;
    a.server_stmt = std::move(*victim);
  }
}

std::string TenantSession::ensure_on_server(const Statement& st, std::string_view client_name, ClientStep& step) {
  if (st.id == 0) return std::string(client_name);  // made before pooling: the client is pinned
  const bool sql = !st.sql_template.empty();
  if (auto held = sql ? conn_->find_sql(st.sql_template, batch_tick_) : conn_->find(st.rewritten, st.parse_types, batch_tick_)) {
    return *held;
  }
  if (sql && std::count(st.param_types.begin(), st.param_types.end(), 0) > 0) {
    // A Parse with type OID 0 would let the server infer a type the PREPARE declared.
    step.denial = "rowguard: prepared statement \"" + std::string(client_name) + "\" was made with SQL PREPARE "
                  "declaring a parameter type rowguard does not know the OID of; on a pooled server connection "
                  "that lacks it, use it with EXECUTE, or prepare it with Parse";
    step.statement = "use of prepared statement \"" + std::string(client_name) + "\"";
    return refuse(step.denial);  // names no statement: fails on the server at this point
  }
  // `st` may live in awaited_, which expect() grows: nothing of it is read after.
  std::string name = sql ? conn_->add_pending_sql(st.sql_template) : conn_->add_pending(st.rewritten, st.parse_types);
  std::string parse;
  protocol::append_parse(parse, name, sql ? st.sql_query : st.rewritten, sql ? st.param_types : st.parse_types);
  queue_eviction(step);
  step.to_server += parse;
  Awaited& a = expect(Await::kParse);
  a.injected = true;
  a.server_stmt = name;
  return name;
}

// ---- the tenant as parameters: one server statement for every tenant -------------------------

void TenantSession::use_tenant_params(Statement& st, const policy::Policy& policy) {
  if (!st.cursors.empty()) return;  // a DECLARE / FETCH / CLOSE text keeps its constant
  std::optional<sqlrewrite::TenantParamForm> form = cache_.tenant_param_form(st.text, policy, st.param_types.size());
  if (!form) return;
  st.rewritten = std::move(form->sql);
  // The client's declared types (unspecified ones are 0, as if not declared), then unspecified
  // for the tenant's: the server types each from its comparison, as it types the constant.
  st.parse_types.resize(static_cast<size_t>(form->first - 1 + form->count), 0);
  st.tenant_first = form->first;
  st.tenant_count = form->count;
}

namespace {

void put_i16(std::string& out, size_t v) {
  out.push_back(static_cast<char>((v >> 8) & 0xff));
  out.push_back(static_cast<char>(v & 0xff));
}

void put_i32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

}  // namespace

void TenantSession::append_tenant_bind(const protocol::BindMessage& m, std::string_view on_server, int tenant_params,
                                      std::string& out) const {
  const size_t client_params = m.params.size();
  const auto tenant_count = static_cast<size_t>(tenant_params);
  std::string body;
  body.append(m.portal);
  body.push_back('\0');
  body.append(on_server);
  body.push_back('\0');
  // Format codes: none (all text) and one text code stay as they are; one binary code applies
  // to every parameter, so it is spelled out per parameter; one per parameter gets text ones.
  if (m.param_formats.empty() || (m.param_formats.size() == 1 && m.param_formats[0] == 0)) {
    put_i16(body, m.param_formats.size());
    for (int16_t f : m.param_formats) put_i16(body, static_cast<uint16_t>(f));
  } else {
    put_i16(body, client_params + tenant_count);
    for (size_t i = 0; i < client_params; ++i) put_i16(body, static_cast<uint16_t>(m.format_of(i)));
    for (size_t i = 0; i < tenant_count; ++i) put_i16(body, 0);
  }
  put_i16(body, client_params + tenant_count);
  for (const auto& v : m.params) {
    if (!v) {
      put_i32(body, 0xffffffffu);
    } else {
      put_i32(body, static_cast<uint32_t>(v->size()));
      body.append(*v);
    }
  }
  for (size_t i = 0; i < tenant_count; ++i) {
    put_i32(body, static_cast<uint32_t>(tenant_.size()));
    body.append(tenant_);
  }
  put_i16(body, m.result_formats.size());
  for (int16_t f : m.result_formats) put_i16(body, static_cast<uint16_t>(f));
  protocol::append_frame(out, protocol::fe::kBind, body);
}

void TenantSession::pooled_parse(std::string_view name, Statement st, ClientStep& step) {
  if (skipping_) {  // the server discards the batch up to Sync: so does rowguard
    expect(Await::kParse);
    return;
  }
  if (resolve(name) != nullptr) {
    // PostgreSQL's answer, made to fail on the server at the same point (it skips the batch).
    std::string error;
    protocol::append_error_response(error, "ERROR", "42P05",
                                    "prepared statement \"" + std::string(name) + "\" already exists");
    const std::string marker = refuse_with(std::move(error));
    protocol::append_parse(step.to_server, marker, "SELECT " + marker, {});
    Awaited& a = expect(Await::kParse);
    a.name = name;
    a.refused = true;
    return;
  }
  if (conn_ == nullptr) {
    no_connection(step);
    return;
  }
  if (conn_->find(st.rewritten, st.parse_types, batch_tick_)) {
    // The connection holds (or is preparing) this text: rowguard answers, in order.
    Awaited& a = stand_in(Await::kParse, step);
    a.name = name;
    a.statement = std::move(st);
    protocol::append_frame(a.answer, protocol::be::kParseComplete, {});
    return;
  }
  std::string server = conn_->add_pending(st.rewritten, st.parse_types);
  std::string parse;
  protocol::append_parse(parse, server, st.rewritten, st.parse_types);
  queue_eviction(step);
  step.to_server += parse;
  Awaited& a = expect(Await::kParse);
  a.name = name;
  a.statement = std::move(st);
  a.server_stmt = std::move(server);
}

// ---- transaction pooling: SQL-level PREPARE / EXECUTE / DEALLOCATE follow the client --------

void TenantSession::pooled_query(const sqlrewrite::RewriteResult& r, std::string_view text,
                                 const policy::Policy& policy, ClientStep& step) {
  auto fail = [&](std::string error_response) {  // PostgreSQL's answer, at the same point
    protocol::append_query(step.to_server, "SELECT " + refuse_with(std::move(error_response)));
    expect(Await::kQuery);
  };
  auto deny = [&](std::string why) {
    step.denial = std::move(why);
    protocol::append_query(step.to_server, "SELECT " + refuse(step.denial));
    expect(Await::kQuery);
  };
  // 1. The namespace, as PostgreSQL checks it statement by statement (one error ends the Query).
  {
    static const Statement kMade{};
    std::map<std::string, const Statement*, std::less<>> local;  // this Query's PREPARE (set) / DEALLOCATE (nullptr)
    bool all_dropped = false;
    auto lookup = [&](const std::string& name) -> const Statement* {
      if (auto it = local.find(name); it != local.end()) return it->second;
      return all_dropped ? nullptr : resolve(name);
    };
    for (const auto& op : r.prepared) {
      const std::string name(server_name(op.name));
      std::string error;
      switch (op.kind) {
        case Kind::kPrepare:
          if (lookup(name) != nullptr) {
            protocol::append_error_response(error, "ERROR", "42P05", "prepared statement \"" + name + "\" already exists");
          }
          local[name] = &kMade;
          break;
        case Kind::kExecute:
          if (lookup(name) == nullptr) error = undefined_statement(name);
          break;
        case Kind::kDeallocate:
          if (lookup(name) == nullptr) error = undefined_statement(name);
          local[name] = nullptr;
          break;
        case Kind::kDeallocateAll:
          local.clear();
          all_dropped = true;
          break;
      }
      if (!error.empty()) {
        fail(std::move(error));
        return;
      }
    }
  }
  // 2. rowguard's rules (EXECUTE arguments feeding the tenant column, a reload, the bounds).
  std::string why = check_sql_prepared(r.prepared, policy);
  if (why.empty() && std::any_of(r.prepared.begin(), r.prepared.end(), [](const auto& op) { return op.kind == Kind::kPrepare; })) {
    why = room_for(text, policy.limits);
  }
  if (why.empty() && !r.cursors.empty()) why = check_cursors(r.cursors, policy);
  if (why.empty() && r.copy_in) {
    why = "rowguard: COPY FROM STDIN in the same Query as PREPARE / EXECUTE / DEALLOCATE / DISCARD ALL is not "
          "supported under transaction pooling; send the COPY in a Query of its own";
  }
  if (why.empty() && extended_open_) {
    why = "rowguard: PREPARE / EXECUTE / DEALLOCATE / DISCARD ALL in a Query must not follow extended-protocol "
          "messages without a Sync";
  }
  if (!why.empty()) {
    deny(std::move(why));
    return;
  }
  if (conn_ == nullptr) {
    no_connection(step);
    return;
  }
  // 3. The Query as sent: statement by statement, names translated.
  auto statements = sqlrewrite::split_statements(r.sql);
  auto is_op = [](const std::string& st) {
    // The statements the rewriter reported an op for (walker: PREPARE, EXECUTE, EXPLAIN
    // EXECUTE, DEALLOCATE, DISCARD ALL); checked against their count below.
    return sqlrewrite::rename_prepared(st, "rg_0").has_value() || st == "DEALLOCATE ALL" || st == "DISCARD ALL";
  };
  if (statements) {
    const auto n = static_cast<size_t>(std::count_if(statements->begin(), statements->end(), is_op));
    if (n != r.prepared.size()) statements.reset();
  }
  if (!statements) {
    deny("rowguard: cannot translate the prepared statement names of this Query for a pooled server connection "
         "(rule: fail closed)");
    return;
  }
  batch_tick_ = conn_->tick();  // the Query is a batch: what it uses is spared from eviction
  std::string out;
  std::vector<QueryPiece> pieces;
  std::vector<SqlOp> ops;
  std::map<std::string, std::string, std::less<>> made;  // client name -> server name, this Query's PREPAREs
  std::vector<std::pair<std::string, std::string>> names;  // server -> client, for the server's errors
  size_t index = 0;
  auto emit = [&](std::string_view sql) {
    if (!out.empty()) out += "; ";
    out += sql;
    return index++;
  };
  auto evictions = [&] {
    while (std::optional<std::string> victim = conn_->evict(batch_tick_)) {
      pieces.push_back({QueryPiece::kEvict, emit("DEALLOCATE " + *victim), *victim, {}, false});
    }
  };
  auto undo = [&] {  // the Query is refused after all: nothing of it reaches the server
    for (const auto& p : pieces) {
      if (p.kind == QueryPiece::kPrepare) conn_->parse_failed(p.server_stmt);
      if (p.kind == QueryPiece::kEvict) conn_->close_skipped(p.server_stmt);
    }
  };
  size_t k = 0;
  for (const std::string& st : *statements) {
    if (!is_op(st)) {
      emit(st);
      continue;
    }
    const auto& op = r.prepared[k++];
    const std::string name(server_name(op.name));
    switch (op.kind) {
      case Kind::kPrepare: {
        auto tmpl = sqlrewrite::rename_prepared(st, "rg_0");
        auto query = sqlrewrite::prepared_query(st);
        std::string server = tmpl && query ? conn_->add_pending_sql(*tmpl) : std::string();
        if (!server.empty()) evictions();
        auto sent = sqlrewrite::rename_prepared(st, server);
        if (server.empty() || !sent) {
          if (!server.empty()) pieces.push_back({QueryPiece::kPrepare, SIZE_MAX, server, {}, true});
          undo();
          deny("rowguard: cannot translate PREPARE \"" + name + "\" for a pooled server connection (rule: fail closed)");
          return;
        }
        const size_t i = emit(*sent);
        pieces.push_back({QueryPiece::kPrepare, i, server, {}, true});
        names.emplace_back(server, name);
        made[name] = server;
        SqlOp s{op.kind, name, op.command_tag, {}, i};
        s.statement = Statement{op.tenant_params, op.param_types, std::string(text), policy.version, r.sql, {},
                                next_statement_id_++, {}, 0, 0, std::move(*tmpl), std::move(*query)};
        ops.push_back(std::move(s));
        break;
      }
      case Kind::kExecute: {
        std::string server;
        if (auto it = made.find(name); it != made.end()) {
          server = it->second;
        } else {
          const Statement* known = resolve(name);  // (checked above: known)
          if (known->tenant_count > 0) {
            // Its server text takes the tenant as parameters after the client's: EXECUTE's
            // arguments would bind them (a client could name another tenant). Bind appends them.
            undo();
            deny("rowguard: EXECUTE of \"" + name + "\", made by Parse with the tenant as a parameter of its "
                 "server statement, is not supported on a pooled server connection; use Bind (rule: the tenant "
                 "is rowguard's to bind)");
            return;
          }
          const bool sql = !known->sql_template.empty();
          std::optional<std::string> held = sql ? conn_->find_sql(known->sql_template, batch_tick_)
                                                : conn_->find(known->rewritten, known->parse_types, batch_tick_);
          if (held) {
            server = *held;
          } else {
            if (!sql && !sqlrewrite::prepare_sql("rg_0", known->parse_types, known->rewritten)) {
              undo();
              deny("rowguard: EXECUTE of \"" + name + "\", made by Parse declaring a parameter type rowguard "
                   "cannot write in SQL, on a pooled server connection that lacks it; use Bind instead");
              return;
            }
            const std::string tmpl = known->sql_template, rewritten = known->rewritten;
            const std::vector<int32_t> types = known->parse_types;
            server = sql ? conn_->add_pending_sql(tmpl) : conn_->add_pending(rewritten, types);
            evictions();
            auto prep = sql ? sqlrewrite::rename_prepared(tmpl, server) : sqlrewrite::prepare_sql(server, types, rewritten);
            if (!prep) {
              pieces.push_back({QueryPiece::kPrepare, SIZE_MAX, server, {}, false});
              undo();
              deny("rowguard: cannot prepare \"" + name + "\" on a pooled server connection (rule: fail closed)");
              return;
            }
            pieces.push_back({QueryPiece::kPrepare, emit(*prep), server, {}, false});
          }
        }
        auto sent = sqlrewrite::rename_prepared(st, server);
        if (!sent) {
          undo();
          deny("rowguard: cannot translate EXECUTE \"" + name + "\" for a pooled server connection (rule: fail closed)");
          return;
        }
        emit(*sent);
        names.emplace_back(server, name);
        break;
      }
      case Kind::kDeallocate:
      case Kind::kDeallocateAll: {
        size_t i;
        if (op.command_tag == "DISCARD ALL") {
          i = emit(st);  // the server's statements go too (on_command_complete)
        } else {
          // The connection's statements are shared: only the client's record goes. A statement
          // that fails where a DEALLOCATE would (an aborted transaction) stands in for it.
          i = emit("SELECT WHERE false");
          pieces.push_back({QueryPiece::kStandIn, i, {}, op.command_tag, false});
        }
        if (op.kind == Kind::kDeallocate) made.erase(name);
        if (op.kind == Kind::kDeallocateAll) made.clear();
        SqlOp s{op.kind, name, op.command_tag, {}, i};
        ops.push_back(std::move(s));
        break;
      }
    }
  }
  protocol::append_query(step.to_server, out);
  const bool discarded = skipping_;
  Awaited& a = expect(Await::kQuery);
  a.pooled_query = true;
  a.sql = std::move(ops);
  a.pieces = std::move(pieces);
  a.names = std::move(names);
  if (!r.cursors.empty() && !discarded) send_cursors(r.cursors, policy.version, a);
}

bool TenantSession::pooled_query_answer(Awaited& a, char tag, std::string_view body, std::string_view raw,
                                        std::string& to_client) {
  const size_t i = a.completed;
  const QueryPiece* piece = nullptr;
  for (const auto& p : a.pieces) {
    if (p.index == i) piece = &p;
  }
  if (tag == protocol::be::kRowDescription) return !(piece != nullptr && piece->kind == QueryPiece::kStandIn);
  // CommandComplete of statement i.
  ++a.completed;
  bool to_the_client = true;
  if (piece != nullptr) {
    switch (piece->kind) {
      case QueryPiece::kPrepare:
        if (conn_ != nullptr) conn_->parsed(piece->server_stmt);
        to_the_client = piece->client;
        break;
      case QueryPiece::kEvict:
        if (conn_ != nullptr) conn_->closed(piece->server_stmt);
        to_the_client = false;
        break;
      case QueryPiece::kStandIn:
        protocol::append_frame(to_client, protocol::be::kCommandComplete, piece->tag + '\0');
        to_the_client = false;
        break;
    }
  }
  for (auto it = a.sql.begin(); it != a.sql.end(); ++it) {
    if (it->index != i) continue;
    switch (it->kind) {
      case Kind::kPrepare:
        commit_statement(it->name, std::move(it->statement));
        break;
      case Kind::kDeallocate:
        drop_statement(it->name);
        break;
      case Kind::kDeallocateAll:
        statements_.clear();
        statement_bytes_ = 0;
        if (it->tag == "DISCARD ALL") {
          if (conn_ != nullptr) conn_->clear();  // the connection's statements are gone
          portals_.clear();                      // and every portal and cursor
        }
        break;
      case Kind::kExecute:
        break;
    }
    a.sql.erase(it);
    break;
  }
  if (to_the_client) {
    confirm_cursor(body.substr(0, body.find('\0')), a);
    to_client.append(raw);
  }
  return false;
}

void TenantSession::pooled_query_failed(Awaited& a) {
  // The statement at `completed` failed; those after it did not run.
  for (const auto& p : a.pieces) {
    if (p.index < a.completed || conn_ == nullptr) continue;
    if (p.kind == QueryPiece::kPrepare) conn_->parse_failed(p.server_stmt);
    if (p.kind == QueryPiece::kEvict) conn_->close_skipped(p.server_stmt);
  }
  a.pieces.clear();
}

}  // namespace rowguard::session
