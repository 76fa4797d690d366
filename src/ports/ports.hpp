// The ports through which actors reach the outside world (LevelDB's `Env`
// idea, STYLE.md): small abstract classes, each used by one actor. The real
// implementations wrap src/redis and src/pg (redis_ports.hpp, pg_ports.hpp)
// and BLOCK, so the actors that own them are spawned detached. Deterministic
// actor tests give the same actors in-memory fakes (tests/actors/fakes.hpp)
// and spawn them on CAF's test coordinator.
//
// Thread-safety: an implementation object is used by one actor at a time,
// except where a comment says otherwise.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "messages/interfaces.hpp"
#include "messages/types.hpp"
#include "src/pg/cancel_token.hpp"
#include "src/pg/conninfo.hpp"
#include "src/pg/session.hpp"
#include "src/redis/results.hpp"

namespace batchq::ports {

/// The status actor's store: the turn script and the cancel of a pending job
/// (src/redis/turns.hpp, ops.hpp).
class job_store {
public:
  virtual ~job_store() = default;

  /// One turn step (turn.lua, one round trip). `claim` is written into a job
  /// claimed by part `next` (status running, node, updated_at);
  /// `final_ttl_seconds` is the TTL of a job written final. Errors:
  /// lease_lost, job_not_found, invalid_transition (status or claim changed;
  /// nothing written), redis_unavailable.
  virtual caf::expected<turn_answer> turn(const turn_request& r, const field_pairs& claim,
                                          int64_t final_ttl_seconds) = 0;

  /// `job_cancel_pending`: if pending, writes `set`/`del`, leaves the queue, EXPIRE.
  /// Errors: job_not_found (no job, or another user's).
  virtual caf::expected<pending_cancel> cancel_pending(const std::string& job_id,
                                                       const std::string& user,
                                                       const field_pairs& set,
                                                       int64_t ttl_seconds) = 0;

  /// The job's hash; empty when there is no such job.
  virtual caf::expected<field_pairs> read(const std::string& job_id) = 0;

  /// Leaves the cancel mark of a running job (keys::cancel_mark, a day), or
  /// whether it is there (`set` false). One round trip either way.
  virtual caf::expected<bool> cancel_mark(const std::string& job_id, bool set) = 0;
};

/// The scheduler's cluster coordination, on a connection of its own (the
/// coordination actor): renewals, host lookups, the crash sweep, announcements.
/// Taking and giving back leases and slots is part of the turn script.
class coordination {
public:
  virtual ~coordination() = default;

  /// Renews every lease and slot in `held`, one round trip (turns_renew.lua):
  /// the tokens of the leases that are no longer held (lost).
  virtual caf::expected<std::vector<std::string>> renew(const std::vector<held_lease>& held,
                                                        std::chrono::milliseconds ttl) = 0;

  /// Each user's database host (`rails:users:{user}` database_host; "" when
  /// unknown), one pipelined round trip.
  virtual caf::expected<std::vector<std::string>> database_hosts(
    const std::vector<std::string>& users) = 0;

  /// PUBLISH batch:users for each user (one pipelined round trip): every
  /// node's subscriber hears that they have queued jobs. A draining node
  /// announces the users waiting in its line, so another node serves them now.
  virtual caf::expected<void> announce(const std::vector<std::string>& users) = 0;

  /// SPEC §7 crash sweep: users in `batch:wip:users` with work in progress and
  /// no lease `batch:locks:user:{user}` (its holder died); one round trip.
  virtual caf::expected<std::vector<std::string>> orphaned_users() = 0;
};

/// The subscriber's view of `batch:indexes:queue` (users said to have queued jobs).
class queue_index {
public:
  virtual ~queue_index() = default;

  /// Start-up: finds every user with a non-empty `batch:queue:{user}` (SCAN) and
  /// adds them to the index; returns them. Errors: redis_unavailable, redis_error.
  virtual caf::expected<std::vector<std::string>> rebuild() = 0;

  /// The users in the index now (SMEMBERS). Errors: redis_unavailable, redis_error.
  virtual caf::expected<std::vector<std::string>> users() = 0;
};

/// What a job runner needs besides PostgreSQL: per-user limits and credentials.
class job_environment {
public:
  virtual ~job_environment() = default;

  /// The statement-timeout cap in ms: `limits:batch:{user}` timeout if set,
  /// else the configured batch.query-timeout.
  virtual caf::expected<int64_t> timeout_cap_ms(const std::string& user) = 0;

