// The message structs actors exchange (STYLE.md habit 2): plain structs with a
// free `inspect` and `operator==`, registered with CAF in type_ids.hpp, each
// with a serialization round-trip test (tests/messages/). nlohmann/json never
// crosses an actor boundary: a job travels as its Redis record (field/value
// pairs) and each actor decodes it with src/job.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>

namespace batchq {

/// Why a running statement is stopped (pg::cancel_registry, canceller).
enum class stop_reason : uint8_t {
  none = 0,
  /// A user's cancel: the job becomes `cancelled`.
  user_cancel,
  /// Graceful drain (SIGTERM): the job goes back to `pending` at the head of its queue.
  drain,
  /// This node lost the user's lease: stop at once and write nothing more.
  lease_lost,
};

inline const char* to_string(stop_reason x) {
  switch (x) {
    case stop_reason::none: return "none";
    case stop_reason::user_cancel: return "user_cancel";
    case stop_reason::drain: return "drain";
    case stop_reason::lease_lost: return "lease_lost";
  }
  return "none";
}

/// Field/value pairs of a `batch:jobs:{id}` hash (src/job's `record`).
using field_pairs = std::vector<std::pair<std::string, std::string>>;

/// A job claimed for this node by a turn step (status `running`, `node` and
/// `claim` = the turn's lease token written in the same script), handed to a
/// runner; or an orphan found in work in progress (running under another claim).
struct job_ticket {
  /// Empty when there is no job.
  std::string job_id;
  std::string user;
  /// The lease token of the turn this job runs in; every write is fenced by it.
  std::string lease_token;
  /// The job's hash as read (after the claim).
  field_pairs record;
  /// For an orphan: the node named in its `node` field is still registered
  /// (batch:nodes:{node}), so it may still come to settle it itself.
  bool owner_alive = false;
};

/// What one job write inside a turn step does (SPEC §3.3, §7).
enum class write_kind : uint8_t {
  /// Fields change, the job stays running (a step started or ended).
  progress,
  /// A final status: TTL, out of work in progress.
  final,
  /// Back to `pending` at the head of the user's queue (drain, requeue).
  requeue,
};

/// One fenced job write: compare-and-set on the stored status AND claim.
struct job_write {
  std::string job_id;
  /// The status and claim the writer knows to be stored (a turn's own job:
  /// its token; an orphan being recovered: the claim it was found with).
  std::string expected_status;
  std::string expected_claim;
  std::string to_status;
  write_kind kind = write_kind::progress;
  /// Fields to set and optional fields to delete (src/job's state_fields()).
  field_pairs set;
  std::vector<std::string> del;
};

/// What a turn step does besides its write (docs/redis-layout.md "Turns").
enum class turn_part : uint8_t {
  none,
  /// Take or refresh the lease and a slot, settle work in progress, claim the
  /// next job.
  next,
  /// Give lease and slot back; publish the user if jobs are still queued.
  release,
};

/// One call of the status actor's `turn` (one Redis round trip).
struct turn_request {
  std::string user;
  /// The turn's lease token.
  std::string token;
  /// The user's capacity bucket (database host) and the turn's slot token.
  std::string host;
  std::string slot;
  int64_t capacity = 4;
  int64_t lease_ttl_ms = 5000;
  turn_part part = turn_part::none;
  /// The token of this node's previous turn of the user, fenced and ended
  /// ("" = none): `next` takes over a lease still held by it.
  std::string inherit;
  /// At most one write.
  std::vector<job_write> write;
};

enum class turn_outcome : uint8_t {
  none,
  /// Nothing queued, nothing in progress; nothing held.
  empty,
  /// Another node holds the lease; nothing held.
  busy,
  /// The host is at capacity; nothing held.
  full,
  /// `jobs[0]` is claimed by this turn (lease and slot held).
  job,
  /// `jobs` are orphans to settle before anything else runs (lease and slot held).
  recover,
  /// Lease and slot given back; `queue_length` jobs still queued.
  released,
};

inline const char* to_string(turn_outcome x);

struct turn_answer {
  /// The write was a retry of one that had landed: nothing changed now.
  bool applied = false;
  turn_outcome what = turn_outcome::none;
  std::vector<job_ticket> jobs;
  int64_t queue_length = 0;
};

/// How a runner's job ended.
enum class job_end : uint8_t {
  /// The job reached a final status (in `set`, not written yet).
  finished,
  /// A drain stopped it: its state is `pending` again (not written yet).
  drained,
  /// The lease was lost (fenced): nothing more may be written by this turn;
  /// `set` is the truth this node knows (the outcome of every statement it ran).
  lost,
  /// The stored job changed under the runner (another writer, or gone).
  aborted,
};

inline const char* to_string(job_end x);

/// A runner's answer: the job's state as the runner knows it, to be written
/// by the user_queue together with the turn's next step.
struct job_outcome {
  std::string job_id;
  job_end how = job_end::finished;
  /// The status last written to Redis (the next write's expected status).
  std::string written_status;
  /// The job's status in `set`.
  std::string status;
  field_pairs set;
  std::vector<std::string> del;
  /// Statements sent to PostgreSQL (fairness: "fewest steps run so far").
  int32_t statements_run = 0;
  int64_t elapsed_ms = 0;
  /// A runner that goes on by itself (job_runner.hpp, "Going on") sent the
  /// step that writes this end: the step as sent, and its answer when it
  /// landed, else its error. The user_queue carries on from there as if it
  /// had sent the step itself.
  bool step_sent = false;
  turn_request step;
  turn_answer step_answer;
  caf::error step_error;
};

/// A runner went on by itself: the end of `job_id` is written (`status`) in
/// the step that claimed the user's next job, which it runs now.
struct job_continued {
  std::string job_id;
  std::string status;
  int32_t statements_run = 0;
};

/// A job this node ran but could not finish writing (its turn was fenced):
/// kept until the user's next turn on this node settles it with the truth
/// instead of reporting the node lost.
struct unsettled_job {
  std::string job_id;
  /// The lease token it was claimed under, and its status as stored.
  std::string claim;
  std::string stored_status;
  /// The state to write (its status, fields to set and to delete).
  std::string status;
  field_pairs set;
  std::vector<std::string> del;
};

/// An orphan (another node's job in work in progress) that a turn of this
/// node left to its owner, and since when this node has seen it so: the
/// owner gets a bounded time from the first sighting, not from its last
/// write, so a long statement of a slow but live node is not taken for lost.
struct orphan_sighting {
  std::string job_id;
  std::string claim;
  /// Milliseconds since the epoch (wall clock, like the job's updated_at).
  int64_t since_ms = 0;
};

/// A user's turn on this node: granted by the scheduler, carried out by a
/// user_queue.
struct turn_grant {
  std::string user;
  /// The lease token (random, one per turn): fences every write, identifies
  /// the turn in every message about it.
  std::string token;
  std::string host;
  std::string slot;
  int64_t capacity = 4;
  int64_t lease_ttl_ms = 5000;
  /// Jobs the turn may run before it gives its slot back (0: settle work in
  /// progress only, then release).
  int32_t budget = 1;
  /// Jobs of this user the node could not finish writing (0 or 1).
  std::vector<unsettled_job> carry;
  /// The token of this node's previous turn of the user when it ended fenced
  /// (its lease may still be alive in Redis): this turn takes it over.
  std::string inherit;
  /// Orphans of this user left to their live owners by earlier turns here.
  std::vector<orphan_sighting> deferred;
};

/// Why a turn ended.
enum class turn_end : uint8_t {
  /// The queue was empty: lease and slot given back.
  idle,
  /// Budget spent, a yield or a drain: lease and slot given back, jobs remain.
  released,
  /// Another node holds the lease: nothing held.
  busy,
  /// The host was at capacity: nothing held.
  full,
  /// The lease deadline passed (or Redis said the lease is gone): nothing
  /// more was written; `carry` holds what could not be written.
  fenced,
};

inline const char* to_string(turn_end x);

/// A user_queue's last word about its turn.
struct turn_report {
  std::string user;
  std::string token;
  turn_end why = turn_end::idle;
  /// Jobs that ended in this turn (final or requeued), statements run.
  int32_t jobs = 0;
  int32_t statements_run = 0;
  /// Jobs finished with a final status, and requeued by a drain.
  int32_t finished = 0;
  int32_t requeued = 0;
  /// Jobs still queued (released).
  int64_t queue_length = 0;
  std::vector<unsettled_job> carry;
  /// Orphans this turn left to their owners (ends `busy`): the next turn of
  /// the user here gets them in its grant.
  std::vector<orphan_sighting> deferred;
};

/// A lease (and its capacity slot) held by a turn, for the renewal tick.
struct held_lease {
  std::string user;
  std::string token;
  std::string host;
  std::string slot;
};

/// Result of the Redis half of a cancel (`job_cancel_pending`).
struct pending_cancel {
  /// True when the job was pending and is now cancelled.
  bool cancelled = false;
  /// Otherwise the job's current status ("" when the job does not exist).
  std::string status;
  /// The node running the job (its `node` field), when running.
  std::string node;
};

/// Answer to a user's cancel: the job's status once the cancel is recorded.
struct cancel_result {
  std::string job_id;
  std::string status;
};

/// Proof that a message between nodes comes from a node that knows the shared
/// cluster.secret (SPEC §5 v2; made and checked by src/auth/node_proof.hpp).
struct node_proof {
  /// The sender's cluster.node-id.
  std::string from;
  /// The node the message is for: a node refuses a message meant for another.
  std::string to;
  /// The sender's clock, ms since the epoch (messages older than the window are refused).
  int64_t issued_ms = 0;
  /// 16 random bytes, hex: a node refuses a proof it has seen.
  std::string nonce;
  /// hex HMAC-SHA256 over the message and the fields above; empty without a secret.
  std::string mac;
};

/// What a drain did (scheduler, on SIGTERM/SIGINT).
struct drain_report {
  /// Jobs that finished within the grace period.
  int32_t finished = 0;
  /// Jobs cancelled at the end of the grace period and put back to pending.
  int32_t requeued = 0;
  /// Jobs whose state this node could not write back (Redis unreachable):
  /// when not 0 the drain failed and the node exits non-zero.
  int32_t unsettled = 0;
};

/// A snapshot of the scheduler, for tests, `/metrics` and logs.
struct scheduler_stats {
  /// Users that want service, in the order they would be served next.
  std::vector<std::string> waiting;
  /// Users with a job running now.
  std::vector<std::string> running;
  /// Jobs run so far, in order (user names), e.g. A,B,C,A,B,A.
  std::vector<std::string> grants;
  /// Leases this node holds now (turns running).
  int32_t leases = 0;
};

// -- inspect --------------------------------------------------------------------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_ticket& x) {
  return f(caf::meta::type_name("job_ticket"), x.job_id, x.user, x.lease_token, x.record,
           x.owner_alive);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_write& x) {
  return f(caf::meta::type_name("job_write"), x.job_id, x.expected_status, x.expected_claim,
           x.to_status, x.kind, x.set, x.del);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, turn_request& x) {
  return f(caf::meta::type_name("turn_request"), x.user, x.token, x.host, x.slot, x.capacity,
           x.lease_ttl_ms, x.part, x.inherit, x.write);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, turn_answer& x) {
  return f(caf::meta::type_name("turn_answer"), x.applied, x.what, x.jobs, x.queue_length);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_outcome& x) {
  return f(caf::meta::type_name("job_outcome"), x.job_id, x.how, x.written_status, x.status,
           x.set, x.del, x.statements_run, x.elapsed_ms, x.step_sent, x.step, x.step_answer,
           x.step_error);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_continued& x) {
  return f(caf::meta::type_name("job_continued"), x.job_id, x.status, x.statements_run);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, unsettled_job& x) {
  return f(caf::meta::type_name("unsettled_job"), x.job_id, x.claim, x.stored_status, x.status,
           x.set, x.del);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, orphan_sighting& x) {
  return f(caf::meta::type_name("orphan_sighting"), x.job_id, x.claim, x.since_ms);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, turn_grant& x) {
  return f(caf::meta::type_name("turn_grant"), x.user, x.token, x.host, x.slot, x.capacity,
           x.lease_ttl_ms, x.budget, x.carry, x.inherit, x.deferred);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, turn_report& x) {
  return f(caf::meta::type_name("turn_report"), x.user, x.token, x.why, x.jobs,
           x.statements_run, x.finished, x.requeued, x.queue_length, x.carry, x.deferred);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, held_lease& x) {
  return f(caf::meta::type_name("held_lease"), x.user, x.token, x.host, x.slot);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pending_cancel& x) {
  return f(caf::meta::type_name("pending_cancel"), x.cancelled, x.status, x.node);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, cancel_result& x) {
  return f(caf::meta::type_name("cancel_result"), x.job_id, x.status);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_proof& x) {
  return f(caf::meta::type_name("node_proof"), x.from, x.to, x.issued_ms, x.nonce, x.mac);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, drain_report& x) {
  return f(caf::meta::type_name("drain_report"), x.finished, x.requeued, x.unsettled);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, scheduler_stats& x) {
  return f(caf::meta::type_name("scheduler_stats"), x.waiting, x.running, x.grants, x.leases);
}

