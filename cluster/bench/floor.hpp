// The floor of the drained scenarios (docs/performance.md "The floor"): the
// same jobs run through the worker's own per-job code — the turn script of
// the status actor (ports::redis_job_store), the job model's progression, a
// pooled PostgreSQL session (ports::pg_sql_connector) with its reset, a cancel
// token armed and disarmed — called in a loop from plain threads, without
// actors, mailboxes or thread hand-offs. What a node achieves against this
// floor, in the same run, is what its actor path costs; what the floor
// achieves against pgbench is what the guarantees themselves (a fenced Redis
// script per job, a clean session per job) cost.
//
// A thread runs its users one after another, each user's jobs in order, one
// turn per user (lease, slot, claim folded into the previous final write,
// release when the queue is empty), as the user_queue does. No faults are
// handled: a refused or failed step ends the run with fatal().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace batchq::bench {

struct floor_config {
  uint16_t redis_port = 0;
  /// The batch DB (jobs, queues); the metadata (limits, api keys) is DB 5, as
  /// on a node.
  int redis_db = 5;
  uint16_t pg_port = 0;
  int threads = 4;
  int64_t default_timeout_ms = 7200000;
};

struct floor_result {
  int jobs = 0;
  double seconds = 0;
  /// Redis round trips of the threads' job stores.
  uint64_t redis_round_trips = 0;
  /// Wall time summed over the threads, microseconds: the turn script
  /// calls, taking a pooled session (reads the reset of its last use),
  /// the statements, giving the session back (sends its reset).
  int64_t turn_us = 0;
  int64_t take_us = 0;
  int64_t statement_us = 0;
  int64_t give_us = 0;
};

/// Runs every queued job of `users` (user i on thread i % threads). Jobs that
/// do not end `done` are fatal.
floor_result run_floor(const floor_config& cfg, const std::vector<std::string>& users);

} // namespace batchq::bench
