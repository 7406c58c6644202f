// Writes the committed seed corpora of the fuzz targets (run once; rerun after changing it):
//
//   cmake --build build --target fuzz_make_seeds
//   build/tests/fuzz/fuzz_make_seeds tests/fuzz/corpus examples/rowguard.toml
//
// Protocol messages are built byte by byte here from the PostgreSQL documentation
// (protocol-message-formats), not with the codec under test, so a codec bug cannot shape its
// own seeds. Self-contained on purpose: no project library.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;
fs::path g_root;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(g_root / target);
  std::ofstream out(g_root / target / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string i32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>((v >> 16) & 0xff), static_cast<char>((v >> 8) & 0xff),
          static_cast<char>(v & 0xff)};
}
std::string i16(uint16_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)}; }
std::string cstr(const std::string& s) { return s + std::string(1, '\0'); }
std::string msg(char tag, const std::string& body) { return std::string(1, tag) + i32(4 + body.size()) + body; }

// ---- frontend messages ---------------------------------------------------------------------
std::string query(const std::string& sql) { return msg('Q', cstr(sql)); }
std::string parse_body(const std::string& name, const std::string& sql, std::initializer_list<uint32_t> types) {
  std::string b = cstr(name) + cstr(sql) + i16(static_cast<uint16_t>(types.size()));
  for (uint32_t t : types) b += i32(t);
  return b;
}
std::string parse(const std::string& name, const std::string& sql, std::initializer_list<uint32_t> types) {
  return msg('P', parse_body(name, sql, types));
}
struct P { bool null; std::string v; };
std::string bind_body(const std::string& portal, const std::string& stmt, std::initializer_list<uint16_t> formats,
                      std::initializer_list<P> params, std::initializer_list<uint16_t> results) {
  std::string b = cstr(portal) + cstr(stmt) + i16(static_cast<uint16_t>(formats.size()));
  for (uint16_t f : formats) b += i16(f);
  b += i16(static_cast<uint16_t>(params.size()));
  for (const auto& p : params) b += p.null ? i32(0xffffffffu) : i32(p.v.size()) + p.v;
  b += i16(static_cast<uint16_t>(results.size()));
  for (uint16_t f : results) b += i16(f);
  return b;
}
std::string bind(const std::string& portal, const std::string& stmt, std::initializer_list<uint16_t> formats,
                 std::initializer_list<P> params, std::initializer_list<uint16_t> results) {
  return msg('B', bind_body(portal, stmt, formats, params, results));
}
std::string describe(char kind, const std::string& name) { return msg('D', std::string(1, kind) + cstr(name)); }
std::string close_msg(char kind, const std::string& name) { return msg('C', std::string(1, kind) + cstr(name)); }
std::string execute(const std::string& portal, uint32_t max_rows) { return msg('E', cstr(portal) + i32(max_rows)); }
std::string sync() { return msg('S', ""); }
std::string flush() { return msg('H', ""); }
std::string terminate() { return msg('X', ""); }

// ---- backend messages ----------------------------------------------------------------------
std::string auth(uint32_t code, const std::string& payload) { return msg('R', i32(code) + payload); }
std::string param_status(const std::string& k, const std::string& v) { return msg('S', cstr(k) + cstr(v)); }
std::string rfq(char s) { return msg('Z', std::string(1, s)); }
std::string error_fields(char tag, std::initializer_list<std::pair<char, std::string>> fields) {
  std::string b;
  for (const auto& [c, v] : fields) b += std::string(1, c) + cstr(v);
  return msg(tag, b + std::string(1, '\0'));
}
std::string row_description() {
  std::string b = i16(1) + cstr("id") + i32(16384) + i16(1) + i32(23) + i16(4) + i32(0xffffffffu) + i16(0);
  return msg('T', b);
}
std::string data_row(const std::string& v) { return msg('D', i16(1) + i32(v.size()) + v); }
std::string command_complete(const std::string& tag) { return msg('C', cstr(tag)); }
std::string param_description(std::initializer_list<uint32_t> oids) {
  std::string b = i16(static_cast<uint16_t>(oids.size()));
  for (uint32_t o : oids) b += i32(o);
  return msg('t', b);
}

