// The job_runner actor: runs ONE claimed job to its end (SPEC §2, §3.4, §3.5,
// §6, §7; the job_runner row of docs/architecture.md).
//
// Message flow for `run(ticket)` (the response promise is kept until the end):
//   decode the ticket's record (src/job/record.hpp); registry->arm(job_id, user)
//   FIRST, so a cancel that came earlier (a tombstone) is seen; cap =
//   env->timeout_cap_ms(user); then one `step` (self-sent) per statement:
//     next_statement(j, cap)  -- none: the job is final -> finish
//     token fired?            -- yes: stop by the registry's reason (below); the
//                                statement never starts
//     begin -> status write(running) -> execute (BLOCKING, with the token)
//           -> apply(outcome) -> status write -> next `step`
//   finish: final(job_id, status) to the canceller, registry->disarm, answer
//   job_summary{job_id, status, statements_run, elapsed_ms}, quit.
//
// Outcomes: succeeded -> success; failed -> failure(PostgreSQL's message);
// cancelled (the token fired) -> by registry->reason(job_id):
//   user_cancel -> job::cancel (running statement `cancelled`, the rest
//                  `skipped`, job `cancelled`), written; summary `cancelled`.
//   drain       -> job::drain, then status `requeue` (head of the queue);
//                  summary `pending`.
//   lease_lost  -> nothing more is written; summary = the last status written
//                  (normally `running`).
// A statement that fails with 57014 `canceling statement due to user request`
// while our token did not fire was stopped by another node's pg_cancel_backend
// fallback (SPEC §5: this node was unreachable): treated as a user cancel.
// ec::pg_connection_lost -> failure(message); the session is dropped and the
// next statement reconnects.
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
// model, with ordinary status writes.
//
// Status write errors: lease_lost -> stop at once (no more statements), summary
// = last status written; any other error (invalid_transition: the stored status
// changed under us; job_not_found; redis_unavailable; request timeout) -> log
// and stop the same way. `from_status` of each write is the status last written
// successfully (initially the record's, i.e. `running` after the claim).
//
// Concurrency: execute BLOCKS (libpq) and the environment blocks (Redis), so
// in production the actor is spawned detached (its own thread). One statement
// per message: between two statements the mailbox is read. Cancels never go
// through the mailbox: they fire the pg::cancel_token (thread-safe). Tests
// spawn it on the test coordinator with fakes (detached = false).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include "messages/interfaces.hpp"
#include "src/job/job.hpp"
#include "src/pg/cancel_registry.hpp"
#include "src/ports/ports.hpp"

namespace batchq {

struct runner_settings {
  /// This node (logs only: the claim wrote it into the record already).
  std::string node_id;
  /// The PostgreSQL port for a record whose `port` is empty (postgres.port).
  uint16_t postgres_port = 5432;
  /// The cap used when the environment cannot answer (batch.query-timeout, ms).
  int64_t default_timeout_ms = 43200000;
  /// Bound on each request to the status actor; an expired one stops the job
  /// like any status error.
  std::chrono::milliseconds status_timeout{60000};
};

struct job_runner_state {
  runner_settings cfg;
  status_actor status;
  canceller_actor canceller;
  std::shared_ptr<ports::job_environment> env;
  std::shared_ptr<ports::sql_connector> sql;
  std::shared_ptr<pg::cancel_registry> registry;

  /// Set by `run`.
  bool started = false;
  bool finished = false;
  job_ticket ticket;
  job::job j;
  std::string from_status;
  int64_t cap_ms = 0;
  std::shared_ptr<pg::cancel_token> token;
  /// The job id while armed in the registry ("" otherwise); shared with the
  /// exit hook that disarms a runner killed before it finished.
  std::shared_ptr<std::string> armed_id = std::make_shared<std::string>();
  std::unique_ptr<ports::sql_session> session;
  /// The sticky connect/credential failure, once there was one.
  std::optional<std::string> connect_error;
  int32_t statements_run = 0;
  /// batchq_enqueue_to_start_seconds was recorded for this job (once per runner).
  bool start_observed = false;
  std::chrono::steady_clock::time_point started_at;
  caf::typed_response_promise<job_summary> promise;

  static inline const char* name = "job_runner";
};

/// The behaviour (exposed for tests that want the stateful pointer).
job_runner_actor::behavior_type
job_runner_behavior(job_runner_actor::stateful_pointer<job_runner_state> self,
                    runner_settings cfg, status_actor status, canceller_actor canceller,
                    std::shared_ptr<ports::job_environment> env,
                    std::shared_ptr<ports::sql_connector> sql,
                    std::shared_ptr<pg::cancel_registry> registry);

/// One runner per job. REQUIRES: env, sql, registry non-null. `detached` must
/// be true whenever the ports block (production); tests pass false.
job_runner_actor spawn_job_runner(caf::actor_system& sys, const runner_settings& cfg,
                                  status_actor status, canceller_actor canceller,
                                  std::shared_ptr<ports::job_environment> env,
                                  std::shared_ptr<ports::sql_connector> sql,
                                  std::shared_ptr<pg::cancel_registry> registry,
                                  bool detached = true);

} // namespace batchq
