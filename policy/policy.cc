// Loading and validating the TOML policy file. Every key is checked: an unknown key, a wrong
// type or a missing required key is an error naming the file and line.
#include "policy/policy.h"

#include "policy/identity.h"
#include "policy/setting_limits_load.h"

#include <toml.hpp>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace rowguard::policy {
namespace {

std::atomic<uint64_t> g_next_version{1};

// ---- keeping secrets out of error messages -------------------------------------------------
// toml11 quotes the offending source line; a typo on a `password = ...` line would put the
// password into the start-up log, the reload log and the admin RELOAD reply. Every PolicyError
// goes through redact_policy_message: the quoted excerpt lines that may hold a secret lose their
// value, and secret-looking value text anywhere else in the message is replaced too.

bool has_secret_word(std::string_view line) {
  std::string lower(line);
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* word : {"password", "passwd", "secret", "token", "private"}) {
    if (lower.find(word) != std::string::npos) return true;
  }
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// A line that may hold a secret: it mentions a secret word, and is not `..._env = "NAME"`
// (jwt_secret_env, upstream_password_env name an environment variable, not a secret).
bool names_a_secret(std::string_view line) {
  if (!has_secret_word(line)) return false;
  auto eq = line.find('=');
  if (eq != std::string_view::npos && line.substr(0, eq).find_first_of("\"'") == std::string_view::npos &&
      trim(line.substr(0, eq)).ends_with("_env")) {
    return false;
  }
  return true;
}

struct SecretLines {
  std::vector<bool> sensitive;      // per source line (0-based)
  std::vector<bool> continuation;   // the line continues a value started on a line above
  std::vector<std::string> values;  // value text found on sensitive lines
};

// A small TOML lexer, just enough to know which lines belong to which `key = value` statement:
// strings (basic, literal, multi-line, escapes), comments, and [ ] { } nesting. A statement
// whose text mentions a secret word is sensitive on all its lines (a multi-line string or
// array continues it); an unterminated multi-line string or bracket makes the rest of the file
// sensitive (fail closed).
SecretLines scan_secret_lines(const std::string& text) {
  SecretLines out;
  enum { kNone, kMlBasic, kMlLiteral } state = kNone;
  int depth = 0;
  bool statement_sensitive = false;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + start, end - start);
    const bool continuation = state != kNone || depth > 0;
    if (!continuation) statement_sensitive = false;
    if (continuation ? has_secret_word(line) : names_a_secret(line)) statement_sensitive = true;
    out.sensitive.push_back(statement_sensitive);
    out.continuation.push_back(continuation);
    if (statement_sensitive) {
      std::string_view value = line;
      if (!continuation) {
        auto eq = line.find('=');
        value = eq == std::string_view::npos ? line : line.substr(eq + 1);
      }
      value = trim(value);
      out.values.emplace_back(value);
      for (std::string_view q : {"\"\"\"", "'''", "\"", "'"}) {
        while (value.size() >= q.size() && value.starts_with(q)) value.remove_prefix(q.size());
        while (value.size() >= q.size() && value.ends_with(q)) value.remove_suffix(q.size());
      }
      out.values.emplace_back(trim(value));
    }
    size_t i = 0;
    const size_t n = line.size();
    while (i < n) {
      if (state == kMlBasic) {
        if (line[i] == '\\') {
          i += 2;
        } else if (line.substr(i).starts_with("\"\"\"")) {
          state = kNone;
          i += 3;
        } else {
          ++i;
        }
        continue;
      }
      if (state == kMlLiteral) {
        if (line.substr(i).starts_with("'''")) {
          state = kNone;
          i += 3;
        } else {
          ++i;
        }
        continue;
      }
      const char c = line[i];
      if (c == '#') break;
      if (c == '"' || c == '\'') {
        const std::string_view triple = c == '"' ? "\"\"\"" : "'''";
        if (line.substr(i).starts_with(triple)) {
          state = c == '"' ? kMlBasic : kMlLiteral;
          i += 3;
          continue;
        }
        size_t j = i + 1;
        while (j < n && line[j] != c) j += (c == '"' && line[j] == '\\') ? 2 : 1;
        j = std::min(j, n);
        if (statement_sensitive && j > i + 1) out.values.emplace_back(line.substr(i + 1, j - i - 1));
        i = j + 1;
        continue;
      }
      if (c == '[' || c == '{') ++depth;
      if ((c == ']' || c == '}') && depth > 0) --depth;
      ++i;
    }
    if (end == text.size()) break;
    start = end + 1;
  }
  // Short values ("1", "on") would mangle line numbers and words; excerpt redaction covers them.
  std::erase_if(out.values, [](const std::string& v) { return v.size() < 4; });
  return out;
}

// "file:line:column: " in front of a message about `loc`.
std::string located(const toml::source_location& loc) {
  return loc.file_name() + ":" + std::to_string(loc.line()) + ":" + std::to_string(loc.column()) + ": ";
}

}  // namespace

std::string format_policy_error(const toml::value& at, const std::string& what, const std::string& here) {
  return located(at.location()) + toml::format_error("[policy] " + what, at, here);
}

