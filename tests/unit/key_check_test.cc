// Keys that cross tenants (sqlrewrite/key_check.h), through sqlrewrite::rewrite() with
// hand-built schema snapshots: every write form that gives a key without the tenant column a
// value is refused (rule cross_tenant_key); sequence defaults, composite keys and shared_keys pass.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>

#include "policy/policy.h"
#include "policy/schema_report.h"
#include "sqlrewrite/rewriter.h"

namespace rowguard::sqlrewrite {
namespace {

constexpr const char* kToml = R"toml(
[proxy]
listen = "127.0.0.1:6432"
upstream = "127.0.0.1:5432"
upstream_user = "app"

[tenancy]
default_column = "tenant_id"

[[tenants]]
user = "t1"
password = "pw1"
tenant = "1"

[tables."public.legacy"]
[tables."public.seq"]
[tables."public.safe"]
[tables."public.users"]
shared_keys = ["users_email_key"]
)toml";

policy::UniqueKey key(std::string name, std::vector<std::string> cols, bool partial = false) {
  policy::UniqueKey k;
  k.name = name;
  k.constraint = name;
  k.columns = cols;
  for (const auto& c : cols) {
    if (!c.empty()) k.plain_columns.push_back(c);
  }
  k.partial = partial;
  return k;
}

policy::TableInfo table(std::string name, std::vector<std::string> cols) {
  policy::TableInfo t;
  t.name = {"public", std::move(name)};
  for (auto& c : cols) {
    policy::ColumnInfo col;
    col.name = c;
    t.columns.push_back(col);
  }
  return t;
}

// legacy: PRIMARY KEY (id), UNIQUE (code); seq: id serial PRIMARY KEY; safe: PRIMARY KEY
// (tenant_id, id) and UNIQUE (tenant_id, lower(name)); users: UNIQUE (email), shared.
policy::PolicyPtr policy_with(std::function<void(policy::SchemaSnapshot&)> edit = nullptr) {
  auto s = std::make_shared<policy::SchemaSnapshot>();
  s->loaded = true;
  auto legacy = table("legacy", {"id", "tenant_id", "code", "body"});
  legacy.unique_keys = {key("legacy_pkey", {"id"}), key("legacy_code_key", {"code"})};
  auto seq = table("seq", {"id", "tenant_id", "body"});
  seq.columns[0].has_default = true;
  seq.columns[0].default_sequence = "public.seq_id_seq";
  seq.unique_keys = {key("seq_pkey", {"id"})};
  auto safe = table("safe", {"id", "tenant_id", "name"});
  safe.unique_keys = {key("safe_pkey", {"tenant_id", "id"}), key("safe_lower_idx", {"tenant_id", ""})};
  auto users = table("users", {"id", "tenant_id", "email"});
  users.unique_keys = {key("users_pkey", {"tenant_id", "id"}), key("users_email_key", {"email"})};
  for (auto* t : {&legacy, &seq, &safe, &users}) s->tables[t->name] = *t;
  if (edit) edit(*s);
  auto p = std::make_shared<policy::Policy>(*policy::parse_policy(kToml, "key_check_test.toml"));
  p->schema = s;
  return p;
}

void refused(const policy::Policy& p, const std::string& sql, const std::string& part) {
  RewriteResult r = rewrite(sql, p, "1");
  EXPECT_FALSE(r.allowed) << sql << " -> " << r.sql;
  EXPECT_NE(r.reason.find("cross_tenant_key"), std::string::npos) << sql << " -> " << r.reason;
  EXPECT_NE(r.reason.find(part), std::string::npos) << sql << " -> " << r.reason;
}

void allowed(const policy::Policy& p, const std::string& sql) {
  RewriteResult r = rewrite(sql, p, "1");
  EXPECT_TRUE(r.allowed) << sql << " -> " << r.reason;
}

TEST(KeyCheck, EveryWriteFormGivingALegacyKeyAValueIsRefused) {
  auto p = policy_with();
  for (const char* sql : {
           "INSERT INTO legacy (id, body) VALUES (1, 'x')",
           "INSERT INTO legacy (id, body) VALUES (DEFAULT, 'x'), ($1, 'y')",
           "INSERT INTO legacy (id, body) SELECT 1, 'x'",
           "INSERT INTO legacy (body) VALUES ('x')",  // id gets no sequence value: NULL or a constant
           "UPDATE legacy SET id = 5",
           "UPDATE legacy SET (body, id) = (SELECT 'x', 5)",
           "MERGE INTO legacy l USING (SELECT 1 AS id) s ON l.id = s.id WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id)",
           "MERGE INTO legacy l USING (SELECT 1 AS id) s ON l.id = s.id WHEN MATCHED THEN UPDATE SET id = 7",
           "WITH w AS (UPDATE legacy SET id = 5 RETURNING 1) SELECT * FROM w",
           "PREPARE p AS INSERT INTO legacy (id) VALUES ($1)",
           "COPY legacy (id, body) FROM STDIN",
       }) {
    refused(*p, sql, "\"legacy_pkey\" (id) of \"public.legacy\"");
  }
  refused(*p, "UPDATE legacy SET code = 'c'", "\"legacy_code_key\" (code)");
  refused(*p, "INSERT INTO legacy (id, body) VALUES (1, 'x') ON CONFLICT (tenant_id, id) DO NOTHING", "legacy_pkey");
  allowed(*p, "UPDATE legacy SET body = 'x' WHERE id = 1");
  allowed(*p, "MERGE INTO legacy l USING (SELECT 1 AS id) s ON l.id = s.id WHEN MATCHED THEN UPDATE SET body = 'y'");
}

TEST(KeyCheck, SequenceDefaultsCompositeKeysAndSharedKeysPass) {
  auto p = policy_with();
  allowed(*p, "INSERT INTO seq (body) VALUES ('x'), ('y')");
  allowed(*p, "INSERT INTO seq (id, body) VALUES (DEFAULT, 'x'), (DEFAULT, 'y')");
  allowed(*p, "INSERT INTO seq (body) SELECT 'x'");
  refused(*p, "INSERT INTO seq (id, body) VALUES (DEFAULT, 'x'), (3, 'y')", "seq_pkey");
  refused(*p, "INSERT INTO seq (id, body) SELECT 3, 'y'", "seq_pkey");
  allowed(*p, "INSERT INTO safe (id, name) VALUES (1, 'x')");
  allowed(*p, "UPDATE safe SET id = 2, name = 'y'");
  allowed(*p, "INSERT INTO users (id, email) VALUES (1, 'a@b')");
  allowed(*p, "UPDATE users SET email = 'c@d'");
}

TEST(KeyCheck, KeysTheSnapshotCannotFullyDescribeAreRefused) {
  auto expr = policy_with([](policy::SchemaSnapshot& s) {
    s.tables[{"public", "seq"}].unique_keys.push_back(key("seq_lower_idx", {}));
  });
  refused(*expr, "INSERT INTO seq (body) VALUES ('x')", "\"seq_lower_idx\" (an expression)");
  refused(*expr, "UPDATE seq SET body = 'x'", "seq_lower_idx");
  auto partial = policy_with([](policy::SchemaSnapshot& s) {
    s.tables[{"public", "seq"}].unique_keys.push_back(key("seq_body_idx", {"body"}, true));
  });
  refused(*partial, "UPDATE seq SET tenant_id = '1'", "seq_body_idx");
  refused(*partial, "INSERT INTO seq (body) VALUES ('x')", "seq_body_idx");
  auto excl = policy_with([](policy::SchemaSnapshot& s) { s.tables[{"public", "safe"}].exclusion_constraints = {"no_overlap"}; });
  refused(*excl, "INSERT INTO safe (id) VALUES (1)", "exclusion constraint \"no_overlap\"");
  auto child = policy_with([](policy::SchemaSnapshot& s) {
    s.tables[{"public", "safe"}].children = {{"public", "safe_1"}};
    auto c = table("safe_1", {"id", "tenant_id", "name"});
    c.unique_keys = {key("safe_1_id_key", {"id"})};
    s.tables[c.name] = c;
  });
  refused(*child, "INSERT INTO safe (id) VALUES (1)", "\"safe_1_id_key\" (id) of \"public.safe_1\"");
  auto unknown = std::make_shared<policy::Policy>(*policy_with());
  unknown->schema = nullptr;
  refused(*unknown, "INSERT INTO safe (id) VALUES (1)", "schema is not known yet");
  refused(*unknown, "UPDATE safe SET name = 'x'", "schema is not known yet");
}

TEST(SequenceCheck, OnlyLiteralNamesOfTenantTableSequences) {
  auto p = policy_with();
  RewriteResult ok = rewrite("SELECT nextval('seq_id_seq'), currval('PUBLIC.\"seq_id_seq\"'::regclass)", *p, "1");
  ASSERT_TRUE(ok.allowed) << ok.reason;
  EXPECT_EQ(ok.sql, "SELECT nextval('\"public\".\"seq_id_seq\"'), currval('\"public\".\"seq_id_seq\"'::regclass)");
  for (const char* sql : {"SELECT nextval('audit_log_id_seq')", "SELECT nextval('other.seq_id_seq')",
                          "SELECT nextval('seq_' || 'id_seq')", "SELECT nextval($1)", "SELECT nextval(16384)",
                          "SELECT nextval('a.b.seq_id_seq')", "SELECT nextval(' seq_id_seq')",
                          "SELECT nextval('seq_id_seq'::text)", "SELECT setval('seq_id_seq', 1)", "SELECT lastval()",
                          "SELECT nextval('seq_id_seq', 1)"}) {
    RewriteResult r = rewrite(sql, *p, "1");
    EXPECT_FALSE(r.allowed) << sql << " -> " << r.sql;
    EXPECT_NE(r.reason.find("rule: sequences"), std::string::npos) << sql << " -> " << r.reason;
  }
  auto unknown = std::make_shared<policy::Policy>(*p);
  unknown->schema = nullptr;
  EXPECT_FALSE(rewrite("SELECT nextval('seq_id_seq')", *unknown, "1").allowed);
}

TEST(KeyCheck, SharedKeysIsAListOfNames) {
  const std::string head = std::string(kToml).substr(0, std::string(kToml).find("[tables."));
  auto p = policy::parse_policy(head + "[tables.\"public.t\"]\nshared_keys = [\"t_email_key\", \"t_x\"]\n", "x.toml");
  EXPECT_EQ(p->tables.at({"public", "t"}).shared_keys, (std::vector<std::string>{"t_email_key", "t_x"}));
  EXPECT_THROW(policy::parse_policy(head + "[tables.\"public.t\"]\nshared_keys = \"t_email_key\"\n", "x.toml"),
               policy::PolicyError);
  EXPECT_THROW(policy::parse_policy(head + "[tables.\"public.t\"]\nshared_keys = [1]\n", "x.toml"), policy::PolicyError);
  EXPECT_THROW(policy::parse_policy(head + "[tables.\"public.t\"]\nshared_key = [\"x\"]\n", "x.toml"), policy::PolicyError);
}

bool has_warning(const policy::SchemaReport& r, const std::string& a, const std::string& b) {
  for (const auto& w : r.warnings) {
    if (w.find(a) != std::string::npos && w.find(b) != std::string::npos) return true;
  }
  return false;
}

TEST(KeyCheck, StartupReportSaysWhatIsRefusedSharedAndSequenced) {
  auto p = policy_with([](policy::SchemaSnapshot& s) {
    s.tables[{"public", "users"}].unique_keys.push_back(key("users_name_key", {"name"}));
  });
  auto with_unknown = std::make_shared<policy::Policy>(*p);
  with_unknown->tables[{"public", "legacy"}].shared_keys = {"legacy_nope"};
  policy::SchemaReport r = policy::report_schema(*with_unknown, *p->schema);
  EXPECT_TRUE(has_warning(r, "\"legacy_pkey\"", "tenant writes that give it a value are refused")) << r.warnings.size();
  EXPECT_TRUE(has_warning(r, "\"users_email_key\"", "listed in shared_keys"));
  EXPECT_TRUE(has_warning(r, "\"legacy_nope\"", "not a unique index"));
  EXPECT_TRUE(has_warning(r, "\"public.seq_id_seq\"", "shared by all tenants"));
  EXPECT_FALSE(has_warning(r, "\"safe_pkey\"", ""));
}

}  // namespace
}  // namespace rowguard::sqlrewrite
