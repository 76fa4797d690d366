// Threads for the API's handlers (docs/http-api.md, "Isolation").
//
// The transport (transport.hpp) hands each complete request to a pool; its
// handler may block on Redis or on the canceller's answer. elastic_pool keeps
// `core` threads and starts another one whenever every thread is busy, up to
// `max`; threads above `core` end after `linger` without work. Only past `max`
// do requests wait. A parked long-poll holds none of them.
//
// Thread safety: enqueue() from any thread, shutdown() from the thread that
// stops the server; both may race with the workers.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>

namespace batchq::http {

class elastic_pool {
public:
  elastic_pool(size_t core, size_t max,
               std::chrono::milliseconds linger = std::chrono::milliseconds{10000});
  ~elastic_pool();
  elastic_pool(const elastic_pool&) = delete;
  elastic_pool& operator=(const elastic_pool&) = delete;

  void enqueue(std::function<void()> fn);
  /// Runs what is queued, then joins every thread.
  void shutdown();

  /// Threads alive now (busy or idle).
  size_t threads() const;
  /// Threads running a task now.
  size_t busy() const;
  /// The most threads alive at once so far.
  size_t peak_threads() const;

private:
  void work();

  const size_t core_;
  const size_t max_;
  const std::chrono::milliseconds linger_;
  mutable std::mutex mtx_;
  std::condition_variable cv_;             // work queued, or stopping
  std::condition_variable gone_;           // a thread ended (notified at its exit)
  std::deque<std::function<void()>> jobs_; // guarded by mtx_
  size_t alive_ = 0;                       // guarded by mtx_; threads are detached
  size_t idle_ = 0;                        // guarded by mtx_
  size_t peak_ = 0;                        // guarded by mtx_
  bool stopping_ = false;                  // guarded by mtx_
};

} // namespace batchq::http