// -- equality (for tests and expect(...).with(...)) ----------------------------------

inline bool operator==(const job_ticket& a, const job_ticket& b) {
  return a.job_id == b.job_id && a.user == b.user && a.lease_token == b.lease_token
         && a.record == b.record && a.owner_alive == b.owner_alive;
}
inline bool operator==(const job_write& a, const job_write& b) {
  return a.job_id == b.job_id && a.expected_status == b.expected_status
         && a.expected_claim == b.expected_claim && a.to_status == b.to_status
         && a.kind == b.kind && a.set == b.set && a.del == b.del;
}
inline bool operator==(const turn_request& a, const turn_request& b) {
  return a.user == b.user && a.token == b.token && a.host == b.host && a.slot == b.slot
         && a.capacity == b.capacity && a.lease_ttl_ms == b.lease_ttl_ms && a.part == b.part
         && a.inherit == b.inherit && a.write == b.write;
}
inline bool operator==(const turn_answer& a, const turn_answer& b) {
  return a.applied == b.applied && a.what == b.what && a.jobs == b.jobs
         && a.queue_length == b.queue_length;
}
inline bool operator==(const job_outcome& a, const job_outcome& b) {
  return a.job_id == b.job_id && a.how == b.how && a.written_status == b.written_status
         && a.status == b.status && a.set == b.set && a.del == b.del
         && a.statements_run == b.statements_run && a.elapsed_ms == b.elapsed_ms
         && a.step_sent == b.step_sent && a.step == b.step && a.step_answer == b.step_answer
         && a.step_error == b.step_error;
}
inline bool operator==(const job_continued& a, const job_continued& b) {
  return a.job_id == b.job_id && a.status == b.status && a.statements_run == b.statements_run;
}
inline bool operator==(const unsettled_job& a, const unsettled_job& b) {
  return a.job_id == b.job_id && a.claim == b.claim && a.stored_status == b.stored_status
         && a.status == b.status && a.set == b.set && a.del == b.del;
}
inline bool operator==(const orphan_sighting& a, const orphan_sighting& b) {
  return a.job_id == b.job_id && a.claim == b.claim && a.since_ms == b.since_ms;
}
inline bool operator==(const turn_grant& a, const turn_grant& b) {
  return a.user == b.user && a.token == b.token && a.host == b.host && a.slot == b.slot
         && a.capacity == b.capacity && a.lease_ttl_ms == b.lease_ttl_ms
         && a.budget == b.budget && a.carry == b.carry && a.inherit == b.inherit
         && a.deferred == b.deferred;
}
inline bool operator==(const turn_report& a, const turn_report& b) {
  return a.user == b.user && a.token == b.token && a.why == b.why && a.jobs == b.jobs
         && a.statements_run == b.statements_run && a.finished == b.finished
         && a.requeued == b.requeued && a.queue_length == b.queue_length && a.carry == b.carry
         && a.deferred == b.deferred;
}
inline bool operator==(const held_lease& a, const held_lease& b) {
  return a.user == b.user && a.token == b.token && a.host == b.host && a.slot == b.slot;
}
inline bool operator==(const pending_cancel& a, const pending_cancel& b) {
  return a.cancelled == b.cancelled && a.status == b.status && a.node == b.node;
}
inline bool operator==(const cancel_result& a, const cancel_result& b) {
  return a.job_id == b.job_id && a.status == b.status;
}
inline bool operator==(const drain_report& a, const drain_report& b) {
  return a.finished == b.finished && a.requeued == b.requeued && a.unsettled == b.unsettled;
}
inline bool operator==(const scheduler_stats& a, const scheduler_stats& b) {
  return a.waiting == b.waiting && a.running == b.running && a.grants == b.grants
         && a.leases == b.leases;
}

// -- names ------------------------------------------------------------------------

inline const char* to_string(turn_outcome x) {
  switch (x) {
    case turn_outcome::none: return "none";
    case turn_outcome::empty: return "empty";
    case turn_outcome::busy: return "busy";
    case turn_outcome::full: return "full";
    case turn_outcome::job: return "job";
    case turn_outcome::recover: return "recover";
    case turn_outcome::released: return "released";
  }
  return "none";
}

inline const char* to_string(job_end x) {
  switch (x) {
    case job_end::finished: return "finished";
    case job_end::drained: return "drained";
    case job_end::lost: return "lost";
    case job_end::aborted: return "aborted";
  }
  return "finished";
}

inline const char* to_string(turn_end x) {
  switch (x) {
    case turn_end::idle: return "idle";
    case turn_end::released: return "released";
    case turn_end::busy: return "busy";
    case turn_end::full: return "full";
    case turn_end::fenced: return "fenced";
  }
  return "idle";
}

} // namespace batchq
