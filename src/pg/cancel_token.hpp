// cancel_token: asks a job's running (or future) statements to stop.
//
// One token per job. The thread that runs the job passes it to every
// session::execute of that job; any other thread (the canceller, a drain,
// a lease loss) calls cancel(). Thread-safe: cancel() and cancelled() may be
// called concurrently from any number of threads; the token never touches a
// connection itself, so it is safe whatever happens to the connection.
//
// Semantics (docs/postgres.md, "Cancel"): once cancel() was called, every
// execute with this token that has not sent its statement yet returns
// `outcome::cancelled` without sending anything, and an execute that is
// waiting for the server sends a PostgreSQL cancel request at once and again
// after 20 ms, 40 ms, 80 ms ... (at most every 500 ms) until the statement
// ends, so that a cancel can never be lost.
#pragma once

#include <atomic>
#include <memory>

namespace batchq::pg {

class cancel_token {
public:
  /// Creates an uncancelled token (with an eventfd to wake the executing
  /// thread; without one, executions poll the flag every 20 ms instead).
  cancel_token();
  ~cancel_token();
  cancel_token(const cancel_token&) = delete;
  cancel_token& operator=(const cancel_token&) = delete;

  static std::shared_ptr<cancel_token> make() { return std::make_shared<cancel_token>(); }

  /// Idempotent; never blocks, never throws.
  void cancel() noexcept;

  bool cancelled() const noexcept { return cancelled_.load(std::memory_order_acquire); }

  /// A file descriptor that becomes (and stays) readable once cancel() was
  /// called, or -1. For the executing thread's poll(); never read or close it.
  int wake_fd() const noexcept { return fd_; }

private:
  std::atomic<bool> cancelled_{false};
  int fd_ = -1;
};

} // namespace batchq::pg
