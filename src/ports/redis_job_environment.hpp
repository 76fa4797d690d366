// The real ports::job_environment: per-user statement-timeout caps and
// database passwords from the metadata Redis (SPEC §3.4, §4, §6), with a
// short-lived cache.
//
// Both come from one script, user_env.lua (1 round trip for a user not
// cached): `limits:batch:{user} timeout`, and the role and password of the
// master key record (`api_keys:{user}:{rails:users map_key}`). Each call caches
// both, so a runner's cap read and password read cost one round trip together.
// timeout_cap_ms(user): the limit when it is a positive integer (it replaces
//   the default even when higher), else the configured default
//   (batch.query-timeout).
// password(user, dbuser): the master key's password when its role is dbuser,
//   else the password of the key record that batchq's role index
//   (`batchq:role_keys:{user}`, written by the API when it accepts a
//   non-master key) names for dbuser and whose database_role still is dbuser;
//   in the same round trip, never a SCAN. nullopt when neither has it.
//   Hits and misses are cached for the cache TTL. The password is never
//   logged.
//
// Thread-safe: one instance is shared by every runner thread of the node; a
// mutex guards the connection and the cache (lookups are rare: once per new
// user and cached; a connection per runner measured no faster, even on
// 10,000 new users at once: docs/performance.md "A runner per running
// turn"). Expired entries are swept once the cache holds more than
// sweep_above entries (then twice what is left), so a node that sees many
// users once does not keep them all. Calls BLOCK on Redis: only detached
// actors call them.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "src/ports/ports.hpp"
#include "src/redis/client.hpp"

namespace batchq::ports {

class redis_job_environment : public job_environment {
public:
  using clock = std::chrono::steady_clock;

  /// `metadata`: the DB holding rails:users, api_keys and limits:batch
  /// (redis.db). `default_timeout_ms`: batch.query-timeout. `cache_ttl` 0
  /// disables the cache. Does no IO: the first call connects.
  redis_job_environment(redis::endpoint metadata, int64_t default_timeout_ms,
                        std::chrono::milliseconds cache_ttl = std::chrono::seconds{30});

  /// Errors: redis_unavailable, redis_error.
  caf::expected<int64_t> timeout_cap_ms(const std::string& user) override;

  /// Errors: redis_unavailable, redis_error (a wrong-typed key answers "no
  /// password", not an error).
  caf::expected<std::optional<std::string>> password(const std::string& user,
                                                     const std::string& dbuser) override;

  /// user_env.lua for every user not cached, pipelined (one round trip); each
  /// answer is cached as a lookup's would be. The scheduler's coordination
  /// calls it after a batch of new users' host lookups (10,000 new users:
  /// one round trip per 64 instead of one per user on the runners' path).
  void prime(const std::vector<std::string>& users) override;

  /// Round trips so far (tests, docs/round-trips.md).
  uint64_t round_trips() const;
  /// Caps and passwords in the cache, expired ones not swept yet (tests).
  size_t cached_entries() const;

private:
  template <class T>
  struct cached {
    T value;
    clock::time_point until;
  };

  /// What user_env.lua reads in one round trip; fills the caches.
  struct user_env {
    int64_t cap = 0;
    /// api_keys:{user}:{map_key} ("" when the user has no map_key).
    std::string master_key;
    std::optional<std::string> master_role;
    std::optional<std::string> master_password;
    /// The password of the role asked for (master or role index), if found.
    std::optional<std::string> wanted_password;
  };
  /// `dbuser`: the role whose password is wanted ("" for none).
  caf::expected<user_env> read_env(const std::string& user, const std::string& dbuser,
                                   clock::time_point now);
  /// user_env.lua's keys and arguments for `user` and role `dbuser`, and its
  /// answer read.
  struct env_call {
    std::vector<std::string> keys;
    std::vector<std::string> args;
  };
  static env_call call_for(const std::string& user, const std::string& dbuser);
  caf::expected<user_env> decode_env(const std::string& user, const redis::reply& r) const;

  /// Caches what `e` says (REQUIRES: mtx_ held).
  void remember(const std::string& user, const std::string& dbuser, const user_env& e,
                clock::time_point now);

  /// Cache entries (caps and passwords) above which expired ones are swept
  /// at the next insert; then twice what is left, at least sweep_above.
  static constexpr size_t sweep_above = 4096;
  size_t sweep_at_ = sweep_above;

  int64_t default_timeout_ms_;
  std::chrono::milliseconds cache_ttl_;
  mutable std::mutex mtx_;
  redis::client client_;
  std::map<std::string, cached<int64_t>> caps_;
  /// Hits and misses (nullopt), both for cache_ttl.
  std::map<std::pair<std::string, std::string>, cached<std::optional<std::string>>> passwords_;
};

} // namespace batchq::ports
