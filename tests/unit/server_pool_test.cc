// The server pool's state machine (proxy/pool/server_pool.h), without sockets: scripted
// scenarios for each rule, then a seeded random walk checked against invariants and a model of
// who holds which connection.
#include "proxy/pool/server_pool.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

namespace rowguard::pool {
namespace {

using namespace std::chrono_literals;
using Kind = Action::Kind;

class ServerPoolTest : public ::testing::Test {
 protected:
  Clock::time_point t0 = Clock::time_point{} + 1000h;
  Clock::time_point now = t0;
  std::vector<Action> out;

  std::vector<Action> take() {
    std::vector<Action> a;
    a.swap(out);
    return a;
  }
  static std::vector<Action> of(Kind k, const std::vector<Action>& actions) {
    std::vector<Action> r;
    for (const Action& a : actions)
      if (a.kind == k) r.push_back(a);
    return r;
  }
  // Opens one connection for a waiter and returns its id (the grant must follow).
  ServerId open_one(ServerPool& pool, WaiterId* waiter_out = nullptr) {
    WaiterId w = pool.acquire(now, out);
    auto a = take();
    EXPECT_EQ(a.size(), 1u);
    EXPECT_EQ(a.at(0).kind, Kind::kOpen);
    pool.opened(a.at(0).server, now, out);
    auto g = take();
    EXPECT_EQ(g, (std::vector<Action>{{Kind::kGrant, a.at(0).server, w}}));
    if (waiter_out) *waiter_out = w;
    return a.at(0).server;
  }
};

TEST_F(ServerPoolTest, FirstClientOpensAConnectionAndGetsIt) {
  ServerPool pool({.size = 2});
  WaiterId w = pool.acquire(now, out);
  auto a = take();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, Kind::kOpen);
  EXPECT_EQ(pool.stats(now).opening, 1u);
  EXPECT_EQ(pool.stats(now).waiting, 1u);
  pool.opened(a[0].server, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, a[0].server, w}}));
  EXPECT_EQ(pool.stats(now).lent, 1u);
  EXPECT_EQ(pool.stats(now).waiting, 0u);
}

TEST_F(ServerPoolTest, AReleasedConnectionIsReusedWithoutOpening) {
  ServerPool pool({.size = 2});
  ServerId s = open_one(pool);
  pool.release(s, true, now, out);
  EXPECT_TRUE(take().empty());
  WaiterId w = pool.acquire(now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, s, w}}));
  EXPECT_EQ(pool.stats(now).opened, 1u);
}

TEST_F(ServerPoolTest, IdleConnectionsAreReusedLastInFirstOut) {
  ServerPool pool({.size = 3});
  ServerId a = open_one(pool);
  ServerId b = open_one(pool);
  pool.release(a, true, now, out);
  pool.release(b, true, now, out);
  take();
  WaiterId w = pool.acquire(now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, b, w}}));
}

TEST_F(ServerPoolTest, NeverMoreThanSizeConnectionsAndWaitersAreServedInArrivalOrder) {
  ServerPool pool({.size = 2});
  ServerId a = open_one(pool);
  ServerId b = open_one(pool);
  WaiterId w1 = pool.acquire(now, out);
  WaiterId w2 = pool.acquire(now, out);
  WaiterId w3 = pool.acquire(now, out);
  EXPECT_TRUE(take().empty()) << "size 2 reached: no open, no grant";
  EXPECT_EQ(pool.stats(now).waiting, 3u);
  pool.release(b, true, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, b, w1}}));
  pool.release(a, true, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, a, w2}}));
  pool.release(a, true, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, a, w3}}));
}

