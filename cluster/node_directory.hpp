// The production ports::node_directory (src/ports/ports.hpp): how a canceller
// reaches another node. Reads the node's registration `batch:nodes:{node_id}`
// (node_registry.hpp) and connects to the cluster gate that node published
// over CAF's io middleman at its registered `address` (cluster.advertise) and
// `cluster_port` (remote_actor, protocol batchq::protocol_id). The gate checks
// the proof each message carries (actors/cluster_gate.hpp). docs/running.md
// describes the keys.
//
// Blocking: one Redis round trip, then the middleman connect (immediate on a
// loopback port nobody listens on; a TCP connect timeout for a silent remote
// host). The middleman reuses an existing connection to the same node.
//
// Thread-safe: the canceller's helpers call canceller_of() concurrently; the
// Redis connection is guarded by a mutex, the middleman is thread-safe.
#pragma once

#include <mutex>
#include <string>

#include <caf/actor_system.hpp>

#include "src/ports/ports.hpp"
#include "src/redis/client.hpp"

namespace batchq::cluster {

class middleman_node_directory : public ports::node_directory {
public:
  /// REQUIRES: `sys` has the io middleman loaded and outlives this object.
  /// Does no IO.
  middleman_node_directory(caf::actor_system& sys, redis::endpoint ep);

  /// Every error means "unreachable": node_unreachable ("node X is not
  /// registered", or the middleman could not connect to its gate), invalid_config (the
  /// hash has no usable cluster_port), redis_unavailable.
  caf::expected<cluster_gate_actor> gate_of(const std::string& node_id) override;

private:
  caf::actor_system& sys_;
  std::mutex mtx_;
  redis::client client_;
};

} // namespace batchq::cluster
