#include "src/http/task_pool.hpp"

#include <thread>

namespace batchq::http {

elastic_pool::elastic_pool(size_t core, size_t max, std::chrono::milliseconds linger)
  : core_(core), max_(max < core ? core : max), linger_(linger) {
  // Threads start on demand.
}

elastic_pool::~elastic_pool() {
  shutdown();
}

void elastic_pool::enqueue(std::function<void()> fn) {
  bool spawn = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopping_)
      return; // stopping: the transport no longer waits for it
    jobs_.push_back(std::move(fn));
    if (idle_ < jobs_.size() && alive_ < max_) {
      ++alive_;
      ++idle_; // counted idle until it takes the job
      peak_ = std::max(peak_, alive_);
      spawn = true;
    }
  }
  if (spawn) {
    try {
      std::thread{[this] { work(); }}.detach();
    } catch (...) {
      std::lock_guard<std::mutex> guard{mtx_};
      --alive_;
      --idle_;
      // The job stays queued for a thread that becomes free.
    }
  }
  cv_.notify_one();
}

void elastic_pool::work() {
  std::unique_lock<std::mutex> lock{mtx_};
  for (;;) {
    bool got = cv_.wait_for(lock, linger_, [this] { return !jobs_.empty() || stopping_; });
    if (jobs_.empty()) {
      if (stopping_ || (!got && alive_ > core_))
        break;
      continue;
    }
    auto fn = std::move(jobs_.front());
    jobs_.pop_front();
    --idle_;
    lock.unlock();
    fn();
    lock.lock();
    ++idle_;
  }
  --idle_;
  --alive_;
  // Released and notified only after this thread's locals are gone, so
  // shutdown() may destroy the pool as soon as it sees alive_ == 0.
  std::notify_all_at_thread_exit(gone_, std::move(lock));
}

void elastic_pool::shutdown() {
  std::unique_lock<std::mutex> lock{mtx_};
  stopping_ = true;
  cv_.notify_all();
  gone_.wait(lock, [this] { return alive_ == 0; });
}

size_t elastic_pool::threads() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return alive_;
}

size_t elastic_pool::busy() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return alive_ - idle_;
}

size_t elastic_pool::peak_threads() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return peak_;
}

} // namespace batchq::http
