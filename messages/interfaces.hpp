// Every actor interface of a batchq node, in one file (STYLE.md habit 1): a
// newcomer reads this to see who may say what to whom. Each handler has a
// one-line comment; message structs are in types.hpp, errors in error.hpp.
// docs/architecture.md draws the path of a job through these actors.
//
// Errors travel as caf::error with batchq::ec (error.hpp); a failed *job* is a
// status inside job_summary, never an error.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "messages/types.hpp"

namespace batchq {

// -- atoms (at most 10 characters) ---------------------------------------------

using wants_atom = caf::atom_constant<caf::atom("wants")>;
using started_atom = caf::atom_constant<caf::atom("started")>;
using ended_atom = caf::atom_constant<caf::atom("ended")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using drain_atom = caf::atom_constant<caf::atom("drain")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using run_atom = caf::atom_constant<caf::atom("run")>;
using step_atom = caf::atom_constant<caf::atom("step")>;
using turn_atom = caf::atom_constant<caf::atom("turn")>;
using yield_atom = caf::atom_constant<caf::atom("yield")>;
using fence_atom = caf::atom_constant<caf::atom("fence")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using remote_cancel_atom = caf::atom_constant<caf::atom("rcancel")>;
using cancel_mark_atom = caf::atom_constant<caf::atom("cmark")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using final_atom = caf::atom_constant<caf::atom("final")>;
using rescan_atom = caf::atom_constant<caf::atom("rescan")>;
using ready_atom = caf::atom_constant<caf::atom("ready")>;
using renew_atom = caf::atom_constant<caf::atom("renew")>;
using hosts_atom = caf::atom_constant<caf::atom("hosts")>;
using orphans_atom = caf::atom_constant<caf::atom("orphans")>;
using announce_atom = caf::atom_constant<caf::atom("announce")>;
using settle_atom = caf::atom_constant<caf::atom("settle")>;
using continued_atom = caf::atom_constant<caf::atom("continued")>;
using claim_atom = caf::atom_constant<caf::atom("claim")>;

/// What a runner shares with the turn it serves (actors/job_runner.hpp); only
/// ever sent within one node.
struct runner_turn;
using runner_turn_ptr = std::shared_ptr<runner_turn>;

// -- status: the only writer of job state ------------------------------------------

using status_actor = caf::typed_actor<
  // One turn step, ONE Redis round trip (turn.lua): an optional fenced job
  // write (compare-and-set on status and claim; a retry of a write that landed
  // answers `applied`), then the turn part: next (lease + slot + settle work
  // in progress + claim), release, or none. Logs `job finished` for final
  // writes. Errors: lease_lost, invalid_transition (status or claim changed,
  // or a transition the state machine refuses), job_not_found,
  // redis_unavailable.
  caf::replies_to<turn_atom, turn_request>::with<turn_answer>,
  // The Redis half of a user's cancel: a pending job of `user` becomes cancelled
  // (steps skipped) atomically; otherwise reports its status and node.
  // Errors: job_not_found (unknown id or another user's job).
  // A running job also gets the cancel mark (keys::cancel_mark), in Redis.
  caf::replies_to<cancel_atom, std::string /*job_id*/, std::string /*user*/>::with<
    pending_cancel>,
  // Whether a user asked to cancel this running job (its cancel mark): how a
  // runner knows a 57014 it did not fire itself (another node's
  // pg_cancel_backend fallback) for a user's cancel.
  caf::replies_to<cancel_mark_atom, std::string /*job_id*/>::with<bool>>;

// -- job_runner: runs the jobs of the turn it serves ---------------------------------

using job_runner_actor = caf::typed_actor<
  // From the user_queue that took this runner (production: from the node's
  // pool of runners, one per running turn, kept across turns): serve this
  // turn now. A runner that never got one runs one job per `run` and quits.
  caf::reacts_to<turn_atom, runner_turn_ptr>,
  // Claims the turn's next job itself (the `next` step on the runner's own
  // Redis connection) and runs it as `run` does. When the step claims nothing
  // the runner may run (no job, an orphan to settle, a failure, the turn no
  // longer going on), it answers at once with no job: the step as sent and
  // its answer or error (nothing sent: the turn is fenced).
  caf::replies_to<claim_atom>::with<job_outcome>,
  // Runs the job's statements until it is final, drained, fenced or taken
  // away, writing progress (steps starting and ending) through status with
  // retries; answers with the state reached, which the user_queue writes
  // together with the turn's next step — or, when the runner may go on by
  // itself, after writing that step itself and running the jobs it claimed
  // (answering for the last one). Blocking PostgreSQL calls happen here only,
  // in a detached actor.
  caf::replies_to<run_atom, job_ticket>::with<job_outcome>,
  // Internal: runs the next statement (one per message, so the mailbox is read
  // between statements).
  caf::reacts_to<step_atom>>;

// -- user_queue: one turn of one user on this node ---------------------------------

using user_queue_actor = caf::typed_actor<
  // Starts the turn it was spawned with (turn_grant): claim, run, write,
  // repeat while the budget lasts; then `ended` to the scheduler.
  caf::reacts_to<run_atom>,
  // From the scheduler: end the turn after the current job (fairness, drain).
  caf::reacts_to<yield_atom, std::string /*token*/>,
  // From the scheduler: the lease deadline passed; write nothing more, end
  // once the runner stopped.
  caf::reacts_to<fence_atom, std::string /*token*/>,
  // From the scheduler: the drain's grace is over; the running job goes back
  // to the head of its queue now.
  caf::reacts_to<stop_atom, std::string /*token*/>,
  // From the turn's runner: it wrote a job's end with the next claim itself
  // and runs the claimed job (job_runner.hpp, "Going on").
  caf::reacts_to<continued_atom, job_continued>>;

// -- scheduler: which user runs next -------------------------------------------------

using scheduler_actor = caf::typed_actor<
  // `user` has queued jobs (from the subscriber, a rescan or the crash sweep).
  caf::reacts_to<wants_atom, std::string /*user*/>,
  // From a user_queue: its turn holds the lease now (renewals start).
  caf::reacts_to<started_atom, std::string /*user*/, std::string /*token*/>,
  // From a user_queue: its turn is over (a report for an older turn is ignored).
  caf::reacts_to<ended_atom, turn_report>,
  // Timer: renews every held lease and slot in one round trip, probes full
  // hosts, grants turns.
  caf::reacts_to<tick_atom>,
  // Graceful drain: stop granting, let running turns end after their job,
  // after the grace stop the rest (requeued at the head, lease released, user
  // published); answers when every turn ended.
  caf::replies_to<drain_atom>::with<drain_report>,
  // A snapshot (tests, metrics).
  caf::replies_to<stats_atom>::with<scheduler_stats>>;

// -- coordination: the scheduler's Redis connection --------------------------------

using coordination_actor = caf::typed_actor<
  // Renews every lease (and its slot) in one round trip; answers the tokens
  // of the leases that are no longer held (lost). Errors: redis_unavailable.
  caf::replies_to<renew_atom, std::vector<held_lease>, int64_t /*ttl_ms*/>::with<
    std::vector<std::string>>,
  // The database host of each user ("" unknown), one pipelined round trip;
  // then their job environment is read ahead for their runners.
  caf::replies_to<hosts_atom, std::vector<std::string>>::with<std::vector<std::string>>,
  // The crash sweep (SPEC §7): users with work in progress and no lease.
  caf::replies_to<orphans_atom>::with<std::vector<std::string>>,
  // PUBLISH batch:users for each user, one pipelined round trip.
  caf::replies_to<announce_atom, std::vector<std::string>>::with<bool>>;

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
  // From this node's cluster gate (a verified message of another node): stop
  // the statement of a job running on this node; true if it ran here.
  caf::replies_to<remote_cancel_atom, std::string /*job_id*/>::with<bool>,
  // From the scheduler: stop the running statement of `user`'s turn `token`
  // on this node (drain, or the lease is lost).
  caf::reacts_to<stop_atom, std::string /*user*/, std::string /*token*/, stop_reason>,
  // From a user_queue: the job's final status is recorded (completes a waiting
  // cancel).
  caf::reacts_to<final_atom, std::string /*job_id*/, std::string /*status*/>>;

// -- cluster gate: the only actor other nodes can reach ---------------------------

using cluster_gate_actor = caf::typed_actor<
  // From another node's canceller (over the middleman, SPEC §5 v2): stop the
  // statement of a job running on this node; true if it ran here. The proof
  // must name this node, be fresh and new, and carry the HMAC of
  // cluster.secret (when this node has one).
  // Errors: refused ("refused: <reason>"; counted in
  // batchq_cluster_messages_refused_total).
  caf::replies_to<remote_cancel_atom, std::string /*job_id*/, node_proof>::with<bool>>;

} // namespace batchq

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(batchq::runner_turn_ptr)
