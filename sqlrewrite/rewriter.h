#pragma once
// sqlrewrite: a pure function (SQL text, tenant scope, tenant) -> rewritten SQL | denial.
//
// Every statement of the text is parsed with libpg_query into the protobuf AST. A walker visits
// every node: table references get `tenant_column = '<tenant>'` (in WHERE, in the ON clause of
// an outer join, or as a filtered subquery), writes are checked, and any node type the walker does
// not positively handle is denied. The result is deparsed from the edited AST.
// No I/O, no globals, no clock: the same input gives the same output.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/tenant_scope.h"

namespace rowguard::sqlrewrite {

// What a statement does, as far as the proxy cares (transaction tracking, logs, metrics).
enum class StatementKind { kSelect, kInsert, kUpdate, kDelete, kMerge, kTransaction, kSet, kShow, kExplain, kCopyOut, kCopyIn, kListen, kOther };

// How to check the rows of a COPY ... FROM STDIN that rowguard allowed (text or CSV format).
struct CopyInPlan {
  bool csv = false;
  char delimiter = '\t';
  char quote = '"';
  char escape = '"';
  std::string null_string = "\\N";
  bool header = false;
  int tenant_index = -1;  // position of the tenant column in each row; -1: rowguard appends it
  std::string tenant_column;  // for a HEADER line when appending
  std::string table;          // "schema.table", for messages
  int columns = 0;            // columns in each row as sent by the client
};

// A statement acting on the session's prepared statements (SQL PREPARE / EXECUTE / DEALLOCATE /
// DISCARD ALL). PostgreSQL has one namespace for SQL-level and protocol-level (Parse) prepared
// statements; the session keeps one map for both and checks EXECUTE arguments with it.
// Tenant-independent: the session compares `args` with its tenant.
struct PreparedStatementOp {
  enum class Kind {
    kPrepare,        // PREPARE name [(types)] AS <statement>: the statement was rewritten
    kExecute,        // EXECUTE name [(args)] (also under EXPLAIN)
    kDeallocate,     // DEALLOCATE [PREPARE] name
    kDeallocateAll,  // DEALLOCATE ALL, DISCARD ALL
  };
  Kind kind = Kind::kPrepare;
  std::string name;  // empty for kDeallocateAll
  // kPrepare: the parameters ($n, 1-based) that feed a tenant column, and the declared parameter
  // types as OIDs where rowguard knows the type (int2/int4/int8/text/varchar/bpchar/uuid), else 0.
  std::vector<int> tenant_params;
  std::vector<int32_t> param_types;
  // kExecute: for each argument, its value if it is a plain constant (a string or integer
  // literal, optionally cast to text/varchar), compared by the session with the tenant exactly as
  // a text-format Bind value; nullopt for any other expression.
  std::vector<std::optional<std::string>> args;
  // PostgreSQL's CommandComplete tag when the statement succeeded ("" for kExecute).
  std::string command_tag;
};

// DECLARE / FETCH / MOVE / CLOSE of a text, for the session's record of which policy each
// cursor was declared under (a WITH HOLD cursor outlives its transaction, so a reload must not
// leave it readable). Names as PostgreSQL keys portals: the parser folds unquoted identifiers
// and truncates every identifier to 63 bytes. Tenant-independent.
struct CursorOp {
  enum class Kind {
    kDeclare,   // DECLARE name ... CURSOR [WITH HOLD] FOR <query> (not under EXPLAIN)
    kFetch,     // FETCH / MOVE ... [FROM | IN] name
    kClose,     // CLOSE name
    kCloseAll,  // CLOSE ALL
  };
  Kind kind = Kind::kFetch;
  std::string name;  // empty for kCloseAll
  bool hold = false;  // kDeclare: WITH HOLD
  // PostgreSQL's CommandComplete tag when the statement succeeded ("" for kFetch).
  std::string command_tag;
};

struct RewriteResult {
  bool allowed = false;
  std::string sql;     // the rewritten text (all statements), when allowed
  std::string reason;  // when denied: "rowguard: ..." naming the statement part and the rule
  std::vector<StatementKind> kinds;  // one per statement, when allowed
  // Parameters ($n, 1-based) that feed a tenant column: the proxy checks at Bind that their
  // value is the session tenant (extended protocol).
  std::vector<int> tenant_params;
  // Set for COPY ... FROM STDIN: the proxy streams the client's rows through a checker.
  std::optional<CopyInPlan> copy_in;
  // PREPARE / EXECUTE / DEALLOCATE / DISCARD ALL statements of the text, in statement order.
  std::vector<PreparedStatementOp> prepared;
  // DECLARE / FETCH / MOVE / CLOSE statements of the text, in statement order.
  std::vector<CursorOp> cursors;
};

// What a rewrite did with the tenant value; filled when a trace is passed. The template cache
// (rewrite_cache.h) rewrites with a sentinel tenant and needs to know whether the result can be
// turned into a template (the tenant only appears as inserted string constants) or depends on the
// tenant's value (compared with a literal of the statement, or built into a channel name).
struct RewriteTrace {
  int tenant_literals = 0;       // tenant string constants put into the tree
  // Of those, the ones that are the right side of a tenant filter `<ref>.<tenant column> =
  // '<tenant>'` (a predicate or qual guard the rewriter added, nothing else): when every tenant
  // constant is one, the cache may hand out the statement with the tenant as a parameter
  // (RewriteCache::tenant_param_form).
  int tenant_filter_literals = 0;
  bool tenant_compared = false;  // the outcome depends on the tenant's value in any other way
  // The outcome depends on the value of a constant of the statement text (a client_encoding, a
  // pg_notify channel, an EXECUTE argument, a COPY option): the cache must not serve the result
  // for the same statement with other constants (rewrite_cache.h, constant templates).
  bool constant_read = false;
};

// `tenant` is the session tenant's value as written in the policy.
RewriteResult rewrite(std::string_view sql, const policy::TenantScope& scope, std::string_view tenant,
                      RewriteTrace* trace = nullptr);

// Client encodings the server reads without converting (UTF8 on a UTF8 database; SQL_ASCII is
// never converted), so libpg_query (which reads UTF-8) and the server see the same bytes: the same
// tokens, the same names, cut to 63 bytes at the same place. Client-only encodings such as SJIS,
// BIG5, GBK can hide a quote or backslash in a multibyte character; single-byte and EUC encodings
// are converted, which changes names and where they are cut: all refused.
bool safe_client_encoding(std::string_view name);

// client_min_messages levels that send the client nothing but its statements' INFO, NOTICE,
// WARNING and ERROR messages (info, notice, warning, error; any case). The DEBUG levels and log
// send the session backend's own debug and log lines: at debug5 the transaction id of every write
// ("CommitTransaction(1) ... xid/subid/cid: 797/1/1"), which counts every tenant's write
// transactions (rule transaction_ids); at log, e.g. log_lock_waits' pid of the session holding a
// lock. Refused for tenants in SET and, for every login, as a startup parameter.
bool safe_client_min_messages(std::string_view level);

}  // namespace rowguard::sqlrewrite
