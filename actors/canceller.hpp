// The canceller actor: one per node; stops jobs wherever they are (SPEC §2,
// §3.5, §5; the canceller row of docs/architecture.md).
//
// cancel(job_id, user) — a user's cancel:
//   1. status `cancel` (the Redis half, one script): a pending job becomes
//      cancelled at once -> {id, "cancelled"}. Unknown id or another user's job
//      -> the status actor's job_not_found, passed on. A final job ->
//      invalid_transition `Cannot set status from <status> to cancelled`.
//   2. running HERE (its `node` field is this node): registry->cancel(id,
//      user_cancel) fires the runner's token — or leaves a tombstone when the
//      runner has not armed yet, so its token is born fired and the statement
//      never starts. The answer waits for the runner's `final(id, status)`:
//      cancelled -> {id, "cancelled"}; done/failed -> invalid_transition (the
//      job ended before the cancel landed); pending (a drain came first and
//      requeued it) -> the Redis half once more, which cancels it in the queue.
//      If no runner answers within `cancel_wait` (safety net: a runner that
//      died), the job's current status is reported instead ({id, "running"}
//      when it still runs; the cancel is then NOT recorded).
//   3. running ELSEWHERE (never this node itself): node_directory->gate_of(node),
//      then that node's cluster gate gets `remote_cancel(id, proof)`, the proof
//      signed with cluster.secret for that node (actors/cluster_gate.hpp);
//      when it answers true (its runner ended), the current status is reported
//      as in 2. When the node cannot be reached (or refuses, or answers false,
//      or the record names no node, e.g. a CARTO worker's job):
//      backend_cancel's pg_cancel_backend fallback. If it signalled a backend,
//      the answer waits (at most cancel_wait, asking Redis every record_poll)
//      until Redis records the end: the remote runner, if alive, sees 57014
//      with the cancel mark the Redis half left (job_cancel_pending.lua) and
//      records `cancelled`. The answer is the truth: {id, "cancelled"}, the
//      refusal of another final status, or {id, "running"} (not recorded in
//      time). Nothing signalled -> the current status at once. A dead node's
//      job stays `running` until that node's lease expires and the node-loss
//      sweep (SPEC §7) handles it.
//   Each cancel counts once in batchq_cancel_requests_total{path}: pending,
//   local, node, or backend.
// remote_cancel(job_id) — from another node: as 2 (a tombstone is left), and
//   answers true once the runner's `final` arrives (or at once when the job
//   ended here just before); false when nothing ended here within cancel_wait.
// stop(user, reason) — from the scheduler (drain, lost lease):
//   registry->cancel_user(user, reason); runners act on the reason.
// final(job_id, status) — from a runner: completes the cancels waiting for
//   that job, and is remembered briefly (a cancel that finds no token because
//   the runner just ended answers from it).
//
// Concurrency: event-based and never blocks. node_directory and
// backend_cancel block (middleman connect, Redis, PostgreSQL): each call runs
// in a short-lived helper actor, spawned detached in production (tests: on the
// test coordinator), and the canceller waits for its answer as a response.
// Timers (cancel_wait) are request timeouts on a private actor that never
// answers, so the typed interface stays the one in messages/interfaces.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/interfaces.hpp"
#include "src/auth/node_proof.hpp"
#include "src/pg/cancel_registry.hpp"
#include "src/ports/ports.hpp"

namespace batchq {

struct canceller_settings {
  /// This node (cluster.node-id): a running job whose `node` is this one is
  /// cancelled through the local registry.
  std::string node_id;
  /// How long a cancel waits for a runner's `final`, and a remote canceller
  /// or a blocking helper for its answer (the remote request gets twice that).
  std::chrono::milliseconds cancel_wait{10000};
  /// Bound on each request to the status actor.
  std::chrono::milliseconds status_timeout{10000};
  /// How many recent `final`s are remembered.
  size_t recent_finals = 1024;
  /// After the pg_cancel_backend fallback: how often Redis is asked whether
  /// the cancel is recorded (for at most cancel_wait).
  std::chrono::milliseconds record_poll{200};
  /// cluster.secret: the proof of every message to another node's gate.
  std::string cluster_secret;
  /// The clock of those proofs (tests pin it).
  std::function<int64_t()> now_ms = auth::now_ms;
};

struct canceller_state {
  canceller_settings cfg;
  status_actor status;
  std::shared_ptr<pg::cancel_registry> registry;
  std::shared_ptr<ports::node_directory> directory;
  std::shared_ptr<ports::backend_cancel> backend;
  bool detached_helpers = true;
  /// Never answers: a request to it with a timeout is a timer.
  caf::actor sleeper;

  struct waiter {
    uint64_t id;
    std::function<void(const std::string& status)> on_final;
    std::function<void()> on_timeout;
  };
  /// Cancels waiting for a runner's `final`, by job id.
  std::map<std::string, std::vector<waiter>> waiting;
  uint64_t next_waiter = 0;
  /// Recent finals (job id -> status), oldest first in `final_order`.
  std::map<std::string, std::string> finals;
  std::deque<std::string> final_order;

  static inline const char* name = "canceller";
};

/// The behaviour (exposed for tests that want the stateful pointer).
canceller_actor::behavior_type
canceller_behavior(canceller_actor::stateful_pointer<canceller_state> self,
                   canceller_settings cfg, status_actor status,
                   std::shared_ptr<pg::cancel_registry> registry,
                   std::shared_ptr<ports::node_directory> directory,
                   std::shared_ptr<ports::backend_cancel> backend, bool detached_helpers);

/// One per node. REQUIRES: registry non-null; directory and backend may be
/// null (then a job running elsewhere is only reported). The canceller itself
/// is event-based; `detached` says how its blocking helpers are spawned (true
/// in production; tests pass false).
canceller_actor spawn_canceller(caf::actor_system& sys, const canceller_settings& cfg,
                                status_actor status,
                                std::shared_ptr<pg::cancel_registry> registry,
                                std::shared_ptr<ports::node_directory> directory,
                                std::shared_ptr<ports::backend_cancel> backend,
                                bool detached = true);

} // namespace batchq
