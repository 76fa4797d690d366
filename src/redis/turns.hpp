// A user's turn on a worker node, in Redis (SPEC §4, §5, §7; docs/redis-layout.md
// "Turns"): the two scripts behind every job-state write of a worker and every
// lease and capacity-slot change on the job path.
//
//  - turn_step (turn.lua): optionally writes one job (fenced by the lease,
//    compare-and-set on its status and its claim, retry-safe), then optionally
//    takes or refreshes the user's lease and a capacity slot and claims the
//    next job ("next"), or gives lease and slot back ("release"). ONE round
//    trip, whatever it does: a turn's first job costs one call (lease + slot +
//    claim), each later job one call (final write of job k + claim of job
//    k+1), the end of a turn one call (final write + release).
//  - renew_turns (turns_renew.lua): every lease and slot a node holds, one
//    round trip per tick.
//
// Costs and errors as in ops.hpp (the same error mapping). Thread safety: the
// functions keep no state; the client must not be shared between threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "src/redis/client.hpp"
#include "src/redis/ops.hpp"

namespace batchq::redis {

/// What the write part of a turn step does to the job (turn.lua part 1).
enum class write_kind : uint8_t {
  /// Fields change, the job stays running (a step started or ended).
  progress,
  /// The job reached a final status: TTL, out of work in progress.
  final,
  /// Back to pending at the head of its queue (drain, on-node-loss=requeue).
  requeue,
};

/// One job write inside a turn step.
struct turn_write {
  std::string job_id;
  /// Compare-and-set: the stored status and claim must be these ("" claim:
  /// none stored). A worker's own job carries its turn's token as claim; an
  /// orphan being recovered the claim it was found with.
  std::string expected_status;
  std::string expected_claim;
  std::string to_status;
  write_kind kind = write_kind::progress;
  /// A final job's TTL in seconds (<= 0: none).
  int64_t ttl_seconds = 0;
  /// Fields to set (`updated_at` is added when missing) and to delete.
  field_list set;
  std::vector<std::string> del;
};

/// The turn part of a step (turn.lua part 2).
enum class turn_part : uint8_t { none, next, release };

struct turn_args {
  std::string user;
  /// The lease token of this turn (fences every write; stored as the claim).
  std::string token;
  /// The user's capacity bucket (database host) and this turn's slot token.
  std::string host;
  std::string slot;
  int64_t capacity = 4;
  std::chrono::milliseconds ttl{5000};
  turn_part part = turn_part::none;
  /// The token of this node's previous turn of the user when it was fenced
  /// and has ended ("" = none): "next" takes a lease still held by it.
  std::string inherit;
  std::optional<turn_write> write;
  /// Written into the claimed job by "next" (status running, node,
  /// updated_at); claim := token is added by the script.
  field_list claim;
};

struct turn_reply {
  enum class written : uint8_t {
    none,
    /// The write happened now.
    yes,
    /// A retry of a write that had landed (its reply was lost): nothing changed.
    applied,
  };
  enum class outcome : uint8_t {
    /// turn_part::none.
    none,
    /// Nothing queued and nothing in progress; nothing is held.
    empty,
    /// Another node holds the user's lease; nothing is held.
    busy,
    /// The host is at capacity; nothing is held.
    full,
    /// `jobs[0]` is claimed by this turn (lease and slot held).
    job,
    /// `jobs` are orphans (running under another claim) to settle first
    /// (lease and slot held).
    recover,
    /// Lease and slot given back; `queue_length` jobs are still queued (then
    /// the user was published after the release).
    released,
  };
  written write = written::none;
  outcome what = outcome::none;
  std::vector<dequeued_job> jobs;
  int64_t queue_length = 0;
};

const char* to_string(turn_reply::outcome x);

/// One turn step (see the file comment and turn.lua).
/// Errors: lease_lost (a write by a turn that no longer holds the lease),
/// job_not_found, invalid_transition (status or claim changed: the context
/// names the stored status), redis_unavailable, redis_error.
caf::expected<turn_reply> turn_step(client& c, const turn_args& a);

/// A lease (and its slot) a node holds, for renew_turns.
struct held_turn {
  std::string user;
  std::string token;
  /// "" when the turn holds no slot.
  std::string host;
  std::string slot;
};

/// Renews every lease and slot in `held` (one round trip; an empty `held`
/// costs nothing). One bool per entry: false when the lease is no longer that
/// token's (lost: fence the user). Errors: redis_unavailable, redis_error.
caf::expected<std::vector<bool>> renew_turns(client& c, const std::vector<held_turn>& held,
                                             std::chrono::milliseconds ttl);

/// HGET rails:users:{u} database_host for every user, pipelined: one round
/// trip. "" for a user without a record or a host. `c` must be on the
/// metadata DB. Errors: redis_unavailable.
caf::expected<std::vector<std::string>> database_hosts(client& c,
                                                       const std::vector<std::string>& users);

/// PUBLISH batch:users for every user, pipelined: one round trip.
caf::expected<void> announce_users(client& c, const std::vector<std::string>& users);

} // namespace batchq::redis
