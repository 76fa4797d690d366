// The real ports::job_store: the turn script (src/redis/turns.hpp) and the
// cancel of a pending job (src/redis/ops.hpp) over one Redis connection
// (SPEC §4, §5; docs/redis-layout.md).
//
// Each call is one script or command on a warm connection (one round trip),
// except cancel_pending when it loses a race with a claim: it then also
// reads the job's `node` field (HGET, a second round trip) so the canceller
// knows where the job runs.
//
// Thread safety: none; the calls BLOCK on Redis. One owner at a time — the
// status actor, spawned detached. Redis outages surface as redis_unavailable
// (the client reconnects with backoff on a later call; a failed script is not
// re-sent: the turn script is safe to retry, and its callers do).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "src/ports/ports.hpp"
#include "src/redis/client.hpp"

namespace batchq::ports {

class redis_job_store : public job_store {
public:
  /// Does no IO: the first call connects.
  explicit redis_job_store(redis::endpoint ep);

  /// redis::turn_step. Job hashes in the answer have their fields in name
  /// order. Errors: lease_lost, job_not_found, invalid_transition,
  /// redis_unavailable, redis_error.
  caf::expected<turn_answer> turn(const turn_request& r, const field_pairs& claim,
                                  int64_t final_ttl_seconds) override;

  /// redis::cancel_pending_job. When the job was not pending, `status` is its
  /// status and, if it is running, `node` its node field (one more round trip).
  /// Errors: job_not_found ("Job with id <id> not found").
  caf::expected<pending_cancel> cancel_pending(const std::string& job_id, const std::string& user,
                                               const field_pairs& set,
                                               int64_t ttl_seconds) override;

  /// HGETALL, fields in name order; empty when there is no such job.
  caf::expected<field_pairs> read(const std::string& job_id) override;

  caf::expected<bool> cancel_mark(const std::string& job_id, bool set) override;

  /// The connection's round-trip counter (tests, docs/round-trips.md).
  uint64_t round_trips() const noexcept { return client_.round_trips(); }

private:
  redis::client client_;
};

} // namespace batchq::ports