TEST_F(ServerPoolTest, AWaiterPastQueryWaitTimeoutIsToldAndTheOthersKeepWaiting) {
  ServerPool pool({.size = 1, .query_wait_timeout = 5s});
  ServerId s = open_one(pool);
  WaiterId w1 = pool.acquire(now, out);
  now += 3s;
  WaiterId w2 = pool.acquire(now, out);
  ASSERT_TRUE(pool.next_deadline());
  EXPECT_EQ(*pool.next_deadline(), t0 + 5s);
  now = t0 + 5s;
  pool.tick(now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kTimedOut, 0, w1}}));
  EXPECT_EQ(pool.stats(now).timed_out, 1u);
  EXPECT_EQ(pool.stats(now).longest_wait, 2s);
  pool.release(s, true, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, s, w2}}));
}

TEST_F(ServerPoolTest, ZeroQueryWaitTimeoutWaitsForever) {
  ServerPool pool({.size = 1, .query_wait_timeout = 0s});
  open_one(pool);
  pool.acquire(now, out);
  EXPECT_FALSE(pool.next_deadline());
  now += 1000h;
  pool.tick(now, out);
  EXPECT_TRUE(of(Kind::kTimedOut, take()).empty());
}

TEST_F(ServerPoolTest, AConnectionInDoubtIsClosedAndItsPlaceRefilledForAWaiter) {
  ServerPool pool({.size = 1});
  ServerId s = open_one(pool);
  WaiterId w = pool.acquire(now, out);
  pool.release(s, false, now, out);
  auto a = take();
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0], (Action{Kind::kClose, s, 0}));
  EXPECT_EQ(a[1].kind, Kind::kOpen);
  EXPECT_NE(a[1].server, s) << "a closed connection's id is never reused";
  pool.opened(a[1].server, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, a[1].server, w}}));
}

TEST_F(ServerPoolTest, AConnectionPastItsLifetimeIsClosedWhenReleasedNeverWhileLent) {
  ServerPool pool({.size = 2, .server_lifetime = 60s});
  ServerId s = open_one(pool);
  now += 61s;
  pool.tick(now, out);
  EXPECT_TRUE(of(Kind::kClose, take()).empty()) << "lent: not closed";
  pool.release(s, true, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kClose, s, 0}}));
  EXPECT_EQ(pool.stats(now).idle, 0u);
}

TEST_F(ServerPoolTest, AnIdleConnectionPastItsLifetimeIsClosedByTick) {
  ServerPool pool({.size = 2, .server_lifetime = 60s});
  ServerId s = open_one(pool);
  now += 10s;
  pool.release(s, true, now, out);
  ASSERT_TRUE(pool.next_deadline());
  EXPECT_EQ(*pool.next_deadline(), t0 + 60s);
  now = t0 + 60s;
  pool.tick(now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kClose, s, 0}}));
}

TEST_F(ServerPoolTest, AnIdleConnectionPastItsLifetimeIsNotLentEvenBeforeTick) {
  ServerPool pool({.size = 2, .server_lifetime = 60s});
  ServerId s = open_one(pool);
  pool.release(s, true, now, out);
  now += 61s;
  WaiterId w = pool.acquire(now, out);
  auto a = take();
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0], (Action{Kind::kClose, s, 0}));
  EXPECT_EQ(a[1].kind, Kind::kOpen);
  pool.opened(a[1].server, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, a[1].server, w}}));
}

TEST_F(ServerPoolTest, IdleTimeoutClosesLeastRecentlyUsedFirstDownToMinSize) {
  ServerPool pool({.size = 3, .min_size = 1, .server_idle_timeout = 30s, .server_lifetime = 0s});
  pool.tick(now, out);
  auto opens = take();
  ASSERT_EQ(opens.size(), 1u) << "min_size is opened without any client";
  pool.opened(opens[0].server, now, out);
  ServerId m = opens[0].server;
  WaiterId w1 = pool.acquire(now, out);
  WaiterId w2 = pool.acquire(now, out);
  auto a = take();
  ASSERT_EQ(a[0], (Action{Kind::kGrant, m, w1}));
  ASSERT_EQ(a[1].kind, Kind::kOpen);
  pool.opened(a[1].server, now, out);
  ASSERT_EQ(take(), (std::vector<Action>{{Kind::kGrant, a[1].server, w2}}));
  ServerId n = a[1].server;
  pool.release(m, true, now, out);
  now += 10s;
  pool.release(n, true, now, out);
  now = t0 + 30s;
  pool.tick(now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kClose, m, 0}})) << "the least recently used goes first";
  now = t0 + 100s;
  pool.tick(now, out);
  EXPECT_TRUE(take().empty()) << "min_size 1 stays open";
  EXPECT_EQ(pool.stats(now).idle, 1u);
}

