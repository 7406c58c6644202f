// One tenant's multi-MB statement must not stall the other sessions of its worker: rowguard
// (one worker here) rewrites long statements on its parse pool while the worker keeps serving
// everybody else. Each case starts a long statement on session A without reading its answer,
// and while A's answer has provably not arrived yet, session B on the same worker must be
// answered quickly, again and again.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "tests/adversarial/harness.h"

namespace rowguard::testing::adversarial {
namespace {

using Clock = std::chrono::steady_clock;

// A bystander answer slower than this means it waited for the other session's statement. A
// plain SELECT 1 takes about a millisecond (a few under ASan on two busy cores); before the
// parse pool, a bystander waited for the whole rewrite of A's statement: 1 to 14 s.
constexpr double kBystanderBound = 0.5;

std::string in_list(int n) {
  std::string ids = "101";
  for (int i = 0; i < n; ++i) ids += "," + std::to_string(1000 + i);
  return ids;
}


struct Bystander {
  int answers_while_busy = 0;  // B's answers that arrived while A's answer had not
  double worst = 0;            // the slowest of them, seconds
};

// A has sent its statement (not yet answered). B runs `SELECT 1` and a tenant select until A's
// answer arrives; every answer B gets while A is still busy is timed.
Bystander watch(PGconn* a, Client& b) {
  Bystander out;
  const auto start = Clock::now();
  for (int i = 0;; ++i) {
    if (PQconsumeInput(a) == 0 || !PQisBusy(a)) break;
    const auto q0 = Clock::now();
    QueryResult r = (i % 2 == 0) ? b.exec("SELECT 1") : b.exec("SELECT count(*) FROM customers");
    const double s = std::chrono::duration<double>(Clock::now() - q0).count();
    EXPECT_TRUE(r.ok) << r.message;
    // Counts only when A is still busy after B's answer: B was served while A's statement was
    // in rowguard or in PostgreSQL.
    if (PQconsumeInput(a) == 0 || !PQisBusy(a)) {
      out.worst = std::max(out.worst, s);  // (still a bound: B must not have waited either)
      break;
    }
    out.worst = std::max(out.worst, s);
    ++out.answers_while_busy;
    if (Clock::now() - start > std::chrono::seconds(120)) break;
  }
  return out;
}

// Drains A's results; the last status and the first value of the last rows.
struct Drained {
  bool ok = true;
  std::string message;
  std::string value;
};
Drained drain(PGconn* a) {
  Drained d;
  while (PGresult* res = PQgetResult(a)) {
    const auto st = PQresultStatus(res);
    if (st == PGRES_FATAL_ERROR) {
      d.ok = false;
      d.message = PQresultErrorMessage(res);
    } else if (st == PGRES_TUPLES_OK && PQntuples(res) > 0) {
      d.value = PQgetvalue(res, 0, 0);
    }
    PQclear(res);
  }
  return d;
}

void send_all(PGconn* a, const std::function<int()>& send) {
  ASSERT_EQ(send(), 1) << PQerrorMessage(a);
  while (PQflush(a) == 1) {
  }
}

void expect_bystander_served(const Bystander& b) {
  EXPECT_GE(b.answers_while_busy, 1) << "no bystander answer arrived while the long statement was busy";
  EXPECT_LT(b.worst, kBystanderBound) << "another session on the worker waited " << b.worst << " s";
}

TEST(ParsePool, MultiMegabyteInListDoesNotStallTheWorker) {
  auto a = one_worker().tenant(1);
  auto b = one_worker().tenant(2);
  ASSERT_TRUE(b->alive());
  const std::string sql = "SELECT count(*) FROM customers WHERE id IN (" + in_list(400000) + ",201,301)";  // ~3 MB
  send_all(a->raw(), [&] { return PQsendQuery(a->raw(), sql.c_str()); });
  Bystander by = watch(a->raw(), *b);
  Drained d = drain(a->raw());
  EXPECT_TRUE(d.ok) << d.message;
  EXPECT_EQ(d.value, "1");  // tenant 1's own row only
  expect_bystander_served(by);
  EXPECT_TRUE(one_worker().rowguard().running());
  EXPECT_TRUE(a->alive());
}

TEST(ParsePool, HundredThousandStatementsInOneQueryDoNotStallTheWorker) {
  auto a = one_worker().tenant(1);
  auto b = one_worker().tenant(2);
  ASSERT_TRUE(b->alive());
  const std::string sql = repeat("SELECT 1;", 100000) + "SELECT count(*) FROM customers";
  send_all(a->raw(), [&] { return PQsendQuery(a->raw(), sql.c_str()); });
  Bystander by = watch(a->raw(), *b);
  Drained d = drain(a->raw());
  EXPECT_TRUE(d.ok) << d.message;
  EXPECT_EQ(d.value, "3");
  expect_bystander_served(by);
  EXPECT_TRUE(a->alive());
}

TEST(ParsePool, MultiMegabyteParseDoesNotStallTheWorker) {
  // The extended protocol: the long text arrives in a Parse message.
  auto a = one_worker().tenant(1);
  auto b = one_worker().tenant(2);
  ASSERT_TRUE(b->alive());
  const std::string sql = "SELECT count(*) FROM customers WHERE id IN (" + in_list(400000) + ",201,$1)";
  const char* params[] = {"301"};
  send_all(a->raw(), [&] {
    return PQsendQueryParams(a->raw(), sql.c_str(), 1, nullptr, params, nullptr, nullptr, 0);
  });
  Bystander by = watch(a->raw(), *b);
  Drained d = drain(a->raw());
  EXPECT_TRUE(d.ok) << d.message;
  EXPECT_EQ(d.value, "1");
  expect_bystander_served(by);
  EXPECT_TRUE(a->alive());
}

TEST(ParsePool, MessagesAfterALongStatementKeepTheirOrder) {
  // A pipeline: a long Parse/Bind/Execute, then short ones. The short ones must not overtake it.
  auto a = one_worker().tenant(1);
  PGconn* conn = a->raw();
  ASSERT_EQ(PQenterPipelineMode(conn), 1);
  const std::string big = "SELECT 'big', count(*) FROM customers WHERE id IN (" + in_list(200000) + ")";
  ASSERT_EQ(PQsendQueryParams(conn, big.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0), 1);
  ASSERT_EQ(PQsendQueryParams(conn, "SELECT 'small1'", 0, nullptr, nullptr, nullptr, nullptr, 0), 1);
  ASSERT_EQ(PQsendQueryParams(conn, "SELECT 'small2'", 0, nullptr, nullptr, nullptr, nullptr, 0), 1);
  ASSERT_EQ(PQpipelineSync(conn), 1);
  while (PQflush(conn) == 1) {
  }
  std::vector<std::string> firsts;
  const auto start = Clock::now();
  for (;;) {
    PGresult* res = PQgetResult(conn);
    if (res == nullptr) {  // end of one query's results
      ASSERT_LT(Clock::now() - start, std::chrono::seconds(120));
      continue;
    }
    const auto st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK) {
      firsts.emplace_back(PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    } else if (st != PGRES_PIPELINE_SYNC) {
      ADD_FAILURE() << PQresultErrorMessage(res);
    }
    PQclear(res);
    if (st == PGRES_PIPELINE_SYNC) break;
  }
  ASSERT_EQ(PQexitPipelineMode(conn), 1);
  EXPECT_EQ(firsts, (std::vector<std::string>{"big", "small1", "small2"}));
  EXPECT_TRUE(a->alive());
}

TEST(ParsePool, ClientLeavingWhileItsStatementIsRewrittenIsHarmless) {
  auto b = one_worker().tenant(2);
  ASSERT_TRUE(b->alive());
  const std::string sql = "SELECT count(*) FROM customers WHERE id IN (" + in_list(400000) + ")";
  for (int i = 0; i < 3; ++i) {
    auto a = one_worker().tenant(1);
    send_all(a->raw(), [&] { return PQsendQuery(a->raw(), sql.c_str()); });
    a.reset();  // gone before its statement is answered
    EXPECT_TRUE(b->alive());
  }
  EXPECT_TRUE(one_worker().rowguard().running());
  auto again = one_worker().tenant(1);
  QueryResult r = again->exec("SELECT count(*) FROM customers");
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_EQ(*r.rows[0][0], "3");
}

TEST(ParsePool, ShutdownWhileAStatementIsRewrittenIsClean) {
  OneWorker own;  // a rowguard of its own, stopped here
  auto a = own.tenant(1);
  ASSERT_TRUE(a->alive());
  const std::string sql = "SELECT count(*) FROM customers WHERE id IN (" + in_list(400000) + ")";
  send_all(a->raw(), [&] { return PQsendQuery(a->raw(), sql.c_str()); });
  ASSERT_TRUE(PQconsumeInput(a->raw()) == 1 && PQisBusy(a->raw()));  // not answered yet
  const int code = own.rowguard().stop();  // SIGTERM while the rewrite runs on the pool
  EXPECT_EQ(code, 0) << own.rowguard().log().substr(0, 2000);
  EXPECT_EQ(own.rowguard().log().find("AddressSanitizer"), std::string::npos);
}

}  // namespace
}  // namespace rowguard::testing::adversarial

