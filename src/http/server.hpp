// The HTTP API of a batchq node (SPEC §8; routes, rules and decisions in
// docs/http-api.md), served by the Boost.Beast transport (transport.hpp) on
// threads of its own — never on CAF's scheduler threads: handlers block on
// Redis and on the canceller's answer; `?wait=` long-polls are parked without
// a thread.
//
//   POST   [/user/{user}]/api/v{1,2}/sql/job          create      201
//   GET    [/user/{user}]/api/v{1,2}/sql/job          list        200
//   GET    [/user/{user}]/api/v{1,2}/sql/job/{id}     read/wait   200
//   DELETE [/user/{user}]/api/v{1,2}/sql/job/{id}     cancel      200
//   GET    [/user/{user}]/api/v{1,2}/jobs-wip         WIP ids     200
//   GET    /health, /ready, /metrics                  no auth
//   OPTIONS on any path: 200, CORS headers, empty body
// A server made with `routes::probes_only` (a --worker-only node) serves only
// /health, /ready and /metrics and answers 404 to everything else.
//
// The server never writes job state except by creating jobs (the create
// script): cancels go through the node's canceller (`node_hooks::cancel`).
//
// Thread safety: start() and stop() from one thread (the node's owner); the
// handlers run concurrently on the server's pool (`threads`).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <caf/expected.hpp>

#include "messages/types.hpp"
#include "src/config/settings.hpp"

namespace batchq::http {

/// What the API asks of the node it runs in (filled by cluster::node).
struct node_hooks {
  /// Cancels `job_id` of `user` through the node's canceller and answers once
  /// the cancel is recorded. Errors: job_not_found, invalid_transition, a
  /// timeout, redis_unavailable. Null on a node without a canceller: DELETE
  /// then answers 503.
  std::function<caf::expected<cancel_result>(const std::string& job_id, const std::string& user)>
    cancel;
  /// For /ready on a node with a worker: "" when its subscriber listens on
  /// batch:users, else why not. Null on a node without a worker.
  std::function<std::string()> worker_not_ready;
};

enum class routes {
  /// The whole API (full and --api-only nodes).
  all,
  /// /health, /ready and /metrics only (--worker-only nodes).
  probes_only,
};

class server {
public:
  /// Does no IO. REQUIRES: `s` is validated (settings from config::validate()).
  server(const settings& s, routes r, node_hooks hooks);
  /// Stops the server (see stop()).
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Binds http.bind:http.port (0 = a free port) and serves on a thread of its
  /// own until stop(). Returns the bound port. Errors: invalid_config when the
  /// address cannot be bound (e.g. the port is taken).
  caf::expected<uint16_t> start();

  /// Stops accepting, wakes parked long-polls (they answer with the job as it
  /// is), waits (at most 10 s) for the answers in flight, closes every
  /// connection, joins the threads. Idempotent.
  void stop();

  /// The bound port (0 before start()).
  uint16_t port() const noexcept;

  /// Job-route handler threads (task_pool.hpp): kept, and the most that may
  /// run at once (past it requests wait; parked long-polls need none).
  static constexpr size_t api_threads = 16;
  /// /ready and /metrics: a pool of their own (a busy job pool never delays them).
  static constexpr size_t probe_threads = 2;
  static constexpr size_t max_threads = 1024;
  /// Per user: job requests handled at once, and how many of them may be
  /// `?wait=` long-polls; past either, 429.
  static constexpr size_t max_requests_per_user = 32;
  static constexpr size_t max_waits_per_user = 16;
  /// Seconds an idle keep-alive connection is kept open.
  static constexpr int keep_alive_idle_seconds = 2;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace batchq::http
