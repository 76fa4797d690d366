// Threads for httplib's connections (docs/http-api.md, "Isolation").
//
// httplib serves each connection on one task of its TaskQueue for the whole
// life of the connection: an idle keep-alive connection or a `?wait=` long-poll
// holds its thread. With a fixed pool of 64, 64 such connections stopped the
// whole API (/health included). elastic_pool keeps `core` threads and starts
// another one whenever every thread is busy, up to `max`; threads above `core`
// end after `linger` without work. Only past `max` do connections wait.
//
// Thread safety: enqueue() from httplib's listener thread, shutdown() from the
// thread that stops the server; both may race with the workers.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>

#include <httplib.h>

namespace batchq::http {

class elastic_pool : public httplib::TaskQueue {
public:
  elastic_pool(size_t core, size_t max,
               std::chrono::milliseconds linger = std::chrono::milliseconds{10000});
  ~elastic_pool() override;

  void enqueue(std::function<void()> fn) override;
  /// Runs what is queued, then joins every thread.
  void shutdown() override;

  /// Threads alive now (busy or idle).
  size_t threads() const;
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