std::string redact_policy_message(const std::string& message, const std::string& toml_text) {
  const SecretLines secrets = scan_secret_lines(toml_text);
  std::string out;
  size_t start = 0;
  while (start < message.size()) {
    size_t end = message.find('\n', start);
    const bool last = end == std::string::npos;
    if (last) end = message.size();
    std::string line = message.substr(start, end - start);
    // An excerpt line: " <line number> | <source text>" (toml11's format_underline).
    size_t k = 0;
    while (k < line.size() && line[k] == ' ') ++k;
    size_t digits = k;
    while (digits < line.size() && std::isdigit(static_cast<unsigned char>(line[digits]))) ++digits;
    if (k > 0 && digits > k && digits - k < 9 && line.compare(digits, 3, " | ") == 0) {
      const size_t number = std::stoul(line.substr(k, digits - k));
      const std::string source_text = line.substr(digits + 3);
      const bool in_file = number >= 1 && number <= secrets.sensitive.size();
      if (!in_file || secrets.sensitive[number - 1] ||
          (secrets.continuation[number - 1] ? has_secret_word(source_text) : names_a_secret(source_text))) {
        // Keep "key =" when the key is plain (no quotes before the '='), drop the value.
        std::string kept;
        auto eq = source_text.find('=');
        if (in_file && !secrets.continuation[number - 1] && eq != std::string::npos &&
            source_text.find_first_of("\"'") > eq) {
          kept = source_text.substr(0, eq + 1) + " ";
        }
        line = line.substr(0, digits + 3) + kept + "<redacted>";
      }
    }
    for (const auto& v : secrets.values) {
      for (size_t at = line.find(v); at != std::string::npos; at = line.find(v, at + 10)) {
        line.replace(at, v.size(), "<redacted>");
      }
    }
    out += line;
    if (!last) out += '\n';
    start = end + 1;
  }
  return out;
}

namespace {

[[noreturn]] void fail(const toml::value& at, const std::string& what, const std::string& here) {
  throw PolicyError(format_policy_error(at, what, here));
}

void check_keys(const toml::value& table, const std::set<std::string>& allowed,
                const std::string& where) {
  for (const auto& [key, value] : table.as_table()) {
    if (!allowed.contains(key)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      fail(value, "unknown key \"" + key + "\" in " + where + " (allowed: " + list + ")",
           "unknown key");
    }
  }
}

std::string get_string(const toml::value& table, const std::string& key, const std::string& where) {
  if (!table.contains(key)) fail(table, "missing key \"" + key + "\" in " + where, "here");
  const auto& v = table.at(key);
  if (!v.is_string()) fail(v, "\"" + key + "\" must be a string", "not a string");
  return v.as_string().str;
}

std::optional<std::string> get_optional_string(const toml::value& table, const std::string& key) {
  if (!table.contains(key)) return std::nullopt;
  const auto& v = table.at(key);
  if (!v.is_string()) fail(v, "\"" + key + "\" must be a string", "not a string");
  return v.as_string().str;
}

void parse_endpoint(const toml::value& table, const std::string& key, std::string& host,
                    uint16_t& port) {
  std::string text = get_string(table, key, "[proxy]/[metrics]");
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) {
    fail(table.at(key), "\"" + key + "\" must be \"host:port\"", "here");
  }
  host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  long p = 0;
  try {
    size_t used = 0;
    p = std::stol(text.substr(colon + 1), &used);
    if (used != text.size() - colon - 1) p = -1;
  } catch (...) {
    p = -1;
  }
  if (p <= 0 || p > 65535) fail(table.at(key), "\"" + key + "\" has an invalid port", "here");
  port = static_cast<uint16_t>(p);
}

// Shape of PostgreSQL's stored verifier; the auth module decodes it when a client logs in.
bool looks_like_scram_verifier(std::string_view v) {
  v.remove_prefix(std::string_view("SCRAM-SHA-256$").size());
  auto colon = v.find(':');
  auto dollar = v.find('$');
  auto colon2 = v.rfind(':');
  if (colon == std::string_view::npos || dollar == std::string_view::npos || colon2 <= dollar ||
      colon > dollar || colon == 0) {
    return false;
  }
  for (char c : v.substr(0, colon)) {
    if (c < '0' || c > '9') return false;
  }
  auto b64 = [](std::string_view s) {
    if (s.empty()) return false;
    for (char c : s) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=') return false;
    }
    return true;
  };
  return b64(v.substr(colon + 1, dollar - colon - 1)) && b64(v.substr(dollar + 1, colon2 - dollar - 1)) &&
         b64(v.substr(colon2 + 1));
}

bool valid_identifier(std::string_view s) {
  return !s.empty() && s.size() < 64 && s.find('\0') == std::string_view::npos;
}