// ---- startup packets -----------------------------------------------------------------------
std::string startup(uint32_t version, std::initializer_list<std::pair<std::string, std::string>> params) {
  std::string b = i32(version);
  for (const auto& [k, v] : params) b += cstr(k) + cstr(v);
  b += std::string(1, '\0');
  return i32(4 + b.size()) + b;
}

// ---- session records: [ctl][tag][len16][body] ----------------------------------------------
// ctl: bit 0 raw server message; client messages: bit 1 fails on the simulated server, bit 2 /
// bit 3 deliver the simulated server's answers before / after the message.
std::string rec(uint8_t ctl, const std::string& frame) {
  // frame = tag + int32 length + body
  const std::string body = frame.substr(5);
  return std::string(1, static_cast<char>(ctl)) + frame.substr(0, 1) + i16(static_cast<uint16_t>(body.size())) + body;
}
std::string C(const std::string& frame) { return rec(8, frame); }       // answered at once
std::string Cq(const std::string& frame) { return rec(0, frame); }      // answers stay queued
std::string Cf(const std::string& frame) { return rec(2 | 8, frame); }  // fails on the server
std::string S(const std::string& frame) { return rec(1, frame); }       // raw server message

const std::string kNonce = "00c0ffee";  // fuzz_session's fixed nonce
std::string marker(int n) { return "rowguard_denied_" + kNonce + "_" + std::to_string(n); }

void frontend() {
  const std::string t = "fuzz_frontend_codec";
  put(t, "query_select", query("SELECT id, amount FROM orders WHERE status = 'new'"));
  put(t, "query_multi", query("BEGIN; UPDATE orders SET status = 'paid' WHERE id = 101; COMMIT"));
  put(t, "parse_insert", parse("ins", "INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, $3)", {23, 23, 1700}));
  put(t, "parse_unnamed", parse("", "SELECT $1::int", {0}));
  put(t, "bind_text", bind("", "ins", {0}, {{false, "101"}, {false, "1"}, {false, "9.50"}}, {}));
  put(t, "bind_binary", bind("p1", "ins", {1, 1, 0}, {{false, i32(101)}, {false, i32(1)}, {false, "9.50"}}, {1}));
  put(t, "bind_null", bind("", "s", {}, {{true, ""}}, {0, 1}));
  put(t, "bind_empty", bind("", "", {}, {}, {}));
  put(t, "describe_close", describe('S', "ins") + describe('P', "") + close_msg('S', "ins") + close_msg('P', "p1"));
  put(t, "execute_sync", execute("", 0) + execute("p1", 10) + flush() + sync() + terminate());
  put(t, "sasl_initial", msg('p', cstr("SCRAM-SHA-256") + i32(31) + "n,,n=,r=rOprNGfwEbeRWgbNEkqO%hv"));
  put(t, "sasl_initial_null", msg('p', cstr("SCRAM-SHA-256") + i32(0xffffffffu)));
  put(t, "password", msg('p', cstr("md5a3556571e93b0d20722ba62be61e8c2d")));
  put(t, "function_call", msg('F', i32(1598) + i16(1) + i16(0) + i16(1) + i32(1) + "1" + i16(0)));
  put(t, "pipeline", parse("", "SELECT * FROM orders WHERE id = $1", {23}) + bind("", "", {1}, {{false, i32(101)}}, {0}) +
                         describe('P', "") + execute("", 0) + sync());
  put(t, "copy", msg('d', "1\t2\n") + msg('c', "") + msg('f', cstr("aborted")));
}

