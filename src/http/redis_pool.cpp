#include "src/http/redis_pool.hpp"

namespace batchq::http {

redis_pool::redis_pool(redis::endpoint ep, redis::backoff_policy backoff, size_t max_idle)
  : ep_(std::move(ep)), backoff_(backoff), max_idle_(max_idle) {
}

redis_pool::lease redis_pool::checkout() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return lease{*this, std::move(c)};
    }
  }
  return lease{*this, std::make_unique<redis::client>(ep_, backoff_)};
}

size_t redis_pool::idle() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return idle_.size();
}

void redis_pool::give_back(std::unique_ptr<redis::client> c) {
  std::unique_ptr<redis::client> surplus;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (idle_.size() < max_idle_)
      idle_.push_back(std::move(c));
    else
      surplus = std::move(c); // closed outside the lock
  }
}

} // namespace batchq::http