void parse_proxy(const toml::value& root, Policy& p) {
  if (!root.contains("proxy")) fail(root, "missing table [proxy]", "here");
  const auto& t = root.at("proxy");
  if (!t.is_table()) fail(t, "[proxy] must be a table", "here");
  check_keys(t, {"listen", "upstream", "upstream_user", "upstream_password",
                 "upstream_password_env", "upstream_database", "workers", "upstream_tls",
                 "upstream_ca", "shutdown_timeout", "max_client_connections",
                 "max_connections_per_user", "auth_timeout", "reuse_port", "peer_id", "peer_listen",
                 "placement_drain_timeout"},
             "[proxy]");
  parse_endpoint(t, "listen", p.proxy.listen_host, p.proxy.listen_port);
  parse_endpoint(t, "upstream", p.proxy.upstream_host, p.proxy.upstream_port);
  p.proxy.upstream_user = get_optional_string(t, "upstream_user").value_or("");  // required unless identity = "role"
  p.proxy.upstream_password = get_optional_string(t, "upstream_password").value_or("");
  if (auto env = get_optional_string(t, "upstream_password_env")) {
    if (t.contains("upstream_password")) {
      fail(t.at("upstream_password_env"), "set either upstream_password or upstream_password_env", "here");
    }
    const char* v = std::getenv(env->c_str());
    if (v == nullptr) {
      fail(t.at("upstream_password_env"), "environment variable " + *env + " is not set", "here");
    }
    p.proxy.upstream_password = v;
  }
  const auto upstream_tls = parse_mode<UpstreamTls>(get_optional_string(t, "upstream_tls").value_or("disable"));
  if (!upstream_tls) {
    fail(t.at("upstream_tls"), "\"upstream_tls\" must be disable, prefer, require or verify-full", "here");
  }
  p.proxy.upstream_tls = *upstream_tls;
  p.proxy.upstream_ca = get_optional_string(t, "upstream_ca").value_or("");
  if (p.proxy.upstream_tls == UpstreamTls::kVerifyFull && p.proxy.upstream_ca.empty()) {
    fail(t.at("upstream_tls"), "upstream_tls = \"verify-full\" needs upstream_ca", "here");
  }
  p.proxy.upstream_database = get_optional_string(t, "upstream_database");
  if (t.contains("workers")) {
    const auto& w = t.at("workers");
    if (!w.is_integer() || w.as_integer() < 0 || w.as_integer() > 256) {
      fail(w, "\"workers\" must be an integer 0..256 (0 = one per core)", "here");
    }
    p.proxy.workers = static_cast<int>(w.as_integer());
  }
  auto int_key = [&](const char* key, int lo, int hi, int& out) {
    if (!t.contains(key)) return;
    const auto& v = t.at(key);
    if (!v.is_integer() || v.as_integer() < lo || v.as_integer() > hi) {
      fail(v, std::string("\"") + key + "\" must be an integer " + std::to_string(lo) + ".." + std::to_string(hi), "here");
    }
    out = static_cast<int>(v.as_integer());
  };
  int_key("max_client_connections", 1, 1000000, p.proxy.max_client_connections);
  int_key("max_connections_per_user", 0, 1000000, p.proxy.max_connections_per_user);
  int_key("auth_timeout", 1, 3600, p.proxy.auth_timeout_seconds);
  int_key("placement_drain_timeout", 0, 86400, p.proxy.placement_drain_timeout_seconds);
  if (t.contains("reuse_port")) {
    if (!t.at("reuse_port").is_boolean()) fail(t.at("reuse_port"), "\"reuse_port\" must be true or false", "here");
    p.proxy.reuse_port = t.at("reuse_port").as_boolean();
  }
  int_key("peer_id", 0, 255, p.proxy.peer_id);
  if (t.contains("peer_listen")) parse_endpoint(t, "peer_listen", p.proxy.peer_listen_host, p.proxy.peer_listen_port);
  if (t.contains("shutdown_timeout")) {
    const auto& w = t.at("shutdown_timeout");
    if (!w.is_integer() || w.as_integer() < 0 || w.as_integer() > 3600) {
      fail(w, "\"shutdown_timeout\" must be seconds, 0..3600", "here");
    }
    p.proxy.shutdown_timeout_seconds = static_cast<int>(w.as_integer());
  }
}

// [[upstreams]] name, host, port, database, tls, ca, user, password / password_env: the
// PostgreSQL servers tenants may be placed on; "default" is [proxy] upstream. Unset keys take
// [proxy]'s upstream_* values (port: 5432).
void parse_upstreams(const toml::value& root, Policy& p) {
  p.upstreams.clear();
  p.upstreams.emplace(std::string(kDefaultUpstream), Upstream{std::string(kDefaultUpstream), p.proxy});
  if (!root.contains("upstreams")) return;
  const auto& arr = root.at("upstreams");
  if (!arr.is_array()) fail(arr, "[[upstreams]] must be an array of tables", "here");
  for (const auto& e : arr.as_array()) {
    if (!e.is_table()) fail(e, "[[upstreams]] must be an array of tables", "here");
    check_keys(e, {"name", "host", "port", "database", "tls", "ca", "user", "password", "password_env"},
               "[[upstreams]]");
    Upstream u;
    u.name = get_string(e, "name", "[[upstreams]]");
    if (!valid_identifier(u.name) || u.name.find('@') != std::string::npos) {
      fail(e.at("name"), "invalid upstream name (1..63 bytes, no '@')", "here");
    }
    if (u.name == kDefaultUpstream) {
      fail(e.at("name"), "the upstream \"default\" is [proxy] upstream; give this one another name", "here");
    }
    if (p.upstreams.contains(u.name)) fail(e.at("name"), "upstream \"" + u.name + "\" is listed twice", "here");
    u.settings = p.proxy;
    u.settings.upstream_host = get_string(e, "host", "[[upstreams]]");
    if (u.settings.upstream_host.empty()) fail(e.at("host"), "empty host", "here");
    u.settings.upstream_port = 5432;
    if (e.contains("port")) {
      const auto& v = e.at("port");
      if (!v.is_integer() || v.as_integer() <= 0 || v.as_integer() > 65535) {
        fail(v, "\"port\" must be an integer 1..65535", "here");
      }
      u.settings.upstream_port = static_cast<uint16_t>(v.as_integer());
    }
    if (auto db = get_optional_string(e, "database")) u.settings.upstream_database = *db;
    if (auto user = get_optional_string(e, "user")) u.settings.upstream_user = *user;
    if (auto pw = get_optional_string(e, "password")) u.settings.upstream_password = *pw;
    if (auto env = get_optional_string(e, "password_env")) {
      if (e.contains("password")) fail(e.at("password_env"), "set either password or password_env", "here");
      const char* v = std::getenv(env->c_str());
      if (v == nullptr) fail(e.at("password_env"), "environment variable " + *env + " is not set", "here");
      u.settings.upstream_password = v;
    }
    if (auto tls = get_optional_string(e, "tls")) {
      const auto mode = parse_mode<UpstreamTls>(*tls);
      if (!mode) fail(e.at("tls"), "\"tls\" must be disable, prefer, require or verify-full", "here");
      u.settings.upstream_tls = *mode;
    }
    if (auto ca = get_optional_string(e, "ca")) u.settings.upstream_ca = *ca;
    if (u.settings.upstream_tls == UpstreamTls::kVerifyFull && u.settings.upstream_ca.empty()) {
      fail(e, "tls = \"verify-full\" needs ca", "here");
    }
    p.upstreams.emplace(u.name, std::move(u));
  }
}

