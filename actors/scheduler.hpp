// The scheduler (SPEC §2, §5, §7): one per node; decides which user runs
// next, and holds a user lease ONLY for the users it is running now.
//
// The line. A user it hears of (`wants`: the subscriber, a rescan, the crash
// sweep) waits in a local line, holding nothing in Redis: 10,000 woken users
// cost no Redis work until their turn. The line is fair — fewest statements
// run so far, then longest waiting — and kept per database host (the
// capacity bucket; looked up in batches of up to 64 users, one pipelined
// round trip, and cached), so a host at capacity never holds up users of
// another host.
//
// Turns. While fewer than `max_running` turns run, the fairest waiting user
// whose host is neither at capacity here nor known to be full gets a turn: a
// fresh lease token, a slot token, a local lease deadline, and a user_queue
// (through a factory) that takes lease + slot + the first job in ONE turn step
// and writes each job's end in the step that claims the next. A turn runs up
// to `turn_jobs` jobs; once somebody waits for its host it goes on to the
// user's next job only until `turn_slice` after its grant, then it is told to
// `yield` (after the job it runs; with a slice of 0, after one job), so
// fairness is decided between jobs while a user with short jobs keeps its
// slot for a few milliseconds' worth of them. A turn that
// finds the host full marks it full until a slot is given back here or the
// next tick (one probe per full host per tick).
//
// Leases and fencing. Every lease_ttl/5 a tick renews every started turn's
// lease and slot in ONE round trip (the coordination actor, on its own
// thread). Each turn has a local deadline = when the last successful renewal
// (or the grant) was sent + ttl - ttl/5; it lives in the cancel registry,
// where the turn's statement tokens see it (no statement is sent past it).
// A timer fires at the deadline: if no renewal moved it, the turn is FENCED
// without waiting for Redis — the canceller stops the user's statement, the
// user_queue sends nothing more — and so is a turn whose renewal says the
// lease is gone. A fenced turn ends once its runner stopped; what it could
// not write (the runner's state) comes back in the report's carry, stays
// with the waiting user and is settled by the user's next turn here. Every
// message about a turn carries its token: a report of an older turn is
// ignored.
//
// Crash sweep (SPEC §7): every sweep_interval the scheduler asks which users
// have work in progress but no lease holder (their node died) and puts each
// one it does not know into the line; its turn settles the orphans first.
// A node never finds its own live work orphaned: its running users hold
// renewed leases, its fenced ones are in its line with their carry.
//
// Drain (SIGTERM): no new turns; the waiting users are announced (one
// pipeline) so other nodes serve them now; running turns end after their job
// (their lease released, the user published after the release); when
// shutdown_grace is over the rest are stopped: the canceller fires their
// drain tokens, the runners put the jobs back to pending, and each one is
// written back at the head of its queue, out of work in progress, with its
// lease and slot released and its user published, in one step. Users whose
// jobs could not be written earlier get a settle-only turn. The answer comes
// when every turn ended, or `drain_bound` after the grace: then `unsettled`
// counts what could not be written, and the node exits non-zero.
//
// Concurrency: event-based and never blocks (Redis through the coordination
// actor, with request timeouts); all state lives in the actor. Deterministic
// tests pass mocks of coordination, canceller and user_queues.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <caf/actor_system.hpp>

#include "actors/turn_flags.hpp"
#include "messages/interfaces.hpp"
#include "src/pg/cancel_registry.hpp"

namespace batchq {

struct settings;

/// What the scheduler reads from the configuration (SPEC §9).
struct scheduler_settings {
  /// batch.capacity: concurrent statements per database host, cluster-wide.
  int64_t capacity = 4;
  /// batch.max-running: turns (and so leases and runner threads) at once here.
  int64_t max_running = 8;
  /// batch.lease-ttl: TTL of user leases and capacity slots; renewed every ttl/5.
  std::chrono::milliseconds lease_ttl{5000};
  /// batch.shutdown-grace: how long a drain lets running jobs finish.
  std::chrono::milliseconds shutdown_grace{10000};
  /// batch.sweep-interval: period of the orphaned work-in-progress sweep.
  std::chrono::milliseconds sweep_interval{5000};
  /// How long a drain waits after the grace for every turn to end.
  std::chrono::milliseconds drain_bound{10000};
  /// Jobs a turn runs in a row at most.
  int32_t turn_jobs = 100;
  /// batch.turn-slice: how long after its grant a turn may still go on to its
  /// user's next job once somebody waits for its host (0: one job).
  std::chrono::milliseconds turn_slice{5};
  /// How long a looked-up database host is trusted.
  std::chrono::milliseconds host_cache_ttl{60000};

  /// The scheduler's part of the validated configuration.
  static scheduler_settings from(const settings& s);
};

/// Creates the user_queue of one turn (production: spawn_user_queue with the
/// status actor, the canceller and a runner factory; tests spawn mocks).
/// `flags` are the turn's (turn_flags.hpp): the scheduler clears them as it
/// tells the turn to yield, stop or fence.
using user_queue_factory = std::function<user_queue_actor(
  caf::actor_system&, turn_grant, scheduler_actor, std::shared_ptr<turn_flags> flags)>;

/// Spawns the scheduler. `coordination` answers renewals, host lookups, the
/// sweep and announcements; `canceller` receives `stop(user, token,
/// lease_lost | drain)`; `registry` keeps each turn's lease deadline.
/// REQUIRES: make_queue, registry.
scheduler_actor spawn_scheduler(caf::actor_system& sys, const scheduler_settings& cfg,
                                coordination_actor coordination, canceller_actor canceller,
                                std::shared_ptr<pg::cancel_registry> registry,
                                user_queue_factory make_queue);

} // namespace batchq