TEST_F(ServerPoolTest, AFailedOpenWithNothingElseFailsTheWaitersAndRetriesLater) {
  ServerPool pool({.size = 2, .open_retry = 1s});
  WaiterId w1 = pool.acquire(now, out);
  auto a = take();
  ASSERT_EQ(a.size(), 1u);
  pool.open_failed(a[0].server, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kFailed, 0, w1}}));
  WaiterId w2 = pool.acquire(now + 100ms, out);
  EXPECT_TRUE(take().empty()) << "no open before open_retry";
  ASSERT_TRUE(pool.next_deadline());
  now += 1s;
  pool.tick(now, out);
  auto b = take();
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].kind, Kind::kOpen);
  pool.opened(b[0].server, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, b[0].server, w2}}));
}

TEST_F(ServerPoolTest, AFailedOpenWhileAnotherConnectionIsLentKeepsTheWaiterForTheRelease) {
  ServerPool pool({.size = 2});
  ServerId s = open_one(pool);
  WaiterId w = pool.acquire(now, out);
  auto a = take();
  ASSERT_EQ(a.size(), 1u);
  pool.open_failed(a[0].server, now, out);
  EXPECT_TRUE(take().empty());
  pool.release(s, true, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, s, w}}));
}

TEST_F(ServerPoolTest, ACancelledWaiterIsSkipped) {
  ServerPool pool({.size = 1});
  ServerId s = open_one(pool);
  WaiterId w1 = pool.acquire(now, out);
  WaiterId w2 = pool.acquire(now, out);
  pool.cancel(w1, now, out);
  pool.release(s, true, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, s, w2}}));
}

TEST_F(ServerPoolTest, ALostIdleConnectionIsForgottenAndALostLentOneFreesItsPlace) {
  ServerPool pool({.size = 1});
  ServerId s = open_one(pool);
  WaiterId w = pool.acquire(now, out);
  pool.lost(s, now, out);
  auto a = take();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, Kind::kOpen);
  pool.opened(a[0].server, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, a[0].server, w}}));
  pool.release(a[0].server, true, now, out);
  pool.lost(a[0].server, now, out);
  EXPECT_EQ(pool.stats(now).idle, 0u);
  EXPECT_TRUE(take().empty());
}

TEST_F(ServerPoolTest, ReleasingAnUnknownOrIdleConnectionChangesNothing) {
  ServerPool pool({.size = 1});
  ServerId s = open_one(pool);
  pool.release(s, true, now, out);
  pool.release(s, true, now, out);  // twice: ignored
  pool.release(999, true, now, out);
  EXPECT_TRUE(take().empty());
  EXPECT_EQ(pool.stats(now).idle, 1u);
  EXPECT_EQ(pool.stats(now).lent, 0u);
}

TEST_F(ServerPoolTest, ShrinkingTheSizeClosesIdleConnectionsNowAndLentOnesOnRelease) {
  ServerPool pool({.size = 3});
  ServerId a = open_one(pool);
  ServerId b = open_one(pool);
  ServerId c = open_one(pool);
  pool.release(a, true, now, out);
  pool.release(b, true, now, out);
  take();
  pool.set_limits({.size = 1}, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kClose, a, 0}, {Kind::kClose, b, 0}}));
  pool.release(c, true, now, out);
  EXPECT_TRUE(take().empty()) << "one connection is within size 1";
  EXPECT_EQ(pool.stats(now).idle, 1u);
}