// After a reload, the first use of a long prepared statement re-checks it under the new policy.
// That re-check is a rewrite of the whole text: it must not run on the worker (red team: a 3 MB
// statement Bound after a SIGHUP held every other session of the worker for 7.5 s).
namespace rowguard::testing::adversarial {
namespace {

TEST(ParsePool, ReCheckOfALongPreparedStatementAfterAReloadDoesNotStallTheWorker) {
  std::string config = example_config_template();
  const std::string proxy = "[proxy]\n";
  config.replace(config.find(proxy), proxy.size(), proxy + "workers = 1\n");
  RowguardProcess rg(config, Env::get().pg(), "info");
  auto a = std::make_unique<Client>(rg.conninfo("t1") + " password=pw1");
  auto b = std::make_unique<Client>(rg.conninfo("t2") + " password=pw2");
  std::string list = "101";
  for (int i = 0; i < 150000; ++i) list += ",(" + std::to_string(i) + "+1000)";
  const std::string sql = "SELECT count(*) FROM customers WHERE id IN (" + list + ")";
  PGresult* prep = PQprepare(a->raw(), "big", sql.c_str(), 0, nullptr);
  ASSERT_EQ(PQresultStatus(prep), PGRES_COMMAND_OK) << PQresultErrorMessage(prep);
  PQclear(prep);
  // A reload that changes nothing of `big` (a comment) still makes it "prepared under an older
  // policy" to be re-checked at its next use.
  ASSERT_TRUE(reload_policy(rg, read_text_file(rg.config_path()) + "\n# reloaded\n"));
  ASSERT_TRUE(b->alive());
  ASSERT_EQ(PQsendQueryPrepared(a->raw(), "big", 0, nullptr, nullptr, nullptr, 0), 1);
  while (PQflush(a->raw()) == 1) {
  }
  Bystander by = watch(a->raw(), *b);
  Drained d = drain(a->raw());
  EXPECT_TRUE(d.ok) << d.message;
  EXPECT_EQ(d.value, "1");
  expect_bystander_served(by);
}

}  // namespace
}  // namespace rowguard::testing::adversarial
