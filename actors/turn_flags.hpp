// What the scheduler shares with the thread that runs a turn's jobs
// (job_runner.hpp, "Going on"): it clears `go_on` the moment it decides a
// turn yields or stops and sets `fenced` when it fences it, before it tells
// the user_queue, and the turn's runner reads them before and after it claims
// the user's next job itself. Flags only ever go from "may" to "may not".
#pragma once

#include <atomic>
#include <cstdint>

namespace batchq {

struct turn_flags {
  /// The turn may claim another job: no yield, stop or fence yet.
  std::atomic<bool> go_on{true};
  /// The lease deadline passed: nothing more may be sent.
  std::atomic<bool> fenced{false};
  /// Jobs whose end is written in this turn (the user_queue sets it before each
  /// `run`; the runner counts the ones it writes itself).
  std::atomic<int64_t> jobs{0};
};

} // namespace batchq
