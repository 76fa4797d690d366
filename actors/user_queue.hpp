// The user_queue (SPEC §2): ONE turn of one user on this node. The scheduler
// spawns it with a turn_grant (user, lease token, host, slot, budget, and the
// node's unsettled state of this user's jobs, if any) and it carries the turn
// out through the status actor's `turn` steps, each one Redis round trip
// (docs/redis-layout.md "Turns"):
//
//   next                 -> lease + slot taken, work in progress settled, the
//                           next job claimed (status running, node, claim)
//     empty | busy | full -> ended (nothing held)
//     recover(orphans)   -> settle each one, oldest first (below), then next
//     job                -> run it (a job_runner), then ONE step writes its
//                           end and goes on:
//       finished -> final write + next (budget left, no yield or drain)
//                   or final write + release
//       drained  -> requeue at the head + release (lease and slot given
//                   back, then the user published so another node takes it)
//       lost     -> nothing more is written: ended(fenced) carries the
//                   runner's state for the next turn on this node
// The scheduler hears `started` once the lease is known to be held (the
// renewals start then) and `ended` with a turn_report at the end; then the
// actor quits. It never holds two jobs at once, and the user's next job is
// never claimed while one of the user's jobs is still in work in progress:
// the script returns such a job as an orphan first, or — when it is this
// turn's own claim whose reply was lost — the same job again.
//
// Settling an orphan (a job running under another claim): when it is one of
// this node's unsettled jobs (the grant's carry: a fenced turn of this node
// that could not write its end; same id and claim), the runner's state is
// the truth and is written (final, or back to pending at the head with the
// interrupted statement pending: job::drain), so this node never reports its
// own live work as lost. Otherwise its node died or was cut off: a blocking
// helper stops its backends and waits until none runs a statement of the job
// (ports::backend_cancel::stop_backends_of_job; retried until it can say so),
// and only then job::node_lost applies batch.on-node-loss (the interrupted
// step fails with `job interrupted: node <id> was lost while running it`, or
// the job goes back to the head to resume there). No two statements of one
// user overlap: a later job waits until the earlier one is known to be gone.
//
// Failures: a step that fails for any reason but a sure refusal (Redis
// unreachable or still loading its AOF, no answer in time, an unexpected
// error) is sent again, unchanged, after 50 ms .. 1 s: the script is a
// compare-and-set on status and claim, and recognises a retry of a write that
// landed. lease_lost ends the turn as fenced (carrying what could not be
// written). A write the store refuses because the stored job changed
// (invalid_transition, job_not_found: it is no longer this turn's) is logged
// and the turn released.
//
// From the scheduler: `yield` (fairness, drain) makes the current job the
// last one; `stop` (the drain's grace is over; the canceller has fired the
// drain token) makes it the last one and ends the turn as soon as the runner
// has requeued it; `fence` (the lease deadline passed) stops every request:
// nothing more is sent, the turn ends once the runner and the request in
// flight are done. The canceller hears `final(job_id, status)` after each
// job's end is written (a waiting cancel answers then).
//
// The runner (job_runner.hpp "Going on"): in production every turn is served
// by one runner from the node's pool, bound to the turn when this actor takes
// it and given back when the turn ends. Its `next` steps go through the
// runner (`claim`): the runner claims on its own Redis connection and runs
// the job it claimed at once, and writes a plainly ended job's end with the
// next claim or the release itself; whatever it does not carry on with (an
// orphan, an empty queue, a failure, a drained or lost job, a stop) it hands
// back with the step it sent, and this actor goes on from that answer as if
// it had sent the step. Every other step (orphans, requeues, retries, a
// settle-only turn) goes through the status actor.
//
// Concurrency: event-based, never blocks; the runner and the helper that
// stops backends run on threads of their own in production.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <caf/actor_system.hpp>

#include "actors/turn_flags.hpp"
#include "messages/interfaces.hpp"
#include "src/job/progress.hpp"
#include "src/ports/ports.hpp"

namespace batchq {

struct settings;

/// A runner for a turn (production: one from the node's pool of runners,
/// each with its own job store, so that it claims and goes on by itself;
/// job_runner.hpp "Going on").
using job_runner_factory = std::function<job_runner_actor(caf::actor_system&)>;

struct user_queue_settings {
  /// This node (cluster.node-id): its own orphans are never deferred.
  std::string node_id;
  /// batch.on-node-loss: what becomes of an orphan of a dead node.
  job::node_loss_mode on_node_loss = job::node_loss_mode::fail;
  /// Bound on each request to the status actor (a late answer is a retry).
  std::chrono::milliseconds status_timeout{10000};
  /// First and longest pause between retries of a failed step.
  std::chrono::milliseconds retry_initial{50};
  std::chrono::milliseconds retry_max{1000};
  /// How long one attempt to stop an orphan's backends may take.
  std::chrono::milliseconds backend_stop_bound{10000};
  /// An orphan whose node is still registered and that was written less than
  /// this long ago is left to its node for now (2 x batch.lease-ttl).
  std::chrono::milliseconds defer_window{10000};
  /// Spawn the blocking helper detached (production) or on the scheduler (tests).
  bool detached_helpers = true;

  /// The user_queue's part of the validated configuration.
  static user_queue_settings from(const settings& s);
};

/// What a user_queue talks to (besides the scheduler that spawns it).
struct user_queue_deps {
  status_actor status;
  canceller_actor canceller;
  job_runner_factory make_runner;
  /// The runners serve whole turns (they have a job store of their own): one
  /// is bound to each turn, claims its jobs and writes their ends itself
  /// (job_runner.hpp "Going on"). False: a runner per job, claims and ends
  /// through the status actor (tests).
  bool runners_go_on = false;
  /// Takes back the runner of a turn that ended (production: the node's pool);
  /// null: the runner is told to exit.
  std::function<void(job_runner_actor)> give_back;
  /// Stops an orphan's backends (SPEC §7); may be null (tests: then nothing is
  /// stopped and the orphan is settled at once).
  std::shared_ptr<ports::backend_cancel> backends;
};

/// Spawns the user_queue of one turn; it starts on `run`. `flags` are the
/// turn's (turn_flags.hpp): the scheduler clears them before it sends yield,
/// stop or fence, and the turn's runner reads them; null: flags of its own
/// that nothing clears (tests that yield mid-job clear them as the scheduler
/// would).
/// REQUIRES: deps.make_runner, deps.status.
user_queue_actor spawn_user_queue(caf::actor_system& sys, const user_queue_settings& cfg,
                                  turn_grant grant, scheduler_actor scheduler,
                                  user_queue_deps deps,
                                  std::shared_ptr<turn_flags> flags = nullptr);

} // namespace batchq
