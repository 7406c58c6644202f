// Advisory locks per tenant (sqlrewrite/advisory_locks.h), on a real PostgreSQL through
// rowguard: the same key taken by two tenants never blocks, no tenant can take, test or release
// another tenant's lock (not even by computing its mapped key), locks still exclude within a
// tenant, and the job-queue pattern (FOR UPDATE SKIP LOCKED + pg_try_advisory_xact_lock) works.
#include <gtest/gtest.h>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

std::string one_value(const QueryResult& r) {
  if (!r.ok || r.rows.size() != 1 || r.rows[0].size() != 1 || !r.rows[0][0]) return "<" + r.sqlstate + " " + r.message + ">";
  return *r.rows[0][0];
}

// The upstream key rowguard gives tenant `tenant`'s bigint key `key` (advisory_locks.h), computed
// straight on PostgreSQL.
std::string mapped_key(Client& su, const std::string& tenant, const std::string& key) {
  return one_value(su.exec("SELECT ('x' || left(encode(sha256(convert_to('" + tenant +
                           "', 'UTF8') || decode('00', 'hex') || convert_to('a:' || to_hex(" + key +
                           "::int8), 'UTF8')), 'hex'), 16))::bit(64)::int8"));
}

// The advisory locks PostgreSQL holds for the backend of `c` (as the bigint key each stands for).
std::string held_keys(Client& su, Client& c) {
  const std::string pid = one_value(c.exec("SELECT pg_backend_pid()"));  // rowguard gives clients its own key
  QueryResult r = su.exec(
      "SELECT coalesce(string_agg(((classid::int8 << 32) | objid::int8)::text || ':' || objsubid, ','), '') "
      "FROM pg_locks WHERE locktype = 'advisory' AND pid = " + pid);
  return one_value(r);
}

// pg_locks shows the bigint key's halves as classid / objid and objsubid 1 (held_keys joins them).
std::string lock_entry(const std::string& key) { return key + ":1"; }

TEST(AdversarialAdvisoryLocks, SameKeyTwoTenantsNeverBlocks) {
  auto su = Env::get().direct_super();
  auto t1 = Env::get().tenant(1);
  auto t1b = Env::get().tenant(1);
  auto t2 = Env::get().tenant(2);
  ASSERT_TRUE(t2->exec("SET lock_timeout = '5s'").ok);  // a wrong mapping fails instead of hanging

  EXPECT_EQ(one_value(t1->exec("SELECT pg_advisory_lock(42)")), "");
  // Upstream, tenant 1 holds the mapped key, not 42.
  const std::string k1 = mapped_key(*su, "1", "42");
  EXPECT_EQ(held_keys(*su, *t1), lock_entry(k1));
  // Within tenant 1 the lock excludes (also through an untyped parameter, and the string '42').
  EXPECT_EQ(one_value(t1b->exec("SELECT pg_try_advisory_lock(42)")), "f");
  EXPECT_EQ(one_value(t1b->exec_params("SELECT pg_try_advisory_lock($1)", {"42"})), "f");
  EXPECT_EQ(one_value(t1b->exec("SELECT pg_try_advisory_lock('42')")), "f");
  EXPECT_EQ(one_value(t1b->exec("SELECT pg_try_advisory_lock_shared(42)")), "f");
  // Tenant 2's 42 is another lock: taken at once, blocking or not.
  EXPECT_EQ(one_value(t2->exec("SELECT pg_try_advisory_lock(42)")), "t");
  QueryResult blocking = t2->exec("SELECT pg_advisory_lock(42)");
  EXPECT_TRUE(blocking.ok) << blocking.sqlstate << " " << blocking.message;
  EXPECT_EQ(one_value(t2->exec("SELECT pg_advisory_unlock(42)")), "t");
  EXPECT_EQ(one_value(t2->exec("SELECT pg_advisory_unlock(42)")), "t");
  EXPECT_EQ(one_value(t2->exec("SELECT pg_advisory_unlock(42)")), "f");  // none left of its own
  // Tenant 2 cannot release tenant 1's lock: not by its key, not by the mapped key.
  EXPECT_EQ(one_value(t2->exec("SELECT pg_advisory_unlock(" + k1 + ")")), "f");
  EXPECT_EQ(one_value(t2->exec("SELECT pg_advisory_unlock_all()")), "");
  EXPECT_EQ(held_keys(*su, *t1), lock_entry(k1));
  // Nor take or test it through the mapped key: that is another key of tenant 2's space.
  EXPECT_EQ(one_value(t2->exec("SELECT pg_try_advisory_lock(" + k1 + ")")), "t");
  EXPECT_EQ(held_keys(*su, *t2), lock_entry(mapped_key(*su, "2", k1)));
  EXPECT_EQ(one_value(t2->exec("SELECT pg_advisory_unlock(" + k1 + ")")), "t");
  // Nor see it: pg_locks stays refused.
  EXPECT_TRUE(t2->exec("SELECT * FROM pg_locks").refused());
  EXPECT_TRUE(t2->exec("SELECT objid FROM pg_catalog.pg_locks WHERE locktype = 'advisory'").refused());

  EXPECT_EQ(one_value(t1->exec("SELECT pg_advisory_unlock(42)")), "t");
  EXPECT_EQ(one_value(t1b->exec("SELECT pg_try_advisory_lock(42)")), "t");
  EXPECT_EQ(one_value(t1b->exec("SELECT pg_advisory_unlock_all()")), "");
  EXPECT_EQ(held_keys(*su, *t1b), "");
}

