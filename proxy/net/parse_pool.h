#pragma once
// The parse pool: a few threads that rewrite long statements, so that a multi-MB text (a 3 MB IN
// list, 100,000 statements in one Query) never holds a worker thread, and the other sessions of
// that worker keep being answered while it is rewritten.
//
// The worker hands over a copy of the text, the policy snapshot (shared_ptr) and the tenant, and
// co_awaits the RewriteResult; the completion runs on the worker's executor. A job touches
// nothing of the session or the worker: if the client leaves meanwhile, the job still finishes
// on the pool and its result is dropped with the awaiting coroutine.
//
// Threading: every pool thread has its own parse stack (sqlrewrite/parse_stack.h, thread_local)
// and its own rewrite cache (so a long statement repeated costs a lookup there, as on a worker);
// rowguard holds up to (workers + parse_threads) x [cache] max_bytes of cached rewrites.
// The destructor joins the threads: destroy the pool before the workers' io_contexts.
#include <atomic>
#include <boost/asio/async_result.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "policy/policy.h"
#include "sqlrewrite/rewriter.h"

namespace rowguard::net {

struct Metrics;

class ParsePool {
 public:
  ParsePool(size_t threads, Metrics& metrics);
  ~ParsePool();  // waits for the jobs in flight
  ParsePool(const ParsePool&) = delete;
  ParsePool& operator=(const ParsePool&) = delete;

  // The rewrite of `text` for `tenant` under `policy`, computed on a pool thread; the handler
  // (signature void(RewriteResult)) runs on its own associated executor (the worker's).
  template <class Token>
  auto async_rewrite(std::string&& text, const policy::PolicyPtr& policy, std::string&& tenant, Token&& token) {
    return boost::asio::async_initiate<Token, void(sqlrewrite::RewriteResult)>(
        [this](auto handler, std::string text, policy::PolicyPtr policy, std::string tenant) {
          auto work = boost::asio::make_work_guard(boost::asio::get_associated_executor(handler));
          const auto queued_at = std::chrono::steady_clock::now();
          enter();
          std::string queue = tenant;
          auto job = std::make_shared<std::function<void()>>();
          *job = [this, handler = std::make_shared<decltype(handler)>(std::move(handler)),
                  work = std::make_shared<decltype(work)>(std::move(work)), text = std::move(text),
                  policy = std::move(policy), tenant = std::move(tenant), queued_at]() mutable {
            sqlrewrite::RewriteResult result = rewrite_here(text, *policy, tenant);
            leave(queued_at);
            auto ex = work->get_executor();
            boost::asio::post(ex, [handler = std::move(handler), result = std::move(result)]() mutable {
              std::move (*handler)(std::move(result));
            });
            work->reset();
          };
          submit(queue, [job] { (*job)(); });
        },
        token, std::move(text), policy, std::move(tenant));
  }

  // Runs `job` on a pool thread, fairly: each tenant has its own queue and a free thread takes
  // the next job of the next tenant in turn (round robin by tenant), so one tenant's many
  // multi-MB statements delay another tenant's statement by at most the jobs already running.
  // (Public for tests.)
  void submit(const std::string& tenant, std::function<void()> job);

  // Jobs queued or running now.
  int64_t depth() const { return depth_.load(std::memory_order_relaxed); }

  // The rewrite a pool thread computes (public for tests): the calling thread's own cache.
  static sqlrewrite::RewriteResult rewrite_here(std::string_view text, const policy::Policy& policy,
                                                std::string_view tenant);

 private:
  void enter();
  void leave(std::chrono::steady_clock::time_point queued_at);

  void run_next();

  std::mutex mu_;
  std::map<std::string, std::deque<std::function<void()>>, std::less<>> queues_;  // by tenant
  std::string last_tenant_;  // the tenant whose job was taken last (round robin cursor)
  Metrics& metrics_;
  std::atomic<int64_t> depth_{0};
  boost::asio::thread_pool pool_;
};

}  // namespace rowguard::net
