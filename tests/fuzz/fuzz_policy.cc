// Fuzz target: policy::parse_policy on arbitrary text.
//
// parse_policy promises to throw PolicyError and nothing else: any other exception that
// escapes, and any crash, is a finding (abort() with the exception's type and message). An
// accepted policy must satisfy what the loader promises: at least one login; user names and
// tenant values non-empty without NUL; every table "schema.table" with both parts; a tenant
// table has a valid column, a global table none; a version. The accepted policy is then used
// once (rewrite of a few statements for its first tenant) to make sure nothing it lets through
// breaks the rewriter.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <typeinfo>

#include "policy/policy.h"
#include "sqlrewrite/rewriter.h"

namespace {

[[noreturn]] void fail(const std::string& why, const std::string& text) {
  std::fprintf(stderr, "\n==== fuzz_policy: FINDING ====\n%s\n---- input (%zu bytes) ----\n%s\n----\n",
               why.c_str(), text.size(), text.c_str());
  std::fflush(stderr);
  std::abort();
}

bool valid_name(const std::string& s) { return !s.empty() && s.find('\0') == std::string::npos; }

#ifdef ROWGUARD_FUZZ_WORKAROUNDS
// Known, reported: toml11 3.7.1 reads past the end of its buffer (heap-buffer-overflow in
// location::reset, from parse_literal_string / parse_ml_literal_string) on a literal string
// holding invalid UTF-8, e.g. the 7 bytes  a = '\x98'  . With the workarounds on, such inputs
// are skipped so that fuzzing can look further.
bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    if (c < 0x80) {
      n = 0;
    } else if ((c >> 5) == 0x6) {
      n = 1;
    } else if ((c >> 4) == 0xe) {
      n = 2;
    } else if ((c >> 3) == 0x1e) {
      n = 3;
    } else {
      return false;
    }
    if (i + n >= s.size() && n > 0) return false;
    for (size_t k = 1; k <= n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += n + 1;
  }
  return true;
}
#endif

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
#ifdef ROWGUARD_FUZZ_WORKAROUNDS
  if (!valid_utf8(text)) return 0;
#endif
  rowguard::policy::PolicyPtr p;
  try {
    p = rowguard::policy::parse_policy(text, "fuzz.toml");
  } catch (const rowguard::policy::PolicyError& e) {
    if (std::string(e.what()).empty()) fail("PolicyError without a message", text);
    return 0;
  } catch (const std::exception& e) {
    fail(std::string("parse_policy let a non-PolicyError exception escape: ") + typeid(e).name() +
             ": " + e.what(), text);
  } catch (...) {
    fail("parse_policy let a non-std exception escape", text);
  }
  if (!p) fail("parse_policy returned null", text);
  // identity = "map" needs logins; "jwt" a verifier; "role" a [[roles]] mapping (policy/identity.h).
  if (p->logins.empty() && p->identity.mode == rowguard::policy::IdentityMode::kMap) fail("accepted a policy without logins", text);
  if ((p->identity.mode == rowguard::policy::IdentityMode::kJwt) != (p->identity.jwt != nullptr)) fail("jwt verifier without identity = jwt or the reverse", text);
  if (p->identity.mode == rowguard::policy::IdentityMode::kRole && (p->roles.empty() || !p->logins.empty())) fail("bad role identity policy", text);
  for (const auto& [role, tenant] : p->roles) {
    if (!valid_name(role) || (tenant && !valid_name(*tenant))) fail("bad [[roles]] entry accepted", text);
  }
  if (p->version == 0) fail("accepted policy has version 0", text);
  const rowguard::policy::Login* first_tenant = nullptr;
  for (const auto& [user, login] : p->logins) {
    if (user != login.user || !valid_name(user)) fail("bad login user", text);
    if (login.tenant) {
      if (!valid_name(*login.tenant)) fail("empty tenant or tenant with NUL accepted", text);
      if (first_tenant == nullptr) first_tenant = &login;
    }
  }
  for (const auto& [name, rule] : p->tables) {
    if (name != rule.table || name.schema.empty() || name.name.empty()) fail("bad table key", text);
    if (rule.global != rule.column.empty()) fail("a global table with a column or a tenant table without one", text);
    if (!rule.global && !valid_name(rule.column)) fail("bad tenant column", text);
  }
  if (p->proxy.listen_port == 0 || p->proxy.upstream_port == 0) fail("port 0 accepted", text);
  if (p->proxy.workers < 0 || p->proxy.workers > 256) fail("workers out of range", text);
  if (first_tenant != nullptr) {
    for (const char* sql : {"SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id",
                            "INSERT INTO orders (id, amount) VALUES (1, 2)",
                            "UPDATE customers SET name = 'x' WHERE id = 1"}) {
      try {
        (void)rowguard::sqlrewrite::rewrite(sql, *p, *first_tenant->tenant);
      } catch (const std::exception& e) {
        fail(std::string("rewrite() threw with this policy: ") + e.what(), text);
      }
    }
  }
  return 0;
}
