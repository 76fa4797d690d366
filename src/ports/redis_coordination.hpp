// The real `ports::coordination` (the scheduler's side of SPEC §5) over
// src/redis: renewals of every held lease and slot (one script), host
// lookups and announcements (one pipeline each), the crash sweep (one
// script): one round trip per call on a warm connection
// (docs/redis-layout.md).
//
// Two connections at most: the batch database (`redis.db`) and the metadata
// database (SPEC §4: DB 5) for `rails:users:{user}`. When both are the same
// database one connection serves both. Connections are opened on first use
// and reconnect with the client's backoff; a Redis outage is reported as
// redis_unavailable, never thrown.
//
// Thread safety: none (ports.hpp); it BLOCKS, so its owner (the coordination
// actor) is spawned detached.
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

  /// redis::renew_turns.
  caf::expected<std::vector<std::string>> renew(const std::vector<held_lease>& held,
                                                std::chrono::milliseconds ttl) override;

  /// redis::database_hosts on the metadata database.
  caf::expected<std::vector<std::string>> database_hosts(
    const std::vector<std::string>& users) override;

  /// redis::announce_users (pub/sub ignores the selected database).
  caf::expected<void> announce(const std::vector<std::string>& users) override;

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
