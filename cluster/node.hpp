// One batchq node's wiring (SPEC §2, §5, §7): which actors exist, which ports
// they own, and how they find each other. `node` is what `batchq serve`
// runs; `cancel_front` is the tiny actor system of `batchq cancel`.
//
// A node (worker part):
//   status     detached, its own ports::redis_job_store          (single writer)
//   canceller  event-based; the shared pg::cancel_registry, a middleman
//              node_directory and the pg_cancel_backend fallback
//   gate       event-based (actors/cluster_gate.hpp): the only actor
//              published over the io middleman, on cluster.bind:cluster.port
//              (0 = ephemeral); checks each message's proof of
//              cluster.secret, then asks the canceller
//   scheduler  detached, its own ports::redis_coordination; user_queue factory
//              -> spawn_user_queue(status, job_runner factory)
//   job_runner detached, one per running job: the shared pg::pool connector,
//              the job environment, the registry
//   subscriber detached: SUBSCRIBE batch:users, index rescans -> scheduler
//   http       src/http's server on threads of its own (not CAF's): the job
//              routes ask the canceller (DELETE) from a scoped_actor; /ready
//              asks the subscriber `ready`
// Then the node registers `batch:nodes:{node-id}` (node_registry.hpp, with
// cluster.advertise as its address and the bound http_port), once the subscriber listens, and refreshes it every
// heartbeat.
//
// Modes (SPEC §9): `full` runs all of the above with the whole HTTP API;
// `worker_only` the same with an HTTP server that serves only /health,
// /ready and /metrics; `api_only` runs no scheduler, subscriber or runners —
// only status + canceller (like cancel_front, so DELETE works from it) and
// the whole HTTP API.
//
// Stopping (SPEC §7): drain() asks the scheduler to drain (grace + margin;
// the HTTP API keeps answering meanwhile), stop() stops the HTTP server,
// withdraws the registration and sends exit to every actor it spawned (a
// published actor would otherwise keep ~actor_system waiting).
//
// Thread safety: a node is driven by one thread (the serve main loop); the
// actors it spawns run on CAF's threads and their own.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "messages/interfaces.hpp"
#include "src/config/settings.hpp"

namespace batchq::ports {
class redis_job_environment;
} // namespace batchq::ports

namespace batchq::cluster {

/// The heartbeat period of the node registry (TTL = 3 x this).
inline constexpr std::chrono::milliseconds heartbeat_period{5000};

/// The program version written into the node registry.
const char* version();

/// Which parts of a node run (SPEC §9 `--api-only` / `--worker-only`).
enum class node_mode { full, worker_only, api_only };

/// "full", "worker-only", "api-only".
const char* to_string(node_mode m);

class node {
public:
  /// Does no IO. REQUIRES: `sys` was built from a config with
  /// register_types() and the io middleman loaded; it outlives the node.
  node(caf::actor_system& sys, settings s, node_mode mode = node_mode::full);
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// Spawns the actors of its mode, publishes the cluster gate, starts the HTTP
  /// server, waits (bounded) until the subscriber listens (when there is
  /// one), then registers the node (a registration that fails because Redis
  /// is down is logged and retried by heartbeat()). On error the node is
  /// partly started: call stop(). Errors: the gate cannot be published
  /// (e.g. cluster.port is taken), http.bind:http.port cannot be bound.
  caf::error start();

  /// Refreshes the registration (fields + TTL). Redis errors are returned,
  /// not fatal: the next heartbeat retries.
  caf::error heartbeat();

  /// Graceful drain: the scheduler stops granting, running jobs get
  /// batch.shutdown-grace, the rest are stopped and requeued, leases released.
  /// Bounded by shutdown-grace + a margin. Errors: the request's timeout or
  /// the scheduler's error.
  caf::expected<drain_report> drain();

  /// Stops the HTTP server, withdraws the registration and sends exit to
  /// every actor. Idempotent.
  void stop();

  /// The middleman port the cluster gate is published on (0 before start()).
  uint16_t cluster_port() const noexcept { return cluster_port_; }
  /// The port the HTTP server listens on (0 before start()).
  uint16_t http_port() const noexcept { return http_port_; }
  node_mode mode() const noexcept { return mode_; }
  const settings& config() const noexcept { return cfg_; }

private:
  /// start()'s parts: scheduler, subscriber and the runner factories; the HTTP
  /// server with its hooks; the bounded wait for the subscriber's SUBSCRIBE.
  void start_worker(std::shared_ptr<ports::redis_job_environment> env);
  caf::error start_http();
  void wait_subscribed();

  struct impl;
  caf::actor_system& sys_;
  settings cfg_;
  node_mode mode_;
  uint16_t cluster_port_ = 0;
  uint16_t http_port_ = 0;
  std::unique_ptr<impl> impl_;
};

/// `batchq cancel`: a status actor and a canceller that run no jobs, in a
/// small actor system. The canceller cancels a pending job in Redis, asks the
/// owning node's cluster gate over the middleman (with cluster.secret's
/// proof), or falls back to
/// pg_cancel_backend, exactly as a node's canceller does.
class cancel_front {
public:
  /// REQUIRES: as for node. `front_id` names this process (never a node's id).
  cancel_front(caf::actor_system& sys, const settings& s, std::string front_id);
  ~cancel_front();
  cancel_front(const cancel_front&) = delete;
  cancel_front& operator=(const cancel_front&) = delete;

  /// Cancels `job_id` of `user`. The status once recorded, or the canceller's
  /// error (job_not_found, invalid_transition, a timeout).
  caf::expected<cancel_result> cancel(const std::string& job_id, const std::string& user,
                                      std::chrono::milliseconds timeout);

private:
  struct impl;
  caf::actor_system& sys_;
  std::unique_ptr<impl> impl_;
};

} // namespace batchq::cluster