TEST(AdversarialAdvisoryLocks, TwoKeyAndTransactionFormsArePerTenant) {
  auto t1 = Env::get().tenant(1);
  auto t1b = Env::get().tenant(1);
  auto t2 = Env::get().tenant(2);
  ASSERT_TRUE(t1->exec("BEGIN").ok);
  EXPECT_EQ(one_value(t1->exec("SELECT pg_advisory_xact_lock(7, 8)")), "");
  EXPECT_EQ(one_value(t1b->exec("SELECT pg_try_advisory_xact_lock(7, 8)")), "f");
  EXPECT_EQ(one_value(t1b->exec_params("SELECT pg_try_advisory_lock($1, $2)", {"7", "8"})), "f");
  // The two-key (7, 8) is not the bigint key 7 << 32 | 8 (the forms have separate key spaces).
  EXPECT_EQ(one_value(t1b->exec("SELECT pg_try_advisory_xact_lock(30064771080)")), "t");
  EXPECT_EQ(one_value(t2->exec("SELECT pg_try_advisory_xact_lock(7, 8)")), "t");
  EXPECT_EQ(one_value(t2->exec("SELECT pg_try_advisory_lock_shared(7, 8)")), "t");
  EXPECT_EQ(one_value(t2->exec("SELECT pg_advisory_unlock_shared(7, 8)")), "t");
  EXPECT_EQ(one_value(t2->exec("SELECT pg_advisory_unlock(7, 8)")), "f");
  ASSERT_TRUE(t1->exec("COMMIT").ok);
  EXPECT_EQ(one_value(t1b->exec("SELECT pg_try_advisory_xact_lock(7, 8)")), "t");
  // NULL keys: no lock, NULL, as PostgreSQL.
  EXPECT_EQ(one_value(t1->exec("SELECT pg_try_advisory_lock(NULL) IS NULL")), "t");
  // Shared locks of one tenant share; an exclusive one of the same tenant waits.
  EXPECT_EQ(one_value(t1->exec("SELECT pg_try_advisory_lock_shared(9)")), "t");
  EXPECT_EQ(one_value(t1b->exec("SELECT pg_try_advisory_lock_shared(9)")), "t");
  EXPECT_EQ(one_value(t1b->exec("SELECT pg_try_advisory_lock(9)")), "f");
  EXPECT_EQ(one_value(t2->exec("SELECT pg_try_advisory_lock(9)")), "t");
  for (auto* c : {t1.get(), t1b.get(), t2.get()}) EXPECT_EQ(one_value(c->exec("SELECT pg_advisory_unlock_all()")), "");
  // Refused forms leave the connection usable.
  EXPECT_TRUE(t1->exec("SELECT pg_advisory_lock(key => 1)").refused());
  EXPECT_TRUE(t1->exec("SELECT (1::int8).pg_advisory_lock").refused());
  EXPECT_TRUE(t1->alive());
}

// Job queue: workers take the next row with FOR UPDATE SKIP LOCKED and an advisory lock on its
// id (Que / GoodJob style). Tenants' workers never skip or wait for each other's ids; a second
// worker of the same tenant gets the next row and cannot take the first one's id.
TEST(AdversarialAdvisoryLocks, JobQueuePatternPerTenant) {
  auto w1 = Env::get().tenant(1);
  auto w1b = Env::get().tenant(1);
  auto w2 = Env::get().tenant(2);
  const std::string next = "SELECT id FROM orders ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED";
  for (auto* c : {w1.get(), w1b.get(), w2.get()}) ASSERT_TRUE(c->exec("BEGIN").ok);
  EXPECT_EQ(one_value(w1->exec(next)), "101");
  EXPECT_EQ(one_value(w1->exec("SELECT pg_try_advisory_xact_lock(101)")), "t");
  EXPECT_EQ(one_value(w1b->exec(next)), "102");
  EXPECT_EQ(one_value(w1b->exec("SELECT pg_try_advisory_xact_lock(102)")), "t");
  EXPECT_EQ(one_value(w1b->exec("SELECT pg_try_advisory_xact_lock(101)")), "f");
  EXPECT_EQ(one_value(w2->exec(next)), "201");
  EXPECT_EQ(one_value(w2->exec("SELECT pg_try_advisory_xact_lock(201)")), "t");
  // Tenant 2's advisory lock on tenant 1's job id is its own key: free.
  EXPECT_EQ(one_value(w2->exec("SELECT pg_try_advisory_xact_lock(101)")), "t");
  // Both in one statement.
  const std::string take = "SELECT id FROM orders WHERE id = $1 AND pg_try_advisory_xact_lock(id) FOR UPDATE SKIP LOCKED";
  EXPECT_EQ(one_value(w1->exec_params(take, {"103"})), "103");
  QueryResult none = w1b->exec_params(take, {"103"});
  EXPECT_TRUE(none.ok && none.rows.empty()) << none.sqlstate << " " << none.message;
  EXPECT_EQ(one_value(w2->exec_params(take, {"203"})), "203");
  QueryResult other = w2->exec_params(take, {"103"});
  EXPECT_TRUE(no_leak(other));
  EXPECT_TRUE(other.ok && other.rows.empty());
  for (auto* c : {w1.get(), w1b.get(), w2.get()}) ASSERT_TRUE(c->exec("ROLLBACK").ok);
  EXPECT_EQ(one_value(w1b->exec("SELECT pg_try_advisory_xact_lock(101)")), "t");
}

}  // namespace
}  // namespace rowguard::testing::adversarial
