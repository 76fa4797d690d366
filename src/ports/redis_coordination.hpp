// The real `ports::coordination` (the scheduler's user leases and DB-host
// capacity slots, SPEC §5) over src/redis: each call is one operation of
// src/redis/ops.hpp, so one round trip on a warm connection (docs/redis-layout.md).
//
// Two connections at most: the batch database (`redis.db`) for leases and
// slots, and the metadata database (SPEC §4: DB 5) for `rails:users:{user}`.
// When both are the same database one connection serves both. Connections are
// opened on first use and reconnect with the client's backoff; a Redis outage
// is reported as redis_unavailable, never thrown.
//
// Thread safety: none (ports.hpp); it BLOCKS, so its owner (the scheduler) is
// spawned detached.
#pragma once

#include <optional>

#include "src/ports/ports.hpp"
#include "src/redis/client.hpp"

namespace batchq::ports {

class redis_coordination : public coordination {
public:
  /// `batch` selects the batch database; `metadata_db` is the database that
  /// holds `rails:users:{user}` (default 5, SPEC §4). Does no IO.
  explicit redis_coordination(redis::endpoint batch, int metadata_db = 5);

  caf::expected<bool> acquire_lease(const std::string& user, const std::string& token,
                                    std::chrono::milliseconds ttl) override;
  caf::expected<bool> renew_lease(const std::string& user, const std::string& token,
                                  std::chrono::milliseconds ttl) override;
  caf::expected<void> release_lease(const std::string& user, const std::string& token) override;
  /// Errors: lease_lost when `token` no longer holds the lease (nothing changed).
  caf::expected<bool> release_lease_if_idle(const std::string& user,
                                            const std::string& token) override;

  caf::expected<bool> acquire_slot(const std::string& host, int64_t capacity,
                                   const std::string& slot, std::chrono::milliseconds ttl) override;
  caf::expected<bool> renew_slot(const std::string& host, const std::string& slot,
                                 std::chrono::milliseconds ttl) override;
  caf::expected<void> release_slot(const std::string& host, const std::string& slot) override;

  /// HGET rails:users:{user} database_host on the metadata database.
  caf::expected<std::string> database_host(const std::string& user) override;

  /// PUBLISH batch:users user (pub/sub ignores the selected database).
  caf::expected<void> announce(const std::string& user) override;

  /// `wip_orphans` on the batch database (one round trip).
  caf::expected<std::vector<std::string>> orphaned_users() override;

  /// Round trips of both connections so far (docs, tests).
  uint64_t round_trips() const noexcept;

private:
  redis::client& metadata() noexcept { return metadata_ ? *metadata_ : batch_; }

  redis::client batch_;
  /// Set only when the metadata database differs from the batch database.
  std::optional<redis::client> metadata_;
};

} // namespace batchq::ports