  /// The password of role `dbuser` for `user` (SPEC §6: the master key's record
  /// when its database_role is dbuser, else the user's key with that role);
  /// nullopt when none is found. Never logged.
  virtual caf::expected<std::optional<std::string>> password(const std::string& user,
                                                             const std::string& dbuser) = 0;

  /// Reads ahead the environment of `users` that is not cached (their caps
  /// and master keys' passwords), so that their runners find it cached; a
  /// failure is ignored (each runner then reads its own). Default: nothing.
  virtual void prime(const std::vector<std::string>& users) { (void)users; }
};

/// One job's PostgreSQL connection (a pooled pg::session in production).
class sql_session {
public:
  virtual ~sql_session() = default;

  /// pg::session::execute: `/* <job_id> */ <sql>` under timeout_ms; a fired
  /// token stops it (or keeps it from being sent); `standard_strings`: a
  /// templated fallback, run with standard_conforming_strings on; `rows`
  /// (may be null): where the statement's rows go (kept results). Errors:
  /// pg_connection_lost.
  virtual caf::expected<pg::statement_result> execute(const std::string& job_id,
                                                      const std::string& sql, int64_t timeout_ms,
                                                      const pg::cancel_token* token,
                                                      bool standard_strings,
                                                      pg::row_sink* rows) = 0;
};

/// Where a runner keeps the rows of a step (SPEC §11; src/redis/results.hpp).
/// Thread-safe: every runner thread uses the same store.
class result_store {
public:
  virtual ~result_store() = default;

  /// A run of a step that keeps rows: its fresh id, and the bytes the job's
  /// earlier steps keep.
  struct run {
    std::string id;
    int64_t bytes_before = 0;
  };

  /// redis::begin_results under a fresh random run id. Errors:
  /// invalid_transition (the job does not run), redis_unavailable.
  virtual caf::expected<run> begin(const std::string& job_id, size_t step) = 0;

  /// redis::append_results. Errors: invalid_transition (fenced: another run,
  /// or the job stopped running), redis_unavailable.
  virtual caf::expected<void> append(const std::string& job_id, size_t step,
                                     const std::string& run,
                                     const redis::results_batch& batch) = 0;
};

/// Opens job connections (pg::pool in production). Thread-safe: every runner
/// thread uses the same connector.
class sql_connector {
public:
  virtual ~sql_connector() = default;

  /// Errors: pg_connect_failed ("cannot connect to the database: ...").
  virtual caf::expected<std::unique_ptr<sql_session>> connect(const pg::pool_key& key,
                                                              const std::string& password) = 0;
};

/// The canceller's way to another node's canceller (the middleman in
/// production, cluster/). BLOCKS (it may connect): the canceller calls it from
/// a short-lived detached helper. Thread-safe (helpers run concurrently).
class node_directory {
public:
  virtual ~node_directory() = default;

  /// The cluster gate published by node `node_id` at its registered address.
  /// Any error means "unreachable" (the canceller then falls back to
  /// backend_cancel).
  virtual caf::expected<cluster_gate_actor> gate_of(const std::string& node_id) = 0;
};

/// SPEC §5's fallback when the node running a job cannot be reached:
/// pg_cancel_backend on the job's backends (query starting `/* <job_id> */`),
/// through a connection with the job's own credentials. BLOCKS (Redis, then
/// PostgreSQL): called from a detached helper. Thread-safe.
class backend_cancel {
public:
  virtual ~backend_cancel() = default;

  /// Reads the job's record (host, port, dbname, dbuser, pass?) and the role's
  /// password, connects and signals; returns how many backends were signalled.
  /// Errors: job_not_found, pg_connect_failed, pg_statement_failed,
  /// pg_connection_lost, redis_unavailable.
  virtual caf::expected<int> cancel_backends_of_job(const std::string& job_id,
                                                    const std::string& user) = 0;

  /// Recovery of an orphaned job (SPEC §7): cancels the job's backends and
  /// waits until none of them runs a statement of the job any more (after a
  /// while it terminates them), bounded by `bound`. Returns how many were
  /// stopped (0: nothing ran). Errors: as cancel_backends_of_job, and
  /// pg_statement_failed "still running" when the bound ran out.
  virtual caf::expected<int> stop_backends_of_job(const std::string& job_id,
                                                  const std::string& user,
                                                  std::chrono::milliseconds bound) = 0;
};

} // namespace batchq::ports
