// Fuzz target: session::TenantSession (the socket-free per-connection state machine) fed a
// sequence of frames in both directions, with the fixed policy and tenant '1'.
//
// Input: records  [ctl][tag][len_hi][len_lo][body: len bytes]  (len clipped to what is left).
// The frame is tag + int32 length + body, decoded with decode_frame as the network layer does.
//   ctl bit 0 set: a raw server message (on_server_message), whatever the client sent;
//   ctl bit 0 clear: a client message (on_client_message); what the session forwards goes to
//     a simulated PostgreSQL server (below); bit 1: that message fails on the server (Parse,
//     Bind, Execute, Query); bit 2 / bit 3: deliver the server's queued answers to the session
//     before / after this message (answers otherwise stay queued: pipelining).
// Processing stops when the session closes; the remaining answers are delivered at the end.
//
// Properties (abort() on violation):
//   * never crashes;
//   * to_server and to_client are sequences of complete, well-formed frames;
//   * every Query / Parse forwarded for a client Query / Parse is exactly the rewriter's output
//     for the client text (sqlrewrite::rewrite, called here without the session's cache) when
//     that is allowed, and otherwise a refusal (`SELECT rowguard_denied_<nonce>_<n>`); a
//     FunctionCall becomes a refusal Query; a Bind is forwarded as is or replaced by a Bind of
//     a refusal statement; other messages are forwarded unchanged, COPY messages only as COPY
//     messages;
//   * simulated server (as long as no raw server message was injected, which could contradict
//     it): a Bind the server actually runs gives every tenant parameter ($n feeding tenant_id,
//     per the rewriter) of the statement the server holds under that name the tenant's value.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/policy.h"
#include "proxy/protocol/codec.h"
#include "proxy/session/session.h"
#include "sqlrewrite/pg_query_api.h"
#include "sqlrewrite/rewrite_cache.h"
#include "sqlrewrite/rewriter.h"

namespace rowguard::fuzz {
const policy::Policy& fixed_policy();
}

namespace {

namespace protocol = rowguard::protocol;
namespace session = rowguard::session;
namespace sqlrewrite = rowguard::sqlrewrite;

constexpr std::string_view kTenant = "1";
constexpr std::string_view kNonce = "00c0ffee";
constexpr size_t kMaxMessage = size_t{1} << 30;

std::string g_trace;  // what happened so far, printed on failure

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "\n==== fuzz_session: INVARIANT VIOLATION ====\n%s\n---- trace ----\n%s\n",
               why.c_str(), g_trace.c_str());
  std::fflush(stderr);
  std::abort();
}

