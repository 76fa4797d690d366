// A small pool of Redis connections for the HTTP API's handler threads.
//
// Each handler checks a client out for the Redis work of one step of a
// request and gives it back when the lease ends (RAII), so N concurrent
// requests use at most N connections and a long-poll (`?wait=`) holds none
// while it sleeps. Clients connect lazily (on first use) and reconnect by
// themselves after an outage (redis::client's backoff), so a request made
// while Redis is down fails fast with ec::redis_unavailable and a later one
// retries. One pool per Redis DB (the batch DB, the metadata DB 5).
//
// Thread safety: checkout() and the lease's return are guarded by a mutex; a
// lease (and its client) is used by one thread at a time.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "src/redis/client.hpp"

namespace batchq::http {

class redis_pool {
public:
  /// Does no IO. `max_idle`: connections kept for reuse; more are closed on return.
  explicit redis_pool(redis::endpoint ep, redis::backoff_policy backoff = {},
                      size_t max_idle = 16);
  redis_pool(const redis_pool&) = delete;
  redis_pool& operator=(const redis_pool&) = delete;

  /// A client checked out of the pool; returned when the lease is destroyed.
  class lease {
  public:
    lease(redis_pool& pool, std::unique_ptr<redis::client> c)
      : pool_(&pool), client_(std::move(c)) {}
    lease(lease&&) noexcept = default;
    lease& operator=(lease&&) noexcept = default;
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    ~lease() {
      if (client_)
        pool_->give_back(std::move(client_));
    }
    redis::client& operator*() const noexcept { return *client_; }
    redis::client* operator->() const noexcept { return client_.get(); }

  private:
    redis_pool* pool_;
    std::unique_ptr<redis::client> client_;
  };

  /// An idle client, or a new (not yet connected) one. Never blocks on IO.
  lease checkout();

  /// Idle clients now held (tests, metrics).
  size_t idle() const;

  const redis::endpoint& where() const noexcept { return ep_; }

private:
  void give_back(std::unique_ptr<redis::client> c);

  redis::endpoint ep_;
  redis::backoff_policy backoff_;
  size_t max_idle_;
  mutable std::mutex mtx_;
  std::vector<std::unique_ptr<redis::client>> idle_;
};

} // namespace batchq::http
