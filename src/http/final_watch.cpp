#include "src/http/final_watch.hpp"

#include <algorithm>

#include "src/log/log.hpp"
#include "src/redis/keys.hpp"

namespace batchq::http {

final_watch::interest::~interest() {
  std::lock_guard<std::mutex> guard{watch_.mtx_};
  auto range = watch_.waiting_.equal_range(job_id_);
  for (auto i = range.first; i != range.second; ++i)
    if (i->second == this) {
      watch_.waiting_.erase(i);
      break;
    }
}

void final_watch::interest::on_wake(std::function<void()> wake) {
  std::lock_guard<std::mutex> guard{watch_.mtx_};
  if (announced_ || watch_.stopping_) {
    announced_ = false;
    wake();
    return;
  }
  wake_ = std::move(wake);
}

void final_watch::interest::notify(bool announced) {
  announced_ = announced_ || announced;
  if (wake_) {
    auto wake = std::move(wake_);
    wake_ = nullptr;
    announced_ = false;
    wake();
  }
}

final_watch::final_watch(redis::endpoint ep, const std::string& node_id)
  : ep_(std::move(ep)), client_name_("batchq-finals:" + node_id) {
  // CLIENT SETNAME takes no spaces or control characters.
  for (auto& ch : client_name_)
    if (ch <= ' ' || ch > '~')
      ch = '_';
  thread_ = std::thread{[this] { run(); }};
}

final_watch::~final_watch() {
  stop();
  if (thread_.joinable())
    thread_.join();
}

std::unique_ptr<final_watch::interest> final_watch::watch(const std::string& job_id) {
  std::unique_ptr<interest> i{new interest(*this, job_id)};
  std::lock_guard<std::mutex> guard{mtx_};
  waiting_.emplace(job_id, i.get());
  return i;
}

std::size_t final_watch::waiting() {
  std::lock_guard<std::mutex> guard{mtx_};
  return waiting_.size();
}

void final_watch::stop() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopping_)
      return;
    stopping_ = true;
    for (auto& [id, w] : waiting_)
      w->notify(false);
    stop_cv_.notify_all();
  }
  std::lock_guard<std::mutex> guard{sub_mtx_};
  if (sub_ != nullptr)
    sub_->interrupt();
}

void final_watch::announce(const std::string& job_id) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto range = waiting_.equal_range(job_id);
  for (auto i = range.first; i != range.second; ++i)
    i->second->notify(true);
}

void final_watch::run() {
  auto pause = std::chrono::milliseconds{50};
  for (;;) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (stopping_)
        return;
    }
    auto sub = redis::subscription::open(ep_, {std::string{redis::keys::jobs_final_channel}},
                                         client_name_);
    if (!sub) {
      // Waiters poll every 100 ms meanwhile; try again with backoff.
      std::unique_lock<std::mutex> guard{mtx_};
      stop_cv_.wait_for(guard, pause, [this] { return stopping_; });
      pause = std::min(pause * 2, std::chrono::milliseconds{1000});
      continue;
    }
    pause = std::chrono::milliseconds{50};
    {
      std::lock_guard<std::mutex> guard{sub_mtx_};
      sub_ = sub->get();
    }
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (stopping_) {
        std::lock_guard<std::mutex> g{sub_mtx_};
        sub_ = nullptr;
        return;
      }
    }
    connected_ = true;
    log::debug("long-polls subscribed", {{"channel", std::string{redis::keys::jobs_final_channel}}});
    for (;;) {
      auto m = (*sub)->next(std::chrono::milliseconds{-1});
      if (!m)
        break; // broken or interrupted
      if (*m)
        announce((*m)->payload);
    }
    connected_ = false;
    {
      std::lock_guard<std::mutex> guard{sub_mtx_};
      sub_ = nullptr;
    }
    // Messages published while down are lost: wake every waiter so that it
    // reads its job now.
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& [id, w] : waiting_)
      w->notify(true);
  }
}

} // namespace batchq::http