// A seeded random walk over every operation. After each step: the pool's counts match a model
// of which connections exist and who holds them; no connection is lent to two clients; size is
// never exceeded; a waiter is granted, failed or timed out at most once; grants go in arrival
// order (of the waiters still waiting).
TEST_F(ServerPoolTest, RandomWalkKeepsEveryInvariant) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const size_t size = 1 + rng() % 4;
    PoolLimits limits{.size = size,
                      .min_size = rng() % (size + 1),
                      .query_wait_timeout = std::chrono::seconds(1 + rng() % 5),
                      .server_idle_timeout = std::chrono::seconds(rng() % 10),
                      .server_lifetime = std::chrono::seconds(rng() % 30),
                      .open_retry = 1s};
    ServerPool pool(limits);
    now = t0;
    std::set<ServerId> opening, idle;
    std::map<ServerId, WaiterId> lent;
    std::vector<WaiterId> waiting;  // arrival order
    std::set<WaiterId> done;
    std::map<ServerId, Clock::time_point> born;
    auto apply = [&](const std::vector<Action>& actions) {
      for (const Action& a : actions) {
        switch (a.kind) {
          case Kind::kOpen:
            ASSERT_TRUE(!opening.count(a.server) && !idle.count(a.server) && !lent.count(a.server));
            opening.insert(a.server);
            break;
          case Kind::kClose:
            ASSERT_TRUE(idle.count(a.server)) << "only idle (or just released) connections are closed";
            idle.erase(a.server);
            break;
          case Kind::kGrant: {
            ASSERT_TRUE(idle.count(a.server)) << "granted " << a.server << " is not idle";
            if (limits.server_lifetime > Duration::zero()) {
              ASSERT_LT(now - born.at(a.server), limits.server_lifetime) << "granted past its lifetime";
            }
            ASSERT_FALSE(waiting.empty());
            ASSERT_EQ(waiting.front(), a.waiter) << "grants go to the oldest waiter";
            idle.erase(a.server);
            lent[a.server] = a.waiter;
            waiting.erase(waiting.begin());
            ASSERT_TRUE(done.insert(a.waiter).second);
            break;
          }
          case Kind::kTimedOut:
          case Kind::kFailed: {
            auto it = std::find(waiting.begin(), waiting.end(), a.waiter);
            ASSERT_NE(it, waiting.end());
            waiting.erase(it);
            ASSERT_TRUE(done.insert(a.waiter).second);
            break;
          }
        }
      }
    };
    // A release or an open puts the connection in `idle` first: the pool may grant or close it
    // in the same call.
    for (int step = 0; step < 3000; ++step) {
      now += std::chrono::milliseconds(rng() % 700);
      std::vector<Action> actions;
      switch (rng() % 7) {
        case 0:
        case 1: waiting.push_back(pool.acquire(now, actions)); break;
        case 2:
          if (!lent.empty()) {
            auto it = std::next(lent.begin(), static_cast<long>(rng() % lent.size()));
            ServerId s = it->first;
            lent.erase(it);
            bool reusable = rng() % 4 != 0;
            idle.insert(s);
            pool.release(s, reusable, now, actions);
          }
          break;
        case 3:
          if (!opening.empty()) {
            ServerId s = *std::next(opening.begin(), static_cast<long>(rng() % opening.size()));
            opening.erase(s);
            if (rng() % 5 == 0) {
              pool.open_failed(s, now, actions);
            } else {
              idle.insert(s);
              born[s] = now;
              pool.opened(s, now, actions);
            }
          }
          break;
        case 4:
          if (!waiting.empty()) {
            WaiterId w = waiting[rng() % waiting.size()];
            waiting.erase(std::find(waiting.begin(), waiting.end(), w));
            done.insert(w);
            pool.cancel(w, now, actions);
          }
          break;
        case 5:
          if (!idle.empty() && rng() % 3 == 0) {
            ServerId s = *std::next(idle.begin(), static_cast<long>(rng() % idle.size()));
            idle.erase(s);
            pool.lost(s, now, actions);
          }
          break;
        default: pool.tick(now, actions); break;
      }
      apply(actions);
      if (HasFatalFailure()) return;
      PoolStats st = pool.stats(now);
      ASSERT_EQ(st.opening, opening.size()) << "step " << step;
      ASSERT_EQ(st.idle, idle.size()) << "step " << step;
      ASSERT_EQ(st.lent, lent.size()) << "step " << step;
      ASSERT_EQ(st.waiting, waiting.size()) << "step " << step;
      ASSERT_LE(opening.size() + idle.size() + lent.size(), size) << "step " << step;
      // Nobody waits while a connection sits idle (unless it is about to be closed by tick).
      if (!waiting.empty()) {
        ASSERT_TRUE(idle.empty()) << "step " << step;
      }
    }
  }
}