// Places `tenant` on `name` (at `where`, for the error): the upstream must exist, and every
// statement placing one tenant must name the same upstream.
void place_tenant(const toml::value& where, const std::string& tenant, const std::string& name, Policy& p) {
  if (!p.upstreams.contains(name)) {
    std::string known;
    for (const auto& [n, u] : p.upstreams) known += (known.empty() ? "" : ", ") + n;
    fail(where, "unknown upstream \"" + name + "\" (the [[upstreams]] names: " + known + ")", "here");
  }
  if (auto it = p.placement.find(tenant); it != p.placement.end() && it->second != name) {
    fail(where, "tenant \"" + tenant + "\" is placed on \"" + it->second + "\" already, here on \"" + name + "\"",
         "here");
  }
  p.placement[tenant] = name;
}

// [placement] "tenant" = "upstream": tenants that have no [[tenants]] login (identity = "jwt"
// or "role").
void parse_placement(const toml::value& root, Policy& p) {
  if (!root.contains("placement")) return;
  const auto& t = root.at("placement");
  if (!t.is_table()) fail(t, "[placement] must be a table of \"tenant\" = \"upstream\"", "here");
  for (const auto& [tenant, v] : t.as_table()) {
    if (!v.is_string()) fail(v, "[placement] values must be upstream names (strings)", "here");
    if (tenant.empty() || tenant.find('\0') != std::string::npos) fail(v, "invalid tenant value", "here");
    place_tenant(v, tenant, v.as_string().str, p);
  }
}

// [[peers]] id, address: the other instances of the fleet (cancel forwarding).
void parse_peers(const toml::value& root, Policy& p) {
  if (!root.contains("peers")) return;
  const auto& arr = root.at("peers");
  if (!arr.is_array()) fail(arr, "[[peers]] must be an array of tables", "here");
  for (const auto& e : arr.as_array()) {
    if (!e.is_table()) fail(e, "[[peers]] must be an array of tables", "here");
    check_keys(e, {"id", "address"}, "[[peers]]");
    if (!e.contains("id")) fail(e, "missing key \"id\" in [[peers]]", "here");
    const auto& id = e.at("id");
    if (!id.is_integer() || id.as_integer() < 0 || id.as_integer() > 255) {
      fail(id, "[[peers]] id must be an integer 0..255", "here");
    }
    Peer peer;
    peer.id = static_cast<int>(id.as_integer());
    if (peer.id == p.proxy.peer_id) fail(id, "[[peers]] id " + std::to_string(peer.id) + " is this instance's own [proxy] peer_id", "here");
    for (const auto& other : p.peers) {
      if (other.id == peer.id) fail(id, "[[peers]] id " + std::to_string(peer.id) + " appears twice", "here");
    }
    parse_endpoint(e, "address", peer.host, peer.port);
    if (!p.proxy.peer_listen_host.empty() && peer.host == p.proxy.peer_listen_host &&
        peer.port == p.proxy.peer_listen_port) {
      fail(e.at("address"), "[[peers]] address is this instance's own peer_listen", "here");
    }
    if (peer.host == p.proxy.listen_host && peer.port == p.proxy.listen_port) {
      // The shared client port: a forwarded cancel could land here again, and again.
      fail(e.at("address"), "[[peers]] address must be the peer's own peer_listen, not this [proxy] listen", "here");
    }
    p.peers.push_back(std::move(peer));
  }
}