void backend() {
  const std::string t = "fuzz_backend_codec";
  put(t, "auth_ok", auth(0, ""));
  put(t, "auth_cleartext", auth(3, ""));
  put(t, "auth_md5", auth(5, "\x01\x02\x03\x04"));
  put(t, "auth_sasl", auth(10, cstr("SCRAM-SHA-256-PLUS") + cstr("SCRAM-SHA-256") + std::string(1, '\0')));
  put(t, "auth_sasl_continue", auth(11, "r=abc,s=QSXCR+Q6sek8bf92,i=4096"));
  put(t, "auth_sasl_final", auth(12, "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="));
  put(t, "auth_gss", auth(7, ""));
  put(t, "login_stream", auth(0, "") + param_status("server_version", "15.6") +
                             param_status("standard_conforming_strings", "on") + param_status("client_encoding", "UTF8") +
                             msg('K', i32(4242) + i32(0x7f00ff00)) + rfq('I'));
  put(t, "error", error_fields('E', {{'S', "ERROR"}, {'V', "ERROR"}, {'C', "42703"},
                                     {'M', "column \"" + marker(0) + "\" does not exist"}, {'P', "8"},
                                     {'F', "parse_relation.c"}, {'L', "3643"}, {'R', "errorMissingColumn"}}));
  put(t, "notice", error_fields('N', {{'S', "NOTICE"}, {'V', "NOTICE"}, {'C', "00000"}, {'M', "hello"},
                                      {'D', "detail"}, {'H', "hint"}}));
  put(t, "result_stream", row_description() + data_row("101") + data_row("102") + command_complete("SELECT 2") + rfq('T'));
  put(t, "extended_stream", msg('1', "") + param_description({23, 25}) + msg('n', "") + msg('2', "") +
                                command_complete("INSERT 0 1") + msg('3', "") + rfq('E'));
  put(t, "misc", msg('I', "") + msg('s', "") + msg('A', i32(1) + cstr("chan") + cstr("payload")) +
                     msg('v', i32(0x00030000) + i32(1) + cstr("_pq_.x")));
}

void startup_seeds() {
  const std::string t = "fuzz_startup";
  put(t, "startup_psql", startup(0x00030000, {{"user", "t1"}, {"database", "appdb"}, {"application_name", "psql"},
                                              {"client_encoding", "UTF8"}}));
  put(t, "startup_driver", startup(0x00030000, {{"user", "t2"}, {"database", "appdb"}, {"DateStyle", "ISO"},
                                                {"TimeZone", "UTC"}, {"extra_float_digits", "3"},
                                                {"client_encoding", "'utf-8'"}}));
  put(t, "startup_minor", startup(0x00030002, {{"user", "t1"}, {"_pq_.foo", "1"}}));
  put(t, "startup_options", startup(0x00030000, {{"user", "t1"}, {"options", "-c search_path=evil"}}));
  put(t, "startup_sjis", startup(0x00030000, {{"user", "t1"}, {"client_encoding", "SJIS"}}));
  put(t, "startup_replication", startup(0x00030000, {{"user", "dba"}, {"replication", "database"}}));
  put(t, "startup_user_case", startup(0x00030000, {{"user", "t1"}, {"USER", "dba"}}));
  put(t, "ssl_request", i32(8) + i32(80877103));
  put(t, "gssenc_request", i32(8) + i32(80877104));
  put(t, "cancel_request", i32(16) + i32(80877102) + i32(4242) + i32(0x7f00ff00));
  put(t, "startup_v2", i32(8) + i32(0x00020000));
}

