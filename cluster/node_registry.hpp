// The node registry of SPEC §5: every running node keeps a hash
// `batch:nodes:{cluster.node-id}` (fields address, cluster_port, http_port,
// version, started_at) with a TTL of 3 x the heartbeat period, refreshed by
// heartbeats and deleted on clean exit. Other nodes read it to reach this
// node's canceller over the CAF middleman (node_directory.hpp). Layout:
// docs/running.md "Node registry".
//
// Blocking: every call is one Redis round trip on the registry's own
// connection. Thread safety: none; one thread (the serve main loop) owns a
// node_registry. `read_node` takes a client the caller owns.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "src/redis/client.hpp"
#include "src/redis/ops.hpp"

namespace batchq::cluster {

/// What a node publishes about itself.
struct node_info {
  std::string node_id;
  /// Where other nodes reach the published canceller.
  std::string address = "127.0.0.1";
  uint16_t cluster_port = 0;
  /// The HTTP listener; 0 while the node serves no HTTP (worker without API).
  uint16_t http_port = 0;
  std::string version;
  /// ISO 8601 UTC, e.g. 2026-11-28T17:36:10.905Z.
  std::string started_at;
};

/// The hash fields of `n` (node_id is the key, not a field).
redis::field_list to_fields(const node_info& n);

/// The node `node_id` as registered; nullopt when its hash is absent (never
/// registered, expired, or withdrawn). Errors: redis_unavailable, redis_error,
/// invalid_config when the hash has no usable cluster_port.
caf::expected<std::optional<node_info>> read_node(redis::client& c, const std::string& node_id);

class node_registry {
public:
  /// Does no IO. REQUIRES: heartbeat > 0.
  node_registry(redis::endpoint ep, node_info self, std::chrono::milliseconds heartbeat);

  /// Writes the hash and its TTL (HSET + PEXPIRE, one pipelined round trip).
  /// Heartbeats call it again, so a hash lost with a Redis restart comes back.
  caf::error announce();

  /// Same as announce(): refreshes fields and TTL.
  caf::error heartbeat() { return announce(); }

  /// Deletes the hash (clean exit). One round trip.
  caf::error withdraw();

  std::chrono::milliseconds heartbeat_period() const noexcept { return heartbeat_; }
  std::chrono::milliseconds ttl() const noexcept { return heartbeat_ * 3; }
  const node_info& self() const noexcept { return self_; }

private:
  redis::client client_;
  node_info self_;
  std::chrono::milliseconds heartbeat_;
};

} // namespace batchq::cluster
