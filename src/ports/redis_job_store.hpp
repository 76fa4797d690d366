// The real ports::job_store: the job-state scripts of src/redis/ops.hpp over
// one Redis connection (SPEC §4, §5; docs/redis-layout.md).
//
// Each call is one script or command on a warm connection (one round trip),
// except cancel_pending when it loses a race with a dequeue: it then also
// reads the job's `node` field (HGET, a second round trip) so the canceller
// knows where the job runs.
//
// Thread safety: none; the calls BLOCK on Redis. One owner at a time — the
// status actor, spawned detached. Redis outages surface as redis_unavailable
// (the client reconnects with backoff on a later call; a failed script is not
// re-sent).
#pragma once

#include <cstdint>
#include <string>

#include "src/ports/ports.hpp"
#include "src/redis/client.hpp"

namespace batchq::ports {

class redis_job_store : public job_store {
public:
  /// Does no IO: the first call connects.
  explicit redis_job_store(redis::endpoint ep);

  /// redis::dequeue_job with `claim` as its claim fields. The ticket carries
  /// the hash after the claim, fields in name order; an empty job_id when the
  /// queue was empty. Errors: lease_lost, redis_unavailable, redis_error.
  caf::expected<job_ticket> dequeue(const std::string& user, const std::string& lease_token,
                                    const field_pairs& claim) override;

  /// redis::write_job with write_mode{final, ttl_seconds, expected_status =
  /// w.from_status, remove_fields = w.del}. Errors: lease_lost, job_not_found,
  /// invalid_transition ("job status is now <s>": the stored status is not
  /// w.from_status; nothing written).
  caf::expected<void> write(const state_write& w, bool final, int64_t ttl_seconds) override;

  /// redis::requeue_job (head of the queue, publish), deleting w.del.
  /// Errors: lease_lost, job_not_found.
  caf::expected<void> requeue(const state_write& w) override;

  /// redis::cancel_pending_job. When the job was not pending, `status` is its
  /// status and, if it is running, `node` its node field (one more round trip).
  /// Errors: job_not_found ("Job with id <id> not found").
  caf::expected<pending_cancel> cancel_pending(const std::string& job_id, const std::string& user,
                                               const field_pairs& set,
                                               int64_t ttl_seconds) override;

  /// HGETALL, fields in name order; empty when there is no such job.
  caf::expected<field_pairs> read(const std::string& job_id) override;

  /// redis::wip_job_ids (LRANGE). Errors: redis_unavailable, redis_error.
  caf::expected<std::vector<std::string>> wip_jobs(const std::string& user) override;

  /// redis::remove_from_wip (fenced script). Errors: lease_lost, redis_unavailable.
  caf::expected<void> remove_from_wip(const std::string& job_id, const std::string& user,
                                      const std::string& lease_token) override;

  /// The connection's round-trip counter (tests, docs/round-trips.md).
  uint64_t round_trips() const noexcept { return client_.round_trips(); }

private:
  redis::client client_;
};

} // namespace batchq::ports