void session_seeds() {
  const std::string t = "fuzz_session";
  const std::string ins = "INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, 1)";
  put(t, "simple_select", C(query("SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id")));
  put(t, "denied_query", C(query("DROP TABLE orders")) + C(query("SELECT 1")) + C(msg('F', i32(1598) + i16(0) + i16(0) + i16(0))));
  put(t, "transaction", C(query("BEGIN")) + Cf(query("UPDATE orders SET status = 'paid' WHERE id = 101")) +
                            C(query("ROLLBACK")) + C(query("DEALLOCATE ALL")));
  put(t, "extended_insert", Cq(parse("ins", ins, {23, 0})) + Cq(describe('S', "ins")) + C(sync()) +
                                Cq(bind("", "ins", {0}, {{false, "901"}, {false, "1"}}, {})) + Cq(execute("", 0)) + C(sync()));
  put(t, "extended_binary", Cq(parse("b", "INSERT INTO customers (id, tenant_id, name) VALUES ($1, $2, $3)", {23, 23, 25})) +
                                Cq(bind("", "b", {1}, {{false, i32(902)}, {false, i32(1)}, {false, "x"}}, {})) +
                                Cq(execute("", 0)) + C(sync()));
  put(t, "extended_wrong_tenant", Cq(parse("", ins, {})) + Cq(bind("", "", {}, {{false, "903"}, {false, "2"}}, {})) +
                                      Cq(execute("", 0)) + C(sync()));
  put(t, "extended_pipelined", Cq(parse("s1", ins, {})) + Cq(sync()) + Cq(bind("", "s1", {}, {{false, "904"}, {false, "1"}}, {})) +
                                   Cq(execute("", 0)) + Cq(close_msg('S', "s1")) + Cq(parse("s1", "SELECT $1::text, $2::text", {})) +
                                   Cq(sync()) + Cq(bind("", "s1", {}, {{false, "a"}, {false, "1"}}, {})) + Cq(execute("", 0)) + C(sync()));
  put(t, "extended_failed_batch", C(parse("s2", ins, {})) + C(sync()) + Cq(parse("", "SELECT 1", {})) +
                                      Cf(execute("", 0)) + Cq(describe('S', "s2")) + C(sync()) +
                                      C(bind("", "s2", {}, {{false, "905"}, {false, "1"}}, {})) + C(execute("", 0)) + C(sync()));
  put(t, "extended_denied_parse", C(parse("d", "DELETE FROM audit_log", {})) + C(bind("", "d", {}, {}, {})) +
                                      C(execute("", 0)) + C(flush()) + C(sync()) + C(terminate()));
  put(t, "copy_in", C(query("COPY customers (id, name) FROM STDIN")) + C(msg('d', "906\tx\n907\ty\n")) + C(msg('c', "")) +
                        C(query("COPY orders (id, tenant_id, amount) FROM STDIN WITH (FORMAT csv)")) +
                        C(msg('d', "908,1,2\n")) + C(msg('f', cstr("client gave up"))));
  put(t, "sql_prepare", C(query("PREPARE ins AS " + ins)) + C(query("EXECUTE ins(910, '1')")) +
                            C(query("EXECUTE ins(911, '2')")) + Cq(query("PREPARE p2 AS " + ins + "; EXECUTE p2(912, 1)")) +
                            C(query("EXECUTE p2(912, 2)")) + Cq(bind("", "ins", {}, {{false, "913"}, {false, "2"}}, {})) +
                            Cq(execute("", 0)) + C(sync()) + C(query("DEALLOCATE ins")) +
                            C(query("EXECUTE ins(914, '1')")) + Cq(parse("e", ins, {})) + C(sync()) +
                            C(query("EXECUTE e(915, '2'); DISCARD ALL")) + C(query("DISCARD ALL")) + C(query("EXECUTE e(916, '1')")));
  put(t, "raw_server", C(query("SELECT 1")) + S(row_description()) + S(data_row("101")) + S(command_complete("SELECT 1")) +
                           S(error_fields('E', {{'S', "ERROR"}, {'C', "42703"}, {'M', "column \"" + marker(0) + "\" does not exist"}})) +
                           S(rfq('I')) + S(param_status("standard_conforming_strings", "off")));
  put(t, "raw_copy_mode", Cq(query("SELECT 1")) + S(msg('G', std::string(1, '\0') + i16(0))));
}

