// Keys that cross tenants (sqlrewrite/key_check.h), through sqlrewrite::rewrite() with
// hand-built schema snapshots: every write form that gives a key without the tenant column a
// value is refused (rule cross_tenant_key); sequence defaults, composite keys and shared_keys pass.
// Foreign keys likewise (sqlrewrite/fk_check.h, rule cross_tenant_fk).
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>

#include "policy/policy.h"
#include "policy/schema_report.h"
#include "sqlrewrite/rewriter.h"
#include "tests/support/test_policy.h"

namespace rowguard::sqlrewrite {
namespace {

const std::string kToml = test_support::test_policy_toml({.tables =
        "[tables.\"public.legacy\"]\n"
        "[tables.\"public.seq\"]\n"
        "[tables.\"public.safe\"]\n"
        "[tables.\"public.users\"]\n"
        "shared_keys = [\"users_email_key\"]\n"
        "[tables.\"public.countries\"]\n"
        "global = true\n"});

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

// ---- foreign keys that cross tenants (sqlrewrite/fk_check.h) ---------------------------------

policy::ForeignKey fkey(std::string name, std::vector<std::string> cols, std::string ref, std::vector<std::string> ref_cols) {
  policy::ForeignKey k;
  k.name = std::move(name);
  k.columns = std::move(cols);
  k.references = {"public", std::move(ref)};
  k.referenced_columns = std::move(ref_cols);
  return k;
}

// refs: ref_id -> legacy (id) (no tenant column), (tenant_id, cid) -> safe (tenant_id, id),
// country -> countries (code) (global), priv_id -> private (id) (not in the policy), tenant_id ->
// tenants (id) (not in the policy, but its value is always the tenant's own).
policy::PolicyPtr fk_policy(std::function<void(policy::SchemaSnapshot&)> edit = nullptr) {
  return policy_with([edit](policy::SchemaSnapshot& s) {
    auto refs = table("refs", {"id", "tenant_id", "ref_id", "cid", "country", "priv_id", "body"});
    refs.unique_keys = {key("refs_pkey", {"tenant_id", "id"})};
    refs.foreign_keys = {fkey("refs_ref_id_fkey", {"ref_id"}, "legacy", {"id"}),
                         fkey("refs_cid_fkey", {"tenant_id", "cid"}, "safe", {"tenant_id", "id"}),
                         fkey("refs_country_fkey", {"country"}, "countries", {"code"}),
                         fkey("refs_priv_id_fkey", {"priv_id"}, "private", {"id"}),
                         fkey("refs_tenant_id_fkey", {"tenant_id"}, "tenants", {"id"})};
    s.tables[refs.name] = refs;
    if (edit) edit(s);
  });
}

policy::PolicyPtr with_refs(policy::PolicyPtr p, std::vector<std::string> shared = {}) {
  auto out = std::make_shared<policy::Policy>(*p);
  policy::TableRule rule;
  rule.table = {"public", "refs"};
  rule.column = "tenant_id";
  rule.shared_keys = std::move(shared);
  out->tables[rule.table] = rule;
  return out;
}

void fk_refused(const policy::Policy& p, const std::string& sql, const std::string& part) {
  RewriteResult r = rewrite(sql, p, "1");
  EXPECT_FALSE(r.allowed) << sql << " -> " << r.sql;
  EXPECT_NE(r.reason.find("cross_tenant_fk"), std::string::npos) << sql << " -> " << r.reason;
  EXPECT_NE(r.reason.find(part), std::string::npos) << sql << " -> " << r.reason;
}

TEST(FkCheck, EveryWriteFormGivingAForeignKeyWithoutTheTenantColumnAValueIsRefused) {
  auto p = with_refs(fk_policy());
  for (const char* sql : {
           "INSERT INTO refs (ref_id) VALUES (1)",
           "INSERT INTO refs (body, ref_id) VALUES ('x', NULL), ('y', $1)",
           "INSERT INTO refs (ref_id) SELECT 1",
           "UPDATE refs SET ref_id = 2",
           "UPDATE refs SET (body, ref_id) = (SELECT 'x', 2)",
           "MERGE INTO refs r USING (SELECT 1 AS id) s ON r.id = s.id WHEN NOT MATCHED THEN INSERT (ref_id) VALUES (s.id)",
           "MERGE INTO refs r USING (SELECT 1 AS id) s ON r.id = s.id WHEN MATCHED THEN UPDATE SET ref_id = 7",
           "INSERT INTO refs (id) VALUES (1) ON CONFLICT (tenant_id, id) DO UPDATE SET ref_id = 2",
           "WITH w AS (INSERT INTO refs (ref_id) VALUES (1) RETURNING 1) SELECT * FROM w",
           "COPY refs (ref_id, body) FROM STDIN",
       }) {
    fk_refused(*p, sql, "foreign key \"refs_ref_id_fkey\" (ref_id) of \"public.refs\" references the tenant table \"public.legacy\"");
  }
  fk_refused(*p, "INSERT INTO refs (priv_id) VALUES (1)", "\"public.private\", which is not in the policy");
  fk_refused(*p, "INSERT INTO refs (ref_id) VALUES (1)", "(tenant_id, ref_id) REFERENCES public.legacy (tenant_id, id)");
}

TEST(FkCheck, NullCompositeGlobalAndSharedForeignKeysPass) {
  auto p = with_refs(fk_policy());
  allowed(*p, "INSERT INTO refs (body) VALUES ('x')");  // ref_id, priv_id: NULL, not looked up
  allowed(*p, "INSERT INTO refs (ref_id, body) VALUES (DEFAULT, 'x')");
  allowed(*p, "INSERT INTO refs (cid, country) VALUES (1, 'DE')");
  allowed(*p, "INSERT INTO refs (tenant_id, body) VALUES ('1', 'x')");
  allowed(*p, "UPDATE refs SET cid = 2, country = 'FR', body = 'y'");
  allowed(*p, "INSERT INTO refs (id) VALUES (1) ON CONFLICT (tenant_id, id) DO UPDATE SET body = 'z'");
  allowed(*with_refs(fk_policy(), {"refs_ref_id_fkey"}), "INSERT INTO refs (ref_id) VALUES (1)");
  fk_refused(*with_refs(fk_policy(), {"refs_ref_id_fkey"}), "INSERT INTO refs (priv_id) VALUES (1)", "refs_priv_id_fkey");
}

TEST(FkCheck, DefaultsChildrenAndUnknownSchemaAreRefused) {
  // An omitted column with a default gives the row a value.
  auto def = with_refs(fk_policy([](policy::SchemaSnapshot& s) { s.tables[{"public", "refs"}].columns[2].has_default = true; }));
  fk_refused(*def, "INSERT INTO refs (body) VALUES ('x')", "refs_ref_id_fkey");
  allowed(*def, "UPDATE refs SET body = 'x'");
  // A partition's foreign key counts.
  auto child = with_refs(fk_policy([](policy::SchemaSnapshot& s) {
    s.tables[{"public", "refs"}].children = {{"public", "refs_1"}};
    auto c = table("refs_1", {"id", "tenant_id", "ref_id", "cid", "country", "priv_id", "body"});
    c.foreign_keys = {fkey("refs_1_body_fkey", {"body"}, "legacy", {"code"})};
    s.tables[c.name] = c;
  }));
  fk_refused(*child, "UPDATE refs SET body = 'x'", "\"refs_1_body_fkey\" (body) of \"public.refs_1\"");
  auto missing = with_refs(fk_policy([](policy::SchemaSnapshot& s) { s.tables[{"public", "refs"}].children = {{"public", "gone"}}; }));
  EXPECT_FALSE(rewrite("UPDATE refs SET body = 'x'", *missing, "1").allowed);  // (key_check refuses it first)
}

TEST(FkCheck, StartupReportSaysWhichForeignKeysAreRefused) {
  auto p = with_refs(fk_policy(), {"refs_country_fkey"});
  policy::SchemaReport r = policy::report_schema(*p, *p->schema);
  EXPECT_TRUE(has_warning(r, "\"refs_ref_id_fkey\"", "tenant writes that give it a value are refused (rule cross_tenant_fk)"));
  EXPECT_TRUE(has_warning(r, "\"refs_priv_id_fkey\"", "not in the policy"));
  EXPECT_FALSE(has_warning(r, "\"refs_cid_fkey\"", ""));
  EXPECT_FALSE(has_warning(r, "\"refs_tenant_id_fkey\"", ""));
  EXPECT_FALSE(has_warning(r, "\"refs_country_fkey\"", "not a unique index"));  // a foreign key is a valid shared_keys name
  auto shared = with_refs(fk_policy(), {"refs_ref_id_fkey"});
  EXPECT_TRUE(has_warning(policy::report_schema(*shared, *shared->schema), "\"refs_ref_id_fkey\"", "listed in shared_keys"));
}

// A STORED GENERATED key or foreign-key column is recomputed from columns the snapshot does not
// record: every UPDATE writes it (legacy.code generated, e.g. lower(body)).
TEST(KeyCheck, AGeneratedKeyColumnIsWrittenByEveryUpdate) {
  auto p = policy_with([](policy::SchemaSnapshot& s) { s.tables[{"public", "legacy"}].columns[2].generated = true; });
  refused(*p, "UPDATE legacy SET body = 'X'", "\"legacy_code_key\" (code)");
  refused(*p, "MERGE INTO legacy l USING (SELECT 1 AS id) s ON l.id = s.id WHEN MATCHED THEN UPDATE SET body = 'y'",
          "legacy_code_key");
  refused(*p, "INSERT INTO legacy (body) VALUES ('x') ON CONFLICT (tenant_id, id) DO UPDATE SET body = 'z'", "legacy");
  allowed(*policy_with(), "UPDATE legacy SET body = 'X'");
}

TEST(FkCheck, AGeneratedForeignKeyColumnIsWrittenByEveryUpdate) {
  auto p = with_refs(fk_policy([](policy::SchemaSnapshot& s) { s.tables[{"public", "refs"}].columns[2].generated = true; }));
  fk_refused(*p, "UPDATE refs SET body = 'x'", "refs_ref_id_fkey");
  fk_refused(*p, "MERGE INTO refs r USING (SELECT 1 AS id) s ON r.id = s.id WHEN MATCHED THEN UPDATE SET body = 'y'",
             "refs_ref_id_fkey");
  allowed(*with_refs(fk_policy()), "UPDATE refs SET body = 'x'");
}

policy::ReferencingKey referencing(std::string name, char on_update, char on_delete, bool via = false) {
  policy::ReferencingKey rk;
  rk.name = std::move(name);
  rk.table = {"public", "slots"};  // not in the policy
  rk.columns = {"tenant_id", "safe_id"};
  rk.referenced_columns = {"tenant_id", "id"};
  rk.on_update = on_update;
  rk.on_delete = on_delete;
  rk.via_cascade = via;
  return rk;
}

void action_refused(const policy::Policy& p, const std::string& sql, const std::string& part) {
  RewriteResult r = rewrite(sql, p, "1");
  EXPECT_FALSE(r.allowed) << sql << " -> " << r.sql;
  EXPECT_NE(r.reason.find("referential_action"), std::string::npos) << sql << " -> " << r.reason;
  EXPECT_NE(r.reason.find(part), std::string::npos) << sql << " -> " << r.reason;
}

// A referential action writes the referencing table past rowguard: ON UPDATE CASCADE / SET NULL /
// SET DEFAULT refuse an UPDATE of a referenced column, ON DELETE SET DEFAULT (also through a
// cascade chain) a DELETE; NO ACTION / RESTRICT and ON DELETE CASCADE / SET NULL pass.
TEST(ReferentialAction, ActionsThatWriteAnotherTableAreRefused) {
  for (char action : {'c', 'n', 'd'}) {
    auto p = policy_with([&](policy::SchemaSnapshot& s) {
      s.tables[{"public", "safe"}].referenced_by = {referencing("slots_fkey", action, 'a')};
    });
    for (const char* sql : {
             "UPDATE safe SET id = 7",
             "MERGE INTO safe t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN UPDATE SET id = 7",
             "INSERT INTO safe (id) VALUES (1) ON CONFLICT (tenant_id, id) DO UPDATE SET id = 2",
         }) {
      action_refused(*p, sql, "foreign key \"slots_fkey\" of \"public.slots\" (tenant_id, safe_id) references \"public.safe\"");
    }
    allowed(*p, "UPDATE safe SET name = 'x'");
    allowed(*p, "DELETE FROM safe WHERE id = 1");
  }
  for (char action : {'a', 'r'}) {
    auto p = policy_with([&](policy::SchemaSnapshot& s) {
      s.tables[{"public", "safe"}].referenced_by = {referencing("slots_fkey", action, action)};
    });
    allowed(*p, "UPDATE safe SET id = 7");
    allowed(*p, "DELETE FROM safe");
  }
  for (char action : {'c', 'n'}) {
    auto p = policy_with([&](policy::SchemaSnapshot& s) {
      s.tables[{"public", "safe"}].referenced_by = {referencing("slots_fkey", 'a', action)};
    });
    allowed(*p, "DELETE FROM safe");
  }
  auto setdef = policy_with([](policy::SchemaSnapshot& s) {
    s.tables[{"public", "safe"}].referenced_by = {referencing("slots_fkey", 'a', 'c'), referencing("deep_fkey", 'c', 'd', true)};
  });
  action_refused(*setdef, "DELETE FROM safe WHERE id = 1", "ON DELETE SET DEFAULT (reached through ON DELETE CASCADE)");
  action_refused(*setdef, "MERGE INTO safe t USING (SELECT 1 AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE", "deep_fkey");
  allowed(*setdef, "UPDATE safe SET id = 7");  // a key reached through a cascade is not updated by it
  auto unknown = policy_with([](policy::SchemaSnapshot& s) { s.loaded = false; });
  action_refused(*unknown, "DELETE FROM safe", "schema is not known");
  auto child = policy_with([](policy::SchemaSnapshot& s) { s.tables[{"public", "safe"}].children = {{"public", "gone"}}; });
  action_refused(*child, "DELETE FROM safe", "\"public.gone\"");
}

}  // namespace
}  // namespace rowguard::sqlrewrite