void parse_audit_and_metrics(const toml::value& root, Policy& p) {
  if (root.contains("audit")) {
    const auto& t = root.at("audit");
    if (!t.is_table()) fail(t, "[audit] must be a table", "here");
    check_keys(t, {"file", "mode", "max_statement", "mask_literals"}, "[audit]");
    p.audit.file = get_string(t, "file", "[audit]");
    const auto mode = parse_mode<AuditMode>(get_optional_string(t, "mode").value_or("denials"));
    if (!mode) fail(t.at("mode"), "[audit] mode must be denials or all", "here");
    p.audit.mode = *mode;
    if (t.contains("max_statement")) {
      const auto& v = t.at("max_statement");
      if (!v.is_integer() || v.as_integer() < 16) fail(v, "max_statement must be an integer >= 16", "here");
      p.audit.max_statement = static_cast<size_t>(v.as_integer());
    }
    if (t.contains("mask_literals")) {
      if (!t.at("mask_literals").is_boolean()) fail(t.at("mask_literals"), "mask_literals must be true or false", "here");
      p.audit.mask_literals = t.at("mask_literals").as_boolean();
    }
  }
  if (root.contains("metrics")) {
    const auto& t = root.at("metrics");
    if (!t.is_table()) fail(t, "[metrics] must be a table", "here");
    check_keys(t, {"listen", "max_tenant_labels"}, "[metrics]");
    parse_endpoint(t, "listen", p.metrics.listen_host, p.metrics.listen_port);
    if (t.contains("max_tenant_labels")) {
      const auto& v = t.at("max_tenant_labels");
      if (!v.is_integer() || v.as_integer() < 0 || v.as_integer() > 100000) {
        fail(v, "max_tenant_labels must be an integer from 0 to 100000", "here");
      }
      p.metrics.max_tenant_labels = static_cast<size_t>(v.as_integer());
    }
  }
}

// [cache]: bounds of each worker's rewrite cache.
void parse_cache(const toml::value& root, Policy& p) {
  if (!root.contains("cache")) return;
  const auto& t = root.at("cache");
  if (!t.is_table()) fail(t, "[cache] must be a table", "here");
  check_keys(t, {"max_entries", "max_bytes"}, "[cache]");
  if (t.contains("max_entries")) {
    const auto& v = t.at("max_entries");
    if (!v.is_integer() || v.as_integer() < 1 || v.as_integer() > 100000000) {
      fail(v, "[cache] max_entries must be an integer 1..100000000", "here");
    }
    p.cache.max_entries = static_cast<size_t>(v.as_integer());
  }
  if (t.contains("max_bytes")) {
    const auto& v = t.at("max_bytes");
    if (!v.is_integer() || v.as_integer() < 0) fail(v, "[cache] max_bytes must be an integer >= 0", "here");
    p.cache.max_bytes = static_cast<size_t>(v.as_integer());
  }
}

// [pool]: transaction pooling (proxy/net/pool_runtime.h). Transaction mode is refused with
// identity = "role" and backstop = "rls" (check_pool_mode).
void parse_pool(const toml::value& root, Policy& p) {
  if (!root.contains("pool")) return;
  const auto& t = root.at("pool");
  if (!t.is_table()) fail(t, "[pool] must be a table", "here");
  check_keys(t, {"mode", "size", "min_size", "query_wait_timeout", "server_idle_timeout", "server_lifetime",
                 "max_prepared_statements", "max_tenant_share", "idle_transaction_timeout"}, "[pool]");
  if (t.contains("mode")) {
    const auto& v = t.at("mode");
    std::optional<PoolMode> mode = v.is_string() ? parse_mode<PoolMode>(v.as_string().str) : std::nullopt;
    if (!mode) fail(v, "[pool] mode must be \"session\" or \"transaction\"", "here");
    p.pool.mode = *mode;
  }
  auto integer = [&](const char* key, int64_t lo, int64_t hi) -> std::optional<int64_t> {
    if (!t.contains(key)) return std::nullopt;
    const auto& v = t.at(key);
    if (!v.is_integer() || v.as_integer() < lo || v.as_integer() > hi) {
      fail(v, std::string("[pool] ") + key + " must be an integer " + std::to_string(lo) + ".." + std::to_string(hi), "here");
    }
    return v.as_integer();
  };
  constexpr int64_t kDay = 24 * 3600;
  if (auto v = integer("size", 1, 10000)) p.pool.size = static_cast<size_t>(*v);
  if (auto v = integer("min_size", 0, 10000)) p.pool.min_size = static_cast<size_t>(*v);
  if (auto v = integer("query_wait_timeout", 0, kDay)) p.pool.query_wait_timeout_seconds = static_cast<int>(*v);
  if (auto v = integer("server_idle_timeout", 0, kDay)) p.pool.server_idle_timeout_seconds = static_cast<int>(*v);
  if (auto v = integer("server_lifetime", 0, 365 * kDay)) p.pool.server_lifetime_seconds = static_cast<int>(*v);
  if (auto v = integer("max_prepared_statements", 1, 100000)) p.pool.max_prepared_statements = static_cast<size_t>(*v);
  if (p.pool.min_size > p.pool.size) fail(t.at("min_size"), "[pool] min_size must not exceed size", "here");
  if (t.contains("max_tenant_share")) {
    const auto& v = t.at("max_tenant_share");
    const std::optional<double> share = v.is_floating()  ? std::optional<double>(v.as_floating())
                                        : v.is_integer() ? std::optional<double>(static_cast<double>(v.as_integer()))
                                                         : std::nullopt;
    if (!share || !(*share > 0.0 && *share <= 1.0)) {
      fail(v, "[pool] max_tenant_share must be a fraction of size above 0 and at most 1 (1: no cap)", "here");
    }
    p.pool.max_tenant_share = *share;
  }
  if (auto v = integer("idle_transaction_timeout", 0, kDay)) {
    p.pool.idle_transaction_timeout_seconds = static_cast<int>(*v);
  }
}

