// The job_runner actor: runs the statements of one claimed job at a time
// (SPEC §2, §3.4, §3.5, §6, §7; the job_runner row of docs/architecture.md);
// in production the jobs of the turn it serves, then the next turn's
// ("Going on" below).
//
// Message flow for `run(ticket)` (the response promise is kept until the end):
//   decode the ticket's record (src/job/record.hpp); registry->arm(job_id,
//   user, lease_token) FIRST (a fresh token bound to the turn's lease
//   deadline; a user's cancel that came earlier left a tombstone, and the
//   token is then born fired); cap = env->timeout_cap_ms(user); then one
//   `step` (self-sent) per statement:
//     next_statement(j, cap)  -- none: the job is final -> answer `finished`
//     token fired / expired?  -- yes: stop by the reason (below); the
//                                statement never starts
//     begin -> progress write (running) -> execute (BLOCKING, with the token)
//           -> apply(outcome) -> final? answer `finished`
//                              : progress write -> next `step`
// A runner that serves no turn never writes a FINAL state or a requeue: it
// answers with the state reached (job_outcome: status, fields to set and
// delete, the status last written), and the user_queue writes it in the same
// turn step that claims the user's next job or releases the lease (one round
// trip). A runner serving a turn writes a plain end itself ("Going on").
//
// Outcomes: succeeded -> success; failed -> failure(PostgreSQL's message);
// cancelled (the token fired or the lease deadline passed) -> by the reason
// the registry recorded for this run's token:
//   user_cancel -> job::cancel (running statement `cancelled`, the rest
//                  `skipped`, job `cancelled`) -> `finished`.
//   drain       -> job::drain (back to pending, resuming at the interrupted
//                  statement) -> `drained`.
//   lease_lost, or the lease deadline passed -> `lost`: nothing more is
//                  written; the state is the truth this node knows (a
//                  statement that completed before the stop keeps its
//                  outcome), which the user's next turn on this node
//                  settles (user_queue.hpp).
// A statement that fails with 57014 `canceling statement due to user request`
// while our token did not fire was stopped by another node's pg_cancel_backend
// fallback (SPEC §5: this node was unreachable): treated as a user cancel.
// ec::pg_connection_lost -> failure(message); the session is dropped and the
// next statement reconnects.
//
// Progress writes go through the status actor (`turn`, part none) and are
// RETRIED on a transient failure (Redis unreachable, a request timeout) every
// 50 ms .. 1 s while the token has not fired: the script is a compare-and-set
// on status and claim, so a retry is safe, and a job is never left stranded
// under a live owner. Reading the environment (the user's timeout cap, the
// role's password) is retried the same way when Redis is unreachable: a
// dropped Redis connection never fails a job or runs it under the default cap. lease_lost -> `lost`; invalid_transition (the stored
// job changed under us) or job_not_found -> `aborted`.
//
// Credentials and connection (SPEC §6): the record's `pass` (CARTO jobs) or
// env->password(user, dbuser), then sql->connect(pool_key{host, port ("" ->
// runner_settings::postgres_port), dbname, dbuser}). The session is opened
// lazily, right before the first statement is executed. When there are no
// credentials (`cannot connect to the database: no credentials for role
// <dbuser>`) or the connect fails (its `cannot connect to the database: ...`),
// that reason is STICKY for the job: every statement the model yields is begun
// and failed with it (begin + apply(failure)) without touching PostgreSQL, so
// step onerror fallbacks are marked failed too, later steps skipped, and the
// job ends `failed` with that failed_reason — the ordinary failure path of the
// model.
//
// Going on (docs/performance.md "The floor", "A runner per running turn"): a
// runner spawned with a job store of its own (runner_settings::store) and
// bound to a turn (`turn`, a runner_turn) serves that user's whole turn, and
// the next turns of other users after it (the node keeps it in its pool of
// runners: no thread is created or ended per job). `claim` sends the turn's
// `next` step on its own store and runs the job it claims, so that a turn of
// one job crosses no other thread between its claim and its end. It writes
// the end of every job that ends plainly (`finished`) itself, on its own
// thread and store, under the status actor's rules (ports::run_turn_step),
// unless the turn is fenced: with the next claim while the turn's `go_on`
// flag holds (the scheduler clears it on a yield or stop) and the budget has
// room, else with the release. When that step claims a job and the turn may
// still go on, it tells the user_queue (`continued`) and runs the claimed job
// at once. Anything else — the release, a step that failed or did not claim
// a job, a drained, lost or aborted job, a fenced turn — answers `run` or
// `claim` as before, with the step it sent (if any) and that step's answer or
// error, and the user_queue carries on from there as if it had sent the step
// itself: retries, the carry and the release stay the user_queue's. After a
// claim of its own it tells the scheduler `started` (the lease is held: the
// renewals start) without waiting. After writing the end of a job the status
// actor claimed, it adds the job to the status actor's ended_elsewhere list.
// A runner bound to no turn (tests) runs one job per `run` and quits.
//
// Concurrency: execute BLOCKS (libpq) and the environment blocks (Redis), so
// in production the actor is spawned detached (its own thread). One statement
// per message: between two statements the mailbox is read. Cancels never go
// through the mailbox: they fire the pg::cancel_token (thread-safe). Tests
// spawn it on the test coordinator with fakes (detached = false).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include "actors/turn_flags.hpp"
#include "messages/interfaces.hpp"
#include "src/job/job.hpp"
#include "src/job/progress.hpp"
#include "src/pg/cancel_registry.hpp"
#include "src/ports/ports.hpp"
#include "src/ports/result_keeper.hpp"
#include "src/ports/turn_step.hpp"

