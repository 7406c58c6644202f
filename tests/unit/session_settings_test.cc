// Session setup statements (issue 18): the SET / SHOW statements drivers and frameworks send
// while configuring a connection are allowed when they only change the tenant's own session,
// and refused with a reason naming what they would change otherwise. Includes what
// ActiveRecord 6.1 sends at connect (logged through rowguard by tests/e2e/drivers/rails_test.rb).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "policy/policy.h"
#include "sqlrewrite/rewrite_cache.h"
#include "sqlrewrite/rewriter.h"
#include "tests/support/test_policy.h"

namespace rowguard::sqlrewrite {
namespace {

const policy::Policy& settings_policy() {
  static const policy::PolicyPtr p =
      policy::parse_policy(test_support::test_policy_toml({.second_tenant = true}), "session_settings_test.toml");
  return *p;
}

RewriteResult run(const std::string& sql, const std::string& tenant = "1") {
  return rewrite(sql, settings_policy(), tenant);
}

// The statements ActiveRecord 6.1's PostgreSQL adapter sends while configuring a connection
// (configure_connection), then those of psycopg / pgJDBC / node-pg / Django and the rest of the
// issue's list, in their SET / SET SESSION / SET LOCAL / SET TIME ZONE forms.
// Sequelize sends SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE at every connect; libpg_query's
// deparser drops that value, so rowguard forwards the same setting as the string PostgreSQL itself
// derives from the interval (guc.c flatten_set_variable_args -> check_timezone). The deparser
// writes that string value as a quoted word, which the grammar reads as the same string constant.
TEST(SessionSettings, TimeZoneIntervalOfHoursAndMinutesIsForwardedAsTheSettingPostgresDerives) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE", "SET timezone TO \"INTERVAL '+00:00'\""},
      {"SET TIME ZONE INTERVAL '-08:00' HOUR TO MINUTE", "SET timezone TO \"INTERVAL '-08:00'\""},
      {"SET TIME ZONE INTERVAL '5:30'", "SET timezone TO \"INTERVAL '5:30'\""},
      {"SET LOCAL TIME ZONE INTERVAL '+05:45' HOUR TO MINUTE", "SET LOCAL timezone TO \"INTERVAL '+05:45'\""},
      {"SET client_min_messages TO warning;SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE;",
       "SET client_min_messages TO warning; SET timezone TO \"INTERVAL '+00:00'\""},
  };
  for (const auto& [sql, forwarded] : cases) {
    RewriteResult r = run(sql);
    EXPECT_TRUE(r.allowed) << sql << ": " << r.reason;
    EXPECT_EQ(r.sql, forwarded) << sql;
  }
  // Other intervals would not mean the same offset once read without the range (a bare number is
  // read in the range's last field; HOUR alone truncates minutes), or carry days or a precision.
  for (const char* sql : {"SET TIME ZONE INTERVAL '5' HOUR TO MINUTE", "SET TIME ZONE INTERVAL '+05:30' HOUR",
                          "SET TIME ZONE INTERVAL(2) '+05:30'", "SET TIME ZONE INTERVAL '1 day'",
                          "SET TIME ZONE INTERVAL '+05:30:10'", "SET TIME ZONE INTERVAL '123:00'",
                          "SET TIME ZONE INTERVAL '+05:3'"}) {
    RewriteResult r = run(sql);
    EXPECT_FALSE(r.allowed) << sql << " -> " << r.sql;
    EXPECT_NE(r.reason.find("SET TIME ZONE INTERVAL is allowed only as"), std::string::npos) << sql << ": " << r.reason;
  }
  // Through the rewrite cache, twice (the second a hit), and for another tenant: the same text.
  RewriteCache cache(100);
  for (const char* tenant : {"1", "2", "1"}) {
    EXPECT_EQ(cache.rewrite("SET TIME ZONE INTERVAL '-03:30' HOUR TO MINUTE", settings_policy(), tenant)->sql,
              "SET timezone TO \"INTERVAL '-03:30'\"");
  }
}

