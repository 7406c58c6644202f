// Unit tests for the parse pool (proxy/net/parse_pool.h): its result is exactly the worker's
// (a cache rewrite), it completes on the awaiting worker's thread, a job whose worker has
// stopped is dropped without harm, and the pool counts its jobs.
#include "proxy/net/parse_pool.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "policy/policy.h"
#include "proxy/net/metrics.h"
#include "sqlrewrite/rewrite_cache.h"
#include "tests/support/test_policy.h"

namespace rowguard::net {
namespace {

namespace asio = boost::asio;

const std::string kPolicyToml = test_support::test_policy_toml();

policy::PolicyPtr test_policy() {
  static const policy::PolicyPtr p = policy::parse_policy(kPolicyToml, "parse_pool_test.toml");
  return p;
}

std::string in_list(int n) {
  std::string sql = "SELECT * FROM customers WHERE id IN (1";
  for (int i = 0; i < n; ++i) sql += "," + std::to_string(1000 + i);
  return sql + ")";
}

bool same(const sqlrewrite::RewriteResult& a, const sqlrewrite::RewriteResult& b) {
  return a.allowed == b.allowed && a.sql == b.sql && a.reason == b.reason && a.kinds == b.kinds &&
         a.tenant_params == b.tenant_params && a.prepared.size() == b.prepared.size() &&
         a.copy_in.has_value() == b.copy_in.has_value();
}

// Runs one async_rewrite from a coroutine on `ctx` (a stand-in for a worker) and returns the
// result and the thread its completion ran on.
struct Outcome {
  std::optional<sqlrewrite::RewriteResult> result;
  std::thread::id completed_on;
};
Outcome run_one(ParsePool& pool, asio::io_context& ctx, std::string sql, const std::string& tenant) {
  Outcome out;
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        std::string text = sql;
        std::string t = tenant;
        out.result = co_await pool.async_rewrite(std::move(text), test_policy(), std::move(t), asio::use_awaitable);
        out.completed_on = std::this_thread::get_id();
      },
      asio::detached);
  ctx.run();
  ctx.restart();
  return out;
}

TEST(ParsePool, ResultIsTheWorkersRewriteAndCompletesOnTheWorker) {
  Metrics metrics;
  ParsePool pool(2, metrics);
  asio::io_context ctx;
  sqlrewrite::RewriteCache worker_cache;
  for (const std::string& sql : {in_list(2000), std::string("SELECT * FROM orders; SELECT 1"),
                                 std::string("DELETE FROM customers WHERE id = $1"),
                                 std::string("SELECT * FROM pg_authid"), std::string("PREPARE p AS SELECT * FROM orders")}) {
    for (const std::string tenant : {"1", "o'brien"}) {
      Outcome o = run_one(pool, ctx, sql, tenant);
      ASSERT_TRUE(o.result.has_value()) << sql;
      EXPECT_EQ(o.completed_on, std::this_thread::get_id()) << "the completion must run on the worker";
      const sqlrewrite::RewriteHandle expected = worker_cache.rewrite(sql, *test_policy(), tenant);
      EXPECT_TRUE(same(*o.result, *expected)) << sql.substr(0, 80) << " / " << tenant << ": " << o.result->sql.substr(0, 200)
                                             << " vs " << expected->sql.substr(0, 200);
    }
  }
  EXPECT_EQ(metrics.parse_offloaded.load(), 10u);
  EXPECT_EQ(pool.depth(), 0);
  EXPECT_EQ(metrics.parse_pool_depth.load(), 0);
}

TEST(ParsePool, AJobWhoseWorkerStoppedIsDroppedWithoutHarm) {
  Metrics metrics;
  bool completed = false;
  {
    asio::io_context ctx;
    {
      ParsePool pool(1, metrics);
      asio::co_spawn(
          ctx,
          [&]() -> asio::awaitable<void> {
            std::string text = in_list(50000);
            std::string t = "1";
            auto r = co_await pool.async_rewrite(std::move(text), test_policy(), std::move(t), asio::use_awaitable);
            completed = r.allowed;
          },
          asio::detached);
      ctx.run_one();  // starts the coroutine: the job is on the pool
      ctx.stop();     // the worker stops (shutdown) before the job is done
    }                 // the pool joins: the job finishes and posts to the stopped worker
  }                   // the worker goes, its queued completion with it
  EXPECT_FALSE(completed);
  EXPECT_EQ(metrics.parse_pool_depth.load(), 0);
}

// One tenant's many queued statements do not hold back another tenant's: a free thread takes the
// next tenant's job in turn.
TEST(ParsePool, TenantsTakeTurns) {
  Metrics metrics;
  std::mutex mu;
  std::vector<std::string> order;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> started;
  {
    ParsePool pool(1, metrics);
    pool.submit("flood", [&] {
      started.set_value();
      released.wait();  // the one thread is busy while the queues fill
    });
    started.get_future().wait();
    auto record = [&](std::string name) {
      return [&, name] {
        std::lock_guard lock(mu);
        order.push_back(name);
      };
    };
    for (int i = 1; i <= 3; ++i) pool.submit("flood", record("flood" + std::to_string(i)));
    pool.submit("other", record("other1"));
    pool.submit("third", record("third1"));
    release.set_value();
  }  // the pool joins
  const std::vector<std::string> want = {"other1", "third1", "flood1", "flood2", "flood3"};
  EXPECT_EQ(order, want) << "after the running job of 'flood', each waiting tenant comes in turn";
}

TEST(ParsePool, LimitsKeysAndMetrics) {
  const std::string base = kPolicyToml;
  EXPECT_EQ(test_policy()->limits.offload_parse_bytes, 2048u);
  EXPECT_EQ(test_policy()->limits.parse_threads, 2);
  policy::PolicyPtr p = policy::parse_policy(base + "\n[limits]\noffload_parse_bytes = 65536\nparse_threads = 4\n", "t.toml");
  EXPECT_EQ(p->limits.offload_parse_bytes, 65536u);
  EXPECT_EQ(p->limits.parse_threads, 4);
  EXPECT_THROW(policy::parse_policy(base + "\n[limits]\nparse_threads = 0\n", "t.toml"), std::exception);
  EXPECT_THROW(policy::parse_policy(base + "\n[limits]\noffload_parse_bytes = -1\n", "t.toml"), std::exception);

  Metrics metrics;
  metrics.parse_offloaded = 3;
  metrics.observe_parse_pool(2500);  // 2.5 ms
  const std::string text = metrics.render(0, 0, 0);
  EXPECT_NE(text.find("rowguard_parse_pool_statements_total 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("rowguard_parse_pool_depth 0\n"), std::string::npos);
  EXPECT_NE(text.find("rowguard_parse_pool_seconds_bucket{le=\"0.005\"} 1\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace rowguard::net