void rewriter_seeds() {
  const std::string t = "fuzz_rewriter";
  const std::vector<std::pair<std::string, std::string>> sql = {
      {"select_simple", "SELECT * FROM orders"},
      {"select_where", "SELECT id, amount FROM public.orders WHERE status = 'new' OR amount > 10"},
      {"select_alias", "SELECT o.id FROM orders AS o WHERE o.amount > 5 ORDER BY o.id LIMIT 10"},
      {"join_inner", "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id"},
      {"join_left", "SELECT c.name, o.id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id"},
      {"join_right", "SELECT * FROM orders o RIGHT JOIN customers c ON c.id = o.customer_id"},
      {"join_full", "SELECT * FROM orders o FULL JOIN customers c ON c.id = o.customer_id"},
      {"join_using", "SELECT * FROM orders LEFT JOIN customers USING (id)"},
      {"join_natural", "SELECT * FROM orders NATURAL JOIN customers"},
      {"join_nested_alias", "SELECT * FROM (orders o JOIN customers c ON c.id = o.customer_id) AS j WHERE j.amount > 1"},
      {"join_global", "SELECT c.name, k.name FROM customers c, countries k WHERE k.code = 'DE'"},
      {"subquery_from", "SELECT s.total FROM (SELECT sum(amount) AS total FROM orders) AS s"},
      {"subquery_where", "SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)"},
      {"subquery_in", "SELECT * FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE amount > 100)"},
      {"subquery_scalar", "SELECT c.name, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) FROM customers c"},
      {"lateral", "SELECT c.name, l.amount FROM customers c, LATERAL (SELECT amount FROM orders o WHERE o.customer_id = c.id ORDER BY amount DESC LIMIT 1) l"},
      {"cte", "WITH big AS (SELECT * FROM orders WHERE amount > 100) SELECT * FROM big JOIN customers c ON c.id = big.customer_id"},
      {"cte_shadow", "WITH orders AS (SELECT 1 AS id) SELECT * FROM orders"},
      {"cte_order", "WITH a AS (SELECT * FROM customers), customers AS (SELECT 1 AS id) SELECT * FROM a, customers"},
      {"cte_recursive", "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT * FROM n, orders"},
      {"cte_nested", "SELECT * FROM (WITH x AS (SELECT * FROM orders) SELECT * FROM x) s, customers"},
      {"cte_write", "WITH d AS (DELETE FROM orders WHERE status = 'void' RETURNING *) SELECT count(*) FROM d"},
      {"union", "SELECT id FROM orders UNION SELECT id FROM customers EXCEPT SELECT 3"},
      {"window", "SELECT id, row_number() OVER (PARTITION BY customer_id ORDER BY amount) FROM orders"},
      {"group_having", "SELECT customer_id, sum(amount) FROM orders GROUP BY customer_id HAVING sum(amount) > 10"},
      {"for_update", "SELECT * FROM orders o WHERE id = 1 FOR UPDATE OF o"},
      {"table_stmt", "TABLE customers"},
      {"values", "VALUES (1, 'a'), (2, 'b')"},
      {"insert_values", "INSERT INTO orders (id, customer_id, amount) VALUES (901, 101, 9.5), (902, 102, 1)"},
      {"insert_tenant", "INSERT INTO orders (id, tenant_id, amount) VALUES (903, '1', 2) RETURNING id"},
      {"insert_param", "INSERT INTO orders (id, tenant_id, amount) VALUES ($1, $2, $3)"},
      {"insert_select", "INSERT INTO customers (id, name) SELECT id + 1000, 'copy' FROM customers"},
      {"insert_conflict", "INSERT INTO customers (id, name) VALUES (101, 'x') ON CONFLICT (id) DO UPDATE SET name = excluded.name"},
      {"insert_conflict_nothing", "INSERT INTO customers (id, name) VALUES (101, 'x') ON CONFLICT DO NOTHING"},
      {"insert_star_after", "INSERT INTO orders (id, tenant_id, amount) VALUES (904, 1, (ROW(2)).*)"},
      {"update", "UPDATE orders SET status = 'paid', amount = amount * 2 WHERE id = 101"},
      {"update_from", "UPDATE orders o SET amount = c.id FROM customers c WHERE c.id = o.customer_id"},
      {"update_tenant", "UPDATE orders SET tenant_id = 2"},
      {"delete", "DELETE FROM customers WHERE id = 101"},
      {"delete_using", "DELETE FROM orders o USING customers c WHERE c.id = o.customer_id AND c.name = 'x'"},
      {"merge", "MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN MATCHED THEN UPDATE SET amount = 0 "
                "WHEN NOT MATCHED THEN INSERT (id, customer_id, amount) VALUES (c.id, c.id, 0)"},
      {"explain", "EXPLAIN SELECT * FROM orders WHERE id = 1"},
      {"explain_analyze", "EXPLAIN ANALYZE SELECT * FROM orders"},
      {"tx", "BEGIN; SELECT * FROM orders; SAVEPOINT a; ROLLBACK TO a; COMMIT"},
      {"set_show", "SET statement_timeout = '5s'; SHOW TimeZone; RESET statement_timeout"},
      {"deny_ddl", "DROP TABLE orders"},
      {"deny_unknown", "SELECT * FROM audit_log"},
      {"deny_function", "SELECT pg_read_file('/etc/passwd')"},
      {"deny_search_path", "SET search_path = evil, public"},
      {"comment_only", "-- nothing here\n/* at all */"},
      {"quoted", "SELECT \"o\".\"id\" FROM \"orders\" AS \"o\" WHERE \"o\".status = E'a\\'b' AND name = $$x$$"},
      {"case_coalesce", "SELECT CASE WHEN amount > 1 THEN 'big' ELSE coalesce(status, 'n/a') END FROM orders"},
      {"any_array", "SELECT * FROM orders WHERE id = ANY (ARRAY[101, 102]) AND status IS NOT NULL"},
      {"copy_from", "COPY orders (id, amount) FROM STDIN"},
      {"copy_from_csv", "COPY customers (id, tenant_id, name) FROM STDIN WITH (FORMAT csv, HEADER)"},
      {"copy_to", "COPY orders (id, amount) TO STDOUT"},
      {"copy_query", "COPY (SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id) TO STDOUT"},
      {"generate_series", "SELECT g, o.id FROM generate_series(1, 3) AS g LEFT JOIN orders o ON o.id = g"},
  };
  for (const auto& [name, text] : sql) put(t, name, text);
  // Generator mode (first byte 0x00): a few byte strings that pick varied shapes.
  const std::vector<std::pair<std::string, std::string>> gen = {
      {"gen_select_join", std::string("\0\0\0\0\0\3\3\0\2\0\1\0\1", 13)},
      {"gen_cte", std::string("\0\11\1\0\2\0\0\0\1\3\1\0\4", 13)},
      {"gen_dml", std::string("\0\3\0\0\1\2\0\1\1", 9)},
      {"gen_insert", std::string("\0\4\2\1\2\0\2\1\3\0", 10)},
      {"gen_merge", std::string("\0\5\3\2\0\0\1\2\1\0\3\0\1\2\0", 15)},
      {"gen_mixed", std::string("\0\7\1\0\3\2\1\5\4\3\2\1\0\11\10\7\6\5\4\3\2\1\0\1\2\3\4\5\6\7\10", 32)},
  };
  for (const auto& [name, bytes] : gen) put(t, name, bytes);

  // Resource shapes (tests/adversarial/resource_limits_test.cc), up to ~130 KB: scripts/fuzz runs
  // this target with a -max_len that reaches them. Deep trees beyond the nesting bound must be
  // refused, never crash; long flat texts must be linear.
  auto rep = [](const std::string& s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
  };
  std::string in_list = "SELECT * FROM orders WHERE id IN (1";
  for (int i = 0; i < 20000; ++i) in_list += "," + std::to_string(80000 + i % 20000);
  in_list += ")";
  const std::vector<std::pair<std::string, std::string>> big = {
      {"deep_plus_chain_30000", "SELECT 1" + rep("+1", 30000)},
      {"deep_plus_chain_2000", "SELECT amount" + rep("+1", 2000) + " FROM orders"},
      {"deep_parens_20000", "SELECT " + rep("(", 20000) + "1" + rep(")", 20000)},
      {"deep_subqueries_1000", "SELECT " + rep("(SELECT ", 1000) + "1" + rep(")", 1000)},
      {"deep_unary_minus", "SELECT " + rep("+-", 20000) + "1"},
      {"deep_casts", "SELECT id" + rep("::int", 20000) + " FROM orders"},
      {"deep_case", "SELECT " + rep("CASE WHEN id > 1 THEN ", 1000) + "1" + rep(" END", 1000) + " FROM orders"},
      {"deep_union_commas", rep("SELECT id, amount FROM orders UNION ", 1000) + "SELECT 1, 2"},
      {"deep_join_and", "SELECT count(*) FROM orders o" + rep(" JOIN customers c ON c.id = o.customer_id AND true", 1000)},
      {"long_in_list", in_list},
      {"many_statements", rep("SELECT id FROM orders WHERE id = 1;", 3000)},
      {"long_literal", "SELECT length('" + std::string(100000, 'x') + "')"},
      {"sentinel_numbers", "SELECT id FROM orders WHERE id IN (" + rep("80123,", 5000) + "rowguardTenantSentinel0," +
                               "'rowguardTenantSentinel1') AND amount = 5"},
  };
  for (const auto& [name, text] : big) put(t, name, text);
}

