// The scheduler (SPEC §2, §5, §7): one per node; decides which user runs next.
//
// A user it hears of (`wants`) is served only once this node holds the user's
// lease (`batch:locks:user:{user}`); then the user gets a user_queue (through a
// factory) and waits. After every event the scheduler grants turns: waiting
// users in fair order — fewest statements run so far, then longest waiting —
// each take a capacity slot of their database host (at most `capacity`
// statements per host, cluster-wide) and their user_queue gets `run`. A turn
// ends with `done` (one job ran: back to waiting) or `idle` (the queue was
// empty: the lease is released in the one script that releases only while the
// queue is still empty, then the user_queue stops and the user is forgotten, so
// nothing is held for a user without queued jobs). Every lease_ttl/5 a `tick`
// renews leases and slots; a lease that cannot be renewed is lost: the
// canceller stops that user's statement at once and the user is dropped.
// `drain` (SIGTERM) stops granting, waits `shutdown_grace` for running turns,
// then asks the canceller to stop the rest (they are requeued by their runners)
// and releases every lease before it answers.
//
// Crash sweep (SPEC §7): every sweep_interval the scheduler asks which users
// have work in progress but no lease holder (`orphaned_users`, their node
// died) and serves each one it does not know yet exactly as if it had heard
// `wants`: lease, user_queue, turn. The user_queue's first run recovers the
// orphaned jobs (status `recover`: fail or requeue per batch.on-node-loss),
// then dequeues; an empty queue ends the turn with `idle` and the lease is
// released. No sweep while draining; a failed sweep is retried at the next one.
//
// Concurrency: all state lives in the actor. It calls the coordination port,
// which BLOCKS on Redis in production, so it is spawned detached (its own
// thread, still with a mailbox and timers). Deterministic tests pass a fake
// port and detached = false.
//
// Round trips per turn (docs/round-trips.md): acquire_slot 1 + release_slot 1;
// per user served: acquire_lease 1 + database_host 1 (cached while served) +
// release_lease_if_idle 1; per tick: 1 per held lease + 1 per held slot; per
// sweep: orphaned_users 1 (+ the per-user cost above for each orphan served).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <caf/actor_system.hpp>

#include "messages/interfaces.hpp"
#include "src/ports/ports.hpp"

namespace batchq {

struct settings;

/// What the scheduler reads from the configuration (SPEC §9).
struct scheduler_settings {
  /// batch.capacity: concurrent statements per database host, cluster-wide.
  int64_t capacity = 4;
  /// batch.lease-ttl: TTL of user leases and capacity slots; renewed every ttl/5.
  std::chrono::milliseconds lease_ttl{5000};
  /// batch.shutdown-grace: how long a drain waits for running jobs.
  std::chrono::milliseconds shutdown_grace{10000};
  /// batch.sweep-interval: period of the orphaned work-in-progress sweep.
  std::chrono::milliseconds sweep_interval{5000};

  /// The scheduler's part of the validated configuration.
  static scheduler_settings from(const settings& s);
};

/// Creates the user_queue of `user` once this node holds its lease (`lease_token`).
/// Production binds spawn_user_queue with the status actor and a runner factory;
/// tests spawn mocks.
using user_queue_factory = std::function<user_queue_actor(
  caf::actor_system&, const std::string& user, const std::string& lease_token,
  scheduler_actor self)>;

/// Spawns the scheduler. `coordination` is used by the scheduler only (it is not
/// thread-safe); `canceller` receives `stop(user, lease_lost | drain)`.
/// REQUIRES: coordination, make_queue.
scheduler_actor spawn_scheduler(caf::actor_system& sys, const scheduler_settings& cfg,
                                std::shared_ptr<ports::coordination> coordination,
                                canceller_actor canceller, user_queue_factory make_queue,
                                bool detached = true);

} // namespace batchq