TEST(SessionSettings, FrameworkSetupStatementsAreAllowed) {
  const std::vector<std::string> allowed = {
      // ActiveRecord 6.1 (postgresql_adapter.rb configure_connection)
      "SET client_min_messages TO 'warning'",
      "SET standard_conforming_strings = on",
      "SET intervalstyle = iso_8601",
      "SET SESSION timezone TO 'UTC'",
      "SET SESSION timezone TO DEFAULT",
      "SHOW TIME ZONE",
      // lowercase and quoted forms other stacks send (Laravel's PostgresConnector, Sequelize,
      // TypeORM, pgJDBC's assumeMinServerVersion setup)
      "set names 'utf8'", "set time zone 'UTC'", "set search_path to \"public\"", "SET TIME ZONE '+00:00'",
      "SET client_min_messages TO warning", "set application_name to 'laravel'", "SET extra_float_digits = 3",
      "SET search_path TO 'public'",
      // the rest of the list
      "SET standard_conforming_strings TO 'on'", "SET standard_conforming_strings = true",
      "SET LOCAL standard_conforming_strings = on", "SET SESSION standard_conforming_strings TO ON",
      "RESET standard_conforming_strings", "SET standard_conforming_strings TO DEFAULT",
      "SET client_min_messages = notice", "SET LOCAL client_min_messages TO error", "SET client_min_messages = INFO",
      "SET IntervalStyle TO postgres", "SET TIME ZONE 'UTC'", "SET TIME ZONE '+02:00'", "SET TIME ZONE LOCAL", "SET TIME ZONE DEFAULT",
"SET TimeZone = 'Europe/Berlin'",
      "SET SESSION TIME ZONE 'UTC'", "SET LOCAL TIME ZONE 'UTC'", "SET LOCAL timezone = 'UTC'",
      "SET DateStyle = 'ISO, MDY'", "SET datestyle TO ISO", "SET application_name = 'rails'",
      "SET SESSION application_name TO 'x'", "SET statement_timeout = 5000", "SET statement_timeout = '5s'",
      "SET LOCAL statement_timeout = '1s'", "SET lock_timeout = '2s'", "SET idle_in_transaction_session_timeout = 60000",
      "SET extra_float_digits = 3", "SET bytea_output = 'hex'", "SET bytea_output TO escape",
      "SET search_path = public", "SET search_path TO public", "SET search_path TO \"public\"",
      "SET search_path = 'public'", "SET SESSION search_path TO public", "SET LOCAL search_path = public",
      "SET search_path TO DEFAULT", "RESET search_path", "SET SCHEMA 'public'",
      "RESET client_min_messages", "RESET timezone", "SET NAMES 'UTF8'",
      "SHOW standard_conforming_strings", "SHOW client_min_messages", "SHOW intervalstyle", "SHOW timezone",
      "SHOW TimeZone", "SHOW DateStyle", "SHOW application_name", "SHOW statement_timeout", "SHOW lock_timeout",
      "SHOW idle_in_transaction_session_timeout", "SHOW extra_float_digits", "SHOW bytea_output", "SHOW search_path",
      "SHOW server_version", "SHOW TRANSACTION ISOLATION LEVEL",
  };
  for (const auto& sql : allowed) {
    for (const std::string tenant : {"1", "2"}) {
      const RewriteResult r = run(sql, tenant);
      EXPECT_TRUE(r.allowed) << sql << ": " << r.reason;
    }
  }
}

struct Refused {
  std::string sql;
  std::string reason_part;  // the reason names what the setting would change
};

TEST(SessionSettings, SettingsThatChangeParsingNameResolutionIdentityOrTheTenantAreRefused) {
  const std::vector<Refused> refused = {
      {"SET standard_conforming_strings = off", "may only be set to on"},
      {"SET standard_conforming_strings TO 'off'", "rowguard's own tenant literals"},
      {"SET standard_conforming_strings = false", "backslashes in string literals"},
      {"SET LOCAL standard_conforming_strings = off", "may only be set to on"},
      {"SET SESSION standard_conforming_strings = 0", "may only be set to on"},
      {"SET standard_conforming_strings = on, off", "may only be set to on"},
      {"SET search_path = evil, public", "may only be set to public"},
      {"SET search_path = public, evil", "unqualified names resolve"},
      {"SET search_path TO evil", "may only be set to public"},
      {"SET search_path TO \"Public\"", "may only be set to public"},
      {"SET search_path = 'public, evil'", "may only be set to public"},
      {"SET search_path = pg_temp, public", "may only be set to public"},
      {"SET search_path = ''", "may only be set to public"},
      {"SET LOCAL search_path = evil", "may only be set to public"},
      {"SET SESSION search_path TO evil", "may only be set to public"},
      {"SET SCHEMA 'evil'", "may only be set to public"},
      {"SET ROLE admin", "identity the server checks privileges against"},
      {"SET LOCAL ROLE admin", "identity"},
      {"SET SESSION ROLE admin", "identity"},
      {"RESET ROLE", "identity"},
      {"SET SESSION AUTHORIZATION admin", "identity"},
      {"SET SESSION AUTHORIZATION DEFAULT", "identity"},
      {"RESET SESSION AUTHORIZATION", "identity"},
      {"SET backslash_quote = on", "reads string literals"},
      {"SET escape_string_warning = off", "reads string literals"},
      {"SET rowguard.tenant = '2'", "rowguard.tenant"},
      {"SET LOCAL rowguard.bypass = 'on'", "custom setting"},
      {"RESET rowguard.tenant", "custom setting"},
      {"SET session_replication_role = replica", "triggers and rules"},
      {"SET default_tablespace = x", "DDL"},
      {"SET log_statement = 'none'", "not allowed for tenants"},
      {"SET TRANSACTION SNAPSHOT '00000003-0000001B-1'", "not allowed for tenants"},
      {"RESET ALL", "RESET ALL is not allowed"},
      // debug levels and log send the backend's debug/log lines: transaction ids, other pids
      {"SET LOCAL client_min_messages TO debug1", "transaction ids"},
      {"SET client_min_messages = debug5", "may only be info, notice, warning or error"},
      {"SET client_min_messages = 'LOG'", "rule: transaction_ids"},
      {"SET SESSION client_min_messages = debug", "may only be info"},
      {"SET client_min_messages = notice, debug5", "may only be info"},
  };
  for (const auto& c : refused) {
    for (const std::string tenant : {"1", "2"}) {
      const RewriteResult r = run(c.sql, tenant);
      EXPECT_FALSE(r.allowed) << c.sql;
      EXPECT_NE(r.reason.find(c.reason_part), std::string::npos) << c.sql << ": " << r.reason;
      EXPECT_EQ(r.reason.rfind("rowguard: ", 0), 0u) << r.reason;
    }
  }
}