void policy_seeds(const fs::path& example) {
  const std::string t = "fuzz_policy";
  if (!example.empty()) {
    std::ifstream in(example, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    put(t, "example_rowguard_toml", text.str());
  }
  put(t, "minimal", "[proxy]\nlisten = \"127.0.0.1:6432\"\nupstream = \"127.0.0.1:5432\"\nupstream_user = \"app\"\n"
                    "[tenancy]\n[[bypass]]\nuser = \"dba\"\npassword = \"x\"\n");
  put(t, "full_features",
      "[proxy]\nlisten = \"[::1]:6432\"\nupstream = \"db.internal:5432\"\nupstream_user = \"app\"\n"
      "upstream_password = \"s\"\nupstream_database = \"appdb\"\nworkers = 4\n"
      "[tenancy]\ndefault_column = \"org_id\"\nunknown_tables = \"deny\"\n"
      "[[tenants]]\nuser = \"a\"\npassword = \"p\"\ntenant = 42\n"
      "[[tenants]]\nuser = 'b'\npassword = '''p2'''\ntenant = \"x-1\"\n"
      "[tables.\"sales.invoices\"]\ncolumn = \"org_id\"\n[tables.\"public.ref\"]\nglobal = true\n"
      "[tables.\"public.items\"]\n[functions]\nallow = [\"public.my_fn\", \"util.f\"]\n");
  put(t, "bad_unknown_key", "[proxy]\nlisten = \"127.0.0.1:6432\"\nbogus = 1\n");
  put(t, "bad_types", "[proxy]\nlisten = 6432\nupstream = \"h:0\"\nupstream_user = 1\n[tenancy]\n"
                      "[[tenants]]\nuser = \"\"\npassword = \"\"\ntenant = 1.5\n");
  put(t, "bad_syntax", "[proxy\nlisten = \"127.0.0.1:6432\n[[tenants]\n");
  put(t, "inline_tables", "proxy = { listen = \"127.0.0.1:1\", upstream = \"127.0.0.1:2\", upstream_user = \"u\" }\n"
                          "tenancy = {}\ntenants = [ { user = \"t\", password = \"p\", tenant = \"1\" } ]\n"
                          "tables = { \"public.t\" = { column = \"c\" }, \"public.g\" = { global = true } }\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: " << argv[0] << " <corpus dir> [examples/rowguard.toml]\n";
    return 2;
  }
  g_root = argv[1];
  frontend();
  backend();
  startup_seeds();
  session_seeds();
  rewriter_seeds();
  policy_seeds(argc > 2 ? fs::path(argv[2]) : fs::path());
  std::cout << "seeds written under " << g_root << "\n";
  return 0;
}
