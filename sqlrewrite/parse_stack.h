#pragma once
// Where parsing and rewriting run: a large stack of known size, one per thread, so that the
// recursive parts (libpg_query's tree output and deparser, protobuf's decoder, the rewriter's
// walk, the destructors of a deep tree) can never overflow a worker thread's stack. Together
// with the nesting bound of statement_limits.h (checked before libpg_query sees a text), the
// deepest tree rowguard accepts fits this stack with a wide margin; a deeper one is refused
// with an error, never a crash.
//
// Threading: the stack belongs to the calling thread (thread_local); a call made while already
// on it runs directly. Nothing here blocks or yields: the caller's thread waits for fn to return.
#include <cstddef>
#include <exception>
#include <type_traits>
#include <utility>

namespace rowguard::sqlrewrite {

// Size of each thread's parse stack (reserved address space; pages are committed as touched and
// given back after a deep statement).
inline constexpr size_t kParseStackBytes = size_t{256} << 20;

// Runs fn(arg) on this thread's parse stack. An exception thrown by fn is rethrown here.
void run_on_parse_stack_raw(void (*fn)(void*), void* arg);

// Whether the caller is on its thread's parse stack.
bool on_parse_stack();

template <class F>
auto run_on_parse_stack(F&& f) -> std::invoke_result_t<F&> {
  using R = std::invoke_result_t<F&>;
  if (on_parse_stack()) return f();
  struct Call {
    F* f;
    std::conditional_t<std::is_void_v<R>, bool, R*> out;
  };
  if constexpr (std::is_void_v<R>) {
    Call c{&f, false};
    run_on_parse_stack_raw([](void* p) { (*static_cast<Call*>(p)->f)(); }, &c);
  } else {
    R result{};
    Call c{&f, &result};
    run_on_parse_stack_raw([](void* p) { auto* c = static_cast<Call*>(p); *c->out = (*c->f)(); }, &c);
    return result;
  }
}

}  // namespace rowguard::sqlrewrite
