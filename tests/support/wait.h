// Waiting for a condition in tests, instead of sleeping and hoping it holds by then.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace rowguard::testing {

// Polls `condition` (every 20 ms) until it holds or `timeout` passes (a deadline for slow
// machines, not a speed assertion); true when it held.
inline bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace rowguard::testing
