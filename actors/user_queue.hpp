// The user_queue (SPEC §2): one user's turns on this node, while the node holds
// the user's lease. Spawned by the scheduler (through its user_queue_factory)
// and stopped by it when the user goes idle or the lease is lost.
//
// The first `run` after it is created (just after its node took the lease)
// first asks the status actor to `recover` the user's orphaned work in progress
// (SPEC §7 "Crash"; status.hpp), then dequeues as below; a recover error is
// logged and the dequeue still happens, except lease_lost, which answers
// `idle` as a dequeue error does. Later turns do not recover again.
//
// On each `run` (a turn granted by the scheduler):
//   request(status, dequeue, user, lease_token)   -- atomic: queue -> WIP, claim,
//                                                    skipping ids no longer pending
//     empty job_id  -> idle(user) to the scheduler (it releases the lease only if
//                      the queue is still empty: no lost wake-up)
//     a job         -> spawn a job_runner (factory), request(runner, run, ticket)
//                      with no timeout -> done(user, summary) to the scheduler
// It never holds two jobs at once: a `run` that arrives while a turn is in
// progress is a scheduler bug; it is logged and ignored (the turn in progress
// still answers). A dequeue error (lease_lost, Redis unreachable, a timeout)
// answers `idle`: the scheduler's release_lease_if_idle then tells the truth —
// lease lost -> the user is dropped; jobs still queued -> the user waits for
// its next turn; Redis down -> retried once Redis answers — so an error never
// wedges the user. A runner that fails (an error instead of a summary, e.g. it
// died) answers `done` with a summary of that job whose status is empty and
// statements_run 0.
//
// Concurrency: event-based, no I/O and no blocking; all state in the actor.
// The runner quits by itself after answering (job_runner.hpp); if the
// user_queue is stopped mid-job, the runner's answer is dropped (the scheduler
// stops a running user only after asking the canceller to stop its statement).
#pragma once

#include <functional>
#include <string>

#include <caf/actor_system.hpp>

#include "actors/scheduler.hpp"
#include "messages/interfaces.hpp"

namespace batchq {

/// Spawns the runner of one job (production: spawn_job_runner with its ports).
using job_runner_factory = std::function<job_runner_actor(caf::actor_system&)>;

/// Spawns the user_queue of `user`. `lease_token` fences every dequeue.
/// REQUIRES: make_runner.
user_queue_actor spawn_user_queue(caf::actor_system& sys, const std::string& user,
                                  const std::string& lease_token, scheduler_actor scheduler,
                                  status_actor status, job_runner_factory make_runner);

/// The scheduler's production user_queue_factory: spawn_user_queue with
/// `status` and `make_runner`.
user_queue_factory make_user_queue_factory(status_actor status, job_runner_factory make_runner);

} // namespace batchq