// Transaction mode shares upstream_user connections between clients: refused where the upstream
// session itself carries the client (identity = "role": each client logs in as its own role;
// backstop = "rls": the tenant is a setting of the upstream session).
void check_pool_mode(const toml::value& root, const Policy& p) {
  if (p.pool.mode != PoolMode::kTransaction) return;
  const auto& at = root.at("pool").at("mode");
  if (p.identity.mode == IdentityMode::kRole) {
    fail(at, "[pool] mode = \"transaction\" cannot be used with [tenancy] identity = \"role\" (a pool is made of "
             "upstream_user connections; with identity = \"role\" each client logs in upstream as its own role)",
         "here");
  }
  if (p.backstop == Backstop::kRls) {
    fail(at, "[pool] mode = \"transaction\" cannot be used with [tenancy] backstop = \"rls\" yet (the tenant is a "
             "setting of the upstream session, which transaction pooling shares between tenants)",
         "here");
  }
}

void parse_limits(const toml::value& root, Policy& p) {
  if (!root.contains("limits")) return;
  const auto& t = root.at("limits");
  if (!t.is_table()) fail(t, "[limits] must be a table", "here");
  check_keys(t, {"max_message_size", "max_startup_packet", "max_server_message", "idle_client_timeout",
                 "idle_in_transaction_timeout", "message_timeout", "max_prepared_statements",
                 "max_prepared_statement_bytes", "max_pipelined_messages", "settings", "offload_parse_bytes",
                 "parse_threads"},
             "[limits]");
  if (t.contains("settings")) parse_setting_limits(t.at("settings"), p.setting_limits);
  auto integer = [&](const char* key, int64_t lo, int64_t hi, const char* unit) -> std::optional<int64_t> {
    if (!t.contains(key)) return std::nullopt;
    const auto& v = t.at(key);
    if (!v.is_integer() || v.as_integer() < lo || v.as_integer() > hi) {
      fail(v, std::string("\"") + key + "\" must be an integer " + std::to_string(lo) + ".." + std::to_string(hi) +
                  " (" + unit + ")", "here");
    }
    return v.as_integer();
  };
  constexpr int64_t kGiB = int64_t{1} << 30;  // PostgreSQL's own limit for one message
  if (auto v = integer("max_message_size", 1024, kGiB, "bytes")) p.limits.max_message_size = static_cast<size_t>(*v);
  if (auto v = integer("max_startup_packet", 1024, kGiB, "bytes")) p.limits.max_startup_packet = static_cast<size_t>(*v);
  if (auto v = integer("max_server_message", 1024, kGiB, "bytes")) p.limits.max_server_message = static_cast<size_t>(*v);
  constexpr int64_t kDay = 86400;
  if (auto v = integer("idle_client_timeout", 0, kDay, "seconds, 0 = off")) p.limits.idle_client_timeout_seconds = static_cast<int>(*v);
  if (auto v = integer("idle_in_transaction_timeout", 0, kDay, "seconds, 0 = off")) {
    p.limits.idle_in_transaction_timeout_seconds = static_cast<int>(*v);
  }
  if (auto v = integer("message_timeout", 0, kDay, "seconds, 0 = off")) p.limits.message_timeout_seconds = static_cast<int>(*v);
  if (auto v = integer("offload_parse_bytes", 0, kGiB, "bytes")) p.limits.offload_parse_bytes = static_cast<size_t>(*v);
  if (auto v = integer("parse_threads", 1, 64, "threads")) p.limits.parse_threads = static_cast<int>(*v);
  if (auto v = integer("max_prepared_statements", 1, 1000000, "statements per session")) {
    p.limits.max_prepared_statements = static_cast<size_t>(*v);
  }
  if (auto v = integer("max_prepared_statement_bytes", 1024, kGiB, "bytes per session")) {
    p.limits.max_prepared_statement_bytes = static_cast<size_t>(*v);
  }
  if (auto v = integer("max_pipelined_messages", 100, 10000000, "messages per session")) {
    p.limits.max_pipelined_messages = static_cast<size_t>(*v);
  }
}

void parse_tls(const toml::value& root, Policy& p) {
  if (!root.contains("tls")) return;
  const auto& t = root.at("tls");
  if (!t.is_table()) fail(t, "[tls] must be a table", "here");
  check_keys(t, {"cert", "key", "mode"}, "[tls]");
  p.tls.cert = get_optional_string(t, "cert").value_or("");
  p.tls.key = get_optional_string(t, "key").value_or("");
  if (p.tls.cert.empty() != p.tls.key.empty()) fail(t, "[tls] needs both cert and key", "here");
  const auto mode = parse_mode<TlsMode>(get_optional_string(t, "mode").value_or(p.tls.cert.empty() ? "disable" : "allow"));
  if (!mode) fail(t.at("mode"), "[tls] mode must be disable, allow or require", "here");
  p.tls.mode = *mode;
  if (p.tls.mode != TlsMode::kDisable && p.tls.cert.empty()) {
    fail(t.at("mode"), "[tls] mode = \"" + std::string(to_string(p.tls.mode)) + "\" needs cert and key", "here");
  }
}

