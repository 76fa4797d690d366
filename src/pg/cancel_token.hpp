// cancel_token: asks a job's running (or future) statements to stop.
//
// One token per job. The thread that runs the job passes it to every
// session::execute of that job; any other thread (the canceller, a drain,
// a lease loss) calls cancel(). Thread-safe: cancel() and cancelled() may be
// called concurrently from any number of threads; the token never touches a
// connection itself, so it is safe whatever happens to the connection.
//
// Semantics (docs/postgres.md, "Cancel"): once cancel() was called, or the
// lease deadline bound to the token passed, every execute with this token that
// has not sent its statement yet returns `outcome::cancelled` without sending
// anything, and an execute that is
// waiting for the server sends a PostgreSQL cancel request at once and again
// after 20 ms, 40 ms, 80 ms ... (at most every 500 ms) until the statement
// ends, so that a cancel can never be lost.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>

namespace batchq::pg {

/// The local deadline of a user lease (SPEC §5 fencing; docs/cluster.md): past
/// it, the node no longer counts on holding the lease, so no statement of a job
/// run under that lease may be sent any more. One per turn, shared by the
/// tokens of the jobs run in it; moved later by each successful renewal.
/// Thread-safe (one atomic): the scheduler writes it, runner threads read it.
class lease_deadline {
public:
  using clock = std::chrono::steady_clock;

  /// No deadline until set().
  lease_deadline() = default;
  explicit lease_deadline(clock::time_point at) { set(at); }

  void set(clock::time_point at) noexcept {
    ns_.store(at.time_since_epoch().count(), std::memory_order_release);
  }

  /// True once `now` is at or past the deadline.
  bool passed(clock::time_point now = clock::now()) const noexcept {
    return now.time_since_epoch().count() >= ns_.load(std::memory_order_acquire);
  }

private:
  std::atomic<clock::rep> ns_{std::numeric_limits<clock::rep>::max()};
};

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

  /// Binds the deadline of the lease the job runs under (set once, before the
  /// token is handed to executions; null: none).
  void bind(std::shared_ptr<const lease_deadline> d) noexcept { deadline_ = std::move(d); }

  /// True once the bound lease deadline passed: nothing may be sent any more.
  bool expired() const noexcept { return deadline_ && deadline_->passed(); }

  /// cancelled() or expired(): what an execution checks before it sends.
  bool stop_requested() const noexcept { return cancelled() || expired(); }

  /// A file descriptor that becomes (and stays) readable once cancel() was
  /// called, or -1. For the executing thread's poll(); never read or close it.
  int wake_fd() const noexcept { return fd_; }

private:
  std::atomic<bool> cancelled_{false};
  int fd_ = -1;
  std::shared_ptr<const lease_deadline> deadline_;
};

} // namespace batchq::pg
