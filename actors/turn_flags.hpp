// What a running turn's deciders share with the thread that runs its jobs
// (job_runner.hpp, "Going on"): the scheduler clears `go_on` the moment it
// tells a turn to yield or stop and sets `fenced` when it fences it, the
// user_queue does the same on its own decisions (the last job, a drain), and
// the turn's runner reads them before it claims the user's next job itself.
// Flags only ever go from "may" to "may not", so no writer can undo another's
// decision.
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
