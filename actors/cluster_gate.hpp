// The cluster gate: one per node, the only actor it publishes on the CAF
// middleman (cluster.bind:cluster.port; SPEC §5 v2, docs/cluster.md "Nodes on
// several hosts"). The middleman port is unauthenticated; publishing the
// canceller itself would let anyone who reaches the port send it any of its
// messages (stop a user's turn, fake a runner's final). The gate accepts only
// `remote_cancel(job_id, proof)`, checks the proof (src/auth/node_proof.hpp:
// HMAC of cluster.secret, meant for this node, fresh, not seen before) and
// passes the cancel on to this node's canceller, whose answer goes straight
// back to the other node. A refused message is logged (without its proof),
// counted in batchq_cluster_messages_refused_total{reason} and answered with
// ec::refused.
//
// Concurrency: event-based, never blocks; it holds the replay memory.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "messages/interfaces.hpp"
#include "src/auth/node_proof.hpp"

namespace batchq {

struct cluster_gate_settings {
  /// This node's cluster.node-id: a proof must name it.
  std::string node_id;
  /// cluster.secret; empty = a loopback-only cluster (no MAC checked).
  std::string secret;
  /// How far a proof's clock may be from ours.
  std::chrono::milliseconds window{std::chrono::seconds{60}};
  /// The clock proofs are checked against (tests pin it).
  std::function<int64_t()> now_ms = auth::now_ms;
};

/// The kind a remote cancel's proof is made for (auth::sign's `kind`).
inline constexpr const char* remote_cancel_kind = "remote_cancel";

struct cluster_gate_state {
  cluster_gate_settings cfg;
  auth::verifier verifier;
  canceller_actor canceller;
  static inline const char* name = "cluster_gate";
};

/// REQUIRES: canceller valid. Spawned on the scheduler: it never blocks.
cluster_gate_actor spawn_cluster_gate(caf::actor_system& sys, cluster_gate_settings cfg,
                                      canceller_actor canceller);

} // namespace batchq
