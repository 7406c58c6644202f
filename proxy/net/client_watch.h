#pragma once
// The client-side timeouts of one connection ([limits]), on one steady_timer:
//   - idle_client_timeout: waiting for the client outside a transaction (57P05),
//   - idle_in_transaction_timeout: waiting for the client inside a transaction (25P03),
//   - [pool] idle_transaction_timeout (transaction pooling, set_pool_idle_transaction): the
//     same, for a client holding a pooled server connection (25P03 too),
//   - message_timeout: a client message started but not received whole (slowloris).
// "Waiting" starts, as in PostgreSQL, when ReadyForQuery is relayed with nothing else in flight,
// and ends when a complete message arrives. On expiry the watch records why and calls
// on_expire (which cancels the client read, so the connection's loops end and it can send the
// FATAL error).
//
// Lifetime: the timer is waited on only by run(), a coroutine the connection runs beside its
// loops (`co_await (loop() || watch.run())`): when the loops end, the operator cancels run() and
// waits for it to return, so no wait on the timer outlives the statement that started it, and no
// completion handler holds `this`. Single-threaded: used on the connection's io_context only.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <functional>
#include <optional>
#include <utility>

#include "policy/policy.h"

namespace rowguard::net {

class ClientWatch {
 public:
  enum class Reason { kNone, kIdle, kIdleInTransaction, kPoolIdleInTransaction, kMessage };
  using Clock = std::chrono::steady_clock;

  ClientWatch(boost::asio::io_context& ctx, std::function<void()> on_expire)
      : timer_(ctx, Clock::time_point::max()), on_expire_(std::move(on_expire)) {}

  // Fires the timeouts (calls on_expire at most once); returns only when cancelled. Run beside
  // the loops the timeouts end: `co_await (loop() || watch.run())`.
  boost::asio::awaitable<void> run() {
    for (;;) {
      const uint64_t gen = generation_;
      auto [ec] = co_await timer_.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
      if ((co_await boost::asio::this_coro::cancellation_state).cancelled() != boost::asio::cancellation_type::none) {
        co_return;
      }
      // Re-armed meanwhile (the wait was cancelled, or its completion was already queued): wait
      // for the new deadline.
      if (ec || gen != generation_ || expired_ != Reason::kNone || !armed_) continue;
      // The timer is set lazily (rearm): what is due may have moved later, or gone, meanwhile.
      armed_.reset();
      if (!due_ || *due_ > Clock::now()) {
        if (due_) armed_ = due_;
        timer_.expires_at(due_ ? *due_ : Clock::time_point::max());
        continue;
      }
      expired_ = due_reason_;
      expired_after_ = due_seconds_;
      timer_.expires_at(Clock::time_point::max());  // nothing more to fire: wait to be cancelled
      on_expire_();
    }
  }

  // ReadyForQuery relayed and nothing in flight: the client is expected to speak next.
  void idle(char tx_status, const policy::LimitSettings& limits) {
    if (!idle_since_) idle_since_ = Clock::now();
    tx_status_ = tx_status;
    rearm(limits);
  }

  // Client bytes handled: `complete` messages finished (ends the idle wait), `partial` = the
  // start of the next message is buffered.
  void client_bytes(bool complete, bool partial, const policy::LimitSettings& limits) {
    if (complete) {
      idle_since_.reset();
      partial_since_.reset();
    }
    if (!partial) {
      partial_since_.reset();
    } else if (!partial_since_) {
      partial_since_ = Clock::now();
    }
    rearm(limits);
  }

  // Transaction pooling: [pool] idle_transaction_timeout (seconds, 0: off), beside [limits]
  // idle_in_transaction_timeout (the shorter fires). Takes effect at the next idle().
  void set_pool_idle_transaction(int seconds) { pool_idle_in_transaction_seconds_ = seconds; }

  Reason expired() const { return expired_; }
  // The timeout (seconds) that expired, for the message.
  int expired_after() const { return expired_after_; }

 private:
  void rearm(const policy::LimitSettings& limits) {
    if (expired_ != Reason::kNone) return;
    std::optional<Clock::time_point> deadline;
    Reason reason = Reason::kNone;
    int seconds = 0;
    auto consider = [&](std::optional<Clock::time_point> since, int timeout, Reason why) {
      if (!since || timeout <= 0) return;
      auto at = *since + std::chrono::seconds(timeout);
      if (!deadline || at < *deadline) {
        deadline = at;
        reason = why;
        seconds = timeout;
      }
    };
    const bool in_tx = tx_status_ != 'I';
    consider(idle_since_, in_tx ? limits.idle_in_transaction_timeout_seconds : limits.idle_client_timeout_seconds,
             in_tx ? Reason::kIdleInTransaction : Reason::kIdle);
    if (in_tx) consider(idle_since_, pool_idle_in_transaction_seconds_, Reason::kPoolIdleInTransaction);
    consider(partial_since_, limits.message_timeout_seconds, Reason::kMessage);
    due_ = deadline;
    due_reason_ = reason;
    due_seconds_ = seconds;
    // The timer moves only when the deadline comes earlier than it is set for. A later deadline,
    // or none, is found when it fires (run() sets it again): a busy session, whose deadline moves
    // on at every message, re-arms nothing per message (no timerfd_settime, no wake-up of run()).
    if (!deadline || (armed_ && *armed_ <= *deadline)) return;
    armed_ = deadline;
    ++generation_;
    timer_.expires_at(*deadline);  // cancels run()'s wait
  }

  boost::asio::steady_timer timer_;
  std::function<void()> on_expire_;
  std::optional<Clock::time_point> idle_since_;
  std::optional<Clock::time_point> partial_since_;
  std::optional<Clock::time_point> armed_;  // what the timer is set for
  std::optional<Clock::time_point> due_;    // the deadline now, and why
  Reason due_reason_ = Reason::kNone;
  int due_seconds_ = 0;
  char tx_status_ = 'I';
  int pool_idle_in_transaction_seconds_ = 0;
  uint64_t generation_ = 0;
  Reason expired_ = Reason::kNone;
  int expired_after_ = 0;
};

}  // namespace rowguard::net
