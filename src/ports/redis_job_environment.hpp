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
// password(user, dbuser): the master key's password when its role is dbuser.
//   Otherwise `SCAN <cursor> MATCH
//   api_keys:{user}:* COUNT 1000` page by page, each page's records read with
//   one pipelined HMGET per key, until a record whose database_role is dbuser
//   (1 + 2 per page). nullopt when no record has it.
//   Found passwords are cached; misses are not (a key created a moment later
//   is seen at once). The password is never logged.
//
// Thread-safe: one instance is shared by every runner thread of the node; a
// mutex guards the connection and the cache (lookups are rare: once per job
// and cached). Calls BLOCK on Redis: only detached actors call them.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

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

  /// Errors: redis_unavailable, redis_error (a wrong-typed key found by the
  /// SCAN is skipped, not an error).
  caf::expected<std::optional<std::string>> password(const std::string& user,
                                                     const std::string& dbuser) override;

  /// Round trips so far (tests, docs/round-trips.md).
  uint64_t round_trips() const;

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
  };
  caf::expected<user_env> read_env(const std::string& user, clock::time_point now);

  /// The fallback: a key record other than `master_key` with role `dbuser`.
  caf::expected<std::optional<std::string>> lookup_password(const std::string& user,
                                                             const std::string& dbuser,
                                                             const std::string& master_key);

  int64_t default_timeout_ms_;
  std::chrono::milliseconds cache_ttl_;
  mutable std::mutex mtx_;
  redis::client client_;
  std::map<std::string, cached<int64_t>> caps_;
  std::map<std::pair<std::string, std::string>, cached<std::string>> passwords_;
};

/// `text` with Redis glob metacharacters (`*`, `?`, `[`, `]`, `\`) escaped, for
/// a SCAN MATCH pattern that must match it literally.
std::string escape_glob(const std::string& text);

} // namespace batchq::ports