TEST(SessionSettings, ExactReasons) {
  EXPECT_EQ(run("SET standard_conforming_strings = off").reason,
            "rowguard: SET standard_conforming_strings may only be set to on (the value rowguard requires): off would "
            "change how the server reads backslashes in string literals, rowguard's own tenant literals included "
            "(rule: only session settings that cannot change name resolution, identity, string parsing or the tenant)");
  EXPECT_EQ(run("SET search_path = evil").reason,
            "rowguard: SET search_path may only be set to public, the path rowguard pins for tenant sessions: another "
            "path would change which tables and functions unqualified names resolve to (rule: only session settings "
            "that cannot change name resolution, identity, string parsing or the tenant)");
  EXPECT_EQ(run("SET ROLE admin").reason,
            "rowguard: SET role is not allowed for tenants: it changes the identity the server checks privileges "
            "against (rule: only session settings that cannot change name resolution, identity, string parsing or "
            "the tenant)");
}

// set_config() reaches the same settings as SET: a tenant must not get through it what SET refuses.
// It stays refused as a whole (it takes expressions, and its third argument chooses LOCAL).
TEST(SessionSettings, SetConfigIsRefusedWhateverTheSetting) {
  for (const std::string sql : {
           "SELECT set_config('standard_conforming_strings', 'on', false)",
           "SELECT set_config('standard_conforming_strings', 'off', false)",
           "SELECT pg_catalog.set_config('search_path', 'public', true)",
           "SELECT set_config('search_path', 'evil', false)",
           "SELECT set_config('application_name', 'x', false)",
           "SELECT set_config('rowguard.tenant', '2', false)",
           "SELECT * FROM set_config('role', 'admin', false)",
           "SELECT ('role', 'x', false)::text, set_config(VARIADIC ARRAY['a'])",
       }) {
    const RewriteResult r = run(sql);
    EXPECT_FALSE(r.allowed) << sql;
    EXPECT_NE(r.reason.find("set_config"), std::string::npos) << sql << ": " << r.reason;
  }
}

// The outcome of SET standard_conforming_strings / search_path depends on the value: the
// template cache must not serve the allowed "on" to "off" or the other way round.
TEST(SessionSettings, CachedDecisionsFollowTheValue) {
  RewriteCache cache;
  for (int pass = 0; pass < 2; ++pass) {
    for (const std::string tenant : {"1", "2"}) {
      EXPECT_TRUE(cache.rewrite("SET standard_conforming_strings = on", settings_policy(), tenant)->allowed);
      EXPECT_FALSE(cache.rewrite("SET standard_conforming_strings = off", settings_policy(), tenant)->allowed);
      EXPECT_TRUE(cache.rewrite("SET search_path = 'public'", settings_policy(), tenant)->allowed);
      EXPECT_FALSE(cache.rewrite("SET search_path = 'evil'", settings_policy(), tenant)->allowed);
      EXPECT_FALSE(cache.rewrite("SET search_path = 'pg_temp'", settings_policy(), tenant)->allowed);
      EXPECT_TRUE(cache.rewrite("SET search_path = 'public'", settings_policy(), tenant)->allowed);
    }
  }
}

}  // namespace
}  // namespace rowguard::sqlrewrite