// ---- a tenant's share (max_tenant_share) --------------------------------------------------------

TEST_F(ServerPoolTest, TheTenantCapIsAFractionOfTheSizeAlwaysLeavingOneForTheOthers) {
  auto cap = [](size_t size, double share) {
    return ServerPool(PoolLimits{.size = size, .max_tenant_share = share}).tenant_cap();
  };
  EXPECT_EQ(cap(20, 0.75), 15u);
  EXPECT_EQ(cap(2, 0.75), 1u);
  EXPECT_EQ(cap(3, 0.75), 2u);
  EXPECT_EQ(cap(4, 0.5), 2u);
  EXPECT_EQ(cap(10, 0.01), 1u) << "at least one";
  EXPECT_EQ(cap(10, 0.99), 9u) << "below 1: never every connection";
  EXPECT_EQ(cap(10, 1.0), 10u) << "1: no cap";
  EXPECT_EQ(cap(1, 0.5), 1u) << "a pool of one cannot be shared out";
  EXPECT_EQ(ServerPool(PoolLimits{}).tenant_cap(), 15u) << "default 0.75 of 20";
}

TEST_F(ServerPoolTest, ATenantAtItsShareWaitsWhileAnotherTenantIsServedFromTheIdleConnection) {
  ServerPool pool({.size = 2, .max_tenant_share = 0.5});
  // Tenant a holds one connection (its share); a second connection sits idle.
  WaiterId a1 = pool.acquire(now, out, "a");
  auto opens = of(Kind::kOpen, take());
  ASSERT_EQ(opens.size(), 1u);
  pool.opened(opens[0].server, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, opens[0].server, a1}}));
  WaiterId b0 = pool.acquire(now, out, "b");
  auto o2 = of(Kind::kOpen, take());
  ASSERT_EQ(o2.size(), 1u);
  pool.opened(o2[0].server, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, o2[0].server, b0}}));
  pool.release(o2[0].server, true, now, out);
  EXPECT_TRUE(take().empty());
  // a's second client is at a's share: it waits although a connection is idle, and nothing is
  // opened for it (the pool is full anyway).
  WaiterId a2 = pool.acquire(now, out, "a");
  EXPECT_TRUE(take().empty());
  EXPECT_EQ(pool.stats(now).waiting, 1u);
  EXPECT_EQ(pool.stats(now).waiting_at_share, 1u);
  // b, arriving later, is served at once: the capped waiter is skipped.
  WaiterId b1 = pool.acquire(now, out, "b");
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, o2[0].server, b1}}));
  // a's first client gives its connection back: a is under its share, its waiter gets it.
  pool.release(opens[0].server, true, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, opens[0].server, a2}}));
  EXPECT_EQ(pool.stats(now).waiting_at_share, 0u);
}

TEST_F(ServerPoolTest, OneTenantCannotTakeEveryConnectionEvenWhenNobodyElseWaits) {
  ServerPool pool({.size = 4, .max_tenant_share = 0.75});
  std::vector<WaiterId> a;
  for (int i = 0; i < 4; ++i) a.push_back(pool.acquire(now, out, "a"));
  auto opens = of(Kind::kOpen, take());
  EXPECT_EQ(opens.size(), 3u) << "opens only what the tenant may use";
  for (const Action& o : opens) pool.opened(o.server, now, out);
  EXPECT_EQ(of(Kind::kGrant, take()).size(), 3u);
  EXPECT_EQ(pool.stats(now).waiting_at_share, 1u);
  // Another tenant gets the fourth connection.
  WaiterId b = pool.acquire(now, out, "b");
  auto o = of(Kind::kOpen, take());
  ASSERT_EQ(o.size(), 1u);
  pool.opened(o[0].server, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, o[0].server, b}}));
}

