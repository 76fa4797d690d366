// Every actor interface of a batchq node, in one file (STYLE.md habit 1): a
// newcomer reads this to see who may say what to whom. Each handler has a
// one-line comment; message structs are in types.hpp, errors in error.hpp.
// docs/architecture.md draws the path of a job through these actors.
//
// Errors travel as caf::error with batchq::ec (error.hpp); a failed *job* is a
// status inside job_summary, never an error.
#pragma once

#include <string>

#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "messages/types.hpp"

namespace batchq {

// -- atoms (at most 10 characters) ---------------------------------------------

using wants_atom = caf::atom_constant<caf::atom("wants")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using idle_atom = caf::atom_constant<caf::atom("idle")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using drain_atom = caf::atom_constant<caf::atom("drain")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using run_atom = caf::atom_constant<caf::atom("run")>;
using step_atom = caf::atom_constant<caf::atom("step")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using remote_cancel_atom = caf::atom_constant<caf::atom("rcancel")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using final_atom = caf::atom_constant<caf::atom("final")>;
using dequeue_atom = caf::atom_constant<caf::atom("dequeue")>;
using write_atom = caf::atom_constant<caf::atom("write")>;
using requeue_atom = caf::atom_constant<caf::atom("requeue")>;
using rescan_atom = caf::atom_constant<caf::atom("rescan")>;
using ready_atom = caf::atom_constant<caf::atom("ready")>;
using recover_atom = caf::atom_constant<caf::atom("recover")>;

// -- status: the only writer of job state ------------------------------------------

using status_actor = caf::typed_actor<
  // Moves the user's next pending job into work in progress and claims it
  // (status=running, node); job_ticket.job_id is empty when the queue is empty.
  // Errors: lease_lost.
  caf::replies_to<dequeue_atom, std::string /*user*/, std::string /*lease_token*/>::with<
    job_ticket>,
  // Applies one fenced state write; refuses what the state machine refuses
  // (invalid_transition, "Cannot set status from A to B"), lease_lost, job_not_found.
  // A final status also sets the TTL and leaves work in progress.
  caf::replies_to<write_atom, state_write>::with<bool>,
  // Writes the job back to `pending` and puts it at the head of its user's queue
  // (drain, on-node-loss=requeue), then publishes the user. Errors: lease_lost.
  caf::replies_to<requeue_atom, state_write>::with<bool>,
  // The Redis half of a user's cancel: a pending job of `user` becomes cancelled
  // (steps skipped) atomically; otherwise reports its status and node.
  // Errors: job_not_found (unknown id or another user's job).
  caf::replies_to<cancel_atom, std::string /*job_id*/, std::string /*user*/>::with<
    pending_cancel>,
  // Recovers the user's orphaned work in progress (SPEC §7 "Crash") just after this
  // node took the user's lease: each running job left in batch:wip:user:{user} gets
  // its backends cancelled and batch.on-node-loss applied (failed, or requeued at
  // the head); stale entries leave WIP. Answers how many jobs were recovered.
  // Errors: lease_lost.
  caf::replies_to<recover_atom, std::string /*user*/, std::string /*lease_token*/>::with<
    int32_t>>;

// -- job_runner: one running job ----------------------------------------------------

using job_runner_actor = caf::typed_actor<
  // Runs the job to a final status (or until drained / the lease is lost) and
  // answers with how it ended. Blocking PostgreSQL calls happen here only, in a
  // detached actor.
  caf::replies_to<run_atom, job_ticket>::with<job_summary>,
  // Internal: runs the next statement (one per message, so the mailbox is read
  // between statements).
  caf::reacts_to<step_atom>>;

// -- user_queue: one user's turn on this node ---------------------------------------

using user_queue_actor = caf::typed_actor<
  // A grant from the scheduler: dequeue one job, run it, then tell the scheduler
  // `done` (with the summary) or `idle` (the queue was empty). Never two jobs at once.
  caf::reacts_to<run_atom>>;

// -- scheduler: which user runs next -------------------------------------------------

using scheduler_actor = caf::typed_actor<
  // `user` has queued jobs (from the subscriber, a rescan or a requeue).
  caf::reacts_to<wants_atom, std::string /*user*/>,
  // The user_queue of `user` finished one job.
  caf::reacts_to<done_atom, std::string /*user*/, job_summary>,
  // The user_queue of `user` found the queue empty.
  caf::reacts_to<idle_atom, std::string /*user*/>,
  // Timer: renews leases and capacity slots, retries users waiting for capacity.
  caf::reacts_to<tick_atom>,
  // Graceful drain: stop granting, give running jobs the grace period, then stop
  // them (requeued), release every lease; answers when all is done.
  caf::replies_to<drain_atom>::with<drain_report>,
  // A snapshot (tests, metrics).
  caf::replies_to<stats_atom>::with<scheduler_stats>>;

// -- subscriber: who has work --------------------------------------------------------

using subscriber_actor = caf::typed_actor<
  // From the SUBSCRIBE thread: a `batch:users` message named `user`.
  caf::reacts_to<wants_atom, std::string /*user*/>,
  // Timer (every batch.rescan-interval) and start-up: re-read batch:indexes:queue
  // and report every user in it to the scheduler.
  caf::reacts_to<rescan_atom>,
  // Whether the SUBSCRIBE connection is up (for /ready).
  caf::replies_to<ready_atom>::with<bool>>;

// -- canceller: stops jobs, here or on another node ----------------------------------

using canceller_actor = caf::typed_actor<
  // A user's cancel of one of their jobs, wherever it is: pending in Redis,
  // running here, or running on another node. Answers once the cancel is recorded.
  // Errors: job_not_found, invalid_transition ("Cannot set status from done to cancelled").
  caf::replies_to<cancel_atom, std::string /*job_id*/, std::string /*user*/>::with<
    cancel_result>,
  // From another node's canceller (over the middleman): stop the statement of a
  // job running on this node; true if it ran here.
  caf::replies_to<remote_cancel_atom, std::string /*job_id*/>::with<bool>,
  // From the scheduler: stop every running statement of `user` on this node.
  caf::reacts_to<stop_atom, std::string /*user*/, stop_reason>,
  // From a runner: the job's final status is recorded (completes a waiting cancel).
  caf::reacts_to<final_atom, std::string /*job_id*/, std::string /*status*/>>;

} // namespace batchq
