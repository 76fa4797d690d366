// How a job runs (SPEC §3.4, §3.5, §7; docs/job-format.md "Progression"): which
// statement comes next, and how statuses change when it starts, succeeds, fails,
// times out or is cancelled, when the job is cancelled, drained, or its node is
// lost. The next statement is derived from the statuses alone, so a job read back
// from Redis (batchq- or CARTO-written) resumes where it stopped and never reruns
// a finished statement.
//
// The job-runner's loop:
//   while (auto st = next_statement(j, cap)) {   // nullopt: nothing left
//     begin(j, *st, now()); write(j);
//     auto o = run(j.job_id, st->sql, st->timeout_ms);
//     apply(j, *st, o, now()); write(j);         // the job becomes final with
//   }                                            // the write of its last outcome
//
// Functions mutate the job passed in and nothing else; `now` is the caller's clock.
// Not synchronised: one owner at a time.
#pragma once

#include "src/job/clock.hpp"
#include "src/job/job.hpp"
#include "src/job/problem.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace batchq::job {

enum class statement_kind {
  step,           ///< a step's main query
  step_onsuccess, ///< a step's onsuccess (its main query is done)
  step_onerror,   ///< a step's onerror (its main query failed)
  job_onsuccess,  ///< the job's onsuccess (every step done)
  job_onerror,    ///< the job's onerror (a step failed)
};

const char* to_string(statement_kind x);

/// One statement to send.
struct statement {
  statement_kind kind = statement_kind::step;
  /// The step it belongs to (0 and meaningless for job fallbacks).
  size_t step = 0;
  /// The SQL, templates rendered (template.hpp). src/pg sends it as
  /// "/* <job_id> */ <sql>" (SPEC §3.4); the tag is added there, nowhere else.
  std::string sql;
  /// statement_timeout in ms: a main query runs under min(its timeout if > 0, cap),
  /// a fallback under cap. 0 means none (only when cap <= 0 and no step timeout).
  int64_t timeout_ms = 0;
  /// A fallback rendered from a template (its text changed): it must run with
  /// standard_conforming_strings on, or a backslash in a quoted error message
  /// could end the literal early.
  bool templated = false;
};

/// What happened to a statement.
struct outcome {
  enum class kind { succeeded, failed, cancelled };
  kind what = kind::succeeded;
  /// The failure message (PostgreSQL's text) when failed.
  std::string message;

  static outcome success() { return {kind::succeeded, {}}; }
  static outcome failure(std::string msg) { return {kind::failed, std::move(msg)}; }
  /// A statement timeout is a failure with PostgreSQL's message
  /// ("canceling statement due to statement timeout").
  static outcome timed_out(std::string pg_message) { return failure(std::move(pg_message)); }
  /// A user cancel (the runner saw its statement cancelled by the canceller).
  static outcome cancellation() { return {kind::cancelled, {}}; }
};

/// `batch.on-node-loss` (SPEC §7).
enum class node_loss_mode { fail, requeue };

/// "job interrupted: node <id> was lost while running it".
std::string node_lost_message(std::string_view node_id);

/// The statement in flight or, if none, the next to run; nullopt when the job is
/// final or nothing remains. `cap_ms`: the user's statement-timeout cap.
std::optional<statement> next_statement(const job& j, int64_t cap_ms);

/// pending -> running (REQUIRES nothing; refuses other statuses with
/// "Cannot set status from <s> to running"). A job with nothing left to run
/// becomes final at once (its derived done/failed).
result<void> start(job& j, time_point now);

/// Marks `st` (which must be next_statement(j)) running: a step gets started_at,
/// a fallback fallback_status running. Starts a pending job first. Idempotent for
/// a statement already running. Refuses a final job or a statement that is not the
/// next one ("Cannot set status from <s> to running").
result<void> begin(job& j, const statement& st, time_point now);

/// Records the outcome of `st`, which must be running (begin). Success/failure as
/// SPEC §3.4; a cancellation outcome is `cancel`. A final job is left unchanged
/// (the outcome is stale: the job was cancelled meanwhile) and that is not an
/// error. The job becomes final as soon as nothing remains to run.
result<void> apply(job& j, const statement& st, const outcome& o, time_point now);

/// User cancel (SPEC §3.5). pending: job cancelled, every pending step and fallback
/// skipped. running: the running step (or the running step/job fallback's
/// fallback_status) cancelled, every pending step and fallback skipped, job
/// cancelled. final: refused with "Cannot set status from <s> to cancelled".
result<void> cancel(job& j, time_point now);

/// Graceful drain (SPEC §7): a running job goes back to pending, the running step
/// back to pending (started_at cleared) or the running fallback's status back to
/// pending; finished statements stay finished, so the job resumes at the
/// interrupted statement. A pending or final job is left unchanged. Afterwards the
/// caller requeues the job iff it is pending.
result<void> drain(job& j, time_point now);

/// The job's node was lost (SPEC §7). requeue: as `drain`. fail: the running
/// statement fails with node_lost_message(node_id) and the job continues as after
/// any failure; if something remains to run (onerror fallbacks), the job goes back
/// to pending so that the next lease holder resumes it, else it is final now.
/// A pending or final job is left unchanged. Afterwards the caller requeues the job
/// iff it is pending.
result<void> node_lost(job& j, std::string_view node_id, node_loss_mode mode, time_point now);

/// done if every step is done, failed if a step failed, cancelled if one was
/// cancelled (the job's final status once nothing remains).
status steps_outcome(const job& j);

} // namespace batchq::job