namespace batchq {

struct runner_settings {
  /// This node (logs only: the claim wrote it into the record already).
  std::string node_id;
  /// The PostgreSQL port for a record whose `port` is empty (postgres.port).
  uint16_t postgres_port = 5432;
  /// The cap used when the environment cannot answer (batch.query-timeout, ms).
  int64_t default_timeout_ms = 43200000;
  /// Bound on each request to the status actor; an expired one is retried
  /// like an unreachable Redis.
  std::chrono::milliseconds status_timeout{10000};
  /// First and longest pause between retries of a progress write.
  std::chrono::milliseconds retry_initial{50};
  std::chrono::milliseconds retry_max{1000};
  /// Where kept steps keep their rows (SPEC §11); null: nothing is kept.
  std::shared_ptr<ports::result_store> results;
  /// results.max-bytes and the batching of the appends.
  ports::keeper_limits results_limits;
  /// The runner's own Redis connection for the turn steps it sends itself
  /// ("Going on"); null: it never claims or writes a step.
  std::shared_ptr<ports::job_store> store;
  ports::turn_rules rules;
  /// The status actor's (status_settings::ended_elsewhere); may be null.
  std::shared_ptr<ports::ended_elsewhere> ended_elsewhere;
};

/// The turn a runner serves ("Going on"), from the user_queue that took it.
struct runner_turn {
  /// The turn's fields (user, token, host, slot, capacity, lease ttl,
  /// inherit); part and write are filled per step.
  turn_request base;
  /// turn_grant::budget: at most this many jobs written in the turn.
  int64_t budget = 0;
  std::shared_ptr<turn_flags> flags;
  user_queue_actor queue;
  /// Hears `started` after the runner's own claim.
  scheduler_actor scheduler;
};

struct job_runner_state {
  runner_settings cfg;
  status_actor status;
  std::shared_ptr<ports::job_environment> env;
  std::shared_ptr<ports::sql_connector> sql;
  std::shared_ptr<pg::cancel_registry> registry;

  /// Set by `run`.
  bool started = false;
  bool finished = false;
  job_ticket ticket;
  job::job j;
  /// The status last written to Redis (the next write's expected status).
  std::string from_status;
  /// The claim stored with the job: the turn's lease token.
  std::string claim;
  /// The job's fields as stored in Redis (the claimed record, then every
  /// progress write that landed): a write that would change none is skipped.
  std::map<std::string, std::string> stored;
  /// The progress write in flight (or waiting for its retry), its
  /// continuation and the next pause.
  std::optional<job_write> pending;
  std::function<void()> on_written;
  std::chrono::milliseconds retry_pause{0};
  /// A statement waiting for its retry (the environment could not be read).
  std::optional<job::statement> pending_statement;
  /// The user's statement-timeout cap, once read.
  std::optional<int64_t> cap_ms;
  std::shared_ptr<pg::cancel_token> token;
  /// The run armed in the registry (empty job id otherwise); shared with the
  /// exit hook that disarms a runner killed before it finished.
  struct armed_run {
    std::string job_id;
    std::shared_ptr<pg::cancel_token> token;
  };
  std::shared_ptr<armed_run> armed = std::make_shared<armed_run>();
  std::unique_ptr<ports::sql_session> session;
  /// The sticky connect/credential failure, once there was one.
  std::optional<std::string> connect_error;
  int32_t statements_run = 0;
  /// batchq_enqueue_to_start_seconds was recorded for this job (once per runner).
  bool start_observed = false;
  std::chrono::steady_clock::time_point started_at;
  caf::typed_response_promise<job_outcome> promise;
  /// The turn it serves (null: one job per `run`, then it quits).
  runner_turn_ptr turn;
  /// Counts the jobs run (answers meant for an earlier job are ignored).
  uint64_t run = 0;
  /// The current job came with `run` (claimed through the status actor, which
  /// keeps its record until the end is written), not claimed by this runner.
  bool claimed_by_status = false;

  static inline const char* name = "job_runner";
};

/// A runner: of one job, or (bound to a turn by `turn`, with cfg.store) of
/// the turns it is given. REQUIRES: env, sql, registry non-null. `detached`
/// must be true whenever the ports block (production); tests pass false.
job_runner_actor spawn_job_runner(caf::actor_system& sys, const runner_settings& cfg,
                                  status_actor status,
                                  std::shared_ptr<ports::job_environment> env,
                                  std::shared_ptr<ports::sql_connector> sql,
                                  std::shared_ptr<pg::cancel_registry> registry,
                                  bool detached = true);

} // namespace batchq
