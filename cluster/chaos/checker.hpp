// The chaos suite's invariant checker (docs/cluster.md "The chaos suite"):
// after a run with faults it reads what every job ended as (Redis) and which
// statements committed (the log table each job's PL/pgSQL step writes in the
// same transaction), and counts what the scheduling core promises never
// happens:
//
//   lost         a job whose hash is gone
//   stuck        a job left pending or running
//   reordered    a user's committed statements not in submission order
//   overlapping  two committed statements of one user overlapping in time, or
//                a job failed by the step's own overlap guard (an advisory
//                lock per user taken by every statement)
//   doubled      a job whose statement committed twice, except, with
//                on-node-loss=requeue, a job recovered from a node that died
//                (then it is a counted, allowed rerun)
//   false failure a job failed although its statement committed, unless it
//                was failed as lost by a node that really died (then it is
//                counted as ambiguous: the dead node cannot say)
//   unexpected   a job failed for a reason the faults do not explain; with
//                on-node-loss=requeue every job must end done except as many
//                as the run killed connections of (pg_terminate_backend)
//   done_uncommitted a job done whose statement never committed
//   residue      leases, work in progress or queued ids left in Redis
//
// Pure code (no I/O): tests/cluster/checker_test.cpp feeds it made-up runs,
// one per kind of violation, so the checker is known to be able to fail.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace batchq::chaos {

enum class loss_mode { fail, requeue };

/// What one job ended as.
struct job_fact {
  std::string id;
  std::string user;
  /// Its place in its user's submission order (1, 2, ...).
  int seq = 0;
  /// False when the hash is gone.
  bool exists = true;
  std::string status;
  std::string failed_reason;
};

/// One committed statement (a row of the log table).
struct commit_row {
  std::string user;
  int seq = 0;
  std::string job;
  /// Microseconds since the epoch (clock_timestamp() in the statement).
  int64_t started_us = 0;
  int64_t ended_us = 0;
};

struct run_facts {
  loss_mode mode = loss_mode::fail;
  std::vector<job_fact> jobs;
  std::vector<commit_row> rows;
  /// Nodes killed (kill -9) or stopped past their lease TTL during the run.
  std::set<std::string> dead_nodes;
  /// Jobs a surviving node recovered (`job recovered`) from a dead node.
  std::set<std::string> recovered_from_dead;
  /// Backends the run terminated (pg_terminate_backend): that many jobs may
  /// fail with a lost connection (which job is not known for sure: a pooled
  /// connection may have moved on to the next job's statement by then).
  int64_t terminated = 0;
  /// Left in Redis after every node stopped.
  int64_t leases_left = 0;
  int64_t wip_left = 0;
  int64_t queued_left = 0;
};

struct verdict {
  int64_t jobs = 0;
  int64_t done = 0;
  int64_t failed = 0;
  int64_t lost = 0;
  int64_t stuck = 0;
  int64_t reordered = 0;
  int64_t overlapping = 0;
  int64_t doubled = 0;
  int64_t false_failures = 0;
  int64_t unexpected = 0;
  int64_t done_uncommitted = 0;
  int64_t residue = 0;
  /// Allowed and counted, not violations.
  int64_t ambiguous = 0;
  int64_t reruns = 0;
  int64_t failed_by_fault = 0;
  /// One line per violation (the first few of each kind).
  std::vector<std::string> problems;

  bool ok() const {
    return lost + stuck + reordered + overlapping + doubled + false_failures + unexpected
             + done_uncommitted + residue
           == 0;
  }
};

/// The failed_reason of a job failed as lost by node `node` (SPEC §7).
std::string node_lost_reason(const std::string& node);

verdict check(const run_facts& facts);

/// A multi-line summary of `v` (counts, then the problems).
std::string to_string(const verdict& v);

} // namespace batchq::chaos