std::string printable(std::string_view s, size_t max = 200) {
  std::string out;
  for (char c : s.substr(0, max)) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) {
      out.push_back(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

// Splits `bytes` into frames; every frame must be complete.
std::vector<protocol::Frame> frames_of(std::string_view bytes, const char* what) {
  std::vector<protocol::Frame> out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    auto r = protocol::decode_frame(bytes.substr(pos), kMaxMessage);
    if (r.status != protocol::DecodeStatus::kComplete) {
      fail(std::string(what) + " is not a sequence of complete frames at offset " +
           std::to_string(pos) + ": " + printable(bytes.substr(pos)) + " (" + r.error + ")");
    }
    out.push_back(r.frame);
    pos += r.frame.size;
  }
  return out;
}

bool is_refusal_marker(std::string_view s) {
  const std::string prefix = "rowguard_denied_" + std::string(kNonce) + "_";
  if (s.substr(0, prefix.size()) != prefix || s.size() == prefix.size()) return false;
  for (char c : s.substr(prefix.size())) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool is_refusal_query(std::string_view sql) {
  return sql.substr(0, 7) == "SELECT " && is_refusal_marker(sql.substr(7));
}


// ---------------------------------------------------------------------------------------------
// A simulated PostgreSQL server behind the session. It executes what the session forwards with
// PostgreSQL's rules for prepared statements and errors, and answers with the messages
// PostgreSQL sends, queued until the input says to deliver them (pipelining):
//   * Parse: an unnamed Parse first drops the unnamed statement; a named Parse fails when the
//     name exists (42P05); a refusal fails (42703, naming the marker); else it may fail (the
//     input's fail bit) or prepare the statement: ParseComplete;
//   * Bind: fails when the statement does not exist or too few parameters are sent; else
//     BindComplete (or the fail bit). THE CHECK: every tenant parameter of the statement the
//     server holds under that name carries the tenant;
//   * Describe S: ParameterDescription (declared types, 25 = text for undeclared) + NoData;
//     Execute: CommandComplete (or the fail bit); Close: CloseComplete; Sync: ReadyForQuery;
//   * after an error everything up to Sync is skipped (Query messages included);
//   * Query: drops the unnamed statement; runs SQL PREPARE / EXECUTE (THE CHECK, as for Bind) /
//     DEALLOCATE / DISCARD ALL with their errors and CommandComplete tags; a refusal fails;
//     CommandComplete or ErrorResponse, then ReadyForQuery; an allowed COPY FROM STDIN answers
//     CopyInResponse and consumes CopyData until CopyDone / CopyFail.
struct SimStatement {
  std::vector<int> tenant_params;
  std::vector<int32_t> types;  // as declared in Parse
  std::string sql;
};

class SimServer {
 public:
  // What the harness knows about a forwarded Parse / Query (from its own rewrite call).
  struct Note {
    bool allowed = false;
    std::vector<int> tenant_params;
    bool copy_in = false;
    std::vector<sqlrewrite::PreparedStatementOp> prepared;  // SQL PREPARE / EXECUTE / ... of a Query
  };

  void client_frame(const protocol::Frame& f, bool fail_bit, const Note& note) {
    namespace fe = protocol::fe;
    if (copying_) {
      if (f.tag == fe::kCopyData) return;
      if (f.tag == fe::kCopyDone) { copying_ = false; complete("COPY 1"); rfq(); return; }
      if (f.tag == fe::kCopyFail) {
        copying_ = false;
        auto why = protocol::parse_query(f.body);
        error("57014", "COPY from stdin failed: " + std::string(why ? *why : ""));
        rfq();
        return;
      }
      // Other messages during COPY IN are a protocol error in PostgreSQL.
      copying_ = false;
      error("08P01", "unexpected message type during COPY from stdin");
      rfq();
    }
    if (f.tag == fe::kSync) {
      skipping_ = false;
      rfq();
      return;
    }
    if (skipping_) return;
    switch (f.tag) {
      case fe::kQuery: {
        stmts_.erase("");
        auto sql = protocol::parse_query(f.body);
        if (!sql) break;
        if (!note.allowed) {
          error("42703", "column \"" + std::string(sql->substr(7)) + "\" does not exist");
        } else if (note.copy_in && !fail_bit) {
          std::string b(1, '\0');
          b += std::string("\0\0", 2);
          protocol::append_frame(out_, 'G', b);
          copying_ = true;
          return;
        } else if (fail_bit) {
          error("22012", "division by zero");
        } else if (sql_prepared(note.prepared)) {
          complete("SELECT 1");
        }
        rfq();
        return;
      }
      case fe::kParse: {
        auto m = protocol::parse_parse(f.body);
        if (!m) break;
        const std::string name(session::server_name(m->statement));
        if (name.empty()) stmts_.erase(name);
        if (!note.allowed) {
          error("42703", "column \"" + std::string(m->query.substr(7)) + "\" does not exist");
        } else if (!name.empty() && stmts_.contains(name)) {
          error("42P05", "prepared statement \"" + name + "\" already exists");
        } else if (fail_bit) {
          error("42703", "column \"nope\" does not exist");
        } else {
          stmts_[name] = SimStatement{note.tenant_params, m->param_types, std::string(m->query)};
          protocol::append_frame(out_, '1', {});
        }
        return;
      }
      case fe::kBind: {
        auto m = protocol::parse_bind(f.body);
        if (!m) break;
        auto it = stmts_.find(std::string(session::server_name(m->statement)));
        if (it == stmts_.end()) {
          error("26000", "prepared statement \"" + std::string(m->statement) + "\" does not exist");
          return;
        }
        for (int p : it->second.tenant_params) {
          if (static_cast<size_t>(p) > m->params.size()) {
            error("08P01", "bind message supplies too few parameters");
            return;
          }
        }
        check_bind(*m, it->second);
        if (fail_bit) {
          error("22P02", "invalid input syntax");
        } else {
          protocol::append_frame(out_, '2', {});
        }
        return;
      }
      case fe::kDescribe: {
        auto t = protocol::parse_target(f.body);
        if (!t) break;
        if (t->kind == 'S') {
          auto it = stmts_.find(std::string(session::server_name(t->name)));
          if (it == stmts_.end()) {
            error("26000", "prepared statement \"" + std::string(t->name) + "\" does not exist");
            return;
          }
          int n = 0;
          for (int p : it->second.tenant_params) n = std::max(n, p);
          n = std::max(n, static_cast<int>(it->second.types.size()));
          std::string b;
          b.push_back(static_cast<char>(n >> 8));
          b.push_back(static_cast<char>(n & 0xff));
          for (int i = 0; i < n; ++i) {
            const int32_t oid = i < static_cast<int>(it->second.types.size()) && it->second.types[i] != 0 ? it->second.types[i] : 25;
            for (int k = 3; k >= 0; --k) b.push_back(static_cast<char>((static_cast<uint32_t>(oid) >> (8 * k)) & 0xff));
          }
          protocol::append_frame(out_, 't', b);
        }
        protocol::append_frame(out_, 'n', {});
        return;
      }
      case fe::kExecute:
        if (fail_bit) {
          error("22012", "division by zero");
        } else {
          complete("SELECT 1");
        }
        return;
      case fe::kClose: {
        auto t = protocol::parse_target(f.body);
        if (!t) break;
        if (t->kind == 'S') stmts_.erase(std::string(session::server_name(t->name)));
        protocol::append_frame(out_, '3', {});
        return;
      }
      case fe::kFlush:
      case fe::kTerminate:
        return;
      default:
        break;
    }
    error("08P01", "invalid message");  // a malformed message the session forwarded unchanged
  }

  std::string take() { return std::exchange(out_, {}); }
  bool skipping() const { return skipping_; }
  bool copying() const { return copying_; }
  const std::map<std::string, SimStatement>& statements() const { return stmts_; }

 private:
  void error(const std::string& state, const std::string& msg) {
    protocol::append_error_response(out_, "ERROR", state, msg);
    skipping_ = true;  // in the extended protocol; a simple Query ends with ReadyForQuery anyway
  }
  void complete(const std::string& tag) {
    std::string b = tag;
    b.push_back('\0');
    protocol::append_frame(out_, 'C', b);
  }
  void rfq() {
    skipping_ = false;
    protocol::append_ready_for_query(out_, 'I');
  }
  // Runs the SQL PREPARE / EXECUTE / DEALLOCATE statements of an allowed Query in order, with
  // PostgreSQL's errors; false when one failed (the rest of the Query is skipped). THE CHECK for
  // EXECUTE: every tenant parameter of the statement the server holds gets the tenant.
  bool sql_prepared(const std::vector<sqlrewrite::PreparedStatementOp>& ops) {
    using Kind = sqlrewrite::PreparedStatementOp::Kind;
    for (const auto& op : ops) {
      auto it = stmts_.find(std::string(session::server_name(op.name)));
      switch (op.kind) {
        case Kind::kPrepare:
          if (it != stmts_.end()) {
            error("42P05", "prepared statement \"" + op.name + "\" already exists");
            return false;
          }
          stmts_[std::string(session::server_name(op.name))] =
              SimStatement{op.tenant_params, op.param_types, "PREPARE " + op.name};
          break;
        case Kind::kExecute:
          if (it == stmts_.end()) {
            error("26000", "prepared statement \"" + op.name + "\" does not exist");
            return false;
          }
          for (int p : it->second.tenant_params) {
            if (static_cast<size_t>(p) > op.args.size()) {
              error("42601", "wrong number of parameters for prepared statement \"" + op.name + "\"");
              return false;
            }
          }
          for (int p : it->second.tenant_params) {
            const auto& v = op.args[static_cast<size_t>(p - 1)];
            if (!v || *v != kTenant) {
              fail("simulated server: EXECUTE of statement \"" + printable(op.name) + "\" runs\n    " +
                   it->second.sql + "\nwith $" + std::to_string(p) + " (the tenant column) = " +
                   (v ? "'" + printable(*v) + "'" : std::string("an expression")) +
                   ": a cross-tenant write/read the session let through");
            }
          }
          complete("SELECT 1");
          continue;
        case Kind::kDeallocate:
          if (it == stmts_.end()) {
            error("26000", "prepared statement \"" + op.name + "\" does not exist");
            return false;
          }
          stmts_.erase(it);
          break;
        case Kind::kDeallocateAll:
          stmts_.clear();
          break;
      }
      complete(op.command_tag);
    }
    return true;
  }

  // The server runs this Bind: each tenant parameter must be the tenant.
  static void check_bind(const protocol::BindMessage& m, const SimStatement& st) {
    for (int p : st.tenant_params) {
      const size_t i = static_cast<size_t>(p - 1);
      const auto& v = m.params[i];
      const int16_t format = m.format_of(i);
      const int32_t oid = i < st.types.size() && st.types[i] != 0 ? st.types[i] : 25;
      std::string why;
      if (!v) {
        why = "NULL";
      } else if (format == 0) {
        if (*v != kTenant) why = "'" + printable(*v) + "'";
      } else if (!session::check_tenant_param(v, format, oid, kTenant, p).empty()) {
        why = "binary " + printable(*v) + " (type " + std::to_string(oid) + ")";
      }
      if (!why.empty()) {
        fail("simulated server: Bind of statement \"" + printable(m.statement) + "\" runs\n    " +
             st.sql + "\nwith $" + std::to_string(p) + " (the tenant column) = " + why +
             ": a cross-tenant write/read the session let through");
      }
    }
  }

  std::map<std::string, SimStatement> stmts_;
  bool skipping_ = false;
  bool copying_ = false;
  std::string out_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& policy = rowguard::fuzz::fixed_policy();
  sqlrewrite::RewriteCache cache(8, 1 << 20);  // small: eviction is exercised too
  session::TenantSession s(std::string(kTenant), cache, std::string(kNonce));
  SimServer sim;
  bool sim_valid = true;  // false once a raw server message was injected (the session and the
                          // simulated server may then disagree: no more checks against it)
  g_trace.clear();

  // Feeds server bytes to the session; false when the session closes.
  auto to_session = [&](const std::string& bytes, const char* what) {
    for (const auto& f : frames_of(bytes, what)) {
      std::string raw(f.body.data() - 5, f.size);
      g_trace += std::string("S> ") + printable(std::string_view(&f.tag, 1)) + " " + printable(f.body) + "\n";
      std::string to_client;
      session::ServerStep st = s.on_server_message(f, raw, to_client);
      frames_of(to_client, "to_client (server message)");
      if (st.close) {
        if (st.reason.empty()) fail("server step closes without a reason");
        // The model of the server's state must predict every answer of a correct server.
        if (sim_valid) fail("the session closed on the simulated server's answer: " + st.reason);
        return false;
      }
    }
    return true;
  };

  size_t pos = 0;
  while (size - pos >= 2) {
    const uint8_t ctl = data[pos];
    const char tag = static_cast<char>(data[pos + 1]);
    pos += 2;
    size_t len = 0;
    if (size - pos >= 2) {
      len = (size_t{data[pos]} << 8) | data[pos + 1];
      pos += 2;
    } else {
      len = size - pos;
    }
    len = std::min(len, size - pos);
    std::string raw;
    protocol::append_frame(raw, tag, std::string_view(reinterpret_cast<const char*>(data + pos), len));
    pos += len;
    auto dec = protocol::decode_frame(raw, kMaxMessage);
    if (dec.status != protocol::DecodeStatus::kComplete || dec.frame.size != raw.size()) {
      fail("append_frame output does not decode as one frame");
    }
    const protocol::Frame& f = dec.frame;

    if (ctl & 1) {  // a raw server message
      sim_valid = false;
      if (!to_session(raw, "raw server message")) return 0;
      continue;
    }
    const bool fail_bit = (ctl & 2) != 0;
    if ((ctl & 4) && sim_valid && !to_session(sim.take(), "simulated server output")) return 0;

    g_trace += std::string(fail_bit ? "C!> " : "C> ") + printable(std::string_view(&tag, 1)) + " " + printable(f.body) + "\n";
    session::ClientStep st = s.on_client_message(f, policy);
    const auto out = frames_of(st.to_server, "to_server");
    frames_of(st.to_client, "to_client (client message)");
    for (const auto& o : out) g_trace += "   -> " + printable(std::string_view(&o.tag, 1)) + " " + printable(o.body) + "\n";
    auto expect_close = [&](const char* what) {
      if (!st.close || !st.to_server.empty() || st.to_client.empty()) {
        fail(std::string("a malformed ") + what + " must close the session with an error and forward nothing");
      }
    };
    auto single = [&](char want) -> const protocol::Frame& {
      if (out.size() != 1 || out[0].tag != want) {
        fail(std::string("expected exactly one '") + want + "' frame to the server, got " +
             std::to_string(out.size()) + " frame(s)");
      }
      return out[0];
    };

    SimServer::Note note;
    switch (tag) {
      case protocol::fe::kQuery: {
        auto sql = protocol::parse_query(f.body);
        if (!sql) { expect_close("Query"); return 0; }
        const auto r = sqlrewrite::rewrite(*sql, policy, kTenant);
        auto q = protocol::parse_query(single('Q').body);
        if (!q) fail("forwarded Query does not parse");
        if (r.allowed && !r.prepared.empty() && is_refusal_query(*q) && !st.denial.empty()) {
          // refused by the session's checks of SQL-level prepared statements
        } else if (r.allowed) {
          if (*q != r.sql) {
            fail("forwarded Query is not the rewriter's output:\n  client: " + printable(*sql, 2000) +
                 "\n  rewrite: " + r.sql + "\n  sent: " + printable(*q, 2000));
          }
          note.allowed = true;
          note.copy_in = r.copy_in.has_value();
          note.prepared = r.prepared;
        } else if (!is_refusal_query(*q) || st.denial.empty()) {
          fail("denied Query not replaced by a refusal: sent " + printable(*q, 2000));
        }
        break;
      }
      case protocol::fe::kParse: {
        auto m = protocol::parse_parse(f.body);
        if (!m) { expect_close("Parse"); return 0; }
        const auto r = sqlrewrite::rewrite(m->query, policy, kTenant);
        auto p = protocol::parse_parse(single('P').body);
        if (!p) fail("forwarded Parse does not parse");
        if (p->statement != m->statement) fail("forwarded Parse renames the statement");
        if (is_refusal_query(p->query)) {
          if (!p->param_types.empty() || st.denial.empty()) fail("malformed refusal Parse");
        } else if (!r.allowed) {
          fail("denied Parse not replaced by a refusal: sent " + printable(p->query, 2000));
        } else if (p->query != r.sql || p->param_types != m->param_types) {
          fail("forwarded Parse is not the rewriter's output:\n  client: " + printable(m->query, 2000) +
               "\n  rewrite: " + r.sql + "\n  sent: " + printable(p->query, 2000));
        } else {
          note.allowed = true;
          note.tenant_params = r.tenant_params;
        }
        break;
      }
      case protocol::fe::kFunctionCall: {
        auto q = protocol::parse_query(single('Q').body);
        if (!q || !is_refusal_query(*q) || st.denial.empty()) fail("FunctionCall not refused");
        break;
      }
      case protocol::fe::kBind: {
        auto m = protocol::parse_bind(f.body);
        if (!m) { expect_close("Bind"); return 0; }
        const auto& b = single('B');
        if (b.body != f.body) {
          auto rb = protocol::parse_bind(b.body);
          if (!rb || rb->portal != m->portal || !is_refusal_marker(rb->statement) ||
              !rb->params.empty() || st.denial.empty()) {
            fail("a changed Bind must be a parameterless Bind of a refusal statement");
          }
        }
        break;
      }
      case protocol::fe::kClose:
      case protocol::fe::kDescribe: {
        auto t = protocol::parse_target(f.body);
        if (!t || (t->kind != 'S' && t->kind != 'P')) { expect_close(tag == protocol::fe::kClose ? "Close" : "Describe"); return 0; }
        const auto& o = single(tag);
        if (o.body != f.body) {
          auto rt = protocol::parse_target(o.body);
          if (tag != protocol::fe::kDescribe || !rt || rt->kind != 'S' || !is_refusal_marker(rt->name) ||
              st.denial.empty()) {
            fail("a changed Describe must be a Describe of a refusal statement");
          }
        }
        break;
      }
      case protocol::fe::kExecute:
      case protocol::fe::kFlush:
      case protocol::fe::kSync:
      case protocol::fe::kTerminate: {
        const auto& o = single(tag);
        if (o.body != f.body) fail("message not forwarded unchanged");
        if (tag == protocol::fe::kTerminate && !st.close) fail("Terminate does not close");
        break;
      }
      case protocol::fe::kCopyData:
      case protocol::fe::kCopyDone:
      case protocol::fe::kCopyFail:
        for (const auto& o : out) {
          if (o.tag != protocol::fe::kCopyData && o.tag != protocol::fe::kCopyDone && o.tag != protocol::fe::kCopyFail) {
            fail("a COPY message produced a non-COPY message to the server");
          }
        }
        break;
      default:
        if (!st.close || !out.empty()) fail("unknown frontend message not refused with a close");
        break;
    }
    if (sim_valid) {
      for (const auto& o : out) {
        SimServer::Note n = note;
        if (o.tag != tag) n = SimServer::Note{};  // e.g. FunctionCall -> refusal Query
        sim.client_frame(o, fail_bit, n);
      }
    }
    if (st.close) return 0;
    if ((ctl & 8) && sim_valid && !to_session(sim.take(), "simulated server output")) return 0;
  }
  if (sim_valid && to_session(sim.take(), "simulated server output")) {
    // Every answer delivered: the model agrees with the simulated server on what is owed and on
    // the prepared statements it holds.
    if (sim.copying()) {
      if (s.idle()) fail("the session is idle while the server waits for COPY data");
    } else {
      if (!s.idle()) fail("the session still awaits answers the server has all sent");
      if (s.server_skipping() != sim.skipping()) fail("the session and the server disagree on skip-until-Sync");
      if (s.prepared_count() != sim.statements().size()) {
        fail("the session holds " + std::to_string(s.prepared_count()) + " prepared statements, the server " +
             std::to_string(sim.statements().size()));
      }
      for (const auto& [name, st] : sim.statements()) {
        if (!s.has_statement(name)) fail("the session does not know statement \"" + printable(name) + "\"");
      }
    }
  }
  return 0;
}
