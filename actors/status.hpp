// The status actor: the ONLY writer of job state (SPEC §2, §3.3; the status
// row of docs/architecture.md). Every job write of a worker, every claim and
// every lease and slot change on the job path is a `turn` step (turn.lua, one
// Redis round trip), and the Redis half of a user's cancel is `cancel`; both
// go to a ports::job_store (production: ports::redis_job_store).
//
// What it guarantees before anything reaches the store:
//  - the write of a turn step is a transition the state machine allows:
//    progress = running -> running (a step starts or ends); final = running
//    (or pending) -> a final status (job::can_transition); requeue = running
//    -> pending. Anything else is refused with ec::invalid_transition and
//    exactly `Cannot set status from <from> to <to>`, and nothing is
//    written. The status field written is the declared one, whatever `set`
//    says. In Redis the write is a compare-and-set on the stored status AND
//    claim (the token of the turn that claimed the job), so a concurrent
//    change is never overwritten, and a retry of a write that landed is
//    recognised (`applied`) instead of refused.
//  - a job claimed by part `next` gets status running, `node` = this node
//    and updated_at (claim := the turn's token is added by the script).
//  - a final status sets the TTL `finished_jobs_ttl` and leaves work in
//    progress (turn.lua).
//  - cancel: the job must exist and belong to `user`, else ec::job_not_found
//    with exactly `Job with id <id> not found` (another user's job is not
//    revealed). A pending job becomes cancelled atomically (steps skipped); for
//    any other status the actor reports {false, status, node} and writes
//    nothing: the canceller stops a running statement, or turns a final status
//    into `Cannot set status from done to cancelled`.
// Store errors (lease_lost, job_not_found, invalid_transition,
// redis_unavailable, ...) are passed back unchanged: the requester decides
// whether to retry (the turn script is safe to retry).
//
// It never talks to PostgreSQL: stopping an orphan's backends is the
// user_queue's business (through a blocking helper), so a slow database never
// holds up another user's writes.
//
// Logs (SPEC §10): one info line `job finished` per job reaching a final
// status (job_id, user, status, elapsed_ms since created_at, steps =
// per-step statuses), also when the final write was a retry, never twice. It
// keeps the record of each job it claimed or was handed as an orphan (this
// node's running jobs) to know them; the entry goes with the job's final
// write, its requeue, or a refusal that means the job is no longer ours.
//
// Concurrency: the store blocks (Redis), so the actor is spawned detached (its
// own thread); requests are answered one at a time in mailbox order, which is
// what makes it the single writer on this node. Deterministic tests spawn it
// on the test coordinator with a fake store (detached = false).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/interfaces.hpp"
#include "src/job/clock.hpp"
#include "src/ports/ports.hpp"
#include "src/ports/turn_step.hpp"

namespace batchq {

struct status_settings {
  /// Written into the `node` field of every job this node claims.
  std::string node_id;
  /// batch.finished-jobs-ttl: seconds a final job's hash is kept (<= 0: forever).
  int64_t finished_jobs_ttl = 7200;
  /// The clock for `updated_at` and elapsed times; tests pin it.
  std::function<job::time_point()> clock = [] { return std::chrono::system_clock::now(); };
  /// Jobs this actor claimed whose end a runner wrote (job_runner.hpp, "Going
  /// on"): their records are dropped at the next step. May be null.
  std::shared_ptr<ports::ended_elsewhere> ended_elsewhere;
};

struct status_state {
  std::shared_ptr<ports::job_store> store;
  status_settings cfg;
  /// The turn-step rules of `cfg` (ports/turn_step.hpp), built once.
  ports::turn_rules rules;
  /// Record (as last written) of each job this actor claimed or was handed as
  /// an orphan and that is not final yet, for the `job finished` line.
  std::map<std::string, field_pairs> running;
  /// Jobs whose `job finished` line was written, newest last (bounded), so a
  /// retried final write does not log twice.
  std::set<std::string> logged;
  std::deque<std::string> logged_order;
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
