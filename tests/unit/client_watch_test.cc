// Unit tests for proxy/net/client_watch.h: which [limits] timeout expires, and that a complete
// client message ends the wait. A steady_timer on a local io_context (no sockets); timeouts of
// 1 s, and only *which* reason fires is asserted, never how fast.
#include "proxy/net/client_watch.h"

#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <exception>

namespace rowguard::net {
namespace {

using Reason = ClientWatch::Reason;

struct Fixture {
  boost::asio::io_context ctx;
  int fired = 0;
  bool ended = false;  // watch.run() returned
  boost::asio::cancellation_signal stop;
  ClientWatch watch{ctx, [this] { ++fired; }};
  // watch.run() beside the test, as the connection runs it beside its loops.
  Fixture() {
    boost::asio::co_spawn(ctx, watch.run(),
                          boost::asio::bind_cancellation_slot(stop.slot(), [this](std::exception_ptr) { ended = true; }));
  }
  // The connection's `||` cancels run() when its loops end and waits for it to return.
  ~Fixture() { end(); }
  void end() {
    stop.emit(boost::asio::cancellation_type::terminal);
    for (int i = 0; i < 100 && !ended; ++i) {
      ctx.restart();
      ctx.poll();
    }
  }
  // Runs the io_context until the watch fires or 20 s pass.
  void run_until_fired() {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (fired == 0 && std::chrono::steady_clock::now() < end) ctx.run_for(std::chrono::milliseconds(100));
  }
};

policy::LimitSettings limits(int idle, int idle_in_tx, int message) {
  policy::LimitSettings l;
  l.idle_client_timeout_seconds = idle;
  l.idle_in_transaction_timeout_seconds = idle_in_tx;
  l.message_timeout_seconds = message;
  return l;
}

TEST(ClientWatch, IdleOutsideATransaction) {
  Fixture f;
  f.watch.idle('I', limits(1, 0, 0));
  f.run_until_fired();
  EXPECT_EQ(f.fired, 1);
  EXPECT_EQ(f.watch.expired(), Reason::kIdle);
  EXPECT_EQ(f.watch.expired_after(), 1);
}

TEST(ClientWatch, IdleInATransactionOrAFailedOne) {
  for (char status : {'T', 'E'}) {
    Fixture f;
    f.watch.idle(status, limits(0, 1, 0));
    f.run_until_fired();
    EXPECT_EQ(f.watch.expired(), Reason::kIdleInTransaction) << status;
  }
}

// Transaction pooling: [pool] idle_transaction_timeout bounds a client idle inside a transaction
// (not one idle outside), beside [limits] idle_in_transaction_timeout: the shorter fires.
TEST(ClientWatch, PoolIdleInTransaction) {
  {
    Fixture f;
    f.watch.set_pool_idle_transaction(1);
    f.watch.idle('T', limits(0, 0, 0));
    f.run_until_fired();
    EXPECT_EQ(f.watch.expired(), Reason::kPoolIdleInTransaction);
    EXPECT_EQ(f.watch.expired_after(), 1);
  }
  {
    Fixture f;
    f.watch.set_pool_idle_transaction(30);
    f.watch.idle('E', limits(0, 1, 0));
    f.run_until_fired();
    EXPECT_EQ(f.watch.expired(), Reason::kIdleInTransaction) << "[limits] is shorter";
  }
  {
    Fixture f;
    f.watch.set_pool_idle_transaction(1);
    f.watch.idle('I', limits(0, 0, 0));
    f.ctx.run_for(std::chrono::milliseconds(1500));
    EXPECT_EQ(f.fired, 0) << "outside a transaction";
  }
}

TEST(ClientWatch, TrickledMessage) {
  Fixture f;
  f.watch.client_bytes(false, true, limits(0, 0, 1));  // the start of a message, then nothing
  f.run_until_fired();
  EXPECT_EQ(f.watch.expired(), Reason::kMessage);
}

TEST(ClientWatch, ACompleteMessageEndsTheWaitAndTimeoutsOffNeverFire) {
  Fixture f;
  const auto l = limits(1, 1, 1);
  f.watch.idle('T', l);
  f.watch.client_bytes(true, false, l);  // a whole message arrived: busy, nothing partial
  f.ctx.run_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(f.fired, 0);
  EXPECT_EQ(f.watch.expired(), Reason::kNone);
  // All timeouts off: idle and a partial message are never ended.
  Fixture g;
  g.watch.idle('I', limits(0, 0, 0));
  g.watch.client_bytes(false, true, limits(0, 0, 0));
  g.ctx.run_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(g.fired, 0);
}

// run() returns once cancelled (what lets the connection's `||` finish), and a deadline that
// passes afterwards fires nothing: the timer has no waiter left.
TEST(ClientWatch, RunReturnsWhenCancelledAndNothingFiresAfter) {
  Fixture f;
  f.watch.idle('I', limits(1, 0, 0));
  f.ctx.poll();
  EXPECT_FALSE(f.ended);
  f.end();
  EXPECT_TRUE(f.ended);
  f.ctx.restart();
  f.ctx.run_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(f.fired, 0);
  EXPECT_EQ(f.watch.expired(), Reason::kNone);
}

// As the connection uses it: `co_await (loop() || watch.run())` completes when the loop does.
TEST(ClientWatch, EndsWithTheLoopItRunsBeside) {
  using namespace boost::asio::experimental::awaitable_operators;
  boost::asio::io_context ctx;
  int fired = 0;
  bool done = false;
  ClientWatch watch{ctx, [&] { ++fired; }};
  watch.idle('I', limits(1, 0, 0));
  auto loop = [&]() -> boost::asio::awaitable<void> { co_await boost::asio::post(ctx, boost::asio::use_awaitable); };
  boost::asio::co_spawn(
      ctx,
      [&]() -> boost::asio::awaitable<void> {
        co_await (loop() || watch.run());
        done = true;
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  ctx.run_for(std::chrono::milliseconds(1500));
  EXPECT_TRUE(done);
  EXPECT_EQ(fired, 0);
}

}  // namespace
}  // namespace rowguard::net