void parse_tenancy(const toml::value& root, Policy& p) {
  if (!root.contains("tenancy")) fail(root, "missing table [tenancy]", "here");
  const auto& t = root.at("tenancy");
  if (!t.is_table()) fail(t, "[tenancy] must be a table", "here");
  std::set<std::string> keys = identity_tenancy_keys();
  keys.insert({"default_column", "unknown_tables", "backstop", "explain"});
  check_keys(t, keys, "[tenancy]");
  parse_identity(t, p);
  if (p.proxy.upstream_user.empty() && p.identity.mode != IdentityMode::kRole) {
    fail(root.at("proxy"), "missing key \"upstream_user\" in [proxy]", "here");
  }
  p.default_column = get_optional_string(t, "default_column").value_or("tenant_id");
  if (!valid_identifier(p.default_column)) fail(t.at("default_column"), "invalid column name", "here");
  auto unknown = get_optional_string(t, "unknown_tables").value_or("deny");
  if (unknown != "deny") {
    fail(t.at("unknown_tables"), "\"unknown_tables\" must be \"deny\" (the only mode for now)", "here");
  }
  const auto backstop = parse_mode<Backstop>(get_optional_string(t, "backstop").value_or("off"));
  if (!backstop) fail(t.at("backstop"), "\"backstop\" must be \"off\" or \"rls\"", "here");
  p.backstop = *backstop;
  if (auto explain = get_optional_string(t, "explain")) {
    if (*explain == "refuse") {
      p.explain = Explain::kRefuse;
    } else if (*explain == "costs_off") {
      p.explain = Explain::kCostsOff;
    } else {
      fail(t.at("explain"), "\"explain\" must be \"refuse\" or \"costs_off\"", "here");
    }
  }
}

void parse_logins(const toml::value& root, const std::string& key, bool tenant, Policy& p) {
  if (!root.contains(key)) return;
  const auto& arr = root.at(key);
  if (!arr.is_array()) fail(arr, "\"" + key + "\" must be an array of tables ([[" + key + "]])", "here");
  for (const auto& e : arr.as_array()) {
    if (!e.is_table()) fail(e, "each [[" + key + "]] entry must be a table", "here");
    if (tenant) {
      check_keys(e, {"user", "password", "tenant", "upstream"}, "[[tenants]]");
    } else {
      check_keys(e, {"user", "password"}, "[[bypass]]");
    }
    Login login;
    login.user = get_string(e, "user", "[[" + key + "]]");
    login.password = get_string(e, "password", "[[" + key + "]]");
    if (!valid_identifier(login.user)) fail(e.at("user"), "invalid user name", "here");
    if (login.password.empty()) fail(e.at("password"), "empty password", "here");
    if (login.password.starts_with("SCRAM-SHA-256$")) {
      if (!looks_like_scram_verifier(login.password)) {
        fail(e.at("password"), "malformed SCRAM-SHA-256 verifier (expected "
             "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, as in pg_authid; "
             "`rowguard passwd USER` prints one)", "here");
      }
    } else {
      p.plaintext_users.push_back(login.user);
    }
    if (tenant) {
      const auto& tv = e.contains("tenant") ? e.at("tenant") : e;
      if (!e.contains("tenant")) fail(e, "missing key \"tenant\" in [[tenants]]", "here");
      if (tv.is_string()) {
        login.tenant = tv.as_string().str;
      } else if (tv.is_integer()) {
        login.tenant = std::to_string(tv.as_integer());
      } else {
        fail(tv, "\"tenant\" must be a string (or an integer)", "here");
      }
      if (login.tenant->empty() || login.tenant->find('\0') != std::string::npos) {
        fail(tv, "invalid tenant value", "here");
      }
      if (auto up = get_optional_string(e, "upstream")) place_tenant(e.at("upstream"), *login.tenant, *up, p);
    }
    if (p.logins.contains(login.user)) fail(e.at("user"), "user \"" + login.user + "\" is listed twice", "here");
    p.logins.emplace(login.user, std::move(login));
  }
}

// shared_keys = ["index_or_constraint", ...] of a tenant-scoped table (checked against the
// schema snapshot at start-up: policy/schema_report.cc).
std::vector<std::string> parse_shared_keys(const toml::value& v) {
  std::vector<std::string> out;
  if (!v.contains("shared_keys")) return out;
  const auto& a = v.at("shared_keys");
  if (!a.is_array()) fail(a, "\"shared_keys\" must be an array of index or constraint names", "here");
  for (const auto& e : a.as_array()) {
    if (!e.is_string() || e.as_string().str.empty()) fail(e, "\"shared_keys\" entries must be non-empty strings", "here");
    out.push_back(e.as_string().str);
  }
  return out;
}

