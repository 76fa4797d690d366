// The rules of one turn step (docs/architecture.md), shared by the two
// writers of turn steps: the status actor (every step of a user_queue) and a
// job runner that goes on to its user's next job by itself (job_runner.hpp,
// "Going on"). Both apply the same state machine to the write, write the same
// claim fields and log the same `job finished` line (SPEC §10).
//
// run_turn_step BLOCKS on the store (one Redis round trip): only the status
// actor's and the runners' own threads call it.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "messages/types.hpp"
#include "src/job/clock.hpp"
#include "src/ports/ports.hpp"

namespace batchq::ports {

struct turn_rules {
  /// Written into the `node` field of every job this node claims.
  std::string node_id;
  /// batch.finished-jobs-ttl: seconds a final job's hash is kept (<= 0: forever).
  int64_t finished_jobs_ttl = 7200;
  /// The clock for `updated_at`; tests pin it.
  std::function<job::time_point()> clock = [] { return std::chrono::system_clock::now(); };
};

/// Jobs whose end a runner wrote itself (job_runner.hpp, "Going on"), that the
/// status actor claimed and keeps a record of: it drops them at its next step,
/// so a runner does not wake the status actor's thread to say so. Thread-safe.
class ended_elsewhere {
public:
  void add(std::string job_id);
  std::vector<std::string> take();

private:
  std::mutex m_;
  std::vector<std::string> ids_;
};

/// Whether the state machine allows `w` (progress: running -> running; final:
/// running -> final; requeue: running -> pending).
bool write_allowed(const job_write& w);

/// `record` after a write that sets `set` and deletes `del`.
void overlay(field_pairs& record, const field_pairs& set, const std::vector<std::string>& del);

/// The write of a job's end as its runner answered it (`o`), in the turn of
/// lease token `claim`: back to pending at the head for a drained job (a
/// requeue), else final.
job_write end_write(const job_outcome& o, const std::string& claim);

/// Checks `r` (at most one write, allowed by the state machine) and adds the
/// status to the write's fields; answers the claim fields of a `next` (status
/// running, node, updated_at; none for the other parts). Errors: invalid_job
/// (more than one write), invalid_transition (not allowed). Does no IO.
caf::expected<field_pairs> prepare_turn_step(const turn_rules& rules, turn_request& r);

/// prepare_turn_step, then the step on `store` (nothing is sent when the
/// preparation fails). Errors: those of both (ports::job_store::turn).
caf::expected<turn_answer> run_turn_step(job_store& store, const turn_rules& rules,
                                         turn_request& r);

/// The SPEC §10 `job finished` line and the finished counter. `record` is the
/// job's hash after the final write when known (empty: only job_id, user and
/// status are logged).
void log_job_finished(const std::string& job_id, const std::string& user,
                      const std::string& status, const field_pairs& record, job::time_point now);

} // namespace batchq::ports
