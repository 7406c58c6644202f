// The per-thread parse stack (parse_stack.h): an mmap'd region with a guard page, entered with
// swapcontext.
#include "sqlrewrite/parse_stack.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdlib>
#include <new>

// AddressSanitizer must be told about user-level stack switches, or it reports the parse stack's
// frames as stack-buffer-overflows (it checks them against the thread's own stack bounds).
#if defined(__SANITIZE_ADDRESS__)
#define ROWGUARD_ASAN_FIBERS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ROWGUARD_ASAN_FIBERS 1
#endif
#endif
#ifdef ROWGUARD_ASAN_FIBERS
#include <sanitizer/common_interface_defs.h>
#endif

namespace rowguard::sqlrewrite {
namespace {

class ParseStack {
 public:
  ParseStack() {
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* p = mmap(nullptr, kParseStackBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    base_ = static_cast<char*>(p);
    mprotect(base_, page_, PROT_NONE);  // overflow faults instead of writing below the stack
  }
  ~ParseStack() { munmap(base_, kParseStackBytes); }
  ParseStack(const ParseStack&) = delete;
  ParseStack& operator=(const ParseStack&) = delete;

  void run(void (*fn)(void*), void* arg) {
    fn_ = fn;
    arg_ = arg;
    error_ = nullptr;
    getcontext(&callee_);
    callee_.uc_stack.ss_sp = base_ + page_;
    callee_.uc_stack.ss_size = kParseStackBytes - page_;
    callee_.uc_link = &caller_;
    makecontext(&callee_, &ParseStack::entry, 0);
    active_ = true;
#ifdef ROWGUARD_ASAN_FIBERS
    void* fake_stack = nullptr;
    __sanitizer_start_switch_fiber(&fake_stack, callee_.uc_stack.ss_sp, callee_.uc_stack.ss_size);
#endif
    swapcontext(&caller_, &callee_);
#ifdef ROWGUARD_ASAN_FIBERS
    __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
    active_ = false;
    release_deep_pages();
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }
  bool active() const { return active_; }

 private:
  static void entry();

  // Gives the pages below the top 4 MB back to the kernel: a deep statement does not keep
  // hundreds of MB of this thread's stack resident. Cheap when they were never touched.
  void release_deep_pages() {
    constexpr size_t kKeep = size_t{4} << 20;
    madvise(base_ + page_, kParseStackBytes - page_ - kKeep, MADV_DONTNEED);
  }

  size_t page_ = 4096;
  char* base_ = nullptr;
  ucontext_t caller_{};
  ucontext_t callee_{};
  void (*fn_)(void*) = nullptr;
  void* arg_ = nullptr;
  std::exception_ptr error_;
  bool active_ = false;
};

thread_local ParseStack* t_stack = nullptr;

void ParseStack::entry() {
  ParseStack& s = *t_stack;
#ifdef ROWGUARD_ASAN_FIBERS
  const void* caller_bottom = nullptr;
  size_t caller_size = 0;
  __sanitizer_finish_switch_fiber(nullptr, &caller_bottom, &caller_size);
#endif
  try {
    s.fn_(s.arg_);
  } catch (...) {
    s.error_ = std::current_exception();
  }
#ifdef ROWGUARD_ASAN_FIBERS
  // This context ends here (nullptr: its fake stack can go); back to the caller's stack.
  __sanitizer_start_switch_fiber(nullptr, caller_bottom, caller_size);
#endif
  // Returning resumes caller_ (uc_link).
}

ParseStack& thread_stack() {
  thread_local ParseStack stack;
  t_stack = &stack;
  return stack;
}

}  // namespace

bool on_parse_stack() { return t_stack != nullptr && t_stack->active(); }

void run_on_parse_stack_raw(void (*fn)(void*), void* arg) {
  if (on_parse_stack()) {
    fn(arg);
    return;
  }
  thread_stack().run(fn, arg);
}

}  // namespace rowguard::sqlrewrite