void parse_tables(const toml::value& root, Policy& p) {
  if (!root.contains("tables")) return;
  const auto& t = root.at("tables");
  if (!t.is_table()) fail(t, "[tables] must be a table of tables", "here");
  for (const auto& [key, v] : t.as_table()) {
    if (!v.is_table()) fail(v, "tables.\"" + key + "\" must be a table", "here");
    check_keys(v, {"column", "global", "shared_keys"}, "[tables.\"" + key + "\"]");
    TableRule rule;
    rule.table = parse_qualified_name(key);
    if (rule.table.schema.empty() || rule.table.name.empty()) {
      fail(v, "table key \"" + key + "\" must be \"schema.table\"", "here");
    }
    if (v.contains("global")) {
      if (!v.at("global").is_boolean()) fail(v.at("global"), "\"global\" must be true or false", "here");
      rule.global = v.at("global").as_boolean();
    }
    if (rule.global) {
      if (v.contains("column")) fail(v.at("column"), "a global table has no tenant column", "here");
    } else {
      rule.column = get_optional_string(v, "column").value_or(p.default_column);
      if (!valid_identifier(rule.column)) fail(v, "invalid column name", "here");
      rule.shared_keys = parse_shared_keys(v);
    }
    if (p.tables.contains(rule.table)) fail(v, "table \"" + key + "\" is listed twice", "here");
    p.tables.emplace(rule.table, std::move(rule));
  }
}

void parse_functions(const toml::value& root, Policy& p) {
  if (!root.contains("functions")) return;
  const auto& t = root.at("functions");
  if (!t.is_table()) fail(t, "[functions] must be a table", "here");
  check_keys(t, {"allow"}, "[functions]");
  if (!t.contains("allow")) return;
  const auto& a = t.at("allow");
  if (!a.is_array()) fail(a, "\"allow\" must be an array of \"schema.function\" strings", "here");
  for (const auto& f : a.as_array()) {
    if (!f.is_string()) fail(f, "function names must be strings", "here");
    auto q = parse_qualified_name(f.as_string().str);
    p.allowed_functions.push_back(q);
  }
}

}  // namespace

QualifiedName parse_qualified_name(std::string_view text) {
  auto dot = text.find('.');
  if (dot == std::string_view::npos) return {"public", std::string(text)};
  return {std::string(text.substr(0, dot)), std::string(text.substr(dot + 1))};
}

// The tenant scope holds the lookups the rewriter uses; the policy answers through it.
const TableRule* Policy::table(const QualifiedName& name) const { return TenantScope(*this).table(name); }

const Login* Policy::login(std::string_view user) const {
  auto it = logins.find(std::string(user));
  return it == logins.end() ? nullptr : &it->second;
}

const std::optional<auth::ScramVerifier>& Login::scram_verifier() const {
  std::call_once(scram_cache->once, [this] {
    if (password.starts_with("SCRAM-SHA-256$")) {
      scram_cache->verifier = auth::ScramVerifier::parse(password);
    } else {
      scram_cache->verifier = auth::ScramVerifier::from_password(password, auth::random_bytes(16));
    }
  });
  return scram_cache->verifier;
}

bool Policy::function_allowed(const QualifiedName& name) const { return TenantScope(*this).function_allowed(name); }

const std::string& Policy::upstream_name_of(std::string_view tenant) const {
  static const std::string kDefault(kDefaultUpstream);
  auto it = placement.find(tenant);
  return it == placement.end() ? kDefault : it->second;
}

const Upstream* Policy::upstream(std::string_view name) const {
  auto it = upstreams.find(name);
  return it == upstreams.end() ? nullptr : &it->second;
}

const Upstream& Policy::upstream_of(std::string_view tenant) const {
  if (const Upstream* u = upstream(upstream_name_of(tenant))) return *u;
  static const Upstream kNone{std::string(kDefaultUpstream), ProxySettings{}};
  if (const Upstream* u = upstream(kDefaultUpstream)) return *u;
  return kNone;  // (a Policy not made by parse_policy)
}

PolicyPtr parse_policy(const std::string& toml_text, const std::string& source) {
  auto p = std::make_shared<Policy>();
  p->source = source;
  // Every error, from the TOML parser or from the checks below, leaves redacted.
  try {
    std::istringstream in(toml_text);
    const toml::value root = toml::parse(in, source);
    check_keys(root, {"proxy", "tls", "audit", "metrics", "tenancy", "tenants", "bypass", "roles", "tables", "functions",
                      "cache", "limits", "pool", "peers", "upstreams", "placement"},
               "the top level");
    parse_proxy(root, *p);
    parse_upstreams(root, *p);
    parse_peers(root, *p);
    parse_cache(root, *p);
    parse_tls(root, *p);
    parse_limits(root, *p);
    parse_pool(root, *p);
    parse_audit_and_metrics(root, *p);
    parse_tenancy(root, *p);
    parse_logins(root, "tenants", true, *p);
    parse_logins(root, "bypass", false, *p);
    parse_roles(root, *p);
    parse_placement(root, *p);
    parse_tables(root, *p);
    parse_functions(root, *p);
    check_pool_mode(root, *p);
  } catch (const PolicyError& e) {
    throw PolicyError(redact_policy_message(e.what(), toml_text));
  } catch (const toml::exception& e) {
    throw PolicyError(redact_policy_message(located(e.location()) + e.what(), toml_text));
  } catch (const std::exception& e) {
    throw PolicyError(redact_policy_message(source + ": " + e.what(), toml_text));
  }
  if (p->logins.empty() && p->identity.mode == IdentityMode::kMap) throw PolicyError(source + ": no [[tenants]] or [[bypass]] users: nobody could log in");
  p->version = g_next_version.fetch_add(1);
  return p;
}

uint64_t next_policy_version() { return g_next_version.fetch_add(1); }

PolicyPtr load_policy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw PolicyError(path + ": cannot open policy file");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_policy(text.str(), path);
}

}  // namespace rowguard::policy
