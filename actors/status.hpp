// The status actor: the ONLY writer of job state (SPEC §2, §3.3; the status
// row of docs/architecture.md). Every dequeue, status write, requeue and the
// Redis half of a user's cancel goes through it, to a ports::job_store
// (production: ports::redis_job_store, fenced Lua scripts).
//
// What it guarantees before anything reaches the store:
//  - write: the transition from_status -> to_status is one the state machine
//    allows (job::can_transition), or from == to == running (progress inside a
//    running job: a step starts or ends, a fallback runs). Anything else —
//    including pending -> pending, done -> done, or a status that is not a
//    status — is refused with ec::invalid_transition and exactly
//    `Cannot set status from <from> to <to>`, and nothing is written. The write
//    is a compare-and-set on from_status, so a concurrent change (a cancel) is
//    never overwritten; a final to_status (job::is_final) sets the TTL
//    `finished_jobs_ttl` and leaves work in progress.
//  - requeue: to_status must be `pending` and from_status `running`, `pending`
//    or empty (a drained or node-lost job); else invalid_transition.
//  - cancel: the job must exist and belong to `user`, else ec::job_not_found
//    with exactly `Job with id <id> not found` (another user's job is not
//    revealed). A pending job becomes cancelled atomically (steps skipped); for
//    any other status the actor reports {false, status, node} and writes
//    nothing: the canceller stops a running statement, or turns a final status
//    into `Cannot set status from done to cancelled`.
//  - recover (SPEC §7 "Crash"), asked by a user_queue just after its node
//    took the user's lease: only the lease holder has jobs of the user running,
//    so every job still in batch:wip:user:{user} is orphaned (its node lost the
//    lease; a still-alive old node is fenced and cancels its own statement at
//    its next renewal). For each id: no hash, another user's job, or a final
//    job -> the stale entry leaves WIP (fenced remove_from_wip); a pending
//    job (dequeued by a worker that crashed before claiming it) -> requeued at
//    the head, so nothing is lost; a running job -> its backends are cancelled
//    (backend_cancel port, when set; errors logged), job::node_lost applies
//    batch.on-node-loss, and the job is requeued at the head when it is pending
//    again (requeue mode, or an onerror fallback still to run) or else written
//    final (TTL, leaves WIP) — one warning line `job recovered` (job_id, user,
//    node, outcome) each. The answer counts the running jobs recovered.
//    lease_lost and redis_unavailable stop the recover and are answered; other
//    per-job errors (the job changed meanwhile, an undecodable record) are
//    logged and the job is left as it is.
// Store errors (lease_lost, job_not_found, redis_unavailable, ...) are passed
// back to the requester unchanged.
//
// Logs (SPEC §10): one info line `job finished` per final write (job_id,
// user, status, elapsed_ms since created_at, steps = per-step statuses). It
// keeps the record of each job it dequeued (this node's running jobs) to know
// them; the entry goes with the job's final write or requeue.
//
// Concurrency: the store blocks (Redis), so the actor is spawned detached (its
// own thread); requests are answered one at a time in mailbox order, which is
// what makes it the single writer on this node. Deterministic tests spawn it
// on the test coordinator with a fake store (detached = false).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/interfaces.hpp"
#include "src/job/clock.hpp"
#include "src/job/progress.hpp"
#include "src/ports/ports.hpp"

namespace batchq {

struct status_settings {
  /// Written into the `node` field of every job this node dequeues.
  std::string node_id;
  /// batch.finished-jobs-ttl: seconds a final job's hash is kept (<= 0: forever).
  int64_t finished_jobs_ttl = 7200;
  /// The clock for `updated_at` and elapsed times; tests pin it.
  std::function<job::time_point()> clock = [] { return std::chrono::system_clock::now(); };
  /// batch.on-node-loss: what `recover` makes of an orphaned running job.
  job::node_loss_mode on_node_loss = job::node_loss_mode::fail;
  /// pg_cancel_backend on an orphaned job's backends during `recover`; may be
  /// null (tests; then no backend is cancelled). BLOCKS: fine in the detached
  /// status actor.
  std::shared_ptr<ports::backend_cancel> backend_cancel;
};

struct status_state {
  std::shared_ptr<ports::job_store> store;
  status_settings cfg;
  /// Record (as last written) of each job this actor dequeued and that is not
  /// final yet, for the `job finished` line.
  std::map<std::string, field_pairs> running;
  static inline const char* name = "status";
};

/// The behaviour (exposed for tests that want the stateful pointer).
status_actor::behavior_type status_behavior(status_actor::stateful_pointer<status_state> self,
                                            std::shared_ptr<ports::job_store> store,
                                            status_settings cfg);

/// REQUIRES: store != nullptr; cfg.clock set. `detached` must be true whenever
/// the store blocks (production); tests pass false.
status_actor spawn_status(caf::actor_system& sys, const status_settings& cfg,
                          std::shared_ptr<ports::job_store> store, bool detached = true);

} // namespace batchq