TEST_F(ServerPoolTest, WaitersUnderTheirShareAreServedInArrivalOrder) {
  ServerPool pool({.size = 2, .max_tenant_share = 0.5});
  ServerId s1 = 0, s2 = 0;
  {
    pool.acquire(now, out, "a");
    pool.acquire(now, out, "b");
    auto opens = of(Kind::kOpen, take());
    ASSERT_EQ(opens.size(), 2u);
    s1 = opens[0].server;
    s2 = opens[1].server;
    pool.opened(s1, now, out);
    pool.opened(s2, now, out);
    EXPECT_EQ(of(Kind::kGrant, take()).size(), 2u);
  }
  now += 1s;
  WaiterId a2 = pool.acquire(now, out, "a");  // a and b are at their shares
  WaiterId b2 = pool.acquire(now, out, "b");
  WaiterId c1 = pool.acquire(now, out, "c");
  WaiterId c2 = pool.acquire(now, out, "c");
  EXPECT_TRUE(take().empty());
  EXPECT_EQ(pool.stats(now).waiting_at_share, 2u);
  pool.release(s1, true, now, out);  // a's: the oldest waiter under its share is a2
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, s1, a2}}));
  pool.release(s2, true, now, out);  // b's: b2 (before c1, c2)
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, s2, b2}}));
  pool.release(s1, true, now, out);  // a's again: a has nobody waiting, c1 is next
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, s1, c1}}));
  pool.release(s2, true, now, out);  // c is at its share: c2 is skipped, nobody else waits
  EXPECT_TRUE(take().empty());
  EXPECT_EQ(pool.stats(now).waiting_at_share, 1u);
  EXPECT_EQ(pool.stats(now).idle, 1u);
  // The capped waiter still times out as any other.
  now += 120s;
  pool.tick(now, out);
  EXPECT_EQ(of(Kind::kTimedOut, take()), (std::vector<Action>{{Kind::kTimedOut, 0, c2}}));
}

TEST_F(ServerPoolTest, AClosedOrLostLentConnectionCountsOutOfItsTenantsShare) {
  ServerPool pool({.size = 2, .max_tenant_share = 0.5});
  pool.acquire(now, out, "a");
  auto o = of(Kind::kOpen, take());
  ASSERT_EQ(o.size(), 1u);
  pool.opened(o[0].server, now, out);
  take();
  WaiterId a2 = pool.acquire(now, out, "a");
  EXPECT_TRUE(take().empty());
  pool.release(o[0].server, false, now, out);  // closed (in doubt): a is under its share again
  auto a = take();
  EXPECT_EQ(of(Kind::kClose, a).size(), 1u);
  auto o2 = of(Kind::kOpen, a);
  ASSERT_EQ(o2.size(), 1u);
  pool.opened(o2[0].server, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, o2[0].server, a2}}));
  pool.lost(o2[0].server, now, out);  // (a lent connection the server ended)
  WaiterId a3 = pool.acquire(now, out, "a");
  auto o3 = of(Kind::kOpen, take());
  ASSERT_EQ(o3.size(), 1u);
  pool.opened(o3[0].server, now, out);
  EXPECT_EQ(take(), (std::vector<Action>{{Kind::kGrant, o3[0].server, a3}}));
}

TEST_F(ServerPoolTest, AClientWithoutATenantIsNotCapped) {
  ServerPool pool({.size = 2, .max_tenant_share = 0.5});
  pool.acquire(now, out);
  pool.acquire(now, out);
  auto opens = of(Kind::kOpen, take());
  ASSERT_EQ(opens.size(), 2u);
  for (const Action& o : opens) pool.opened(o.server, now, out);
  EXPECT_EQ(of(Kind::kGrant, take()).size(), 2u);
}

