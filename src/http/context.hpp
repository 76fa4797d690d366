// What every HTTP handler of one server shares (internal to src/http): the
// validated settings, the Redis pools, the hooks into the node's actors, and
// the server's stop signal that wakes long-polls.
//
// Thread safety: immutable after construction except the pools (internally
// locked) and `stopping` (atomic); handlers run on many pool threads at once.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <regex>

#include "src/config/settings.hpp"
#include "src/http/redis_pool.hpp"
#include "src/http/server.hpp"
#include "src/http/final_watch.hpp"
#include "src/http/user_gate.hpp"

namespace batchq::http {

struct context {
  context(settings s, node_hooks h);

  settings cfg;
  node_hooks hooks;
  /// api.user-from-host, compiled once.
  std::regex user_from_host;
  /// The batch DB (redis.db) and the metadata DB 5.
  redis_pool batch;
  redis_pool meta;
  /// Per-user caps on requests in flight and long-polls (429 past them).
  user_gate gate{server::max_requests_per_user, server::max_waits_per_user};
  /// What long-polls wait on (set when the job routes are served).
  std::unique_ptr<final_watch> finals;

  /// True when batchq:role_keys:{user} should be written for (role, token):
  /// this node has not written it within the last minute (auth.cpp).
  bool role_key_due(const std::string& user, const std::string& role, const std::string& token);
  /// Records that it was written now.
  void role_key_written(const std::string& user, const std::string& role,
                        const std::string& token);

  /// The server stops: long-polls answer now (stopping() is true from now on).
  void stop();
  bool stopping() const noexcept { return stopping_.load(); }

private:
  std::mutex role_keys_mtx_;
  /// (user, role) -> the token written last and when it is due again.
  std::map<std::pair<std::string, std::string>,
           std::pair<std::string, std::chrono::steady_clock::time_point>>
    role_keys_written_; // guarded by role_keys_mtx_
  std::atomic<bool> stopping_{false};
};

} // namespace batchq::http
