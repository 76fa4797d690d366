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

/// A job taken from a user's queue by the status actor (already claimed:
/// `status=running`, `node` written in the same script), handed to a runner.
struct job_ticket {
  /// Empty when the user's queue was empty.
  std::string job_id;
  std::string user;
  /// The user lease this node holds; every write for the job is fenced by it.
  std::string lease_token;
  /// The job's hash after the claim.
  field_pairs record;
};

/// One fenced write of a job's state, applied by the status actor.
struct state_write {
  std::string job_id;
  std::string user;
  std::string lease_token;
  /// The status the writer holds as stored; the write happens only if Redis
  /// still has it (compare-and-set), so a concurrent change is never overwritten.
  std::string from_status;
  /// The status being written (may equal from_status for progress within `running`).
  std::string to_status;
  /// Fields to set and optional fields to delete (src/job's state_fields()).
  field_pairs set;
  std::vector<std::string> del;
};

/// How a runner's job ended.
struct job_summary {
  std::string job_id;
  /// The final status, or `pending` when the job was drained and requeued, or
  /// `running` when the node lost the user's lease and wrote nothing more.
  std::string status;
  /// Statements sent to PostgreSQL (steps and fallbacks): the scheduler's
  /// fairness counter ("fewest steps run so far").
  int32_t statements_run = 0;
  int64_t elapsed_ms = 0;
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

/// What a drain did (scheduler, on SIGTERM/SIGINT).
struct drain_report {
  /// Jobs that finished within the grace period.
  int32_t finished = 0;
  /// Jobs cancelled at the end of the grace period and put back to pending.
  int32_t requeued = 0;
};

/// A snapshot of the scheduler, for tests, `/metrics` and logs.
struct scheduler_stats {
  /// Users that want service, in the order they would be served next.
  std::vector<std::string> waiting;
  /// Users with a job running now.
  std::vector<std::string> running;
  /// Grants so far, in order (user names), e.g. A,B,C,A,B,A.
  std::vector<std::string> grants;
};

// -- inspect --------------------------------------------------------------------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_ticket& x) {
  return f(caf::meta::type_name("job_ticket"), x.job_id, x.user, x.lease_token, x.record);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, state_write& x) {
  return f(caf::meta::type_name("state_write"), x.job_id, x.user, x.lease_token, x.from_status,
           x.to_status, x.set, x.del);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, job_summary& x) {
  return f(caf::meta::type_name("job_summary"), x.job_id, x.status, x.statements_run,
           x.elapsed_ms);
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
typename Inspector::result_type inspect(Inspector& f, drain_report& x) {
  return f(caf::meta::type_name("drain_report"), x.finished, x.requeued);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, scheduler_stats& x) {
  return f(caf::meta::type_name("scheduler_stats"), x.waiting, x.running, x.grants);
}

// -- equality (for tests and expect(...).with(...)) ----------------------------------

inline bool operator==(const job_ticket& a, const job_ticket& b) {
  return a.job_id == b.job_id && a.user == b.user && a.lease_token == b.lease_token
         && a.record == b.record;
}
inline bool operator==(const state_write& a, const state_write& b) {
  return a.job_id == b.job_id && a.user == b.user && a.lease_token == b.lease_token
         && a.from_status == b.from_status && a.to_status == b.to_status && a.set == b.set
         && a.del == b.del;
}
inline bool operator==(const job_summary& a, const job_summary& b) {
  return a.job_id == b.job_id && a.status == b.status && a.statements_run == b.statements_run
         && a.elapsed_ms == b.elapsed_ms;
}
inline bool operator==(const pending_cancel& a, const pending_cancel& b) {
  return a.cancelled == b.cancelled && a.status == b.status && a.node == b.node;
}
inline bool operator==(const cancel_result& a, const cancel_result& b) {
  return a.job_id == b.job_id && a.status == b.status;
}
inline bool operator==(const drain_report& a, const drain_report& b) {
  return a.finished == b.finished && a.requeued == b.requeued;
}
inline bool operator==(const scheduler_stats& a, const scheduler_stats& b) {
  return a.waiting == b.waiting && a.running == b.running && a.grants == b.grants;
}

} // namespace batchq