TEST_F(ServerPoolTest, RandomWalkWithTenantsKeepsEveryShare) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    const size_t size = 1 + rng() % 5;
    const double share = std::vector<double>{0.3, 0.5, 0.75, 1.0}[rng() % 4];
    PoolLimits limits{.size = size, .query_wait_timeout = std::chrono::seconds(1 + rng() % 5), .max_tenant_share = share};
    ServerPool pool(limits);
    const size_t cap = pool.tenant_cap();
    now = t0;
    std::set<ServerId> opening, idle;
    std::map<ServerId, std::string> lent;  // -> tenant
    std::vector<std::pair<WaiterId, std::string>> waiting;  // arrival order
    auto held = [&](const std::string& t) {
      return static_cast<size_t>(std::count_if(lent.begin(), lent.end(), [&](const auto& l) { return l.second == t; }));
    };
    auto apply = [&](const std::vector<Action>& actions) {
      for (const Action& a : actions) {
        switch (a.kind) {
          case Kind::kOpen: opening.insert(a.server); break;
          case Kind::kClose: ASSERT_TRUE(idle.erase(a.server)); break;
          case Kind::kGrant: {
            ASSERT_TRUE(idle.erase(a.server));
            auto it = std::find_if(waiting.begin(), waiting.end(), [&](const auto& w) { return w.first == a.waiter; });
            ASSERT_NE(it, waiting.end());
            for (auto before = waiting.begin(); before != it; ++before) {
              ASSERT_GE(held(before->second), cap) << "an older waiter under its share was passed over";
            }
            ASSERT_LT(held(it->second), cap) << "granted over the tenant's share";
            lent[a.server] = it->second;
            waiting.erase(it);
            break;
          }
          case Kind::kTimedOut:
          case Kind::kFailed: {
            auto it = std::find_if(waiting.begin(), waiting.end(), [&](const auto& w) { return w.first == a.waiter; });
            ASSERT_NE(it, waiting.end());
            waiting.erase(it);
            break;
          }
        }
      }
    };
    for (int step = 0; step < 3000; ++step) {
      now += std::chrono::milliseconds(rng() % 700);
      std::vector<Action> actions;
      switch (rng() % 5) {
        case 0:
        case 1: {
          const std::string t(1, static_cast<char>('a' + rng() % 3));
          WaiterId w = pool.acquire(now, actions, t);
          waiting.emplace_back(w, t);
          break;
        }
        case 2:
          if (!lent.empty()) {
            auto it = std::next(lent.begin(), static_cast<long>(rng() % lent.size()));
            ServerId s = it->first;
            lent.erase(it);
            idle.insert(s);
            pool.release(s, rng() % 4 != 0, now, actions);
          }
          break;
        case 3:
          if (!opening.empty()) {
            ServerId s = *std::next(opening.begin(), static_cast<long>(rng() % opening.size()));
            opening.erase(s);
            idle.insert(s);
            pool.opened(s, now, actions);
          }
          break;
        default: pool.tick(now, actions); break;
      }
      apply(actions);
      if (HasFatalFailure()) return;
      PoolStats st = pool.stats(now);
      ASSERT_EQ(st.lent, lent.size()) << "step " << step;
      ASSERT_EQ(st.waiting, waiting.size()) << "step " << step;
      size_t at_share = 0;
      for (const auto& [w, t] : waiting) {
        if (held(t) >= cap) {
          ++at_share;
        } else {
          ASSERT_TRUE(idle.empty()) << "a waiter under its share waits beside an idle connection, step " << step;
        }
      }
      ASSERT_EQ(st.waiting_at_share, at_share) << "step " << step;
      for (char c = 'a'; c <= 'c'; ++c) ASSERT_LE(held(std::string(1, c)), cap) << "step " << step;
    }
  }
}

}  // namespace
}  // namespace rowguard::pool
