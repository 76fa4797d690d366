// Long-polls woken by the final write (docs/http-api.md "Waiting"): one
// SUBSCRIBE connection per API node to keys::jobs_final_channel, on which
// turn.lua and job_cancel_pending.lua publish the id of every job that became
// final. A `GET .../job/{id}?wait=N` registers its job id here and is parked
// without a thread (on_wake) until that id is announced, instead of reading
// the job from Redis every 50-100 ms; it still reads the job once every `safety_poll` (a job finished
// by a CARTO worker, which publishes nothing, or a message lost while the
// subscription reconnected), and every 100 ms while the subscription is down.
//
// Thread safety: every member may be called from any thread. One thread of
// its own reads the subscription and reconnects with backoff.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "src/redis/client.hpp"
#include "src/redis/subscription.hpp"

namespace batchq::http {

class final_watch {
public:
  /// How often a waiter reads the job anyway while the subscription is up.
  static constexpr std::chrono::milliseconds safety_poll{2000};

  /// One waiting request's interest in a job id.
  class interest {
  public:
    ~interest();
    interest(const interest&) = delete;
    interest& operator=(const interest&) = delete;

    /// Arms a wake-up for a parked long-poll (transport.hpp): `wake` is
    /// called once, from any thread, when the job is announced final or
    /// the watch stops — at once if that happened since the last wake-up.
    /// Arming again replaces an earlier `wake` not called yet. `wake` must
    /// not call back into the watch.
    void on_wake(std::function<void()> wake);

  private:
    friend class final_watch;
    interest(final_watch& w, std::string job_id) : watch_(w), job_id_(std::move(job_id)) {}
    final_watch& watch_;
    std::string job_id_;
    /// Announced (`announced`) or the watch stops: calls the armed wake-up. Under
    /// watch_.mtx_.
    void notify(bool announced);
    bool announced_ = false; // guarded by watch_.mtx_
    std::function<void()> wake_; // guarded by watch_.mtx_
  };

  /// Starts the subscriber thread (it connects in the background); its
  /// connection is named `batchq-finals:<node_id>` in CLIENT LIST.
  final_watch(redis::endpoint ep, const std::string& node_id);
  /// Stops the thread; waiting requests return at once.
  ~final_watch();
  final_watch(const final_watch&) = delete;
  final_watch& operator=(const final_watch&) = delete;

  /// Registers interest in `job_id`; announcements from now on wake it.
  std::unique_ptr<interest> watch(const std::string& job_id);

  /// Whether the subscription is up (else waiters poll every 100 ms).
  bool connected() const noexcept { return connected_.load(); }

  /// How many requests wait right now (gauge batchq_long_polls_waiting).
  std::size_t waiting();

  /// Wakes every waiter; a wake-up armed from now on is called at once.
  void stop();

private:
  void run();
  void announce(const std::string& job_id);

  redis::endpoint ep_;
  std::string client_name_;
  std::mutex mtx_;
  std::multimap<std::string, interest*> waiting_;
  bool stopping_ = false; // guarded by mtx_
  std::condition_variable stop_cv_; // the thread's backoff sleep
  std::atomic<bool> connected_{false};
  std::mutex sub_mtx_;
  redis::subscription* sub_ = nullptr; // guarded by sub_mtx_, for interrupt()
  std::thread thread_;
};

} // namespace batchq::http
